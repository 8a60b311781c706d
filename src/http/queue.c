/* src/http/queue.c - the request queue of include/tacio/http.h.
 *
 * One connection = one pool I/O object on its socket, with at most one
 * tacio_recv and one tacio_send in flight. TLS runs in OpenSSL on a pair of
 * memory BIOs: received bytes are written into the read BIO, and whatever
 * OpenSSL writes into the write BIO is sent with tacio_send, so every byte
 * moves through tacio operations. Plain http uses the same write BIO.
 *
 * LOCKS: each connection has a mutex that guards its state; the queue's
 * mutex guards the id table, the list of ready requests (and their laid-out
 * blobs), the list of waiting receive-request operations and the counters
 * of connections. Order: connection, then queue. Application callbacks are
 * never run with a lock held: completions are collected in a done list
 * while locked and delivered after unlocking.
 *
 * LIFETIME: a connection is reference-counted. References: the id table
 * (until the connection dies), each tacio operation in flight (until its
 * callback), and each caller in the middle of a function. It is freed when
 * the last one goes; the queue's close waits for every connection to be
 * freed.
 *
 * THE RULE: a start call either returns a final status with the record
 * untouched by any later callback, or marks the record pending
 * (priv_state = 1) and stores it where exactly one completion will take it
 * out: op_complete() is the only place that clears priv_state and hands a
 * record to a done list, and every stored record is reached by it exactly
 * once (success, error, connection death or queue close).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <tacio/http.h>
#include <tacio/io.h>
#include <tacio/pool.h>

#include "http/libctx.h"
#include "http/parse.h"
#include "http/steer.h"
#include "http/pki.h"

/* The public layout is the parser's flat layout; keep them one. */
_Static_assert(sizeof(tacio_http_request_t) == sizeof(struct tacio__http_request_view), "layout");
_Static_assert(offsetof(tacio_http_request_t, headers) ==
               offsetof(struct tacio__http_request_view, headers), "layout");
_Static_assert(offsetof(tacio_http_request_t, expect_continue) ==
               offsetof(struct tacio__http_request_view, expect_continue), "layout");
_Static_assert(sizeof(tacio_http_header_t) == sizeof(struct tacio__http_header_view), "layout");
_Static_assert(TACIO_HTTP_CERT_EXPIRED == TACIO__PKI_V_EXPIRED &&
               TACIO_HTTP_CERT_UNTRUSTED == TACIO__PKI_V_UNTRUSTED &&
               TACIO_HTTP_CERT_BAD_SIGNATURE == TACIO__PKI_V_BAD_SIGNATURE &&
               TACIO_HTTP_CERT_OTHER == TACIO__PKI_V_OTHER, "verdict flags");

#define RBUF_SIZE 16384
#define SBUF_SIZE 65536
#define IN_HIGH (1u << 20)     /* stop receiving while this much plaintext waits */
#define N_ACCEPTS 8
#define BUCKETS 1024
#define SEQ_BITS 24
#define TICK_NS (100u * 1000u * 1000u)
#define LINGER_MS 1000u

enum conn_state { C_HANDSHAKE, C_IDLE, C_ACTIVE, C_CLOSING };
enum cert_state { CERT_NONE, CERT_REQUESTED, CERT_HAVE, CERT_ABSENT };

struct listener;

struct acceptor {
    tacio_op_t op;
    tacio_addr_t peer;
    struct listener *l;
};

struct listener {
    tacio_http_queue_t *q;
    tacio_pool_io_t *io;
    int fd;                       /* the queue's own descriptor of the socket */
    bool by_poll;                 /* share_listeners: wait for readiness, accept4 ourselves */
    SSL_CTX *ctx;                 /* NULL for http; shared listeners hold a reference */
    X509_STORE *store;            /* what client certificates verify against */
    tacio_http_client_cert_mode_t mode;
    bool closed;
    bool steered;                 /* joined its address's CPU steering (src/http/steer.h) */
    struct acceptor acc[N_ACCEPTS];
    struct listener *next;
};

struct conn {
    pthread_mutex_t mu;
    atomic_int refs;
    tacio_http_queue_t *q;
    struct listener *l;
    uint64_t id;
    struct conn *hnext;                  /* id table (queue lock) */
    struct conn *aprev, *anext;          /* all live connections (queue lock) */
    struct conn *rprev, *rnext;          /* ready requests (queue lock) */
    bool in_table, in_ready;             /* queue lock */
    void *req_blob;                      /* queue lock: laid-out head while ready */
    size_t req_size;

    tacio_pool_io_t *io;
    char peer[64];
    SSL *ssl;
    BIO *rbio, *wbio;                    /* wbio: what goes to the socket */
    bool tls, hs_done, dead, eof, close_after, shutdown_sent, shut_wr, linger;
    enum conn_state state;
    _Atomic uint64_t deadline;           /* 0: none (read by the timer) */
    const char *deadline_why;

    tacio_op_t rop, sop;
    bool rpend, spend;
    char rbuf[RBUF_SIZE];
    char *sbuf;
    size_t slen, soff;
    uint64_t sent_total;                 /* bytes of wbio sent in full */

    char *in;                            /* plaintext not consumed yet */
    size_t in_len, in_cap;
    tacio__http_parser_t parser;
    bool head_started;

    char *pout;                          /* plaintext waiting for SSL_write */
    size_t pout_off, pout_len, pout_cap;
    uint64_t plain_appended, plain_consumed;

    /* The current request (one at a time). */
    uint64_t seq, req_id;
    bool keep_alive, is_head, body_done, body_error, sent_continue;
    bool resp_started, resp_done, resp_chunked;
    tacio_status_t body_status;
    tacio_http_op_t *body_op;
    tacio_http_op_t *sends_head, *sends_tail;
    tacio_http_op_t *starting;           /* a start call deciding sync vs pending */
    /* A file body being streamed: read as the output drains. */
    bool file_open, file_end;
    int file_fd;
    uint64_t file_off, file_left;
    tacio_http_op_t *file_op;

    enum cert_state cert_state;
    bool got_finished;
    /* OpenSSL's check of the client's chain in the handshake (or the
     * post-handshake exchange), kept as the verdict (keep_verdict). */
    bool hs_verified;
    unsigned hs_vflags;
    long hs_vfirst;
    tacio_http_op_t *cert_op;
    void *cert_blob;
    size_t cert_size;
    _Atomic uint64_t cert_deadline;
};

struct counters {
    _Atomic uint64_t accepted, refused, handshakes, handshake_errors, requests, rejected,
        timeouts, cert_requests, sync_results, completions, c_success, c_overflow,
        c_cancelled, c_error, cert_verdicts_cached;
};

struct tacio_http_queue {
    tacio_pool_t *pool;
    tacio_http_queue_options_t o;
    struct tacio__http_limits limits;
    tacio_http_fn cb;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *table[BUCKETS];
    struct conn *all;
    struct conn *ready_head, *ready_tail;
    tacio_http_op_t *wait_head, *wait_tail;
    struct listener *listeners;
    tacio_pool_timer_t *timer;
    uint64_t next_conn_id;
    unsigned open, allocated, accepts_pending;
    bool closing;
    /* Set under mu; read by connections under their own lock only, to end
     * keep-alive early: atomic, and a late look just costs one request. */
    _Atomic bool draining;
    struct counters n;
};

struct done {
    tacio_http_op_t *head, *tail;
};

/* ---- small helpers ----------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_from_now(unsigned ms)
{
    return now_ns() + (uint64_t)ms * 1000000u;
}

__attribute__((format(printf, 2, 3)))
static void qlog(tacio_http_queue_t *q, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (q->o.log)
        q->o.log(q->o.log_ctx, line);
    else
        fprintf(stderr, "tacio-http: %s\n", line);
}

/* OpenSSL's reasons queued on this thread, joined, and the queue cleared. */
static const char *ssl_reasons(char *buf, size_t size)
{
    size_t off = 0;
    unsigned long e;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0 && off + 2 < size) {
        if (off)
            buf[off++] = ';', buf[off] = '\0';
        ERR_error_string_n(e, buf + off, size - off);
        off += strlen(buf + off);
    }
    if (!buf[0])
        snprintf(buf, size, "no OpenSSL reason (peer closed or protocol error)");
    return buf;
}

/* The only place a pending record stops being pending: its result is set
 * and it goes to the done list, to be delivered once after unlocking. */
static void op_complete(struct done *d, tacio_http_op_t *op, tacio_status_t st, uint64_t bytes)
{
    op->status = st;
    op->bytes = bytes;
    op->priv_next = NULL;
    if (d->tail)
        d->tail->priv_next = op;
    else
        d->head = op;
    d->tail = op;
}

static void deliver(tacio_http_queue_t *q, struct done *d)
{
    tacio_http_op_t *op = d->head;
    d->head = d->tail = NULL;
    while (op) {
        tacio_http_op_t *next = op->priv_next;
        tacio_status_t st = op->status;
        uint64_t bytes = op->bytes;
        atomic_fetch_add_explicit(&q->n.completions, 1, memory_order_relaxed);
        if (st == TACIO_SUCCESS || st == TACIO_END_OF_FILE)
            atomic_fetch_add_explicit(&q->n.c_success, 1, memory_order_relaxed);
        else if (st == TACIO_BUFFER_OVERFLOW)
            atomic_fetch_add_explicit(&q->n.c_overflow, 1, memory_order_relaxed);
        else if (st == TACIO_CANCELLED)
            atomic_fetch_add_explicit(&q->n.c_cancelled, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&q->n.c_error, 1, memory_order_relaxed);
        op->priv_next = NULL;
        /* The record is the caller's from here. release: a start call that
         * sees 0 (op_busy) also sees the result fields above. */
        __atomic_store_n(&op->priv_state, 0, __ATOMIC_RELEASE);
        q->cb(q, q->ctx, op, st, bytes);
        op = next;
    }
}

static tacio_status_t sync_result(tacio_http_queue_t *q, tacio_http_op_t *op, tacio_status_t st,
                                  uint64_t bytes)
{
    op->status = st;
    op->bytes = bytes;
    atomic_fetch_add_explicit(&q->n.sync_results, 1, memory_order_relaxed);
    return st;
}

static void op_pending(tacio_http_op_t *op)
{
    op->status = TACIO_PENDING;
    __atomic_store_n(&op->priv_state, 1, __ATOMIC_RELAXED); /* published by the lock that stores op */
    op->priv_next = NULL;
}

static bool op_busy(const tacio_http_op_t *op)
{
    return __atomic_load_n(&op->priv_state, __ATOMIC_ACQUIRE) != 0; /* pairs with deliver() */
}

/* ---- the id table and references ------------------------------------------------- */

static void conn_ref(struct conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void conn_free(struct conn *c)
{
    tacio_http_queue_t *q = c->q;
    if (c->ssl)
        SSL_free(c->ssl); /* frees both BIOs */
    else
        BIO_free(c->wbio);
    free(c->sbuf);
    free(c->in);
    free(c->pout);
    free(c->cert_blob);
    free(c->req_blob);
    if (c->file_open)
        close(c->file_fd);
    pthread_mutex_destroy(&c->mu);
    free(c);
    pthread_mutex_lock(&q->mu);
    q->allocated--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void conn_release(struct conn *c)
{
    /* acq_rel: the last holder must see every write of the others. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_free(c);
}

/* The live connection of a request id, with a reference, or NULL. */
static struct conn *lookup(tacio_http_queue_t *q, uint64_t request_id)
{
    uint64_t cid = request_id >> SEQ_BITS;
    pthread_mutex_lock(&q->mu);
    struct conn *c = q->table[cid % BUCKETS];
    while (c && c->id != cid)
        c = c->hnext;
    if (c)
        conn_ref(c);
    pthread_mutex_unlock(&q->mu);
    return c;
}

static void ready_unlink_locked(tacio_http_queue_t *q, struct conn *c)
{
    if (!c->in_ready)
        return;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        q->ready_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        q->ready_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->in_ready = false;
    free(c->req_blob);
    c->req_blob = NULL;
}

/* ---- output --------------------------------------------------------------------- */

static bool pout_append(struct conn *c, const void *data, size_t len)
{
    if (c->pout_len + len > c->pout_cap) {
        size_t cap = c->pout_cap ? c->pout_cap : 4096;
        while (cap < c->pout_len + len)
            cap *= 2;
        char *p = realloc(c->pout, cap);
        if (!p)
            return false;
        c->pout = p;
        c->pout_cap = cap;
    }
    memcpy(c->pout + c->pout_len, data, len);
    c->pout_len += len;
    c->plain_appended += len;
    return true;
}

static void conn_kill(struct conn *c, struct done *d, tacio_status_t why);

/* Move queued plaintext into OpenSSL (or straight to the write BIO), and
 * give each send operation whose plaintext is all in its wire target. */
static void pump_plain(struct conn *c, struct done *d)
{
    while (c->pout_off < c->pout_len) {
        size_t n = c->pout_len - c->pout_off;
        int w;
        if (n > 16384)
            n = 16384;
        if (c->tls) {
            if (!c->hs_done)
                break;
            ERR_clear_error(); /* SSL_get_error reads the thread's queue */
            w = SSL_write(c->ssl, c->pout + c->pout_off, (int)n);
            if (w <= 0) {
                int e = SSL_get_error(c->ssl, w);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    break;
                char r[512];
                qlog(c->q, "tls: peer %s: write failed: %s", c->peer, ssl_reasons(r, sizeof r));
                conn_kill(c, d, TACIO_CONNECTION_ABORTED);
                return;
            }
        } else {
            w = BIO_write(c->wbio, c->pout + c->pout_off, (int)n);
        }
        c->pout_off += (size_t)w;
        c->plain_consumed += (uint64_t)w;
    }
    if (c->pout_off == c->pout_len)
        c->pout_off = c->pout_len = 0;
    for (tacio_http_op_t *op = c->sends_head; op; op = op->priv_next)
        if (op->priv_target == UINT64_MAX && op->priv_plain <= c->plain_consumed)
            op->priv_target = BIO_number_written(c->wbio);
}

static void complete_sends(struct conn *c, struct done *d)
{
    while (c->sends_head && c->sends_head != c->starting &&
           c->sends_head->priv_target != UINT64_MAX && c->sends_head->priv_target <= c->sent_total) {
        tacio_http_op_t *op = c->sends_head;
        c->sends_head = op->priv_next;
        if (!c->sends_head)
            c->sends_tail = NULL;
        op_complete(d, op, TACIO_SUCCESS, op->priv_len);
    }
}

static void start_closing(struct conn *c, struct done *d)
{
    if (c->tls && c->hs_done && !c->shutdown_sent) {
        c->shutdown_sent = true;
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        return;
    }
    if (!c->shut_wr) {
        /* Half-close, then read (and drop) until the peer closes or a short
         * linger passes, so that unread client bytes do not turn our last
         * response into a reset. */
        c->shut_wr = true;
        c->linger = true;
        shutdown(tacio_handle_fd(tacio_pool_io_handle(c->io)), SHUT_WR);
        atomic_store_explicit(&c->deadline, ms_from_now(LINGER_MS), memory_order_relaxed);
        c->deadline_why = NULL;
        if (c->eof)
            conn_kill(c, d, TACIO_SUCCESS);
    }
}

static bool file_pump(struct conn *c, struct done *d);

/* Send what is queued, until a send is pending or nothing is left. */
static void flush(struct conn *c, struct done *d)
{
    if (c->dead)
        return; /* c->io is closed (and may be freed) */
    tacio_handle_t *h = tacio_pool_io_handle(c->io);
    while (!c->dead && !c->spend) {
        if (c->soff < c->slen) {
            tacio_status_t st = tacio_send(h, &c->sop, c->sbuf + c->soff, c->slen - c->soff);
            if (st == TACIO_PENDING) {
                c->spend = true;
                conn_ref(c);
                return;
            }
            if (st != TACIO_SUCCESS) {
                conn_kill(c, d, TACIO_CONNECTION_ABORTED);
                return;
            }
            c->soff += c->sop.bytes;
            c->sent_total += c->sop.bytes;
            complete_sends(c, d);
            continue;
        }
        pump_plain(c, d);
        if (c->dead)
            return;
        size_t pending = BIO_ctrl_pending(c->wbio);
        if (pending > 0) {
            int n = BIO_read(c->wbio, c->sbuf, (int)(pending < SBUF_SIZE ? pending : SBUF_SIZE));
            c->slen = n > 0 ? (size_t)n : 0;
            c->soff = 0;
            continue;
        }
        if (file_pump(c, d))
            continue;
        if (c->dead)
            return;
        complete_sends(c, d);
        if (c->close_after && c->pout_len == 0 && !c->shut_wr) {
            start_closing(c, d);
            continue;
        }
        return;
    }
}

/* ---- death ---------------------------------------------------------------------- */

static void conn_kill(struct conn *c, struct done *d, tacio_status_t why)
{
    if (c->dead)
        return;
    c->dead = true;
    tacio_status_t st = why == TACIO_SUCCESS ? TACIO_CONNECTION_ABORTED : why;
    tacio_http_queue_t *q = c->q;
    bool drop_table_ref = false;
    pthread_mutex_lock(&q->mu);
    ready_unlink_locked(q, c);
    if (c->in_table) {
        struct conn **pp = &q->table[c->id % BUCKETS];
        while (*pp != c)
            pp = &(*pp)->hnext;
        *pp = c->hnext;
        if (c->aprev)
            c->aprev->anext = c->anext;
        else
            q->all = c->anext;
        if (c->anext)
            c->anext->aprev = c->aprev;
        c->in_table = false;
        q->open--;
        drop_table_ref = true;
    }
    pthread_mutex_unlock(&q->mu);
    if (c->body_op) {
        op_complete(d, c->body_op, st, 0);
        c->body_op = NULL;
    }
    if (c->cert_op) {
        op_complete(d, c->cert_op, st, 0);
        c->cert_op = NULL;
    }
    while (c->sends_head) {
        tacio_http_op_t *op = c->sends_head;
        c->sends_head = op->priv_next;
        if (op == c->starting)
            continue; /* its start call returns the status itself */
        op_complete(d, op, st, 0);
    }
    c->sends_tail = NULL;
    /* Pending recv/send complete (CANCELLED) through on_conn_io, each
     * dropping its reference. */
    tacio_pool_io_close(c->io, 0);
    c->io = NULL; /* freed once the pending operations have completed */
    if (drop_table_ref)
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_relaxed); /* a caller holds another */
}

/* ---- client certificates ---------------------------------------------------------- */

/* OpenSSL's verify callback for client chains: every error is collected
 * (as tacio__pki_verify does), so the verdict cert_build reports costs no
 * second verification of the chain. Required mode enforces it: a bad chain
 * fails the handshake, as with no callback. On demand it is reported, not
 * enforced; the failed check left its reason on the thread's error queue,
 * where SSL_get_error would find it after a plain WANT_READ and call the
 * connection broken, so it is dropped. */
static void verdict_reset(struct conn *c)
{
    c->hs_verified = false;
    c->hs_vflags = 0;
    c->hs_vfirst = X509_V_OK;
}

static int keep_verdict(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!c)
        return ok;
    c->hs_verified = true;
    if (!ok) {
        int err = X509_STORE_CTX_get_error(x);
        c->hs_vflags |= tacio__pki_verify_flags(err);
        if (c->hs_vfirst == X509_V_OK)
            c->hs_vfirst = err;
    }
    if (c->l->mode != TACIO_HTTP_CLIENT_CERT_ON_DEMAND)
        return ok;
    ERR_clear_error();
    return 1;
}

/* The chain check of a handshake (SSL_CTX_set_cert_verify_callback): a
 * chain that verified cleanly before is not checked again while its verdict
 * lasts (src/http/pki.h "remembered verdicts"). A full check is about a
 * tenth of a required-mode handshake's server CPU on ECDSA (docs/http.md). */
static int verify_chain(X509_STORE_CTX *x, void *arg)
{
    tacio__pki_vcache_t *vc = arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    unsigned long vflags = X509_VERIFY_PARAM_get_flags(X509_STORE_CTX_get0_param(x));
    bool cacheable = vc && c && !(vflags & (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL));
    unsigned char key[32];
    time_t now = time(NULL);
    if (cacheable)
        cacheable = tacio__pki_vcache_key(X509_STORE_CTX_get0_cert(x),
                                          X509_STORE_CTX_get0_untrusted(x), key);
    if (cacheable && tacio__pki_vcache_hit(vc, key, now)) {
        c->hs_verified = true;
        atomic_fetch_add_explicit(&c->q->n.cert_verdicts_cached, 1, memory_order_relaxed);
        X509_STORE_CTX_set_error(x, X509_V_OK);
        return 1;
    }
    int r = X509_verify_cert(x);
    /* keep_verdict saw every error (on-demand mode goes on past them). */
    if (r == 1 && cacheable && c->hs_vflags == 0 && X509_STORE_CTX_get_error(x) == X509_V_OK)
        tacio__pki_vcache_put(vc, key, X509_STORE_CTX_get0_chain(x), now);
    return r;
}

static int vcache_index = -1;

static void vcache_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tacio__pki_vcache_free(ptr);
}

static void vcache_index_once(void)
{
    vcache_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, vcache_ex_free);
}

/* The context's verdict cache, freed with the context (shards share both). */
static bool attach_vcache(SSL_CTX *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, vcache_index_once);
    tacio__pki_vcache_t *vc = vcache_index >= 0 ? tacio__pki_vcache_new() : NULL;
    if (!vc || !SSL_CTX_set_ex_data(ctx, vcache_index, vc)) {
        tacio__pki_vcache_free(vc);
        return false;
    }
    SSL_CTX_set_cert_verify_callback(ctx, verify_chain, vc);
    return true;
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct conn *c = arg;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_FINISHED && c->cert_state == CERT_REQUESTED)
        c->got_finished = true;
}

/* A pointer into a laid-out result whose buffer moved by d bytes. */
static void *shifted(const void *p, ptrdiff_t d)
{
    return p ? (char *)(uintptr_t)p + d : NULL;
}

static void cert_relocate(tacio_http_client_cert_t *v, const void *from)
{
    ptrdiff_t d = (const char *)v - (const char *)from;
#define FIX(p) ((p) = shifted((p), d))
    FIX(v->subject);
    FIX(v->issuer);
    FIX(v->serial_hex);
    FIX(v->sha256_hex);
    FIX(v->der);
#undef FIX
}

static char *put_str(char **cur, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = *cur;
    memcpy(d, s, n);
    *cur += n;
    return d;
}

/* Lay out the peer's certificate (now known) in c->cert_blob. */
static bool cert_build(struct conn *c)
{
    X509 *leaf = SSL_get0_peer_certificate(c->ssl);
    if (!leaf)
        return false;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl); /* server side: without the leaf */
    unsigned char *der = NULL;
    size_t der_len = 0;
    struct tacio__pki_cert_info info;
    memset(&info, 0, sizeof info);
    if (tacio__pki_chain_der(leaf, chain, &der, &der_len) != TACIO_SUCCESS ||
        tacio__pki_cert_info(der, der_len, &info) != TACIO_SUCCESS) {
        free(der);
        ERR_clear_error();
        return false;
    }
    long first = 0;
    unsigned flags;
    if (c->hs_verified) {
        flags = c->hs_vflags;
        first = c->hs_vfirst;
        long r = SSL_get_verify_result(c->ssl);
        if (!flags && r != X509_V_OK) { /* failed without telling the callback */
            first = r;
            flags = tacio__pki_failed_flags(r);
        }
    } else {
        /* A resumed session: the chain was not checked in this handshake. */
        flags = tacio__pki_verify(c->l->store, leaf, chain, X509_PURPOSE_SSL_CLIENT, 0, &first);
    }
    ERR_clear_error();
    size_t size = sizeof(tacio_http_client_cert_t) + strlen(info.subject) + 1 +
                  strlen(info.issuer) + 1 + strlen(info.serial_hex) + 1 +
                  strlen(info.sha256_hex) + 1 + der_len;
    tacio_http_client_cert_t *v = calloc(1, size);
    if (!v) {
        free(der);
        tacio__pki_cert_info_free(&info);
        return false;
    }
    char *cur = (char *)(v + 1);
    v->connection_id = c->id;
    v->verify_flags = flags;
    v->x509_error = (int32_t)first;
    v->subject = put_str(&cur, info.subject);
    v->issuer = put_str(&cur, info.issuer);
    v->serial_hex = put_str(&cur, info.serial_hex);
    v->sha256_hex = put_str(&cur, info.sha256_hex);
    memcpy(v->sha256, info.sha256, 32);
    v->not_before = (int64_t)info.not_before;
    v->not_after = (int64_t)info.not_after;
    v->chain_count = info.count;
    memcpy(cur, der, der_len);
    v->der = (unsigned char *)cur;
    v->der_len = der_len;
    free(der);
    tacio__pki_cert_info_free(&info);
    free(c->cert_blob);
    c->cert_blob = v;
    c->cert_size = size;
    c->cert_state = CERT_HAVE;
    return true;
}

static tacio_status_t cert_copy(struct conn *c, void *buf, size_t len)
{
    if (len < c->cert_size)
        return TACIO_BUFFER_OVERFLOW;
    memcpy(buf, c->cert_blob, c->cert_size);
    cert_relocate(buf, c->cert_blob);
    return TACIO_SUCCESS;
}

/* The client answered a certificate request (its Finished arrived). */
static void cert_finish(struct conn *c, struct done *d)
{
    c->got_finished = false;
    atomic_store_explicit(&c->cert_deadline, 0, memory_order_relaxed);
    tacio_http_op_t *op = c->cert_op;
    c->cert_op = NULL;
    if (!cert_build(c))
        c->cert_state = CERT_ABSENT;
    if (!op)
        return;
    if (c->cert_state != CERT_HAVE)
        op_complete(d, op, TACIO_NOT_FOUND, 0);
    else
        op_complete(d, op, cert_copy(c, op->priv_buf, op->priv_len), c->cert_size);
}

/* ---- requests ---------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* The library's own answer to a request it refuses; the connection closes. */
static void reject(struct conn *c, struct done *d, int status, const char *why)
{
    char msg[512];
    int blen = snprintf(msg, sizeof msg, "%d %s (%s)\n", status, reason_phrase(status), why);
    char head[256];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n",
                        status, reason_phrase(status), blen);
    atomic_fetch_add_explicit(&c->q->n.rejected, 1, memory_order_relaxed);
    qlog(c->q, "http: peer %s: %d %s", c->peer, status, why);
    if (!pout_append(c, head, (size_t)hlen) || !pout_append(c, msg, (size_t)blen)) {
        conn_kill(c, d, TACIO_NO_MEMORY);
        return;
    }
    c->state = C_CLOSING;
    c->close_after = true;
    c->in_len = 0;
    atomic_store_explicit(&c->deadline, ms_from_now(c->q->o.request_timeout_ms),
                          memory_order_relaxed);
    c->deadline_why = "closing";
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void request_relocate(tacio_http_request_t *v, const void *from)
{
    ptrdiff_t d = (const char *)v - (const char *)from;
#define FIX(p) ((p) = shifted((p), d))
    FIX(v->method);
    FIX(v->target);
    FIX(v->path);
    FIX(v->query);
    FIX(v->headers);
    tacio_http_header_t *h = (tacio_http_header_t *)(uintptr_t)v->headers;
    for (size_t i = 0; i < v->header_count; i++) {
        FIX(h[i].name);
        FIX(h[i].value);
    }
#undef FIX
}

/* A ready request meets a receive: SUCCESS (copied, taken) or OVERFLOW. */
static tacio_status_t request_give_locked(tacio_http_queue_t *q, struct conn *c,
                                          tacio_http_op_t *op, void *buf, size_t len)
{
    op->request_id = c->req_id;
    if (len < c->req_size)
        return TACIO_BUFFER_OVERFLOW;
    memcpy(buf, c->req_blob, c->req_size);
    request_relocate(buf, c->req_blob);
    ready_unlink_locked(q, c);
    return TACIO_SUCCESS;
}

/* The head is complete: lay it out and hand it to a waiting receive, or
 * queue it as ready. */
static void request_ready(struct conn *c, struct done *d)
{
    tacio_http_queue_t *q = c->q;
    tacio__http_parser_t *p = &c->parser;
    c->seq++;
    c->req_id = (c->id << SEQ_BITS) | (c->seq & ((1u << SEQ_BITS) - 1));
    size_t size = tacio__http_layout_size(p);
    void *blob = malloc(size);
    size_t needed;
    if (!blob || tacio__http_layout(p, c->in, c->req_id, c->id, blob, size, &needed) != TACIO_SUCCESS) {
        free(blob);
        reject(c, d, 500, "out of memory");
        return;
    }
    c->keep_alive = p->keep_alive;
    c->is_head = p->method.len == 4 && memcmp(c->in + p->method.off, "HEAD", 4) == 0;
    c->body_done = false;
    c->body_error = false;
    c->sent_continue = false;
    c->resp_started = c->resp_done = c->resp_chunked = false;
    c->head_started = false;
    consume(c, p->head_len);
    c->state = C_ACTIVE;
    atomic_store_explicit(&c->deadline, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&q->n.requests, 1, memory_order_relaxed);

    pthread_mutex_lock(&q->mu);
    c->req_blob = blob;
    c->req_size = size;
    c->in_ready = true;
    c->rnext = NULL;
    c->rprev = q->ready_tail;
    if (q->ready_tail)
        q->ready_tail->rnext = c;
    else
        q->ready_head = c;
    q->ready_tail = c;
    tacio_http_op_t *w = q->wait_head;
    if (w) {
        q->wait_head = w->priv_next;
        if (!q->wait_head)
            q->wait_tail = NULL;
        tacio_status_t st = request_give_locked(q, c, w, w->priv_buf, w->priv_len);
        op_complete(d, w, st, size);
    }
    pthread_mutex_unlock(&q->mu);
}

/* Decode body bytes into buf. */
static tacio_status_t body_fill(struct conn *c, void *buf, size_t len, uint64_t *got_out)
{
    size_t got = 0;
    size_t pos = 0;
    while (got < len && !c->body_done && !c->body_error && pos < c->in_len) {
        size_t feed = c->in_len - pos;
        if (feed > len - got)
            feed = len - got;
        size_t cons = 0, dlen = 0;
        const char *data = NULL;
        tacio__http_result_t r =
            tacio__http_parse_body(&c->parser, c->in + pos, feed, &cons, &data, &dlen);
        pos += cons;
        if (r == TACIO__HTTP_DATA) {
            memcpy((char *)buf + got, data, dlen);
            got += dlen;
        } else if (r == TACIO__HTTP_DONE) {
            c->body_done = true;
        } else if (r == TACIO__HTTP_ERROR) {
            c->body_error = true;
            c->body_status = c->parser.status;
        }
    }
    if (!c->body_done && !c->body_error && c->in_len == 0) {
        /* A request with no body is done at once, input or not. */
        size_t cons = 0, dlen = 0;
        const char *data = NULL;
        if (tacio__http_parse_body(&c->parser, c->in, 0, &cons, &data, &dlen) == TACIO__HTTP_DONE)
            c->body_done = true;
    }
    consume(c, pos);
    *got_out = got;
    if (got > 0)
        return TACIO_SUCCESS;
    if (c->body_error)
        return c->body_status;
    if (c->body_done)
        return TACIO_END_OF_FILE;
    return TACIO_PENDING;
}

/* Drop what is left of the body once the response is sent. */
static void body_drain(struct conn *c)
{
    char scratch[4096];
    uint64_t got;
    while (!c->body_done && !c->body_error) {
        tacio_status_t st = body_fill(c, scratch, sizeof scratch, &got);
        if (st == TACIO_PENDING)
            return;
    }
}

/* A connection that ends cleanly (peer done, or draining) while its last
 * send is in flight waits for that send's completion: the client may
 * already have the response, and killing now would report it aborted.
 * on_conn_io comes back here once the send has completed. */
static void end_after_send(struct conn *c, struct done *d)
{
    if (!c->spend)
        conn_kill(c, d, TACIO_SUCCESS);
}

/* Parse and hand out requests while the state allows. */
static void conn_advance(struct conn *c, struct done *d)
{
    tacio_http_queue_t *q = c->q;
    for (;;) {
        if (c->dead)
            return;
        if (c->state == C_ACTIVE) {
            if (c->body_op) {
                uint64_t got;
                tacio_http_op_t *op = c->body_op;
                tacio_status_t st = body_fill(c, op->priv_buf, op->priv_len, &got);
                if (st == TACIO_PENDING && c->eof)
                    st = TACIO_CONNECTION_ABORTED;
                if (st != TACIO_PENDING) {
                    c->body_op = NULL;
                    atomic_store_explicit(&c->deadline, 0, memory_order_relaxed);
                    op_complete(d, op, st, got);
                    if (c->body_error && !c->resp_started) {
                        reject(c, d, c->parser.http_status,
                               tacio__http_error_name(c->parser.error));
                        return;
                    }
                }
            }
            if (!c->resp_done || c->body_op)
                return;
            body_drain(c);
            if (c->body_error) {
                c->state = C_CLOSING;
                c->close_after = true;
                return;
            }
            if (!c->body_done) {
                atomic_store_explicit(&c->deadline, ms_from_now(q->o.request_timeout_ms),
                                      memory_order_relaxed);
                c->deadline_why = "body";
                return;
            }
            /* The request is over. */
            tacio__http_parser_next(&c->parser);
            if (c->close_after || atomic_load_explicit(&q->draining, memory_order_relaxed)) {
                c->state = C_CLOSING;
                c->close_after = true;
                return;
            }
            c->state = C_IDLE;
            atomic_store_explicit(&c->deadline, ms_from_now(q->o.idle_timeout_ms),
                                  memory_order_relaxed);
            c->deadline_why = "idle";
            continue;
        }
        if (c->state != C_IDLE)
            return;
        if (c->in_len == 0) {
            if (c->eof || atomic_load_explicit(&q->draining, memory_order_relaxed))
                end_after_send(c, d);
            return;
        }
        tacio__http_result_t r = tacio__http_parse_head(&c->parser, c->in, c->in_len);
        if (r == TACIO__HTTP_NEED_MORE) {
            if (!c->head_started) {
                /* The request timeout runs from a head's first byte: a client
                 * sending it slowly is dropped when it runs out. */
                c->head_started = true;
                atomic_store_explicit(&c->deadline, ms_from_now(q->o.request_timeout_ms),
                                      memory_order_relaxed);
                c->deadline_why = "request head";
            }
            if (c->eof)
                end_after_send(c, d);
            return;
        }
        if (r == TACIO__HTTP_ERROR) {
            reject(c, d, c->parser.http_status, tacio__http_error_name(c->parser.error));
            return;
        }
        request_ready(c, d);
    }
}

/* ---- input ------------------------------------------------------------------------ */

static bool in_reserve(struct conn *c, size_t more)
{
    if (c->in_len + more <= c->in_cap)
        return true;
    size_t cap = c->in_cap ? c->in_cap : 16384;
    while (cap < c->in_len + more)
        cap *= 2;
    char *p = realloc(c->in, cap);
    if (!p)
        return false;
    c->in = p;
    c->in_cap = cap;
    return true;
}

static void tls_input(struct conn *c, struct done *d)
{
    tacio_http_queue_t *q = c->q;
    if (!c->hs_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            char rs[512];
            qlog(q, "tls: peer %s: handshake failed: %s", c->peer, ssl_reasons(rs, sizeof rs));
            atomic_fetch_add_explicit(&q->n.handshake_errors, 1, memory_order_relaxed);
            /* Send the alert OpenSSL queued, then close. */
            c->state = C_CLOSING;
            c->close_after = true;
            c->shutdown_sent = true;
            return;
        }
        c->hs_done = true;
        atomic_fetch_add_explicit(&q->n.handshakes, 1, memory_order_relaxed);
        /* Laid out when the application first asks for it: a chain's DER,
         * names and fingerprint cost a required-mode handshake about a
         * tenth of a millisecond, for connections that may never ask. */
        if (SSL_get0_peer_certificate(c->ssl))
            c->cert_state = CERT_HAVE;
        c->state = C_IDLE;
        atomic_store_explicit(&c->deadline, ms_from_now(q->o.idle_timeout_ms), memory_order_relaxed);
        c->deadline_why = "idle";
    }
    for (;;) {
        if (!in_reserve(c, 16384)) {
            conn_kill(c, d, TACIO_NO_MEMORY);
            return;
        }
        /* A stale entry (e.g. a client certificate's failed signature
         * check, reported as a verdict) would turn WANT_READ into an error. */
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n > 0) {
            if (c->state == C_CLOSING)
                continue; /* dropped */
            c->in_len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->eof = true;
            break;
        }
        char rs[512];
        qlog(q, "tls: peer %s: read failed: %s", c->peer, ssl_reasons(rs, sizeof rs));
        conn_kill(c, d, TACIO_CONNECTION_ABORTED);
        return;
    }
    if (c->cert_state == CERT_REQUESTED && c->got_finished)
        cert_finish(c, d);
}

/* Whether the peer's end of input ends the connection: nothing more is
 * owed to it (closing, idle, or its response fully queued). */
static bool ends_on_eof(const struct conn *c)
{
    return c->linger || c->state != C_ACTIVE || c->resp_done;
}

static void on_input(struct conn *c, struct done *d, tacio_status_t st, uint64_t bytes)
{
    if (st != TACIO_SUCCESS || bytes == 0) {
        c->eof = true;
        bool clean = st == TACIO_SUCCESS || st == TACIO_END_OF_FILE;
        if (ends_on_eof(c)) {
            if (clean)
                end_after_send(c, d);
            else
                conn_kill(c, d, st);
            return;
        }
        conn_advance(c, d); /* a pending body receive learns of it */
        return;
    }
    if (c->linger || (c->tls && c->state == C_CLOSING && !c->hs_done))
        return; /* closing: what the peer still sends is dropped */
    if (c->tls) {
        BIO_write(c->rbio, c->rbuf, (int)bytes);
        tls_input(c, d);
    } else if (c->state != C_CLOSING) {
        if (!in_reserve(c, bytes)) {
            conn_kill(c, d, TACIO_NO_MEMORY);
            return;
        }
        memcpy(c->in + c->in_len, c->rbuf, bytes);
        c->in_len += bytes;
    }
    conn_advance(c, d);
}

/* Keep one receive pending unless too much plaintext waits. */
static void start_recv(struct conn *c, struct done *d)
{
    if (c->dead)
        return; /* c->io is closed (and may be freed) */
    tacio_handle_t *h = tacio_pool_io_handle(c->io);
    while (!c->dead && !c->rpend && !c->eof && c->in_len < IN_HIGH) {
        tacio_status_t st = tacio_recv(h, &c->rop, c->rbuf, sizeof c->rbuf);
        if (st == TACIO_PENDING) {
            c->rpend = true;
            conn_ref(c);
            return;
        }
        on_input(c, d, st, c->rop.bytes);
    }
}

static void on_conn_io(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                       uint64_t bytes)
{
    (void)io;
    struct conn *c = ctx;
    struct done d = {0};
    pthread_mutex_lock(&c->mu);
    if (op == &c->rop) {
        c->rpend = false;
        if (!c->dead)
            on_input(c, &d, st, bytes);
    } else {
        c->spend = false;
        if (!c->dead) {
            if (st != TACIO_SUCCESS) {
                conn_kill(c, &d, TACIO_CONNECTION_ABORTED);
            } else {
                c->soff += bytes;
                c->sent_total += bytes;
                complete_sends(c, &d);
            }
        }
    }
    if (!c->dead) {
        flush(c, &d);
        conn_advance(c, &d); /* a file body may have ended the response */
        start_recv(c, &d);
        flush(c, &d);
    }
    /* The peer closed while a send was in flight (on_input): end it now
     * that nothing is. */
    if (!c->dead && c->eof && !c->spend && !c->rpend && ends_on_eof(c))
        conn_kill(c, &d, TACIO_SUCCESS);
    pthread_mutex_unlock(&c->mu);
    deliver(c->q, &d);
    conn_release(c); /* the operation's reference */
}

/* ---- accepting ------------------------------------------------------------------------ */

static void peer_string(const tacio_addr_t *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->u.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, ntohs(a->u.in.sin_port));
    } else if (a->u.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, ntohs(a->u.in6.sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
}

static void conn_start(struct listener *l, int fd, const tacio_addr_t *peer)
{
    tacio_http_queue_t *q = l->q;
    char why[256];
    if (l->steered && tacio__steer_arrived(fd, why, sizeof why))
        qlog(q, "%s", why);
    pthread_mutex_lock(&q->mu);
    bool refuse = q->closing || atomic_load_explicit(&q->draining, memory_order_relaxed) || q->open >= q->o.max_connections;
    if (!refuse) {
        q->open++;
        q->allocated++;
    }
    pthread_mutex_unlock(&q->mu);
    if (refuse) {
        atomic_fetch_add_explicit(&q->n.refused, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    atomic_fetch_add_explicit(&q->n.accepted, 1, memory_order_relaxed);
    struct conn *c = calloc(1, sizeof *c);
    bool ok = c != NULL;
    if (ok) {
        pthread_mutex_init(&c->mu, NULL);
        c->q = q;
        c->l = l;
        c->sbuf = malloc(SBUF_SIZE);
        peer_string(peer, c->peer, sizeof c->peer);
        tacio__http_parser_init(&c->parser, &q->limits);
        c->tls = l->ctx != NULL;
        if (c->tls) {
            c->ssl = SSL_new(l->ctx);
            c->rbio = BIO_new(BIO_s_mem());
            c->wbio = BIO_new(BIO_s_mem());
            ok = c->ssl && c->rbio && c->wbio && c->sbuf;
            if (ok) {
                BIO_set_mem_eof_return(c->rbio, -1);
                SSL_set_bio(c->ssl, c->rbio, c->wbio);
                SSL_set_accept_state(c->ssl);
                SSL_set_msg_callback(c->ssl, msg_cb);
                SSL_set_msg_callback_arg(c->ssl, c);
                SSL_set_app_data(c->ssl, c);
                verdict_reset(c);
            } else {
                if (!c->ssl) {
                    BIO_free(c->rbio);
                    BIO_free(c->wbio);
                }
                c->wbio = NULL;
            }
            c->state = C_HANDSHAKE;
            c->deadline = ms_from_now(q->o.handshake_timeout_ms);
            c->deadline_why = "handshake";
        } else {
            c->wbio = BIO_new(BIO_s_mem());
            ok = c->wbio && c->sbuf;
            c->state = C_IDLE;
            c->deadline = ms_from_now(q->o.idle_timeout_ms);
            c->deadline_why = "idle";
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ok && tacio_pool_io_open(q->pool, fd, 0, on_conn_io, c, NULL, &c->io) != TACIO_SUCCESS)
        ok = false;
    if (!ok) {
        close(fd);
        pthread_mutex_lock(&q->mu);
        q->open--;
        pthread_mutex_unlock(&q->mu);
        if (c) {
            c->refs = 1;
            conn_release(c);
        } else {
            pthread_mutex_lock(&q->mu);
            q->allocated--;
            pthread_cond_broadcast(&q->cv);
            pthread_mutex_unlock(&q->mu);
        }
        return;
    }
    c->refs = 2; /* the table's and ours */
    pthread_mutex_lock(&q->mu);
    c->id = ++q->next_conn_id;
    c->hnext = q->table[c->id % BUCKETS];
    q->table[c->id % BUCKETS] = c;
    c->anext = q->all;
    if (q->all)
        q->all->aprev = c;
    q->all = c;
    c->in_table = true;
    pthread_mutex_unlock(&q->mu);

    struct done d = {0};
    pthread_mutex_lock(&c->mu);
    start_recv(c, &d);
    flush(c, &d);
    pthread_mutex_unlock(&c->mu);
    deliver(q, &d);
    conn_release(c);
}

/* A failed accept or poll. True: the listener is closing and this acceptor
 * ends (accepts_pending counted down). False: a transient failure (out of
 * fds, a connection reset before it was accepted) that must never end the
 * acceptor: we backed off a little, declared as blocking so the pool can run
 * others, and the caller tries again. */
static bool acceptor_failed(struct acceptor *a, tacio_status_t st)
{
    struct listener *l = a->l;
    tacio_http_queue_t *q = l->q;
    bool closing = st == TACIO_FILE_CLOSED || st == TACIO_PORT_DISCONNECTED ||
                   st == TACIO_INVALID_HANDLE || st == TACIO_CANCELLED;
    pthread_mutex_lock(&q->mu);
    closing = closing || q->closing || l->closed;
    if (closing) {
        q->accepts_pending--;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (closing)
        return true;
    qlog(q, "accept: %s; retrying", tacio_status_name(st));
    tacio_pool_blocking_begin();
    usleep(10000);
    tacio_pool_blocking_end();
    return false;
}

static void accept_loop(struct acceptor *a)
{
    struct listener *l = a->l;
    for (;;) {
        tacio_status_t st = tacio_accept(tacio_pool_io_handle(l->io), &a->op, &a->peer);
        if (st == TACIO_PENDING)
            return;
        if (st == TACIO_SUCCESS)
            conn_start(l, (int)a->op.bytes, &a->peer);
        else if (acceptor_failed(a, st))
            return;
    }
}

/* Shared listeners (share_listeners): every queue waits for the socket to be
 * readable and takes connections with accept4(2) itself. A queue busy in
 * callbacks sees the readiness late and finds the backlog empty, so the queue
 * that is free first takes each new connection, as nginx's workers do with
 * EPOLLEXCLUSIVE. Pending accepts would be served in the kernel's FIFO order
 * instead, busy queue or not. A few per wake-up, so that a burst is spread. */
#define POLL_TAKE 4

/* False when the acceptor ended (see acceptor_failed). */
static bool take_connections(struct acceptor *a)
{
    struct listener *l = a->l;
    for (int i = 0; i < POLL_TAKE; i++) {
        /* A draining queue would refuse them: leave them to the queues
         * that still accept on this socket. */
        if (atomic_load_explicit(&l->q->draining, memory_order_relaxed))
            return !acceptor_failed(a, TACIO_CANCELLED);
        /* Ask first: an accept4 that finds the backlog empty allocates and
         * frees a socket (1.9 us here, against 0.2 us for this poll), and
         * every shard that loses the race for a connection makes one. */
        struct pollfd pf = {.fd = l->fd, .events = POLLIN};
        if (poll(&pf, 1, 0) == 0)
            break;
        tacio_addr_t peer;
        peer.len = sizeof peer.u;
        int fd = accept4(l->fd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_start(l, fd, &peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return !acceptor_failed(a, tacio_status_from_errno(errno));
        break;
    }
    return true;
}

static void poll_loop(struct acceptor *a)
{
    struct listener *l = a->l;
    for (;;) {
        tacio_status_t st = tacio_poll(tacio_pool_io_handle(l->io), &a->op, TACIO_POLL_IN);
        if (st == TACIO_PENDING)
            return;
        if (st == TACIO_SUCCESS ? !take_connections(a) : acceptor_failed(a, st))
            return;
    }
}

static void on_accept(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                      uint64_t bytes)
{
    (void)io;
    (void)ctx;
    struct acceptor *a = tacio_container_of(op, struct acceptor, op);
    struct listener *l = a->l;
    if (st == TACIO_SUCCESS) {
        if (!l->by_poll)
            conn_start(l, (int)bytes, &a->peer);
        else if (!take_connections(a))
            return;
    } else if (acceptor_failed(a, st)) {
        return;
    }
    if (l->by_poll)
        poll_loop(a);
    else
        accept_loop(a);
}

/* ---- timer --------------------------------------------------------------------------- */

static void on_tick(tacio_pool_timer_t *t, void *ctx)
{
    (void)t;
    tacio_http_queue_t *q = ctx;
    uint64_t now = now_ns();
    pthread_mutex_lock(&q->mu);
    size_t n = 0, cap = q->open;
    struct conn **due = cap ? malloc(cap * sizeof *due) : NULL;
    for (struct conn *c = q->all; c && due && n < cap; c = c->anext) {
        uint64_t dl = atomic_load_explicit(&c->deadline, memory_order_relaxed);
        uint64_t cd = atomic_load_explicit(&c->cert_deadline, memory_order_relaxed);
        if ((dl && now >= dl) || (cd && now >= cd)) {
            conn_ref(c);
            due[n++] = c;
        }
    }
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        struct conn *c = due[i];
        struct done d = {0};
        pthread_mutex_lock(&c->mu);
        uint64_t dl = atomic_load_explicit(&c->deadline, memory_order_relaxed);
        uint64_t cd = atomic_load_explicit(&c->cert_deadline, memory_order_relaxed);
        if (!c->dead && cd && now >= cd && c->cert_op) {
            atomic_store_explicit(&c->cert_deadline, 0, memory_order_relaxed);
            tacio_http_op_t *op = c->cert_op;
            c->cert_op = NULL;
            c->cert_state = CERT_ABSENT;
            op_complete(&d, op, TACIO_IO_TIMEOUT, 0);
            qlog(q, "tls: peer %s: no answer to the certificate request", c->peer);
        }
        if (!c->dead && dl && now >= dl) {
            if (c->deadline_why) {
                atomic_fetch_add_explicit(&q->n.timeouts, 1, memory_order_relaxed);
                qlog(q, "http: peer %s: %s timeout, connection dropped", c->peer, c->deadline_why);
            }
            conn_kill(c, &d, TACIO_IO_TIMEOUT);
        }
        pthread_mutex_unlock(&c->mu);
        deliver(q, &d);
        conn_release(c);
    }
    free(due);
}

/* ---- the public API -------------------------------------------------------------------- */

tacio_status_t tacio_http_queue_create(tacio_pool_t *pool, const tacio_http_queue_options_t *opts,
                                       tacio_http_fn cb, void *ctx, tacio_http_queue_t **out)
{
    if (!pool || !cb || !out)
        return TACIO_INVALID_PARAMETER;
    /* Steering picks among a reuseport group's sockets: there must be one. */
    if (opts && opts->steer_by_cpu && (!opts->reuse_port || opts->share_listeners))
        return TACIO_INVALID_PARAMETER;
    tacio_http_queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return TACIO_NO_MEMORY;
    q->pool = pool;
    q->cb = cb;
    q->ctx = ctx;
    if (opts)
        q->o = *opts;
    if (!q->o.handshake_timeout_ms)
        q->o.handshake_timeout_ms = 10000;
    if (!q->o.request_timeout_ms)
        q->o.request_timeout_ms = 10000;
    if (!q->o.idle_timeout_ms)
        q->o.idle_timeout_ms = 30000;
    if (!q->o.max_connections)
        q->o.max_connections = 10000;
    struct tacio__http_limits lim = {q->o.max_head, q->o.max_headers, q->o.max_target,
                                     q->o.max_body};
    tacio__http_parser_t tmp;
    tacio__http_parser_init(&tmp, &lim); /* clamps and fills defaults */
    q->limits = tmp.limits;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    tacio_status_t st = tacio_pool_timer_create(pool, on_tick, q, NULL, &q->timer);
    if (st == TACIO_SUCCESS)
        st = tacio_pool_timer_set(q->timer, TICK_NS, TICK_NS);
    if (st != TACIO_SUCCESS) {
        if (q->timer)
            tacio_pool_timer_close(q->timer, TACIO_POOL_WAIT);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        free(q);
        return st;
    }
    *out = q;
    return TACIO_SUCCESS;
}

static tacio_status_t parse_url(const char *url, bool *tls, struct sockaddr_storage *ss,
                                socklen_t *len)
{
    const char *p;
    if (!strncmp(url, "https://", 8))
        *tls = true, p = url + 8;
    else if (!strncmp(url, "http://", 7))
        *tls = false, p = url + 7;
    else
        return TACIO_INVALID_PARAMETER;
    char host[64];
    const char *port_s;
    if (*p == '[') {
        const char *e = strchr(p, ']');
        if (!e || (size_t)(e - p - 1) >= sizeof host || e[1] != ':')
            return TACIO_INVALID_PARAMETER;
        memcpy(host, p + 1, (size_t)(e - p - 1));
        host[e - p - 1] = '\0';
        port_s = e + 2;
    } else {
        const char *e = strchr(p, ':');
        if (!e || (size_t)(e - p) >= sizeof host)
            return TACIO_INVALID_PARAMETER;
        memcpy(host, p, (size_t)(e - p));
        host[e - p] = '\0';
        port_s = e + 1;
    }
    char *end;
    long port = strtol(port_s, &end, 10);
    if (end == port_s || port < 0 || port > 65535 || (*end && *end != '/'))
        return TACIO_INVALID_PARAMETER;
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
    } else {
        return TACIO_INVALID_PARAMETER;
    }
    return TACIO_SUCCESS;
}

static SSL_CTX *make_ctx(tacio_http_queue_t *q, const tacio_http_tls_t *tls, X509_STORE **store)
{
    char rs[512];
    OSSL_LIB_CTX *lc = tacio__tls_libctx();
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, TLS_server_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* NO_AUTO_CHAIN: send the chain file as given; OpenSSL would otherwise
     * complete it from the client-CA store and send that root along. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
    /* Client chains of 64 KiB and more must get through. */
    SSL_CTX_set_max_cert_list(ctx, 4u << 20);
    if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1 ||
        !(key = tacio__tls_load_key(tls->key_file, lc)) || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    EVP_PKEY_free(key); /* the context holds its own reference */
    key = NULL;
    if (tls->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1 || !attach_vcache(ctx))
            goto fail;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file_ex(tls->ca_file, lc, NULL);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify_depth(ctx, 32);
    /* Verifying clients with session caching on needs a context id (else
     * a TLS 1.2 renegotiation fails "session id context uninitialized"). */
    static const unsigned char sid_ctx[] = "tacio-http";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    if (tls->client_cert == TACIO_HTTP_CLIENT_CERT_REQUIRED) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, keep_verdict);
        /* Stateful tickets: OpenSSL 3.0 makes a stateless one by encoding
         * the session and decoding it again, and decoding the client
         * certificate in it cost a third of a handshake (docs/http.md). */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_sess_set_cache_size(ctx, 4096);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    *store = SSL_CTX_get_cert_store(ctx);
    return ctx;
fail:
    qlog(q, "tls: cannot set up %s / %s: %s", tls->cert_file ? tls->cert_file : "(no cert)",
         tls->key_file ? tls->key_file : "(no key)", ssl_reasons(rs, sizeof rs));
    EVP_PKEY_free(key);
    SSL_CTX_free(ctx);
    return NULL;
}

/* TLS contexts by configuration: queues that listen with the same files
 * (same paths, and the files unchanged: device, inode, size, mtime) and
 * client certificate mode share one SSL_CTX, so the shards of one server
 * share its session cache, ticket keys and verdict cache whether they
 * share a listening socket or each have one (reuse_port, steer_by_cpu): a
 * client that comes back on another shard still resumes. */
struct tls_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct tls_entry {
    char *cert, *key, *ca; /* ca may be NULL */
    tacio_http_client_cert_mode_t mode;
    struct tls_file_id id[3];
    SSL_CTX *ctx;
    X509_STORE *store;
    unsigned users; /* listeners holding ctx */
    struct tls_entry *next;
};

static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_entry *tls_entries;

static bool file_id(const char *path, struct tls_file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (!path)
        return true;
    if (stat(path, &st) != 0)
        return false;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    return true;
}

static void tls_entry_free(struct tls_entry *e)
{
    free(e->cert);
    free(e->key);
    free(e->ca);
    free(e);
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* A context for tls: the one in use with the same configuration, or a new
 * one. Release it with tls_ctx_put. NULL: the log says why. */
static SSL_CTX *tls_ctx_get(tacio_http_queue_t *q, const tacio_http_tls_t *tls, X509_STORE **store)
{
    struct tls_file_id id[3];
    bool known = file_id(tls->cert_file, &id[0]) && file_id(tls->key_file, &id[1]) &&
                 file_id(tls->ca_file, &id[2]);
    pthread_mutex_lock(&tls_mu);
    for (struct tls_entry *e = known ? tls_entries : NULL; e; e = e->next)
        if (e->mode == tls->client_cert && same_str(e->cert, tls->cert_file) &&
            same_str(e->key, tls->key_file) && same_str(e->ca, tls->ca_file) &&
            !memcmp(e->id, id, sizeof id)) {
            e->users++;
            *store = e->store;
            pthread_mutex_unlock(&tls_mu);
            return e->ctx;
        }
    SSL_CTX *ctx = make_ctx(q, tls, store);
    struct tls_entry *e = ctx && known ? calloc(1, sizeof *e) : NULL;
    if (e) {
        e->cert = strdup(tls->cert_file);
        e->key = strdup(tls->key_file);
        e->ca = tls->ca_file ? strdup(tls->ca_file) : NULL;
        if (e->cert && e->key && (e->ca || !tls->ca_file)) {
            e->mode = tls->client_cert;
            memcpy(e->id, id, sizeof id);
            e->ctx = ctx;
            e->store = *store;
            e->users = 1;
            e->next = tls_entries;
            tls_entries = e;
        } else { /* not shared, still usable */
            tls_entry_free(e);
        }
    }
    pthread_mutex_unlock(&tls_mu);
    return ctx;
}

/* One more listener holds ctx (a shared listening socket's copy). */
static void tls_ctx_hold(SSL_CTX *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&tls_mu);
    struct tls_entry *e = tls_entries;
    while (e && e->ctx != ctx)
        e = e->next;
    if (e)
        e->users++;
    else
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&tls_mu);
}

static void tls_ctx_put(SSL_CTX *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&tls_mu);
    struct tls_entry **ep = &tls_entries;
    while (*ep && (*ep)->ctx != ctx)
        ep = &(*ep)->next;
    struct tls_entry *e = *ep;
    bool free_ctx = !e; /* not shared: the reference was the listener's own */
    if (e && --e->users == 0) {
        *ep = e->next;
        free_ctx = true;
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&tls_mu);
    if (e)
        tls_entry_free(e);
    if (free_ctx)
        SSL_CTX_free(ctx);
}

/* A listener never started: its descriptor, its TLS context reference, itself. */
static void listener_discard(struct listener *l)
{
    if (l->steered)
        tacio__steer_leave(l->fd);
    close(l->fd);
    tls_ctx_put(l->ctx);
    free(l);
}

/* Take l (and fd) into q and start its acceptors; on failure both are freed. */
static tacio_status_t listener_start(tacio_http_queue_t *q, struct listener *l, int fd)
{
    l->fd = fd;
    l->by_poll = q->o.share_listeners;
    tacio_status_t st = TACIO_SUCCESS;
    /* accept4 on a blocking socket would wait when another queue won the race. */
    if (l->by_poll && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        st = tacio_status_from_errno(errno);
    /* QUEUED_ALWAYS: an accept or poll that succeeds at once still goes
     * through the port, behind the completions already waiting, so a stream
     * of new connections cannot keep this loop from the open ones. */
    if (st == TACIO_SUCCESS)
        st = tacio_pool_io_open(q->pool, fd, TACIO_HANDLE_QUEUED_ALWAYS, on_accept, l, NULL, &l->io);
    if (st != TACIO_SUCCESS) {
        listener_discard(l);
        return st;
    }
    int n = l->by_poll ? 1 : N_ACCEPTS;
    pthread_mutex_lock(&q->mu);
    l->next = q->listeners;
    q->listeners = l;
    q->accepts_pending += (unsigned)n;
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < n; i++) {
        l->acc[i].l = l;
        tacio_op_init(&l->acc[i].op);
        if (l->by_poll)
            poll_loop(&l->acc[i]);
        else
            accept_loop(&l->acc[i]);
    }
    return TACIO_SUCCESS;
}

tacio_status_t tacio_http_queue_add_url(tacio_http_queue_t *q, const char *url,
                                        const tacio_http_tls_t *tls, uint16_t *port_out)
{
    if (!q || !url)
        return TACIO_INVALID_PARAMETER;
    bool is_tls;
    struct sockaddr_storage ss;
    socklen_t slen;
    tacio_status_t st = parse_url(url, &is_tls, &ss, &slen);
    if (st != TACIO_SUCCESS)
        return st;
    if (is_tls && (!tls || !tls->cert_file || !tls->key_file))
        return TACIO_INVALID_PARAMETER;
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return TACIO_NO_MEMORY;
    l->q = q;
    if (is_tls) {
        l->ctx = tls_ctx_get(q, tls, &l->store);
        if (!l->ctx) {
            free(l);
            return TACIO_UNSUCCESSFUL;
        }
        l->mode = tls->client_cert;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (q->o.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
            int e = errno; /* reported below with the listen failures */
            close(fd);
            fd = -1;
            errno = e;
        }
    }
    /* A steered group's order is the order its sockets began to listen:
     * the join follows the listen with no other in between. */
    static pthread_mutex_t steer_mu = PTHREAD_MUTEX_INITIALIZER;
    bool steer = q->o.reuse_port && q->o.steer_by_cpu;
    if (steer)
        pthread_mutex_lock(&steer_mu);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 4096) < 0) {
        st = tacio_status_from_errno(errno);
        qlog(q, "listen %s: %s", url, strerror(errno));
    } else if (steer && (st = tacio__steer_join(fd, q->o.cpu)) != TACIO_SUCCESS) {
        qlog(q, "listen %s: steering by CPU: %s", url, tacio_status_name(st));
    } else {
        l->steered = steer;
    }
    if (steer)
        pthread_mutex_unlock(&steer_mu);
    if (st != TACIO_SUCCESS || fd < 0) {
        if (st == TACIO_SUCCESS)
            st = TACIO_UNSUCCESSFUL;
        if (fd >= 0)
            close(fd);
        tls_ctx_put(l->ctx);
        free(l);
        return st;
    }
    slen = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &slen);
    uint16_t port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    st = listener_start(q, l, fd);
    if (st == TACIO_SUCCESS && port_out)
        *port_out = port;
    return st;
}

tacio_status_t tacio_http_queue_share_listeners(tacio_http_queue_t *q, tacio_http_queue_t *from)
{
    if (!q || !from || q == from || !q->o.share_listeners || !from->o.share_listeners)
        return TACIO_INVALID_PARAMETER;
    /* Copied under from's lock (its list may grow meanwhile), started after. */
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&from->mu);
    for (struct listener *f = from->listeners; f; f = f->next)
        cap++;
    struct listener **v = cap ? calloc(cap, sizeof *v) : NULL;
    tacio_status_t st = cap ? (v ? TACIO_SUCCESS : TACIO_NO_MEMORY) : TACIO_NOT_FOUND;
    for (struct listener *f = from->listeners; f && st == TACIO_SUCCESS; f = f->next) {
        if (f->closed)
            continue;
        struct listener *l = calloc(1, sizeof *l);
        int fd = l ? fcntl(f->fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (fd < 0) {
            st = l ? tacio_status_from_errno(errno) : TACIO_NO_MEMORY;
            free(l);
            break;
        }
        l->q = q;
        l->fd = fd;
        l->ctx = f->ctx;
        tls_ctx_hold(l->ctx);
        l->store = f->store;
        l->mode = f->mode;
        v[n++] = l;
    }
    pthread_mutex_unlock(&from->mu);
    if (st == TACIO_SUCCESS && n == 0)
        st = TACIO_NOT_FOUND; /* every listener of from is closed */
    size_t i = 0;
    for (; i < n && st == TACIO_SUCCESS; i++)
        st = listener_start(q, v[i], v[i]->fd);
    for (; i < n; i++) /* not started after a failure */
        listener_discard(v[i]);
    free(v);
    return st;
}

static void close_listeners(tacio_http_queue_t *q)
{
    for (;;) {
        struct listener *todo = NULL;
        pthread_mutex_lock(&q->mu); /* closed is read by accept_loop under it */
        for (struct listener *l = q->listeners; l && !todo; l = l->next)
            if (!l->closed) {
                l->closed = true;
                todo = l;
            }
        pthread_mutex_unlock(&q->mu);
        if (!todo)
            return;
        if (todo->steered)
            tacio__steer_leave(todo->fd);
        tacio_pool_io_close(todo->io, 0);
    }
}

/* Kill every live connection for which pick() says so. */
static void kill_where(tacio_http_queue_t *q, bool only_idle, tacio_status_t why)
{
    pthread_mutex_lock(&q->mu);
    size_t n = 0, cap = q->open;
    struct conn **v = cap ? malloc(cap * sizeof *v) : NULL;
    for (struct conn *c = q->all; c && v && n < cap; c = c->anext) {
        conn_ref(c);
        v[n++] = c;
    }
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        struct conn *c = v[i];
        struct done d = {0};
        pthread_mutex_lock(&c->mu);
        if (!only_idle || (c->state == C_IDLE && c->in_len == 0) || c->state == C_HANDSHAKE)
            conn_kill(c, &d, why);
        pthread_mutex_unlock(&c->mu);
        deliver(q, &d);
        conn_release(c);
    }
    free(v);
}

tacio_status_t tacio_http_queue_drain(tacio_http_queue_t *q)
{
    if (!q)
        return TACIO_INVALID_PARAMETER;
    pthread_mutex_lock(&q->mu);
    atomic_store_explicit(&q->draining, true, memory_order_relaxed);
    pthread_mutex_unlock(&q->mu);
    close_listeners(q);
    kill_where(q, true, TACIO_CANCELLED);
    return TACIO_SUCCESS;
}

tacio_status_t tacio_http_queue_close(tacio_http_queue_t *q)
{
    if (!q)
        return TACIO_INVALID_PARAMETER;
    /* Waiting here from a pool thread would wait for itself. */
    if (tacio_pool_timer_close(q->timer, TACIO_POOL_WAIT) == TACIO_POSSIBLE_DEADLOCK)
        return TACIO_POSSIBLE_DEADLOCK;
    struct done d = {0};
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    atomic_store_explicit(&q->draining, true, memory_order_relaxed);
    for (tacio_http_op_t *w = q->wait_head; w;) {
        tacio_http_op_t *next = w->priv_next;
        op_complete(&d, w, TACIO_CANCELLED, 0);
        w = next;
    }
    q->wait_head = q->wait_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    deliver(q, &d);
    close_listeners(q);
    pthread_mutex_lock(&q->mu);
    while (q->accepts_pending > 0)
        pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
    kill_where(q, false, TACIO_CANCELLED);
    pthread_mutex_lock(&q->mu);
    while (q->allocated > 0)
        pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
    for (struct listener *l = q->listeners; l;) {
        struct listener *next = l->next;
        tls_ctx_put(l->ctx);
        free(l);
        l = next;
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
    return TACIO_SUCCESS;
}

tacio_status_t tacio_http_receive_request(tacio_http_queue_t *q, uint64_t request_id,
                                          tacio_http_op_t *op, void *buf, size_t len)
{
    if (!q || !op || (len && !buf) ||
        ((uintptr_t)buf % _Alignof(tacio_http_request_t)) != 0)
        return TACIO_INVALID_PARAMETER;
    if (op_busy(op))
        return TACIO_OP_IN_USE;
    pthread_mutex_lock(&q->mu);
    if (q->closing) {
        pthread_mutex_unlock(&q->mu);
        return sync_result(q, op, TACIO_FILE_CLOSED, 0);
    }
    struct conn *c = q->ready_head;
    if (request_id)
        while (c && c->req_id != request_id)
            c = c->rnext;
    if (c) {
        size_t size = c->req_size;
        tacio_status_t st = request_give_locked(q, c, op, buf, len);
        pthread_mutex_unlock(&q->mu);
        return sync_result(q, op, st, size);
    }
    if (request_id) {
        pthread_mutex_unlock(&q->mu);
        return sync_result(q, op, TACIO_NOT_FOUND, 0);
    }
    op_pending(op);
    op->priv_buf = buf;
    op->priv_len = len;
    if (q->wait_tail)
        q->wait_tail->priv_next = op;
    else
        q->wait_head = op;
    q->wait_tail = op;
    pthread_mutex_unlock(&q->mu);
    return TACIO_PENDING;
}

/* The connection of request_id, locked and referenced, if request_id is its
 * current request; else NULL and *st says why. */
static struct conn *conn_of(tacio_http_queue_t *q, uint64_t request_id, tacio_status_t *st)
{
    struct conn *c = lookup(q, request_id);
    if (!c) {
        *st = TACIO_NOT_FOUND;
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    if (c->dead || c->req_id != request_id || c->state != C_ACTIVE) {
        *st = c->dead ? TACIO_CONNECTION_ABORTED : TACIO_NOT_FOUND;
        pthread_mutex_unlock(&c->mu);
        conn_release(c);
        return NULL;
    }
    return c;
}

static void conn_done(struct conn *c, struct done *d)
{
    pthread_mutex_unlock(&c->mu);
    deliver(c->q, d);
    conn_release(c);
}

/* The start of every operation on a request's connection, after its own
 * argument checks: op free, then the connection of request_id, locked and
 * referenced (release it with conn_done), with op stamped with the id.
 * NULL: *st is the status to return, already a synchronous result unless
 * it is OP_IN_USE (a busy op is the caller's, and is left untouched). */
static struct conn *op_start(tacio_http_queue_t *q, uint64_t request_id, tacio_http_op_t *op,
                             tacio_status_t *st)
{
    if (op_busy(op)) {
        *st = TACIO_OP_IN_USE;
        return NULL;
    }
    struct conn *c = conn_of(q, request_id, st);
    if (!c) {
        *st = sync_result(q, op, *st, 0);
        return NULL;
    }
    op->request_id = request_id;
    return c;
}

tacio_status_t tacio_http_receive_body(tacio_http_queue_t *q, uint64_t request_id,
                                       tacio_http_op_t *op, void *buf, size_t len)
{
    if (!q || !op || !buf || !len)
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st;
    struct conn *c = op_start(q, request_id, op, &st);
    if (!c)
        return st;
    struct done d = {0};
    if (c->body_op) {
        conn_done(c, &d);
        return TACIO_OP_IN_USE;
    }
    if (c->parser.expect_continue && !c->sent_continue && !c->resp_started) {
        c->sent_continue = true;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        pout_append(c, cont, sizeof cont - 1);
    }
    uint64_t got = 0;
    st = body_fill(c, buf, len, &got);
    if (st == TACIO_PENDING && c->eof)
        st = TACIO_CONNECTION_ABORTED;
    if (c->body_error && !c->resp_started) {
        /* The library answers (413, 400) and closes; the caller learns why. */
        reject(c, &d, c->parser.http_status, tacio__http_error_name(c->parser.error));
    }
    if (st != TACIO_PENDING) {
        start_recv(c, &d); /* room again for input */
        flush(c, &d);
        conn_done(c, &d);
        return sync_result(q, op, st, got);
    }
    op_pending(op);
    op->priv_buf = buf;
    op->priv_len = len;
    c->body_op = op;
    atomic_store_explicit(&c->deadline, ms_from_now(q->o.request_timeout_ms), memory_order_relaxed);
    c->deadline_why = "body";
    start_recv(c, &d);
    flush(c, &d);
    conn_done(c, &d);
    return TACIO_PENDING;
}

/* Queue a send op covering everything appended so far; flush; decide. */
static tacio_status_t send_finish(struct conn *c, struct done *d, tacio_http_op_t *op,
                                  uint64_t body_bytes)
{
    op_pending(op);
    op->priv_len = (size_t)body_bytes;
    op->priv_plain = c->file_op == op ? UINT64_MAX : c->plain_appended;
    op->priv_target = UINT64_MAX;
    if (c->sends_tail)
        c->sends_tail->priv_next = op;
    else
        c->sends_head = op;
    c->sends_tail = op;
    c->starting = op;
    flush(c, d);
    conn_advance(c, d); /* a finished response lets the next request in */
    flush(c, d);
    start_recv(c, d);
    c->starting = NULL;
    if (c->dead) {
        /* conn_kill skipped op: it is ours to report. */
        op->priv_state = 0;
        return TACIO_CONNECTION_ABORTED;
    }
    if (c->sends_head == op && op->priv_target != UINT64_MAX && op->priv_target <= c->sent_total) {
        c->sends_head = op->priv_next;
        if (!c->sends_head)
            c->sends_tail = NULL;
        op->priv_state = 0;
        op->priv_next = NULL;
        return TACIO_SUCCESS;
    }
    complete_sends(c, d); /* ops behind it may be due now */
    return TACIO_PENDING;
}

static bool append_body(struct conn *c, const void *data, size_t len)
{
    if (c->is_head || len == 0)
        return true;
    if (c->resp_chunked) {
        char hdr[32];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
        return pout_append(c, hdr, (size_t)n) && pout_append(c, data, len) &&
               pout_append(c, "\r\n", 2);
    }
    return pout_append(c, data, len);
}

static void response_end(struct conn *c);

/* The next piece of a file body, once everything before it is out: a
 * large file never sits in memory whole. True if bytes were queued. */
static bool file_pump(struct conn *c, struct done *d)
{
    if (!c->file_open || c->dead)
        return false;
    char buf[65536];
    size_t want = c->file_left < sizeof buf ? (size_t)c->file_left : sizeof buf;
    ssize_t r = pread(c->file_fd, buf, want, (off_t)c->file_off);
    if (r <= 0 || !append_body(c, buf, (size_t)r)) {
        /* The headers promised a length we cannot deliver: close. */
        qlog(c->q, "http: peer %s: file body read failed (%s)", c->peer,
             r < 0 ? strerror(errno) : r == 0 ? "file shorter than announced" : "no memory");
        close(c->file_fd);
        c->file_open = false;
        conn_kill(c, d, TACIO_CONNECTION_ABORTED);
        return false;
    }
    c->file_off += (uint64_t)r;
    c->file_left -= (uint64_t)r;
    if (c->file_left == 0) {
        close(c->file_fd);
        c->file_open = false;
        if (c->file_end)
            response_end(c);
        c->file_op->priv_plain = c->plain_appended; /* now it has an end */
        c->file_op = NULL;
    }
    return true;
}

static void response_end(struct conn *c)
{
    if (c->resp_chunked && !c->is_head)
        pout_append(c, "0\r\n\r\n", 5);
    c->resp_done = true;
    if (!c->keep_alive)
        c->close_after = true;
    tacio_http_queue_t *q = c->q;
    pthread_mutex_lock(&q->mu);
    ready_unlink_locked(q, c); /* answered without being received */
    pthread_mutex_unlock(&q->mu);
}

tacio_status_t tacio_http_send_response(tacio_http_queue_t *q, uint64_t request_id,
                                        tacio_http_op_t *op, const tacio_http_response_t *resp)
{
    if (!q || !op || !resp || resp->status < 100 || resp->status > 999 ||
        (resp->body_len && !resp->body) || (resp->header_count && !resp->headers))
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st;
    struct conn *c = op_start(q, request_id, op, &st);
    if (!c)
        return st;
    struct done d = {0};
    if (c->resp_started) {
        conn_done(c, &d);
        return sync_result(q, op, TACIO_INVALID_DEVICE_STATE, 0);
    }
    bool more = resp->flags & TACIO_HTTP_SEND_MORE;
    bool from_file = !resp->body && resp->file_len > 0;
    uint64_t blen = from_file ? resp->file_len : resp->body_len;
    bool no_body = resp->status == 204 || resp->status == 304 || resp->status < 200;
    int file_fd = -1;
    if (from_file && !no_body && !c->is_head) {
        file_fd = fcntl(resp->file_fd, F_DUPFD_CLOEXEC, 0);
        if (file_fd < 0) {
            st = tacio_status_from_errno(errno);
            conn_done(c, &d);
            return sync_result(q, op, st, 0);
        }
    }
    if (resp->flags & TACIO_HTTP_SEND_CLOSE || atomic_load_explicit(&q->draining, memory_order_relaxed) || c->eof)
        c->keep_alive = false;
    c->resp_chunked = (resp->flags & TACIO_HTTP_SEND_CHUNKED) && !no_body;
    char line[512];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", resp->status,
                     resp->reason ? resp->reason : reason_phrase(resp->status));
    bool ok = pout_append(c, line, (size_t)n);
    for (size_t i = 0; ok && i < resp->header_count; i++) {
        const tacio_http_header_t *h = &resp->headers[i];
        ok = pout_append(c, h->name, h->name_len) && pout_append(c, ": ", 2) &&
             pout_append(c, h->value, h->value_len) && pout_append(c, "\r\n", 2);
    }
    if (c->resp_chunked)
        n = snprintf(line, sizeof line, "Transfer-Encoding: chunked\r\n");
    else if (no_body)
        n = 0;
    else
        n = snprintf(line, sizeof line, "Content-Length: %llu\r\n",
                     (unsigned long long)(more ? resp->content_length : blen));
    ok = ok && pout_append(c, line, (size_t)n);
    if (!c->keep_alive)
        ok = ok && pout_append(c, "Connection: close\r\n", 19);
    ok = ok && pout_append(c, "\r\n", 2);
    c->resp_started = true;
    if (file_fd >= 0) {
        /* Streamed by file_pump as the output drains; the response ends
         * (and op gets its end) when the last piece is queued. */
        c->file_open = true;
        c->file_fd = file_fd;
        c->file_off = resp->file_offset;
        c->file_left = resp->file_len;
        c->file_end = !more;
        c->file_op = op;
    } else if (ok && !no_body && !from_file) {
        ok = append_body(c, resp->body, resp->body_len);
    }
    if (!ok) {
        conn_kill(c, &d, TACIO_NO_MEMORY);
        conn_done(c, &d);
        return sync_result(q, op, TACIO_NO_MEMORY, 0);
    }
    if ((!more || no_body) && !c->file_open)
        response_end(c);
    st = send_finish(c, &d, op, blen);
    conn_done(c, &d);
    if (st != TACIO_PENDING)
        return sync_result(q, op, st, st == TACIO_SUCCESS ? blen : 0);
    return TACIO_PENDING;
}

tacio_status_t tacio_http_send_body(tacio_http_queue_t *q, uint64_t request_id, tacio_http_op_t *op,
                                    const void *data, size_t len, unsigned flags)
{
    if (!q || !op || (len && !data))
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st;
    struct conn *c = op_start(q, request_id, op, &st);
    if (!c)
        return st;
    struct done d = {0};
    if (!c->resp_started || c->resp_done || c->file_open) {
        /* (a file body still streaming would be overtaken) */
        conn_done(c, &d);
        return sync_result(q, op, TACIO_INVALID_DEVICE_STATE, 0);
    }
    if (!append_body(c, data, len)) {
        conn_kill(c, &d, TACIO_NO_MEMORY);
        conn_done(c, &d);
        return sync_result(q, op, TACIO_NO_MEMORY, 0);
    }
    if (!(flags & TACIO_HTTP_SEND_MORE))
        response_end(c);
    st = send_finish(c, &d, op, len);
    conn_done(c, &d);
    if (st != TACIO_PENDING)
        return sync_result(q, op, st, st == TACIO_SUCCESS ? len : 0);
    return TACIO_PENDING;
}

tacio_status_t tacio_http_receive_client_cert(tacio_http_queue_t *q, uint64_t request_id,
                                              tacio_http_op_t *op, void *buf, size_t len)
{
    if (!q || !op || (len && !buf) ||
        ((uintptr_t)buf % _Alignof(tacio_http_client_cert_t)) != 0)
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st;
    struct conn *c = op_start(q, request_id, op, &st);
    if (!c)
        return st;
    struct done d = {0};
    switch (c->cert_state) {
    case CERT_HAVE:
        if (!c->cert_blob && !cert_build(c)) {
            c->cert_state = CERT_ABSENT;
            conn_done(c, &d);
            return sync_result(q, op, TACIO_NOT_FOUND, 0);
        }
        st = cert_copy(c, buf, len);
        {
            size_t size = c->cert_size;
            conn_done(c, &d);
            return sync_result(q, op, st, size);
        }
    case CERT_REQUESTED:
        conn_done(c, &d);
        return TACIO_OP_IN_USE;
    case CERT_ABSENT:
        conn_done(c, &d);
        return sync_result(q, op, TACIO_NOT_FOUND, 0);
    case CERT_NONE:
        break;
    }
    if (!c->tls || c->l->mode != TACIO_HTTP_CLIENT_CERT_ON_DEMAND) {
        conn_done(c, &d);
        return sync_result(q, op, TACIO_NOT_FOUND, 0);
    }
    verdict_reset(c);
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, keep_verdict);
    bool ok;
    char rs[512];
    if (SSL_version(c->ssl) >= TLS1_3_VERSION) {
        ok = SSL_verify_client_post_handshake(c->ssl) == 1;
    } else {
        /* A resumed session would skip the certificate request. */
        SSL_set_options(c->ssl, SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
        ok = SSL_get_secure_renegotiation_support(c->ssl) && SSL_renegotiate(c->ssl) == 1;
    }
    if (ok) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            ok = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
        }
    }
    if (!ok) {
        qlog(q, "tls: peer %s: cannot ask for a client certificate (%s): %s", c->peer,
             SSL_get_version(c->ssl), ssl_reasons(rs, sizeof rs));
        SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
        conn_done(c, &d);
        return sync_result(q, op, TACIO_NOT_SUPPORTED, 0);
    }
    ERR_clear_error();
    atomic_fetch_add_explicit(&q->n.cert_requests, 1, memory_order_relaxed);
    op_pending(op);
    op->priv_buf = buf;
    op->priv_len = len;
    c->cert_op = op;
    c->cert_state = CERT_REQUESTED;
    c->got_finished = false;
    atomic_store_explicit(&c->cert_deadline, ms_from_now(q->o.request_timeout_ms),
                          memory_order_relaxed);
    flush(c, &d);
    start_recv(c, &d);
    conn_done(c, &d);
    return TACIO_PENDING;
}

tacio_status_t tacio_http_queue_stats(tacio_http_queue_t *q, tacio_http_stats_t *out)
{
    if (!q || !out)
        return TACIO_INVALID_PARAMETER;
    pthread_mutex_lock(&q->mu);
    out->open = q->open;
    pthread_mutex_unlock(&q->mu);
#define L(f) atomic_load_explicit(&q->n.f, memory_order_relaxed)
    out->accepted = L(accepted);
    out->refused = L(refused);
    out->handshakes = L(handshakes);
    out->handshake_errors = L(handshake_errors);
    out->requests = L(requests);
    out->rejected = L(rejected);
    out->timeouts = L(timeouts);
    out->cert_requests = L(cert_requests);
    out->sync_results = L(sync_results);
    out->completions = L(completions);
    out->completions_success = L(c_success);
    out->completions_overflow = L(c_overflow);
    out->completions_cancelled = L(c_cancelled);
    out->completions_error = L(c_error);
    out->cert_verdicts_cached = L(cert_verdicts_cached);
#undef L
    return TACIO_SUCCESS;
}

tacio_status_t tacio_http_peer(tacio_http_queue_t *q, uint64_t request_id, char *buf, size_t len)
{
    if (!q || !buf || !len)
        return TACIO_INVALID_PARAMETER;
    struct conn *c = lookup(q, request_id);
    if (!c)
        return TACIO_NOT_FOUND;
    pthread_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->peer);
    pthread_mutex_unlock(&c->mu);
    conn_release(c);
    return TACIO_SUCCESS;
}
