/* tests/tacio-test.h - the test framework every tests/test-*.c but
 * test-status.c is built on.
 *
 * A test file:
 *
 *     #include "tacio-test.h"
 *
 *     TT_CASE(post_passes_values) { ... ASSERT_EQ_U64(e.key, 7); ... }
 *     TT_CASE(timer_fires_once)   { ... }
 *
 *     static const tt_case_t tt_cases[] = {
 *         TT_ENTRY(post_passes_values, 10),
 *         TT_ENTRY(timer_fires_once, 10),
 *     };
 *     TT_MAIN()
 *
 * RUNNER (tt_main): for each backend in TACIO_TEST_BACKENDS (comma list,
 * default "io_uring") and each case (or only the cases matching argv[1], a
 * name or an fnmatch pattern), fork a child, run the case in it under its
 * timeout (the parent kills the child with SIGKILL when it runs out), and
 * print one line per run:
 *     ok name [backend]
 *     FAIL name [backend] (reason)        + "# TACIO_SEED=N to replay: ..."
 *     skip name [backend] (reason)        (child exit 77)
 * then exactly one line "N passed, N failed, N skipped". Exit status: 1 if
 * any failed, 77 if every run was skipped (CTest SKIP_RETURN_CODE), else 0.
 * TACIO_TEST_TIMEOUT_MULT (a positive integer) scales every timeout, for
 * sanitizer builds.
 *
 * In the child, after the case returns, the number of open fds is compared
 * with the number at case start (via /proc/self/fd); the case fails if it
 * grew (after a short grace period for fds the library closes on its own
 * threads).
 *
 * ASSERT_* abort the child (exit 1) after printing file:line, both values,
 * the backend, the seed and the context set with tt_context(); they may be
 * called from any thread of the child.
 *
 * THREAD SAFETY: the runner is single-threaded and forks before any case
 * runs; inside a case every helper may be called from any thread except
 * tt_context() (the case's main thread only).
 */
#ifndef TACIO_TEST_H
#define TACIO_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <tacio/tacio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit status of a child that skips (liburing's T_EXIT_SKIP, automake's 77). */
#define TT_EXIT_SKIP 77

typedef struct tt_case {
    const char *name;
    void (*fn)(void);
    unsigned timeout_s;       /* per run, before TACIO_TEST_TIMEOUT_MULT */
} tt_case_t;

#define TT_CASE(name) static void name(void)
#define TT_ENTRY(name, timeout_seconds) { #name, name, (timeout_seconds) }
#define TT_MAIN()                                                              \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return tt_main(tt_cases, sizeof tt_cases / sizeof tt_cases[0], argc, argv); \
    }

int tt_main(const tt_case_t *cases, size_t n, int argc, char **argv);

/* ---- the current run ---------------------------------------------------- */

/* Name of the backend this run uses ("io_uring"). Valid for the whole child. */
const char *tt_backend(void);
/* Name of the running case. */
const char *tt_case_name(void);

/* A port on tt_backend() with the given concurrency (0 = CPUs). Fails the
 * case with tacio_last_error() on error; skips it (exit 77) when the status
 * is TACIO_NOT_SUPPORTED. */
tacio_port_t *tt_port(unsigned concurrency);

/* tacio_handle_open that fails the case on error. */
tacio_handle_t *tt_handle(tacio_port_t *port, int fd, uint64_t key, unsigned flags);

/* ---- failing, skipping, context ---------------------------------------- */

__attribute__((noreturn, format(printf, 3, 4)))
void tt__fail(const char *file, int line, const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2)))
void tt__skip(const char *fmt, ...);
__attribute__((noreturn))
void tt__fail_status(const char *file, int line, const char *ea, const char *eb,
                     tacio_status_t a, tacio_status_t b);

#define TT_FAIL(...) tt__fail(__FILE__, __LINE__, __VA_ARGS__)

/* One line "# <case>: <text>" on stderr: what a case measured. */
__attribute__((format(printf, 1, 2)))
void tt_note(const char *fmt, ...);
#define TT_SKIP(...) tt__skip(__VA_ARGS__)

/* A short description of what the case is doing now ("tcp_recv: after
 * cancel"), printed with every failure. Case's main thread only; "" clears. */
__attribute__((format(printf, 1, 2)))
void tt_context(const char *fmt, ...);

#define ASSERT_TRUE(x)                                                         \
    do {                                                                       \
        if (!(x))                                                              \
            tt__fail(__FILE__, __LINE__, "ASSERT_TRUE(%s) is false", #x);      \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                    \
    do {                                                                       \
        long long tt_a_ = (long long)(a), tt_b_ = (long long)(b);              \
        if (tt_a_ != tt_b_)                                                    \
            tt__fail(__FILE__, __LINE__, "ASSERT_EQ_INT(%s, %s): %lld != %lld", \
                     #a, #b, tt_a_, tt_b_);                                    \
    } while (0)

#define ASSERT_GE_INT(a, b)                                                    \
    do {                                                                       \
        long long tt_a_ = (long long)(a), tt_b_ = (long long)(b);              \
        if (!(tt_a_ >= tt_b_))                                                 \
            tt__fail(__FILE__, __LINE__, "ASSERT_GE_INT(%s, %s): %lld < %lld", \
                     #a, #b, tt_a_, tt_b_);                                    \
    } while (0)

#define ASSERT_LE_INT(a, b)                                                    \
    do {                                                                       \
        long long tt_a_ = (long long)(a), tt_b_ = (long long)(b);              \
        if (!(tt_a_ <= tt_b_))                                                 \
            tt__fail(__FILE__, __LINE__, "ASSERT_LE_INT(%s, %s): %lld > %lld", \
                     #a, #b, tt_a_, tt_b_);                                    \
    } while (0)

#define ASSERT_EQ_U64(a, b)                                                    \
    do {                                                                       \
        unsigned long long tt_a_ = (unsigned long long)(a);                    \
        unsigned long long tt_b_ = (unsigned long long)(b);                    \
        if (tt_a_ != tt_b_)                                                    \
            tt__fail(__FILE__, __LINE__,                                       \
                     "ASSERT_EQ_U64(%s, %s): %llu (0x%llx) != %llu (0x%llx)",  \
                     #a, #b, tt_a_, tt_a_, tt_b_, tt_b_);                      \
    } while (0)

#define ASSERT_EQ_PTR(a, b)                                                    \
    do {                                                                       \
        const void *tt_a_ = (const void *)(a), *tt_b_ = (const void *)(b);     \
        if (tt_a_ != tt_b_)                                                    \
            tt__fail(__FILE__, __LINE__, "ASSERT_EQ_PTR(%s, %s): %p != %p",    \
                     #a, #b, tt_a_, tt_b_);                                    \
    } while (0)

#define ASSERT_EQ_STATUS(a, b)                                                 \
    do {                                                                       \
        tacio_status_t tt_a_ = (a), tt_b_ = (b);                               \
        if (tt_a_ != tt_b_)                                                    \
            tt__fail_status(__FILE__, __LINE__, #a, #b, tt_a_, tt_b_);         \
    } while (0)

#define ASSERT_OK(a) ASSERT_EQ_STATUS((a), TACIO_SUCCESS)

/* "NAME (0xXXXXXXXX)" for a status, in buf; returns buf. */
const char *tt_status_str(tacio_status_t s, char *buf, size_t size);

/* ---- seeded randomness -------------------------------------------------- */

/* The process seed: TACIO_SEED if set, else time-based; chosen once, before
 * the first fork, so every child of one runner shares it. */
uint64_t tt_seed(void);
/* xorshift64*, seeded from tt_seed() and the case name (so one case replays
 * alone from the seed). Thread-safe (one lock-free shared state). */
uint64_t tt_rand(void);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t tt_rand_below(uint64_t n);

/* ---- time --------------------------------------------------------------- */

uint64_t tt_now_ns(void);       /* CLOCK_MONOTONIC */
void tt_sleep_ms(unsigned ms);

/* ---- threads ------------------------------------------------------------ */

/* The calling thread's kernel id. */
int tt_gettid(void);
/* Wait (up to timeout_ms) until thread tid is asleep in the kernel (state
 * 'S' in /proc/self/task/TID/stat on two samples 10 ms apart), i.e. blocked
 * in a wait such as tacio_port_dequeue. Fails the case on timeout. This is
 * how a test puts waiters in a known order without timing guesses. */
void tt_wait_sleeping(int tid, unsigned timeout_ms);

/* ---- real kernel objects (each fails the case on error) ---------------- */

/* AF_UNIX socketpair of type (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET). */
void tt_socketpair(int type, int fds[2]);
/* A connected TCP pair over 127.0.0.1, ephemeral port; both blocking. */
void tt_tcp_pair(int *client, int *server);
/* Two UDP sockets on 127.0.0.1, each bound and connected to the other. */
void tt_udp_pair(int *a, int *b);
/* A TCP listener on 127.0.0.1:ephemeral; *addr gets its address. */
int tt_tcp_listener(int backlog, struct sockaddr_in *addr);
/* A 127.0.0.1 address with a port nothing listens on (bound, then closed). */
void tt_closed_port(int type, struct sockaddr_in *addr);
/* pipe2(O_CLOEXEC): fds[0] read end, fds[1] write end. */
void tt_pipe(int fds[2]);
/* io_uring_setup fails with err from now on in this process (seccomp). */
void tt_deny_io_uring(int err);
/* A regular file of size bytes filled with tt_pattern_byte(offset), opened
 * O_RDWR|O_CLOEXEC. It lives in a mkdtemp directory (TMPDIR or /tmp) and
 * is unlinked at once, so nothing is left behind. */
int tt_tmpfile(size_t size);
/* The byte tt_tmpfile stores at offset off. */
static inline unsigned char tt_pattern_byte(uint64_t off)
{
    return (unsigned char)(off * 131u + 7u + (off >> 8));
}
/* Make fd non-blocking (and fail the case on error). */
void tt_set_nonblock(int fd);
/* close() that fails the case on error; ignores -1. */
void tt_close(int fd);
/* Close a TCP socket with SO_LINGER {1, 0}: the peer gets an RST. */
void tt_close_reset(int fd);
/* poll() one fd for events; returns revents (0 on timeout). */
int tt_poll(int fd, short events, int timeout_ms);
/* Number of fds open in this process (entries of /proc/self/fd). */
int tt_fd_count(void);

/* ---- the port ----------------------------------------------------------- */

/* Dequeue until nothing arrives for quiet_ms; the first max entries are
 * stored in entries (may be NULL with max 0). Returns how many entries were
 * dequeued in total, stored or not (so a surplus completion is counted).
 * Stops early, without failing, on TACIO_ABANDONED. */
unsigned tt_dequeue_all(tacio_port_t *port, tacio_entry_t *entries, unsigned max,
                        unsigned quiet_ms);

/* Wait up to first_ms for a first entry, then go on as tt_dequeue_all. */
unsigned tt_collect(tacio_port_t *port, tacio_entry_t *entries, unsigned max,
                    unsigned first_ms, unsigned quiet_ms);

#ifdef __cplusplus
}
#endif
#endif
