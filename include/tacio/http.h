/* tacio/http.h - an HTTP/1.1 and HTTPS request queue on a tacio pool.
 *
 * The model is a kernel HTTP server's request queue: the library accepts
 * connections on the URLs added to a queue, runs TLS (OpenSSL on memory
 * BIOs: every byte goes through tacio_recv/tacio_send on the socket),
 * parses requests and hands them to the application, which receives each
 * request into its own buffer, reads the entity body, sends the response and
 * may ask for the client's certificate, all asynchronously.
 *
 * THE RULE (docs/contract.md) holds for every start call here: a call
 * returns TACIO_PENDING, and then the queue's callback runs exactly once for
 * that operation record, later, on a pool thread; or any other status, and
 * then the operation is over, the callback never runs for it and the record
 * (and its buffer) is the caller's again at once. TACIO_BUFFER_OVERFLOW is
 * such a final status: it carries the size needed in op->bytes and never
 * completes (the seed case of section 1 of the contract).
 *
 * IDENTIFIERS: every request has a request_id (never 0, never reused in the
 * queue's life) and belongs to a connection (connection_id). A connection
 * hands out one request at a time: the next one (pipelined or not) is
 * parsed only after the response to the current one has been sent in full,
 * so responses are always in request order.
 *
 * GLOBAL THREAD-SAFETY RULE: every function may be called from any thread,
 * pool threads and the queue's callback included, except tacio_http_queue_close
 * (not from a pool thread). Operations on distinct requests are independent.
 */
#ifndef TACIO_HTTP_H
#define TACIO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tacio/pool.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tacio_http_queue tacio_http_queue_t;

/* The operation record of this layer (the OVERLAPPED role), caller-owned,
 * zeroed before first use (or tacio_http_op_init).
 *   status      public, read-only: the final status once the operation is over.
 *   bytes       public, read-only: bytes produced; with TACIO_BUFFER_OVERFLOW
 *               the size needed.
 *   request_id  public, read-only: the request the result is about (receive
 *               request: the one received, or the one that did not fit).
 *   user        public: the caller's, never touched.
 *   priv_*      private. */
typedef struct tacio_http_op {
    tacio_status_t status;
    uint32_t priv_state;
    uint64_t bytes;
    uint64_t request_id;
    void *user;
    struct tacio_http_op *priv_next;
    void *priv_buf;
    size_t priv_len;
    uint64_t priv_target;
    uint64_t priv_plain;
} tacio_http_op_t;

static inline void tacio_http_op_init(tacio_http_op_t *op)
{
    *op = (tacio_http_op_t){0};
}

/* The completion callback: op is the caller's again (reusable, freeable),
 * status and bytes its final result (also in op->status, op->bytes). */
typedef void (*tacio_http_fn)(tacio_http_queue_t *q, void *ctx, tacio_http_op_t *op,
                              tacio_status_t status, uint64_t bytes);

/* One log line (no newline), e.g. a TLS error with the peer address and
 * OpenSSL's reason. Runs on any thread; must not call back into the queue. */
typedef void (*tacio_http_log_fn)(void *ctx, const char *line);

typedef struct tacio_http_queue_options {
    uint32_t max_head;              /* request head bytes; 0 = 16384 (over: 431) */
    uint32_t max_headers;           /* header fields; 0 = 100 (over: 431) */
    uint32_t max_target;            /* request-target bytes; 0 = 8192 (over: 414) */
    uint64_t max_body;              /* entity body bytes; 0 = 1 MiB (over: 413) */
    unsigned handshake_timeout_ms;  /* accept to TLS handshake done; 0 = 10000 */
    unsigned request_timeout_ms;    /* first byte of a head to its end, and any
                                       wait for body bytes or for a client
                                       certificate; 0 = 10000 */
    unsigned idle_timeout_ms;       /* keep-alive wait between requests; 0 = 30000 */
    unsigned max_connections;       /* open connections; 0 = 10000; over it a new
                                       connection is closed at once */
    tacio_http_log_fn log;          /* NULL: lines go to stderr */
    void *log_ctx;
    bool reuse_port;                /* listen with SO_REUSEPORT: several queues
                                       (each on its own pool, typically one
                                       thread each) listen on one address and
                                       the kernel spreads new connections
                                       among them by a hash of the addresses */
    bool share_listeners;           /* accept by readiness, so that queues sharing
                                       a listening socket (tacio_http_queue_share_listeners)
                                       each take new connections only when free:
                                       whichever is free first takes each one
                                       (tacio-httpd --shards; docs/http.md "Shards") */
    bool steer_by_cpu;              /* with reuse_port (not share_listeners): a new
                                       connection goes to the queue whose cpu is
                                       the CPU that received it, by hash if none
                                       is. Every queue listening on the address
                                       must ask for it, and each queue's pool
                                       should run on its CPU (tacio_pool_options_t.cpus;
                                       tacio-httpd --shard-accept cpu; docs/http.md "Shards").
                                       While connections come in on too few of the
                                       queues' CPUs (the busiest over 1.5/n of them,
                                       every 512), they go by hash instead, until
                                       it falls below 1.2/n; each change is logged */
    unsigned cpu;                   /* this queue's CPU, for steer_by_cpu */
} tacio_http_queue_options_t;

/* tacio_http_queue_create - a queue whose connections and callbacks run on
 * pool. cb runs once per operation that returned TACIO_PENDING.
 * RETURN VALUE: TACIO_SUCCESS and *out; TACIO_INVALID_PARAMETER; TACIO_NO_MEMORY;
 *   a pool status.
 * LIFETIME: the queue is the caller's until tacio_http_queue_close(); the
 *   pool must outlive it. opts is copied. */
TACIO_EXTERN tacio_status_t tacio_http_queue_create(tacio_pool_t *pool,
                                                    const tacio_http_queue_options_t *opts,
                                                    tacio_http_fn cb, void *ctx,
                                                    tacio_http_queue_t **out);

typedef enum tacio_http_client_cert_mode {
    TACIO_HTTP_CLIENT_CERT_NONE = 0,   /* never asked for */
    TACIO_HTTP_CLIENT_CERT_REQUIRED,   /* asked in the handshake; a handshake
                                          without a certificate that verifies
                                          against ca_file fails */
    TACIO_HTTP_CLIENT_CERT_ON_DEMAND,  /* asked only by tacio_http_receive_client_cert:
                                          TLS 1.3 post-handshake auth, TLS 1.2
                                          renegotiation */
} tacio_http_client_cert_mode_t;

typedef struct tacio_http_tls {
    const char *cert_file;          /* PEM: certificate, then its intermediates */
    const char *key_file;           /* PEM private key */
    const char *ca_file;            /* PEM bundle client certificates verify
                                       against (NULL: none trusted) */
    tacio_http_client_cert_mode_t client_cert;
} tacio_http_tls_t;

/* tacio_http_queue_add_url - listen on url: "http://127.0.0.1:8080/",
 * "https://[::1]:8443/" (a numeric IPv4 or bracketed IPv6 address, or
 * "localhost" for 127.0.0.1; port 0 binds an ephemeral port). https needs
 * tls (cert and key); http ignores it.
 * RETURN VALUE: TACIO_SUCCESS, *port_out (may be NULL) the bound port;
 *   TACIO_INVALID_PARAMETER (bad URL, https without tls); TACIO_UNSUCCESSFUL
 *   (OpenSSL refused the files: the log says why); a bind/listen status.
 * Queues that add https URLs with the same files (paths and contents
 * unchanged) and client certificate mode share one TLS context: sessions,
 * ticket keys and remembered verdicts (docs/http.md "Shards").
 * LIFETIME: url and tls are read during the call only. */
TACIO_EXTERN tacio_status_t tacio_http_queue_add_url(tacio_http_queue_t *q, const char *url,
                                                     const tacio_http_tls_t *tls,
                                                     uint16_t *port_out);

/* tacio_http_queue_share_listeners - q also accepts on every listening
 * socket from has now (same addresses, same TLS context and client
 * certificate mode; later tacio_http_queue_add_url calls on from are not
 * shared). Each queue holds its own descriptor of the socket: closing or
 * draining one queue stops its accepting only, and the socket listens until
 * the last queue sharing it stops. Both queues must have been created with
 * share_listeners; each then takes a new connection when it is free (a
 * queue whose threads are all in callbacks leaves it to another), and a
 * connection stays on the queue that took it. Every queue that is waiting
 * is woken for each new connection; the losers find none (one accept4 that
 * fails with EAGAIN each), so keep the number of queues near the number of
 * CPUs.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (NULL, q == from, or
 *   a queue without share_listeners); TACIO_NOT_FOUND (from listens on
 *   nothing); TACIO_NO_MEMORY or a dup/pool status: a failure while copying
 *   (memory, dup) shares nothing; a failure starting one listener (pool)
 *   leaves those started before it shared, and none after it.
 * THREAD SAFETY: from must not be closed during the call. */
TACIO_EXTERN tacio_status_t tacio_http_queue_share_listeners(tacio_http_queue_t *q,
                                                             tacio_http_queue_t *from);

/* tacio_http_queue_close - stop accepting, close every connection, complete
 * every pending operation (TACIO_CANCELLED; their callbacks run before this
 * returns, some on the calling thread), free the queue.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_POSSIBLE_DEADLOCK from a pool thread
 *   (nothing done); TACIO_INVALID_PARAMETER. */
TACIO_EXTERN tacio_status_t tacio_http_queue_close(tacio_http_queue_t *q);

/* tacio_http_queue_drain - stop accepting new connections and close
 * connections idle between requests; requests in flight go on. For a
 * graceful shutdown: drain, wait for tacio_http_queue_stats().open to fall
 * (or a deadline), then close. RETURN VALUE: TACIO_SUCCESS. */
TACIO_EXTERN tacio_status_t tacio_http_queue_drain(tacio_http_queue_t *q);

/* ---- receive request ------------------------------------------------------- */

typedef enum tacio_http_body_kind {
    TACIO_HTTP_BODY_NONE = 0,
    TACIO_HTTP_BODY_LENGTH,
    TACIO_HTTP_BODY_CHUNKED,
} tacio_http_body_kind_t;

typedef struct tacio_http_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;
} tacio_http_header_t;

/* What receive request lays out at the start of the caller's buffer. Every
 * pointer points into the same buffer, after this struct; strings are
 * NUL-terminated (lengths exclude the NUL). */
typedef struct tacio_http_request {
    uint64_t request_id;
    uint64_t connection_id;
    const char *method; size_t method_len;
    const char *target; size_t target_len;
    const char *path;   size_t path_len;
    const char *query;  size_t query_len;    /* NULL when there was no '?' */
    unsigned version_major, version_minor;
    size_t header_count;
    const tacio_http_header_t *headers;
    tacio_http_body_kind_t body_kind;
    uint64_t content_length;                 /* BODY_LENGTH only */
    bool keep_alive;
    bool expect_continue;
} tacio_http_request_t;

/* tacio_http_receive_request - receive the next request of any connection
 * (request_id 0), or again the request request_id that did not fit before.
 * buf must be aligned for tacio_http_request_t.
 * RETURN VALUE:
 *   TACIO_SUCCESS: a request was ready and laid out; op->bytes its size,
 *     op->request_id its id. No callback.
 *   TACIO_BUFFER_OVERFLOW: a request was ready and does not fit: op->bytes is
 *     the size needed, op->request_id the id to receive it with; nothing was
 *     written; the request stays ready. No callback.
 *   TACIO_PENDING (request_id 0 only): the callback runs once, when a request
 *     arrives, with SUCCESS, or BUFFER_OVERFLOW with the size and id (same
 *     meaning as above), or TACIO_CANCELLED when the queue closes.
 *   TACIO_NOT_FOUND: request_id is not a ready request. TACIO_OP_IN_USE,
 *     TACIO_INVALID_PARAMETER (misaligned or NULL buf), TACIO_FILE_CLOSED
 *     (queue closing).
 * LIFETIME: op and buf are the library's from PENDING until the callback. */
TACIO_EXTERN tacio_status_t tacio_http_receive_request(tacio_http_queue_t *q, uint64_t request_id,
                                                       tacio_http_op_t *op, void *buf, size_t len);

/* tacio_http_receive_body - entity body bytes of request_id (chunked framing
 * removed). Sends "100 Continue" first when the client expects it.
 * RETURN VALUE: TACIO_SUCCESS with op->bytes >= 1 (buffered data);
 *   TACIO_END_OF_FILE: the body is complete (bytes 0); TACIO_PENDING: the
 *   callback runs once with SUCCESS and bytes, END_OF_FILE, or an error
 *   (TACIO_FILE_TOO_LARGE: the body passed max_body, the library answers 413
 *   and closes unless a response began; TACIO_IO_TIMEOUT;
 *   TACIO_CONNECTION_ABORTED; TACIO_CANCELLED); TACIO_NOT_FOUND (not the
 *   current request of a live connection); TACIO_OP_IN_USE (a body receive
 *   is already pending on that request). */
TACIO_EXTERN tacio_status_t tacio_http_receive_body(tacio_http_queue_t *q, uint64_t request_id,
                                                    tacio_http_op_t *op, void *buf, size_t len);

/* ---- send response ---------------------------------------------------------- */

#define TACIO_HTTP_SEND_MORE    0x1u  /* the body goes on: more tacio_http_send_body calls follow */
#define TACIO_HTTP_SEND_CHUNKED 0x2u  /* Transfer-Encoding: chunked instead of Content-Length */
#define TACIO_HTTP_SEND_CLOSE   0x4u  /* close the connection after this response */

typedef struct tacio_http_response {
    int status;                        /* 100..999 */
    const char *reason;                /* NULL: the standard phrase */
    const tacio_http_header_t *headers;/* extra fields (not Content-Length,
                                          Transfer-Encoding, Connection) */
    size_t header_count;
    const void *body;                  /* from memory ... */
    size_t body_len;
    int file_fd;                       /* ... or, when body is NULL and file_len > 0,
                                          file_len bytes of file_fd from file_offset */
    uint64_t file_offset, file_len;
    uint64_t content_length;           /* with SEND_MORE and without CHUNKED: the
                                          full body length to announce */
    unsigned flags;
} tacio_http_response_t;

/* tacio_http_send_response - send status line, headers and (a first part of)
 * the body of request_id's response. Without SEND_MORE the response is
 * complete: the library then handles keep-alive (reads the next request, or
 * closes when either side asked to). A HEAD request's body is not sent.
 * RETURN VALUE: TACIO_SUCCESS: every byte was written to the socket already;
 *   TACIO_PENDING: the callback runs once when it is (SUCCESS, bytes = the
 *   body bytes of this call) or the connection failed
 *   (TACIO_CONNECTION_ABORTED, TACIO_CANCELLED); TACIO_NOT_FOUND;
 *   TACIO_INVALID_DEVICE_STATE (a response was already started);
 *   TACIO_INVALID_PARAMETER; a file read status.
 * LIFETIME: resp, its headers and a memory body are copied during the call;
 *   a file body's fd is dup'ed and the file streamed (read as the output
 *   drains), so file_fd may be closed when the call returns. */
TACIO_EXTERN tacio_status_t tacio_http_send_response(tacio_http_queue_t *q, uint64_t request_id,
                                                     tacio_http_op_t *op,
                                                     const tacio_http_response_t *resp);

/* tacio_http_send_body - more body of a response started with SEND_MORE;
 * flags: SEND_MORE again, or 0 for the last part (may be empty). RETURN
 * VALUE, LIFETIME: as tacio_http_send_response (INVALID_DEVICE_STATE when
 * no response is open, or while a file body is still streaming). */
TACIO_EXTERN tacio_status_t tacio_http_send_body(tacio_http_queue_t *q, uint64_t request_id,
                                                 tacio_http_op_t *op, const void *data,
                                                 size_t len, unsigned flags);

/* ---- client certificate ----------------------------------------------------------- */

/* Verification verdict flags; 0 means the chain verified against ca_file
 * for client authentication. */
#define TACIO_HTTP_CERT_EXPIRED         0x01u
#define TACIO_HTTP_CERT_NOT_YET_VALID   0x02u
#define TACIO_HTTP_CERT_UNTRUSTED       0x04u
#define TACIO_HTTP_CERT_BAD_SIGNATURE   0x08u
#define TACIO_HTTP_CERT_REVOKED_UNKNOWN 0x10u
#define TACIO_HTTP_CERT_OTHER           0x20u

/* What receive client certificate lays out at the start of the buffer;
 * pointers point into the same buffer. */
typedef struct tacio_http_client_cert {
    uint64_t connection_id;
    uint32_t verify_flags;            /* TACIO_HTTP_CERT_* */
    int32_t x509_error;               /* OpenSSL's first X509_V_* code (0: ok) */
    const char *subject;              /* RFC 2253 */
    const char *issuer;
    const char *serial_hex;           /* upper-case hex */
    const char *sha256_hex;           /* "AB:CD:..." of the leaf's DER */
    unsigned char sha256[32];
    int64_t not_before, not_after;    /* Unix time */
    size_t chain_count;               /* certificates sent, leaf first */
    const unsigned char *der;         /* the chain as concatenated DER */
    size_t der_len;
} tacio_http_client_cert_t;

/* The first buffer size the seed's code used. */
#define TACIO_HTTP_CERT_FIRST_BUFFER 1500u

/* tacio_http_receive_client_cert - the certificate of request_id's
 * connection. buf aligned for tacio_http_client_cert_t.
 * RETURN VALUE:
 *   TACIO_SUCCESS: known (from the handshake or an earlier request) and laid
 *     out; op->bytes its size. No callback.
 *   TACIO_BUFFER_OVERFLOW: known, does not fit: op->bytes the size needed,
 *     nothing written, no callback. Call again with a bigger buffer.
 *   TACIO_PENDING (ON_DEMAND, not asked yet): the library asks the client
 *     (TLS 1.3 post-handshake auth, or TLS 1.2 renegotiation) and the
 *     callback runs once with: SUCCESS (laid out); BUFFER_OVERFLOW when a
 *     certificate arrived but does not fit (op->bytes the size needed; the
 *     certificate is now known, so the retry with a bigger buffer returns
 *     SUCCESS synchronously); TACIO_NOT_FOUND (the client sent none);
 *     TACIO_IO_TIMEOUT (no answer within request_timeout_ms);
 *     TACIO_CONNECTION_ABORTED; TACIO_CANCELLED.
 *   TACIO_NOT_FOUND: no certificate and none can be asked for (mode NONE,
 *     plain http, or the client already answered without one).
 *   TACIO_NOT_SUPPORTED: the client cannot be asked (TLS 1.3 without the
 *     post_handshake_auth extension, or renegotiation impossible).
 *   TACIO_OP_IN_USE: a certificate request is already pending on the
 *     connection. TACIO_NOT_FOUND also for an unknown request_id. */
TACIO_EXTERN tacio_status_t tacio_http_receive_client_cert(tacio_http_queue_t *q,
                                                           uint64_t request_id,
                                                           tacio_http_op_t *op, void *buf,
                                                           size_t len);

/* tacio_http_peer - the peer address ("127.0.0.1:5555", "[::1]:5555") of
 * request_id's connection, NUL-terminated into buf (truncated to len).
 * RETURN VALUE: TACIO_SUCCESS; TACIO_NOT_FOUND (connection gone);
 *   TACIO_INVALID_PARAMETER. Synchronous, no completion. */
TACIO_EXTERN tacio_status_t tacio_http_peer(tacio_http_queue_t *q, uint64_t request_id, char *buf,
                                            size_t len);

/* ---- counters ---------------------------------------------------------------------- */

typedef struct tacio_http_stats {
    uint64_t accepted;           /* connections accepted */
    uint64_t refused;            /* closed at once: max_connections */
    uint64_t open;               /* connections open now */
    uint64_t handshakes;         /* TLS handshakes completed */
    uint64_t handshake_errors;   /* TLS handshakes failed */
    uint64_t requests;           /* request heads parsed */
    uint64_t rejected;           /* requests the library answered itself (4xx/5xx) */
    uint64_t timeouts;           /* connections dropped by a timeout */
    uint64_t cert_requests;      /* post-handshake certificate requests sent */
    uint64_t sync_results;       /* start calls that returned a final status */
    uint64_t completions;        /* callbacks run */
    uint64_t completions_success, completions_overflow, completions_cancelled,
             completions_error;  /* callbacks by status */
    uint64_t cert_verdicts_cached; /* client chains not checked again: they verified
                                      cleanly before (docs/http.md "Verdict cache") */
} tacio_http_stats_t;

TACIO_EXTERN tacio_status_t tacio_http_queue_stats(tacio_http_queue_t *q, tacio_http_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
