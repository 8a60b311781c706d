/* tests/fuzz/replay-http-parse.c - main() for the fuzz target without
 * libFuzzer, so gcc and the ASan/UBSan trees exercise it too.
 *
 * Usage: replay-http-parse CORPUS_DIR [ITERATIONS]
 *   Feeds every file of CORPUS_DIR (sorted by name) through
 *   LLVMFuzzerTestOneInput, then ITERATIONS (default 300000, or
 *   TACIO_FUZZ_ITERS) inputs made by mutating corpus files with a seeded
 *   xorshift generator (TACIO_SEED, default 1: the CI run is the same every
 *   time; set it to explore). When a check of the target traps, the input
 *   is written to ./replay-http-parse-crash (feed it to fuzz-http-parse or
 *   to this program's corpus argument to replay it); a sanitizer report
 *   exits without signals, so for those set TACIO_FUZZ_SAVE=1, which writes
 *   every input there before running it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT 8192

struct file { uint8_t *data; size_t len; };

static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

/* Tokens that steer mutations toward the parser's decisions. */
static const char *const tokens[] = {
    "\r\n", "\r", "\n", " ", "\t", ":", ";", ",", "?", "#", "*", "0", "\r\n\r\n",
    "Content-Length: ", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
    "Host: a", "Connection: close", "Connection: keep-alive", "Expect: 100-continue",
    "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "ffffffffffffffffff",
    "5\r\nhello\r\n0\r\n\r\n", "\x00", "\x7f", "\xff", "http://h/p?q", "CONNECT", "OPTIONS",
};

static size_t mutate(uint8_t *buf, size_t len, const struct file *files, size_t nfiles)
{
    /* Mostly one mutation: stacked random ones kill most inputs in the
     * request line, and the body and pipelining states go unvisited. */
    unsigned rounds = below(4) ? 1 : 2 + (unsigned)below(6);
    for (unsigned r = 0; r < rounds; r++) {
        size_t pos = below(len + 1);
        switch (below(7)) {
        case 0: /* flip a bit */
            if (len)
                buf[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* random byte */
            if (len)
                buf[below(len)] = (uint8_t)next();
            break;
        case 2: /* delete a range */
            if (len) {
                size_t n = 1 + below(len - pos < 16 ? len - pos + 1 : 16);
                if (pos + n > len)
                    n = len - pos;
                memmove(buf + pos, buf + pos + n, len - pos - n);
                len -= n;
            }
            break;
        case 3: { /* insert a token */
            const char *t = tokens[below(sizeof tokens / sizeof tokens[0])];
            size_t n = strlen(t);
            if (t[0] == '\0')
                n = 1;   /* the NUL token */
            if (len + n <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, t, n);
                len += n;
            }
            break;
        }
        case 4: { /* duplicate a range (pipelining, repeated headers) */
            size_t n = below(len - pos + 1);
            if (len + n <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, buf + pos + n, n);
                len += n;
            }
            break;
        }
        case 5: { /* splice in part of another file */
            const struct file *f = &files[below(nfiles)];
            size_t from = below(f->len + 1), n = below(f->len - from + 1);
            if (len + n <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, f->data + from, n);
                len += n;
            }
            break;
        }
        default: /* new configuration byte */
            if (len)
                buf[0] = (uint8_t)next();
            break;
        }
    }
    return len;
}

static int load(const char *dir, struct file **out, size_t *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return -1;
    }
    *out = calloc((size_t)n + 1, sizeof **out);
    *count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (names[i]->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            FILE *f = fopen(path, "rb");
            if (f) {
                struct file *fl = &(*out)[*count];
                fl->data = malloc(REPLAY_MAX_INPUT);
                fl->len = fread(fl->data, 1, REPLAY_MAX_INPUT, f);
                fclose(f);
                (*count)++;
            }
        }
        free(names[i]);
    }
    free(names);
    return 0;
}

static const uint8_t *current;
static size_t current_len;

static void save_current(void)
{
    /* Only async-signal-safe calls: this runs in the trap handler too. */
    int fd = open("replay-http-parse-crash", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, current, current_len) < 0) {
            /* nothing better to do in a dying process */
        }
        close(fd);
    }
}

static void on_trap(int sig)
{
    save_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run(const uint8_t *d, size_t n, int save)
{
    current = d;
    current_len = n;
    if (save)
        save_current();
    LLVMFuzzerTestOneInput(d, n);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
        return 2;
    }
    const char *env_iters = getenv("TACIO_FUZZ_ITERS"), *env_seed = getenv("TACIO_SEED");
    unsigned long iters = argc > 2 ? strtoul(argv[2], NULL, 0)
                        : env_iters ? strtoul(env_iters, NULL, 0) : 300000ul;
    uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : 1;
    rng = seed * 0x9E3779B97F4A7C15ull + 1;

    struct file *files;
    size_t nfiles;
    if (load(argv[1], &files, &nfiles) != 0 || nfiles == 0) {
        fprintf(stderr, "replay-http-parse: no corpus in %s\n", argv[1]);
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int save = getenv("TACIO_FUZZ_SAVE") != NULL;
    signal(SIGILL, on_trap);
    signal(SIGABRT, on_trap);
    signal(SIGSEGV, on_trap);
    for (size_t i = 0; i < nfiles; i++)
        run(files[i].data, files[i].len, save);
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    for (unsigned long it = 0; it < iters; it++) {
        const struct file *f = &files[below(nfiles)];
        memcpy(buf, f->data, f->len);
        size_t len = mutate(buf, f->len, files, nfiles);
        /* Exact-size copy, so ASan sees a read past the input. */
        uint8_t *in = malloc(len ? len : 1);
        memcpy(in, buf, len);
        run(in, len, save);
        free(in);
    }
    if (save)
        remove("replay-http-parse-crash");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("replay-http-parse: %zu corpus files, %lu mutated inputs, TACIO_SEED=%llu, %.1f s\n",
           nfiles, iters, (unsigned long long)seed,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i].data);
    free(files);
    free(buf);
    return 0;
}
