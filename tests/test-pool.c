/* test-pool.c - the thread pool: bound I/O callbacks (the one-bit rule),
 * work, timers, waits, sizing, cleanup groups and calls made from inside
 * callbacks. Every case runs on each backend in TACIO_TEST_BACKENDS. */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "tacio-test.h"
#include <tacio/pool.h>

static tacio_pool_t *mkpool(unsigned min, unsigned max, unsigned conc, unsigned idle_ms)
{
    tacio_pool_options_t o = {.min_threads = min, .max_threads = max, .concurrency = conc,
                              .idle_ms = idle_ms, .backend = tt_backend()};
    tacio_pool_t *p = NULL;
    tacio_status_t st = tacio_pool_create(&p, &o);
    if (st == TACIO_NOT_SUPPORTED)
        TT_SKIP("%s", tacio_last_error());
    ASSERT_OK(st);
    return p;
}

/* Wait (bounded) until *v reaches want. */
static void wait_for(_Atomic unsigned *v, unsigned want, unsigned ms, const char *what)
{
    uint64_t end = tt_now_ns() + (uint64_t)ms * 1000000u;
    while (atomic_load(v) < want) {
        if (tt_now_ns() > end)
            TT_FAIL("%s: %u of %u after %u ms", what, atomic_load(v), want, ms);
        tt_sleep_ms(1);
    }
}

/* ---- bound I/O: the callback runs once per PENDING, never otherwise ---------------------- */

typedef struct iorec {
    tacio_op_t op;
    char buf[64];
    _Atomic unsigned calls;
    tacio_status_t status;
    uint64_t bytes;
    pthread_t thread;
} iorec_t;

static _Atomic unsigned g_io_calls;

static void io_cb(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                  uint64_t bytes)
{
    (void)io;
    (void)ctx;
    iorec_t *r = tacio_container_of(op, iorec_t, op);
    r->status = st;
    r->bytes = bytes;
    r->thread = pthread_self();
    atomic_fetch_add(&r->calls, 1);
    atomic_fetch_add(&g_io_calls, 1);
}

TT_CASE(io_callback_once_per_pending)
{
    tacio_pool_t *pool = mkpool(2, 4, 2, 0);
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, io_cb, NULL, NULL, &io));
    tacio_handle_t *h = tacio_pool_io_handle(io);
    iorec_t a = {0};
    ASSERT_EQ_STATUS(tacio_recv(h, &a.op, a.buf, sizeof a.buf), TACIO_PENDING);
    ASSERT_EQ_INT(write(sv[1], "hello", 5), 5);
    wait_for(&a.calls, 1, 5000, "callback for the pending recv");
    ASSERT_EQ_STATUS(a.status, TACIO_SUCCESS);
    ASSERT_EQ_U64(a.bytes, 5);
    ASSERT_TRUE(memcmp(a.buf, "hello", 5) == 0);
    ASSERT_TRUE(!pthread_equal(a.thread, pthread_self()));

    /* Data already there: the start returns SUCCESS and no callback runs. */
    ASSERT_EQ_INT(write(sv[1], "again", 5), 5);
    tt_sleep_ms(5);
    iorec_t b = {0};
    tacio_status_t st = tacio_recv(h, &b.op, b.buf, sizeof b.buf);
    if (st == TACIO_PENDING)
        wait_for(&b.calls, 1, 5000, "callback");
    else
        ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
    tt_sleep_ms(50);
    ASSERT_EQ_INT(atomic_load(&b.calls), st == TACIO_PENDING ? 1 : 0);
    ASSERT_EQ_INT(atomic_load(&a.calls), 1);
    ASSERT_OK(tacio_pool_io_close(io, TACIO_POOL_WAIT));
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* The seed case's warning: a datagram larger than the buffer, there before
 * the receive starts, ends the start call with BUFFER_OVERFLOW and the real
 * size, and the callback never runs for it; the same record is at once
 * reused with a bigger buffer. A pending receive that overflows later runs
 * the callback once, with the warning. */
TT_CASE(io_warning_never_runs_callback)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    int a, b;
    tt_udp_pair(&a, &b);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, a, 0, io_cb, NULL, NULL, &io));
    tacio_handle_t *h = tacio_pool_io_handle(io);
    char big[1500];
    memset(big, 'x', sizeof big);
    ASSERT_EQ_INT(send(b, big, sizeof big, 0), (int)sizeof big);
    ASSERT_TRUE(tt_poll(a, POLLIN, 2000) > 0);
    iorec_t r = {0};
    ASSERT_EQ_STATUS(tacio_recv(h, &r.op, r.buf, 16), TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(r.op.bytes, sizeof big);
    /* Reuse at once (the record is the caller's again). */
    ASSERT_EQ_STATUS(tacio_recv(h, &r.op, r.buf, 16), TACIO_PENDING);
    ASSERT_EQ_INT(send(b, big, 100, 0), 100);
    wait_for(&r.calls, 1, 5000, "pending overflow callback");
    ASSERT_EQ_STATUS(r.status, TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(r.bytes, 100);
    tt_sleep_ms(30);
    ASSERT_EQ_INT(atomic_load(&r.calls), 1);
    ASSERT_OK(tacio_pool_io_close(io, TACIO_POOL_WAIT));
    tt_close(b);
    ASSERT_OK(tacio_pool_close(pool));
}

/* Closing with operations pending: each runs its callback once, CANCELLED,
 * and TACIO_POOL_WAIT returns only after the last one. */
TT_CASE(io_close_wait_runs_cancelled)
{
    tacio_pool_t *pool = mkpool(2, 4, 2, 0);
    int sv[2];
    tt_socketpair(SOCK_DGRAM, sv);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, io_cb, NULL, NULL, &io));
    enum { N = 16 };
    iorec_t *r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(io), &r[i].op, r[i].buf, 8),
                         TACIO_PENDING);
    ASSERT_OK(tacio_pool_io_close(io, TACIO_POOL_WAIT));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(atomic_load(&r[i].calls), 1);
        ASSERT_EQ_STATUS(r[i].status, TACIO_CANCELLED);
    }
    free(r);
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- calls from inside callbacks ----------------------------------------------------------- */

typedef struct selfclose {
    tacio_pool_io_t *io;
    iorec_t r;
    tacio_status_t wait_st, close_st;
    _Atomic unsigned done;
} selfclose_t;

static void selfclose_cb(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                         uint64_t bytes)
{
    selfclose_t *s = ctx;
    (void)op;
    (void)st;
    (void)bytes;
    /* Waiting for our own callbacks could never end: refused, close done. */
    if (atomic_load(&s->done) == 0) {
        s->wait_st = tacio_pool_io_close(io, TACIO_POOL_WAIT);
        s->close_st = tacio_pool_io_close(io, 0); /* already closed */
    }
    atomic_fetch_add(&s->done, 1);
}

TT_CASE(callback_closes_own_handle)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    selfclose_t s = {0};
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, selfclose_cb, &s, NULL, &s.io));
    iorec_t r2 = {0};
    ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(s.io), &s.r.op, s.r.buf, 4), TACIO_PENDING);
    ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(s.io), &r2.op, r2.buf, 4), TACIO_PENDING);
    ASSERT_EQ_INT(write(sv[1], "abcd", 4), 4);
    wait_for(&s.done, 2, 5000, "both callbacks (natural, then cancelled by the close)");
    ASSERT_EQ_STATUS(s.wait_st, TACIO_POSSIBLE_DEADLOCK);
    ASSERT_EQ_STATUS(s.close_st, TACIO_INVALID_HANDLE);
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

typedef struct tself {
    tacio_pool_timer_t *t;
    _Atomic unsigned runs, entered;
    tacio_status_t set_st, close_st;
} tself_t;

static void tself_cb(tacio_pool_timer_t *t, void *ctx)
{
    tself_t *s = ctx;
    unsigned n = atomic_fetch_add(&s->entered, 1) + 1;
    if (n < 3) {
        s->set_st = tacio_pool_timer_set(t, 1000000, 0); /* re-arm itself */
    } else {
        s->close_st = tacio_pool_timer_close(t, TACIO_POOL_WAIT); /* refused wait */
    }
    atomic_fetch_add(&s->runs, 1); /* after the statuses: the test reads them then */
}

TT_CASE(callback_rearms_and_closes_own_timer)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    tself_t s = {0};
    ASSERT_OK(tacio_pool_timer_create(pool, tself_cb, &s, NULL, &s.t));
    ASSERT_OK(tacio_pool_timer_set(s.t, 1000000, 0));
    wait_for(&s.runs, 3, 5000, "timer runs");
    tt_sleep_ms(30);
    ASSERT_EQ_INT(atomic_load(&s.runs), 3);
    ASSERT_EQ_STATUS(s.set_st, TACIO_SUCCESS);
    ASSERT_EQ_STATUS(s.close_st, TACIO_POSSIBLE_DEADLOCK);
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    ASSERT_EQ_INT(info.objects, 0);
    ASSERT_OK(tacio_pool_close(pool));
}

/* A callback still running while another thread closes its object: the
 * close returns at once, the waiting close only after the callback. */
typedef struct slowcb {
    _Atomic unsigned entered, left;
} slowcb_t;

static void slow_io_cb(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                       uint64_t bytes)
{
    slowcb_t *s = ctx;
    (void)io;
    (void)op;
    (void)st;
    (void)bytes;
    atomic_fetch_add(&s->entered, 1);
    tt_sleep_ms(100);
    atomic_fetch_add(&s->left, 1);
}

TT_CASE(callback_returns_while_handle_closes)
{
    tacio_pool_t *pool = mkpool(2, 4, 2, 0);
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    slowcb_t s = {0};
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, slow_io_cb, &s, NULL, &io));
    iorec_t r = {0};
    ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(io), &r.op, r.buf, 4), TACIO_PENDING);
    ASSERT_EQ_INT(write(sv[1], "x", 1), 1);
    wait_for(&s.entered, 1, 5000, "callback entered");
    uint64_t t0 = tt_now_ns();
    ASSERT_OK(tacio_pool_io_close(io, TACIO_POOL_WAIT));
    ASSERT_EQ_INT(atomic_load(&s.left), 1);
    ASSERT_TRUE(tt_now_ns() - t0 >= 20 * 1000000ull); /* it did wait for the callback */
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- work ------------------------------------------------------------------------------------ */

static _Atomic unsigned g_work_runs;
static void work_cb(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    atomic_fetch_add(&g_work_runs, 1);
}

static _Atomic unsigned g_calls;
static void call_cb(void *ctx)
{
    atomic_fetch_add(&g_calls, (unsigned)(uintptr_t)ctx);
}

TT_CASE(work_runs_once_per_submit)
{
    tacio_pool_t *pool = mkpool(2, 4, 2, 0);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, work_cb, NULL, NULL, &w));
    const unsigned n = 20000;
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    for (unsigned i = 0; i < 100; i++)
        ASSERT_OK(tacio_pool_submit(pool, call_cb, (void *)(uintptr_t)3));
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));
    ASSERT_EQ_INT(atomic_load(&g_work_runs), n);
    wait_for(&g_calls, 300, 5000, "one-shot calls");
    ASSERT_EQ_STATUS(tacio_pool_work_submit(w == NULL ? NULL : NULL), TACIO_INVALID_HANDLE);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- timers --------------------------------------------------------------------------------- */

typedef struct tick {
    _Atomic unsigned runs, entered;
    _Atomic uint64_t at[64];
} tick_t;

static void tick_cb(tacio_pool_timer_t *t, void *ctx)
{
    (void)t;
    tick_t *k = ctx;
    uint64_t now = tt_now_ns();
    unsigned i = atomic_fetch_add(&k->entered, 1);
    if (i < 64)
        atomic_store(&k->at[i], now);
    atomic_fetch_add(&k->runs, 1); /* after at[i]: readers wait for runs */
}

TT_CASE(timer_oneshot_order_and_cancel)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    tick_t k[3] = {0};
    tacio_pool_timer_t *t[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(tacio_pool_timer_create(pool, tick_cb, &k[i], NULL, &t[i]));
    uint64_t t0 = tt_now_ns();
    ASSERT_OK(tacio_pool_timer_set(t[0], 60000000, 0));  /* 60 ms */
    ASSERT_OK(tacio_pool_timer_set(t[1], 20000000, 0));  /* 20 ms */
    ASSERT_OK(tacio_pool_timer_set(t[2], 40000000, 0));  /* 40 ms, then cancelled */
    ASSERT_OK(tacio_pool_timer_cancel(t[2]));
    ASSERT_EQ_STATUS(tacio_pool_timer_cancel(t[2]), TACIO_NOT_FOUND);
    wait_for(&k[0].runs, 1, 5000, "60 ms timer");
    tt_sleep_ms(80);
    ASSERT_EQ_INT(atomic_load(&k[0].runs), 1);
    ASSERT_EQ_INT(atomic_load(&k[1].runs), 1);
    ASSERT_EQ_INT(atomic_load(&k[2].runs), 0);
    ASSERT_TRUE(k[1].at[0] < k[0].at[0]);
    ASSERT_TRUE(k[1].at[0] - t0 >= 20000000);
    ASSERT_TRUE(k[0].at[0] - t0 >= 60000000);
    /* Setting again replaces: one run, at the new time. */
    ASSERT_OK(tacio_pool_timer_set(t[2], 500000000, 0));
    ASSERT_OK(tacio_pool_timer_set(t[2], 10000000, 0));
    wait_for(&k[2].runs, 1, 5000, "re-set timer");
    tt_sleep_ms(30);
    ASSERT_EQ_INT(atomic_load(&k[2].runs), 1);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(tacio_pool_timer_close(t[i], TACIO_POOL_WAIT));
    ASSERT_OK(tacio_pool_close(pool));
}

/* Periodic: the n-th run is due at first + n x period; lateness does not
 * add up (bounded drift), whatever the jitter of single runs. */
TT_CASE(timer_periodic_drift_bounded)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    tick_t k = {0};
    tacio_pool_timer_t *t;
    ASSERT_OK(tacio_pool_timer_create(pool, tick_cb, &k, NULL, &t));
    const uint64_t period = 5000000; /* 5 ms */
    uint64_t t0 = tt_now_ns();
    ASSERT_OK(tacio_pool_timer_set(t, period, period));
    wait_for(&k.runs, 40, 10000, "periodic runs");
    ASSERT_OK(tacio_pool_timer_close(t, TACIO_POOL_WAIT));
    unsigned n = atomic_load(&k.runs);
    uint64_t last = k.at[39];
    /* 40 runs span at least 40 periods (never early) ... */
    ASSERT_TRUE(last - t0 >= 40 * period);
    /* ... and, unless a run was skipped for being a whole period late (then
     * fewer runs happened in the time), not far more: drift would show as
     * the 40th run late by the sum of each run's lateness. Allow 100 ms of
     * scheduler noise in total (sanitizers, a loaded 2-core machine). */
    uint64_t late = last - t0 - 40 * period;
    if (late > 100000000ull)
        TT_FAIL("40th run of a 5 ms timer came %llu ms late: drift accumulates",
                (unsigned long long)(late / 1000000));
    (void)n;
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- waits ---------------------------------------------------------------------------------- */

typedef struct wrec {
    _Atomic unsigned runs;
    tacio_status_t st;
    unsigned ev;
} wrec_t;

static void wait_cb(tacio_pool_wait_t *w, void *ctx, tacio_status_t st, unsigned ev)
{
    (void)w;
    wrec_t *r = ctx;
    r->st = st;
    r->ev = ev;
    atomic_fetch_add(&r->runs, 1);
}

TT_CASE(wait_readable_timeout_and_replace)
{
    tacio_pool_t *pool = mkpool(1, 2, 1, 0);
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    wrec_t r = {0};
    tacio_pool_wait_t *w;
    ASSERT_OK(tacio_pool_wait_create(pool, wait_cb, &r, NULL, &w));
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_READABLE, TACIO_INFINITE));
    tt_sleep_ms(20);
    ASSERT_EQ_INT(atomic_load(&r.runs), 0);
    ASSERT_EQ_INT(write(sv[1], "z", 1), 1);
    wait_for(&r.runs, 1, 5000, "readable");
    ASSERT_EQ_STATUS(r.st, TACIO_SUCCESS);
    ASSERT_TRUE(r.ev & TACIO_POOL_READABLE);
    /* Already readable: runs at once (on a pool thread). */
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_READABLE, TACIO_INFINITE));
    wait_for(&r.runs, 2, 5000, "already readable");
    char c;
    ASSERT_EQ_INT(read(sv[0], &c, 1), 1);
    /* Timeout. */
    uint64_t t0 = tt_now_ns();
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_READABLE, 30));
    wait_for(&r.runs, 3, 5000, "timeout");
    ASSERT_EQ_STATUS(r.st, TACIO_TIMEOUT);
    ASSERT_EQ_INT(r.ev, 0);
    ASSERT_TRUE(tt_now_ns() - t0 >= 30000000ull);
    /* Replaced before it ran: only the new setting runs. */
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_READABLE, 20));
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_WRITABLE, TACIO_INFINITE));
    wait_for(&r.runs, 4, 5000, "writable");
    ASSERT_TRUE(r.ev & TACIO_POOL_WRITABLE);
    tt_sleep_ms(50);
    ASSERT_EQ_INT(atomic_load(&r.runs), 4);
    /* Cancelled: never runs. */
    ASSERT_OK(tacio_pool_wait_set(w, sv[0], TACIO_POOL_READABLE, 20));
    ASSERT_OK(tacio_pool_wait_cancel(w));
    tt_sleep_ms(50);
    ASSERT_EQ_INT(atomic_load(&r.runs), 4);
    ASSERT_EQ_STATUS(tacio_pool_wait_set(w, -1, TACIO_POOL_READABLE, 0), TACIO_INVALID_PARAMETER);
    ASSERT_OK(tacio_pool_wait_close(w, TACIO_POOL_WAIT));
    tt_close(sv[0]);
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- sizing and concurrency ------------------------------------------------------------------ */

static _Atomic int g_running, g_max_running, g_blocked_done;
static _Atomic unsigned g_started;

static void note_running(int delta)
{
    int now = atomic_fetch_add(&g_running, delta) + delta;
    int m = atomic_load(&g_max_running);
    while (now > m && !atomic_compare_exchange_weak(&g_max_running, &m, now))
        ;
}

/* Runs unblocked for a while, blocks (declared) for a while, runs again. */
static void blocking_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    atomic_fetch_add(&g_started, 1);
    note_running(1);
    tt_sleep_ms(2);
    note_running(-1);
    tacio_pool_blocking_begin();
    tt_sleep_ms(30);
    tacio_pool_blocking_end();
    note_running(1);
    tt_sleep_ms(2);
    note_running(-1);
    atomic_fetch_add(&g_blocked_done, 1);
}

TT_CASE(concurrency_caps_running_blocked_let_others_through)
{
    const unsigned conc = 2;
    tacio_pool_t *pool = mkpool(1, 16, conc, 0);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, blocking_work, NULL, NULL, &w));
    const unsigned n = 24;
    uint64_t t0 = tt_now_ns();
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));
    uint64_t ms = (tt_now_ns() - t0) / 1000000;
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    tt_note("%u callbacks that block 30 ms each: %llu ms, peak %u threads, max %d running "
            "unblocked (cap %u)", n, (unsigned long long)ms, info.peak_threads,
            atomic_load(&g_max_running), conc);
    /* At most conc ran unblocked at once (a thread back from blocking waits
     * for a slot, where a Windows port lets it run over the value) ... */
    ASSERT_LE_INT(atomic_load(&g_max_running), (int)conc);
    /* ... and blocking let others through: more threads than the cap ran,
     * and the whole set took far less than running them one after another
     * two at a time (n/conc x 34 ms = 408 ms). */
    ASSERT_GE_INT(info.peak_threads, conc + 1);
    ASSERT_EQ_INT(atomic_load(&g_blocked_done), n);
    ASSERT_OK(tacio_pool_close(pool));
}

static void spin_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    note_running(1);
    uint64_t end = tt_now_ns() + 3000000;
    while (tt_now_ns() < end)
        ;
    note_running(-1);
}

/* Callbacks that never block: never more than the cap run at once. */
TT_CASE(concurrency_caps_unblocked_callbacks)
{
    tacio_pool_t *pool = mkpool(4, 4, 1, 0);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, spin_work, NULL, NULL, &w));
    for (unsigned i = 0; i < 40; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));
    ASSERT_EQ_INT(atomic_load(&g_max_running), 1);
    ASSERT_OK(tacio_pool_close(pool));
}

static void long_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    tt_sleep_ms(40); /* runs long without saying it blocks */
}

/* Long callbacks make the pool grow; idleness shrinks it back to min. */
TT_CASE(grows_when_busy_shrinks_when_idle)
{
    tacio_pool_t *pool = mkpool(1, 6, 8, 100);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, long_work, NULL, NULL, &w));
    for (unsigned i = 0; i < 30; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    ASSERT_GE_INT(info.peak_threads, 2);
    ASSERT_LE_INT(info.peak_threads, 6);
    uint64_t end = tt_now_ns() + 5000000000ull;
    do {
        tt_sleep_ms(20);
        ASSERT_OK(tacio_pool_info(pool, &info));
    } while (info.threads > 1 && tt_now_ns() < end);
    ASSERT_EQ_INT(info.threads, 1);
    tt_note("peak %u threads, back to %u when idle", info.peak_threads, info.threads);
    ASSERT_OK(tacio_pool_close(pool));
}

static _Atomic unsigned g_spin20_done;
static void spin20_call(void *ctx)
{
    (void)ctx;
    uint64_t end = tt_now_ns() + 20000000;
    while (tt_now_ns() < end)
        ;
    atomic_fetch_add(&g_spin20_done, 1);
}

/* Long callbacks that keep their CPU, as many as the concurrency value: a
 * thread added now could take nothing (the port lets concurrency-many run)
 * and would only wake every 2 ms, so the pool adds none, however long they
 * run (docs/pool.md "Growing"). */
TT_CASE(no_thread_added_that_could_not_run)
{
    tacio_pool_t *pool = mkpool(1, 4, 1, 1000);
    atomic_store(&g_spin20_done, 0);
    /* Twice: the first batch teaches the pool that callbacks are long, so
     * that in the second each is dequeued alone and the rest wait queued. */
    for (unsigned round = 1; round <= 2; round++) {
        for (unsigned i = 0; i < 12; i++)
            ASSERT_OK(tacio_pool_submit(pool, spin20_call, NULL));
        wait_for(&g_spin20_done, 12 * round, 10000, "12 spinning calls");
    }
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    tt_note("2 x 12 callbacks of 20 ms on CPU, concurrency 1: peak %u threads", info.peak_threads);
    ASSERT_EQ_INT(info.peak_threads, 1);
    ASSERT_OK(tacio_pool_close(pool));
}

/* A pool thread that leaves (idle) with receives it started still pending
 * does not cancel them: they complete with their data. */
static tacio_handle_t *g_leave_h;
static iorec_t g_leave_r[4];
static _Atomic unsigned g_leave_started;
static void start_recv_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    unsigned i = (unsigned)(uintptr_t)ctx;
    (void)i;
    unsigned k = atomic_fetch_add(&g_leave_started, 1);
    ASSERT_EQ_STATUS(tacio_recv(g_leave_h, &g_leave_r[k].op, g_leave_r[k].buf, 1), TACIO_PENDING);
    tacio_pool_blocking_begin(); /* makes the pool add threads, which later leave */
    tt_sleep_ms(20);
    tacio_pool_blocking_end();
}

TT_CASE(leaving_thread_keeps_its_io)
{
    tacio_pool_t *pool = mkpool(1, 4, 1, 50);
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, io_cb, NULL, NULL, &io));
    g_leave_h = tacio_pool_io_handle(io);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, start_recv_work, NULL, NULL, &w));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    ASSERT_OK(tacio_pool_work_close(w, TACIO_POOL_WAIT));
    tacio_pool_info_t info;
    uint64_t end = tt_now_ns() + 5000000000ull;
    do {
        tt_sleep_ms(20);
        ASSERT_OK(tacio_pool_info(pool, &info));
    } while (info.threads > 1 && tt_now_ns() < end);
    ASSERT_EQ_INT(info.threads, 1);
    ASSERT_GE_INT(info.peak_threads, 2);
    ASSERT_EQ_INT(write(sv[1], "abcd", 4), 4);
    for (int i = 0; i < 4; i++)
        wait_for(&g_leave_r[i].calls, 1, 5000, "recv started by a thread that left");
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_STATUS(g_leave_r[i].status, TACIO_SUCCESS);
    ASSERT_OK(tacio_pool_io_close(io, TACIO_POOL_WAIT));
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- cleanup groups ------------------------------------------------------------------------- */

typedef struct rep {
    unsigned members;
    uint64_t ran, cancelled;
    unsigned io_ctx_seen;
} rep_t;

static void group_report(void *ctx, void *gctx, uint64_t ran, uint64_t cancelled)
{
    rep_t *r = gctx;
    r->members++;
    r->ran += ran;
    r->cancelled += cancelled;
    if (ctx == (void *)r)
        r->io_ctx_seen++;
}

static void slow_work(tacio_pool_work_t *w, void *ctx)
{
    (void)w;
    (void)ctx;
    tt_sleep_ms(1);
}

TT_CASE(group_close_waits_and_reports)
{
    tacio_pool_t *pool = mkpool(1, 1, 1, 0);
    tacio_pool_group_t *g;
    ASSERT_OK(tacio_pool_group_create(pool, &g));
    rep_t rep = {0};
    int sv[2];
    tt_socketpair(SOCK_DGRAM, sv);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, io_cb, &rep, g, &io));
    iorec_t r[3] = {0};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(io), &r[i].op, r[i].buf, 8),
                         TACIO_PENDING);
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, slow_work, NULL, g, &w));
    for (int i = 0; i < 200; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    tacio_pool_timer_t *t;
    tick_t k = {0};
    ASSERT_OK(tacio_pool_timer_create(pool, tick_cb, &k, g, &t));
    ASSERT_OK(tacio_pool_timer_set(t, 10000000000ull, 0));
    ASSERT_OK(tacio_pool_group_close(g, TACIO_POOL_WAIT | TACIO_POOL_CANCEL_PENDING, group_report,
                                     &rep));
    ASSERT_EQ_INT(rep.members, 3);
    ASSERT_EQ_INT(rep.io_ctx_seen, 1);
    /* Every I/O callback ran (CANCELLED); every work run either ran or was
     * cancelled, none lost; the armed timer was cancelled. */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(atomic_load(&r[i].calls), 1);
        ASSERT_EQ_STATUS(r[i].status, TACIO_CANCELLED);
    }
    ASSERT_EQ_U64(rep.ran + rep.cancelled, 3 + 200 + 1);
    ASSERT_GE_INT(rep.cancelled, 2); /* the timer and most of the work */
    ASSERT_EQ_INT(atomic_load(&k.runs), 0);
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    ASSERT_EQ_INT(info.objects, 0);
    tt_close(sv[1]);
    ASSERT_OK(tacio_pool_close(pool));
}

/* Without CANCEL_PENDING every submitted run runs; the pool's own close
 * closes what the caller left open. */
TT_CASE(group_and_pool_close_without_cancel)
{
    tacio_pool_t *pool = mkpool(2, 2, 2, 0);
    tacio_pool_group_t *g;
    ASSERT_OK(tacio_pool_group_create(pool, &g));
    tacio_pool_work_t *w;
    ASSERT_OK(tacio_pool_work_create(pool, work_cb, NULL, g, &w));
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(tacio_pool_work_submit(w));
    rep_t rep = {0};
    ASSERT_OK(tacio_pool_group_close(g, TACIO_POOL_WAIT, group_report, &rep));
    ASSERT_EQ_INT(rep.members, 1);
    ASSERT_EQ_U64(rep.ran, 1000);
    ASSERT_EQ_U64(rep.cancelled, 0);
    /* Left open: the pool closes them. */
    int sv[2];
    tt_socketpair(SOCK_STREAM, sv);
    tacio_pool_io_t *io;
    ASSERT_OK(tacio_pool_io_open(pool, sv[0], 0, io_cb, NULL, NULL, &io));
    iorec_t r = {0};
    ASSERT_EQ_STATUS(tacio_recv(tacio_pool_io_handle(io), &r.op, r.buf, 8), TACIO_PENDING);
    tacio_pool_timer_t *t;
    tick_t k = {0};
    ASSERT_OK(tacio_pool_timer_create(pool, tick_cb, &k, NULL, &t));
    ASSERT_OK(tacio_pool_timer_set(t, 1000000, 1000000));
    ASSERT_OK(tacio_pool_close(pool));
    ASSERT_EQ_INT(atomic_load(&r.calls), 1);
    ASSERT_EQ_STATUS(r.status, TACIO_CANCELLED);
    tt_close(sv[1]);
}

TT_CASE(bad_arguments)
{
    tacio_pool_t *pool = NULL;
    tacio_pool_options_t o = {.min_threads = 5, .max_threads = 2, .backend = tt_backend()};
    ASSERT_EQ_STATUS(tacio_pool_create(&pool, &o), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_pool_create(NULL, NULL), TACIO_INVALID_PARAMETER);
    pool = mkpool(1, 1, 1, 0);
    tacio_pool_io_t *io;
    ASSERT_EQ_STATUS(tacio_pool_io_open(pool, -1, 0, io_cb, NULL, NULL, &io),
                     TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_pool_io_open(pool, 0, 0, NULL, NULL, NULL, &io),
                     TACIO_INVALID_PARAMETER);
    int fd = tt_tmpfile(0);
    ASSERT_EQ_STATUS(tacio_pool_io_open(pool, fd, 0x4000, io_cb, NULL, NULL, &io),
                     TACIO_INVALID_PARAMETER);
    tt_close(fd);
    tacio_pool_work_t *w;
    ASSERT_EQ_STATUS(tacio_pool_work_create(pool, NULL, NULL, NULL, &w), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_pool_submit(pool, NULL, NULL), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio_pool_group_close(NULL, 0, NULL, NULL), TACIO_INVALID_PARAMETER);
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    ASSERT_EQ_INT(info.objects, 0);
    ASSERT_OK(tacio_pool_close(pool));
}

/* ---- CPUs --------------------------------------------------------------------------------- */

typedef struct where {
    _Atomic unsigned runs, wrong;
    unsigned cpu;
} where_t;

static void where_cb(void *ctx)
{
    where_t *w = ctx;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    bool bound = pthread_getaffinity_np(pthread_self(), sizeof cs, &cs) == 0 && CPU_COUNT(&cs) == 1 &&
                 CPU_ISSET(w->cpu, &cs);
    if (!bound || sched_getcpu() != (int)w->cpu)
        atomic_fetch_add(&w->wrong, 1);
    atomic_fetch_add(&w->runs, 1);
}

TT_CASE(threads_bound_to_cpus)
{
    cpu_set_t allowed;
    ASSERT_EQ_INT(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    /* The last CPU the process may use: not the one the test started on,
     * on most runs, so an unbound thread would show. */
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            last = c;
    ASSERT_TRUE(last >= 0);
    where_t w = {.cpu = (unsigned)last};
    unsigned cpus[] = {w.cpu};
    tacio_pool_options_t o = {.min_threads = 3, .max_threads = 3, .concurrency = 3, .cpus = cpus, .ncpus = 1};
    tacio_pool_t *pool;
    ASSERT_OK(tacio_pool_create(&pool, &o));
    cpus[0] = 0; /* not kept: the pool copied it */
    for (unsigned i = 0; i < 300; i++)
        ASSERT_OK(tacio_pool_submit(pool, where_cb, &w));
    wait_for(&w.runs, 300, 5000, "calls on the bound threads");
    ASSERT_EQ_INT(atomic_load(&w.wrong), 0);
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(pool, &info));
    ASSERT_EQ_INT(info.threads, 3);
    ASSERT_OK(tacio_pool_close(pool));

    /* A CPU the process may not use, or none at all, is refused at once. */
    unsigned bad[] = {(unsigned)last + 1};
    if (last + 1 < CPU_SETSIZE && !CPU_ISSET(last + 1, &allowed)) {
        o.cpus = bad;
        ASSERT_EQ_STATUS(tacio_pool_create(&pool, &o), TACIO_INVALID_PARAMETER);
        ASSERT_TRUE(strstr(tacio_last_error(), "may run on") != NULL);
    }
    unsigned huge[] = {1u << 20};
    o.cpus = huge;
    ASSERT_EQ_STATUS(tacio_pool_create(&pool, &o), TACIO_INVALID_PARAMETER);
    o.cpus = NULL;
    ASSERT_EQ_STATUS(tacio_pool_create(&pool, &o), TACIO_INVALID_PARAMETER);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(io_callback_once_per_pending, 30),
    TT_ENTRY(io_warning_never_runs_callback, 30),
    TT_ENTRY(io_close_wait_runs_cancelled, 30),
    TT_ENTRY(callback_closes_own_handle, 30),
    TT_ENTRY(callback_rearms_and_closes_own_timer, 30),
    TT_ENTRY(callback_returns_while_handle_closes, 30),
    TT_ENTRY(work_runs_once_per_submit, 60),
    TT_ENTRY(timer_oneshot_order_and_cancel, 30),
    TT_ENTRY(timer_periodic_drift_bounded, 30),
    TT_ENTRY(wait_readable_timeout_and_replace, 30),
    TT_ENTRY(concurrency_caps_running_blocked_let_others_through, 60),
    TT_ENTRY(concurrency_caps_unblocked_callbacks, 60),
    TT_ENTRY(grows_when_busy_shrinks_when_idle, 60),
    TT_ENTRY(no_thread_added_that_could_not_run, 60),
    TT_ENTRY(leaving_thread_keeps_its_io, 60),
    TT_ENTRY(group_close_waits_and_reports, 60),
    TT_ENTRY(group_and_pool_close_without_cancel, 60),
    TT_ENTRY(bad_arguments, 30),
    TT_ENTRY(threads_bound_to_cpus, 30),
};
TT_MAIN()
