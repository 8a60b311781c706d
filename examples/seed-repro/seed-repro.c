/* seed-repro - the seed case, reproduced on Linux (docs/verifier.md).
 *
 * A UDP server receives each request into a record allocated for it, with
 * a small first buffer (64 bytes), as the seed's .NET code asked for a
 * client certificate into a 1500-byte buffer. The client's datagrams are
 * larger (1500 bytes). When the receive ends synchronously with the warning
 * TACIO_BUFFER_OVERFLOW ("here is the size you need"), the server does what
 * the seed's code did: it frees the record and retries with a bigger one.
 *
 * With tacio's own backends that is correct: a final status means no
 * completion will follow (contract rule 1). Run it with a backend that
 * breaks the rule, as the seed's driver did:
 *
 *   TACIO_FAULTS=seed=1,lie=0.05 seed-repro
 *       the backend arms some receives for real and also reports the
 *       warning. Each such receive's real completion later lands on a
 *       record the server freed. In an ASan build, ASan reports the
 *       heap-use-after-free inside the runtime's completion path: the
 *       seed case's crash, stack all runtime.
 *   TACIO_VERIFY=1 TACIO_FAULTS=seed=1,lie=0.05 seed-repro
 *       the verifier catches the second completion before anything
 *       touches the record, prints which operation completed twice and
 *       how, with the stacks of both deliveries (the first in the
 *       synchronous return path, in serve_request; the second in the
 *       completion path), writes a fault record, and aborts.
 *   seed-repro
 *       no fault injection: every request is served, nothing is reported.
 *
 * Options: --requests N (default 200), --port P (default 0: any).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tacio/tacio.h>

enum { FIRST_BUFFER = 64, DATAGRAM = 1500 };

/* The request record, allocated per request: the operation record embedded
 * in the caller's struct (the OVERLAPPED role). Its buffer comes from a
 * ring of buffers that stay allocated, as the seed's pinned buffers did, so
 * what lands on freed memory is the runtime's completion of the record,
 * not the kernel's copy of the data. */
typedef struct request {
    tacio_op_t op;
    size_t cap;
    char *buf;
} request_t;

static char buffers[16][DATAGRAM];
static unsigned next_buffer;

static request_t *request_new(size_t cap)
{
    request_t *r = calloc(1, sizeof *r);
    if (!r) {
        perror("seed-repro: calloc");
        exit(1);
    }
    r->cap = cap;
    r->buf = buffers[next_buffer++ % 16];
    return r;
}

struct client {
    int fd;
    struct sockaddr_in to;
    unsigned n;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    char d[DATAGRAM];
    memset(d, 'c', sizeof d);
    for (unsigned i = 0; i < c->n; i++) {
        if (sendto(c->fd, d, sizeof d, 0, (struct sockaddr *)&c->to, sizeof c->to) < 0)
            perror("seed-repro: sendto");
        struct timespec ts = {0, 2000000}; /* 2 ms: the server waits in the kernel between requests */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

struct counts {
    unsigned served, sync_overflows, pending, pending_overflows, retries;
};

/* One request: start the receive; wait for its completion if it is
 * pending. Returns the record it ended with (to be freed by the caller), or
 * NULL when the warning came synchronously and the record was freed. */
__attribute__((noinline)) static request_t *serve_request(tacio_port_t *port, tacio_handle_t *h,
                                                        request_t *r, struct counts *n)
{
    tacio_status_t st = tacio_recv(h, &r->op, r->buf, r->cap);
    if (st == TACIO_BUFFER_OVERFLOW) {
        /* "Too small; this is the size you need." The seed's code took this
         * as the end of the request: it freed the record and retried. */
        n->sync_overflows++;
        free(r);
        return NULL;
    }
    if (st != TACIO_PENDING) {
        if (st != TACIO_SUCCESS)
            fprintf(stderr, "seed-repro: recv: %s\n", tacio_status_name(st));
        return r;
    }
    n->pending++;
    for (;;) {
        tacio_entry_t e;
        unsigned got = 0;
        st = tacio_port_dequeue(port, &e, 1, &got, 5000);
        if (st == TACIO_TIMEOUT) {
            fprintf(stderr, "seed-repro: no datagram for 5 s\n");
            tacio_cancel(&r->op);
            continue;
        }
        if (st != TACIO_SUCCESS) {
            fprintf(stderr, "seed-repro: dequeue: %s\n", tacio_status_name(st));
            exit(1);
        }
        if (e.op != &r->op)
            continue; /* nothing else is started here */
        if (e.status == TACIO_BUFFER_OVERFLOW)
            n->pending_overflows++;
        return r;
    }
}

int main(int argc, char **argv)
{
    unsigned requests = 200;
    int port_no = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            requests = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port_no = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: seed-repro [--requests N] [--port P]\n");
            return 2;
        }
    }
    tacio_port_t *port;
    tacio_status_t st = tacio_port_create(&port, 1);
    if (st != TACIO_SUCCESS) {
        fprintf(stderr, "seed-repro: port: %s: %s\n", tacio_status_name(st), tacio_last_error());
        return 1;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_no),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("seed-repro: socket");
        return 1;
    }
    tacio_handle_t *h;
    if ((st = tacio_handle_open(port, s, 1, 0, &h)) != TACIO_SUCCESS) {
        fprintf(stderr, "seed-repro: handle: %s\n", tacio_status_name(st));
        return 1;
    }
    struct client c = {.fd = socket(AF_INET, SOCK_DGRAM, 0), .to = a, .n = requests};
    pthread_t ct;
    pthread_create(&ct, NULL, client_main, &c);

    struct counts n = {0};
    size_t cap = FIRST_BUFFER;
    while (n.served + n.sync_overflows < requests) {
        request_t *r = serve_request(port, h, request_new(cap), &n);
        if (!r) {
            cap = DATAGRAM; /* retry with the size the warning asked for */
            n.retries++;
            continue;
        }
        n.served++;
        free(r);
        cap = FIRST_BUFFER;
    }
    pthread_join(ct, NULL);
    close(c.fd);
    tacio_stats_t ps;
    tacio_port_stats(port, &ps);
    printf("seed-repro: %u requests: %u served, %u synchronous BUFFER_OVERFLOW (record freed, "
           "retried), %u pending (%u of them overflowed); second completions dropped by the "
           "runtime: %llu; verifier reports: %llu\n",
           requests, n.served, n.sync_overflows, n.pending, n.pending_overflows,
           (unsigned long long)ps.dropped_duplicates,
           (unsigned long long)tacio_verify_reports());
    tacio_handle_close(h);
    tacio_port_close(port, NULL, NULL);
    return 0;
}
