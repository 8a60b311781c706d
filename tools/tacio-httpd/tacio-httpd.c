/* tacio-httpd - an HTTPS server on the request queue (include/tacio/http.h).
 *
 *   tacio-httpd [--listen URL]... [--cert F --key F] [--ca F] [--pki-dir D]
 *               [--pki-key ec|rsa]  (key type of a development set created now)
 *               [--client-cert none|required|on-demand] [--root DIR]
 *               [--threads N] [--shards N]  (default: one shard per thread)
 *               [--shard-accept idle|hash|cpu]  (default: cpu with one shard
 *               per CPU this process may use, else idle)
 *               [--max-head N] [--max-body N] [--max-target N]
 *               [--max-conns N] [--request-timeout-ms N] [--idle-timeout-ms N]
 *               [--handshake-timeout-ms N] [--log clf|json|none]
 *               [--shutdown-deadline-ms N] [--port-file F]
 *
 * With no arguments: https://127.0.0.1:8443/, client certificates on demand,
 * and a development CA, server and client certificate created on first run
 * in --pki-dir (default $XDG_STATE_HOME/tacio-httpd or
 * ~/.local/state/tacio-httpd); it prints the directory and the curl commands.
 *
 * Routes: /healthz, /whoami (client certificate on demand: JSON, or 403 with
 * why), /metrics (Prometheus text), POST /echo (the body back), and static
 * files from --root. One log line per request. SIGTERM/SIGINT: stop
 * accepting, let requests in flight finish until the deadline, then close.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/opensslv.h>
#include <openssl/x509.h>

#include <tacio/http.h>
#include <tacio/tacio.h>

#include "http/pki.h"

enum kind { K_RECV, K_CERT, K_BODY, K_SEND };

struct task;

/* A receiver: one receive-request record always out. */
struct rx {
    enum kind kind;
    tacio_http_queue_t *q;
    tacio_http_op_t op;
    size_t cap;
    tacio_http_request_t *buf;
};

/* One request being answered. */
struct task {
    tacio_http_op_t op;
    enum kind kind;
    tacio_http_queue_t *q; /* the shard the request came in on */
    uint64_t id;
    char method[16];
    char target[512];
    char peer[64];
    char version[12];
    int status;
    uint64_t bytes;
    uint64_t t0;
    void *cert;
    size_t cert_cap;
    char *body;
    size_t body_len, body_cap;
    char *resp;            /* response body we built (freed at the end) */
};

/* A shard: a queue on its own pool. With several, they share each listening
 * socket and the shard that is free takes a new connection (or, with
 * --shard-accept hash, each binds its own with SO_REUSEPORT and the kernel
 * picks), so a connection's completions are issued and reaped by the same
 * thread, as with nginx's one worker per core (docs/http.md, "Shards"). */
enum { MAX_SHARDS = 64, N_RX = 32 };
struct shard {
    tacio_pool_t *pool;
    tacio_http_queue_t *q;
    struct rx rx[N_RX];
};
static struct shard *shards;
static unsigned n_shards;
static const char *root;
static int log_mode = 1; /* 0 none, 1 clf, 2 json */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t by_status[1000];
static _Atomic uint64_t cert_outcome[6]; /* ok, overflow_retried, none, unsupported, timeout, error */
static const char *const cert_outcome_name[6] = {"success", "overflow_retried", "no_certificate",
                                                 "unsupported", "timeout", "error"};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* lead: what comes before the value, e.g. ",\"issuer\":" */
static void json_field(FILE *f, const char *lead, const char *s)
{
    fputs(lead, f);
    json_str(f, s);
}

static void task_end(struct task *t)
{
    if (t->status >= 0 && t->status < 1000)
        atomic_fetch_add_explicit(&by_status[t->status], 1, memory_order_relaxed);
    if (log_mode) {
        pthread_mutex_lock(&log_mu);
        if (log_mode == 1) {
            char date[64];
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
            fprintf(stdout, "%s - - [%s] \"%s %s %s\" %d %llu\n", t->peer, date, t->method,
                    t->target, t->version, t->status, (unsigned long long)t->bytes);
        } else {
            json_field(stdout, "{\"peer\":", t->peer);
            json_field(stdout, ",\"method\":", t->method);
            json_field(stdout, ",\"target\":", t->target);
            fprintf(stdout, ",\"status\":%d,\"bytes\":%llu,\"us\":%llu}\n", t->status,
                    (unsigned long long)t->bytes, (unsigned long long)(now_us() - t->t0));
        }
        fflush(stdout);
        pthread_mutex_unlock(&log_mu);
    }
    free(t->cert);
    free(t->body);
    free(t->resp);
    free(t);
}

/* Send a response; the task ends when it is out. */
static void respond(struct task *t, int status, const char *ctype, const void *body, size_t len,
                    int fd, uint64_t flen)
{
    tacio_http_header_t h[2] = {{"Content-Type", 12, ctype, strlen(ctype)},
                                {"Server", 6, "tacio-httpd", 11}};
    tacio_http_response_t r = {.status = status, .headers = h, .header_count = 2,
                               .body = body, .body_len = len, .file_fd = fd, .file_len = flen};
    t->status = status;
    t->bytes = body ? len : flen;
    t->kind = K_SEND;
    tacio_status_t st = tacio_http_send_response(t->q, t->id, &t->op, &r);
    if (fd >= 0)
        close(fd); /* read during the call */
    if (st != TACIO_PENDING)
        task_end(t);
}

static void respond_text(struct task *t, int status, const char *ctype, char *text)
{
    t->resp = text;
    respond(t, status, ctype, text, strlen(text), -1, 0);
}

static char *printf_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *printf_alloc(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static void verdict_str(unsigned flags, char *buf, size_t size)
{
    static const char *names[] = {"expired", "not_yet_valid", "untrusted", "bad_signature",
                                  "revocation_unknown", "other"};
    if (!flags) {
        snprintf(buf, size, "ok");
        return;
    }
    buf[0] = '\0';
    for (int i = 0; i < 6; i++)
        if (flags & (1u << i)) {
            if (buf[0])
                strncat(buf, ",", size - strlen(buf) - 1);
            strncat(buf, names[i], size - strlen(buf) - 1);
        }
}

static void whoami_answer(struct task *t)
{
    const tacio_http_client_cert_t *c = t->cert;
    char verdict[128];
    verdict_str(c->verify_flags, verdict, sizeof verdict);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    json_field(f, "{\"subject\":", c->subject);
    json_field(f, ",\"issuer\":", c->issuer);
    json_field(f, ",\"serial\":", c->serial_hex);
    json_field(f, ",\"sha256\":", c->sha256_hex);
    json_field(f, ",\"verdict\":", verdict);
    json_field(f, ",\"x509_error\":",
               c->verify_flags ? X509_verify_cert_error_string(c->x509_error) : "ok");
    fprintf(f, ",\"chain_count\":%zu,\"chain_der_bytes\":%zu}\n", c->chain_count, c->der_len);
    fclose(f);
    respond_text(t, c->verify_flags ? 403 : 200, "application/json", body);
}

static void whoami_refuse(struct task *t, const char *why)
{
    respond_text(t, 403, "application/json",
                 printf_alloc("{\"error\":\"%s\"}\n", why));
}

/* A certificate result, synchronous or from the callback. */
static void cert_result(struct task *t, tacio_status_t st, uint64_t bytes, int retried)
{
    if (st == TACIO_BUFFER_OVERFLOW && !retried) {
        /* The seed's case: the first 1500 bytes were not enough. Over, no
         * completion follows; grow and ask again. */
        free(t->cert);
        t->cert_cap = (size_t)bytes;
        t->cert = aligned_alloc(16, (t->cert_cap + 15) & ~(size_t)15);
        t->kind = K_CERT;
        st = tacio_http_receive_client_cert(t->q, t->id, &t->op, t->cert, t->cert_cap);
        if (st == TACIO_PENDING)
            return;
        atomic_fetch_add_explicit(&cert_outcome[1], 1, memory_order_relaxed);
        cert_result(t, st, t->op.bytes, 1);
        return;
    }
    switch (st) {
    case TACIO_SUCCESS:
        if (!retried)
            atomic_fetch_add_explicit(&cert_outcome[0], 1, memory_order_relaxed);
        whoami_answer(t);
        return;
    case TACIO_NOT_FOUND:
        atomic_fetch_add_explicit(&cert_outcome[2], 1, memory_order_relaxed);
        whoami_refuse(t, "no client certificate");
        return;
    case TACIO_NOT_SUPPORTED:
        atomic_fetch_add_explicit(&cert_outcome[3], 1, memory_order_relaxed);
        whoami_refuse(t, "client cannot be asked for a certificate (no post-handshake auth or renegotiation)");
        return;
    case TACIO_IO_TIMEOUT:
        atomic_fetch_add_explicit(&cert_outcome[4], 1, memory_order_relaxed);
        whoami_refuse(t, "client did not answer the certificate request");
        return;
    default:
        atomic_fetch_add_explicit(&cert_outcome[5], 1, memory_order_relaxed);
        if (st == TACIO_CANCELLED || st == TACIO_CONNECTION_ABORTED) {
            t->status = 499;
            task_end(t);
            return;
        }
        whoami_refuse(t, tacio_status_name(st));
    }
}

/* The counters of every shard, added up: the struct holds uint64_t
 * counters only, so it is summed as an array of them. */
static void sum_stats(tacio_http_stats_t *out)
{
    enum { N = sizeof(tacio_http_stats_t) / sizeof(uint64_t) };
    _Static_assert(sizeof(tacio_http_stats_t) == N * sizeof(uint64_t), "counters only");
    uint64_t acc[N] = {0}, v[N];
    for (unsigned i = 0; i < n_shards; i++) {
        tacio_http_stats_t s;
        if (tacio_http_queue_stats(shards[i].q, &s) != TACIO_SUCCESS)
            continue;
        memcpy(v, &s, sizeof v);
        for (size_t k = 0; k < N; k++)
            acc[k] += v[k];
    }
    memcpy(out, acc, sizeof acc);
}

static void metrics(struct task *t)
{
    tacio_http_stats_t s;
    sum_stats(&s);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    fprintf(f, "# TYPE tacio_http_connections_open gauge\ntacio_http_connections_open %llu\n",
            (unsigned long long)s.open);
    fprintf(f, "# TYPE tacio_http_connections_total counter\n"
               "tacio_http_connections_total{result=\"accepted\"} %llu\n"
               "tacio_http_connections_total{result=\"refused\"} %llu\n"
               "tacio_http_connections_total{result=\"timed_out\"} %llu\n",
            (unsigned long long)s.accepted, (unsigned long long)s.refused,
            (unsigned long long)s.timeouts);
    fprintf(f, "# TYPE tacio_http_handshakes_total counter\n"
               "tacio_http_handshakes_total{result=\"ok\"} %llu\n"
               "tacio_http_handshakes_total{result=\"error\"} %llu\n",
            (unsigned long long)s.handshakes, (unsigned long long)s.handshake_errors);
    fprintf(f, "# TYPE tacio_http_requests_total counter\n");
    for (int i = 0; i < 1000; i++) {
        uint64_t v = atomic_load_explicit(&by_status[i], memory_order_relaxed);
        if (v)
            fprintf(f, "tacio_http_requests_total{status=\"%d\"} %llu\n", i, (unsigned long long)v);
    }
    fprintf(f, "tacio_http_requests_total{status=\"rejected_by_library\"} %llu\n",
            (unsigned long long)s.rejected);
    fprintf(f, "# TYPE tacio_http_client_cert_requests_total counter\n");
    for (int i = 0; i < 6; i++)
        fprintf(f, "tacio_http_client_cert_requests_total{outcome=\"%s\"} %llu\n",
                cert_outcome_name[i],
                (unsigned long long)atomic_load_explicit(&cert_outcome[i], memory_order_relaxed));
    fprintf(f, "# TYPE tacio_http_completions_total counter\n"
               "tacio_http_completions_total{status=\"success\"} %llu\n"
               "tacio_http_completions_total{status=\"buffer_overflow\"} %llu\n"
               "tacio_http_completions_total{status=\"cancelled\"} %llu\n"
               "tacio_http_completions_total{status=\"error\"} %llu\n"
               "# TYPE tacio_http_sync_results_total counter\ntacio_http_sync_results_total %llu\n",
            (unsigned long long)s.completions_success, (unsigned long long)s.completions_overflow,
            (unsigned long long)s.completions_cancelled, (unsigned long long)s.completions_error,
            (unsigned long long)s.sync_results);
    fprintf(f, "# TYPE tacio_http_client_cert_verdicts_cached_total counter\n"
               "tacio_http_client_cert_verdicts_cached_total %llu\n",
            (unsigned long long)s.cert_verdicts_cached);
    fclose(f);
    respond_text(t, 200, "text/plain; version=0.0.4", body);
}

static const char *ctype_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html") || !strcmp(dot, ".htm"))
        return "text/html";
    if (!strcmp(dot, ".txt"))
        return "text/plain";
    if (!strcmp(dot, ".json"))
        return "application/json";
    if (!strcmp(dot, ".css"))
        return "text/css";
    if (!strcmp(dot, ".js"))
        return "text/javascript";
    return "application/octet-stream";
}

static void static_file(struct task *t, const char *path)
{
    if (!root || strstr(path, "..")) {
        respond_text(t, 404, "text/plain", strdup("not found\n"));
        return;
    }
    char full[4096];
    snprintf(full, sizeof full, "%s%s%s", root, path,
             path[strlen(path) - 1] == '/' ? "index.html" : "");
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        respond_text(t, 404, "text/plain", strdup("not found\n"));
        return;
    }
    if (sb.st_size == 0) {
        close(fd);
        respond(t, 200, ctype_of(full), "", 0, -1, 0);
        return;
    }
    respond(t, 200, ctype_of(full), NULL, 0, fd, (uint64_t)sb.st_size);
}

/* Read the body of POST /echo, then send it back. */
static void echo_more(struct task *t, tacio_status_t st, uint64_t bytes)
{
    for (;;) {
        if (st == TACIO_SUCCESS) {
            t->body_len += bytes;
        } else if (st == TACIO_END_OF_FILE) {
            respond(t, 200, "application/octet-stream", t->body ? t->body : "", t->body_len, -1, 0);
            return;
        } else if (st == TACIO_FILE_TOO_LARGE) {
            t->status = 413; /* the library answered */
            task_end(t);
            return;
        } else if (st != TACIO_PENDING) {
            t->status = 499;
            task_end(t);
            return;
        }
        if (t->body_cap - t->body_len < 16384) {
            t->body_cap = t->body_cap ? t->body_cap * 2 : 65536;
            t->body = realloc(t->body, t->body_cap);
        }
        t->kind = K_BODY;
        st = tacio_http_receive_body(t->q, t->id, &t->op, t->body + t->body_len,
                                     t->body_cap - t->body_len);
        if (st == TACIO_PENDING)
            return;
        bytes = t->op.bytes;
    }
}

static void handle(tacio_http_queue_t *q, const tacio_http_request_t *r)
{
    struct task *t = calloc(1, sizeof *t);
    t->op.user = &t->kind;
    t->q = q;
    t->id = r->request_id;
    t->t0 = now_us();
    snprintf(t->method, sizeof t->method, "%s", r->method);
    snprintf(t->target, sizeof t->target, "%s", r->target);
    snprintf(t->version, sizeof t->version, "HTTP/%u.%u", r->version_major, r->version_minor);
    if (tacio_http_peer(q, t->id, t->peer, sizeof t->peer) != TACIO_SUCCESS)
        snprintf(t->peer, sizeof t->peer, "-");
    const char *path = r->path;
    if (!strcmp(path, "/healthz")) {
        respond_text(t, 200, "text/plain", strdup("ok\n"));
    } else if (!strcmp(path, "/metrics")) {
        metrics(t);
    } else if (!strcmp(path, "/whoami")) {
        t->cert_cap = TACIO_HTTP_CERT_FIRST_BUFFER;
        t->cert = aligned_alloc(16, t->cert_cap + 4); /* 1504: a multiple of 16 */
        t->kind = K_CERT;
        tacio_status_t st = tacio_http_receive_client_cert(t->q, t->id, &t->op, t->cert, t->cert_cap);
        if (st != TACIO_PENDING)
            cert_result(t, st, t->op.bytes, 0);
    } else if (!strcmp(path, "/echo") && !strcmp(r->method, "POST")) {
        echo_more(t, TACIO_PENDING, 0);
    } else if (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD")) {
        static_file(t, path);
    } else {
        respond_text(t, 405, "text/plain", strdup("method not allowed\n"));
    }
}

static void rx_next(struct rx *x)
{
    for (;;) {
        x->kind = K_RECV;
        tacio_status_t st = tacio_http_receive_request(x->q, 0, &x->op, x->buf, x->cap);
        if (st == TACIO_PENDING)
            return;
        if (st == TACIO_BUFFER_OVERFLOW) {
            /* Grow and receive that same request by its id: synchronous. */
            uint64_t id = x->op.request_id;
            free(x->buf);
            x->cap = (size_t)x->op.bytes;
            x->buf = aligned_alloc(16, (x->cap + 15) & ~(size_t)15);
            st = tacio_http_receive_request(x->q, id, &x->op, x->buf, x->cap);
        }
        if (st != TACIO_SUCCESS)
            return; /* closing */
        handle(x->q, x->buf);
    }
}

static void on_done(tacio_http_queue_t *q, void *ctx, tacio_http_op_t *op, tacio_status_t st,
                    uint64_t bytes)
{
    (void)ctx;
    enum kind *k = op->user;
    if (*k == K_RECV) {
        struct rx *x = tacio_container_of(op, struct rx, op);
        if (st == TACIO_BUFFER_OVERFLOW) {
            uint64_t id = op->request_id;
            free(x->buf);
            x->cap = (size_t)bytes;
            x->buf = aligned_alloc(16, (x->cap + 15) & ~(size_t)15);
            st = tacio_http_receive_request(q, id, &x->op, x->buf, x->cap);
        }
        if (st == TACIO_SUCCESS) {
            handle(q, x->buf);
            rx_next(x);
        }
        return;
    }
    struct task *t = tacio_container_of(op, struct task, op);
    switch (t->kind) {
    case K_CERT:
        cert_result(t, st, bytes, t->cert_cap > TACIO_HTTP_CERT_FIRST_BUFFER);
        break;
    case K_BODY:
        echo_more(t, st, bytes);
        break;
    case K_SEND:
        if (st != TACIO_SUCCESS)
            t->status = 499;
        task_end(t);
        break;
    default:
        break;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tacio-httpd [--listen URL]... [--cert F --key F] [--ca F] [--pki-dir D] [--pki-key ec|rsa]\n"
            "  [--client-cert none|required|on-demand] [--root DIR] [--threads N] [--shards N]\n"
            "  [--shard-accept idle|hash|cpu]\n"
            "  [--max-head N] [--max-body N] [--max-target N] [--max-conns N]\n"
            "  [--request-timeout-ms N] [--idle-timeout-ms N] [--handshake-timeout-ms N]\n"
            "  [--log clf|json|none] [--shutdown-deadline-ms N] [--port-file F]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *urls[16];
    int n_urls = 0;
    const char *cert = NULL, *key = NULL, *ca = NULL, *pki_dir = NULL, *port_file = NULL;
    tacio_http_client_cert_mode_t mode = TACIO_HTTP_CLIENT_CERT_ON_DEMAND;
    unsigned threads = 2, deadline_ms = 5000, want_shards = 0;
    bool accept_idle = true, accept_cpu = false, accept_given = false;
    tacio__pki_key_type_t key_type = TACIO__PKI_EC_P256;
    tacio_http_queue_options_t qo = {.log = log_line};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
        if (ARG("--listen")) {
            if (n_urls < 16)
                urls[n_urls++] = v;
        } else if (ARG("--cert")) cert = v;
        else if (ARG("--key")) key = v;
        else if (ARG("--ca")) ca = v;
        else if (ARG("--pki-dir")) pki_dir = v;
        else if (ARG("--pki-key")) {
            if (!strcmp(v, "rsa")) key_type = TACIO__PKI_RSA_2048;
            else if (!strcmp(v, "ec")) key_type = TACIO__PKI_EC_P256;
            else usage();
        }
        else if (ARG("--root")) root = v;
        else if (ARG("--port-file")) port_file = v;
        else if (ARG("--threads")) threads = (unsigned)atoi(v);
        else if (ARG("--shards")) want_shards = (unsigned)atoi(v);
        else if (ARG("--shard-accept")) {
            accept_given = true;
            if (!strcmp(v, "idle")) accept_idle = true, accept_cpu = false;
            else if (!strcmp(v, "hash")) accept_idle = false, accept_cpu = false;
            else if (!strcmp(v, "cpu")) accept_idle = false, accept_cpu = true;
            else usage();
        }
        else if (ARG("--max-head")) qo.max_head = (uint32_t)atol(v);
        else if (ARG("--max-body")) qo.max_body = (uint64_t)atoll(v);
        else if (ARG("--max-target")) qo.max_target = (uint32_t)atol(v);
        else if (ARG("--max-conns")) qo.max_connections = (unsigned)atoi(v);
        else if (ARG("--request-timeout-ms")) qo.request_timeout_ms = (unsigned)atoi(v);
        else if (ARG("--idle-timeout-ms")) qo.idle_timeout_ms = (unsigned)atoi(v);
        else if (ARG("--handshake-timeout-ms")) qo.handshake_timeout_ms = (unsigned)atoi(v);
        else if (ARG("--shutdown-deadline-ms")) deadline_ms = (unsigned)atoi(v);
        else if (ARG("--client-cert")) {
            if (!strcmp(v, "none")) mode = TACIO_HTTP_CLIENT_CERT_NONE;
            else if (!strcmp(v, "required")) mode = TACIO_HTTP_CLIENT_CERT_REQUIRED;
            else if (!strcmp(v, "on-demand")) mode = TACIO_HTTP_CLIENT_CERT_ON_DEMAND;
            else usage();
        } else if (ARG("--log")) {
            log_mode = !strcmp(v, "none") ? 0 : !strcmp(v, "json") ? 2 : 1;
        } else {
            usage();
        }
#undef ARG
    }
    if (threads < 1 || threads > 256)
        usage();
    /* Default: one shard per thread (docs/http.md, "Shards"); capped at
     * MAX_SHARDS, the threads shared out among them. */
    n_shards = want_shards ? want_shards : (threads < MAX_SHARDS ? threads : MAX_SHARDS);
    if (n_shards < 1 || n_shards > MAX_SHARDS || n_shards > threads) {
        fprintf(stderr, "tacio-httpd: --shards must be 1..%u and at most --threads (%u)\n",
                threads < MAX_SHARDS ? threads : MAX_SHARDS, threads);
        return 2;
    }
    /* cpu: shard k runs on the k-th CPU this process may use, and each new
     * connection goes to the shard of the CPU that received it (by hash while
     * they come in on too few of them: src/http/steer.h). The default with
     * one shard per CPU; with fewer shards than CPUs, idle. */
    unsigned shard_cpu[MAX_SHARDS], n_allowed = 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        n_allowed = (unsigned)CPU_COUNT(&allowed);
    if (!accept_given && n_shards > 1 && n_shards == n_allowed)
        accept_idle = false, accept_cpu = true;
    if (accept_cpu) {
        unsigned n = 0;
        if (n_allowed)
            for (unsigned c = 0; c < CPU_SETSIZE && n < n_shards; c++)
                if (CPU_ISSET(c, &allowed))
                    shard_cpu[n++] = c;
        if (n < n_shards) {
            fprintf(stderr, "tacio-httpd: --shard-accept cpu: %u shards but only %u CPUs to run on\n",
                    n_shards, n);
            return 2;
        }
    }
    if (!n_urls)
        urls[n_urls++] = "https://127.0.0.1:8443/";

    char dir[1024], certp[1100], keyp[1100], cap[1100];
    int need_tls = 0;
    for (int i = 0; i < n_urls; i++)
        need_tls |= !strncmp(urls[i], "https://", 8);
    if (need_tls && (!cert || !key)) {
        if (pki_dir) {
            snprintf(dir, sizeof dir, "%s", pki_dir);
        } else {
            const char *xs = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
            if (xs && *xs)
                snprintf(dir, sizeof dir, "%s/tacio-httpd", xs);
            else
                snprintf(dir, sizeof dir, "%s/.local/state/tacio-httpd", home ? home : ".");
        }
        unsigned created = 0;
        tacio_status_t st = tacio__pki_dev_set_ensure(dir, key_type, NULL, &created);
        if (st != TACIO_SUCCESS) {
            char e[256];
            fprintf(stderr, "tacio-httpd: cannot create the development certificates in %s: %s %s\n",
                    dir, tacio_status_name(st), tacio__pki_last_error(e, sizeof e));
            return 1;
        }
        printf("development certificates %s in %s\n", created ? "created" : "found", dir);
        snprintf(certp, sizeof certp, "%s/server-chain.pem", dir);
        if (access(certp, R_OK) != 0)
            snprintf(certp, sizeof certp, "%s/server.pem", dir);
        snprintf(keyp, sizeof keyp, "%s/server.key", dir);
        cert = certp;
        key = keyp;
        if (!ca) {
            snprintf(cap, sizeof cap, "%s/ca.pem", dir);
            ca = cap;
        }
    } else {
        dir[0] = '\0';
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    shards = calloc(n_shards, sizeof *shards);
    if (!shards) {
        fprintf(stderr, "tacio-httpd: out of memory\n");
        return 1;
    }
    /* idle: the shards share each listening socket and the one that is free
     * takes a new connection; hash: each binds its own with SO_REUSEPORT and
     * the kernel picks by a hash of the addresses (docs/http.md "Shards"). */
    qo.share_listeners = n_shards > 1 && accept_idle;
    qo.reuse_port = (n_shards > 1 && !accept_idle) || accept_cpu;
    qo.steer_by_cpu = accept_cpu;

    /* --max-conns is the whole server's: each shard gets its share. */
    if (qo.max_connections)
        qo.max_connections = (qo.max_connections + n_shards - 1) / n_shards;
    tacio_status_t st = TACIO_SUCCESS;
    for (unsigned k = 0; k < n_shards; k++) {
        /* Threads split as evenly as they go; each pool may grow 4x for
         * callbacks that block (static files). */
        unsigned per = threads / n_shards + (k < threads % n_shards);
        tacio_pool_options_t po = {.min_threads = per, .max_threads = per * 4, .concurrency = per};
        if (accept_cpu) {
            po.cpus = &shard_cpu[k];
            po.ncpus = 1;
            qo.cpu = shard_cpu[k];
        }
        if ((st = tacio_pool_create(&shards[k].pool, &po)) != TACIO_SUCCESS) {
            fprintf(stderr, "tacio-httpd: pool: %s %s\n", tacio_status_name(st), tacio_last_error());
            return 1;
        }
        if ((st = tacio_http_queue_create(shards[k].pool, &qo, on_done, NULL, &shards[k].q)) !=
            TACIO_SUCCESS) {
            fprintf(stderr, "tacio-httpd: queue: %s\n", tacio_status_name(st));
            return 1;
        }
    }
    tacio_http_tls_t tls = {.cert_file = cert, .key_file = key, .ca_file = ca, .client_cert = mode};
    char ports[256] = "";
    for (int i = 0; i < n_urls; i++) {
        uint16_t port;
        if ((st = tacio_http_queue_add_url(shards[0].q, urls[i], &tls, &port)) != TACIO_SUCCESS) {
            fprintf(stderr, "tacio-httpd: listen %s: %s\n", urls[i], tacio_status_name(st));
            return 1;
        }
        const char *scheme_end = strstr(urls[i], "://") + 3;
        const char *colon = strrchr(scheme_end, ':');
        /* The other shards bind the port the first one got (port 0 asks
         * for any). */
        char bound[512];
        snprintf(bound, sizeof bound, "%.*s:%u/", (int)(colon - urls[i]), urls[i], port);
        for (unsigned k = 1; k < n_shards && !qo.share_listeners; k++) {
            if ((st = tacio_http_queue_add_url(shards[k].q, bound, &tls, NULL)) != TACIO_SUCCESS) {
                fprintf(stderr, "tacio-httpd: listen %s (shard %u): %s\n", bound, k,
                        tacio_status_name(st));
                return 1;
            }
        }
        printf("listening on %s\n", bound);
        size_t pl = strlen(ports);
        snprintf(ports + pl, sizeof ports - pl, "%s%u", pl ? " " : "", port);
        if (i == 0 && dir[0] && !strncmp(urls[i], "https://", 8)) {
            printf("try:\n"
                   "  curl --cacert %s/ca.pem https://localhost:%u/healthz\n"
                   "  curl --cacert %s/ca.pem https://localhost:%u/whoami      (403: no client certificate)\n"
                   "  curl --cacert %s/ca.pem --cert %s/client-chain.pem --key %s/client.key https://localhost:%u/whoami\n"
                   "  curl --cacert %s/ca.pem https://localhost:%u/metrics\n",
                   dir, port, dir, port, dir, dir, dir, port, dir, port);
        }
    }
    for (unsigned k = 1; k < n_shards && qo.share_listeners; k++) {
        if ((st = tacio_http_queue_share_listeners(shards[k].q, shards[0].q)) != TACIO_SUCCESS) {
            fprintf(stderr, "tacio-httpd: shard %u: sharing the listeners: %s\n", k,
                    tacio_status_name(st));
            return 1;
        }
    }
    if (port_file) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%s\n", ports);
            fclose(f);
            rename(tmp, port_file);
        }
    }
    printf("OpenSSL %s; %u threads in %u shard%s%s; client certificates: %s\n", OPENSSL_VERSION_TEXT,
           threads, n_shards, n_shards == 1 ? "" : "s",
           n_shards == 1 ? "" : accept_cpu ? ", each bound to a CPU (--shard-accept cpu)"
                              : accept_idle ? " (--shard-accept idle)" : " (--shard-accept hash)",
           mode == TACIO_HTTP_CLIENT_CERT_NONE ? "none"
           : mode == TACIO_HTTP_CLIENT_CERT_REQUIRED ? "required" : "on demand");
    fflush(stdout);

    /* op.user must point at the kind of every record: tasks set it too. */
    for (unsigned k = 0; k < n_shards; k++) {
        for (int i = 0; i < N_RX; i++) {
            struct rx *x = &shards[k].rx[i];
            x->q = shards[k].q;
            x->cap = 8192;
            x->buf = aligned_alloc(16, x->cap);
            x->op.user = &x->kind;
            x->kind = K_RECV;
        }
    }
    for (unsigned k = 0; k < n_shards; k++)
        for (int i = 0; i < N_RX; i++)
            rx_next(&shards[k].rx[i]);

    int sig;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tacio-httpd: signal %d: draining (deadline %u ms)\n", sig, deadline_ms);
    for (unsigned k = 0; k < n_shards; k++)
        tacio_http_queue_drain(shards[k].q);
    uint64_t end = now_us() + (uint64_t)deadline_ms * 1000u;
    tacio_http_stats_t s;
    for (;;) {
        sum_stats(&s);
        if (s.open == 0 || now_us() >= end)
            break;
        usleep(10000);
    }
    for (unsigned k = 0; k < n_shards; k++) {
        tacio_http_queue_close(shards[k].q);
        tacio_pool_close(shards[k].pool);
        for (int i = 0; i < N_RX; i++)
            free(shards[k].rx[i].buf);
    }
    free(shards);
    fprintf(stderr, "tacio-httpd: stopped (%llu connections, %llu requests, %llu open at the deadline)\n",
            (unsigned long long)s.accepted, (unsigned long long)s.requests,
            (unsigned long long)s.open);
    return 0;
}
