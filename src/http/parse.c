/* src/http/parse.c - HTTP/1.1 request head and body parser (see parse.h).
 *
 * Two byte-driven state machines. The head machine never looks back: every
 * decision is taken on the byte at p->pos, with what earlier bytes left in
 * the state, so feeding a request in any pieces gives the same result as
 * feeding it whole (the fuzz target checks exactly that). Semantic checks of
 * a header field (Content-Length, Transfer-Encoding, ...) run when its line
 * ends, on the field's bytes in the caller's buffer, which are complete and
 * contiguous by then.
 */
#include "http/parse.h"

#include <string.h>

enum {
    H_START, H_START_LF, H_METHOD, H_TARGET0, H_TARGET, H_VERSION, H_RL_LF,
    H_HDR_START, H_NAME, H_VALUE_LWS, H_VALUE, H_HDR_LF, H_END_LF,
    H_DONE, H_ERROR
};

enum {
    B_NONE, B_LENGTH, B_SIZE, B_SIZE_BWS, B_SIZE_EXT, B_SIZE_LF, B_DATA,
    B_DATA_CR, B_DATA_LF, B_TR_START, B_TR_NAME, B_TR_VALUE, B_TR_LF,
    B_TR_END_LF, B_DONE, B_ERROR
};

/* ---- errors ------------------------------------------------------------- */

static const struct {
    const char *name;
    int http;
} error_table[TACIO__HTTP_E_COUNT] = {
    [TACIO__HTTP_E_NONE] = { "E_NONE", 0 },
    [TACIO__HTTP_E_HEAD_TOO_LARGE] = { "E_HEAD_TOO_LARGE", 431 },
    [TACIO__HTTP_E_TOO_MANY_HEADERS] = { "E_TOO_MANY_HEADERS", 431 },
    [TACIO__HTTP_E_TARGET_TOO_LONG] = { "E_TARGET_TOO_LONG", 414 },
    [TACIO__HTTP_E_BODY_TOO_LARGE] = { "E_BODY_TOO_LARGE", 413 },
    [TACIO__HTTP_E_BAD_METHOD] = { "E_BAD_METHOD", 400 },
    [TACIO__HTTP_E_BAD_TARGET] = { "E_BAD_TARGET", 400 },
    [TACIO__HTTP_E_BAD_VERSION] = { "E_BAD_VERSION", 400 },
    [TACIO__HTTP_E_VERSION] = { "E_VERSION", 505 },
    [TACIO__HTTP_E_BAD_REQUEST_LINE] = { "E_BAD_REQUEST_LINE", 400 },
    [TACIO__HTTP_E_BAD_HEADER_NAME] = { "E_BAD_HEADER_NAME", 400 },
    [TACIO__HTTP_E_SPACE_BEFORE_COLON] = { "E_SPACE_BEFORE_COLON", 400 },
    [TACIO__HTTP_E_BAD_HEADER_VALUE] = { "E_BAD_HEADER_VALUE", 400 },
    [TACIO__HTTP_E_OBS_FOLD] = { "E_OBS_FOLD", 400 },
    [TACIO__HTTP_E_BARE_CR] = { "E_BARE_CR", 400 },
    [TACIO__HTTP_E_BARE_LF] = { "E_BARE_LF", 400 },
    [TACIO__HTTP_E_BAD_CONTENT_LENGTH] = { "E_BAD_CONTENT_LENGTH", 400 },
    [TACIO__HTTP_E_CONFLICTING_CONTENT_LENGTH] = { "E_CONFLICTING_CONTENT_LENGTH", 400 },
    [TACIO__HTTP_E_CL_AND_TE] = { "E_CL_AND_TE", 400 },
    [TACIO__HTTP_E_TE_NOT_CHUNKED] = { "E_TE_NOT_CHUNKED", 400 },
    [TACIO__HTTP_E_TE_HTTP10] = { "E_TE_HTTP10", 400 },
    [TACIO__HTTP_E_TE_UNSUPPORTED] = { "E_TE_UNSUPPORTED", 501 },
    [TACIO__HTTP_E_BAD_TRANSFER_ENCODING] = { "E_BAD_TRANSFER_ENCODING", 400 },
    [TACIO__HTTP_E_HOST] = { "E_HOST", 400 },
    [TACIO__HTTP_E_BAD_CHUNK] = { "E_BAD_CHUNK", 400 },
    [TACIO__HTTP_E_BAD_TRAILER] = { "E_BAD_TRAILER", 400 },
    [TACIO__HTTP_E_TRAILER_TOO_LARGE] = { "E_TRAILER_TOO_LARGE", 431 },
};

int tacio__http_error_http_status(tacio__http_error_t e)
{
    return (unsigned)e < TACIO__HTTP_E_COUNT ? error_table[e].http : 500;
}

const char *tacio__http_error_name(tacio__http_error_t e)
{
    return (unsigned)e < TACIO__HTTP_E_COUNT ? error_table[e].name : "E_UNKNOWN";
}

tacio_status_t tacio__http_error_status(tacio__http_error_t e)
{
    switch (tacio__http_error_http_status(e)) {
    case 0: return TACIO_SUCCESS;
    case 413: return TACIO_FILE_TOO_LARGE;
    case 414:
    case 431: return TACIO_INVALID_BUFFER_SIZE;
    case 501: return TACIO_NOT_IMPLEMENTED;
    case 505: return TACIO_NOT_SUPPORTED;
    default: return TACIO_INVALID_PARAMETER;
    }
}

/* ---- character classes (RFC 9110 5.6.2, 5.5; RFC 3986 for targets) ------ */

static inline bool is_alpha(unsigned char c)
{
    return (unsigned char)((c | 0x20) - 'a') < 26;
}

static inline bool is_digit(unsigned char c) { return (unsigned char)(c - '0') < 10; }

static inline bool is_tchar(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* field-vchar: VCHAR or obs-text. */
static inline bool is_vchar(unsigned char c) { return (c > 0x20 && c != 0x7f); }
static inline bool is_ws(unsigned char c) { return c == ' ' || c == '\t'; }
/* Request-target bytes: visible ASCII only; obs-text has no place in a URI. */
static inline bool is_target_char(unsigned char c) { return c > 0x20 && c < 0x7f; }

static inline int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* ASCII case-insensitive equality of s[0..n) and the NUL-terminated lit;
 * locale-free on purpose (strncasecmp follows LC_CTYPE). */
static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return false;
    return lit[n] == '\0';
}

/* ---- limits and set-up -------------------------------------------------- */

void tacio__http_limits_default(struct tacio__http_limits *l)
{
    l->max_head = 16384;
    l->max_headers = 100;
    l->max_target = 8192;
    l->max_body = 1u << 20;
}

void tacio__http_parser_init(tacio__http_parser_t *p, const struct tacio__http_limits *limits)
{
    struct tacio__http_limits d;
    tacio__http_limits_default(&d);
    if (limits) {
        if (limits->max_head)
            d.max_head = limits->max_head < TACIO__HTTP_MAX_HEAD_CAP ? limits->max_head
                                                                     : TACIO__HTTP_MAX_HEAD_CAP;
        if (limits->max_headers)
            d.max_headers = limits->max_headers < TACIO__HTTP_HEADERS_CAP
                                ? limits->max_headers : TACIO__HTTP_HEADERS_CAP;
        if (limits->max_target)
            d.max_target = limits->max_target;
        if (limits->max_body)
            d.max_body = limits->max_body;
    }
    memset(p, 0, sizeof *p);
    p->limits = d;
}

void tacio__http_parser_next(tacio__http_parser_t *p)
{
    struct tacio__http_limits l = p->limits;
    tacio__http_parser_init(p, &l);
}

static tacio__http_result_t fail(tacio__http_parser_t *p, tacio__http_error_t e, uint64_t off)
{
    p->error = e;
    p->http_status = tacio__http_error_http_status(e);
    p->status = tacio__http_error_status(e);
    p->error_offset = off;
    p->state = H_ERROR;
    p->bstate = B_ERROR;
    return TACIO__HTTP_ERROR;
}

/* ---- semantics of one header field --------------------------------------- */

/* Next element of a comma-separated list (RFC 9110 5.6.1) in v[*i..n),
 * OWS trimmed; empty elements are returned as such (len 0). */
static bool list_next(const char *v, size_t n, size_t *i, size_t *start, size_t *len)
{
    if (*i > n)
        return false;
    size_t s = *i;
    while (s < n && is_ws((unsigned char)v[s]))
        s++;
    size_t e = s;
    while (e < n && v[e] != ',')
        e++;
    *i = e + 1;
    size_t t = e;
    while (t > s && is_ws((unsigned char)v[t - 1]))
        t--;
    *start = s;
    *len = t - s;
    return true;
}

static tacio__http_error_t on_content_length(tacio__http_parser_t *p, const char *v, size_t n)
{
    size_t i = 0, s, len;
    while (list_next(v, n, &i, &s, &len)) {
        /* Even "5, 5" is allowed (RFC 9110 8.6), but an empty element is
         * not: it would be a way to hide a second value. */
        if (len == 0)
            return TACIO__HTTP_E_BAD_CONTENT_LENGTH;
        uint64_t val = 0;
        for (size_t k = s; k < s + len; k++) {
            unsigned char c = (unsigned char)v[k];
            if (!is_digit(c))
                return TACIO__HTTP_E_BAD_CONTENT_LENGTH;
            /* Saturate: any value this large is refused with 413 later. */
            if (val > (UINT64_MAX - 9) / 10)
                val = UINT64_MAX;
            else
                val = val * 10 + (uint64_t)(c - '0');
        }
        if (p->cl_seen && val != p->content_length)
            return TACIO__HTTP_E_CONFLICTING_CONTENT_LENGTH;
        p->cl_seen = 1;
        p->content_length = val;
    }
    return TACIO__HTTP_E_NONE;
}

static tacio__http_error_t on_transfer_encoding(tacio__http_parser_t *p, const char *v, size_t n)
{
    size_t i = 0, s, len, codings = 0;
    while (list_next(v, n, &i, &s, &len)) {
        if (len == 0)
            continue;
        size_t t = s;
        while (t < s + len && is_tchar((unsigned char)v[t]))
            t++;
        if (t == s)
            return TACIO__HTTP_E_BAD_TRANSFER_ENCODING;
        size_t r = t;
        while (r < s + len && is_ws((unsigned char)v[r]))
            r++;
        bool params = r < s + len;
        if (params && v[r] != ';')
            return TACIO__HTTP_E_BAD_TRANSFER_ENCODING;
        codings++;
        if (ieq(v + s, t - s, "chunked")) {
            /* chunked takes no parameters; "chunked;x" is a classic way to
             * make one parser see chunked and another not. */
            if (params)
                return TACIO__HTTP_E_BAD_TRANSFER_ENCODING;
            p->te_chunked_count++;
            p->te_chunked_last = 1;
        } else {
            p->te_other = 1;
            p->te_chunked_last = 0;
        }
    }
    if (codings == 0)
        return TACIO__HTTP_E_BAD_TRANSFER_ENCODING;
    p->te_seen = 1;
    return TACIO__HTTP_E_NONE;
}

static void on_connection(tacio__http_parser_t *p, const char *v, size_t n)
{
    size_t i = 0, s, len;
    while (list_next(v, n, &i, &s, &len)) {
        if (ieq(v + s, len, "close"))
            p->conn_close = 1;
        else if (ieq(v + s, len, "keep-alive"))
            p->conn_keep = 1;
    }
}

static tacio__http_error_t on_field(tacio__http_parser_t *p, const char *buf,
                                    const struct tacio__http_field *f)
{
    const char *name = buf + f->name.off, *val = buf + f->value.off;
    size_t nl = f->name.len, vl = f->value.len;

    if (ieq(name, nl, "content-length"))
        return on_content_length(p, val, vl);
    if (ieq(name, nl, "transfer-encoding"))
        return on_transfer_encoding(p, val, vl);
    if (ieq(name, nl, "connection"))
        on_connection(p, val, vl);
    else if (ieq(name, nl, "host"))
        p->host_count++;
    else if (ieq(name, nl, "expect") && ieq(val, vl, "100-continue"))
        p->expect_continue = true;
    return TACIO__HTTP_E_NONE;
}

/* ---- the request-target's form (RFC 9112 3.2) ---------------------------- */

static tacio__http_error_t on_target(tacio__http_parser_t *p, const char *buf)
{
    const char *t = buf + p->target.off;
    uint32_t n = p->target.len, off = p->target.off;
    const char *m = buf + p->method.off;
    /* Methods are case-sensitive (RFC 9110 9.1). */
    bool connect = p->method.len == 7 && memcmp(m, "CONNECT", 7) == 0;

    p->path.off = off;
    p->path.len = 0;
    if (connect) {
        /* authority-form only: host:port, nothing else. */
        if (memchr(t, '/', n) || memchr(t, '?', n) || !memchr(t, ':', n))
            return TACIO__HTTP_E_BAD_TARGET;
        return TACIO__HTTP_E_NONE;
    }
    if (n == 1 && t[0] == '*') {
        if (!(p->method.len == 7 && memcmp(m, "OPTIONS", 7) == 0))
            return TACIO__HTTP_E_BAD_TARGET;
        p->path.len = 1;
        return TACIO__HTTP_E_NONE;
    }
    uint32_t path_start = 0;
    if (t[0] != '/') {
        /* absolute-form: scheme "://" authority [path] */
        uint32_t i = 0;
        if (!is_alpha((unsigned char)t[0]))
            return TACIO__HTTP_E_BAD_TARGET;
        while (i < n && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) ||
                         t[i] == '+' || t[i] == '-' || t[i] == '.'))
            i++;
        if (i + 3 > n || memcmp(t + i, "://", 3) != 0)
            return TACIO__HTTP_E_BAD_TARGET;
        i += 3;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        path_start = i;
    }
    uint32_t path_end = p->has_query ? p->query_start - off - 1 : n;
    if (path_end < path_start)
        return TACIO__HTTP_E_BAD_TARGET;   /* '?' inside the authority */
    p->path.off = off + path_start;
    p->path.len = path_end - path_start;
    if (p->has_query) {
        p->query.off = p->query_start;
        p->query.len = off + n - p->query_start;
    }
    return TACIO__HTTP_E_NONE;
}

/* The checks that need the whole head (RFC 9112 6.1-6.3, 3.2). */
static tacio__http_error_t on_head_end(tacio__http_parser_t *p)
{
    bool v11 = p->version_minor == 1;
    if (v11 ? p->host_count != 1 : p->host_count > 1)
        return TACIO__HTTP_E_HOST;
    if (p->te_seen) {
        if (!v11)
            return TACIO__HTTP_E_TE_HTTP10;
        if (p->cl_seen)
            return TACIO__HTTP_E_CL_AND_TE;
        if (!p->te_chunked_last || p->te_chunked_count != 1)
            return TACIO__HTTP_E_TE_NOT_CHUNKED;
        if (p->te_other)
            return TACIO__HTTP_E_TE_UNSUPPORTED;
        p->body_kind = TACIO__HTTP_BODY_CHUNKED;
        p->bstate = B_SIZE;
    } else if (p->cl_seen) {
        if (p->content_length > p->limits.max_body)
            return TACIO__HTTP_E_BODY_TOO_LARGE;
        p->body_kind = TACIO__HTTP_BODY_LENGTH;
        p->chunk_left = p->content_length;
        p->bstate = p->content_length ? B_LENGTH : B_DONE;
    } else {
        p->body_kind = TACIO__HTTP_BODY_NONE;
        p->bstate = B_DONE;
    }
    p->keep_alive = v11 ? !p->conn_close : (p->conn_keep && !p->conn_close);
    return TACIO__HTTP_E_NONE;
}

/* ---- the head machine ---------------------------------------------------- */

static const char version_prefix[] = "HTTP/";

tacio__http_result_t tacio__http_parse_head(tacio__http_parser_t *p, const char *buf, size_t len)
{
    if (p->state == H_DONE)
        return TACIO__HTTP_DONE;
    if (p->state == H_ERROR)
        return TACIO__HTTP_ERROR;

    while (p->pos < len) {
        uint32_t i = p->pos;
        unsigned char c = (unsigned char)buf[i];
        tacio__http_error_t e;

        /* The head may be at most max_head bytes, so byte index max_head
         * can never be part of it. */
        if (i >= p->limits.max_head)
            return fail(p, TACIO__HTTP_E_HEAD_TOO_LARGE, i);

        switch (p->state) {
        case H_START:
            if (c == '\r') {
                p->state = H_START_LF;
            } else if (c == '\n') {
                return fail(p, TACIO__HTTP_E_BARE_LF, i);
            } else if (is_tchar(c)) {
                p->method.off = i;
                p->state = H_METHOD;
            } else {
                return fail(p, TACIO__HTTP_E_BAD_METHOD, i);
            }
            break;
        case H_START_LF:
            if (c != '\n')
                return fail(p, TACIO__HTTP_E_BARE_CR, i);
            p->state = H_START;
            break;
        case H_METHOD:
            if (c == ' ') {
                p->method.len = i - p->method.off;
                p->state = H_TARGET0;
            } else if (c == '\r' || c == '\n') {
                return fail(p, TACIO__HTTP_E_BAD_REQUEST_LINE, i);
            } else if (!is_tchar(c)) {
                return fail(p, TACIO__HTTP_E_BAD_METHOD, i);
            }
            break;
        case H_TARGET0:
            if (c == ' ' || c == '\r' || c == '\n')
                return fail(p, TACIO__HTTP_E_BAD_REQUEST_LINE, i);
            p->target.off = i;
            p->state = H_TARGET;
            /* The first byte is checked like the others. */
            __attribute__((fallthrough));
        case H_TARGET:
            if (c == ' ') {
                p->target.len = i - p->target.off;
                if ((e = on_target(p, buf)) != TACIO__HTTP_E_NONE)
                    return fail(p, e, i);
                p->state = H_VERSION;
                p->sub = 0;
                break;
            }
            if (i - p->target.off + 1 > p->limits.max_target)
                return fail(p, TACIO__HTTP_E_TARGET_TOO_LONG, i);
            if (c == '\r' || c == '\n')
                return fail(p, TACIO__HTTP_E_BAD_REQUEST_LINE, i);
            if (!is_target_char(c) || c == '#')
                return fail(p, TACIO__HTTP_E_BAD_TARGET, i);
            if (c == '?' && !p->has_query) {
                p->has_query = true;
                p->query_start = i + 1;
            }
            break;
        case H_VERSION:
            /* "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3). */
            if (p->sub < 5) {
                if (c != (unsigned char)version_prefix[p->sub])
                    return fail(p, TACIO__HTTP_E_BAD_VERSION, i);
            } else if (p->sub == 5 || p->sub == 7) {
                if (!is_digit(c))
                    return fail(p, TACIO__HTTP_E_BAD_VERSION, i);
                if (p->sub == 5)
                    p->version_major = (uint8_t)(c - '0');
                else
                    p->version_minor = (uint8_t)(c - '0');
            } else if (p->sub == 6) {
                if (c != '.')
                    return fail(p, TACIO__HTTP_E_BAD_VERSION, i);
            } else {
                if (c == '\n')
                    return fail(p, TACIO__HTTP_E_BARE_LF, i);
                if (c != '\r')
                    return fail(p, TACIO__HTTP_E_BAD_REQUEST_LINE, i);
                if (p->version_major != 1 || p->version_minor > 1)
                    return fail(p, TACIO__HTTP_E_VERSION, i);
                p->state = H_RL_LF;
            }
            p->sub++;
            break;
        case H_RL_LF:
        case H_HDR_LF:
            if (c != '\n')
                return fail(p, TACIO__HTTP_E_BARE_CR, i);
            if (p->state == H_HDR_LF) {
                if ((e = on_field(p, buf, &p->headers[p->header_count - 1])) != TACIO__HTTP_E_NONE)
                    return fail(p, e, i);
            }
            p->state = H_HDR_START;
            break;
        case H_HDR_START:
            if (c == '\r') {
                p->state = H_END_LF;
            } else if (c == '\n') {
                return fail(p, TACIO__HTTP_E_BARE_LF, i);
            } else if (is_ws(c)) {
                /* obs-fold, or whitespace before the first field: RFC 9112
                 * 2.2 and 5.2 say reject. */
                return fail(p, TACIO__HTTP_E_OBS_FOLD, i);
            } else if (is_tchar(c)) {
                if (p->header_count >= p->limits.max_headers)
                    return fail(p, TACIO__HTTP_E_TOO_MANY_HEADERS, i);
                p->headers[p->header_count].name.off = i;
                p->header_count++;
                p->state = H_NAME;
            } else {
                return fail(p, TACIO__HTTP_E_BAD_HEADER_NAME, i);
            }
            break;
        case H_NAME: {
            struct tacio__http_field *f = &p->headers[p->header_count - 1];
            if (c == ':') {
                f->name.len = i - f->name.off;
                p->state = H_VALUE_LWS;
            } else if (is_ws(c)) {
                return fail(p, TACIO__HTTP_E_SPACE_BEFORE_COLON, i);
            } else if (!is_tchar(c)) {
                return fail(p, TACIO__HTTP_E_BAD_HEADER_NAME, i);
            }
            break;
        }
        case H_VALUE_LWS:
        case H_VALUE: {
            struct tacio__http_field *f = &p->headers[p->header_count - 1];
            if (is_ws(c))
                break;
            if (c == '\r') {
                if (p->state == H_VALUE_LWS) {
                    f->value.off = i;
                    f->value.len = 0;
                } else {
                    f->value.len = p->last_nonws + 1 - f->value.off;
                }
                p->state = H_HDR_LF;
            } else if (c == '\n') {
                return fail(p, TACIO__HTTP_E_BARE_LF, i);
            } else if (is_vchar(c)) {
                if (p->state == H_VALUE_LWS) {
                    f->value.off = i;
                    p->state = H_VALUE;
                }
                p->last_nonws = i;
            } else {
                return fail(p, TACIO__HTTP_E_BAD_HEADER_VALUE, i);
            }
            break;
        }
        case H_END_LF:
            if (c != '\n')
                return fail(p, TACIO__HTTP_E_BARE_CR, i);
            p->head_len = i + 1;
            p->pos = i + 1;
            if ((e = on_head_end(p)) != TACIO__HTTP_E_NONE)
                return fail(p, e, i);
            p->state = H_DONE;
            return TACIO__HTTP_DONE;
        default:
            return fail(p, TACIO__HTTP_E_BAD_REQUEST_LINE, i);
        }
        p->pos = i + 1;
    }
    return TACIO__HTTP_NEED_MORE;
}

/* ---- the body machine ---------------------------------------------------- */

static tacio__http_result_t body_fail(tacio__http_parser_t *p, tacio__http_error_t e, size_t i,
                                      size_t *consumed)
{
    *consumed = i;
    return fail(p, e, p->body_consumed + i);
}

static tacio__http_result_t body_data(tacio__http_parser_t *p, const char *in, size_t len,
                                      size_t i, size_t *consumed, const char **data,
                                      size_t *data_len)
{
    size_t n = len - i;
    if (n > p->chunk_left)
        n = (size_t)p->chunk_left;
    *data = in + i;
    *data_len = n;
    p->chunk_left -= n;
    p->body_total += n;
    *consumed = i + n;
    p->body_consumed += i + n;
    return TACIO__HTTP_DATA;
}

tacio__http_result_t tacio__http_parse_body(tacio__http_parser_t *p, const char *in, size_t len,
                                            size_t *consumed, const char **data, size_t *data_len)
{
    *consumed = 0;
    *data = NULL;
    *data_len = 0;
    if (p->state == H_ERROR || p->bstate == B_ERROR)
        return TACIO__HTTP_ERROR;
    if (p->state != H_DONE)
        return TACIO__HTTP_NEED_MORE;   /* no head yet: nothing is body */
    if (p->bstate == B_DONE)
        return TACIO__HTTP_DONE;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int h;

        if (p->bstate >= B_TR_START && p->bstate <= B_TR_END_LF &&
            ++p->line_len > p->limits.max_head)
            return body_fail(p, TACIO__HTTP_E_TRAILER_TOO_LARGE, i, consumed);
        if (p->bstate >= B_SIZE && p->bstate <= B_SIZE_LF &&
            ++p->line_len > TACIO__HTTP_CHUNK_LINE_MAX)
            return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);

        switch (p->bstate) {
        case B_LENGTH:
            /* B_LENGTH is entered only with bytes left (on_head_end). */
            {
                tacio__http_result_t r = body_data(p, in, len, i, consumed, data, data_len);
                if (p->chunk_left == 0)
                    p->bstate = B_DONE;
                return r;
            }
        case B_SIZE:
            if ((h = hex_value(c)) >= 0) {
                if (p->chunk_left > (UINT64_MAX >> 4))
                    return body_fail(p, TACIO__HTTP_E_BODY_TOO_LARGE, i, consumed);
                p->chunk_left = (p->chunk_left << 4) | (uint64_t)h;
                p->chunk_digits++;
                /* Refuse as soon as the announced size is over the limit,
                 * before any of it is read. */
                if (p->chunk_left > p->limits.max_body - p->body_total)
                    return body_fail(p, TACIO__HTTP_E_BODY_TOO_LARGE, i, consumed);
                break;
            }
            if (p->chunk_digits == 0)
                return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
            if (c == ';')
                p->bstate = B_SIZE_EXT;
            else if (is_ws(c))
                p->bstate = B_SIZE_BWS;
            else if (c == '\r')
                p->bstate = B_SIZE_LF;
            else if (c == '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_LF, i, consumed);
            else
                return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
            break;
        case B_SIZE_BWS:
            /* BWS is allowed only before a ';' (RFC 9112 7.1.1). */
            if (c == ';')
                p->bstate = B_SIZE_EXT;
            else if (!is_ws(c))
                return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
            break;
        case B_SIZE_EXT:
            /* Extensions are ignored; only their bytes are checked, so that
             * no CR or LF can hide inside one. */
            if (c == '\r')
                p->bstate = B_SIZE_LF;
            else if (c == '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_LF, i, consumed);
            else if (!is_vchar(c) && !is_ws(c))
                return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
            break;
        case B_SIZE_LF:
            if (c != '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_CR, i, consumed);
            p->line_len = 0;
            p->chunk_digits = 0;
            p->bstate = p->chunk_left ? B_DATA : B_TR_START;
            break;
        case B_DATA:
            {
                tacio__http_result_t r = body_data(p, in, len, i, consumed, data, data_len);
                if (p->chunk_left == 0)
                    p->bstate = B_DATA_CR;
                return r;
            }
        case B_DATA_CR:
            if (c != '\r')
                return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
            p->bstate = B_DATA_LF;
            break;
        case B_DATA_LF:
            if (c != '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_CR, i, consumed);
            p->bstate = B_SIZE;
            break;
        case B_TR_START:
            if (c == '\r')
                p->bstate = B_TR_END_LF;
            else if (c == '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_LF, i, consumed);
            else if (is_ws(c))
                return body_fail(p, TACIO__HTTP_E_OBS_FOLD, i, consumed);
            else if (is_tchar(c))
                p->bstate = B_TR_NAME;
            else
                return body_fail(p, TACIO__HTTP_E_BAD_TRAILER, i, consumed);
            break;
        case B_TR_NAME:
            if (c == ':')
                p->bstate = B_TR_VALUE;
            else if (!is_tchar(c))
                return body_fail(p, TACIO__HTTP_E_BAD_TRAILER, i, consumed);
            break;
        case B_TR_VALUE:
            if (c == '\r')
                p->bstate = B_TR_LF;
            else if (c == '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_LF, i, consumed);
            else if (!is_vchar(c) && !is_ws(c))
                return body_fail(p, TACIO__HTTP_E_BAD_TRAILER, i, consumed);
            break;
        case B_TR_LF:
            if (c != '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_CR, i, consumed);
            p->bstate = B_TR_START;
            break;
        case B_TR_END_LF:
            if (c != '\n')
                return body_fail(p, TACIO__HTTP_E_BARE_CR, i, consumed);
            p->bstate = B_DONE;
            *consumed = i + 1;
            p->body_consumed += i + 1;
            return TACIO__HTTP_DONE;
        default:
            return body_fail(p, TACIO__HTTP_E_BAD_CHUNK, i, consumed);
        }
    }
    *consumed = len;
    p->body_consumed += len;
    return TACIO__HTTP_NEED_MORE;
}

/* ---- the flat layout ------------------------------------------------------ */

size_t tacio__http_layout_size(const tacio__http_parser_t *p)
{
    size_t n = sizeof(struct tacio__http_request_view) +
               (size_t)p->header_count * sizeof(struct tacio__http_header_view);
    n += (size_t)p->method.len + 1 + p->target.len + 1 + p->path.len + 1;
    if (p->has_query)
        n += (size_t)p->query.len + 1;
    for (uint32_t i = 0; i < p->header_count; i++)
        n += (size_t)p->headers[i].name.len + 1 + p->headers[i].value.len + 1;
    return n;
}

/* Copies span s of head to *cursor as a C string; returns its start. */
static const char *put(char **cursor, const char *head, struct tacio__http_span s)
{
    char *d = *cursor;
    memcpy(d, head + s.off, s.len);
    d[s.len] = '\0';
    *cursor = d + s.len + 1;
    return d;
}

tacio_status_t tacio__http_layout(const tacio__http_parser_t *p, const char *head,
                                  uint64_t request_id, uint64_t connection_id,
                                  void *out, size_t size, size_t *needed)
{
    if (p->state != H_DONE)
        return TACIO_INVALID_PARAMETER;
    size_t need = tacio__http_layout_size(p);
    *needed = need;
    if (size < need)
        return TACIO_BUFFER_OVERFLOW;
    if (!out || ((uintptr_t)out % TACIO__HTTP_VIEW_ALIGN) != 0)
        return TACIO_INVALID_PARAMETER;

    struct tacio__http_request_view *v = out;
    struct tacio__http_header_view *hv = (struct tacio__http_header_view *)(v + 1);
    char *cur = (char *)(hv + p->header_count);

    memset(v, 0, sizeof *v);
    v->request_id = request_id;
    v->connection_id = connection_id;
    v->method = put(&cur, head, p->method);
    v->method_len = p->method.len;
    v->target = put(&cur, head, p->target);
    v->target_len = p->target.len;
    v->path = put(&cur, head, p->path);
    v->path_len = p->path.len;
    if (p->has_query) {
        v->query = put(&cur, head, p->query);
        v->query_len = p->query.len;
    }
    v->version_major = p->version_major;
    v->version_minor = p->version_minor;
    v->header_count = p->header_count;
    v->headers = hv;
    for (uint32_t i = 0; i < p->header_count; i++) {
        hv[i].name = put(&cur, head, p->headers[i].name);
        hv[i].name_len = p->headers[i].name.len;
        hv[i].value = put(&cur, head, p->headers[i].value);
        hv[i].value_len = p->headers[i].value.len;
    }
    v->body_kind = p->body_kind;
    v->content_length = p->body_kind == TACIO__HTTP_BODY_LENGTH ? p->content_length : 0;
    v->keep_alive = p->keep_alive;
    v->expect_continue = p->expect_continue;
    return TACIO_SUCCESS;
}

const struct tacio__http_header_view *
tacio__http_view_header(const struct tacio__http_request_view *v, const char *name)
{
    for (size_t i = 0; i < v->header_count; i++)
        if (ieq(v->headers[i].name, v->headers[i].name_len, name))
            return &v->headers[i];
    return NULL;
}
