/* src/http/parse.h - the HTTP/1.1 request parser (internal API).
 *
 * WHY OUR OWN PARSER, NOT libhttp-parser: Debian's libhttp-parser (2.9.4) is
 * deprecated upstream (replaced by llhttp, which Debian 12 does not package
 * as a C library), and it calls back per token, so a caller that must lay a
 * whole request out in one buffer ("receive request", BUFFER_OVERFLOW with
 * the exact size) would have to copy every token somewhere first. Its
 * leniency switches also differ from what request-smuggling defence needs
 * (it accepts obs-fold, and CL+TE unless told otherwise). What we need is
 * small: one byte-at-a-time state machine for the head, one for the body,
 * about 800 lines, fuzzed (tests/fuzz/fuzz-http-parse.c).
 *
 * MODEL
 *   Zero-copy head: the caller keeps the bytes of the current request's head
 *   contiguous in its own buffer (it has to anyway: the head is bounded by
 *   max_head and is laid out later from there) and calls
 *   tacio__http_parse_head() each time more bytes arrived, with the buffer
 *   start and the number of bytes held. The parser resumes where it stopped
 *   (no rescan: O(n) for any split, one byte at a time included) and records
 *   offsets, never pointers, so the caller may move or grow the buffer
 *   between calls as long as the bytes already given stay the same.
 *   Body: tacio__http_parse_body() decodes Content-Length and chunked bodies
 *   from any piece of input; data comes back as spans inside that input
 *   (chunk framing is skipped, not copied). The body decoder needs no
 *   contiguity.
 *   Pipelining: a request ends where parse_body returns DONE; head_len plus
 *   the body's consumed bytes is the request's size on the wire, and the
 *   next request starts right after it (tacio__http_parser_next()).
 *
 * LIMITS (struct tacio__http_limits; each has its own error and status):
 *   max_head    request line + header fields + the blank line, in bytes: 431
 *   max_headers number of header fields: 431
 *   max_target  request-target length in bytes: 414
 *   max_body    Content-Length, or the sum of chunk sizes: 413 (a
 *               Content-Length is refused as soon as the head ends, before
 *               any body byte is read)
 *
 * WHAT IS REJECTED (400 unless said) and why: see docs/http-parser.md. In
 * short, anything that lets two parsers disagree on where a request ends
 * (Content-Length with Transfer-Encoding, differing Content-Lengths,
 * chunked not last or twice, obs-fold, bare CR, bare LF, whitespace before
 * a colon, Transfer-Encoding in HTTP/1.0), malformed request lines and
 * tokens, a missing or repeated Host in HTTP/1.1; HTTP versions other than
 * 1.0 and 1.1 get 505; transfer codings other than chunked (e.g. "gzip,
 * chunked") get 501.
 *
 * After an ERROR the connection must be closed once the error response is
 * sent: the parser cannot know where the next request would start.
 *
 * THREAD SAFETY: a parser is used by one thread at a time (the one handling
 * its connection); distinct parsers are independent. No function touches
 * global state.
 */
#ifndef TACIO_HTTP_PARSE_H
#define TACIO_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The header array lives in the parser (no allocation per request), so
 * max_headers is capped by this. */
#define TACIO__HTTP_HEADERS_CAP 128u
/* Offsets are 32-bit; a head larger than this is not a use case. */
#define TACIO__HTTP_MAX_HEAD_CAP (1u << 24)
/* A chunk-size line (size, extensions) longer than this is refused (400):
 * extensions are ignored, so there is no reason to let one grow. */
#define TACIO__HTTP_CHUNK_LINE_MAX 4096u

struct tacio__http_limits {
    uint32_t max_head;      /* default 16384; capped at TACIO__HTTP_MAX_HEAD_CAP */
    uint32_t max_headers;   /* default 100; capped at TACIO__HTTP_HEADERS_CAP */
    uint32_t max_target;    /* default 8192 */
    uint64_t max_body;      /* default 1 MiB */
};

/* The defaults named above. */
void tacio__http_limits_default(struct tacio__http_limits *l);

typedef enum tacio__http_result {
    TACIO__HTTP_NEED_MORE = 0, /* all input consumed; call again with more */
    TACIO__HTTP_DONE,          /* head (parse_head) or body (parse_body) complete */
    TACIO__HTTP_DATA,          /* parse_body: a span of body data is ready */
    TACIO__HTTP_ERROR,         /* see p->error, p->http_status, p->status */
} tacio__http_result_t;

/* Why a request was refused. Each maps to one HTTP status (and one
 * tacio_status_t) in tacio__http_error_info(). */
typedef enum tacio__http_error {
    TACIO__HTTP_E_NONE = 0,
    TACIO__HTTP_E_HEAD_TOO_LARGE,     /* 431 */
    TACIO__HTTP_E_TOO_MANY_HEADERS,   /* 431 */
    TACIO__HTTP_E_TARGET_TOO_LONG,    /* 414 */
    TACIO__HTTP_E_BODY_TOO_LARGE,     /* 413 */
    TACIO__HTTP_E_BAD_METHOD,         /* 400: empty or non-token method */
    TACIO__HTTP_E_BAD_TARGET,         /* 400: bad char, fragment, wrong form */
    TACIO__HTTP_E_BAD_VERSION,        /* 400: not HTTP/DIGIT.DIGIT */
    TACIO__HTTP_E_VERSION,            /* 505: well-formed, not 1.0 or 1.1 */
    TACIO__HTTP_E_BAD_REQUEST_LINE,   /* 400: spacing, line end */
    TACIO__HTTP_E_BAD_HEADER_NAME,    /* 400: empty or non-token name */
    TACIO__HTTP_E_SPACE_BEFORE_COLON, /* 400 */
    TACIO__HTTP_E_BAD_HEADER_VALUE,   /* 400: control character in a value */
    TACIO__HTTP_E_OBS_FOLD,           /* 400: line folding (or space before the first field) */
    TACIO__HTTP_E_BARE_CR,            /* 400: CR not followed by LF */
    TACIO__HTTP_E_BARE_LF,            /* 400: LF not preceded by CR */
    TACIO__HTTP_E_BAD_CONTENT_LENGTH, /* 400: not 1*DIGIT */
    TACIO__HTTP_E_CONFLICTING_CONTENT_LENGTH, /* 400: differing values */
    TACIO__HTTP_E_CL_AND_TE,          /* 400: both framings */
    TACIO__HTTP_E_TE_NOT_CHUNKED,     /* 400: chunked not last, or twice */
    TACIO__HTTP_E_TE_HTTP10,          /* 400: Transfer-Encoding in HTTP/1.0 */
    TACIO__HTTP_E_TE_UNSUPPORTED,     /* 501: a coding we do not decode before chunked */
    TACIO__HTTP_E_BAD_TRANSFER_ENCODING, /* 400: empty or non-token coding */
    TACIO__HTTP_E_HOST,               /* 400: HTTP/1.1 without exactly one Host */
    TACIO__HTTP_E_BAD_CHUNK,          /* 400: chunk size, extension or CRLF */
    TACIO__HTTP_E_BAD_TRAILER,        /* 400: malformed trailer field */
    TACIO__HTTP_E_TRAILER_TOO_LARGE,  /* 431: trailer section over max_head */
    TACIO__HTTP_E_COUNT
} tacio__http_error_t;

/* The HTTP status to answer with, the tacio_status_t that stands for the
 * error in the library's own results (TACIO_INVALID_PARAMETER for 400,
 * TACIO_INVALID_BUFFER_SIZE for 414/431, TACIO_FILE_TOO_LARGE for 413,
 * TACIO_NOT_SUPPORTED for 505, TACIO_NOT_IMPLEMENTED for 501), and a
 * static name ("E_CL_AND_TE") for logs. Pure; any thread. */
int tacio__http_error_http_status(tacio__http_error_t e);
tacio_status_t tacio__http_error_status(tacio__http_error_t e);
const char *tacio__http_error_name(tacio__http_error_t e);

typedef enum tacio__http_body_kind {
    TACIO__HTTP_BODY_NONE = 0,  /* no Content-Length, no Transfer-Encoding */
    TACIO__HTTP_BODY_LENGTH,    /* Content-Length (possibly 0) */
    TACIO__HTTP_BODY_CHUNKED,
} tacio__http_body_kind_t;

/* A token of the head: offset and length inside the caller's head buffer. */
struct tacio__http_span {
    uint32_t off, len;
};

struct tacio__http_field {
    struct tacio__http_span name, value;   /* value without surrounding OWS */
};

/* All fields are read-only for the caller, except through the functions
 * below. Valid after parse_head returned DONE (until parser_next/init). */
typedef struct tacio__http_parser {
    struct tacio__http_limits limits;

    /* The result of the head. */
    uint32_t head_len;                /* bytes of the head, blank line included */
    struct tacio__http_span method, target, path, query;
    bool has_query;                   /* a '?' was present (query may be empty) */
    uint8_t version_major, version_minor;
    uint32_t header_count;
    struct tacio__http_field headers[TACIO__HTTP_HEADERS_CAP];
    tacio__http_body_kind_t body_kind;
    uint64_t content_length;          /* BODY_LENGTH only */
    bool keep_alive;                  /* false: close after the response */
    bool expect_continue;             /* "Expect: 100-continue" */

    /* Set on ERROR. */
    tacio__http_error_t error;
    int http_status;
    tacio_status_t status;
    uint64_t error_offset;            /* head: offset in the head; body: body bytes consumed */

    /* Private: where the machines stand. */
    uint32_t pos;                     /* head bytes scanned */
    uint8_t state, sub;
    uint32_t tok_start, last_nonws;
    uint32_t query_start;
    uint32_t host_count;
    uint8_t te_seen, te_chunked_last, te_chunked_count, te_other;
    uint8_t cl_seen, conn_close, conn_keep;
    uint8_t bstate;
    uint64_t chunk_left;              /* body bytes left in this chunk / body */
    uint64_t body_total;              /* decoded body bytes so far */
    uint64_t body_consumed;           /* wire bytes of the body so far */
    uint32_t line_len;                /* chunk-size line or trailer section length */
    uint32_t chunk_digits;
} tacio__http_parser_t;

/* tacio__http_parser_init - a parser for the first request of a connection.
 * limits NULL: the defaults; values over their cap are clamped, 0 means
 * the default. LIFETIME: limits is copied. */
void tacio__http_parser_init(tacio__http_parser_t *p, const struct tacio__http_limits *limits);

/* tacio__http_parser_next - ready for the next request on the connection
 * (same limits), after the previous one's body returned DONE. */
void tacio__http_parser_next(tacio__http_parser_t *p);

/* tacio__http_parse_head - go on parsing the request head.
 * buf[0..len) holds every byte of this request received so far, starting
 * with its first byte (leading empty lines included, RFC 9112 2.2 lets a
 * server skip them); the bytes given in earlier calls must be unchanged.
 * len smaller than in an earlier call is a caller bug (treated as no new
 * input).
 * RETURN VALUE: NEED_MORE (no verdict yet: every byte is part of the head),
 *   DONE (p->head_len is the head's size; buf[head_len..len) is body or the
 *   next request), ERROR (p->error; do not call again). DONE and ERROR are
 *   sticky: calling again returns the same.
 * LIFETIME: buf is only read during the call; the parser keeps offsets. */
tacio__http_result_t tacio__http_parse_head(tacio__http_parser_t *p, const char *buf, size_t len);

/* tacio__http_parse_body - decode body bytes, after parse_head's DONE.
 * in[0..len) are the next bytes of the connection after what was consumed
 * so far (the first call typically gets buf + head_len).
 * RETURN VALUE:
 *   DATA: *data points into in, *data_len >= 1 bytes of entity body;
 *         *consumed bytes of in were used (framing included). Call again
 *         with in + *consumed.
 *   NEED_MORE: *consumed == len, no data to hand out (framing only, or len 0).
 *   DONE: the body (trailers included) ended; *consumed bytes of in belong
 *         to this request, in + *consumed is the next request. A request
 *         with no body returns DONE with *consumed 0 at once.
 *   ERROR: p->error (413, 400, 431); close the connection.
 * LIFETIME: *data is inside in. */
tacio__http_result_t tacio__http_parse_body(tacio__http_parser_t *p, const char *in, size_t len,
                                            size_t *consumed, const char **data, size_t *data_len);

/* ---- the flat layout ("receive request into a caller buffer") -------------
 * The public struct will move to include/tacio/http.h. Every pointer in it
 * points into the same buffer, after the struct: first the header array,
 * then the strings, each NUL-terminated (the length excludes the NUL). So
 * the buffer can be handed around, copied with its pointers fixed up by the
 * owner, or freed in one piece. */
struct tacio__http_header_view {
    const char *name;  size_t name_len;   /* as received (case kept) */
    const char *value; size_t value_len;  /* OWS trimmed */
};

struct tacio__http_request_view {
    uint64_t request_id;          /* identifiers given by the queue */
    uint64_t connection_id;
    const char *method; size_t method_len;
    const char *target; size_t target_len;   /* request-target as received */
    const char *path;   size_t path_len;     /* target up to '?' (origin/absolute form) */
    const char *query;  size_t query_len;    /* after '?'; NULL when there was none */
    unsigned version_major, version_minor;
    size_t header_count;
    const struct tacio__http_header_view *headers;
    tacio__http_body_kind_t body_kind;
    uint64_t content_length;      /* BODY_LENGTH only */
    bool keep_alive;
    bool expect_continue;
};

/* The buffer given to tacio__http_layout must be aligned this much. */
#define TACIO__HTTP_VIEW_ALIGN _Alignof(struct tacio__http_request_view)

/* tacio__http_layout_size - exact bytes tacio__http_layout needs for the
 * request p parsed from head (the same buffer parse_head saw).
 * Requires parse_head's DONE. Pure. */
size_t tacio__http_layout_size(const tacio__http_parser_t *p);

/* tacio__http_layout - write the flat layout into out[0..size).
 * RETURN VALUE: TACIO_SUCCESS (*needed = bytes written);
 *   TACIO_BUFFER_OVERFLOW (size too small: *needed = the size required,
 *   nothing written, the same call with a big enough buffer succeeds);
 *   TACIO_INVALID_PARAMETER (head not DONE, or out misaligned for
 *   TACIO__HTTP_VIEW_ALIGN; out may be NULL only when size is 0).
 * LIFETIME: head is read during the call only; out belongs to the caller,
 *   the view at out is valid as long as out's bytes are. */
tacio_status_t tacio__http_layout(const tacio__http_parser_t *p, const char *head,
                                  uint64_t request_id, uint64_t connection_id,
                                  void *out, size_t size, size_t *needed);

/* First header named name (ASCII case-insensitive) in a view, or NULL. */
const struct tacio__http_header_view *
tacio__http_view_header(const struct tacio__http_request_view *v, const char *name);

#ifdef __cplusplus
}
#endif
#endif
