/* tests/fuzz/fuzz-http-parse.c - libFuzzer target for the HTTP parser.
 *
 * Input: byte 0 picks the limits (small ones too, so each limit's edge is
 * reached), byte 1 seeds how the rest is cut into pieces, the rest is the
 * byte stream of a connection (any number of pipelined requests).
 *
 * Oracles, beyond the sanitizers:
 *   - the trace (heads, request sizes, body hashes, errors with their
 *     offsets) of the stream fed whole equals the trace of the stream fed in
 *     random pieces and, for short inputs, byte by byte: the parser never
 *     depends on where reads happen to end;
 *   - every parsed head lays out at exactly tacio__http_layout_size() bytes,
 *     a byte less gives BUFFER_OVERFLOW with that size, and every string of
 *     the view matches the bytes received (http-drive.h).
 *
 * Built with clang -fsanitize=fuzzer (fuzz-http-parse) and, with any
 * compiler, linked to replay-http-parse.c (replay-http-parse), which feeds the
 * committed corpus and seeded mutations of it through this same function.
 */
#include <stdio.h>

#include "http-drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rnd_pieces {
    uint32_t state;
};

static size_t rnd_piece(void *ctx, size_t delivered, size_t total)
{
    struct rnd_pieces *r = ctx;
    (void)delivered;
    (void)total;
    r->state = r->state * 1103515245u + 12345u;
    /* Mostly short pieces, sometimes a long one. */
    uint32_t x = r->state >> 16;
    return (x & 7) == 0 ? 1 + (x >> 3) % 512 : 1 + (x >> 3) % 9;
}

static void limits_for(uint8_t cfg, struct tacio__http_limits *lim)
{
    tacio__http_limits_default(lim);
    if (!(cfg & 1))
        return;
    lim->max_head = 24u + (cfg >> 1) * 4u;           /* 24..532 */
    lim->max_target = 1u + ((cfg >> 2) & 31u) * 3u;  /* 1..94 */
    lim->max_headers = 1u + (cfg >> 5);              /* 1..8 */
    lim->max_body = 1u + (cfg >> 3) * 5u;            /* 1..156 */
}

static void check(int ok, const char *what, const struct hd_trace *a, const struct hd_trace *b)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz-http-parse: %s (events %u vs %u, first difference at %u)\n", what,
            a->n, b ? b->n : 0, b ? hd_diff(a, b) : 0);
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hd_trace whole, cut;   /* static: a few KiB, not per call on the stack */
    struct tacio__http_limits lim;
    uint8_t cfg = size > 0 ? data[0] : 0, seed = size > 1 ? data[1] : 0;
    size_t skip = size < 2 ? size : 2;
    const char *in = (const char *)data + skip;
    size_t n = size - skip;

    limits_for(cfg, &lim);
    hd_run(&lim, in, n, hd_all, NULL, &whole);
    check(whole.layout_error == NULL, whole.layout_error ? whole.layout_error : "", &whole, NULL);

    struct rnd_pieces r = { seed * 2654435761u + 1u };
    hd_run(&lim, in, n, rnd_piece, &r, &cut);
    check(hd_diff(&whole, &cut) == 0, "random pieces differ from whole", &whole, &cut);

    if (n <= 2048) {
        hd_run(&lim, in, n, hd_bytewise, NULL, &cut);
        check(hd_diff(&whole, &cut) == 0, "byte-by-byte differs from whole", &whole, &cut);
    }
    return 0;
}
