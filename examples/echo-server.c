/* echo-server - a TCP echo server on a tacio completion port.
 *
 *   echo-server [--port P] [--threads N] [--accepts N]   serve until SIGINT/SIGTERM
 *   echo-server --demo [--conns N] [--rounds N]          serve, drive itself, report
 *
 * Each connection has one receive or one send in flight at a time. The value
 * a start call returns decides everything: TACIO_PENDING means "the
 * completion will come to a worker", anything else means "it is over now"
 * (a send that completed synchronously goes straight on to the next
 * receive). No path frees a record that still has a completion coming. */
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
#define KEY_LISTEN 1
#define KEY_QUIT 2
#define KEY_CONN 3

struct conn {
    tacio_op_t op; /* the one operation in flight: recv or send */
    tacio_handle_t *h;
    int sending; /* which call c->op is in: set before the call, read at completion */
    struct conn *prev, *next;
    char buf[BUF_SIZE];
};

struct acceptor {
    tacio_op_t op;
    tacio_addr_t peer;
};

static tacio_port_t *port;
static tacio_handle_t *listener;
static struct acceptor *acceptors;
static unsigned n_acceptors = 16;
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;
static int verbose;
/* --churn N: a worker exits after N entries and starts its replacement,
 * leaving its pending receives behind: thread-agnostic I/O at work. */
static long churn;
static _Atomic long workers_started;
static _Atomic int live_workers;

static void die(const char *what, tacio_status_t st)
{
    fprintf(stderr, "echo-server: %s: %s (0x%08X) %s\n", what, tacio_status_name(st), st,
            tacio_last_error());
    exit(1);
}

static void count_discarded(const tacio_entry_t *e, void *arg)
{
    (void)e;
    (*(unsigned long *)arg)++;
}

static void conn_free(struct conn *c)
{
    pthread_mutex_lock(&conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&conns_lock);
    free(c);
}

/* Runs when the connection's last operation is over. */
static void conn_end(struct conn *c)
{
    tacio_handle_close(c->h);
    conn_free(c);
}

/* Keep the connection going from a finished operation: receive after a send,
 * send after a receive, until something fails or completes asynchronously. */
static void conn_step(struct conn *c, int was_recv, tacio_status_t st, uint64_t bytes)
{
    for (;;) {
        if (st != TACIO_SUCCESS) {
            if (verbose && st != TACIO_END_OF_FILE)
                fprintf(stderr, "connection ended: %s\n", tacio_status_name(st));
            conn_end(c);
            return;
        }
        c->sending = was_recv;
        if (was_recv)
            st = tacio_send(c->h, &c->op, c->buf, bytes);
        else
            st = tacio_recv(c->h, &c->op, c->buf, sizeof c->buf);
        if (st == TACIO_PENDING)
            return;
        was_recv = !was_recv;
        bytes = c->op.bytes;
    }
}

static void conn_start(int fd)
{
    struct conn *c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    tacio_op_init(&c->op);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tacio_status_t st = tacio_handle_open(port, fd, KEY_CONN, 0, &c->h);
    if (st != TACIO_SUCCESS) {
        fprintf(stderr, "echo-server: handle_open: %s\n", tacio_status_name(st));
        close(fd);
        free(c);
        return;
    }
    pthread_mutex_lock(&conns_lock);
    c->prev = NULL;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    pthread_mutex_unlock(&conns_lock);
    /* Pretend a zero-byte send just finished: the step starts with a receive. */
    conn_step(c, 0, TACIO_SUCCESS, 0);
}

static void accept_next(struct acceptor *a)
{
    for (;;) {
        tacio_status_t st = tacio_accept(listener, &a->op, &a->peer);
        if (st == TACIO_PENDING)
            return;
        if (st != TACIO_SUCCESS) {
            if (st != TACIO_FILE_CLOSED && st != TACIO_PORT_DISCONNECTED)
                fprintf(stderr, "echo-server: accept: %s\n", tacio_status_name(st));
            return;
        }
        conn_start((int)a->op.bytes);
    }
}

static void *worker(void *arg);

static void start_worker(pthread_t *tid)
{
    pthread_t t;
    live_workers++;
    workers_started++;
    if (pthread_create(tid ? tid : &t, NULL, worker, NULL) != 0) {
        perror("echo-server: pthread_create");
        exit(1);
    }
    if (!tid)
        pthread_detach(t);
}

static void *worker(void *arg)
{
    (void)arg;
    tacio_entry_t ev[64];
    long handled = 0;
    for (;;) {
        if (churn && handled >= churn) {
            start_worker(NULL);
            live_workers--;
            return NULL;
        }
        unsigned n;
        tacio_status_t st = tacio_port_dequeue(port, ev, 64, &n, TACIO_INFINITE);
        if (st == TACIO_ABANDONED) {
            live_workers--;
            return NULL;
        }
        if (st != TACIO_SUCCESS)
            die("dequeue", st);
        handled += n;
        for (unsigned i = 0; i < n; i++) {
            if (ev[i].key == KEY_QUIT) {
                /* One packet stops one worker; pass it on so a worker that
                 * took several in one batch does not strand the others. */
                tacio_port_post(port, KEY_QUIT, 0, NULL, TACIO_SUCCESS);
                live_workers--;
                return NULL;
            }
            if (ev[i].key == KEY_LISTEN) {
                struct acceptor *a = tacio_container_of(ev[i].op, struct acceptor, op);
                if (ev[i].status == TACIO_SUCCESS)
                    conn_start((int)ev[i].bytes);
                else if (ev[i].status != TACIO_CANCELLED)
                    fprintf(stderr, "echo-server: accept: %s\n", tacio_status_name(ev[i].status));
                if (ev[i].status != TACIO_CANCELLED)
                    accept_next(a);
                continue;
            }
            struct conn *c = tacio_container_of(ev[i].op, struct conn, op);
            conn_step(c, !c->sending, ev[i].status, ev[i].bytes);
        }
    }
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
        fprintf(stderr, "echo-server: bind/listen 127.0.0.1:%d: %s\n", port_no, strerror(errno));
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
        return NULL;
    }
    char out[64], in[64];
    d->ok = 1;
    for (int r = 0; r < d->rounds; r++) {
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(r * 31 + (int)i);
        if (write(fd, out, sizeof out) != (ssize_t)sizeof out) {
            d->ok = 0;
            break;
        }
        size_t got = 0;
        while (got < sizeof in) {
            ssize_t k = read(fd, in + got, sizeof in - got);
            if (k <= 0) {
                d->ok = 0;
                break;
            }
            got += (size_t)k;
        }
        if (!d->ok || memcmp(in, out, sizeof in) != 0) {
            d->ok = 0;
            break;
        }
        d->done++;
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
        else if (!strcmp(argv[i], "--churn") && i + 1 < argc)
            churn = atol(argv[++i]);
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--port P] [--threads N] [--accepts N] [--churn N] [-v]\n"
                            "       %s --demo [--threads N] [--conns N] [--rounds N] [--churn N]\n"
                            "  --churn N  each worker thread exits after N entries and is replaced\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || n_acceptors < 1 || n_acceptors > 4096) {
        fprintf(stderr, "echo-server: --threads 1..256, --accepts 1..4096\n");
        return 2;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    tacio_status_t st = tacio_port_create(&port, (unsigned)threads);
    if (st != TACIO_SUCCESS)
        die("port_create", st);
    int bound;
    int lfd = listen_on(demo ? 0 : port_no, &bound);
    if ((st = tacio_handle_open(port, lfd, KEY_LISTEN, 0, &listener)) != TACIO_SUCCESS)
        die("handle_open(listener)", st);
    acceptors = calloc(n_acceptors, sizeof *acceptors);
    for (unsigned i = 0; i < n_acceptors; i++)
        accept_next(&acceptors[i]);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    for (int i = 0; i < threads; i++)
        start_worker(churn ? NULL : &tids[i]);
    tacio_port_info_t info;
    tacio_port_info(port, &info);
    printf("listening on 127.0.0.1:%d (%s, %d workers)\n", bound, info.backend, threads);
    fflush(stdout);

    int rc = 0;
    if (demo) {
        struct demo_client *dc = calloc((size_t)conns_n, sizeof *dc);
        pthread_t *ct = calloc((size_t)conns_n, sizeof *ct);
        double t0 = now_s();
        for (int i = 0; i < conns_n; i++) {
            dc[i].port = bound;
            dc[i].rounds = rounds;
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
        printf("echo-server: signal %d, shutting down\n", sig);
    }

    fflush(stdout);
    tacio_port_post(port, KEY_QUIT, 0, NULL, TACIO_SUCCESS);
    if (churn) {
        /* Workers replace themselves: the quit packet stops them all. */
        while (live_workers > 0)
            usleep(1000);
    } else {
        for (int i = 0; i < threads; i++)
            pthread_join(tids[i], NULL);
    }
    tacio_handle_close(listener);
    pthread_mutex_lock(&conns_lock);
    for (struct conn *c = conns; c; c = c->next)
        tacio_handle_close(c->h);
    pthread_mutex_unlock(&conns_lock);
    tacio_stats_t s;
    tacio_port_stats(port, &s);
    /* The receives and accepts still pending complete CANCELLED into the
     * discard callback (counted, so every record is accounted for: the
     * verifier checks that); then every record is the caller's again. */
    unsigned long discarded = 0;
    tacio_port_close(port, count_discarded, &discarded);
    while (conns) {
        struct conn *c = conns;
        conns = c->next;
        free(c);
    }
    free(acceptors);
    free(tids);
    printf("port: %llu completions dequeued, %llu operations finished synchronously, "
           "%llu re-issued after their thread exited (%ld worker threads ran), "
           "%llu duplicates dropped, %lu pending at close\n",
           (unsigned long long)s.completions, (unsigned long long)s.sync_completions,
           (unsigned long long)s.reissued_after_exit, (long)workers_started,
           (unsigned long long)s.dropped_duplicates, discarded);
    return rc;
}
