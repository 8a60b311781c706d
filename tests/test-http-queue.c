/* tests/test-http-queue.c - the request queue (include/tacio/http.h) with
 * real clients over loopback: raw sockets for plain http, curl and
 * openssl s_client for https. Every case runs an in-process server on a
 * pool, bound to 127.0.0.1 port 0, and counts, for every operation record,
 * the starts that returned TACIO_PENDING and the callbacks: a callback for
 * a record that is not pending, or a difference at the end, fails the case
 * (the rule of docs/contract.md, and the seed case of the client
 * certificate buffer).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <tacio/faults.h>
#include <tacio/http.h>

#include "tacio-test.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "http/pki.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif

/* ---- the in-process server ------------------------------------------------------- */

enum kind { K_RECV, K_CERT, K_BODY, K_SEND, K_MANUAL };

struct task {
    tacio_http_op_t op;
    enum kind kind;
    atomic_int pending;          /* 1 from before a start until its callback */
    uint64_t id;
    char path[256];
    void *cert;
    size_t cert_cap;
    int cert_first_status_pending;
    char body[65536];
    size_t body_len;
    char resp[4096];
};

struct rx {
    tacio_http_op_t op;
    enum kind kind;
    atomic_int pending;
    size_t cap;
    void *buf;
};

static tacio_pool_t *g_pool;
static tacio_http_queue_t *g_q;
static uint16_t g_port;
static atomic_uint_fast64_t g_started_pending, g_callbacks, g_cert_overflow_async,
    g_cert_pending, g_cert_sync_overflow, g_send_failed;
static char g_log[8192];
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rx g_rx[8];
static char g_dir[256];

/* Before a start: mark; after: unmark unless PENDING. */
static void will_start(atomic_int *p)
{
    ASSERT_EQ_INT(atomic_exchange(p, 1), 0);
}

static tacio_status_t started(atomic_int *p, tacio_status_t st)
{
    if (st == TACIO_PENDING)
        atomic_fetch_add(&g_started_pending, 1);
    else
        atomic_store(p, 0);
    return st;
}

static void test_log(void *ctx, const char *line)
{
    (void)ctx;
    pthread_mutex_lock(&g_log_mu);
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", line);
    pthread_mutex_unlock(&g_log_mu);
}

static bool log_has(const char *a, const char *b)
{
    pthread_mutex_lock(&g_log_mu);
    bool r = strstr(g_log, a) && (!b || strstr(g_log, b));
    pthread_mutex_unlock(&g_log_mu);
    return r;
}

static void task_free(struct task *t)
{
    free(t->cert);
    free(t);
}

static void respond(struct task *t, int status, const char *body)
{
    snprintf(t->resp, sizeof t->resp, "%s", body);
    tacio_http_response_t r = {.status = status, .body = t->resp, .body_len = strlen(t->resp)};
    t->kind = K_SEND;
    will_start(&t->pending);
    if (started(&t->pending, tacio_http_send_response(g_q, t->id, &t->op, &r)) != TACIO_PENDING)
        task_free(t);
}

static void cert_result(struct task *t, tacio_status_t st, uint64_t bytes)
{
    if (st == TACIO_BUFFER_OVERFLOW) {
        /* Over: no completion follows for this start. Grow, ask again; the
         * certificate is known now, so this is synchronous. */
        ASSERT_GE_INT(bytes, TACIO_HTTP_CERT_FIRST_BUFFER + 1);
        free(t->cert);
        t->cert_cap = (size_t)bytes;
        t->cert = aligned_alloc(16, (t->cert_cap + 15) & ~(size_t)15);
        will_start(&t->pending);
        st = started(&t->pending,
                     tacio_http_receive_client_cert(g_q, t->id, &t->op, t->cert, t->cert_cap));
        ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
    }
    char out[2048];
    if (st == TACIO_SUCCESS) {
        const tacio_http_client_cert_t *c = t->cert;
        snprintf(out, sizeof out, "flags=%u subject=%s issuer=%s der=%zu count=%zu sha256=%s\n",
                 c->verify_flags, c->subject, c->issuer, c->der_len, c->chain_count,
                 c->sha256_hex);
        respond(t, 200, out);
    } else {
        snprintf(out, sizeof out, "status=%s\n", tacio_status_name(st));
        respond(t, 403, out);
    }
}

static void body_more(struct task *t, tacio_status_t st, uint64_t bytes)
{
    for (;;) {
        if (st == TACIO_SUCCESS)
            t->body_len += bytes;
        if (st == TACIO_END_OF_FILE) {
            /* Echo it back chunked, in two parts. */
            tacio_http_response_t r = {.status = 200, .body = t->body,
                                       .body_len = t->body_len / 2,
                                       .flags = TACIO_HTTP_SEND_MORE | TACIO_HTTP_SEND_CHUNKED};
            t->kind = K_SEND;
            will_start(&t->pending);
            st = started(&t->pending, tacio_http_send_response(g_q, t->id, &t->op, &r));
            if (st == TACIO_PENDING)
                return; /* the test client waits for all; keep it simple: sync expected */
            ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
            will_start(&t->pending);
            st = started(&t->pending,
                         tacio_http_send_body(g_q, t->id, &t->op, t->body + t->body_len / 2,
                                              t->body_len - t->body_len / 2, 0));
            if (st != TACIO_PENDING)
                task_free(t);
            return;
        }
        if (st != TACIO_SUCCESS && st != TACIO_PENDING) {
            task_free(t); /* 413 is the library's answer */
            return;
        }
        t->kind = K_BODY;
        will_start(&t->pending);
        st = started(&t->pending, tacio_http_receive_body(g_q, t->id, &t->op, t->body + t->body_len,
                                                          sizeof t->body - t->body_len));
        if (st == TACIO_PENDING)
            return;
        bytes = t->op.bytes;
    }
}

static void handle(const tacio_http_request_t *r)
{
    struct task *t = calloc(1, sizeof *t);
    t->op.user = &t->kind;
    t->id = r->request_id;
    snprintf(t->path, sizeof t->path, "%s", r->path);
    if (!strcmp(t->path, "/whoami")) {
        t->cert_cap = TACIO_HTTP_CERT_FIRST_BUFFER;
        t->cert = aligned_alloc(16, 1504);
        t->kind = K_CERT;
        will_start(&t->pending);
        tacio_status_t st = started(&t->pending, tacio_http_receive_client_cert(
                                                     g_q, t->id, &t->op, t->cert, t->cert_cap));
        if (st == TACIO_PENDING) {
            atomic_fetch_add(&g_cert_pending, 1);
            return;
        }
        if (st == TACIO_BUFFER_OVERFLOW)
            atomic_fetch_add(&g_cert_sync_overflow, 1);
        cert_result(t, st, t->op.bytes);
    } else if (!strcmp(t->path, "/echo")) {
        body_more(t, TACIO_PENDING, 0);
    } else if (!strcmp(t->path, "/accepted")) {
        /* How many connections the queue had taken when this request ran. */
        tacio_http_stats_t st;
        ASSERT_OK(tacio_http_queue_stats(g_q, &st));
        char n[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)st.accepted);
        respond(t, 200, n);
    } else {
        respond(t, 200, t->path);
    }
}

static void rx_next(struct rx *x)
{
    for (;;) {
        will_start(&x->pending);
        tacio_status_t st = started(&x->pending, tacio_http_receive_request(g_q, 0, &x->op, x->buf, x->cap));
        if (st == TACIO_PENDING)
            return;
        if (st == TACIO_BUFFER_OVERFLOW) {
            uint64_t id = x->op.request_id;
            free(x->buf);
            x->cap = (size_t)x->op.bytes;
            x->buf = aligned_alloc(16, (x->cap + 15) & ~(size_t)15);
            will_start(&x->pending);
            st = started(&x->pending, tacio_http_receive_request(g_q, id, &x->op, x->buf, x->cap));
        }
        if (st != TACIO_SUCCESS)
            return;
        handle(x->buf);
    }
}

static atomic_int g_manual_done;
static tacio_status_t g_manual_status;
static uint64_t g_manual_bytes;

static void on_done(tacio_http_queue_t *q, void *ctx, tacio_http_op_t *op, tacio_status_t st,
                    uint64_t bytes)
{
    (void)q;
    (void)ctx;
    atomic_fetch_add(&g_callbacks, 1);
    enum kind *k = op->user;
    ASSERT_EQ_INT(op->status, st);
    ASSERT_EQ_U64(op->bytes, bytes);
    if (*k == K_RECV) {
        struct rx *x = tacio_container_of(op, struct rx, op);
        ASSERT_EQ_INT(atomic_exchange(&x->pending, 0), 1); /* exactly once per PENDING */
        if (st == TACIO_BUFFER_OVERFLOW) {
            uint64_t id = op->request_id;
            free(x->buf);
            x->cap = (size_t)bytes;
            x->buf = aligned_alloc(16, (x->cap + 15) & ~(size_t)15);
            will_start(&x->pending);
            st = started(&x->pending, tacio_http_receive_request(g_q, id, &x->op, x->buf, x->cap));
            ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
        }
        if (st == TACIO_SUCCESS) {
            handle(x->buf);
            rx_next(x);
        }
        return;
    }
    struct task *t = tacio_container_of(op, struct task, op);
    ASSERT_EQ_INT(atomic_exchange(&t->pending, 0), 1);
    switch (t->kind) {
    case K_MANUAL:
        g_manual_status = st;
        g_manual_bytes = bytes;
        atomic_store(&g_manual_done, 1);
        break;
    case K_CERT:
        if (st == TACIO_BUFFER_OVERFLOW)
            atomic_fetch_add(&g_cert_overflow_async, 1);
        cert_result(t, st, bytes);
        break;
    case K_BODY:
        body_more(t, st, bytes);
        break;
    case K_SEND:
        if (st != TACIO_SUCCESS)
            atomic_fetch_add(&g_send_failed, 1);
        if (st == TACIO_SUCCESS && !strcmp(t->path, "/echo") && t->body_len &&
            t->op.bytes == t->body_len / 2) {
            /* first half went out asynchronously: send the rest */
            will_start(&t->pending);
            st = started(&t->pending,
                         tacio_http_send_body(g_q, t->id, &t->op, t->body + t->body_len / 2,
                                              t->body_len - t->body_len / 2, 0));
            if (st == TACIO_PENDING)
                return;
        }
        task_free(t);
        break;
    default:
        break;
    }
}

static void server_start_ex(const tacio_http_queue_options_t *o, const char *scheme,
                            tacio_http_client_cert_mode_t mode, int receivers)
{
    tacio_pool_options_t po = {.min_threads = 2, .max_threads = 8, .concurrency = 2,
                               .backend = tt_backend()};
    ASSERT_OK(tacio_pool_create(&g_pool, &po));
    tacio_http_queue_options_t qo = o ? *o : (tacio_http_queue_options_t){0};
    qo.log = test_log;
    ASSERT_OK(tacio_http_queue_create(g_pool, &qo, on_done, NULL, &g_q));
    char url[64];
    snprintf(url, sizeof url, "%s://127.0.0.1:0/", scheme);
    tacio_http_tls_t tls = {0};
    char cert[300], key[300], ca[300];
    if (!strcmp(scheme, "https")) {
        snprintf(cert, sizeof cert, "%s/server-chain.pem", g_dir);
        snprintf(key, sizeof key, "%s/server.key", g_dir);
        snprintf(ca, sizeof ca, "%s/ca.pem", g_dir);
        tls = (tacio_http_tls_t){cert, key, ca, mode};
    }
    ASSERT_OK(tacio_http_queue_add_url(g_q, url, &tls, &g_port));
    for (int i = 0; i < receivers; i++) {
        g_rx[i].kind = K_RECV;
        g_rx[i].op.user = &g_rx[i].kind;
        g_rx[i].cap = 512; /* small: some requests overflow, on purpose */
        g_rx[i].buf = aligned_alloc(16, g_rx[i].cap);
        rx_next(&g_rx[i]);
    }
}

static void server_start(const char *scheme, tacio_http_client_cert_mode_t mode)
{
    server_start_ex(NULL, scheme, mode, 4);
}

static void server_stop(void)
{
    ASSERT_OK(tacio_http_queue_close(g_q));
    ASSERT_OK(tacio_pool_close(g_pool));
    for (size_t i = 0; i < sizeof g_rx / sizeof g_rx[0]; i++) {
        free(g_rx[i].buf);
        g_rx[i].buf = NULL;
        ASSERT_EQ_INT(atomic_load(&g_rx[i].pending), 0);
    }
    ASSERT_EQ_U64(atomic_load(&g_started_pending), atomic_load(&g_callbacks));
#ifdef HAVE_LSAN
    /* The runner leaves children with _exit, so LeakSanitizer would never
     * look: ask it here, after the queue and the pool are gone. */
    ASSERT_EQ_INT(__lsan_do_recoverable_leak_check(), 0);
#endif
    tt_note("%llu starts returned PENDING, %llu callbacks",
            (unsigned long long)atomic_load(&g_started_pending),
            (unsigned long long)atomic_load(&g_callbacks));
}

/* ---- clients ------------------------------------------------------------------------ */

static int connect_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_TRUE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue; /* something in the process uses signals (sanitizers) */
        ASSERT_TRUE(w > 0);
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

/* One response: status code, body in body (NUL-terminated); -1 on EOF. */
static int read_response(int fd, char *body, size_t cap)
{
    static __thread char buf[1 << 17];
    static __thread size_t have;
    static __thread int last_fd = -1;
    if (fd != last_fd)
        have = 0, last_fd = fd;
    for (;;) {
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end + 4 - buf);
            int status = atoi(buf + 9);
            char *cl = strcasestr(buf, "Content-Length:");
            size_t need;
            size_t blen;
            if (cl && cl < end) {
                blen = strtoul(cl + 15, NULL, 10);
                need = head + blen;
                if (have >= need) {
                    size_t c = blen < cap - 1 ? blen : cap - 1;
                    memcpy(body, buf + head, c);
                    body[c] = '\0';
                    memmove(buf, buf + need, have - need);
                    have -= need;
                    return status;
                }
            } else if (strcasestr(buf, "chunked") && strstr(end, "\r\n0\r\n\r\n")) {
                /* de-chunk */
                char *p = buf + head;
                size_t o = 0;
                for (;;) {
                    size_t n = strtoul(p, &p, 16);
                    p = strstr(p, "\r\n") + 2;
                    if (!n)
                        break;
                    if (o + n < cap) {
                        memcpy(body + o, p, n);
                        o += n;
                    }
                    p += n + 2;
                }
                body[o] = '\0';
                p += 2;
                size_t used = (size_t)(p - buf);
                memmove(buf, p, have - used);
                have -= used;
                return status;
            } else if (!cl && !strcasestr(buf, "chunked")) {
                body[0] = '\0';
                memmove(buf, buf + head, have - head);
                have -= head;
                return status;
            }
        }
        ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
}

static bool peer_closed(int fd)
{
    char c;
    ssize_t r;
    while ((r = recv(fd, &c, 1, 0)) < 0 && errno == EINTR) {
    }
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Run a shell command; its stdout in out. Returns the exit status. */
__attribute__((format(printf, 3, 4)))
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void pki_setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tacio-http-XXXXXX", t && *t ? t : "/tmp");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
    ASSERT_OK(tacio__pki_test_set_create(g_dir, TACIO__PKI_EC_P256));
}

static void pki_cleanup(void)
{
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void need_tool(const char *name)
{
    char out[256];
    if (run(out, sizeof out, "command -v %s", name) != 0)
        TT_SKIP("%s not installed", name);
}

/* curl against the server: 0 and the body in out, or curl's exit code. */
#define CURL "curl -sS --max-time 20 --cacert %s/ca.pem "

/* ---- cases: plain http -------------------------------------------------------------- */

TT_CASE(request_overflow_sync_then_by_id)
{
    server_start_ex(NULL, "http", 0, 0); /* nobody receives yet */
    int fd = connect_port(g_port);
    char req[4096];
    char big[3000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(req, sizeof req, "GET /big?x=1 HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", big);
    send_all(fd, req, strlen(req));
    tacio_http_stats_t s;
    for (int i = 0; i < 500; i++) {
        tacio_http_queue_stats(g_q, &s);
        if (s.requests)
            break;
        tt_sleep_ms(10);
    }
    ASSERT_EQ_U64(s.requests, 1);
    struct task *t = calloc(1, sizeof *t);
    t->op.user = &t->kind;
    t->kind = K_MANUAL;
    _Alignas(16) char small[256];
    uint64_t cb0 = atomic_load(&g_callbacks);
    will_start(&t->pending);
    tacio_status_t st = started(&t->pending, tacio_http_receive_request(g_q, 0, &t->op, small, sizeof small));
    ASSERT_EQ_STATUS(st, TACIO_BUFFER_OVERFLOW);
    ASSERT_GE_INT(t->op.bytes, 3000);
    ASSERT_TRUE(t->op.request_id != 0);
    tt_sleep_ms(200);
    ASSERT_EQ_U64(atomic_load(&g_callbacks), cb0); /* a warning never completes */
    size_t need = (size_t)t->op.bytes;
    uint64_t id = t->op.request_id;
    void *buf = aligned_alloc(16, (need + 15) & ~(size_t)15);
    /* Unknown ids are refused; the right one succeeds. */
    ASSERT_EQ_STATUS(tacio_http_receive_request(g_q, id + 12345, &t->op, buf, need), TACIO_NOT_FOUND);
    ASSERT_EQ_STATUS(tacio_http_receive_request(g_q, id, &t->op, buf, need), TACIO_SUCCESS);
    const tacio_http_request_t *r = buf;
    ASSERT_EQ_U64(r->request_id, id);
    ASSERT_TRUE(!strcmp(r->path, "/big") && !strcmp(r->query, "x=1"));
    ASSERT_EQ_INT(r->header_count, 2);
    ASSERT_EQ_INT(r->headers[1].value_len, 2999);
    /* Taken: a second receive by id finds nothing. */
    ASSERT_EQ_STATUS(tacio_http_receive_request(g_q, id, &t->op, buf, need), TACIO_NOT_FOUND);
    t->id = id;
    snprintf(t->path, sizeof t->path, "/big");
    free(buf);
    respond(t, 200, "big ok");
    char body[256];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "big ok"));
    close(fd);
    server_stop();
}

TT_CASE(request_overflow_async_once)
{
    server_start_ex(NULL, "http", 0, 0);
    struct task *t = calloc(1, sizeof *t);
    t->op.user = &t->kind;
    t->kind = K_MANUAL;
    _Alignas(16) char small[128];
    will_start(&t->pending);
    ASSERT_EQ_STATUS(started(&t->pending, tacio_http_receive_request(g_q, 0, &t->op, small, sizeof small)),
                     TACIO_PENDING);
    int fd = connect_port(g_port);
    const char *req = "GET /a-rather-long-path-that-does-not-fit-in-128-bytes/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\n\r\n";
    send_all(fd, req, strlen(req));
    for (int i = 0; i < 500 && !atomic_load(&g_manual_done); i++)
        tt_sleep_ms(10);
    ASSERT_EQ_INT(atomic_load(&g_manual_done), 1);
    ASSERT_EQ_STATUS(g_manual_status, TACIO_BUFFER_OVERFLOW);
    ASSERT_GE_INT(g_manual_bytes, 129);
    uint64_t id = t->op.request_id;
    void *buf = aligned_alloc(16, 4096);
    ASSERT_EQ_STATUS(tacio_http_receive_request(g_q, id, &t->op, buf, 4096), TACIO_SUCCESS);
    ASSERT_EQ_U64(t->op.bytes, g_manual_bytes);
    t->id = id;
    free(buf);
    respond(t, 200, "ok");
    char body[64];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    tt_sleep_ms(100);
    ASSERT_EQ_U64(atomic_load(&g_callbacks), 1); /* the one PENDING, once */
    close(fd);
    server_stop();
}

TT_CASE(pipelined_in_order)
{
    server_start("http", 0);
    int fd = connect_port(g_port);
    const char *reqs = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                       "GET /two HTTP/1.1\r\nHost: a\r\n\r\n"
                       "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                       "GET /four HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, reqs, strlen(reqs));
    char body[256];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "/one"));
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "/two"));
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "hello"));
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "/four"));
    close(fd);
    server_stop();
}

TT_CASE(chunked_body_in_and_out)
{
    server_start("http", 0);
    int fd = connect_port(g_port);
    const char *req = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                      "Expect: 100-continue\r\n\r\n";
    send_all(fd, req, strlen(req));
    char body[70000];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 100);
    char chunk[20000];
    memset(chunk, 'c', sizeof chunk);
    for (int i = 0; i < 3; i++) {
        char h[32];
        snprintf(h, sizeof h, "%zx\r\n", sizeof chunk);
        send_all(fd, h, strlen(h));
        send_all(fd, chunk, sizeof chunk);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_EQ_INT(strlen(body), 60000);
    ASSERT_TRUE(body[0] == 'c' && body[59999] == 'c');
    /* still keep-alive */
    send_all(fd, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n", 32);
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "/after"));
    close(fd);
    server_stop();
}

static void expect_reject(const char *req, int status)
{
    int fd = connect_port(g_port);
    send_all(fd, req, strlen(req));
    char body[512];
    tt_context("request %.40s", req);
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), status);
    ASSERT_TRUE(peer_closed(fd));
    close(fd);
}

TT_CASE(malformed_and_oversize_rejected)
{
    tacio_http_queue_options_t o = {.max_head = 2048, .max_target = 100, .max_body = 1000};
    server_start_ex(&o, "http", 0, 4);
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
    expect_reject("GARBAGE\r\n\r\n", 400);
    char big[4096];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: %03000d\r\n\r\n", 1);
    expect_reject(big, 431);
    snprintf(big, sizeof big, "GET /%0200d HTTP/1.1\r\nHost: a\r\n\r\n", 1);
    expect_reject(big, 414);
    expect_reject("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413);
    expect_reject("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.rejected, 8);
    server_stop();
}

TT_CASE(chunked_body_over_limit_413)
{
    tacio_http_queue_options_t o = {.max_body = 1000};
    server_start_ex(&o, "http", 0, 4);
    int fd = connect_port(g_port);
    const char *req = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "800\r\n";
    send_all(fd, req, strlen(req));
    char chunk[0x800];
    memset(chunk, 'x', sizeof chunk);
    send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    char body[256];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 413);
    ASSERT_TRUE(peer_closed(fd));
    close(fd);
    server_stop();
}

TT_CASE(slowloris_dropped)
{
    tacio_http_queue_options_t o = {.request_timeout_ms = 400, .idle_timeout_ms = 5000};
    server_start_ex(&o, "http", 0, 4);
    int fd = connect_port(g_port);
    const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\nX-A: b\r\n";
    uint64_t t0 = tt_now_ns();
    bool closed = false;
    for (size_t i = 0; i < strlen(req) * 4 && !closed; i++) {
        char c = req[i % strlen(req)];
        if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) {
            closed = true;
            break;
        }
        if (tt_poll(fd, POLLIN, 100))
            closed = peer_closed(fd);
    }
    uint64_t ms = (tt_now_ns() - t0) / 1000000u;
    ASSERT_TRUE(closed);
    ASSERT_LE_INT(ms, 2000);
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.timeouts, 1);
    ASSERT_TRUE(log_has("request head timeout", "127.0.0.1:"));
    tt_note("slow client dropped after %llu ms", (unsigned long long)ms);
    close(fd);
    server_stop();
}

TT_CASE(idle_keepalive_dropped)
{
    tacio_http_queue_options_t o = {.idle_timeout_ms = 300};
    server_start_ex(&o, "http", 0, 4);
    int fd = connect_port(g_port);
    send_all(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28);
    char body[64];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(tt_poll(fd, POLLIN, 3000) != 0);
    ASSERT_TRUE(peer_closed(fd));
    close(fd);
    server_stop();
}

enum { N_CONNS = 300, N_ROUNDS = 5 };

TT_CASE(hundreds_of_keepalive_connections)
{
    tacio_http_queue_options_t o = {.max_connections = N_CONNS + 10};
    server_start_ex(&o, "http", 0, 8);
    int *fds = calloc(N_CONNS, sizeof *fds);
    for (int i = 0; i < N_CONNS; i++)
        fds[i] = connect_port(g_port);
    char req[128], want[64], body[128];
    for (int r = 0; r < N_ROUNDS; r++) {
        for (int i = 0; i < N_CONNS; i++) {
            snprintf(req, sizeof req, "GET /c%d/r%d HTTP/1.1\r\nHost: a\r\n\r\n", i, r);
            send_all(fds[i], req, strlen(req));
        }
        for (int i = 0; i < N_CONNS; i++) {
            snprintf(want, sizeof want, "/c%d/r%d", i, r);
            int code = read_response(fds[i], body, sizeof body);
            if (code != 200) {
                tacio_http_stats_t s;
                tacio_http_queue_stats(g_q, &s);
                TT_FAIL("conn %d round %d: %d (%s); open %llu, requests %llu, timeouts %llu, "
                        "refused %llu; log: %s",
                        i, r, code, strerror(errno), (unsigned long long)s.open,
                        (unsigned long long)s.requests, (unsigned long long)s.timeouts,
                        (unsigned long long)s.refused, g_log);
            }
            if (strcmp(body, want))
                TT_FAIL("conn %d round %d: got %s", i, r, body);
        }
    }
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.accepted, N_CONNS);
    ASSERT_EQ_U64(s.open, N_CONNS);
    ASSERT_EQ_U64(s.requests, N_CONNS * N_ROUNDS);
    for (int i = 0; i < N_CONNS; i++)
        close(fds[i]);
    free(fds);
    server_stop(); /* the ASan build checks that nothing leaks */
}

TT_CASE(max_connections_refused)
{
    tacio_http_queue_options_t o = {.max_connections = 2};
    server_start_ex(&o, "http", 0, 4);
    int a = connect_port(g_port), b = connect_port(g_port);
    char body[64];
    send_all(a, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", 28);
    ASSERT_EQ_INT(read_response(a, body, sizeof body), 200);
    send_all(b, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n", 28);
    ASSERT_EQ_INT(read_response(b, body, sizeof body), 200);
    int c = connect_port(g_port);
    ASSERT_TRUE(tt_poll(c, POLLIN, 3000) != 0);
    ASSERT_TRUE(peer_closed(c));
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.refused, 1);
    close(a), close(b), close(c);
    server_stop();
}

TT_CASE(close_cancels_pending_once)
{
    server_start_ex(NULL, "http", 0, 3); /* three receives pending */
    int fd = connect_port(g_port);
    /* A request whose body never comes: its body receive stays pending. */
    send_all(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 55);
    for (int i = 0; i < 300; i++) {
        tacio_http_stats_t s;
        tacio_http_queue_stats(g_q, &s);
        if (s.requests)
            break;
        tt_sleep_ms(10);
    }
    tt_sleep_ms(100);
    server_stop(); /* every PENDING got exactly one callback (CANCELLED) */
    close(fd);
}

TT_CASE(ipv6_loopback_and_bad_urls)
{
    server_start("http", 0);
    uint16_t p6 = 0;
    tacio_status_t st = tacio_http_queue_add_url(g_q, "http://[::1]:0/", NULL, &p6);
    if (st != TACIO_SUCCESS) {
        server_stop();
        TT_SKIP("no ::1 here: %s", tacio_status_name(st));
    }
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(p6)};
    a.sin6_addr = in6addr_loopback;
    ASSERT_TRUE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    send_all(fd, "GET /v6 HTTP/1.1\r\nHost: a\r\n\r\n", 29);
    char body[64];
    ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
    ASSERT_TRUE(!strcmp(body, "/v6"));
    close(fd);
    tacio_http_tls_t none = {0};
    ASSERT_EQ_STATUS(tacio_http_queue_add_url(g_q, "ftp://127.0.0.1:1/", NULL, NULL), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_http_queue_add_url(g_q, "http://127.0.0.1/", NULL, NULL), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_http_queue_add_url(g_q, "http://example.com:80/", NULL, NULL), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_http_queue_add_url(g_q, "https://127.0.0.1:0/", &none, NULL), TACIO_INVALID_PARAMETER);
    server_stop();
}

/* ---- cases: https with real clients -------------------------------------------------- */

TT_CASE(curl_tls13_and_tls12_on_demand)
{
    need_tool("curl");
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_ON_DEMAND);
    char out[4096];
    ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/healthz", g_dir, g_port), 0);
    ASSERT_TRUE(!strcmp(out, "/healthz"));
    const char *vers[] = {"--tlsv1.3", "--tls-max 1.2"};
    for (int v = 0; v < 2; v++) {
        tt_context("%s", vers[v]);
        ASSERT_EQ_INT(run(out, sizeof out,
                          CURL "%s --cert %s/client-chain.pem --key %s/client.key "
                               "https://127.0.0.1:%u/whoami https://127.0.0.1:%u/whoami",
                          g_dir, vers[v], g_dir, g_dir, g_port, g_port), 0);
        /* Both requests on one connection: asked once, then known. */
        ASSERT_TRUE(strstr(out, "flags=0 subject=O=tacio development,CN=tacio client") != NULL);
        ASSERT_TRUE(strstr(strstr(out, "flags=0") + 1, "flags=0") != NULL);
        /* Without a certificate: 403, the client sent none. */
        ASSERT_EQ_INT(run(out, sizeof out, CURL "%s -w ' %%{http_code}' https://127.0.0.1:%u/whoami",
                          g_dir, vers[v], g_port), 0);
        ASSERT_TRUE(strstr(out, "status=TACIO_NOT_FOUND") && strstr(out, " 403"));
    }
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.cert_requests, 4);
    ASSERT_EQ_U64(atomic_load(&g_cert_pending), 4);
    server_stop();
    pki_cleanup();
}

TT_CASE(big_chain_overflows_then_fits)
{
    need_tool("curl");
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_ON_DEMAND);
    char out[8192];
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--cert %s/client-big-chain.pem --key %s/client-big.key "
                           "https://127.0.0.1:%u/whoami https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port, g_port), 0);
    const char *d = strstr(out, "der=");
    ASSERT_TRUE(d != NULL);
    ASSERT_GE_INT(atol(d + 4), 65536);
    ASSERT_TRUE(strstr(out, "count=9") != NULL);
    ASSERT_TRUE(strstr(d + 1, "der=") != NULL);
    /* First request: PENDING, one completion with BUFFER_OVERFLOW, retry
     * synchronous. Second: known already, synchronous BUFFER_OVERFLOW. */
    ASSERT_EQ_U64(atomic_load(&g_cert_pending), 1);
    ASSERT_EQ_U64(atomic_load(&g_cert_overflow_async), 1);
    ASSERT_EQ_U64(atomic_load(&g_cert_sync_overflow), 1);
    /* TLS 1.2 renegotiation carries it too. */
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--tls-max 1.2 --cert %s/client-big-chain.pem --key %s/client-big.key "
                           "https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "flags=0") && strstr(out, "count=9"));
    ASSERT_EQ_U64(atomic_load(&g_cert_overflow_async), 2);
    server_stop();
    pki_cleanup();
}

TT_CASE(bad_client_certs_get_their_verdict)
{
    need_tool("curl");
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_ON_DEMAND);
    struct { const char *name; unsigned flag; } cases[] = {
        {TACIO__PKI_CLIENT_EXPIRED, TACIO_HTTP_CERT_EXPIRED},
        {TACIO__PKI_CLIENT_FUTURE, TACIO_HTTP_CERT_NOT_YET_VALID},
        {TACIO__PKI_CLIENT_BADSIG, TACIO_HTTP_CERT_BAD_SIGNATURE},
        {TACIO__PKI_CLIENT_UNTRUSTED, TACIO_HTTP_CERT_UNTRUSTED},
    };
    unsigned long verified0 = atomic_load(&tacio__pki_verify_calls);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096];
        tt_context("%s", cases[i].name);
        ASSERT_EQ_INT(run(out, sizeof out,
                          CURL "--cert %s/%s-chain.pem --key %s/%s.key https://127.0.0.1:%u/whoami",
                          g_dir, g_dir, cases[i].name, g_dir, cases[i].name, g_port), 0);
        const char *f = strstr(out, "flags=");
        ASSERT_TRUE(f != NULL);
        unsigned flags = (unsigned)atoi(f + 6);
        ASSERT_TRUE((flags & cases[i].flag) != 0);
        tt_note("%s: flags 0x%x", cases[i].name, flags);
    }
    /* Each verdict is OpenSSL's check in the post-handshake exchange, not a second one. */
    ASSERT_EQ_U64(atomic_load(&tacio__pki_verify_calls), verified0);
    server_stop();
    pki_cleanup();
}

TT_CASE(required_mode)
{
    need_tool("curl");
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_REQUIRED);
    char out[4096];
    unsigned long verified0 = atomic_load(&tacio__pki_verify_calls);
    /* Without a certificate the handshake fails (curl exit 56 or 35). */
    ASSERT_TRUE(run(out, sizeof out, CURL "https://127.0.0.1:%u/whoami 2>/dev/null", g_dir, g_port) != 0);
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--cert %s/client-chain.pem --key %s/client.key https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "flags=0 subject=O=tacio development,CN=tacio client") != NULL);
    ASSERT_EQ_U64(atomic_load(&g_cert_pending), 0); /* known from the handshake: synchronous */
    /* The verdict is the handshake's own check: the chain is not verified again. */
    ASSERT_EQ_U64(atomic_load(&tacio__pki_verify_calls), verified0);
    /* The same chain again: its clean verdict is remembered, same answer. */
    tacio_http_stats_t st;
    ASSERT_OK(tacio_http_queue_stats(g_q, &st));
    ASSERT_EQ_U64(st.cert_verdicts_cached, 0);
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--cert %s/client-chain.pem --key %s/client.key https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "flags=0 subject=O=tacio development,CN=tacio client") != NULL);
    ASSERT_OK(tacio_http_queue_stats(g_q, &st));
    ASSERT_EQ_U64(st.cert_verdicts_cached, 1);
    /* An untrusted certificate fails the handshake too, remembered good
     * verdicts or not. */
    ASSERT_TRUE(run(out, sizeof out,
                    CURL "--cert %s/client-untrusted-chain.pem --key %s/client-untrusted.key "
                         "https://127.0.0.1:%u/whoami 2>/dev/null",
                    g_dir, g_dir, g_dir, g_port) != 0);
    tt_sleep_ms(100);
    ASSERT_TRUE(log_has("handshake failed", "127.0.0.1:"));
    ASSERT_OK(tacio_http_queue_stats(g_q, &st));
    ASSERT_EQ_U64(st.cert_verdicts_cached, 1);
    server_stop();
    pki_cleanup();
}

static bool ssl_interrupted(SSL *ssl, int r);

/* The last session a client got a ticket (or, TLS 1.2, an id) for: in TLS 1.3
 * the session the connection holds is not the one its tickets made. */
static SSL_SESSION *g_new_session;

static int keep_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (g_new_session)
        SSL_SESSION_free(g_new_session);
    g_new_session = sess;
    return 1; /* ours now */
}

/* One GET /whoami over its own connection, resuming *sess when set; *sess
 * becomes the connection's session (with the tickets its response carried).
 * Returns whether the handshake resumed. */
static int tls_whoami(SSL_CTX *ctx, SSL_SESSION **sess, char *out, size_t cap)
{
    int fd = connect_port(g_port);
    SSL *ssl = SSL_new(ctx);
    ASSERT_TRUE(ssl != NULL);
    SSL_set_fd(ssl, fd);
    if (*sess)
        ASSERT_TRUE(SSL_set_session(ssl, *sess) == 1);
    int r;
    while ((r = SSL_connect(ssl)) != 1)
        ASSERT_TRUE(ssl_interrupted(ssl, r));
    const char req[] = "GET /whoami HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    while ((r = SSL_write(ssl, req, (int)sizeof req - 1)) <= 0)
        ASSERT_TRUE(ssl_interrupted(ssl, r));
    size_t got = 0;
    while (got < cap - 1) {
        r = SSL_read(ssl, out + got, (int)(cap - 1 - got));
        if (r > 0)
            got += (size_t)r;
        else if (!ssl_interrupted(ssl, r))
            break;
    }
    out[got] = 0;
    int reused = SSL_session_reused(ssl);
    /* The server's close_notify came: a connection freed without a shutdown
     * would make OpenSSL mark its session not resumable. */
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl);
    if (g_new_session) {
        if (*sess)
            SSL_SESSION_free(*sess);
        *sess = g_new_session;
        g_new_session = NULL;
    }
    close(fd);
    return reused;
}

/* Required mode resumes, and the resumed connection still has its client
 * certificate, checked again when asked (the handshake did not check it).
 * Its TLS 1.3 tickets are stateful (a session id, not the encrypted
 * session): OpenSSL re-decodes the client certificate out of every
 * stateless ticket it makes, which was a third of a handshake's CPU. */
TT_CASE(required_mode_resumes_with_its_certificate)
{
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_REQUIRED);
    char cert[300], key[300], out[4096];
    snprintf(cert, sizeof cert, "%s/client-chain.pem", g_dir);
    snprintf(key, sizeof key, "%s/client.key", g_dir);
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_2_VERSION : TLS1_3_VERSION;
        tt_context("%s", v ? "TLS 1.2" : "TLS 1.3");
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        ASSERT_TRUE(ctx != NULL);
        SSL_CTX_set_min_proto_version(ctx, version);
        SSL_CTX_set_max_proto_version(ctx, version);
        ASSERT_TRUE(SSL_CTX_use_certificate_chain_file(ctx, cert) == 1);
        ASSERT_TRUE(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, keep_new_session);
        SSL_SESSION *sess = NULL;
        ASSERT_EQ_INT(tls_whoami(ctx, &sess, out, sizeof out), 0);
        ASSERT_TRUE(strstr(out, "flags=0 subject=O=tacio development,CN=tacio client") != NULL);
        ASSERT_TRUE(sess != NULL && SSL_SESSION_is_resumable(sess));
        if (version == TLS1_3_VERSION) {
            const unsigned char *tick = NULL;
            size_t tick_len = 0;
            SSL_SESSION_get0_ticket(sess, &tick, &tick_len);
            tt_note("TLS 1.3 ticket: %zu bytes", tick_len);
            ASSERT_TRUE(tick_len > 0 && tick_len <= 64);
        }
        unsigned long verified0 = atomic_load(&tacio__pki_verify_calls);
        ASSERT_EQ_INT(tls_whoami(ctx, &sess, out, sizeof out), 1);
        ASSERT_TRUE(strstr(out, "flags=0 subject=O=tacio development,CN=tacio client") != NULL);
        ASSERT_EQ_U64(atomic_load(&tacio__pki_verify_calls), verified0 + 1);
        SSL_SESSION_free(sess);
        SSL_CTX_free(ctx);
    }
    tt_context("%s", "");
    server_stop();
    pki_cleanup();
}

TT_CASE(s_client_pha_and_refusal)
{
    need_tool("openssl");
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_ON_DEMAND);
    char out[8192];
    const char *req = "printf 'GET /whoami HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n'";
    ASSERT_EQ_INT(run(out, sizeof out,
                      "(%s; sleep 3) | timeout 20 openssl s_client -connect 127.0.0.1:%u -quiet "
                      "-enable_pha -cert %s/client.pem -key %s/client.key -CAfile %s/ca.pem 2>/dev/null",
                      req, g_port, g_dir, g_dir, g_dir), 0);
    ASSERT_TRUE(strstr(out, "HTTP/1.1 200") && strstr(out, "CN=tacio client"));
    /* No -enable_pha: the client cannot be asked; 403 at once, no hang. */
    uint64_t t0 = tt_now_ns();
    run(out, sizeof out,
        "(%s; sleep 3) | timeout 20 openssl s_client -connect 127.0.0.1:%u -quiet "
        "-cert %s/client.pem -key %s/client.key -CAfile %s/ca.pem 2>/dev/null",
        req, g_port, g_dir, g_dir, g_dir);
    ASSERT_TRUE(strstr(out, "HTTP/1.1 403") && strstr(out, "TACIO_NOT_SUPPORTED"));
    ASSERT_LE_INT((tt_now_ns() - t0) / 1000000u, 10000);
    server_stop();
    pki_cleanup();
}

/* A TLS 1.2 client that never answers the renegotiation the server starts
 * for an on-demand certificate (it does not read while it waits): the
 * certificate request completes once with TACIO_IO_TIMEOUT after
 * request_timeout_ms, the application answers, and the client, reading at
 * last, gets that answer (it refuses the stale renegotiation, which the
 * server by then no longer waits for). */
TT_CASE(tls12_client_ignoring_renegotiation_times_out)
{
    pki_setup();
    tacio_http_queue_options_t o = {.request_timeout_ms = 600, .idle_timeout_ms = 10000};
    server_start_ex(&o, "https", TACIO_HTTP_CLIENT_CERT_ON_DEMAND, 4);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ASSERT_TRUE(ctx != NULL);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/client.pem", g_dir);
    snprintf(key, sizeof key, "%s/client.key", g_dir);
    ASSERT_TRUE(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) == 1);
    ASSERT_TRUE(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1);
    int fd = connect_port(g_port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ASSERT_TRUE(SSL_connect(ssl) == 1);
    ASSERT_TRUE(SSL_version(ssl) == TLS1_2_VERSION);
    const char req[] = "GET /whoami HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    uint64_t t0 = tt_now_ns();
    ASSERT_TRUE(SSL_write(ssl, req, (int)sizeof req - 1) == (int)sizeof req - 1);
    /* Not reading: the HelloRequest waits unread in the socket. */
    for (int i = 0; i < 100 && !log_has("no answer to the certificate request", "127.0.0.1:"); i++)
        tt_sleep_ms(50);
    uint64_t ms = (tt_now_ns() - t0) / 1000000u;
    ASSERT_TRUE(log_has("no answer to the certificate request", "127.0.0.1:"));
    ASSERT_GE_INT(ms, 550);
    char out[4096];
    size_t got = 0;
    for (;;) {
        int r = SSL_read(ssl, out + got, (int)(sizeof out - 1 - got));
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = 0;
    tt_note("certificate request timed out after %llu ms; client read %zu bytes",
            (unsigned long long)ms, got);
    ASSERT_TRUE(strstr(out, "HTTP/1.1 403") != NULL);
    ASSERT_TRUE(strstr(out, "status=TACIO_IO_TIMEOUT") != NULL);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    server_stop();
    pki_cleanup();
}

/* On io_uring a completion's task work runs on the thread that issued the
 * operation, and it interrupts that thread's socket calls that have a
 * timeout (docs/design.md): this thread started the listener's accepts. */
static bool ssl_interrupted(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && errno == EINTR;
}

/* A TLS client that reads its whole response, sends close_notify and
 * closes, while the server has not yet seen its last send complete: the
 * response went out, so the send completes SUCCESS, not aborted. Held-back
 * completions (fault injection: delay) make the order happen: the send's
 * completion waits while the close_notify's receive is handed out. */
TT_CASE(response_read_then_closed_is_not_aborted)
{
    pki_setup();
    char spec[96];
    snprintf(spec, sizeof spec, "seed=%llu,delay=0.5:30ms", (unsigned long long)tt_seed());
    ASSERT_OK(tacio_faults_configure(spec));
    server_start("https", TACIO_HTTP_CLIENT_CERT_NONE);
    atomic_store(&g_send_failed, 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ASSERT_TRUE(ctx != NULL);
    enum { CONNS = 24 };
    for (int i = 0; i < CONNS; i++) {
        int fd = connect_port(g_port);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        int r;
        while ((r = SSL_connect(ssl)) != 1 && ssl_interrupted(ssl, r)) {
        }
        ASSERT_TRUE(r == 1);
        char req[64];
        int n = snprintf(req, sizeof req, "GET /c%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        ASSERT_TRUE(SSL_write(ssl, req, n) == n);
        /* Read until the whole body (the path, echoed) is in. */
        char out[4096], want[16];
        int wn = snprintf(want, sizeof want, "/c%d", i);
        size_t got = 0;
        for (;;) {
            while ((r = SSL_read(ssl, out + got, (int)(sizeof out - 1 - got))) <= 0 &&
                   ssl_interrupted(ssl, r)) {
            }
            if (r <= 0)
                TT_FAIL("connection %d: SSL_read: error %d (errno %d) after %zu bytes; log: %s",
                        i, SSL_get_error(ssl, r), errno, got, g_log);
            got += (size_t)r;
            out[got] = 0;
            char *body = strstr(out, "\r\n\r\n");
            if (body && strlen(body + 4) >= (size_t)wn)
                break;
        }
        ASSERT_TRUE(strstr(out, "HTTP/1.1 200") == out);
        ASSERT_TRUE(strstr(out, want) != NULL);
        SSL_shutdown(ssl);
        SSL_free(ssl);
        close(fd);
    }
    SSL_CTX_free(ctx);
    /* The last connections' completions may still be held: let them out. */
    for (int i = 0; i < 100 && atomic_load(&g_started_pending) != atomic_load(&g_callbacks); i++)
        tt_sleep_ms(20);
    server_stop();
    ASSERT_OK(tacio_faults_configure(""));
    tt_note("%d connections, %llu response sends failed", CONNS,
            (unsigned long long)atomic_load(&g_send_failed));
    ASSERT_EQ_U64(atomic_load(&g_send_failed), 0);
    pki_cleanup();
}

/* A second pool of one running thread, for a second queue. */
static tacio_pool_t *second_pool(unsigned max_threads)
{
    tacio_pool_t *pool;
    tacio_pool_options_t po = {.min_threads = 1, .max_threads = max_threads, .concurrency = 1,
                               .backend = tt_backend()};
    ASSERT_OK(tacio_pool_create(&pool, &po));
    return pool;
}

/* Wait up to 5 s for q to have accepted n connections; its stats in *s. */
static void wait_accepted(tacio_http_queue_t *q, uint64_t n, tacio_http_stats_t *s)
{
    for (int i = 0; i < 500; i++) {
        ASSERT_OK(tacio_http_queue_stats(q, s));
        if (s->accepted >= n)
            return;
        tt_sleep_ms(10);
    }
}

/* reuse_port: two queues, each on its own pool, listen on one port and the
 * kernel spreads connections between them (tacio-httpd --shards). Without
 * the option the second bind fails. */
TT_CASE(reuse_port_shares_one_port)
{
    tacio_http_queue_options_t o = {.reuse_port = true};
    server_start_ex(&o, "http", 0, 4);
    tacio_pool_t *pool2 = second_pool(2);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", g_port);
    tacio_http_queue_options_t plain = {.log = test_log};
    tacio_http_queue_t *q2;
    ASSERT_OK(tacio_http_queue_create(pool2, &plain, on_done, NULL, &q2));
    tacio_http_tls_t none = {0};
    ASSERT_TRUE(tacio_http_queue_add_url(q2, url, &none, NULL) != TACIO_SUCCESS);
    ASSERT_OK(tacio_http_queue_close(q2));
    o.log = test_log;
    ASSERT_OK(tacio_http_queue_create(pool2, &o, on_done, NULL, &q2));
    ASSERT_OK(tacio_http_queue_add_url(q2, url, &none, NULL));
    enum { N = 64 };
    for (int i = 0; i < N; i++)
        close(connect_port(g_port));
    tacio_http_stats_t a, b;
    for (int i = 0; i < 200; i++) {
        tacio_http_queue_stats(g_q, &a);
        tacio_http_queue_stats(q2, &b);
        if (a.accepted + b.accepted == N)
            break;
        tt_sleep_ms(10);
    }
    tt_note("%d connections: %llu and %llu", N, (unsigned long long)a.accepted,
            (unsigned long long)b.accepted);
    ASSERT_EQ_U64(a.accepted + b.accepted, N);
    /* Random hashing of 64 source ports: one side empty has odds 2^-63. */
    ASSERT_TRUE(a.accepted > 0 && b.accepted > 0);
    ASSERT_OK(tacio_http_queue_close(q2));
    ASSERT_OK(tacio_pool_close(pool2));
    server_stop();
}

/* Shared listeners: a queue whose only thread is in a callback takes no new
 * connection (the free queue takes them all); once the free queue stops
 * accepting, the other takes them, on the same socket. */
static atomic_int g_hold_release, g_hold_running;
static void hold_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    atomic_store(&g_hold_running, 1);
    while (!atomic_load(&g_hold_release))
        tt_sleep_ms(1);
}

TT_CASE(shared_listeners_go_to_the_free_queue)
{
    tacio_http_queue_options_t o = {.share_listeners = true};
    server_start_ex(&o, "http", 0, 4);
    tacio_pool_t *pool2 = second_pool(1); /* never grows past its held thread */
    tacio_http_queue_options_t plain = {.log = test_log};
    tacio_http_queue_t *q2;
    ASSERT_OK(tacio_http_queue_create(pool2, &plain, on_done, NULL, &q2));
    ASSERT_EQ_STATUS(tacio_http_queue_share_listeners(q2, g_q), TACIO_INVALID_PARAMETER);
    ASSERT_OK(tacio_http_queue_close(q2));
    o.log = test_log;
    ASSERT_OK(tacio_http_queue_create(pool2, &o, on_done, NULL, &q2));
    ASSERT_EQ_STATUS(tacio_http_queue_share_listeners(q2, q2), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_http_queue_share_listeners(NULL, g_q), TACIO_INVALID_PARAMETER);
    ASSERT_OK(tacio_http_queue_share_listeners(q2, g_q));

    atomic_store(&g_hold_release, 0);
    atomic_store(&g_hold_running, 0);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool2, hold_work, NULL, NULL, &w));
    ASSERT_OK(tacio_pool_work_submit(w));
    while (!atomic_load(&g_hold_running))
        tt_sleep_ms(1);
    enum { N = 24 };
    char body[256];
    for (int i = 0; i < N; i++) {
        int fd = connect_port(g_port);
        if (i % 3 == 0) { /* some are served, end to end */
            const char *req = "GET /shared HTTP/1.1\r\nHost: x\r\n\r\n";
            send_all(fd, req, strlen(req));
            ASSERT_EQ_INT(read_response(fd, body, sizeof body), 200);
            ASSERT_TRUE(!strcmp(body, "/shared"));
        }
        close(fd);
    }
    tacio_http_stats_t a, b;
    wait_accepted(g_q, N, &a);
    ASSERT_OK(tacio_http_queue_stats(q2, &b));
    tt_note("q2's thread busy: %llu and %llu of %d connections", (unsigned long long)a.accepted,
            (unsigned long long)b.accepted, N);
    ASSERT_EQ_U64(a.accepted, N);
    ASSERT_EQ_U64(b.accepted, 0);
    atomic_store(&g_hold_release, 1);
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));

    /* g_q stops accepting; its descriptor closes, the socket still listens. */
    ASSERT_OK(tacio_http_queue_drain(g_q));
    for (int i = 0; i < N; i++)
        close(connect_port(g_port));
    wait_accepted(q2, N, &b);
    ASSERT_OK(tacio_http_queue_stats(g_q, &a));
    tt_note("after draining the first: %llu and %llu", (unsigned long long)a.accepted,
            (unsigned long long)b.accepted);
    ASSERT_EQ_U64(b.accepted, N);
    ASSERT_EQ_U64(a.accepted, N);
    ASSERT_OK(tacio_http_queue_close(q2));
    ASSERT_OK(tacio_pool_close(pool2));
    server_stop();
}

static _Atomic int g_holds_running, g_holds_release;
static void hold_all(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&g_holds_running, 1);
    while (!atomic_load(&g_holds_release))
        tt_sleep_ms(1);
}

/* A stream of new connections must not starve an open one: with every
 * pool thread held, 300 connections arrive and then a request on an open
 * connection. Once released, the queue may take new connections only a few
 * at a time between other completions, so the request is answered long
 * before the 300 are all accepted (an accept that succeeded at once used
 * to be followed by the next, in a loop, until the backlog was empty). */
TT_CASE(new_connections_do_not_starve_open_ones)
{
    server_start_ex(NULL, "http", 0, 4);
    int a = connect_port(g_port);
    tacio_http_stats_t st;
    wait_accepted(g_q, 1, &st);
    ASSERT_EQ_U64(st.accepted, 1);
    atomic_store(&g_holds_running, 0);
    atomic_store(&g_holds_release, 0);
    /* The pool's two threads (server_start_ex), one after the other: a
     * thread takes what waits in one batch, and would hold both itself. */
    for (int i = 1; i <= 2; i++) {
        ASSERT_OK(tacio_pool_submit(g_pool, hold_all, NULL));
        while (atomic_load(&g_holds_running) < i)
            tt_sleep_ms(1);
    }
    enum { N = 300 };
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_port(g_port);
    tt_sleep_ms(50); /* the accepts the kernel can finish, finished */
    const char *req = "GET /accepted HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(a, req, strlen(req));
    tt_sleep_ms(50);
    atomic_store(&g_holds_release, 1);
    char body[256];
    ASSERT_EQ_INT(read_response(a, body, sizeof body), 200);
    unsigned long long at = strtoull(body, NULL, 10);
    tt_note("the open connection's request ran after %llu of %d accepts", at, N + 1);
    ASSERT_TRUE(at >= 1 && at < N / 2);
    wait_accepted(g_q, N + 1, &st);
    ASSERT_EQ_U64(st.accepted, N + 1);
    close(a);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    server_stop();
}

TT_CASE(tls_many_parallel_clients)
{
    need_tool("curl");
    pki_setup();
    server_start_ex(NULL, "https", TACIO_HTTP_CLIENT_CERT_NONE, 8);
    static char out[1 << 16];
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--no-progress-meter -Z --parallel-max 200 -o /dev/null -w '%%{http_code}\\n' "
                           "'https://127.0.0.1:%u/p[1-800]'",
                      g_dir, g_port), 0);
    int ok = 0;
    for (char *p = out; (p = strstr(p, "200\n")); p += 4)
        ok++;
    ASSERT_EQ_INT(ok, 800);
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    tt_note("800 requests over %llu TLS connections", (unsigned long long)s.accepted);
    ASSERT_GE_INT(s.accepted, 100);
    ASSERT_EQ_U64(s.handshakes, s.accepted);
    server_stop();
    pki_cleanup();
}

TT_CASE(tls_garbage_logged_not_crashed)
{
    pki_setup();
    server_start("https", TACIO_HTTP_CLIENT_CERT_NONE);
    int fd = connect_port(g_port);
    send_all(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    ASSERT_TRUE(tt_poll(fd, POLLIN, 5000) != 0);
    char buf[256];
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);
    tt_sleep_ms(100);
    ASSERT_TRUE(log_has("handshake failed", "127.0.0.1:"));
    tacio_http_stats_t s;
    tacio_http_queue_stats(g_q, &s);
    ASSERT_EQ_U64(s.handshake_errors, 1);
    server_stop();
    pki_cleanup();
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(request_overflow_sync_then_by_id, 30),
    TT_ENTRY(request_overflow_async_once, 30),
    TT_ENTRY(pipelined_in_order, 30),
    TT_ENTRY(chunked_body_in_and_out, 30),
    TT_ENTRY(malformed_and_oversize_rejected, 30),
    TT_ENTRY(chunked_body_over_limit_413, 30),
    TT_ENTRY(slowloris_dropped, 30),
    TT_ENTRY(idle_keepalive_dropped, 30),
    TT_ENTRY(hundreds_of_keepalive_connections, 60),
    TT_ENTRY(max_connections_refused, 30),
    TT_ENTRY(tls12_client_ignoring_renegotiation_times_out, 60),
    TT_ENTRY(response_read_then_closed_is_not_aborted, 60),
    TT_ENTRY(reuse_port_shares_one_port, 30),
    TT_ENTRY(shared_listeners_go_to_the_free_queue, 60),
    TT_ENTRY(close_cancels_pending_once, 30),
    TT_ENTRY(ipv6_loopback_and_bad_urls, 30),
    TT_ENTRY(curl_tls13_and_tls12_on_demand, 90),
    TT_ENTRY(big_chain_overflows_then_fits, 90),
    TT_ENTRY(bad_client_certs_get_their_verdict, 90),
    TT_ENTRY(required_mode, 90),
    TT_ENTRY(required_mode_resumes_with_its_certificate, 60),
    TT_ENTRY(s_client_pha_and_refusal, 90),
    TT_ENTRY(tls_many_parallel_clients, 120),
    TT_ENTRY(tls_garbage_logged_not_crashed, 60),
    TT_ENTRY(new_connections_do_not_starve_open_ones, 60),
};
TT_MAIN()
