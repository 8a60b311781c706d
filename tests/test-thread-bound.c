/* test-thread-bound.c - operations owned by their issuing thread (contract
 * rule 3's opt-in): thread-bound handles (completions dequeued only by the
 * issuer; cancelled when it exits) and completion routines (run on the
 * issuer, only in its alertable waits, in completion order; cancelled and
 * still run on it when it exits). Thread-agnostic handles in the same port
 * are unaffected. Every case runs on each backend. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "tacio-test.h"

typedef struct rec {
    tacio_op_t op;
    char buf[32];
    _Atomic int runs;
    int tid;          /* thread the routine ran on */
    int order;        /* position among routine runs */
    tacio_status_t st;
    uint64_t bytes;
} rec_t;

static _Atomic int g_order;

static void routine(tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    rec_t *r = tacio_container_of(op, rec_t, op);
    r->tid = tt_gettid();
    r->st = st;
    r->bytes = bytes;
    r->order = atomic_fetch_add(&g_order, 1);
    atomic_fetch_add(&r->runs, 1);
}

/* ---- thread-bound handles ------------------------------------------------------------ */

typedef struct other {
    tacio_port_t *p;
    _Atomic int got;
    tacio_entry_t e;
    _Atomic int stop;
} other_t;

static void *other_dequeuer(void *arg)
{
    other_t *o = arg;
    while (!atomic_load(&o->stop)) {
        unsigned n = 0;
        tacio_entry_t e;
        tacio_status_t st = tacio_port_dequeue(o->p, &e, 1, &n, 20);
        if (st == TACIO_SUCCESS) {
            o->e = e;
            atomic_fetch_add(&o->got, 1);
        }
    }
    return NULL;
}

TT_CASE(bound_completion_goes_to_issuer_only)
{
    tacio_port_t *p = tt_port(4);
    int sb[2], sa[2];
    tt_socketpair(SOCK_STREAM, sb);
    tt_socketpair(SOCK_STREAM, sa);
    tacio_handle_t *hb = tt_handle(p, sb[0], 1, TACIO_HANDLE_THREAD_BOUND);
    tacio_handle_t *ha = tt_handle(p, sa[0], 2, 0);
    other_t o = {.p = p};
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, other_dequeuer, &o), 0);
    rec_t rb = {0}, ra = {0};
    ASSERT_EQ_STATUS(tacio_recv(hb, &rb.op, rb.buf, sizeof rb.buf), TACIO_PENDING);
    ASSERT_EQ_STATUS(tacio_recv(ha, &ra.op, ra.buf, sizeof ra.buf), TACIO_PENDING);
    ASSERT_EQ_INT(write(sb[1], "bound", 5), 5);
    ASSERT_EQ_INT(write(sa[1], "free", 4), 4);
    /* The other thread gets the thread-agnostic one, never the bound one. */
    uint64_t end = tt_now_ns() + 5000000000ull;
    while (atomic_load(&o.got) < 1 && tt_now_ns() < end)
        tt_sleep_ms(1);
    ASSERT_EQ_INT(atomic_load(&o.got), 1);
    ASSERT_TRUE(o.e.op == &ra.op);
    tt_sleep_ms(50);
    ASSERT_EQ_INT(atomic_load(&o.got), 1);
    /* The issuer dequeues its own. */
    tacio_entry_t e;
    unsigned n = 0;
    ASSERT_OK(tacio_port_dequeue(p, &e, 1, &n, 5000));
    ASSERT_EQ_INT(n, 1);
    ASSERT_TRUE(e.op == &rb.op);
    ASSERT_EQ_STATUS(e.status, TACIO_SUCCESS);
    ASSERT_EQ_U64(e.bytes, 5);
    ASSERT_TRUE(memcmp(rb.buf, "bound", 5) == 0);
    atomic_store(&o.stop, 1);
    pthread_join(t, NULL);
    ASSERT_OK(tacio_handle_close(hb));
    ASSERT_OK(tacio_handle_close(ha));
    tt_close(sb[1]);
    tt_close(sa[1]);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* The issuer blocks in dequeue: a bound completion wakes it, not another
 * waiter (waiters are LIFO: the other thread waits after it). */
typedef struct issuer {
    tacio_port_t *p;
    tacio_handle_t *h;
    rec_t *r;
    unsigned n;
    tacio_status_t got_st;
    tacio_op_t *got_op;
    _Atomic int started;
    int tid;
} issuer_t;

static void *issue_and_wait(void *arg)
{
    issuer_t *x = arg;
    ASSERT_EQ_STATUS(tacio_recv(x->h, &x->r->op, x->r->buf, sizeof x->r->buf), TACIO_PENDING);
    atomic_store(&x->started, 1);
    tacio_entry_t e;
    unsigned n = 0;
    x->got_st = tacio_port_dequeue(x->p, &e, 1, &n, 5000);
    x->got_op = n ? e.op : NULL;
    return NULL;
}

TT_CASE(bound_completion_wakes_issuer)
{
    tacio_port_t *p = tt_port(4);
    int sb[2];
    tt_socketpair(SOCK_STREAM, sb);
    tacio_handle_t *hb = tt_handle(p, sb[0], 1, TACIO_HANDLE_THREAD_BOUND);
    rec_t r = {0};
    issuer_t x = {.p = p, .h = hb, .r = &r};
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, issue_and_wait, &x), 0);
    while (!atomic_load(&x.started))
        tt_sleep_ms(1);
    other_t o = {.p = p};
    pthread_t ot;
    ASSERT_EQ_INT(pthread_create(&ot, NULL, other_dequeuer, &o), 0);
    tt_sleep_ms(20);
    ASSERT_EQ_INT(write(sb[1], "x", 1), 1);
    pthread_join(t, NULL);
    ASSERT_EQ_STATUS(x.got_st, TACIO_SUCCESS);
    ASSERT_TRUE(x.got_op == &r.op);
    atomic_store(&o.stop, 1);
    pthread_join(ot, NULL);
    ASSERT_EQ_INT(atomic_load(&o.got), 0);
    ASSERT_OK(tacio_handle_close(hb));
    tt_close(sb[1]);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* The issuer exits with operations pending on a bound handle and on an
 * agnostic one: the bound ones complete once each, CANCELLED, through the
 * port (any thread); the agnostic ones stay pending and get their data. */
typedef struct exiter {
    tacio_handle_t *hb, *ha;
    rec_t *rb, *ra;
    unsigned n;
} exiter_t;

static void *start_and_exit(void *arg)
{
    exiter_t *x = arg;
    for (unsigned i = 0; i < x->n; i++) {
        ASSERT_EQ_STATUS(tacio_recv(x->hb, &x->rb[i].op, x->rb[i].buf, 1), TACIO_PENDING);
        ASSERT_EQ_STATUS(tacio_recv(x->ha, &x->ra[i].op, x->ra[i].buf, 1), TACIO_PENDING);
    }
    return NULL; /* exits with all of them pending */
}

TT_CASE(bound_issuer_exit_cancels_agnostic_survive)
{
    tacio_port_t *p = tt_port(2);
    enum { N = 8 };
    for (int round = 0; round < 20; round++) {
        tt_context("round %d", round);
        int sb[2], sa[2];
        tt_socketpair(SOCK_DGRAM, sb);
        tt_socketpair(SOCK_STREAM, sa);
        tacio_handle_t *hb = tt_handle(p, sb[0], 1, TACIO_HANDLE_THREAD_BOUND);
        tacio_handle_t *ha = tt_handle(p, sa[0], 2, 0);
        rec_t rb[N], ra[N];
        memset(rb, 0, sizeof rb);
        memset(ra, 0, sizeof ra);
        exiter_t x = {hb, ha, rb, ra, N};
        pthread_t t;
        ASSERT_EQ_INT(pthread_create(&t, NULL, start_and_exit, &x), 0);
        pthread_join(t, NULL);
        /* Bound: N cancellations, each once. */
        int seen_b[N] = {0}, seen_a[N] = {0};
        unsigned got_b = 0, got_a = 0;
        uint64_t end = tt_now_ns() + 5000000000ull;
        while (got_b < N && tt_now_ns() < end) {
            tacio_entry_t e[16];
            unsigned n = 0;
            tacio_status_t st = tacio_port_dequeue(p, e, 16, &n, 50);
            if (st == TACIO_TIMEOUT)
                continue;
            ASSERT_OK(st);
            for (unsigned i = 0; i < n; i++) {
                ASSERT_EQ_U64(e[i].key, 1);
                rec_t *r = tacio_container_of(e[i].op, rec_t, op);
                ASSERT_EQ_STATUS(e[i].status, TACIO_CANCELLED);
                seen_b[r - rb]++;
                got_b++;
            }
        }
        ASSERT_EQ_INT(got_b, N);
        for (int i = 0; i < N; i++)
            ASSERT_EQ_INT(seen_b[i], 1);
        /* Agnostic: still pending, then each gets a byte. */
        ASSERT_EQ_INT(write(sa[1], "abcdefgh", N), N);
        end = tt_now_ns() + 5000000000ull;
        while (got_a < N && tt_now_ns() < end) {
            tacio_entry_t e[16];
            unsigned n = 0;
            tacio_status_t st = tacio_port_dequeue(p, e, 16, &n, 50);
            if (st == TACIO_TIMEOUT)
                continue;
            ASSERT_OK(st);
            for (unsigned i = 0; i < n; i++) {
                ASSERT_EQ_U64(e[i].key, 2);
                ASSERT_EQ_STATUS(e[i].status, TACIO_SUCCESS);
                rec_t *r = tacio_container_of(e[i].op, rec_t, op);
                seen_a[r - ra]++;
                got_a++;
            }
        }
        ASSERT_EQ_INT(got_a, N);
        for (int i = 0; i < N; i++) {
            ASSERT_EQ_INT(seen_a[i], 1);
            ASSERT_EQ_INT(ra[i].buf[0], "abcdefgh"[i]); /* in start order */
        }
        unsigned n = 0;
        tacio_entry_t e;
        ASSERT_EQ_STATUS(tacio_port_dequeue(p, &e, 1, &n, 20), TACIO_TIMEOUT);
        ASSERT_OK(tacio_handle_close(hb));
        ASSERT_OK(tacio_handle_close(ha));
        tt_close(sb[1]);
        tt_close(sa[1]);
    }
    tt_context("%s", "");
    tacio_stats_t st;
    ASSERT_OK(tacio_port_stats(p, &st));
    ASSERT_EQ_U64(st.dropped_duplicates, 0);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* ---- completion routines --------------------------------------------------------------- */

typedef struct rt {
    tacio_port_t *p;
    int fds[3][2];
    tacio_handle_t *h[3];
    rec_t r[3];
    _Atomic int started;
    _Atomic int written;
    int tid;
    int runs_before_alertable;
    tacio_status_t wait_st, wait2_st;
    int mode; /* 0: tacio_wait_alertable, 1: alertable dequeue */
    unsigned dq_count;
} rt_t;

static void *routine_thread(void *arg)
{
    rt_t *x = arg;
    x->tid = tt_gettid();
    for (int i = 0; i < 3; i++) {
        tacio_op_set_routine(&x->r[i].op, routine);
        ASSERT_EQ_STATUS(tacio_recv(x->h[i], &x->r[i].op, x->r[i].buf, sizeof x->r[i].buf),
                         TACIO_PENDING);
    }
    atomic_store(&x->started, 1);
    while (!atomic_load(&x->written))
        tt_sleep_ms(1);
    tt_sleep_ms(50); /* not alertable: nothing may run */
    int before = 0;
    for (int i = 0; i < 3; i++)
        before += atomic_load(&x->r[i].runs);
    x->runs_before_alertable = before;
    uint64_t end = tt_now_ns() + 5000000000ull;
    int total = 0;
    while (total < 3 && tt_now_ns() < end) {
        tacio_status_t st;
        if (x->mode == 0) {
            st = tacio_wait_alertable(1000);
        } else {
            tacio_entry_t e;
            unsigned n = 0;
            st = tacio_port_dequeue_ex(x->p, &e, 1, &n, 1000, TACIO_DEQUEUE_ALERTABLE);
            x->dq_count += n;
        }
        if (st == TACIO_USER_APC)
            x->wait_st = st;
        total = 0;
        for (int i = 0; i < 3; i++)
            total += atomic_load(&x->r[i].runs);
    }
    x->wait2_st = tacio_wait_alertable(0); /* nothing left */
    return NULL;
}

static void routine_case(int mode)
{
    atomic_store(&g_order, 0);
    rt_t *x = calloc(1, sizeof *x);
    x->p = tt_port(2);
    x->mode = mode;
    for (int i = 0; i < 3; i++) {
        tt_socketpair(SOCK_STREAM, x->fds[i]);
        x->h[i] = tt_handle(x->p, x->fds[i][0], (uint64_t)i, 0);
    }
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, routine_thread, x), 0);
    while (!atomic_load(&x->started))
        tt_sleep_ms(1);
    /* Completion order 2, 0, 1. */
    const int order[3] = {2, 0, 1};
    /* This thread reaps the port meanwhile (the epoll backend makes progress
     * only in a dequeue), and must see none of the routines' completions. */
    tacio_entry_t e;
    unsigned n = 0;
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ_INT(write(x->fds[order[k]][1], "r", 1), 1);
        ASSERT_EQ_STATUS(tacio_port_dequeue(x->p, &e, 1, &n, 15), TACIO_TIMEOUT);
    }
    atomic_store(&x->written, 1);
    ASSERT_EQ_STATUS(tacio_port_dequeue(x->p, &e, 1, &n, 30), TACIO_TIMEOUT);
    pthread_join(t, NULL);
    ASSERT_EQ_INT(x->runs_before_alertable, 0);
    ASSERT_EQ_STATUS(x->wait_st, TACIO_USER_APC);
    ASSERT_EQ_STATUS(x->wait2_st, TACIO_TIMEOUT);
    ASSERT_EQ_INT(x->dq_count, 0);
    for (int k = 0; k < 3; k++) {
        rec_t *r = &x->r[order[k]];
        ASSERT_EQ_INT(atomic_load(&r->runs), 1);
        ASSERT_EQ_INT(r->tid, x->tid);
        ASSERT_EQ_INT(r->order, k);
        ASSERT_EQ_STATUS(r->st, TACIO_SUCCESS);
        ASSERT_EQ_U64(r->bytes, 1);
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(tacio_handle_close(x->h[i]));
        tt_close(x->fds[i][1]);
    }
    ASSERT_OK(tacio_port_close(x->p, NULL, NULL));
    free(x);
}

TT_CASE(routine_runs_in_alertable_wait_on_issuer_in_order)
{
    routine_case(0);
}

TT_CASE(routine_ends_alertable_dequeue)
{
    routine_case(1);
}

/* A synchronous result is the start call's: no routine. */
TT_CASE(routine_not_run_for_sync_result)
{
    tacio_port_t *p = tt_port(1);
    int sv[2];
    tt_socketpair(SOCK_DGRAM, sv);
    tacio_handle_t *h = tt_handle(p, sv[0], 1, 0);
    ASSERT_EQ_INT(write(sv[1], "0123456789", 10), 10);
    ASSERT_TRUE(tt_poll(sv[0], POLLIN, 2000) > 0);
    rec_t r = {0};
    tacio_op_set_routine(&r.op, routine);
    ASSERT_EQ_STATUS(tacio_recv(h, &r.op, r.buf, 4), TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(r.op.bytes, 10);
    ASSERT_EQ_STATUS(tacio_wait_alertable(30), TACIO_TIMEOUT);
    ASSERT_EQ_INT(atomic_load(&r.runs), 0);
    /* A timer with a routine fires in the wait. */
    rec_t tm = {0};
    tacio_op_set_routine(&tm.op, routine);
    ASSERT_EQ_STATUS(tacio_timer_start(p, &tm.op, 9, 5000000), TACIO_PENDING);
    ASSERT_EQ_STATUS(tacio_wait_alertable(5000), TACIO_USER_APC);
    ASSERT_EQ_INT(atomic_load(&tm.runs), 1);
    ASSERT_EQ_STATUS(tm.st, TACIO_SUCCESS);
    ASSERT_OK(tacio_handle_close(h));
    tt_close(sv[1]);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* The issuer exits with routines owed and operations pending: the pending
 * ones are cancelled, and every routine runs on the exiting thread. */
typedef struct rx {
    tacio_handle_t *h;
    rec_t r[4];
    int tid;
    tacio_port_t *p;
    _Atomic int started;
} rx_t;

static void *routines_then_exit(void *arg)
{
    rx_t *x = arg;
    x->tid = tt_gettid();
    for (int i = 0; i < 4; i++) {
        tacio_op_set_routine(&x->r[i].op, routine);
        ASSERT_EQ_STATUS(tacio_recv(x->h, &x->r[i].op, x->r[i].buf, 1), TACIO_PENDING);
    }
    atomic_store(&x->started, 1);
    /* Two of them complete (data) before the exit, their routines unrun. */
    tt_sleep_ms(5);
    return NULL;
}

TT_CASE(routine_issuer_exit_runs_them_all)
{
    tacio_port_t *p = tt_port(1);
    for (int round = 0; round < 10; round++) {
        tt_context("round %d", round);
        int sv[2];
        tt_socketpair(SOCK_DGRAM, sv);
        rx_t x = {0};
        x.p = p;
        x.h = tt_handle(p, sv[0], 1, 0);
        pthread_t t;
        ASSERT_EQ_INT(pthread_create(&t, NULL, routines_then_exit, &x), 0);
        while (!atomic_load(&x.started))
            tt_sleep_ms(1);
        ASSERT_EQ_INT(write(sv[1], "a", 1), 1);
        ASSERT_EQ_INT(write(sv[1], "b", 1), 1);
        /* Reap for the exiting thread meanwhile, as a server's other
         * threads would; the exit hook also reaps by itself. */
        tacio_entry_t e;
        unsigned n = 0;
        tacio_port_dequeue(p, &e, 1, &n, 10);
        ASSERT_EQ_INT(n, 0);
        pthread_join(t, NULL);
        int natural = 0, cancelled = 0;
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ_INT(atomic_load(&x.r[i].runs), 1);
            ASSERT_EQ_INT(x.r[i].tid, x.tid);
            if (x.r[i].st == TACIO_SUCCESS)
                natural++;
            else if (x.r[i].st == TACIO_CANCELLED)
                cancelled++;
            else
                TT_FAIL("record %d: %s", i, tacio_status_name(x.r[i].st));
        }
        ASSERT_EQ_INT(natural + cancelled, 4);
        ASSERT_GE_INT(cancelled, 2);
        ASSERT_EQ_STATUS(tacio_port_dequeue(p, &e, 1, &n, 20), TACIO_TIMEOUT);
        ASSERT_OK(tacio_handle_close(x.h));
        tt_close(sv[1]);
    }
    tt_context("%s", "");
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* The routine and owner live in a table outside the record (it stays 64
 * bytes). Thousands of records with routines, set, cleared and restarted
 * in a seeded random order: each completion goes to the routine set at its
 * start, or to the port when none is, exactly once. */
enum { MR_N = 3000 };
static _Atomic unsigned mr_ran_a[MR_N], mr_ran_b[MR_N];
static tacio_op_t *mr_ops;

static void mr_fn_a(tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    (void)bytes;
    ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
    atomic_fetch_add(&mr_ran_a[op - mr_ops], 1);
}

static void mr_fn_b(tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    (void)bytes;
    ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
    atomic_fetch_add(&mr_ran_b[op - mr_ops], 1);
}

TT_CASE(many_routine_records_each_delivered_once)
{
    tacio_port_t *p = tt_port(0);
    mr_ops = calloc(MR_N, sizeof *mr_ops);
    ASSERT_TRUE(mr_ops != NULL);
    static unsigned char want[MR_N]; /* 0: port, 1: a, 2: b */
    for (int round = 0; round < 3; round++) {
        tt_context("round %d", round);
        for (unsigned i = 0; i < MR_N; i++) {
            atomic_store(&mr_ran_a[i], 0);
            atomic_store(&mr_ran_b[i], 0);
        }
        /* Change the bindings in a random order: set, switch or clear. */
        for (unsigned k = 0; k < MR_N; k++) {
            unsigned i = (unsigned)tt_rand_below(MR_N);
            want[i] = (unsigned char)tt_rand_below(3);
            ASSERT_OK(tacio_op_set_routine(&mr_ops[i], want[i] == 0   ? NULL
                                                       : want[i] == 1 ? mr_fn_a
                                                                      : mr_fn_b));
        }
        unsigned to_port = 0;
        for (unsigned i = 0; i < MR_N; i++) {
            to_port += want[i] == 0;
            ASSERT_EQ_STATUS(tacio_timer_start(p, &mr_ops[i], i, 0), TACIO_PENDING);
        }
        unsigned routines = 0, ported = 0;
        for (int spins = 0; routines + ported < MR_N; spins++) {
            if (spins > 200000)
                TT_FAIL("%u routines and %u port entries of %u after many waits", routines,
                        ported, MR_N);
            tacio_entry_t e[64];
            unsigned n = 0;
            tacio_status_t st =
                tacio_port_dequeue_ex(p, e, 64, &n, 20, TACIO_DEQUEUE_ALERTABLE);
            if (st == TACIO_USER_APC) {
                routines = 0;
                for (unsigned i = 0; i < MR_N; i++)
                    routines += atomic_load(&mr_ran_a[i]) + atomic_load(&mr_ran_b[i]);
                continue;
            }
            if (st == TACIO_TIMEOUT)
                continue;
            ASSERT_OK(st);
            for (unsigned j = 0; j < n; j++) {
                unsigned i = (unsigned)(e[j].op - mr_ops);
                ASSERT_TRUE(i < MR_N);
                if (want[i] != 0)
                    TT_FAIL("record %u has routine %c but came through the port", i,
                            want[i] == 1 ? 'a' : 'b');
                ported++;
            }
        }
        ASSERT_EQ_INT(ported, to_port);
        for (unsigned i = 0; i < MR_N; i++) {
            ASSERT_EQ_INT(atomic_load(&mr_ran_a[i]), want[i] == 1);
            ASSERT_EQ_INT(atomic_load(&mr_ran_b[i]), want[i] == 2);
        }
    }
    for (unsigned i = 0; i < MR_N; i++)
        ASSERT_OK(tacio_op_set_routine(&mr_ops[i], NULL));
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
    free(mr_ops);
}

TT_CASE(dequeue_ex_rejects_unknown_flags)
{
    tacio_port_t *p = tt_port(1);
    tacio_entry_t e;
    unsigned n = 7;
    ASSERT_EQ_STATUS(tacio_port_dequeue_ex(p, &e, 1, &n, 0, 0x80), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_INT(n, 0);
    /* Alertable with nothing owed is a plain dequeue. */
    ASSERT_EQ_STATUS(tacio_port_dequeue_ex(p, &e, 1, &n, 10, TACIO_DEQUEUE_ALERTABLE),
                     TACIO_TIMEOUT);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(bound_completion_goes_to_issuer_only, 30),
    TT_ENTRY(bound_completion_wakes_issuer, 30),
    TT_ENTRY(bound_issuer_exit_cancels_agnostic_survive, 60),
    TT_ENTRY(routine_runs_in_alertable_wait_on_issuer_in_order, 30),
    TT_ENTRY(routine_ends_alertable_dequeue, 30),
    TT_ENTRY(routine_not_run_for_sync_result, 30),
    TT_ENTRY(routine_issuer_exit_runs_them_all, 60),
    TT_ENTRY(many_routine_records_each_delivered_once, 60),
    TT_ENTRY(dequeue_ex_rejects_unknown_flags, 30),
};
TT_MAIN()
