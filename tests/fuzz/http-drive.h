/* tests/fuzz/http-drive.h - drive the HTTP parser over a byte stream the way
 * a connection would, delivering it in pieces, and record what happened as
 * a trace that must not depend on how the stream was cut.
 *
 * Shared by the fuzz target (tests/fuzz/fuzz-http-parse.c) and the unit
 * tests (tests/test-http-parse.c), so both check the same property:
 * feeding a stream whole, byte by byte or split anywhere gives the same
 * trace. Header-only (static inline) because the two link differently.
 */
#ifndef TACIO_HTTP_DRIVE_H
#define TACIO_HTTP_DRIVE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

enum hd_kind {
    HD_HEAD = 1,     /* a = head_len, b = layout size, c = flags, d = content_length */
    HD_END,          /* a = wire bytes of the whole request, b = body bytes, c = body hash */
    HD_ERROR,        /* a = error, b = error_offset, c = http_status, d = 1 if in the body */
    HD_EOF,          /* stream ended inside a request: a = 1 in the body, b = bytes of it */
};

#define HD_MAX_EVENTS 96

struct hd_event {
    uint64_t kind;   /* 64-bit: no padding, so traces compare with memcmp */
    uint64_t a, b, c, d;
};

struct hd_trace {
    struct hd_event ev[HD_MAX_EVENTS];
    unsigned n;
    const char *layout_error;    /* first broken layout invariant, or NULL */
    /* Optional: body bytes of all requests, concatenated. */
    char *body;
    size_t body_cap, body_len;
};

/* How many bytes the next delivery adds (>= 1), given how many were
 * delivered so far; hd_run clamps it to what is left. */
typedef size_t (*hd_piece_fn)(void *ctx, size_t delivered, size_t total);

static inline size_t hd_all(void *ctx, size_t delivered, size_t total)
{
    (void)ctx;
    return total - delivered;
}

static inline size_t hd_bytewise(void *ctx, size_t delivered, size_t total)
{
    (void)ctx;
    (void)delivered;
    (void)total;
    return 1;
}

/* Two pieces: the first *(size_t *)ctx bytes, then the rest. */
static inline size_t hd_split(void *ctx, size_t delivered, size_t total)
{
    size_t k = *(size_t *)ctx;
    if (delivered < k)
        return k - delivered;
    return total - delivered;
}

static inline uint64_t hd_hash(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static inline void hd_add(struct hd_trace *t, uint64_t kind, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    if (t->n < HD_MAX_EVENTS)
        t->ev[t->n++] = (struct hd_event){ kind, a, b, c, d };
}

static inline int hd_span_ok(struct tacio__http_span s, uint32_t head_len)
{
    return s.off <= head_len && s.len <= head_len - s.off;
}

static inline int hd_str_eq(const char *v, size_t vl, const char *head, struct tacio__http_span s)
{
    return v && vl == s.len && memcmp(v, head + s.off, s.len) == 0 && v[vl] == '\0';
}

static inline int hd_in(const void *p, const void *base, size_t size)
{
    return (const char *)p >= (const char *)base && (const char *)p < (const char *)base + size;
}

/* Lays the parsed head out at its exact size, one byte short and with no
 * buffer, and checks every pointer and string of the view against the
 * parser's spans. Returns NULL or what is wrong. */
static inline const char *hd_check_layout(const tacio__http_parser_t *p, const char *head)
{
    size_t need = tacio__http_layout_size(p), got = 0;
    if (p->head_len > p->limits.max_head)
        return "head_len over max_head";
    if (!hd_span_ok(p->method, p->head_len) || !hd_span_ok(p->target, p->head_len) ||
        !hd_span_ok(p->path, p->head_len) || !hd_span_ok(p->query, p->head_len))
        return "request-line span outside the head";
    if (p->target.len > p->limits.max_target)
        return "target over max_target";
    if (p->header_count > p->limits.max_headers)
        return "more headers than max_headers";
    if (tacio__http_layout(p, head, 1, 2, NULL, 0, &got) != TACIO_BUFFER_OVERFLOW || got != need)
        return "size-0 layout is not BUFFER_OVERFLOW with the size";
    /* malloc's alignment suffices for the view (max_align_t). */
    char *buf = malloc(need);
    if (!buf)
        return NULL;
    const char *err = NULL;
    if (tacio__http_layout(p, head, 1, 2, buf, need - 1, &got) != TACIO_BUFFER_OVERFLOW ||
        got != need) {
        err = "one-byte-short layout is not BUFFER_OVERFLOW";
        goto out;
    }
    if (tacio__http_layout(p, head, 7, 9, buf, need, &got) != TACIO_SUCCESS || got != need) {
        err = "exact-size layout failed";
        goto out;
    }
    const struct tacio__http_request_view *v = (const void *)buf;
    if (v->request_id != 7 || v->connection_id != 9)
        err = "ids";
    else if (!hd_str_eq(v->method, v->method_len, head, p->method) ||
             !hd_str_eq(v->target, v->target_len, head, p->target) ||
             !hd_str_eq(v->path, v->path_len, head, p->path))
        err = "request-line strings";
    else if (p->has_query ? !hd_str_eq(v->query, v->query_len, head, p->query) : v->query != NULL)
        err = "query";
    else if (v->header_count != p->header_count ||
             (v->header_count && !hd_in(v->headers, buf, need)))
        err = "header array";
    else if (v->keep_alive != p->keep_alive || v->body_kind != p->body_kind ||
             v->version_minor != p->version_minor || v->version_major != 1)
        err = "flags";
    for (size_t i = 0; !err && i < v->header_count; i++) {
        const struct tacio__http_header_view *h = &v->headers[i];
        if (!hd_span_ok(p->headers[i].name, p->head_len) ||
            !hd_span_ok(p->headers[i].value, p->head_len))
            err = "header span outside the head";
        else if (!hd_in(h->name, buf, need) || !hd_in(h->value, buf, need) ||
                 !hd_str_eq(h->name, h->name_len, head, p->headers[i].name) ||
                 !hd_str_eq(h->value, h->value_len, head, p->headers[i].value))
            err = "header strings";
        else if (h->value_len && (h->value[0] == ' ' || h->value[0] == '\t' ||
                                  h->value[h->value_len - 1] == ' ' ||
                                  h->value[h->value_len - 1] == '\t'))
            err = "value not trimmed";
    }
out:
    free(buf);
    return err;
}

static inline size_t hd_deliver(hd_piece_fn piece, void *ctx, size_t delivered, size_t n)
{
    size_t k = piece(ctx, delivered, n);
    if (k == 0)
        k = 1;
    return k > n - delivered ? n : delivered + k;
}

/* Runs the stream in[0..n) through one parser as a connection would:
 * head, body, next request, until an error, the end of the stream or
 * max_requests requests. The caller's trace t is reset first (body buffer
 * kept). */
static inline void hd_run(const struct tacio__http_limits *lim, const char *in, size_t n,
                   hd_piece_fn piece, void *ctx, struct hd_trace *t)
{
    tacio__http_parser_t p;
    size_t delivered = 0, start = 0, body_pos = 0;
    int in_body = 0;
    uint64_t body_bytes = 0, body_h = 14695981039346656037ull;

    t->n = 0;
    t->layout_error = NULL;
    t->body_len = 0;
    tacio__http_parser_init(&p, lim);
    if (n > 0)
        delivered = hd_deliver(piece, ctx, 0, n);
    while (t->n < HD_MAX_EVENTS) {
        if (!in_body) {
            tacio__http_result_t r = tacio__http_parse_head(&p, in + start, delivered - start);
            if (r == TACIO__HTTP_DONE) {
                const char *le = hd_check_layout(&p, in + start);
                if (le && !t->layout_error)
                    t->layout_error = le;
                hd_add(t, HD_HEAD, p.head_len, tacio__http_layout_size(&p),
                       (uint64_t)p.keep_alive | (uint64_t)p.body_kind << 1 |
                           (uint64_t)p.expect_continue << 3,
                       p.content_length);
                in_body = 1;
                body_pos = start + p.head_len;
                body_bytes = 0;
                body_h = 14695981039346656037ull;
                continue;
            }
            if (r == TACIO__HTTP_ERROR) {
                hd_add(t, HD_ERROR, p.error, p.error_offset, (uint64_t)p.http_status, 0);
                return;
            }
        } else {
            size_t used;
            const char *data;
            size_t dlen;
            tacio__http_result_t r = tacio__http_parse_body(&p, in + body_pos, delivered - body_pos,
                                                            &used, &data, &dlen);
            body_pos += used;
            if (r == TACIO__HTTP_DATA) {
                body_bytes += dlen;
                body_h = hd_hash(body_h, data, dlen);
                if (t->body && t->body_len + dlen <= t->body_cap) {
                    memcpy(t->body + t->body_len, data, dlen);
                    t->body_len += dlen;
                }
                continue;
            }
            if (r == TACIO__HTTP_DONE) {
                hd_add(t, HD_END, body_pos - start, body_bytes, body_h, 0);
                start = body_pos;
                in_body = 0;
                tacio__http_parser_next(&p);
                if (start == n)
                    return;   /* clean end between requests */
                continue;
            }
            if (r == TACIO__HTTP_ERROR) {
                hd_add(t, HD_ERROR, p.error, p.error_offset, (uint64_t)p.http_status, 1);
                return;
            }
        }
        /* NEED_MORE */
        if (delivered == n) {
            hd_add(t, HD_EOF, (uint64_t)in_body, n - start, 0, 0);
            return;
        }
        delivered = hd_deliver(piece, ctx, delivered, n);
    }
}

/* 0 if both traces are the same, else 1 + the index of the first difference. */
static inline unsigned hd_diff(const struct hd_trace *x, const struct hd_trace *y)
{
    unsigned n = x->n < y->n ? x->n : y->n;
    for (unsigned i = 0; i < n; i++)
        if (memcmp(&x->ev[i], &y->ev[i], sizeof x->ev[i]) != 0)
            return i + 1;
    return x->n == y->n ? 0 : n + 1;
}

#endif
