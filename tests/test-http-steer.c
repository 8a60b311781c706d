/* tests/test-http-steer.c - steer_by_cpu (src/http/steer.h): queues on one
 * port with SO_REUSEPORT, each for one CPU; a connection made from a
 * thread bound to a CPU must land in that CPU's queue (on loopback the SYN
 * is handled on the connecting CPU), one from a CPU with no queue goes by
 * the kernel's hash, and closing a queue keeps the mapping right for the
 * order the kernel then has. Needs two CPUs (skips otherwise).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tacio-test.h"
#include <tacio/http.h>
#include <tacio/pool.h>

static void on_done(tacio_http_queue_t *q, void *ctx, tacio_http_op_t *op, tacio_status_t st,
                    uint64_t bytes)
{
    (void)q;
    (void)ctx;
    (void)op;
    (void)st;
    (void)bytes;
}

struct shard {
    tacio_pool_t *pool;
    tacio_http_queue_t *q;
};

static void shard_open(struct shard *s, unsigned cpu, uint16_t *port)
{
    unsigned cpus[] = {cpu};
    tacio_pool_options_t po = {.min_threads = 1, .max_threads = 1, .concurrency = 1,
                               .backend = tt_backend(), .cpus = cpus, .ncpus = 1};
    ASSERT_OK(tacio_pool_create(&s->pool, &po));
    tacio_http_queue_options_t o = {.reuse_port = true, .steer_by_cpu = true, .cpu = cpu};
    ASSERT_OK(tacio_http_queue_create(s->pool, &o, on_done, NULL, &s->q));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", *port);
    tacio_http_tls_t none = {0};
    ASSERT_OK(tacio_http_queue_add_url(s->q, url, &none, *port ? NULL : port));
}

static void shard_close(struct shard *s)
{
    ASSERT_OK(tacio_http_queue_close(s->q));
    ASSERT_OK(tacio_pool_close(s->pool));
    s->q = NULL;
}

static uint64_t accepted(const struct shard *s)
{
    tacio_http_stats_t st;
    ASSERT_OK(tacio_http_queue_stats(s->q, &st));
    return st.accepted;
}

struct dial {
    unsigned cpu, n;
    uint16_t port;
    int failed;
};

/* n connections, each opened and closed, from a thread bound to cpu. */
static void *dial_main(void *arg)
{
    struct dial *d = arg;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    CPU_SET(d->cpu, &cs);
    if (pthread_setaffinity_np(pthread_self(), sizeof cs, &cs) != 0)
        d->failed = 1;
    for (unsigned i = 0; i < d->n && !d->failed; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(d->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
            d->failed = 1;
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static void dial(unsigned cpu, unsigned n, uint16_t port)
{
    struct dial d = {.cpu = cpu, .n = n, .port = port};
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, dial_main, &d), 0);
    pthread_join(t, NULL);
    if (d.failed)
        TT_FAIL("connecting from CPU %u failed", cpu);
}

/* Until the shards' counts add up to total (each accept is counted when it
 * happens, on the shard's own thread). */
static void settle(struct shard *const *s, unsigned n, uint64_t total)
{
    for (int i = 0; i < 500; i++) {
        uint64_t sum = 0;
        for (unsigned k = 0; k < n; k++)
            sum += accepted(s[k]);
        if (sum >= total)
            return;
        tt_sleep_ms(10);
    }
    TT_FAIL("not all %llu connections were accepted", (unsigned long long)total);
}

static void two_cpus(unsigned *c0, unsigned *c1)
{
    cpu_set_t allowed;
    ASSERT_EQ_INT(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    int found = 0;
    for (unsigned c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            *(found++ ? c1 : c0) = c;
    if (found < 2)
        TT_SKIP("needs two CPUs");
}

TT_CASE(connections_go_to_their_cpus_queue)
{
    unsigned c0, c1;
    two_cpus(&c0, &c1);
    uint16_t port = 0;
    struct shard a, b;
    shard_open(&a, c0, &port);
    shard_open(&b, c1, &port);
    struct shard *both[] = {&a, &b};
    enum { N = 24 };
    dial(c0, N, port);
    settle(both, 2, N);
    tt_note("from CPU %u: %llu / %llu", c0, (unsigned long long)accepted(&a),
            (unsigned long long)accepted(&b));
    ASSERT_EQ_U64(accepted(&a), N);
    ASSERT_EQ_U64(accepted(&b), 0);
    dial(c1, N, port);
    settle(both, 2, 2 * N);
    ASSERT_EQ_U64(accepted(&a), N);
    ASSERT_EQ_U64(accepted(&b), N);
    shard_close(&b);
    shard_close(&a);
}

/* Three queues [c0, c1, c0]; the middle one closes, the kernel moves the
 * last into its place: [c0, c0]. CPU c1 now has no queue, so its
 * connections go by hash to both; a program left mapping c1 to index 1
 * would send every one of them to the moved queue. */
TT_CASE(closing_a_queue_keeps_the_mapping)
{
    unsigned c0, c1;
    two_cpus(&c0, &c1);
    uint16_t port = 0;
    struct shard a, b, c;
    shard_open(&a, c0, &port);
    shard_open(&b, c1, &port);
    shard_open(&c, c0, &port);
    struct shard *all[] = {&a, &b, &c};
    dial(c1, 8, port);
    settle(all, 3, 8);
    ASSERT_EQ_U64(accepted(&b), 8);
    shard_close(&b);
    struct shard *left[] = {&a, &c};
    enum { N = 48 };
    dial(c1, N, port);
    settle(left, 2, N);
    tt_note("from CPU %u after the close: %llu / %llu", c1, (unsigned long long)accepted(&a),
            (unsigned long long)accepted(&c));
    /* Both by hash: one of them empty has odds 2^-47. */
    ASSERT_TRUE(accepted(&a) > 0 && accepted(&c) > 0);
    /* CPU c0's queue is the first with it: a, every time. */
    uint64_t a0 = accepted(&a), c0n = accepted(&c);
    dial(c0, 16, port);
    settle(left, 2, N + 16);
    ASSERT_EQ_U64(accepted(&a), a0 + 16);
    ASSERT_EQ_U64(accepted(&c), c0n);
    shard_close(&c);
    shard_close(&a);
}

TT_CASE(steering_needs_reuse_port)
{
    tacio_pool_t *pool;
    tacio_pool_options_t po = {.min_threads = 1, .max_threads = 1, .concurrency = 1,
                               .backend = tt_backend()};
    ASSERT_OK(tacio_pool_create(&pool, &po));
    tacio_http_queue_t *q;
    tacio_http_queue_options_t o = {.steer_by_cpu = true};
    ASSERT_EQ_STATUS(tacio_http_queue_create(pool, &o, on_done, NULL, &q), TACIO_INVALID_PARAMETER);
    o.reuse_port = o.share_listeners = true;
    ASSERT_EQ_STATUS(tacio_http_queue_create(pool, &o, on_done, NULL, &q), TACIO_INVALID_PARAMETER);
    ASSERT_OK(tacio_pool_close(pool));
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(connections_go_to_their_cpus_queue, 60),
    TT_ENTRY(closing_a_queue_keeps_the_mapping, 60),
    TT_ENTRY(steering_needs_reuse_port, 30),
};
TT_MAIN()
