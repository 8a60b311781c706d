/* tests/test-http-parse.c - the HTTP/1.1 request parser (src/http/parse.h):
 * valid requests, each malformed class, each limit at and over its edge,
 * pipelining, chunked bodies, every split point, and the flat layout.
 *
 * Every stream a case parses also goes through check_splits(): fed whole,
 * byte by byte and in every 2-way split, the trace (heads, request sizes,
 * body hashes, error and offset) must be the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tacio-test.h"
#include "fuzz/http-drive.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers -------------------------------------------------------------- */

static void check_splits(const struct tacio__http_limits *lim, const char *in, size_t n,
                         const struct hd_trace *whole)
{
    static struct hd_trace t;
    hd_run(lim, in, n, hd_bytewise, NULL, &t);
    if (hd_diff(whole, &t))
        TT_FAIL("byte-by-byte trace differs at event %u", hd_diff(whole, &t));
    ASSERT_TRUE(t.layout_error == NULL);
    for (size_t k = 1; k < n; k++) {
        hd_run(lim, in, n, hd_split, &k, &t);
        if (hd_diff(whole, &t))
            TT_FAIL("split at %zu: trace differs at event %u", k, hd_diff(whole, &t));
    }
}

/* Whole-stream trace plus the split checks; returns the trace. */
static const struct hd_trace *run_all(const struct tacio__http_limits *lim, const char *in,
                                      size_t n, char *body, size_t body_cap)
{
    static struct hd_trace whole;
    whole.body = body;
    whole.body_cap = body_cap;
    hd_run(lim, in, n, hd_all, NULL, &whole);
    if (whole.layout_error)
        TT_FAIL("layout: %s", whole.layout_error);
    whole.body = NULL;
    check_splits(lim, in, n, &whole);
    whole.body = body;
    return &whole;
}

/* Parses one head from in (whole) and lays it out; the view is in *buf
 * (malloc'd, free it). */
static const struct tacio__http_request_view *view_of(tacio__http_parser_t *p, const char *in,
                                                      size_t n, void **buf)
{
    tacio__http_parser_init(p, NULL);
    ASSERT_EQ_INT(tacio__http_parse_head(p, in, n), TACIO__HTTP_DONE);
    size_t need = tacio__http_layout_size(p), got = 0;
    *buf = malloc(need);
    ASSERT_TRUE(*buf != NULL);
    ASSERT_OK(tacio__http_layout(p, in, 1, 1, *buf, need, &got));
    ASSERT_EQ_U64(got, need);
    return *buf;
}

static void assert_str(const char *got, size_t got_len, const char *want)
{
    if (want == NULL) {
        if (got != NULL)
            TT_FAIL("expected no string, got \"%.*s\"", (int)got_len, got);
        return;
    }
    if (!got || got_len != strlen(want) || memcmp(got, want, got_len) != 0)
        TT_FAIL("expected \"%s\", got \"%.*s\"", want, got ? (int)got_len : 6,
                got ? got : "(null)");
}

/* ---- valid requests -------------------------------------------------------- */

struct valid_case {
    const char *name;
    const char *in;
    const char *method, *target, *path, *query;   /* query NULL: no '?' */
    unsigned minor;
    size_t headers;
    tacio__http_body_kind_t body_kind;
    uint64_t content_length;
    bool keep_alive, expect_continue;
    const char *body;                             /* decoded body */
};

static const struct valid_case valid_cases[] = {
    { "simple", "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET", "/", "/", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "query", "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
      "GET", "/a/b?x=1&y=2", "/a/b", "x=1&y=2", 1, 2, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "empty-query", "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET", "/p?", "/p", "", 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "second-question-mark-in-query", "GET /p?a?b HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET", "/p?a?b", "/p", "a?b", 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "ows-trimmed", "GET / HTTP/1.1\r\nHost:   h  \t\r\nX-Empty:\r\nX-Sp: a  b\r\n\r\n",
      "GET", "/", "/", NULL, 1, 3, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "obs-text-value", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
      "GET", "/", "/", NULL, 1, 2, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "content-length", "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
      "POST", "/f", "/f", NULL, 1, 2, TACIO__HTTP_BODY_LENGTH, 5, true, false, "hello" },
    { "content-length-zero", "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
      "POST", "/f", "/f", NULL, 1, 2, TACIO__HTTP_BODY_LENGTH, 0, true, false, "" },
    { "content-length-same-twice",
      "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc",
      "POST", "/f", "/f", NULL, 1, 3, TACIO__HTTP_BODY_LENGTH, 3, true, false, "abc" },
    { "content-length-list-same", "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab",
      "POST", "/f", "/f", NULL, 1, 2, TACIO__HTTP_BODY_LENGTH, 2, true, false, "ab" },
    { "chunked",
      "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5;ext=\"v; x\"\r\npedia\r\nE \t; e\r\n in\r\n\r\nchunks.\r\n"
      "000\r\nX-Trailer: 1\r\nY:\r\n\r\n",
      "POST", "/u", "/u", NULL, 1, 2, TACIO__HTTP_BODY_CHUNKED, 0, true, false,
      "Wikipedia in\r\n\r\nchunks." },
    { "chunked-hex-case", "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"
      "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n",
      "POST", "/u", "/u", NULL, 1, 2, TACIO__HTTP_BODY_CHUNKED, 0, true, false,
      "0123456789abcdefghij" },
    { "te-empty-list-elements", "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n0\r\n\r\n",
      "POST", "/u", "/u", NULL, 1, 2, TACIO__HTTP_BODY_CHUNKED, 0, true, false, "" },
    { "connection-close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n",
      "GET", "/", "/", NULL, 1, 2, TACIO__HTTP_BODY_NONE, 0, false, false, "" },
    { "http10-default-close", "GET / HTTP/1.0\r\n\r\n",
      "GET", "/", "/", NULL, 0, 0, TACIO__HTTP_BODY_NONE, 0, false, false, "" },
    { "http10-keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET", "/", "/", NULL, 0, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "leading-empty-lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET", "/", "/", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "absolute-form", "GET http://h:81/a/b?q=1 HTTP/1.1\r\nHost: h:81\r\n\r\n",
      "GET", "http://h:81/a/b?q=1", "/a/b", "q=1", 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "absolute-form-no-path", "GET https://h HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET", "https://h", "", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "options-asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
      "OPTIONS", "*", "*", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "connect-authority", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
      "CONNECT", "h:443", "", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
    { "expect-continue", "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
      "PUT", "/f", "/f", NULL, 1, 3, TACIO__HTTP_BODY_LENGTH, 1, true, true, "x" },
    { "token-method", "M-SEARCH! /x HTTP/1.1\r\nHost: h\r\n\r\n",
      "M-SEARCH!", "/x", "/x", NULL, 1, 1, TACIO__HTTP_BODY_NONE, 0, true, false, "" },
};

TT_CASE(valid_requests)
{
    char body[256];
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const struct valid_case *c = &valid_cases[i];
        size_t n = strlen(c->in);
        tt_context("valid case %s", c->name);

        const struct hd_trace *t = run_all(NULL, c->in, n, body, sizeof body);
        ASSERT_EQ_INT(t->n, 2);
        ASSERT_EQ_INT(t->ev[0].kind, HD_HEAD);
        ASSERT_EQ_INT(t->ev[1].kind, HD_END);
        ASSERT_EQ_U64(t->ev[1].a, n);    /* the request is the whole stream */
        ASSERT_EQ_U64(t->body_len, strlen(c->body));
        ASSERT_TRUE(memcmp(body, c->body, t->body_len) == 0);

        tacio__http_parser_t p;
        void *buf;
        const struct tacio__http_request_view *v = view_of(&p, c->in, n, &buf);
        assert_str(v->method, v->method_len, c->method);
        assert_str(v->target, v->target_len, c->target);
        assert_str(v->path, v->path_len, c->path);
        assert_str(v->query, v->query_len, c->query);
        ASSERT_EQ_INT(v->version_major, 1);
        ASSERT_EQ_INT(v->version_minor, c->minor);
        ASSERT_EQ_U64(v->header_count, c->headers);
        ASSERT_EQ_INT(v->body_kind, c->body_kind);
        ASSERT_EQ_U64(v->content_length, c->content_length);
        ASSERT_EQ_INT(v->keep_alive, c->keep_alive);
        ASSERT_EQ_INT(v->expect_continue, c->expect_continue);
        free(buf);
    }
    tt_context("%s", "");
}

TT_CASE(header_values_trimmed)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost:   h  \t\r\nX-Empty:\r\nX-Sp:  a  b \r\n\r\n";
    tacio__http_parser_t p;
    void *buf;
    const struct tacio__http_request_view *v = view_of(&p, S(in), &buf);
    assert_str(v->headers[0].name, v->headers[0].name_len, "Host");
    assert_str(v->headers[0].value, v->headers[0].value_len, "h");
    assert_str(v->headers[1].value, v->headers[1].value_len, "");
    assert_str(v->headers[2].value, v->headers[2].value_len, "a  b");
    const struct tacio__http_header_view *h = tacio__http_view_header(v, "x-sp");
    ASSERT_EQ_PTR(h, &v->headers[2]);
    ASSERT_EQ_PTR(tacio__http_view_header(v, "x-none"), NULL);
    free(buf);
}

/* ---- malformed requests ------------------------------------------------------ */

struct bad_case {
    const char *name;
    const char *in;
    size_t len;               /* inputs may hold NUL */
    tacio__http_error_t error;
    int http_status;
};

#define BAD(name, lit, err, st) { name, lit, sizeof(lit) - 1, err, st }
#define H "Host: h\r\n"

static const struct bad_case bad_cases[] = {
    /* request line */
    BAD("double-space", "GET  / HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_REQUEST_LINE, 400),
    BAD("space-after-version", "GET / HTTP/1.1 \r\n" H "\r\n", TACIO__HTTP_E_BAD_REQUEST_LINE, 400),
    BAD("http09", "GET /\r\n\r\n", TACIO__HTTP_E_BAD_REQUEST_LINE, 400),
    BAD("no-target", "GET\r\n\r\n", TACIO__HTTP_E_BAD_REQUEST_LINE, 400),
    BAD("leading-space", " GET / HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_METHOD, 400),
    BAD("method-non-token", "G(T / HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_METHOD, 400),
    BAD("method-nul", "G\0T / HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_METHOD, 400),
    BAD("target-ctl", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("target-obs-text", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("target-fragment", "GET /a#f HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("target-relative", "GET a/b HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("target-asterisk-get", "GET * HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("connect-origin-form", "CONNECT /x HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("absolute-no-slashes", "GET http:h HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_TARGET, 400),
    BAD("version-lowercase", "GET / http/1.1\r\n" H "\r\n", TACIO__HTTP_E_BAD_VERSION, 400),
    BAD("version-garbage", "GET / HTTP/1.x\r\n" H "\r\n", TACIO__HTTP_E_BAD_VERSION, 400),
    BAD("version-long", "GET / HTTP/1.11\r\n" H "\r\n", TACIO__HTTP_E_BAD_REQUEST_LINE, 400),
    BAD("version-2", "GET / HTTP/2.0\r\n" H "\r\n", TACIO__HTTP_E_VERSION, 505),
    BAD("version-1.2", "GET / HTTP/1.2\r\n" H "\r\n", TACIO__HTTP_E_VERSION, 505),
    BAD("version-0.9", "GET / HTTP/0.9\r\n" H "\r\n", TACIO__HTTP_E_VERSION, 505),
    /* line ends */
    BAD("bare-lf-request-line", "GET / HTTP/1.1\n" H "\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("bare-lf-header", "GET / HTTP/1.1\r\nHost: h\n\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("bare-lf-end", "GET / HTTP/1.1\r\n" H "\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("bare-lf-leading", "\nGET / HTTP/1.1\r\n" H "\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("bare-cr-header", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", TACIO__HTTP_E_BARE_CR, 400),
    BAD("bare-cr-end", "GET / HTTP/1.1\r\n" H "\rX", TACIO__HTTP_E_BARE_CR, 400),
    BAD("bare-cr-request-line", "GET / HTTP/1.1\rHost: h\r\n\r\n", TACIO__HTTP_E_BARE_CR, 400),
    BAD("bare-cr-in-value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", TACIO__HTTP_E_BARE_CR, 400),
    /* fields */
    BAD("obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", TACIO__HTTP_E_OBS_FOLD, 400),
    BAD("obs-fold-tab", "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", TACIO__HTTP_E_OBS_FOLD, 400),
    BAD("space-before-first-field", "GET / HTTP/1.1\r\n " H "\r\n", TACIO__HTTP_E_OBS_FOLD, 400),
    BAD("space-before-colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", TACIO__HTTP_E_SPACE_BEFORE_COLON, 400),
    BAD("tab-before-colon", "GET / HTTP/1.1\r\n" H "Content-Length\t: 5\r\n\r\n", TACIO__HTTP_E_SPACE_BEFORE_COLON, 400),
    BAD("name-non-token", "GET / HTTP/1.1\r\n" H "X(y: 1\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_NAME, 400),
    BAD("name-empty", "GET / HTTP/1.1\r\n" H ": 1\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_NAME, 400),
    BAD("name-no-colon", "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_NAME, 400),
    BAD("name-obs-text", "GET / HTTP/1.1\r\n" H "X\xc3\xa9: 1\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_NAME, 400),
    BAD("value-nul", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_VALUE, 400),
    BAD("value-del", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_VALUE, 400),
    BAD("value-ctl", "GET / HTTP/1.1\r\n" H "X: \x1b[0m\r\n\r\n", TACIO__HTTP_E_BAD_HEADER_VALUE, 400),
    BAD("host-missing", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", TACIO__HTTP_E_HOST, 400),
    BAD("host-twice", "GET / HTTP/1.1\r\n" H "host: i\r\n\r\n", TACIO__HTTP_E_HOST, 400),
    BAD("host-twice-http10", "GET / HTTP/1.0\r\n" H H "\r\n", TACIO__HTTP_E_HOST, 400),
    /* Content-Length */
    BAD("cl-letters", "POST / HTTP/1.1\r\n" H "Content-Length: abc\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-plus", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-inner-space", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-empty-element", "POST / HTTP/1.1\r\n" H "Content-Length: 5,,5\r\n\r\n", TACIO__HTTP_E_BAD_CONTENT_LENGTH, 400),
    BAD("cl-conflict", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", TACIO__HTTP_E_CONFLICTING_CONTENT_LENGTH, 400),
    BAD("cl-conflict-list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n", TACIO__HTTP_E_CONFLICTING_CONTENT_LENGTH, 400),
    /* Transfer-Encoding: request smuggling classics */
    BAD("cl-then-te", "POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", TACIO__HTTP_E_CL_AND_TE, 400),
    BAD("te-then-cl", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", TACIO__HTTP_E_CL_AND_TE, 400),
    BAD("te-chunked-not-last", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-gzip-only", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-xchunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-chunked-twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-chunked-then-gzip-fields", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", TACIO__HTTP_E_TE_NOT_CHUNKED, 400),
    BAD("te-gzip-chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", TACIO__HTTP_E_TE_UNSUPPORTED, 501),
    BAD("te-chunked-param", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;x=1\r\n\r\n", TACIO__HTTP_E_BAD_TRANSFER_ENCODING, 400),
    BAD("te-quoted", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", TACIO__HTTP_E_BAD_TRANSFER_ENCODING, 400),
    BAD("te-empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", TACIO__HTTP_E_BAD_TRANSFER_ENCODING, 400),
    BAD("te-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TACIO__HTTP_E_TE_HTTP10, 400),
    /* chunked body */
#define CH "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
    BAD("chunk-size-not-hex", CH "zz\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-size-empty", CH "\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-size-trailing-space", CH "5 \r\nhello\r\n0\r\n\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-size-0x", CH "0x5\r\nhello\r\n0\r\n\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-size-bare-lf", CH "5\nhello\r\n0\r\n\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("chunk-ext-ctl", CH "5;a\x01\r\nhello\r\n0\r\n\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-ext-bare-lf", CH "5;a\nhello\r\n0\r\n\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("chunk-data-too-long", CH "5\r\nhelloX\r\n0\r\n\r\n", TACIO__HTTP_E_BAD_CHUNK, 400),
    BAD("chunk-data-bare-cr", CH "5\r\nhello\rX0\r\n\r\n", TACIO__HTTP_E_BARE_CR, 400),
    BAD("chunk-size-overflow", CH "10000000000000000\r\n", TACIO__HTTP_E_BODY_TOO_LARGE, 413),
    BAD("trailer-obs-fold", CH "0\r\nX: 1\r\n y\r\n\r\n", TACIO__HTTP_E_OBS_FOLD, 400),
    BAD("trailer-no-colon", CH "0\r\nbad trailer\r\n\r\n", TACIO__HTTP_E_BAD_TRAILER, 400),
    BAD("trailer-ctl", CH "0\r\nX: \x01\r\n\r\n", TACIO__HTTP_E_BAD_TRAILER, 400),
    BAD("trailer-bare-lf", CH "0\r\nX: 1\n\r\n", TACIO__HTTP_E_BARE_LF, 400),
    BAD("end-bare-cr", CH "0\r\n\rX", TACIO__HTTP_E_BARE_CR, 400),
};

TT_CASE(malformed_requests)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        tt_context("malformed case %s", c->name);
        const struct hd_trace *t = run_all(NULL, c->in, c->len, NULL, 0);
        ASSERT_GE_INT(t->n, 1);
        const struct hd_event *e = &t->ev[t->n - 1];
        if (e->kind != HD_ERROR)
            TT_FAIL("%s: no error (last event kind %d)", c->name, (int)e->kind);
        if (e->a != (uint64_t)c->error)
            TT_FAIL("%s: error %s, expected %s", c->name, tacio__http_error_name((tacio__http_error_t)e->a),
                    tacio__http_error_name(c->error));
        ASSERT_EQ_INT(e->c, c->http_status);
        ASSERT_EQ_INT(tacio__http_error_http_status(c->error), c->http_status);
    }
    tt_context("%s", "");
}

TT_CASE(error_statuses)
{
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_BAD_CHUNK), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_HEAD_TOO_LARGE), TACIO_INVALID_BUFFER_SIZE);
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_TARGET_TOO_LONG), TACIO_INVALID_BUFFER_SIZE);
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_BODY_TOO_LARGE), TACIO_FILE_TOO_LARGE);
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_VERSION), TACIO_NOT_SUPPORTED);
    ASSERT_EQ_STATUS(tacio__http_error_status(TACIO__HTTP_E_TE_UNSUPPORTED), TACIO_NOT_IMPLEMENTED);
    for (int e = 1; e < TACIO__HTTP_E_COUNT; e++) {
        int st = tacio__http_error_http_status((tacio__http_error_t)e);
        ASSERT_TRUE(st == 400 || st == 413 || st == 414 || st == 431 || st == 501 || st == 505);
        ASSERT_TRUE(strncmp(tacio__http_error_name((tacio__http_error_t)e), "E_", 2) == 0);
        ASSERT_TRUE(tacio_error(tacio__http_error_status((tacio__http_error_t)e)));
    }
    /* Sticky: after an error, both machines keep saying so. */
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S("GET  /")), TACIO__HTTP_ERROR);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S("GET  / HTTP/1.1\r\n")), TACIO__HTTP_ERROR);
    size_t used;
    const char *d;
    size_t dl;
    ASSERT_EQ_INT(tacio__http_parse_body(&p, S("x"), &used, &d, &dl), TACIO__HTTP_ERROR);
    ASSERT_EQ_U64(p.error_offset, 4);
}

/* ---- limits: at the edge passes, one over fails with its own status ---------- */

/* "GET /<pad> HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n" */
static char *make_request(size_t target_len, const char *extra)
{
    size_t n = target_len + strlen(extra) + 64;
    char *s = malloc(n);
    ASSERT_TRUE(s != NULL);
    size_t o = (size_t)snprintf(s, n, "GET /");
    memset(s + o, 'a', target_len - 1);
    o += target_len - 1;
    snprintf(s + o, n - o, " HTTP/1.1\r\nHost: h\r\n%s\r\n", extra);
    return s;
}

static tacio__http_error_t parse_error(const struct tacio__http_limits *lim, const char *in, size_t n,
                                       int *http_status)
{
    const struct hd_trace *t = run_all(lim, in, n, NULL, 0);
    const struct hd_event *e = &t->ev[t->n - 1];
    *http_status = e->kind == HD_ERROR ? (int)e->c : 0;
    return e->kind == HD_ERROR ? (tacio__http_error_t)e->a : TACIO__HTTP_E_NONE;
}

TT_CASE(limit_target_414)
{
    struct tacio__http_limits lim = { .max_target = 40 };
    int st;
    char *ok = make_request(40, ""), *over = make_request(41, "");
    ASSERT_EQ_INT(parse_error(&lim, ok, strlen(ok), &st), TACIO__HTTP_E_NONE);
    ASSERT_EQ_INT(parse_error(&lim, over, strlen(over), &st), TACIO__HTTP_E_TARGET_TOO_LONG);
    ASSERT_EQ_INT(st, 414);
    free(ok);
    free(over);
    /* Refused as soon as the target passes the limit, not at the line end. */
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, &lim);
    char partial[64] = "GET /";
    memset(partial + 5, 'b', 40);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, partial, 45), TACIO__HTTP_ERROR);
    ASSERT_EQ_INT(p.error, TACIO__HTTP_E_TARGET_TOO_LONG);
    ASSERT_EQ_U64(p.error_offset, 44);
}

TT_CASE(limit_head_431)
{
    /* A head of exactly 102 bytes passes max_head 102 and fails 101. */
    char *base = make_request(1, "X: ");
    size_t base_len = strlen(base);   /* head with an empty X value */
    free(base);
    size_t pad = 100 - base_len;
    char extra[128] = "X: ";
    memset(extra + 3, 'v', pad);
    strcpy(extra + 3 + pad, "\r\n");
    char *ok = make_request(1, extra);
    ASSERT_EQ_U64(strlen(ok), 100 + 2);   /* the "\r\n" after the value */
    struct tacio__http_limits lim = { .max_head = 102 };
    int st;
    ASSERT_EQ_INT(parse_error(&lim, ok, strlen(ok), &st), TACIO__HTTP_E_NONE);
    lim.max_head = 101;
    ASSERT_EQ_INT(parse_error(&lim, ok, strlen(ok), &st), TACIO__HTTP_E_HEAD_TOO_LARGE);
    ASSERT_EQ_INT(st, 431);
    free(ok);
    /* A head that never ends is refused at max_head bytes, whatever the
     * pieces (kept short: run_all tries every split). */
    static char endless[400];
    memset(endless, 'a', sizeof endless);
    memcpy(endless, "GET / HTTP/1.1\r\nX: ", 19);
    lim.max_head = 300;
    ASSERT_EQ_INT(parse_error(&lim, endless, sizeof endless, &st), TACIO__HTTP_E_HEAD_TOO_LARGE);
    /* And with the default limit, fed whole. */
    static char endless_default[20000];
    memset(endless_default, 'a', sizeof endless_default);
    memcpy(endless_default, "GET / HTTP/1.1\r\nX: ", 19);
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, endless_default, sizeof endless_default), TACIO__HTTP_ERROR);
    ASSERT_EQ_INT(p.error, TACIO__HTTP_E_HEAD_TOO_LARGE);
    ASSERT_EQ_U64(p.error_offset, 16384);
}

TT_CASE(limit_headers_431)
{
    struct tacio__http_limits lim = { .max_headers = 4 };   /* Host + 3 */
    int st;
    char *ok = make_request(1, "A: 1\r\nB: 2\r\nC: 3\r\n");
    char *over = make_request(1, "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n");
    ASSERT_EQ_INT(parse_error(&lim, ok, strlen(ok), &st), TACIO__HTTP_E_NONE);
    ASSERT_EQ_INT(parse_error(&lim, over, strlen(over), &st), TACIO__HTTP_E_TOO_MANY_HEADERS);
    ASSERT_EQ_INT(st, 431);
    free(ok);
    free(over);
    /* The cap holds whatever the caller asks for. */
    tacio__http_parser_t p;
    struct tacio__http_limits big = { .max_headers = 100000 };
    tacio__http_parser_init(&p, &big);
    ASSERT_EQ_INT(p.limits.max_headers, TACIO__HTTP_HEADERS_CAP);
}

TT_CASE(limit_body_413)
{
    struct tacio__http_limits lim = { .max_body = 10 };
    int st;
    static const char ok[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789";
    static const char over[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
    static const char huge[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    static const char ch_ok[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n";
    static const char ch_over[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "6\r\n012345\r\n5\r\n";
    ASSERT_EQ_INT(parse_error(&lim, S(ok), &st), TACIO__HTTP_E_NONE);
    /* Refused when the head ends: before a body byte is read. */
    ASSERT_EQ_INT(parse_error(&lim, S(over), &st), TACIO__HTTP_E_BODY_TOO_LARGE);
    ASSERT_EQ_INT(st, 413);
    ASSERT_EQ_INT(parse_error(&lim, S(huge), &st), TACIO__HTTP_E_BODY_TOO_LARGE);
    ASSERT_EQ_INT(parse_error(&lim, S(ch_ok), &st), TACIO__HTTP_E_NONE);
    /* Chunked: refused at the size line that would pass the limit. */
    ASSERT_EQ_INT(parse_error(&lim, S(ch_over), &st), TACIO__HTTP_E_BODY_TOO_LARGE);
    ASSERT_EQ_INT(st, 413);
}

TT_CASE(limit_trailer_and_chunk_line)
{
    struct tacio__http_limits lim = { .max_head = 128 };
    int st;
    char in[1024];
    int n = snprintf(in, sizeof in, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: %0200d\r\n\r\n", 0);
    ASSERT_EQ_INT(parse_error(&lim, in, (size_t)n, &st), TACIO__HTTP_E_TRAILER_TOO_LARGE);
    ASSERT_EQ_INT(st, 431);
    /* A chunk extension cannot grow without bound. */
    static char ext[8192];
    n = snprintf(ext, sizeof ext, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    memset(ext + n, 'e', TACIO__HTTP_CHUNK_LINE_MAX);
    ASSERT_EQ_INT(parse_error(NULL, ext, (size_t)n + TACIO__HTTP_CHUNK_LINE_MAX, &st), TACIO__HTTP_E_BAD_CHUNK);
}

/* ---- pipelining and splits ---------------------------------------------------- */

static const char *const pipeline_parts[] = {
    "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n2;e\r\n!!\r\n0\r\nT: 1\r\n\r\n",
    "\r\nGET /4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
};

TT_CASE(pipelined_requests)
{
    char stream[1024] = "";
    size_t nparts = sizeof pipeline_parts / sizeof pipeline_parts[0];
    for (size_t i = 0; i < nparts; i++)
        strcat(stream, pipeline_parts[i]);
    char body[64];
    const struct hd_trace *t = run_all(NULL, stream, strlen(stream), body, sizeof body);
    ASSERT_EQ_INT(t->n, 2 * nparts);
    static const bool keep[] = { true, true, true, true, false };
    for (size_t i = 0; i < nparts; i++) {
        tt_context("request %zu", i + 1);
        ASSERT_EQ_INT(t->ev[2 * i].kind, HD_HEAD);
        ASSERT_EQ_INT(t->ev[2 * i].c & 1, keep[i]);
        ASSERT_EQ_INT(t->ev[2 * i + 1].kind, HD_END);
        /* Each request consumed exactly its own bytes. */
        ASSERT_EQ_U64(t->ev[2 * i + 1].a, strlen(pipeline_parts[i]));
    }
    tt_context("%s", "");
    ASSERT_EQ_U64(t->body_len, 8);
    ASSERT_TRUE(memcmp(body, "abcxyz!!", 8) == 0);
}

TT_CASE(pipelined_then_error)
{
    /* A good request, then a smuggling attempt: the first completes, the
     * second is refused; nothing after it is parsed. */
    static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
                            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n";
    const struct hd_trace *t = run_all(NULL, S(s), NULL, 0);
    ASSERT_EQ_INT(t->n, 3);
    ASSERT_EQ_INT(t->ev[1].kind, HD_END);
    ASSERT_EQ_INT(t->ev[2].kind, HD_ERROR);
    ASSERT_EQ_INT(t->ev[2].a, TACIO__HTTP_E_CL_AND_TE);
}

TT_CASE(truncated_streams)
{
    /* Every prefix of a request is "need more", never a verdict. */
    static const char s[] = "POST /x?y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n0\r\nT: v\r\n\r\n";
    for (size_t k = 0; k < sizeof s - 1; k++) {
        static struct hd_trace t;
        hd_run(NULL, s, k, hd_all, NULL, &t);
        if (k == 0) {
            ASSERT_EQ_INT(t.n, 1);
        }
        ASSERT_EQ_INT(t.ev[t.n - 1].kind, HD_EOF);
    }
}

/* ---- chunked body in detail ------------------------------------------------------ */

TT_CASE(chunked_body_spans)
{
    static const char s[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n1;a=b\r\n \r\n5\r\nworld\r\n0\r\n\r\nNEXT";
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S(s)), TACIO__HTTP_DONE);
    ASSERT_EQ_INT(p.body_kind, TACIO__HTTP_BODY_CHUNKED);
    const char *in = s + p.head_len;
    size_t left = sizeof s - 1 - p.head_len, used, dl;
    const char *d;
    char out[32];
    size_t outn = 0;
    tacio__http_result_t r;
    /* Zero-copy: each span points into the input, between the framing. */
    while ((r = tacio__http_parse_body(&p, in, left, &used, &d, &dl)) == TACIO__HTTP_DATA) {
        ASSERT_TRUE(d >= in && d + dl <= in + used);
        memcpy(out + outn, d, dl);
        outn += dl;
        in += used;
        left -= used;
    }
    ASSERT_EQ_INT(r, TACIO__HTTP_DONE);
    in += used;
    left -= used;
    ASSERT_EQ_U64(outn, 11);
    ASSERT_TRUE(memcmp(out, "hello world", 11) == 0);
    ASSERT_EQ_U64(left, 4);
    ASSERT_TRUE(memcmp(in, "NEXT", 4) == 0);
    /* DONE is sticky and consumes nothing more. */
    ASSERT_EQ_INT(tacio__http_parse_body(&p, in, left, &used, &d, &dl), TACIO__HTTP_DONE);
    ASSERT_EQ_U64(used, 0);
}

TT_CASE(body_without_framing_is_empty)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET";
    tacio__http_parser_t p;
    size_t used, dl;
    const char *d;
    tacio__http_parser_init(&p, NULL);
    /* Before the head is done, nothing is body. */
    ASSERT_EQ_INT(tacio__http_parse_body(&p, S("x"), &used, &d, &dl), TACIO__HTTP_NEED_MORE);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S(s)), TACIO__HTTP_DONE);
    ASSERT_EQ_INT(tacio__http_parse_body(&p, s + p.head_len, 3, &used, &d, &dl), TACIO__HTTP_DONE);
    ASSERT_EQ_U64(used, 0);
    /* Head DONE is sticky; the buffer may even move. */
    char copy[sizeof s];
    memcpy(copy, s, sizeof s);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, copy, sizeof s - 1), TACIO__HTTP_DONE);
}

TT_CASE(head_buffer_may_move)
{
    /* The parser keeps offsets: the caller may grow its buffer (realloc)
     * between calls. */
    static const char s[] = "GET /moved?q HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    char *buf = NULL;
    tacio__http_result_t r = TACIO__HTTP_NEED_MORE;
    for (size_t n = 1; n <= sizeof s - 1 && r == TACIO__HTTP_NEED_MORE; n++) {
        char *nb = malloc(n);
        ASSERT_TRUE(nb != NULL);
        memcpy(nb, s, n);
        free(buf);
        buf = nb;
        r = tacio__http_parse_head(&p, buf, n);
    }
    ASSERT_EQ_INT(r, TACIO__HTTP_DONE);
    void *vb = malloc(tacio__http_layout_size(&p));
    size_t need;
    ASSERT_OK(tacio__http_layout(&p, buf, 1, 1, vb, tacio__http_layout_size(&p), &need));
    const struct tacio__http_request_view *v = vb;
    assert_str(v->path, v->path_len, "/moved");
    assert_str(v->query, v->query_len, "q");
    free(vb);
    free(buf);
}

/* ---- the flat layout -------------------------------------------------------------- */

TT_CASE(layout_exact_size_and_overflow)
{
    static const char s[] = "PUT /p?q=1 HTTP/1.1\r\nHost: example\r\nX-A: one\r\nX-B: \r\n\r\n";
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    size_t need = 0;
    /* Not before the head is done. */
    ASSERT_EQ_STATUS(tacio__http_layout(&p, s, 0, 0, NULL, 0, &need), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S(s)), TACIO__HTTP_DONE);

    size_t expect = sizeof(struct tacio__http_request_view) +
                    3 * sizeof(struct tacio__http_header_view) +
                    (3 + 1) + (6 + 1) + (2 + 1) + (3 + 1) +          /* PUT, /p?q=1, /p, q=1 */
                    (4 + 1) + (7 + 1) + (3 + 1) + (3 + 1) + (3 + 1) + (0 + 1);
    ASSERT_EQ_U64(tacio__http_layout_size(&p), expect);

    /* Too small: BUFFER_OVERFLOW with the size, and not a byte written. */
    _Alignas(max_align_t) unsigned char buf[512];
    memset(buf, 0xAA, sizeof buf);
    for (size_t sz = 0; sz < expect; sz += (sz < 8 ? 1 : 13)) {
        need = 0;
        ASSERT_EQ_STATUS(tacio__http_layout(&p, s, 5, 6, sz ? buf : NULL, sz, &need),
                         TACIO_BUFFER_OVERFLOW);
        ASSERT_EQ_U64(need, expect);
    }
    ASSERT_EQ_STATUS(tacio__http_layout(&p, s, 5, 6, buf, expect - 1, &need), TACIO_BUFFER_OVERFLOW);
    for (size_t i = 0; i < sizeof buf; i++)
        ASSERT_EQ_INT(buf[i], 0xAA);

    /* Misaligned: refused, not a crash. */
    ASSERT_EQ_STATUS(tacio__http_layout(&p, s, 5, 6, buf + 1, sizeof buf - 1, &need),
                     TACIO_INVALID_PARAMETER);

    /* The retry with the size asked for succeeds and writes exactly that. */
    ASSERT_OK(tacio__http_layout(&p, s, 5, 6, buf, expect, &need));
    ASSERT_EQ_U64(need, expect);
    for (size_t i = expect; i < sizeof buf; i++)
        ASSERT_EQ_INT(buf[i], 0xAA);
}

TT_CASE(layout_round_trip)
{
    static const char s[] = "POST /a/b?c=d HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody";
    tacio__http_parser_t p;
    tacio__http_parser_init(&p, NULL);
    ASSERT_EQ_INT(tacio__http_parse_head(&p, S(s)), TACIO__HTTP_DONE);
    size_t need = tacio__http_layout_size(&p), got;
    char *a = malloc(need);
    ASSERT_OK(tacio__http_layout(&p, s, 42, 7, a, need, &got));
    /* The source buffer can go: the view owns copies of everything. */
    char *src = strdup(s);
    memset(src, 0, strlen(src));
    free(src);
    const struct tacio__http_request_view *v = (const void *)a;
    ASSERT_EQ_U64(v->request_id, 42);
    ASSERT_EQ_U64(v->connection_id, 7);
    assert_str(v->method, v->method_len, "POST");
    assert_str(v->target, v->target_len, "/a/b?c=d");
    assert_str(v->path, v->path_len, "/a/b");
    assert_str(v->query, v->query_len, "c=d");
    ASSERT_EQ_U64(v->header_count, 3);
    assert_str(v->headers[1].name, v->headers[1].name_len, "Content-Length");
    assert_str(v->headers[1].value, v->headers[1].value_len, "4");
    assert_str(v->headers[2].value, v->headers[2].value_len, "close");
    ASSERT_EQ_INT(v->body_kind, TACIO__HTTP_BODY_LENGTH);
    ASSERT_EQ_U64(v->content_length, 4);
    ASSERT_EQ_INT(v->keep_alive, false);
    /* Every pointer is inside the buffer, after the struct. */
    const char *lo = a + sizeof *v, *hi = a + need;
    const char *ptrs[] = { v->method, v->target, v->path, v->query, (const char *)v->headers,
                           v->headers[0].name, v->headers[2].value };
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        ASSERT_TRUE(ptrs[i] >= lo && ptrs[i] < hi);
    /* The last string ends at the last byte. */
    ASSERT_EQ_PTR(v->headers[2].value + v->headers[2].value_len + 1, hi);
    /* Laying out the same request again (the "receive again with a bigger
     * buffer" retry) gives the same bytes, pointers aside. */
    char *b = malloc(need);
    ASSERT_OK(tacio__http_layout(&p, s, 42, 7, b, need, &got));
    ASSERT_TRUE(memcmp(a + sizeof *v + 3 * sizeof v->headers[0],
                       b + sizeof *v + 3 * sizeof v->headers[0],
                       need - sizeof *v - 3 * sizeof v->headers[0]) == 0);
    free(a);
    free(b);
}

/* ---- seeded random streams: split invariance beyond the tables -------------------- */

TT_CASE(random_split_invariance)
{
    static const char *const pieces[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n1234567",
        "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        "\r\n",
        "GET /bad HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\n",
        "X",
    };
    char stream[2048];
    for (int iter = 0; iter < 300; iter++) {
        size_t n = 0;
        unsigned k = 1 + (unsigned)tt_rand_below(6);
        for (unsigned j = 0; j < k; j++) {
            const char *pc = pieces[tt_rand_below(sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(pc);
            memcpy(stream + n, pc, l);
            n += l;
        }
        /* and flip one byte, sometimes */
        if (tt_rand_below(2))
            stream[tt_rand_below(n)] = (char)tt_rand_below(256);
        tt_context("random stream %d", iter);
        run_all(NULL, stream, n, NULL, 0);
    }
    tt_context("%s", "");
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(valid_requests, 60),
    TT_ENTRY(header_values_trimmed, 10),
    TT_ENTRY(malformed_requests, 60),
    TT_ENTRY(error_statuses, 10),
    TT_ENTRY(limit_target_414, 10),
    TT_ENTRY(limit_head_431, 60),
    TT_ENTRY(limit_headers_431, 10),
    TT_ENTRY(limit_body_413, 10),
    TT_ENTRY(limit_trailer_and_chunk_line, 60),
    TT_ENTRY(pipelined_requests, 30),
    TT_ENTRY(pipelined_then_error, 30),
    TT_ENTRY(truncated_streams, 10),
    TT_ENTRY(chunked_body_spans, 10),
    TT_ENTRY(body_without_framing_is_empty, 10),
    TT_ENTRY(head_buffer_may_move, 10),
    TT_ENTRY(layout_exact_size_and_overflow, 10),
    TT_ENTRY(layout_round_trip, 10),
    TT_ENTRY(random_split_invariance, 120),
};
TT_MAIN()
