/* test-epoll-fallback.c - where io_uring is refused, a port created without
 * naming a backend runs on epoll, says so and why, and does real I/O.
 * io_uring is taken away with a seccomp filter in the forked test child, the
 * way container runtimes do (as in test-backend-unavailable.c).
 *
 * The cases do not depend on TACIO_TEST_BACKENDS: the backend is the one
 * the library falls back to, never one the runner asks for. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "tacio-test.h"


/* A port with no backend named anywhere (option or environment), io_uring
 * refused with err: it must come up on epoll, and say why. */
static tacio_port_t *fallback_port(int err, const char *cause)
{
    unsetenv("TACIO_BACKEND");
    tt_deny_io_uring(err);
    tacio_port_t *p = NULL;
    tt_context("tacio_port_create with io_uring refused");
    tacio_status_t st = tacio_port_create(&p, 0);
    if (st != TACIO_SUCCESS) {
        char b[96];
        TT_FAIL("no fallback: tacio_port_create returned %s: \"%s\" (is the epoll backend "
                "linked in? the core refers to it weakly, and a weak reference does not pull "
                "epoll.o out of libtacio.a)",
                tt_status_str(st, b, sizeof b), tacio_last_error());
    }
    tacio_port_info_t info;
    memset(&info, 0, sizeof info);
    ASSERT_OK(tacio_port_info(p, &info));
    tt_context("info.backend = \"%s\", info.why = \"%s\"", info.backend ? info.backend : "(null)",
               info.why ? info.why : "(null)");
    ASSERT_TRUE(info.backend && strcmp(info.backend, "epoll") == 0);
    ASSERT_TRUE(info.why != NULL);
    ASSERT_TRUE(strstr(info.why, "epoll") != NULL);
    /* ... and the reason is io_uring's refusal, named */
    ASSERT_TRUE(strstr(info.why, "io_uring_setup") != NULL);
    ASSERT_TRUE(strstr(info.why, strerror(err)) != NULL);
    ASSERT_TRUE(strstr(info.why, cause) != NULL);
    tt_context("%s", "");
    return p;
}

/* ---- a TCP echo over loopback, on one thread pumping the port --------------- */

enum { ECHO_LEN = 256 * 1024, CHUNK = 16 * 1024 };

typedef struct echo {
    tacio_port_t *port;
    tacio_handle_t *hl, *hc, *hs;
    tacio_op_t acc, con, csend, crecv, srecv, ssend;
    tacio_addr_t peer, to;
    unsigned char *out, *back, sbuf[CHUNK];
    size_t got, served, inflight_echo;
    int accepted, connected, csent, sending;
} echo_t;

static void start_srecv(echo_t *x);
static void start_crecv(echo_t *x);

/* One result, returned by a start or dequeued: the same handling either way. */
static void on_result(echo_t *x, tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    char b[96];
    if (op == &x->acc) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("accept: %s", tt_status_str(st, b, sizeof b));
        x->hs = tt_handle(x->port, (int)bytes, 3, 0);
        x->accepted = 1;
    } else if (op == &x->con) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("connect: %s", tt_status_str(st, b, sizeof b));
        x->connected = 1;
    } else if (op == &x->csend) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("client send: %s", tt_status_str(st, b, sizeof b));
        ASSERT_EQ_U64(bytes, ECHO_LEN); /* a stream send completes with its whole buffer */
        x->csent = 1;
    } else if (op == &x->srecv) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("server recv: %s", tt_status_str(st, b, sizeof b));
        ASSERT_TRUE(bytes > 0 && bytes <= CHUNK);
        x->inflight_echo = (size_t)bytes;
        x->sending = 1;
        tacio_status_t s = tacio_send(x->hs, &x->ssend, x->sbuf, (size_t)bytes);
        if (s != TACIO_PENDING)
            on_result(x, &x->ssend, s, x->ssend.bytes);
    } else if (op == &x->ssend) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("server send: %s", tt_status_str(st, b, sizeof b));
        ASSERT_EQ_U64(bytes, x->inflight_echo);
        x->served += x->inflight_echo;
        x->sending = 0;
        if (x->served < ECHO_LEN)
            start_srecv(x);
    } else if (op == &x->crecv) {
        if (st != TACIO_SUCCESS)
            TT_FAIL("client recv: %s", tt_status_str(st, b, sizeof b));
        ASSERT_TRUE(bytes > 0 && x->got + bytes <= ECHO_LEN);
        x->got += (size_t)bytes;
        if (x->got < ECHO_LEN)
            start_crecv(x);
    } else {
        TT_FAIL("a completion for an unknown record %p", (void *)op);
    }
}

static void start_srecv(echo_t *x)
{
    tacio_status_t s = tacio_recv(x->hs, &x->srecv, x->sbuf, sizeof x->sbuf);
    if (s != TACIO_PENDING)
        on_result(x, &x->srecv, s, x->srecv.bytes);
}

static void start_crecv(echo_t *x)
{
    size_t left = ECHO_LEN - x->got;
    tacio_status_t s = tacio_recv(x->hc, &x->crecv, x->back + x->got, left < CHUNK ? left : CHUNK);
    if (s != TACIO_PENDING)
        on_result(x, &x->crecv, s, x->crecv.bytes);
}

static void pump(echo_t *x, const char *what)
{
    tacio_entry_t e[8];
    unsigned n = 0;
    tacio_status_t st = tacio_port_dequeue(x->port, e, 8, &n, 5000);
    if (st == TACIO_TIMEOUT)
        TT_FAIL("%s: nothing completed in 5 s (accepted %d connected %d sent %d, served %zu, "
                "echoed back %zu of %d)", what, x->accepted, x->connected, x->csent, x->served,
                x->got, ECHO_LEN);
    ASSERT_OK(st);
    for (unsigned i = 0; i < n; i++) {
        ASSERT_EQ_INT(e[i].kind, TACIO_ENTRY_OP);
        ASSERT_EQ_STATUS(e[i].op->status, e[i].status);
        on_result(x, e[i].op, e[i].status, e[i].bytes);
    }
}

static void tcp_echo_round_trip(tacio_port_t *p)
{
    echo_t *x = calloc(1, sizeof *x);
    ASSERT_TRUE(x != NULL);
    x->port = p;
    x->out = malloc(ECHO_LEN);
    x->back = calloc(1, ECHO_LEN);
    ASSERT_TRUE(x->out && x->back);
    for (size_t i = 0; i < ECHO_LEN; i++)
        x->out[i] = tt_pattern_byte(i);

    struct sockaddr_in a;
    x->hl = tt_handle(p, tt_tcp_listener(4, &a), 1, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(c >= 0);
    /* small buffers: the 256 KiB send has to wait for the echo to drain */
    int small = 16384;
    ASSERT_EQ_INT(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ASSERT_EQ_INT(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    x->hc = tt_handle(p, c, 2, 0);

    tt_context("accept and connect");
    tacio_status_t s = tacio_accept(x->hl, &x->acc, &x->peer);
    if (s != TACIO_PENDING)
        on_result(x, &x->acc, s, x->acc.bytes);
    x->to.len = sizeof a;
    x->to.u.in = a;
    s = tacio_connect(x->hc, &x->con, &x->to);
    if (s != TACIO_PENDING)
        on_result(x, &x->con, s, x->con.bytes);
    while (!x->accepted || !x->connected)
        pump(x, "accept and connect");

    tt_context("echo");
    s = tacio_send(x->hc, &x->csend, x->out, ECHO_LEN);
    if (s != TACIO_PENDING)
        on_result(x, &x->csend, s, x->csend.bytes);
    start_srecv(x);
    start_crecv(x);
    while (!x->csent || x->got < ECHO_LEN || x->served < ECHO_LEN || x->sending)
        pump(x, "echo");
    ASSERT_TRUE(memcmp(x->out, x->back, ECHO_LEN) == 0);

    tt_context("close");
    ASSERT_OK(tacio_handle_close(x->hc));
    ASSERT_OK(tacio_handle_close(x->hs));
    ASSERT_OK(tacio_handle_close(x->hl));
    ASSERT_EQ_INT(tt_dequeue_all(p, NULL, 0, 50), 0);
    free(x->out);
    free(x->back);
    free(x);
    tt_context("%s", "");
}

/* ---- cases ------------------------------------------------------------------ */

TT_CASE(seccomp_eperm_falls_back_to_epoll)
{
    tacio_port_t *p = fallback_port(EPERM, "seccomp");
    tcp_echo_round_trip(p);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

TT_CASE(seccomp_enosys_falls_back_to_epoll)
{
    tacio_port_t *p = fallback_port(ENOSYS, "no io_uring");
    tcp_echo_round_trip(p);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* Falling back is for callers that did not choose: a named backend that
 * cannot run is refused, never silently replaced. */
TT_CASE(named_io_uring_is_not_replaced)
{
    tt_deny_io_uring(EPERM);
    tacio_port_t *p = NULL;
    tacio_port_options_t o = {.backend = "io_uring"};
    ASSERT_EQ_STATUS(tacio_port_create_ex(&p, &o), TACIO_NOT_SUPPORTED);
    ASSERT_EQ_PTR(p, NULL);
    ASSERT_TRUE(strstr(tacio_last_error(), "io_uring_setup") != NULL);
    /* the same through the environment */
    ASSERT_EQ_INT(setenv("TACIO_BACKEND", "io_uring", 1), 0);
    ASSERT_EQ_STATUS(tacio_port_create(&p, 0), TACIO_NOT_SUPPORTED);
    ASSERT_EQ_PTR(p, NULL);
    unsetenv("TACIO_BACKEND");
}

/* A timer and a file read on the fallback port: the two paths that do not
 * go through epoll readiness (the heap, the file workers). */
TT_CASE(fallback_port_runs_timers_and_files)
{
    tacio_port_t *p = fallback_port(EPERM, "seccomp");
    tacio_op_t t, r;
    tacio_op_init(&t);
    tacio_op_init(&r);
    uint64_t t0 = tt_now_ns();
    ASSERT_EQ_STATUS(tacio_timer_start(p, &t, 9, 20000000ull), TACIO_PENDING);
    tacio_handle_t *h = tt_handle(p, tt_tmpfile(8192), 4, 0);
    unsigned char buf[100];
    ASSERT_EQ_STATUS(tacio_read(h, &r, buf, sizeof buf, 5000), TACIO_PENDING);
    tacio_entry_t e[4];
    ASSERT_EQ_INT(tt_collect(p, e, 4, 5000, 100), 2);
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(e[i].status);
        if (e[i].op == &t) {
            ASSERT_EQ_U64(e[i].key, 9);
            ASSERT_GE_INT((tt_now_ns() - t0) / 1000000, 19);
        } else {
            ASSERT_EQ_PTR(e[i].op, &r);
            ASSERT_EQ_U64(e[i].bytes, sizeof buf);
        }
    }
    for (size_t i = 0; i < sizeof buf; i++)
        ASSERT_EQ_INT(buf[i], tt_pattern_byte(5000 + i));
    ASSERT_OK(tacio_handle_close(h));
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(seccomp_eperm_falls_back_to_epoll, 30),
    TT_ENTRY(seccomp_enosys_falls_back_to_epoll, 30),
    TT_ENTRY(named_io_uring_is_not_replaced, 30),
    TT_ENTRY(fallback_port_runs_timers_and_files, 30),
};
TT_MAIN()
