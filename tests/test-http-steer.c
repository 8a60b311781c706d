/* tests/test-http-steer.c - steer_by_cpu (src/http/steer.h): queues on one
 * port with SO_REUSEPORT, each for one CPU; a connection made from a
 * thread bound to a CPU must land in that CPU's queue (on loopback the SYN
 * is handled on the connecting CPU), one from a CPU with no queue goes by
 * the kernel's hash, closing a queue keeps the mapping right for the
 * order the kernel then has, and a group whose connections all come in on
 * one CPU goes by hash until they come in on both again. Queues with the
 * same TLS files share one context: a TLS session from one queue resumes on
 * the other. Needs two CPUs (skips otherwise).
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "tacio-test.h"
#include <tacio/http.h>
#include <tacio/pool.h>

#include "http/pki.h"

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

/* The queues' log lines, for the steering changes. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];

static void on_log(void *ctx, const char *line)
{
    (void)ctx;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static int log_count(const char *what)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (const char *p = log_text; (p = strstr(p, what)) != NULL; p++)
        n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static void shard_open_tls(struct shard *s, unsigned cpu, uint16_t *port, const tacio_http_tls_t *tls)
{
    unsigned cpus[] = {cpu};
    tacio_pool_options_t po = {.min_threads = 1, .max_threads = 1, .concurrency = 1,
                               .backend = tt_backend(), .cpus = cpus, .ncpus = 1};
    ASSERT_OK(tacio_pool_create(&s->pool, &po));
    tacio_http_queue_options_t o = {.reuse_port = true, .steer_by_cpu = true, .cpu = cpu,
                                    .log = on_log};
    ASSERT_OK(tacio_http_queue_create(s->pool, &o, on_done, NULL, &s->q));
    char url[64];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/", tls ? "https" : "http", *port);
    tacio_http_tls_t none = {0};
    ASSERT_OK(tacio_http_queue_add_url(s->q, url, tls ? tls : &none, *port ? NULL : port));
}

static void shard_open(struct shard *s, unsigned cpu, uint16_t *port)
{
    shard_open_tls(s, cpu, port, NULL);
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

/* Queues a (for c0) and b (for c1) on one new port. */
static void two_shards(struct shard *a, struct shard *b, unsigned *c0, unsigned *c1, uint16_t *port)
{
    two_cpus(c0, c1);
    *port = 0;
    shard_open(a, *c0, port);
    shard_open(b, *c1, port);
}

TT_CASE(connections_go_to_their_cpus_queue)
{
    unsigned c0, c1;
    uint16_t port;
    struct shard a, b;
    two_shards(&a, &b, &c0, &c1, &port);
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

/* Every 512 connections the group is looked at (src/http/steer.h "WHEN
 * NOT"). 600 from c0 alone: steering off, after which c0's connections go
 * by hash to both queues. Then 1200 alternating between the CPUs: back on,
 * after which c1's go to its own queue only. */
TT_CASE(one_cpu_alone_turns_steering_off_until_both_send)
{
    unsigned c0, c1;
    uint16_t port;
    struct shard a, b;
    two_shards(&a, &b, &c0, &c1, &port);
    struct shard *both[] = {&a, &b};
    uint64_t total = 600;
    dial(c0, 600, port);
    settle(both, 2, total);
    if (log_count("steering by CPU is off") != 1)
        TT_FAIL("no steering-off line after 600 connections from CPU %u; log:\n%s", c0, log_text);
    tt_note("after 600 from CPU %u: %llu / %llu", c0, (unsigned long long)accepted(&a),
            (unsigned long long)accepted(&b));
    /* Steered until the 512th; the rest went by hash. */
    ASSERT_GE_INT((long long)accepted(&a), 511);
    uint64_t b0 = accepted(&b);
    dial(c0, 200, port);
    total += 200;
    settle(both, 2, total);
    tt_note("200 more from CPU %u: %llu to its queue's neighbour", c0,
            (unsigned long long)(accepted(&b) - b0));
    /* By hash, none of 200 to one of two queues has odds 2^-200. */
    ASSERT_TRUE(accepted(&b) - b0 > 0);
    for (int i = 0; i < 600; i++) {
        dial(i % 2 ? c1 : c0, 2, port);
        total += 2;
    }
    settle(both, 2, total);
    if (log_count("steering by CPU is back on") != 1)
        TT_FAIL("steering not back on after 1200 connections from both CPUs; log:\n%s", log_text);
    uint64_t a1 = accepted(&a), b1 = accepted(&b);
    dial(c1, 32, port);
    settle(both, 2, total + 32);
    ASSERT_EQ_U64(accepted(&a), a1);
    ASSERT_EQ_U64(accepted(&b), b1 + 32);
    shard_close(&b);
    shard_close(&a);
}

static char g_dir[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void pki_cleanup(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static SSL_SESSION *g_ticket;

static int keep_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (g_ticket)
        return 0;
    g_ticket = sess;
    return 1; /* ours now */
}

struct tls_dial {
    unsigned cpu;
    uint16_t port;
    SSL_CTX *ctx;
    SSL_SESSION *resume; /* offered, if set */
    int reused, failed;
};

/* One TLS 1.3 connection from a thread bound to cpu, held until the
 * server's first ticket arrived (the queue answers nothing: no receivers). */
static void *tls_dial_main(void *arg)
{
    struct tls_dial *d = arg;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    CPU_SET(d->cpu, &cs);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL *ssl = NULL;
    if (pthread_setaffinity_np(pthread_self(), sizeof cs, &cs) != 0 || fd < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || !(ssl = SSL_new(d->ctx))) {
        d->failed = 1;
    } else {
        SSL_set_fd(ssl, fd);
        if (d->resume)
            SSL_set_session(ssl, d->resume);
        if (SSL_connect(ssl) != 1) {
            d->failed = 2;
        } else {
            d->reused = SSL_session_reused(ssl);
            /* Read until a ticket came (keep_ticket), for up to 5 s. */
            struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char buf[64];
            for (int i = 0; i < 50 && !d->resume && !g_ticket; i++)
                (void)SSL_read(ssl, buf, sizeof buf);
            if (!d->resume && !g_ticket)
                d->failed = 3;
        }
    }
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int tls_dial(struct tls_dial *d)
{
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, tls_dial_main, d), 0);
    pthread_join(t, NULL);
    if (d->failed)
        TT_FAIL("TLS connection from CPU %u failed (step %d)", d->cpu, d->failed);
    return d->reused;
}

/* Two steered queues with the same certificate: a session made with the
 * first (connection from its CPU) resumes on the second (from the other). */
TT_CASE(queues_with_the_same_files_share_sessions)
{
    unsigned c0, c1;
    two_cpus(&c0, &c1);
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tacio-steer-XXXXXX", t && *t ? t : "/tmp");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
    atexit(pki_cleanup);
    ASSERT_OK(tacio__pki_test_set_create(g_dir, TACIO__PKI_EC_P256));
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/server-chain.pem", g_dir);
    snprintf(key, sizeof key, "%s/server.key", g_dir);
    tacio_http_tls_t tls = {cert, key, NULL, TACIO_HTTP_CLIENT_CERT_NONE};
    uint16_t port = 0;
    struct shard a, b;
    shard_open_tls(&a, c0, &port, &tls);
    shard_open_tls(&b, c1, &port, &tls);
    struct shard *both[] = {&a, &b};
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    ASSERT_TRUE(cctx != NULL);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cctx, keep_ticket);
    struct tls_dial first = {.cpu = c0, .port = port, .ctx = cctx};
    ASSERT_EQ_INT(tls_dial(&first), 0);
    settle(both, 2, 1);
    ASSERT_EQ_U64(accepted(&a), 1);
    ASSERT_TRUE(g_ticket != NULL);
    struct tls_dial second = {.cpu = c1, .port = port, .ctx = cctx, .resume = g_ticket};
    int reused = tls_dial(&second);
    settle(both, 2, 2);
    ASSERT_EQ_U64(accepted(&b), 1); /* the other queue took it... */
    if (!reused)
        TT_FAIL("the session from the queue of CPU %u did not resume on the queue of CPU %u", c0, c1);
    SSL_SESSION_free(g_ticket);
    SSL_CTX_free(cctx);
    shard_close(&b);
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
    TT_ENTRY(one_cpu_alone_turns_steering_off_until_both_send, 120),
    TT_ENTRY(queues_with_the_same_files_share_sessions, 60),
    TT_ENTRY(steering_needs_reuse_port, 30),
};
TT_MAIN()
