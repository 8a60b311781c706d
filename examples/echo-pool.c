/* echo-pool - the TCP echo server of echo-server.c on pool-bound I/O callbacks.
 *
 *   echo-pool [--port P] [--threads N] [--accepts N] [-v]   serve until SIGINT/SIGTERM
 *   echo-pool --demo [--threads N] [--conns N] [--rounds N]  serve, drive itself, report
 *
 * --threads N is the pool's minimum, maximum and concurrency value (echo-server's
 * N workers on a port of concurrency N). The listening socket and every connection
 * are pool I/O objects: each completion runs the object's callback once on a pool
 * thread, and the callback starts the next operation. The start call's value still
 * decides everything: TACIO_PENDING means "the callback will run", anything else
 * means "it is over now" (conn_step goes straight on). There is no dequeue loop,
 * no quit packet, no key dispatch and no list of connections: tacio_pool_close()
 * cancels what is pending and runs each callback once, and the CANCELLED callback
 * frees its connection.
 *
 * Size (wc -l of the server logic: from the first #include to the line before the
 * "set-up and the self-driven demo" divider, i.e.
 *   sed -n '/^#include/,/---- set-up/p' F | sed '$d' | wc -l):
 *   echo-server.c 198 lines, echo-pool.c 106 lines; whole files 401 and 304.
 * (echo-server's --churn has no pool equivalent: pool threads come and go by
 * themselves, idle_ms; the pool never cancels I/O when a thread leaves.) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tacio/tacio.h>

#define BUF_SIZE 16384

struct conn {
    tacio_op_t op; /* the one operation in flight: recv or send */
    tacio_pool_io_t *io;
    int sending;            /* which call c->op is in: set before the call */
    size_t len, off;        /* bytes received, bytes of them sent */
    char buf[BUF_SIZE];
};

struct acceptor {
    tacio_op_t op;
    tacio_addr_t peer;
};

static tacio_pool_t *pool;
static tacio_pool_io_t *listener;
static unsigned n_acceptors = 16;
static int verbose;

/* A finished operation of c (st, bytes): start the next one, until a start
 * call says PENDING (its callback comes later) or something fails. */
static void conn_step(struct conn *c, tacio_status_t st, uint64_t bytes)
{
    for (;;) {
        if (st != TACIO_SUCCESS) {
            if (verbose && st != TACIO_END_OF_FILE && st != TACIO_CANCELLED)
                fprintf(stderr, "connection ended: %s\n", tacio_status_name(st));
            tacio_pool_io_close(c->io, 0); /* nothing pending: no callback follows */
            free(c);
            return;
        }
        if (c->sending)
            c->off += bytes; /* a short send goes on with the rest */
        else
            c->len = bytes, c->off = 0;
        c->sending = c->off < c->len;
        tacio_handle_t *h = tacio_pool_io_handle(c->io);
        st = c->sending ? tacio_send(h, &c->op, c->buf + c->off, c->len - c->off)
                        : tacio_recv(h, &c->op, c->buf, sizeof c->buf);
        if (st == TACIO_PENDING)
            return;
        bytes = c->op.bytes;
    }
}

static void on_conn(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                    uint64_t bytes)
{
    (void)io, (void)op;
    conn_step(ctx, st, bytes);
}

static void conn_start(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tacio_status_t st = c ? tacio_pool_io_open(pool, fd, 0, on_conn, c, NULL, &c->io)
                          : TACIO_NO_MEMORY;
    if (st != TACIO_SUCCESS) {
        fprintf(stderr, "echo-pool: io_open: %s\n", tacio_status_name(st));
        close(fd);
        free(c);
        return;
    }
    tacio_op_init(&c->op);
    conn_step(c, TACIO_SUCCESS, 0); /* as if an empty receive ended: receive */
}

static void accept_next(struct acceptor *a)
{
    tacio_status_t st;
    while ((st = tacio_accept(tacio_pool_io_handle(listener), &a->op, &a->peer)) == TACIO_SUCCESS)
        conn_start((int)a->op.bytes);
    if (st != TACIO_PENDING && st != TACIO_FILE_CLOSED && st != TACIO_PORT_DISCONNECTED)
        fprintf(stderr, "echo-pool: accept: %s\n", tacio_status_name(st));
}

static void on_accept(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                      uint64_t bytes)
{
    (void)io, (void)ctx;
    if (st == TACIO_SUCCESS)
        conn_start((int)bytes);
    else if (st != TACIO_CANCELLED)
        fprintf(stderr, "echo-pool: accept: %s\n", tacio_status_name(st));
    if (st != TACIO_CANCELLED)
        accept_next(tacio_container_of(op, struct acceptor, op));
}

/* ---- set-up and the self-driven demo -------------------------------------------- */

static int listen_on(int port_no, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_no)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "echo-pool: bind/listen 127.0.0.1:%d: %s\n", port_no, strerror(errno));
        exit(1);
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *bound = ntohs(a.sin_port);
    return fd;
}

struct demo_client {
    int port, rounds;
    long done;
    int ok;
};

/* One connection: rounds x 64 bytes, a different pattern each round, every
 * byte of every echo compared. */
static void *demo_client(void *arg)
{
    struct demo_client *d = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("demo connect");
        close(fd);
        return NULL;
    }
    char out[64], in[64];
    d->ok = 1;
    for (int r = 0; r < d->rounds && d->ok; r++) {
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(r * 31 + (int)i + d->port);
        if (write(fd, out, sizeof out) != (ssize_t)sizeof out)
            d->ok = 0;
        size_t got = 0;
        while (d->ok && got < sizeof in) {
            ssize_t k = read(fd, in + got, sizeof in - got);
            if (k <= 0)
                d->ok = 0;
            else
                got += (size_t)k;
        }
        if (d->ok && memcmp(in, out, sizeof in) == 0)
            d->done++;
        else
            d->ok = 0;
    }
    close(fd);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int port_no = 7000, threads = 2, demo = 0, conns_n = 16, rounds = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port_no = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--accepts") && i + 1 < argc)
            n_acceptors = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--demo"))
            demo = 1;
        else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
            conns_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--port P] [--threads N] [--accepts N] [-v]\n"
                            "       %s --demo [--threads N] [--conns N] [--rounds N]\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || n_acceptors < 1 || n_acceptors > 4096 || conns_n < 1 ||
        rounds < 0) {
        fprintf(stderr, "echo-pool: --threads 1..256, --accepts 1..4096, --conns >= 1\n");
        return 2;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* pool threads inherit the mask */
    signal(SIGPIPE, SIG_IGN);

    tacio_pool_options_t po = {.min_threads = (unsigned)threads,
                               .max_threads = (unsigned)threads,
                               .concurrency = (unsigned)threads};
    tacio_status_t st = tacio_pool_create(&pool, &po);
    if (st != TACIO_SUCCESS) {
        fprintf(stderr, "echo-pool: pool_create: %s %s\n", tacio_status_name(st),
                tacio_last_error());
        return 1;
    }
    int bound;
    int lfd = listen_on(demo ? 0 : port_no, &bound);
    if ((st = tacio_pool_io_open(pool, lfd, 0, on_accept, NULL, NULL, &listener)) != TACIO_SUCCESS) {
        fprintf(stderr, "echo-pool: io_open(listener): %s\n", tacio_status_name(st));
        return 1;
    }
    struct acceptor *acceptors = calloc(n_acceptors, sizeof *acceptors);
    for (unsigned i = 0; i < n_acceptors; i++) {
        tacio_op_init(&acceptors[i].op);
        accept_next(&acceptors[i]);
    }
    tacio_port_info_t info;
    tacio_port_info(tacio_pool_port(pool), &info);
    printf("listening on 127.0.0.1:%d (%s, pool of %d threads)\n", bound, info.backend, threads);
    fflush(stdout);

    int rc = 0;
    if (demo) {
        struct demo_client *dc = calloc((size_t)conns_n, sizeof *dc);
        pthread_t *ct = calloc((size_t)conns_n, sizeof *ct);
        double t0 = now_s();
        for (int i = 0; i < conns_n; i++) {
            dc[i] = (struct demo_client){.port = bound, .rounds = rounds};
            pthread_create(&ct[i], NULL, demo_client, &dc[i]);
        }
        long total = 0;
        int ok = 1;
        for (int i = 0; i < conns_n; i++) {
            pthread_join(ct[i], NULL);
            total += dc[i].done;
            ok &= dc[i].ok;
        }
        double dt = now_s() - t0;
        printf("demo: %d connections x %d round trips of 64 bytes: %ld echoed and verified "
               "in %.2f s (%.0f round trips/s)%s\n",
               conns_n, rounds, total, dt, (double)total / dt, ok ? "" : "  FAILED");
        rc = ok && total == (long)conns_n * rounds ? 0 : 1;
        free(dc);
        free(ct);
    } else {
        int sig;
        sigwait(&sigs, &sig);
        printf("echo-pool: signal %d, shutting down\n", sig);
    }

    fflush(stdout);
    tacio_stats_t s;
    tacio_port_stats(tacio_pool_port(pool), &s);
    tacio_pool_info_t pi;
    tacio_pool_info(pool, &pi);
    /* Cancels the pending accepts and receives; each callback runs once, and
     * the connections' CANCELLED callbacks free them. */
    tacio_pool_close(pool);
    free(acceptors);
    printf("pool: %llu callbacks run, %u threads at most; port: %llu completions dequeued, "
           "%llu operations finished synchronously, %llu duplicates dropped\n",
           (unsigned long long)pi.callbacks, pi.peak_threads, (unsigned long long)s.completions,
           (unsigned long long)s.sync_completions, (unsigned long long)s.dropped_duplicates);
    return rc;
}
