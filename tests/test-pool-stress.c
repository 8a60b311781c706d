/* tests/test-pool-stress.c - exactly-once for pool callbacks under random
 * cancel / close / timer-cancel / thread-exit races, seeded.
 *
 * One pool (min 2, max 8 threads, concurrency 2, idle_ms 20: threads come
 * and go) on tt_backend(). Test threads (TACIO_POOL_STRESS_THREADS, default
 * 4; each lives a random number of actions, then exits with whatever it
 * started still pending, and a new one takes its place; short "burst"
 * threads start a few operations and exit at once) and the pool's callbacks
 * themselves issue random actions against:
 *   - I/O objects on Unix stream and datagram socketpairs, pipes and temp
 *     files (recv, recvfrom, send, read, write, fsync; some objects opened
 *     TACIO_HANDLE_QUEUED_ALWAYS), tacio_cancel of records, cancel of whole
 *     handles, closes of one end or both (test threads: with or without
 *     TACIO_POOL_WAIT; callbacks: without, or their own object with WAIT,
 *     which must answer TACIO_POSSIBLE_DEADLOCK) and re-opening;
 *   - work objects: submits (also from their own callbacks), closes with or
 *     without TACIO_POOL_CANCEL_PENDING; tacio_pool_submit calls;
 *   - timers (one-shot-only and periodic ones): set, re-set (also from their
 *     own callbacks), cancel, close;
 *   - waits on a socketpair of their own: set (readable, writable, timeouts),
 *     cancel, close, and the fd made readable or drained;
 *   - cleanup groups: two of them, closed now and then with a report (mostly
 *     TACIO_POOL_WAIT), then re-created with fresh members;
 *   - callbacks that block (tacio_pool_blocking_begin/end), so the pool grows
 *     and shrinks.
 *
 * What is checked (only what include/tacio/pool.h and io.h promise):
 *   - per record, a token set before the start call and cleared by its one
 *     callback or by the non-PENDING return: a second callback, a callback
 *     for a start that did not return PENDING, or a callback on the wrong
 *     object fails at once; a missing one fails at the end (every record
 *     idle, PENDING starts == callbacks per record and per object);
 *     op->status/bytes agree with what was returned or called back;
 *   - TACIO_POOL_WAIT closes: when they return, every PENDING start of the
 *     object was called back, every submit ran (or, with CANCEL_PENDING, at
 *     most that many ran), and no callback of it starts afterwards;
 *   - group reports: one per member ever created in the group (members
 *     closed individually before included), ran == the test's own count of
 *     callbacks of that member, and for work ran + cancelled == submits that
 *     returned SUCCESS (cancelled 0 without CANCEL_PENDING), for I/O
 *     cancelled 0, for timers and waits cancelled == cancels that returned
 *     SUCCESS (+1 if it was armed when closed);
 *   - timers and waits: one-shot settings run at most once each and never
 *     after a cancel that returned SUCCESS (runs + successful cancels <=
 *     successful sets); after such a cancel at most POOL_MAX callbacks may
 *     still start (runs already started, one per pool thread at most: the
 *     header lets those finish); cancel says NOT_FOUND for a timer the test
 *     knows is disarmed and SUCCESS for a periodic timer it knows is armed;
 *   - callbacks never run on a test thread; tacio_pool_submit calls run
 *     once each; the pool's own callback counter equals the test's;
 *   - at the end: every object still works (a timer fires, a work runs, a
 *     wait fires), then everything is closed, tacio_pool_info().objects
 *     reaches 0, the pool shrinks back to min_threads, the port's
 *     dropped_duplicates is 0, and no fd is left (framework).
 *
 * TACIO_POOL_STRESS_OPS (default 10^6; 2 x 10^5 in ASan/TSan builds) counts
 * operations: I/O starts, work submits, tacio_pool_submit calls, timer sets
 * and wait sets, from test threads and callbacks alike. Progress goes to
 * stderr every 10%, then a summary (counts per action, per status).
 * TACIO_POOL_STRESS_NOWAIT_GROUPS=0 leaves out group closes without WAIT.
 * TACIO_SEED replays the random choices (thread timing differs from run to
 * run); the seed is printed with every failure.
 */
#include "tacio-test.h"

#include <tacio/pool.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#if defined(TACIO_TSAN) || defined(TACIO_ASAN)
#define DEFAULT_OPS 200000ull
#else
#define DEFAULT_OPS 1000000ull
#endif

#define POOL_MIN 2
#define POOL_MAX 8
#define POOL_CONC 2
#define POOL_IDLE_MS 20

#define MAX_WORKERS 16
#define NBURST 4
#define NREC 1024
#define BUF 2048
#define DGRAM_MAX 1024
#define FILE_SIZE 65536
#define NKOBJ 12            /* kernel objects: stream, dgram, pipe, file, x3 */
#define NWORK 6
#define NTIMER 9
#define NWAIT 6
#define NGROUP 2
#define INST_MAGIC 0x70534954u

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    unsigned long long v = strtoull(s, NULL, 0);
    return v ? (uint64_t)v : dflt;
}

static unsigned mult(void)
{
    const char *m = getenv("TACIO_TEST_TIMEOUT_MULT");
    return m && atoi(m) > 0 ? (unsigned)atoi(m) : 1;
}

/* ---- randomness: per test thread from tt_rand (a seed replays the choices),
 * per pool thread from tt_rand at its first callback ------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd_below(rng_t *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

static _Thread_local rng_t tl_rng;
static _Thread_local bool tl_is_test; /* a thread of the test, never a pool thread */

static rng_t *cb_rng(void)
{
    if (!tl_rng.s)
        tl_rng.s = tt_rand() | 1;
    return &tl_rng;
}

/* ---- counters ------------------------------------------------------------------ */

enum {
    A_RECV, A_RECVFROM, A_SEND, A_PIPE_READ, A_PIPE_WRITE, A_FILE_READ, A_FILE_WRITE, A_FSYNC,
    A_IO
};
static const char *const a_name[A_IO] = {
    "recv", "recvfrom", "send", "pipe_read", "pipe_write", "file_read", "file_write", "fsync"
};

enum {
    X_WORK_SUBMIT, X_POOL_SUBMIT, X_TIMER_SET, X_WAIT_SET,
    X_TIMER_CANCEL_OK, X_TIMER_CANCEL_NF, X_WAIT_CANCEL_OK, X_WAIT_CANCEL_NF, X_WAIT_TOGGLE,
    X_ON_CLOSED, X_CANCEL, X_CANCEL_HANDLE,
    X_CLOSE_IO, X_CLOSE_IO_WAIT, X_CLOSE_WORK, X_CLOSE_WORK_WAIT, X_CLOSE_WORK_CP,
    X_CLOSE_TIMER, X_CLOSE_TIMER_WAIT, X_CLOSE_WAITOBJ, X_CLOSE_WAITOBJ_WAIT,
    X_SELF_CLOSE, X_DEADLOCK_REFUSED, X_REOPEN, X_GROUP_CLOSE_WAIT, X_GROUP_CLOSE_NOWAIT,
    X_REPORT, X_BLOCKING, X_SKIP_CLOSED, X_NO_RECORD, X_THREAD_EXIT, X_BURST,
    X_CB_IO, X_CB_WORK, X_CB_TIMER, X_CB_WAIT_READY, X_CB_WAIT_TIMEOUT, X_CB_CALL,
    X_COUNT
};
static const char *const x_name[X_COUNT] = {
    "work_submit", "pool_submit", "timer_set", "wait_set",
    "timer_cancel_ok", "timer_cancel_not_found", "wait_cancel_ok", "wait_cancel_not_found",
    "wait_fd_toggle", "call_on_closed_own_object", "cancel", "cancel_handle",
    "close_io", "close_io_wait", "close_work", "close_work_wait", "close_work_cancel_pending",
    "close_timer", "close_timer_wait", "close_wait", "close_wait_wait",
    "self_close_in_callback", "wait_from_own_callback_refused", "reopen", "group_close_wait",
    "group_close_nowait", "group_reports", "blocking_callbacks", "skip_closed", "no_free_record",
    "thread_exits", "burst_threads",
    "cb_io", "cb_work", "cb_timer", "cb_wait_ready", "cb_wait_timeout", "cb_call",
};

static const tacio_status_t k_status[] = {
    TACIO_SUCCESS, TACIO_CANCELLED, TACIO_END_OF_FILE, TACIO_BUFFER_OVERFLOW, TACIO_FILE_CLOSED,
    TACIO_PIPE_BROKEN, TACIO_CONNECTION_RESET, TACIO_CONNECTION_REFUSED, TACIO_INVALID_HANDLE,
};
#define NKST (sizeof k_status / sizeof k_status[0])
#define NST (NKST + 1) /* + other */

static struct {
    _Atomic uint64_t x[X_COUNT];
    _Atomic uint64_t started[A_IO], pending[A_IO], sync[A_IO], called[A_IO];
    _Atomic uint64_t sync_hist[A_IO][NST], cb_hist[A_IO][NST];
    _Atomic uint32_t other_status;
    _Atomic uint64_t call_submits, calls;
} C;

static void cnt(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void cx(unsigned x)
{
    cnt(&C.x[x]);
}

static unsigned st_index(tacio_status_t s)
{
    for (unsigned i = 0; i < NKST; i++)
        if (k_status[i] == s)
            return i;
    atomic_store_explicit(&C.other_status, s, memory_order_relaxed);
    return NKST;
}

/* TACIO_POOL_STRESS_NOWAIT_GROUPS=0 leaves out group closes without
 * TACIO_POOL_WAIT (default: about one group close in five is without). */
static bool g_nowait_groups = true;
static _Atomic uint64_t g_ops;   /* counted operations issued */
static uint64_t g_total;
static _Atomic bool g_stop;      /* quiescing: callbacks only count */

/* Lulls: now and then every test thread pauses for longer than idle_ms and
 * callbacks stop starting new work, so pool threads leave (with operations
 * they started still pending) and come back when the load does. */
static _Atomic uint64_t g_lull_until; /* CLOCK_MONOTONIC ns */

static bool in_lull(void)
{
    return tt_now_ns() < atomic_load_explicit(&g_lull_until, memory_order_relaxed);
}

static bool budget_left(void)
{
    return !atomic_load_explicit(&g_stop, memory_order_relaxed) &&
           atomic_load_explicit(&g_ops, memory_order_relaxed) < g_total;
}

/* For callbacks: whether to issue more. */
static bool cb_budget_left(void)
{
    return budget_left() && !in_lull();
}

static void count_op(void)
{
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
}

/* ---- objects: slots, instances, groups ------------------------------------------- */

enum { SK_IO, SK_WORK, SK_TIMER, SK_WAIT };
static const char *const sk_name[] = { "I/O", "work", "timer", "wait" };
enum { ST_CLOSED, ST_OPEN, ST_CLOSING, ST_OPENING };
enum { E_STREAM, E_DGRAM, E_PIPE_R, E_PIPE_W, E_FILE };
enum { K_STREAM, K_DGRAM, K_PIPE, K_FILE, K_TYPES };
/* What the test knows of a timer's or wait's arming (under inst.m). */
enum { M_DISARMED, M_MAYBE, M_ARMED };

struct grp;
struct slot;

/* One pool object, from its creation on; kept until the end of the case (a
 * closed object's callbacks may still come, with this as ctx). */
typedef struct inst {
    uint32_t magic;
    int kind, etype;
    struct slot *slot;
    struct grp *grp;
    void *obj;
    bool periodic;              /* timer: may be set periodic */
    int wfd[2];                 /* wait: its own socketpair, closed when it is done */
    pthread_mutex_t m;          /* timer, wait: set/cancel and the test's model */
    int model;                  /* M_* */
    bool cancel_flag;           /* a cancel returned SUCCESS, no set since */
    unsigned after_cancel;      /* callbacks started since */
    _Atomic int64_t owed;       /* I/O: armed starts not yet over */
    _Atomic uint64_t pending, calls;  /* I/O: PENDING starts, callbacks */
    _Atomic uint64_t submits, runs;   /* work: SUCCESS submits; runs: work, timer, wait */
    _Atomic uint64_t sets, cancels;   /* timer, wait: SUCCESS sets and cancels */
    _Atomic bool closed, cp, finished;
    _Atomic int reported;
    _Atomic uint64_t rep_ran, rep_cancelled;
    struct inst *next;
} inst_t;

typedef struct slot {
    int kind, idx, group;       /* group: index into g_gs, or -1 */
    int etype;
    pthread_rwlock_t lk;        /* users hold it for read, state changes for write */
    int state;                  /* ST_*, under lk */
    _Atomic int hint;           /* state, for scans without the lock */
    void *obj;                  /* under lk */
    tacio_handle_t *h;          /* I/O, under lk */
    inst_t *inst;               /* under lk */
} slot_t;

typedef struct kobj {
    int type, group, nends;
    slot_t end[2];
} kobj_t;

typedef struct grp {
    int idx;
    tacio_pool_group_t *g;
    _Atomic unsigned members, reports;
    struct grp *next;
} grp_t;

/* A group position. Creating or closing one member of the group holds lk
 * for read, the group's close holds it for write (so no member is created
 * into, or closed behind, a group being closed). Callbacks only try it. */
typedef struct gslot {
    pthread_rwlock_t lk;
    grp_t *cur;
} gslot_t;

static tacio_pool_t *g_pool;
static kobj_t g_kobj[NKOBJ];
static slot_t g_work[NWORK], g_timer[NTIMER], g_wait[NWAIT];
static gslot_t g_gs[NGROUP];
static pthread_mutex_t g_list_lock = PTHREAD_MUTEX_INITIALIZER;
static inst_t *g_insts;
static grp_t *g_grps;
static _Atomic uint64_t g_ninst, g_ngrp;

static void rwlock_init(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &ra);
    pthread_rwlockattr_destroy(&ra);
}

static inst_t *inst_new(int kind, slot_t *s, grp_t *grp)
{
    inst_t *in = calloc(1, sizeof *in);
    ASSERT_TRUE(in != NULL);
    in->magic = INST_MAGIC;
    in->kind = kind;
    in->etype = s->etype;
    in->slot = s;
    in->grp = grp;
    in->wfd[0] = in->wfd[1] = -1;
    pthread_mutex_init(&in->m, NULL);
    pthread_mutex_lock(&g_list_lock);
    in->next = g_insts;
    g_insts = in;
    pthread_mutex_unlock(&g_list_lock);
    cnt(&g_ninst);
    return in;
}

static grp_t *grp_new(int idx)
{
    grp_t *g = calloc(1, sizeof *g);
    ASSERT_TRUE(g != NULL);
    g->idx = idx;
    ASSERT_OK(tacio_pool_group_create(g_pool, &g->g));
    pthread_mutex_lock(&g_list_lock);
    g->next = g_grps;
    g_grps = g;
    pthread_mutex_unlock(&g_list_lock);
    cnt(&g_ngrp);
    return g;
}

static void slot_set_state(slot_t *s, int st)
{
    s->state = st;
    atomic_store_explicit(&s->hint, st, memory_order_relaxed);
}

/* ---- records --------------------------------------------------------------------- */

#define PH_CLAIMED 1u
#define PH_OWED 2u

typedef struct rec {
    tacio_op_t op;
    /* 0 idle; tag << 2 | PH_CLAIMED while being prepared; tag << 2 | PH_OWED
     * from just before the start call to its callback or non-PENDING return.
     * The tag is random per start, so a late callback cannot pass for the
     * one of a later start. */
    _Atomic uint64_t state;
    _Atomic(inst_t *) inst;     /* the object it was started on */
    _Atomic uint32_t kind, len;
    _Atomic uint32_t pend, calls;
    tacio_addr_t addr;
    unsigned char buf[BUF];
} rec_t;

static rec_t *g_rec;

static unsigned rec_index(const rec_t *r)
{
    return (unsigned)(r - g_rec);
}

static rec_t *rec_of(tacio_op_t *op)
{
    uintptr_t a = (uintptr_t)op, base = (uintptr_t)g_rec;
    if (a < base || a >= base + (uintptr_t)NREC * sizeof(rec_t) ||
        (a - base) % sizeof(rec_t) != offsetof(rec_t, op))
        TT_FAIL("I/O callback for a record nobody started (%p)", (void *)op);
    return (rec_t *)(void *)((char *)op - offsetof(rec_t, op));
}

static uint64_t new_tag(rng_t *rg)
{
    return (rnd(rg) >> 3) | 1;
}

static rec_t *rec_claim(rng_t *rg, uint64_t *tag)
{
    for (int i = 0; i < 8; i++) {
        rec_t *r = &g_rec[rnd_below(rg, NREC)];
        uint64_t zero = 0, t = new_tag(rg);
        /* acquire: pairs with the release that made it idle; the last
         * user's accesses happen before ours. */
        if (atomic_load_explicit(&r->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&r->state, &zero, t << 2 | PH_CLAIMED,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            *tag = t;
            return r;
        }
    }
    return NULL;
}

static void rec_unclaim(rec_t *r)
{
    atomic_store_explicit(&r->state, 0, memory_order_release);
}

static void check_bytes(const rec_t *r, unsigned kind, tacio_status_t st, uint64_t bytes,
                        uint32_t len, const char *where)
{
    if (kind == A_FSYNC)
        return;
    if ((st == TACIO_SUCCESS && bytes > len) || (st == TACIO_BUFFER_OVERFLOW && bytes <= len))
        TT_FAIL("record %u (%s, %s): %s with %llu bytes for a %u-byte buffer", rec_index(r),
                a_name[kind], where, tacio_status_name(st), (unsigned long long)bytes, len);
}

static void fill(rec_t *r, size_t n, rng_t *rg)
{
    uint64_t x = rnd(rg);
    for (size_t i = 0; i < n; i++)
        r->buf[i] = (unsigned char)(x + i * 7);
}

/* After a start on r (armed with tag) returned st. */
static void io_started(rec_t *r, uint64_t tag, inst_t *in, unsigned kind, uint32_t len,
                       tacio_status_t st)
{
    cnt(&C.started[kind]);
    if (st == TACIO_PENDING) {
        cnt(&C.pending[kind]);
        atomic_fetch_add_explicit(&r->pend, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&in->pending, 1, memory_order_relaxed);
        return;
    }
    if (st == TACIO_OP_IN_USE)
        TT_FAIL("record %u (%s): start returned OP_IN_USE on a record whose callback ran",
                rec_index(r), a_name[kind]);
    tacio_status_t ost = r->op.status;
    uint64_t obytes = r->op.bytes;
    cnt(&C.sync[kind]);
    cnt(&C.sync_hist[kind][st_index(st)]);
    atomic_fetch_sub_explicit(&in->owed, 1, memory_order_relaxed);
    uint64_t want = tag << 2 | PH_OWED;
    /* acq_rel: pairs with the callback's exchange; failing here means a
     * callback ran for this start, which promised none. */
    if (!atomic_compare_exchange_strong_explicit(&r->state, &want, 0, memory_order_acq_rel,
                                                 memory_order_acquire))
        TT_FAIL("record %u (%s): the start returned %s (no callback may follow) and a callback "
                "ran for it (state now 0x%llx)", rec_index(r), a_name[kind],
                tacio_status_name(st), (unsigned long long)want);
    if (ost != st)
        TT_FAIL("record %u (%s): start returned %s but op->status is %s", rec_index(r),
                a_name[kind], tacio_status_name(st), tacio_status_name(ost));
    check_bytes(r, kind, st, obytes, len, "returned");
}

/* One start on r (claimed with tag) on instance in, whose handle is h. The
 * caller holds the slot for read, or runs in one of in's callbacks. */
static void io_start(rec_t *r, uint64_t tag, inst_t *in, tacio_handle_t *h, rng_t *rg)
{
    unsigned kind;
    size_t len = 1 + (size_t)rnd_below(rg, BUF);
    uint64_t off = TACIO_OFFSET_NONE;
    switch (in->etype) {
    case E_STREAM:
        kind = rnd_below(rg, 2) ? A_RECV : A_SEND;
        break;
    case E_DGRAM: {
        static const unsigned k[3] = { A_RECV, A_RECVFROM, A_SEND };
        kind = k[rnd_below(rg, 3)];
        len = 1 + (size_t)rnd_below(rg, DGRAM_MAX);
        break;
    }
    case E_PIPE_R:
        kind = A_PIPE_READ;
        break;
    case E_PIPE_W:
        kind = A_PIPE_WRITE;
        break;
    default: {
        unsigned w = (unsigned)rnd_below(rg, 9);
        if (w == 0) {
            kind = A_FSYNC;
        } else if (w <= 4) {
            kind = A_FILE_READ;
            off = rnd_below(rg, FILE_SIZE + 512);
        } else {
            kind = A_FILE_WRITE;
            off = rnd_below(rg, FILE_SIZE - len + 1);
        }
        break;
    }
    }
    if (kind == A_SEND || kind == A_PIPE_WRITE || kind == A_FILE_WRITE)
        fill(r, len, rg);
    atomic_store_explicit(&r->inst, in, memory_order_relaxed);
    atomic_store_explicit(&r->kind, kind, memory_order_relaxed);
    atomic_store_explicit(&r->len, (uint32_t)len, memory_order_relaxed);
    atomic_fetch_add_explicit(&in->owed, 1, memory_order_relaxed);
    /* release: the fields above are set before a callback can see OWED. */
    atomic_store_explicit(&r->state, tag << 2 | PH_OWED, memory_order_release);
    count_op();
    tacio_status_t st;
    switch (kind) {
    case A_RECV:
        st = tacio_recv(h, &r->op, r->buf, len);
        break;
    case A_RECVFROM:
        st = tacio_recvfrom(h, &r->op, r->buf, len, &r->addr);
        break;
    case A_SEND:
        st = tacio_send(h, &r->op, r->buf, len);
        break;
    case A_PIPE_READ:
    case A_FILE_READ:
        st = tacio_read(h, &r->op, r->buf, len, off);
        break;
    case A_PIPE_WRITE:
    case A_FILE_WRITE:
        st = tacio_write(h, &r->op, r->buf, len, off);
        break;
    default:
        st = tacio_fsync(h, &r->op, (int)rnd_below(rg, 2));
        break;
    }
    io_started(r, tag, in, kind, (uint32_t)len, st);
}

/* ---- checks when an object is done -------------------------------------------------- */

static void check_done(inst_t *in, const char *when)
{
    bool rep = atomic_load(&in->reported) != 0;
    uint64_t ran = atomic_load(&in->rep_ran), canc = atomic_load(&in->rep_cancelled);
    const char *k = sk_name[in->kind];
    switch (in->kind) {
    case SK_IO: {
        int64_t owed = atomic_load(&in->owed);
        uint64_t p = atomic_load(&in->pending), c = atomic_load(&in->calls);
        if (owed != 0 || p != c)
            TT_FAIL("%s object %p after %s: %llu starts returned PENDING, %llu callbacks ran "
                    "(%lld still owed)", k, in->obj, when, (unsigned long long)p,
                    (unsigned long long)c, (long long)owed);
        if (rep && (ran != c || canc != 0))
            TT_FAIL("%s object %p: group report ran %llu cancelled %llu, the test saw %llu "
                    "callbacks (and cancelled must be 0)", k, in->obj, (unsigned long long)ran,
                    (unsigned long long)canc, (unsigned long long)c);
        break;
    }
    case SK_WORK: {
        uint64_t s = atomic_load(&in->submits), r = atomic_load(&in->runs);
        bool cp = atomic_load(&in->cp);
        if (rep) {
            if (ran != r || ran + canc != s || (!cp && canc))
                TT_FAIL("work object %p: group report ran %llu + cancelled %llu; the test saw "
                        "%llu runs of %llu submits that returned SUCCESS (%s)", in->obj,
                        (unsigned long long)ran, (unsigned long long)canc,
                        (unsigned long long)r, (unsigned long long)s,
                        cp ? "closed with CANCEL_PENDING" : "never CANCEL_PENDING");
        } else if (cp ? r > s : r != s) {
            TT_FAIL("work object %p after %s: %llu runs of %llu submits that returned SUCCESS "
                    "(%s)", in->obj, when, (unsigned long long)r, (unsigned long long)s,
                    cp ? "closed with CANCEL_PENDING" : "never CANCEL_PENDING");
        }
        break;
    }
    default: {
        uint64_t s = atomic_load(&in->sets), c = atomic_load(&in->cancels);
        uint64_t r = atomic_load(&in->runs);
        bool oneshot = in->kind == SK_WAIT || !in->periodic;
        if (rep && (ran != r || canc < c || canc > c + 1))
            TT_FAIL("%s object %p: group report ran %llu cancelled %llu; the test saw %llu runs "
                    "and %llu cancels that returned SUCCESS", k, in->obj,
                    (unsigned long long)ran, (unsigned long long)canc, (unsigned long long)r,
                    (unsigned long long)c);
        uint64_t dead = rep ? canc : c;
        if (oneshot && r + dead > s)
            TT_FAIL("%s object %p after %s: %llu runs + %llu cancelled settings > %llu "
                    "settings (one-shot: a setting runs at most once, never once cancelled)",
                    k, in->obj, when, (unsigned long long)r, (unsigned long long)dead,
                    (unsigned long long)s);
        break;
    }
    }
}

static void close_wfds(inst_t *in)
{
    for (int i = 0; i < 2; i++) {
        int fd = in->wfd[i];
        in->wfd[i] = -1;
        tt_close(fd);
    }
}

/* Every callback of in has run: none may start from now on. A member of a
 * group closed on its own with WAIT is done a second time by its report
 * (again_ok); nothing else may be. */
static void inst_done(inst_t *in, const char *when, bool again_ok)
{
    if (atomic_exchange_explicit(&in->finished, true, memory_order_acq_rel)) {
        if (!again_ok)
            TT_FAIL("%s object %p finished twice (%s)", sk_name[in->kind], in->obj, when);
    } else if (in->kind == SK_WAIT) {
        close_wfds(in); /* the pool no longer watches them */
    }
    check_done(in, when);
}

static void cb_enter(inst_t *in, const void *obj, const char *what)
{
    if (tl_is_test)
        TT_FAIL("%s callback ran on a test thread", what);
    if (!in || in->magic != INST_MAGIC)
        TT_FAIL("%s callback with a ctx that is not the test's (%p)", what, (void *)in);
    if (obj != in->obj)
        TT_FAIL("%s callback for object %p with the ctx of %p", what, obj, in->obj);
    /* acquire: pairs with inst_done's exchange. */
    if (atomic_load_explicit(&in->finished, memory_order_acquire))
        TT_FAIL("%s callback of object %p started after its close with TACIO_POOL_WAIT "
                "returned, or after its group report", what, obj);
}

static void group_report(void *ctx, void *gctx, uint64_t ran, uint64_t cancelled)
{
    inst_t *in = ctx;
    grp_t *g = gctx;
    if (!in || in->magic != INST_MAGIC)
        TT_FAIL("group report with a ctx that is not a member's (%p)", ctx);
    if (in->grp != g)
        TT_FAIL("group report for %s object %p through group %p; it belongs to %p",
                sk_name[in->kind], in->obj, (void *)g, (void *)in->grp);
    if (atomic_exchange(&in->reported, 1))
        TT_FAIL("second group report for %s object %p", sk_name[in->kind], in->obj);
    atomic_store(&in->rep_ran, ran);
    atomic_store(&in->rep_cancelled, cancelled);
    atomic_fetch_add(&g->reports, 1);
    cx(X_REPORT);
    inst_done(in, "its group report", true);
}

/* ---- callbacks ------------------------------------------------------------------- */

static void do_action(rng_t *rg, bool in_cb);
static bool slot_close(slot_t *s, inst_t *only, unsigned flags, bool in_cb);

/* What a callback does besides its own accounting. */
static void cb_extra(rng_t *rg, inst_t *in)
{
    if (atomic_load_explicit(&g_stop, memory_order_relaxed) || in_lull())
        return;
    unsigned p = (unsigned)rnd_below(rg, 1000);
    if (p < 30) {
        cx(X_BLOCKING);
        tacio_pool_blocking_begin();
        usleep(100 + (useconds_t)rnd_below(rg, 1500));
        tacio_pool_blocking_end();
    } else if (p < 250) {
        do_action(rg, true);
    } else if (p < 253) {
        /* Close our own object; with WAIT that must be refused (and the
         * close still done). */
        unsigned fl = (rnd_below(rg, 2) ? TACIO_POOL_WAIT : 0) |
                      (rnd_below(rg, 2) ? TACIO_POOL_CANCEL_PENDING : 0);
        if (slot_close(in->slot, in, fl, true))
            cx(X_SELF_CLOSE);
    }
}

static void io_cb(tacio_pool_io_t *io, void *ctx, tacio_op_t *op, tacio_status_t st,
                  uint64_t bytes)
{
    inst_t *in = ctx;
    cb_enter(in, io, "I/O");
    cx(X_CB_IO);
    rec_t *r = rec_of(op);
    /* acquire: pairs with io_start's release of OWED. */
    uint64_t s = atomic_load_explicit(&r->state, memory_order_acquire);
    unsigned kind = atomic_load_explicit(&r->kind, memory_order_relaxed) % A_IO;
    if ((s & 3) != PH_OWED)
        TT_FAIL("record %u (%s): callback (%s, %llu bytes) with none owed: a second callback, "
                "or one for a start that did not return PENDING (state 0x%llx)", rec_index(r),
                a_name[kind], tacio_status_name(st), (unsigned long long)bytes,
                (unsigned long long)s);
    inst_t *want = atomic_load_explicit(&r->inst, memory_order_relaxed);
    if (want != in)
        TT_FAIL("record %u (%s): callback on object %p, started on %p", rec_index(r),
                a_name[kind], (void *)io, want ? want->obj : NULL);
    if (st == TACIO_PENDING || st == TACIO_OP_IN_USE)
        TT_FAIL("record %u (%s): callback with status %s", rec_index(r), a_name[kind],
                tacio_status_name(st));
    if (op->status != st || op->bytes != bytes)
        TT_FAIL("record %u (%s): callback with %s/%llu but op has %s/%llu", rec_index(r),
                a_name[kind], tacio_status_name(st), (unsigned long long)bytes,
                tacio_status_name(op->status), (unsigned long long)op->bytes);
    check_bytes(r, kind, st, bytes, atomic_load_explicit(&r->len, memory_order_relaxed),
                "callback");
    cnt(&C.called[kind]);
    cnt(&C.cb_hist[kind][st_index(st)]);
    atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&in->calls, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&in->owed, 1, memory_order_relaxed) <= 0)
        TT_FAIL("%s object %p: more callbacks than starts", sk_name[in->kind], (void *)io);
    rng_t *rg = cb_rng();
    /* The record is ours again: often start it again at once, on the same
     * object (the server pattern), without letting it go idle. */
    bool again = cb_budget_left() && rnd_below(rg, 100) < 50;
    uint64_t tag = new_tag(rg);
    /* acq_rel: releases our use of the record, acquires its last start. */
    if (!atomic_compare_exchange_strong_explicit(&r->state, &s, again ? tag << 2 | PH_CLAIMED : 0,
                                                 memory_order_acq_rel, memory_order_relaxed))
        TT_FAIL("record %u (%s): changed under its callback (0x%llx): a second callback ran "
                "at the same time", rec_index(r), a_name[kind], (unsigned long long)s);
    if (again)
        io_start(r, tag, in, tacio_pool_io_handle(io), rg);
    cb_extra(rg, in);
}

static void work_cb(tacio_pool_work_t *w, void *ctx)
{
    inst_t *in = ctx;
    cb_enter(in, w, "work");
    cx(X_CB_WORK);
    atomic_fetch_add_explicit(&in->runs, 1, memory_order_relaxed);
    rng_t *rg = cb_rng();
    if (cb_budget_left() && rnd_below(rg, 100) < 30) {
        count_op();
        tacio_status_t st = tacio_pool_work_submit(w); /* our own object: valid in here */
        if (st == TACIO_SUCCESS) {
            atomic_fetch_add_explicit(&in->submits, 1, memory_order_relaxed);
            cx(X_WORK_SUBMIT);
        } else if (st == TACIO_INVALID_HANDLE && atomic_load(&in->closed)) {
            cx(X_ON_CLOSED);
        } else {
            TT_FAIL("work submit from its own callback: %s", tacio_status_name(st));
        }
    }
    cb_extra(rg, in);
}

static void timer_set_m(inst_t *in, tacio_pool_timer_t *t, rng_t *rg);

static void timer_cb(tacio_pool_timer_t *t, void *ctx)
{
    inst_t *in = ctx;
    cb_enter(in, t, "timer");
    cx(X_CB_TIMER);
    pthread_mutex_lock(&in->m);
    atomic_fetch_add_explicit(&in->runs, 1, memory_order_relaxed);
    if (in->cancel_flag && ++in->after_cancel > POOL_MAX)
        TT_FAIL("timer %p: %u callbacks started after tacio_pool_timer_cancel returned SUCCESS "
                "(no set since); at most %u runs can have started before it (one per pool "
                "thread)", (void *)t, in->after_cancel, POOL_MAX);
    pthread_mutex_unlock(&in->m);
    rng_t *rg = cb_rng();
    if (cb_budget_left() && rnd_below(rg, 100) < (in->periodic ? 5 : 25))
        timer_set_m(in, t, rg); /* re-set our own timer */
    cb_extra(rg, in);
}

static void wait_set_m(inst_t *in, tacio_pool_wait_t *w, rng_t *rg);

static void drain(int fd)
{
    char b[256];
    while (read(fd, b, sizeof b) > 0)
        ;
}

static void wait_cb(tacio_pool_wait_t *w, void *ctx, tacio_status_t st, unsigned ev)
{
    inst_t *in = ctx;
    cb_enter(in, w, "wait");
    if (st == TACIO_SUCCESS) {
        if (!ev || (ev & ~(TACIO_POOL_READABLE | TACIO_POOL_WRITABLE)))
            TT_FAIL("wait %p: SUCCESS with events 0x%x", (void *)w, ev);
        cx(X_CB_WAIT_READY);
    } else if (st == TACIO_TIMEOUT) {
        if (ev)
            TT_FAIL("wait %p: TIMEOUT with events 0x%x", (void *)w, ev);
        cx(X_CB_WAIT_TIMEOUT);
    } else {
        TT_FAIL("wait %p: callback with %s (only readiness and timeouts run it)", (void *)w,
                tacio_status_name(st));
    }
    pthread_mutex_lock(&in->m);
    atomic_fetch_add_explicit(&in->runs, 1, memory_order_relaxed);
    if (in->cancel_flag && ++in->after_cancel > POOL_MAX)
        TT_FAIL("wait %p: %u callbacks started after tacio_pool_wait_cancel returned SUCCESS "
                "(no set since); at most %u can have started before it", (void *)w,
                in->after_cancel, POOL_MAX);
    pthread_mutex_unlock(&in->m);
    rng_t *rg = cb_rng();
    /* in is not finished while its callback runs: its fds are open. */
    if ((ev & TACIO_POOL_READABLE) && rnd_below(rg, 2))
        drain(in->wfd[0]);
    if (cb_budget_left() && rnd_below(rg, 100) < 30)
        wait_set_m(in, w, rg);
    cb_extra(rg, in);
}

static void call_cb(void *ctx)
{
    if (tl_is_test)
        TT_FAIL("tacio_pool_submit call ran on a test thread");
    if (ctx != (void *)&C)
        TT_FAIL("tacio_pool_submit call with ctx %p", ctx);
    cnt(&C.calls);
    cx(X_CB_CALL);
}

/* ---- timer and wait calls, with the test's model --------------------------------- */

/* Under in->m, right after a set returned st: what the model expects next. */
static void set_model_locked(inst_t *in, tacio_status_t st, int model)
{
    if (st == TACIO_SUCCESS) {
        atomic_fetch_add_explicit(&in->sets, 1, memory_order_relaxed);
        in->model = model;
        in->cancel_flag = false;
    }
}

/* After the lock: a set's status, counted, or the failure. fn names the call. */
static void set_check(inst_t *in, tacio_status_t st, unsigned x_ok, const char *fn,
                      const char *what)
{
    if (st == TACIO_SUCCESS)
        cx(x_ok);
    else if (st == TACIO_INVALID_HANDLE && atomic_load(&in->closed))
        cx(X_ON_CLOSED);
    else if (st == TACIO_NO_MEMORY)
        ; /* injected (TACIO_FAULTS enomem): not armed, as pool.h says */
    else
        TT_FAIL("%s on an open %s: %s", fn, what, tacio_status_name(st));
}

/* Under in->m, right after a cancel returned st. */
static void cancel_model_locked(inst_t *in, tacio_status_t st)
{
    if (st == TACIO_SUCCESS) {
        atomic_fetch_add_explicit(&in->cancels, 1, memory_order_relaxed);
        in->cancel_flag = true;
        in->after_cancel = 0;
        in->model = M_DISARMED;
    } else if (st == TACIO_NOT_FOUND) {
        in->model = M_DISARMED;
    }
}

/* After the lock: a cancel's status against the model it saw (only a
 * periodic timer is ever M_ARMED: its cancel must find it). */
static void cancel_check(inst_t *in, tacio_status_t st, int model, unsigned x_ok, unsigned x_nf,
                         const char *fn, const char *what)
{
    if (st == TACIO_SUCCESS) {
        if (model == M_DISARMED)
            TT_FAIL("%s returned SUCCESS on a %s cancelled before and not set since", fn, what);
        cx(x_ok);
    } else if (st == TACIO_NOT_FOUND) {
        if (model == M_ARMED)
            TT_FAIL("%s returned NOT_FOUND on a periodic %s set and never cancelled", fn, what);
        cx(x_nf);
    } else if (st == TACIO_INVALID_HANDLE && atomic_load(&in->closed)) {
        cx(X_ON_CLOSED);
    } else {
        TT_FAIL("%s: %s", fn, tacio_status_name(st));
    }
}

static void timer_set_m(inst_t *in, tacio_pool_timer_t *t, rng_t *rg)
{
    uint64_t due = rnd_below(rg, 2000000), per = 0;
    if (in->periodic && rnd_below(rg, 3))
        per = 500000 + rnd_below(rg, 2500000);
    count_op();
    pthread_mutex_lock(&in->m);
    tacio_status_t st = tacio_pool_timer_set(t, due, per);
    set_model_locked(in, st, per ? M_ARMED : M_MAYBE);
    pthread_mutex_unlock(&in->m);
    set_check(in, st, X_TIMER_SET, "tacio_pool_timer_set", "timer");
}

static void timer_cancel_m(inst_t *in, tacio_pool_timer_t *t)
{
    pthread_mutex_lock(&in->m);
    tacio_status_t st = tacio_pool_timer_cancel(t);
    int model = in->model;
    cancel_model_locked(in, st);
    pthread_mutex_unlock(&in->m);
    cancel_check(in, st, model, X_TIMER_CANCEL_OK, X_TIMER_CANCEL_NF, "tacio_pool_timer_cancel",
                 "timer");
}

static void wait_set_m(inst_t *in, tacio_pool_wait_t *w, rng_t *rg)
{
    static const unsigned evs[5] = { TACIO_POOL_READABLE, TACIO_POOL_READABLE,
                                     TACIO_POOL_READABLE, TACIO_POOL_WRITABLE,
                                     TACIO_POOL_READABLE | TACIO_POOL_WRITABLE };
    unsigned ev = evs[rnd_below(rg, 5)];
    int tmo = rnd_below(rg, 5) < 2 ? TACIO_INFINITE : (int)rnd_below(rg, 6);
    count_op();
    pthread_mutex_lock(&in->m);
    tacio_status_t st = tacio_pool_wait_set(w, in->wfd[0], ev, tmo);
    set_model_locked(in, st, M_MAYBE);
    pthread_mutex_unlock(&in->m);
    set_check(in, st, X_WAIT_SET, "tacio_pool_wait_set", "wait");
}

static void wait_cancel_m(inst_t *in, tacio_pool_wait_t *w)
{
    pthread_mutex_lock(&in->m);
    tacio_status_t st = tacio_pool_wait_cancel(w);
    int model = in->model;
    cancel_model_locked(in, st);
    pthread_mutex_unlock(&in->m);
    cancel_check(in, st, model, X_WAIT_CANCEL_OK, X_WAIT_CANCEL_NF, "tacio_pool_wait_cancel",
                 "wait");
}

/* ---- creating and closing objects ------------------------------------------------- */

static slot_t *kobj_end(int i, int e)
{
    return &g_kobj[i].end[e];
}

/* Both ends ST_OPENING (ours alone); the group position held. */
static void kobj_create(kobj_t *k, grp_t *grp, rng_t *rg)
{
    int fds[2] = { -1, -1 };
    switch (k->type) {
    case K_STREAM:
        tt_socketpair(SOCK_STREAM, fds);
        break;
    case K_DGRAM:
        tt_socketpair(SOCK_DGRAM, fds);
        break;
    case K_PIPE:
        tt_pipe(fds);
        break;
    default:
        fds[0] = tt_tmpfile(FILE_SIZE);
        break;
    }
    for (int e = 0; e < k->nends; e++) {
        slot_t *s = &k->end[e];
        inst_t *in = inst_new(SK_IO, s, grp);
        unsigned flags = rnd_below(rg, 4) == 0 ? TACIO_HANDLE_QUEUED_ALWAYS : 0;
        tacio_pool_io_t *io = NULL;
        tacio_status_t st = tacio_pool_io_open(g_pool, fds[e], flags, io_cb, in,
                                               grp ? grp->g : NULL, &io);
        if (st != TACIO_SUCCESS)
            TT_FAIL("tacio_pool_io_open: %s (%s)", tacio_status_name(st), tacio_last_error());
        in->obj = io;
        if (grp)
            atomic_fetch_add(&grp->members, 1);
        pthread_rwlock_wrlock(&s->lk);
        s->obj = io;
        s->h = tacio_pool_io_handle(io);
        s->inst = in;
        slot_set_state(s, ST_OPEN);
        pthread_rwlock_unlock(&s->lk);
    }
}

/* A work, timer or wait slot in ST_OPENING (ours alone). */
static void slot_create(slot_t *s, grp_t *grp, rng_t *rg)
{
    inst_t *in = inst_new(s->kind, s, grp);
    tacio_pool_group_t *g = grp ? grp->g : NULL;
    tacio_status_t st;
    void *obj = NULL;
    switch (s->kind) {
    case SK_WORK: {
        tacio_pool_work_t *w = NULL;
        st = tacio_pool_work_create(g_pool, work_cb, in, g, &w);
        obj = w;
        break;
    }
    case SK_TIMER: {
        tacio_pool_timer_t *t = NULL;
        in->periodic = rnd_below(rg, 100) < 35;
        st = tacio_pool_timer_create(g_pool, timer_cb, in, g, &t);
        obj = t;
        break;
    }
    default: {
        tacio_pool_wait_t *w = NULL;
        tt_socketpair(SOCK_STREAM, in->wfd);
        tt_set_nonblock(in->wfd[0]);
        tt_set_nonblock(in->wfd[1]);
        st = tacio_pool_wait_create(g_pool, wait_cb, in, g, &w);
        obj = w;
        break;
    }
    }
    if (st != TACIO_SUCCESS)
        TT_FAIL("creating a %s object: %s", sk_name[s->kind], tacio_status_name(st));
    in->obj = obj;
    if (grp)
        atomic_fetch_add(&grp->members, 1);
    pthread_rwlock_wrlock(&s->lk);
    s->obj = obj;
    s->inst = in;
    slot_set_state(s, ST_OPEN);
    pthread_rwlock_unlock(&s->lk);
}

static tacio_status_t close_obj(int kind, void *obj, unsigned flags)
{
    switch (kind) {
    case SK_IO:
        return tacio_pool_io_close(obj, flags);
    case SK_WORK:
        return tacio_pool_work_close(obj, flags);
    case SK_TIMER:
        return tacio_pool_timer_close(obj, flags);
    default:
        return tacio_pool_wait_close(obj, flags);
    }
}

static const unsigned close_counter[4][2] = {
    { X_CLOSE_IO, X_CLOSE_IO_WAIT },
    { X_CLOSE_WORK, X_CLOSE_WORK_WAIT },
    { X_CLOSE_TIMER, X_CLOSE_TIMER_WAIT },
    { X_CLOSE_WAITOBJ, X_CLOSE_WAITOBJ_WAIT },
};

/* Close the object in s (only if it is instance `only`, when given).
 * in_cb: called from a pool callback (then the group position is only
 * tried, and WAIT is used on the callback's own object only, where it must
 * be refused). false if there was nothing to close. */
static bool slot_close(slot_t *s, inst_t *only, unsigned flags, bool in_cb)
{
    gslot_t *gs = s->group >= 0 ? &g_gs[s->group] : NULL;
    if (gs) {
        if (in_cb) {
            if (pthread_rwlock_tryrdlock(&gs->lk) != 0)
                return false;
        } else {
            pthread_rwlock_rdlock(&gs->lk);
        }
    }
    pthread_rwlock_wrlock(&s->lk);
    if (s->state != ST_OPEN || (only && s->inst != only)) {
        pthread_rwlock_unlock(&s->lk);
        if (gs)
            pthread_rwlock_unlock(&gs->lk);
        return false;
    }
    void *obj = s->obj;
    inst_t *in = s->inst;
    slot_set_state(s, ST_CLOSING);
    pthread_rwlock_unlock(&s->lk);
    /* From here on nobody but in's own callbacks uses obj. */
    atomic_store(&in->closed, true);
    if (flags & TACIO_POOL_CANCEL_PENDING)
        atomic_store(&in->cp, true);
    tacio_status_t st = close_obj(s->kind, obj, flags);
    tacio_status_t want =
        in_cb && only && (flags & TACIO_POOL_WAIT) ? TACIO_POSSIBLE_DEADLOCK : TACIO_SUCCESS;
    if (st != want)
        TT_FAIL("closing a %s object%s with flags 0x%x: %s, expected %s", sk_name[s->kind],
                in_cb && only ? " from its own callback" : in_cb ? " from a callback" : "",
                flags, tacio_status_name(st), tacio_status_name(want));
    if (st == TACIO_POSSIBLE_DEADLOCK)
        cx(X_DEADLOCK_REFUSED);
    bool waited = (flags & TACIO_POOL_WAIT) && st == TACIO_SUCCESS;
    cx(close_counter[s->kind][waited]);
    if (s->kind == SK_WORK && (flags & TACIO_POOL_CANCEL_PENDING))
        cx(X_CLOSE_WORK_CP);
    if (waited)
        inst_done(in, "its close with TACIO_POOL_WAIT", false);
    pthread_rwlock_wrlock(&s->lk);
    s->obj = NULL;
    s->h = NULL;
    s->inst = NULL;
    slot_set_state(s, ST_CLOSED);
    pthread_rwlock_unlock(&s->lk);
    if (gs)
        pthread_rwlock_unlock(&gs->lk);
    return true;
}

/* Test threads only. */
static bool try_reopen_slot(slot_t *s, rng_t *rg)
{
    if (atomic_load_explicit(&s->hint, memory_order_relaxed) != ST_CLOSED)
        return false;
    gslot_t *gs = s->group >= 0 ? &g_gs[s->group] : NULL;
    if (gs)
        pthread_rwlock_rdlock(&gs->lk);
    pthread_rwlock_wrlock(&s->lk);
    bool mine = s->state == ST_CLOSED;
    if (mine)
        slot_set_state(s, ST_OPENING);
    pthread_rwlock_unlock(&s->lk);
    if (mine)
        slot_create(s, gs ? gs->cur : NULL, rg);
    if (gs)
        pthread_rwlock_unlock(&gs->lk);
    return mine;
}

static bool try_reopen_kobj(kobj_t *k, rng_t *rg)
{
    for (int e = 0; e < k->nends; e++)
        if (atomic_load_explicit(&k->end[e].hint, memory_order_relaxed) != ST_CLOSED)
            return false;
    gslot_t *gs = k->group >= 0 ? &g_gs[k->group] : NULL;
    if (gs)
        pthread_rwlock_rdlock(&gs->lk);
    for (int e = 0; e < k->nends; e++)
        pthread_rwlock_wrlock(&k->end[e].lk);
    bool mine = true;
    for (int e = 0; e < k->nends; e++)
        mine = mine && k->end[e].state == ST_CLOSED;
    if (mine)
        for (int e = 0; e < k->nends; e++)
            slot_set_state(&k->end[e], ST_OPENING);
    for (int e = k->nends - 1; e >= 0; e--)
        pthread_rwlock_unlock(&k->end[e].lk);
    if (mine)
        kobj_create(k, gs ? gs->cur : NULL, rg);
    if (gs)
        pthread_rwlock_unlock(&gs->lk);
    return mine;
}

static void reopen_some(rng_t *rg)
{
    const unsigned n = NKOBJ + NWORK + NTIMER + NWAIT;
    unsigned j = (unsigned)rnd_below(rg, n);
    for (unsigned i = 0; i < n; i++, j = (j + 1) % n) {
        bool done;
        if (j < NKOBJ)
            done = try_reopen_kobj(&g_kobj[j], rg);
        else if (j < NKOBJ + NWORK)
            done = try_reopen_slot(&g_work[j - NKOBJ], rg);
        else if (j < NKOBJ + NWORK + NTIMER)
            done = try_reopen_slot(&g_timer[j - NKOBJ - NWORK], rg);
        else
            done = try_reopen_slot(&g_wait[j - NKOBJ - NWORK - NTIMER], rg);
        if (done) {
            cx(X_REOPEN);
            return;
        }
    }
}

/* Every slot of group gi, in a fixed order. */
static unsigned group_slots(int gi, slot_t **out)
{
    unsigned n = 0;
    for (int i = 0; i < NKOBJ; i++)
        if (g_kobj[i].group == gi)
            for (int e = 0; e < g_kobj[i].nends; e++)
                out[n++] = kobj_end(i, e);
    for (int i = 0; i < NWORK; i++)
        if (g_work[i].group == gi)
            out[n++] = &g_work[i];
    for (int i = 0; i < NTIMER; i++)
        if (g_timer[i].group == gi)
            out[n++] = &g_timer[i];
    for (int i = 0; i < NWAIT; i++)
        if (g_wait[i].group == gi)
            out[n++] = &g_wait[i];
    return n;
}

/* Close group gi (test threads only) and, if recreate, make a new one with
 * fresh members in every slot. */
static void group_close(int gi, unsigned flags, bool recreate, rng_t *rg)
{
    gslot_t *gs = &g_gs[gi];
    slot_t *ss[2 * NKOBJ + NWORK + NTIMER + NWAIT];
    unsigned n = group_slots(gi, ss);
    pthread_rwlock_wrlock(&gs->lk);
    grp_t *grp = gs->cur;
    for (unsigned i = 0; i < n; i++) {
        slot_t *s = ss[i];
        pthread_rwlock_wrlock(&s->lk);
        if (s->state == ST_OPEN) {
            atomic_store(&s->inst->closed, true);
            if (flags & TACIO_POOL_CANCEL_PENDING)
                atomic_store(&s->inst->cp, true);
            slot_set_state(s, ST_CLOSING);
        } else if (s->state != ST_CLOSED) {
            TT_FAIL("group close: a member slot in state %d", s->state);
        }
        pthread_rwlock_unlock(&s->lk);
    }
    tacio_status_t st = tacio_pool_group_close(grp->g, flags, group_report, grp);
    if (st != TACIO_SUCCESS)
        TT_FAIL("tacio_pool_group_close(0x%x): %s", flags, tacio_status_name(st));
    grp->g = NULL; /* freed by the pool */
    if (flags & TACIO_POOL_WAIT) {
        unsigned rep = atomic_load(&grp->reports), mem = atomic_load(&grp->members);
        if (rep != mem)
            TT_FAIL("group close with TACIO_POOL_WAIT returned after %u reports; %u objects "
                    "were created in the group", rep, mem);
    }
    cx(flags & TACIO_POOL_WAIT ? X_GROUP_CLOSE_WAIT : X_GROUP_CLOSE_NOWAIT);
    for (unsigned i = 0; i < n; i++) {
        slot_t *s = ss[i];
        pthread_rwlock_wrlock(&s->lk);
        s->obj = NULL;
        s->h = NULL;
        s->inst = NULL;
        slot_set_state(s, recreate ? ST_OPENING : ST_CLOSED);
        pthread_rwlock_unlock(&s->lk);
    }
    gs->cur = NULL;
    if (recreate) {
        grp_t *ng = grp_new(gi);
        gs->cur = ng;
        for (int i = 0; i < NKOBJ; i++)
            if (g_kobj[i].group == gi)
                kobj_create(&g_kobj[i], ng, rg);
        for (unsigned i = 0; i < n; i++)
            if (ss[i]->kind != SK_IO)
                slot_create(ss[i], ng, rg);
    }
    pthread_rwlock_unlock(&gs->lk);
}

/* ---- actions --------------------------------------------------------------------- */

static slot_t *random_end(rng_t *rg)
{
    kobj_t *k = &g_kobj[rnd_below(rg, NKOBJ)];
    return &k->end[rnd_below(rg, (uint64_t)k->nends)];
}

static void cancel_random(rng_t *rg)
{
    /* Any record, at any time: cancel never waits and never frees. */
    rec_t *r = &g_rec[rnd_below(rg, NREC)];
    cx(X_CANCEL);
    tacio_status_t st = tacio_cancel(&r->op);
    if (st != TACIO_SUCCESS && st != TACIO_NOT_FOUND)
        TT_FAIL("tacio_cancel: %s", tacio_status_name(st));
}

/* Nearly every record is owed: cancel one that is, so they come back. */
static void cancel_some_owed(rng_t *rg)
{
    unsigned j = (unsigned)rnd_below(rg, NREC);
    for (unsigned q = 0; q < NREC; q++, j = (j + 1) % NREC)
        if ((atomic_load_explicit(&g_rec[j].state, memory_order_relaxed) & 3) == PH_OWED) {
            tacio_status_t st = tacio_cancel(&g_rec[j].op);
            if (st != TACIO_SUCCESS && st != TACIO_NOT_FOUND)
                TT_FAIL("tacio_cancel: %s", tacio_status_name(st));
            return;
        }
}

static void io_action(rng_t *rg)
{
    slot_t *s = random_end(rg);
    uint64_t tag;
    rec_t *r = rec_claim(rg, &tag);
    if (!r) {
        cx(X_NO_RECORD);
        cancel_some_owed(rg);
        return;
    }
    pthread_rwlock_rdlock(&s->lk);
    if (s->state == ST_OPEN) {
        io_start(r, tag, s->inst, s->h, rg);
    } else {
        rec_unclaim(r);
        cx(X_SKIP_CLOSED);
    }
    pthread_rwlock_unlock(&s->lk);
}

static void cancel_handle_random(rng_t *rg)
{
    slot_t *s = random_end(rg);
    pthread_rwlock_rdlock(&s->lk);
    if (s->state == ST_OPEN) {
        cx(X_CANCEL_HANDLE);
        tacio_status_t st = tacio_cancel_handle(s->h);
        if (st != TACIO_SUCCESS && st != TACIO_NOT_FOUND)
            TT_FAIL("tacio_cancel_handle on an open I/O object: %s", tacio_status_name(st));
    }
    pthread_rwlock_unlock(&s->lk);
}

static void work_submit_random(rng_t *rg)
{
    slot_t *s = &g_work[rnd_below(rg, NWORK)];
    pthread_rwlock_rdlock(&s->lk);
    if (s->state == ST_OPEN) {
        count_op();
        tacio_status_t st = tacio_pool_work_submit(s->obj);
        if (st != TACIO_SUCCESS)
            TT_FAIL("tacio_pool_work_submit on an open work object: %s", tacio_status_name(st));
        atomic_fetch_add_explicit(&s->inst->submits, 1, memory_order_relaxed);
        cx(X_WORK_SUBMIT);
    } else {
        cx(X_SKIP_CLOSED);
    }
    pthread_rwlock_unlock(&s->lk);
}

static void pool_submit(void)
{
    count_op();
    cnt(&C.call_submits);
    tacio_status_t st = tacio_pool_submit(g_pool, call_cb, &C);
    if (st != TACIO_SUCCESS)
        TT_FAIL("tacio_pool_submit: %s", tacio_status_name(st));
    cx(X_POOL_SUBMIT);
}

static void timer_action(rng_t *rg, bool cancel)
{
    slot_t *s = &g_timer[rnd_below(rg, NTIMER)];
    pthread_rwlock_rdlock(&s->lk);
    if (s->state == ST_OPEN) {
        if (cancel)
            timer_cancel_m(s->inst, s->obj);
        else
            timer_set_m(s->inst, s->obj, rg);
    } else {
        cx(X_SKIP_CLOSED);
    }
    pthread_rwlock_unlock(&s->lk);
}

static void wait_action(rng_t *rg, unsigned what)
{
    slot_t *s = &g_wait[rnd_below(rg, NWAIT)];
    pthread_rwlock_rdlock(&s->lk);
    if (s->state == ST_OPEN) {
        inst_t *in = s->inst;
        if (what == 0) {
            wait_set_m(in, s->obj, rg);
        } else if (what == 1) {
            wait_cancel_m(in, s->obj);
        } else {
            cx(X_WAIT_TOGGLE);
            if (rnd_below(rg, 2)) {
                ssize_t w = write(in->wfd[1], "w", 1);
                (void)w; /* full: fine */
            } else {
                drain(in->wfd[0]);
            }
        }
    } else {
        cx(X_SKIP_CLOSED);
    }
    pthread_rwlock_unlock(&s->lk);
}

static unsigned close_flags(rng_t *rg, bool in_cb)
{
    unsigned f = rnd_below(rg, 2) ? TACIO_POOL_CANCEL_PENDING : 0;
    if (!in_cb && rnd_below(rg, 2))
        f |= TACIO_POOL_WAIT;
    return f;
}

static void close_action(rng_t *rg, int kind, bool in_cb)
{
    unsigned fl = close_flags(rg, in_cb);
    switch (kind) {
    case SK_IO: {
        kobj_t *k = &g_kobj[rnd_below(rg, NKOBJ)];
        if (k->nends == 2 && rnd_below(rg, 5) < 3) {
            slot_close(&k->end[rnd_below(rg, 2)], NULL, fl, in_cb);
        } else {
            for (int e = 0; e < k->nends; e++)
                slot_close(&k->end[e], NULL, fl, in_cb);
        }
        break;
    }
    case SK_WORK:
        slot_close(&g_work[rnd_below(rg, NWORK)], NULL, fl, in_cb);
        break;
    case SK_TIMER:
        slot_close(&g_timer[rnd_below(rg, NTIMER)], NULL, fl, in_cb);
        break;
    default:
        slot_close(&g_wait[rnd_below(rg, NWAIT)], NULL, fl, in_cb);
        break;
    }
}

static void do_action(rng_t *rg, bool in_cb)
{
    unsigned p = (unsigned)rnd_below(rg, 1000);
    if (p < 440)
        io_action(rg);
    else if (p < 520)
        cancel_random(rg);
    else if (p < 530)
        cancel_handle_random(rg);
    else if (p < 660)
        work_submit_random(rg);
    else if (p < 680)
        pool_submit();
    else if (p < 750)
        timer_action(rg, false);
    else if (p < 790)
        timer_action(rg, true);
    else if (p < 830)
        wait_action(rg, 0);
    else if (p < 850)
        wait_action(rg, 1);
    else if (p < 880)
        wait_action(rg, 2);
    else if (p < 884)
        close_action(rg, SK_IO, in_cb);
    else if (p < 886)
        close_action(rg, SK_WORK, in_cb);
    else if (p < 889)
        close_action(rg, SK_TIMER, in_cb);
    else if (p < 891)
        close_action(rg, SK_WAIT, in_cb);
    else if (in_cb)
        io_action(rg);
    else if (p < 905)
        reopen_some(rg);
    else if (p == 905 && rnd_below(rg, 8) == 0)
        group_close((int)rnd_below(rg, NGROUP),
                    (rnd_below(rg, 5) || !g_nowait_groups ? TACIO_POOL_WAIT : 0) |
                        (rnd_below(rg, 2) ? TACIO_POOL_CANCEL_PENDING : 0),
                    true, rg);
    else
        io_action(rg);
}

/* ---- test threads ---------------------------------------------------------------- */

typedef struct worker {
    pthread_t t;
    _Atomic int running, finished;
    uint64_t seed, life;
    bool burst;
} worker_t;

static worker_t g_workers[MAX_WORKERS], g_bursts[NBURST];

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    tl_is_test = true;
    rng_t rg = { w->seed | 1 };
    for (uint64_t k = 0; k < w->life && budget_left(); k++) {
        uint64_t until = atomic_load_explicit(&g_lull_until, memory_order_relaxed);
        uint64_t now = tt_now_ns();
        if (now < until)
            tt_sleep_ms((unsigned)((until - now) / 1000000u) + 1);
        if (w->burst)
            io_action(&rg);
        else
            do_action(&rg, false);
    }
    cx(w->burst ? X_BURST : X_THREAD_EXIT);
    /* release: the supervisor joins after seeing it */
    atomic_store_explicit(&w->finished, 1, memory_order_release);
    return NULL; /* what it started goes on (thread-agnostic I/O) */
}

static void spawn(worker_t *w, bool burst)
{
    w->seed = tt_rand();
    w->burst = burst;
    w->life = burst ? 1 + tt_rand_below(16) : 100 + tt_rand_below(5000);
    atomic_store(&w->finished, 0);
    atomic_store(&w->running, 1);
    ASSERT_EQ_INT(pthread_create(&w->t, NULL, worker_main, w), 0);
}

/* Join a finished thread; true if the slot is free now. */
static bool reap(worker_t *w)
{
    if (!atomic_load(&w->running))
        return true;
    if (!atomic_load_explicit(&w->finished, memory_order_acquire))
        return false;
    pthread_join(w->t, NULL);
    atomic_store(&w->running, 0);
    return true;
}

/* ---- the case -------------------------------------------------------------------- */

static unsigned owed_records(unsigned *first)
{
    unsigned n = 0;
    for (unsigned i = 0; i < NREC; i++)
        if (atomic_load_explicit(&g_rec[i].state, memory_order_acquire)) {
            if (!n && first)
                *first = i;
            n++;
        }
    return n;
}

static tacio_pool_info_t pool_info(void)
{
    tacio_pool_info_t info;
    ASSERT_OK(tacio_pool_info(g_pool, &info));
    return info;
}

static void wait_runs(inst_t *in, uint64_t before, const char *what)
{
    uint64_t end = tt_now_ns() + 10ull * 1000000000ull * mult();
    while (atomic_load(&in->runs) <= before) {
        if (tt_now_ns() > end)
            TT_FAIL("liveness: %s %p did not run within 10 s", what, in->obj);
        tt_sleep_ms(1);
    }
}

/* After the random phase: every object still open still works. */
static void liveness(rng_t *rg)
{
    for (int i = 0; i < NTIMER; i++) {
        slot_t *s = &g_timer[i];
        pthread_rwlock_rdlock(&s->lk);
        if (s->state == ST_OPEN) {
            inst_t *in = s->inst;
            timer_cancel_m(in, s->obj);
            uint64_t before = atomic_load(&in->runs);
            pthread_mutex_lock(&in->m);
            /* Under TACIO_FAULTS enomem a set may be refused (nothing
             * armed): the program's answer is to set it again. */
            tacio_status_t st;
            while ((st = tacio_pool_timer_set(s->obj, 100000, 0)) == TACIO_NO_MEMORY)
                ;
            ASSERT_OK(st);
            atomic_fetch_add(&in->sets, 1);
            in->model = M_MAYBE;
            in->cancel_flag = false;
            pthread_mutex_unlock(&in->m);
            wait_runs(in, before, "one-shot timer set after the random phase");
        }
        pthread_rwlock_unlock(&s->lk);
    }
    for (int i = 0; i < NWORK; i++) {
        slot_t *s = &g_work[i];
        pthread_rwlock_rdlock(&s->lk);
        if (s->state == ST_OPEN) {
            inst_t *in = s->inst;
            uint64_t before = atomic_load(&in->runs);
            ASSERT_OK(tacio_pool_work_submit(s->obj));
            atomic_fetch_add(&in->submits, 1);
            wait_runs(in, before, "work submitted after the random phase");
        }
        pthread_rwlock_unlock(&s->lk);
    }
    for (int i = 0; i < NWAIT; i++) {
        slot_t *s = &g_wait[i];
        pthread_rwlock_rdlock(&s->lk);
        if (s->state == ST_OPEN) {
            inst_t *in = s->inst;
            wait_cancel_m(in, s->obj);
            uint64_t before = atomic_load(&in->runs);
            pthread_mutex_lock(&in->m);
            tacio_status_t st;
            while ((st = tacio_pool_wait_set(s->obj, in->wfd[0], TACIO_POOL_WRITABLE,
                                             TACIO_INFINITE)) == TACIO_NO_MEMORY)
                ;
            ASSERT_OK(st);
            atomic_fetch_add(&in->sets, 1);
            in->model = M_MAYBE;
            in->cancel_flag = false;
            pthread_mutex_unlock(&in->m);
            wait_runs(in, before, "wait for writable set after the random phase");
        }
        pthread_rwlock_unlock(&s->lk);
    }
    (void)rg;
}

static void init_slot(slot_t *s, int kind, int idx, int group, int etype)
{
    s->kind = kind;
    s->idx = idx;
    s->group = group;
    s->etype = etype;
    rwlock_init(&s->lk);
    slot_set_state(s, ST_OPENING);
}

static int group_of(int i)
{
    return i % 3 == 0 ? -1 : i % 3 - 1;
}

static uint64_t sum_x(const _Atomic uint64_t *a, unsigned n)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < n; i++)
        t += atomic_load(&a[i]);
    return t;
}

TT_CASE(pool_stress_random_races)
{
    g_total = env_u64("TACIO_POOL_STRESS_OPS", DEFAULT_OPS);
    unsigned nworkers = (unsigned)env_u64("TACIO_POOL_STRESS_THREADS", 4);
    const char *nw = getenv("TACIO_POOL_STRESS_NOWAIT_GROUPS");
    g_nowait_groups = !(nw && strcmp(nw, "0") == 0);
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    tl_is_test = true;
    rng_t rg = { tt_rand() | 1 };
    uint64_t t0 = tt_now_ns();
    /* A pipe write whose reader was just closed raises SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    tacio_pool_options_t o = { .min_threads = POOL_MIN, .max_threads = POOL_MAX,
                               .concurrency = POOL_CONC, .idle_ms = POOL_IDLE_MS,
                               .backend = tt_backend() };
    tacio_status_t cst = tacio_pool_create(&g_pool, &o);
    if (cst == TACIO_NOT_SUPPORTED)
        TT_SKIP("%s", tacio_last_error());
    ASSERT_OK(cst);
    g_rec = calloc(NREC, sizeof *g_rec);
    ASSERT_TRUE(g_rec != NULL);

    for (int gi = 0; gi < NGROUP; gi++) {
        rwlock_init(&g_gs[gi].lk);
        g_gs[gi].cur = grp_new(gi);
    }
    static const int etypes[K_TYPES][2] = {
        { E_STREAM, E_STREAM }, { E_DGRAM, E_DGRAM }, { E_PIPE_R, E_PIPE_W }, { E_FILE, -1 }
    };
    for (int i = 0; i < NKOBJ; i++) {
        kobj_t *k = &g_kobj[i];
        k->type = i % K_TYPES;
        k->group = group_of(i);
        k->nends = k->type == K_FILE ? 1 : 2;
        for (int e = 0; e < k->nends; e++)
            init_slot(&k->end[e], SK_IO, i, k->group, etypes[k->type][e]);
        kobj_create(k, k->group >= 0 ? g_gs[k->group].cur : NULL, &rg);
    }
    slot_t *arrays[3] = { g_work, g_timer, g_wait };
    const int counts[3] = { NWORK, NTIMER, NWAIT };
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < counts[a]; i++) {
            slot_t *s = &arrays[a][i];
            init_slot(s, SK_WORK + a, i, group_of(i + 1 + a), -1);
            slot_create(s, s->group >= 0 ? g_gs[s->group].cur : NULL, &rg);
        }

    for (unsigned i = 0; i < nworkers; i++)
        spawn(&g_workers[i], false);

    /* Supervise: replace exited threads, start bursts, report progress,
     * watch the pool's size, watch for a stall. */
    tt_context("random phase");
    uint64_t step = g_total / 10 ? g_total / 10 : 1, next_report = step, last_ops = 0;
    uint64_t last_change = tt_now_ns(), stall_ns = 60ull * 1000000000ull * mult();
    unsigned tick = 0, prev_threads = POOL_MIN, shrinks = 0, grows = 0, max_seen = 0;
    for (;;) {
        unsigned alive = 0;
        bool more = budget_left();
        for (unsigned i = 0; i < nworkers; i++) {
            if (reap(&g_workers[i]) && more)
                spawn(&g_workers[i], false);
            alive += (unsigned)atomic_load(&g_workers[i].running);
        }
        if (tick % 250 == 249) /* about every 0.5 s, for 3 x idle_ms */
            atomic_store(&g_lull_until, tt_now_ns() + 3ull * POOL_IDLE_MS * 1000000u);
        if (++tick % 3 == 0 && !in_lull()) {
            worker_t *b = &g_bursts[tick / 3 % NBURST];
            if (reap(b) && more)
                spawn(b, true);
        }
        for (unsigned i = 0; i < NBURST; i++)
            if (!reap(&g_bursts[i]))
                alive++;
        tacio_pool_info_t info = pool_info();
        if (info.threads < prev_threads)
            shrinks++;
        if (info.threads > prev_threads)
            grows++;
        prev_threads = info.threads;
        if (info.threads > max_seen)
            max_seen = info.threads;
        uint64_t ops = atomic_load(&g_ops);
        uint64_t done = ops < g_total ? ops : g_total;
        if (done >= next_report) {
            fprintf(stderr, "# pool-stress: %3llu%% %llu ops, %.1f s, %u records owed, "
                    "pool threads %u (peak %u), %llu callbacks, %llu objects made, %llu "
                    "thread exits\n", (unsigned long long)(done * 100 / g_total),
                    (unsigned long long)done, (tt_now_ns() - t0) / 1e9, owed_records(NULL),
                    info.threads, info.peak_threads, (unsigned long long)info.callbacks,
                    (unsigned long long)atomic_load(&g_ninst),
                    (unsigned long long)(atomic_load(&C.x[X_THREAD_EXIT]) +
                                         atomic_load(&C.x[X_BURST])));
            next_report += step;
        }
        if (ops != last_ops) {
            last_ops = ops;
            last_change = tt_now_ns();
        } else if (tt_now_ns() - last_change > stall_ns) {
            TT_FAIL("no progress for %llu s at %llu ops (%u test threads alive, %u records "
                    "owed, %u pool threads, %u idle)",
                    (unsigned long long)(stall_ns / 1000000000ull), (unsigned long long)ops,
                    alive, owed_records(NULL), info.threads, info.idle);
        }
        if (!more && !alive)
            break;
        tt_sleep_ms(2);
    }
    atomic_store(&g_stop, true);
    uint64_t t_ops = tt_now_ns();

    tt_context("liveness after the random phase");
    liveness(&rg);

    /* Close everything: groups with WAIT and a report, the rest with WAIT.
     * Objects closed without WAIT earlier finish on their own. */
    tt_context("final close");
    for (int gi = 0; gi < NGROUP; gi++)
        group_close(gi, TACIO_POOL_WAIT | (rnd_below(&rg, 2) ? TACIO_POOL_CANCEL_PENDING : 0),
                    false, &rg);
    for (int i = 0; i < NKOBJ; i++)
        for (int e = 0; e < g_kobj[i].nends; e++)
            slot_close(kobj_end(i, e), NULL, TACIO_POOL_WAIT, false);
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < counts[a]; i++)
            slot_close(&arrays[a][i], NULL,
                       TACIO_POOL_WAIT | (rnd_below(&rg, 2) ? TACIO_POOL_CANCEL_PENDING : 0),
                       false);
    uint64_t deadline = tt_now_ns() + 30ull * 1000000000ull * mult();
    tacio_pool_info_t info;
    for (;;) {
        info = pool_info();
        if (info.objects == 0 && atomic_load(&C.calls) == atomic_load(&C.call_submits))
            break;
        if (tt_now_ns() > deadline) {
            unsigned first = 0, n = owed_records(&first);
            TT_FAIL("after closing everything: %u pool objects left, %llu of %llu "
                    "tacio_pool_submit calls ran, %u records owed a callback (first %u)",
                    info.objects, (unsigned long long)atomic_load(&C.calls),
                    (unsigned long long)atomic_load(&C.call_submits), n, first);
        }
        tt_sleep_ms(2);
    }
    uint64_t t_quiet = tt_now_ns();

    tt_context("final accounting");
    unsigned first = 0, owed = owed_records(&first);
    if (owed)
        TT_FAIL("%u records still owed a callback after every object finished (first: record "
                "%u, %s)", owed, first, a_name[atomic_load(&g_rec[first].kind) % A_IO]);
    for (unsigned i = 0; i < NREC; i++) {
        rec_t *r = &g_rec[i];
        if (atomic_load(&r->pend) != atomic_load(&r->calls))
            TT_FAIL("record %u: %u starts returned PENDING, %u callbacks", i,
                    atomic_load(&r->pend), atomic_load(&r->calls));
        /* Every record is idle for the core too. */
        tacio_status_t st = tacio_cancel(&r->op);
        if (st != TACIO_NOT_FOUND)
            TT_FAIL("record %u: tacio_cancel on an idle record returned %s", i,
                    tacio_status_name(st));
    }
    uint64_t cb_total = atomic_load(&C.calls), canc_lo = 0, canc_hi = 0;
    uint64_t work_runs = 0, work_submits = 0, work_cancelled = 0, timer_runs = 0;
    uint64_t wait_runs_n = 0, io_calls = 0;
    unsigned ninst = 0;
    for (inst_t *in = g_insts; in; in = in->next) {
        ninst++;
        if (!atomic_load(&in->closed))
            TT_FAIL("%s object %p never closed", sk_name[in->kind], in->obj);
        if (in->grp && !atomic_load(&in->reported))
            TT_FAIL("%s object %p of a closed group was never reported", sk_name[in->kind],
                    in->obj);
        if (!atomic_load(&in->finished))
            inst_done(in, "the end of the case", false);
        else
            check_done(in, "the end of the case");
        uint64_t runs = atomic_load(&in->runs);
        bool rep = atomic_load(&in->reported) != 0;
        switch (in->kind) {
        case SK_IO:
            io_calls += atomic_load(&in->calls);
            cb_total += atomic_load(&in->calls);
            break;
        case SK_WORK:
            work_runs += runs;
            work_submits += atomic_load(&in->submits);
            cb_total += runs;
            if (rep) {
                canc_lo += atomic_load(&in->rep_cancelled);
                canc_hi += atomic_load(&in->rep_cancelled);
                work_cancelled += atomic_load(&in->rep_cancelled);
            } else {
                canc_lo += atomic_load(&in->submits) - runs;
                canc_hi += atomic_load(&in->submits) - runs;
                work_cancelled += atomic_load(&in->submits) - runs;
            }
            break;
        default:
            if (in->kind == SK_TIMER)
                timer_runs += runs;
            else
                wait_runs_n += runs;
            cb_total += runs;
            if (rep) {
                canc_lo += atomic_load(&in->rep_cancelled);
                canc_hi += atomic_load(&in->rep_cancelled);
            } else {
                canc_lo += atomic_load(&in->cancels);
                canc_hi += atomic_load(&in->cancels) + 1;
            }
            break;
        }
    }
    unsigned ngrp = 0;
    for (grp_t *g = g_grps; g; g = g->next) {
        ngrp++;
        if (atomic_load(&g->reports) != atomic_load(&g->members))
            TT_FAIL("group %p: %u reports for %u members", (void *)g, atomic_load(&g->reports),
                    atomic_load(&g->members));
    }
    /* The pool counts a callback when it has returned: wait for the last. */
    deadline = tt_now_ns() + 10ull * 1000000000ull * mult();
    while ((info = pool_info()).callbacks < cb_total && tt_now_ns() < deadline)
        tt_sleep_ms(1);
    if (info.callbacks != cb_total)
        TT_FAIL("the pool counted %llu callbacks, the test %llu", (unsigned long long)info.callbacks,
                (unsigned long long)cb_total);
    if (info.cancelled < canc_lo || info.cancelled > canc_hi)
        TT_FAIL("the pool counted %llu cancelled callbacks; the test's accounting allows "
                "%llu..%llu", (unsigned long long)info.cancelled, (unsigned long long)canc_lo,
                (unsigned long long)canc_hi);
    tacio_stats_t ps;
    ASSERT_OK(tacio_port_stats(tacio_pool_port(g_pool), &ps));
    ASSERT_EQ_U64(ps.dropped_duplicates, 0);
    ASSERT_EQ_INT(info.objects, 0);

    /* The pool grew past min_threads under blocking callbacks and shrinks
     * back once idle. */
    tt_context("pool shrinks back");
    deadline = tt_now_ns() + 5ull * 1000000000ull * mult();
    while ((info = pool_info()).threads > POOL_MIN && tt_now_ns() < deadline)
        tt_sleep_ms(5);
    ASSERT_EQ_INT(info.threads, POOL_MIN);
    ASSERT_LE_INT(info.peak_threads, POOL_MAX);
    if (atomic_load(&C.x[X_BLOCKING]) >= 1000)
        ASSERT_GE_INT(info.peak_threads, POOL_MIN + 1);

    tt_context("pool close");
    ASSERT_OK(tacio_pool_close(g_pool));
    g_pool = NULL;
    tt_context("%s", "");

    /* ---- summary ---- */
    uint64_t starts = sum_x(C.started, A_IO), pend = sum_x(C.pending, A_IO);
    uint64_t counted = starts + atomic_load(&C.x[X_WORK_SUBMIT]) +
                       atomic_load(&C.x[X_POOL_SUBMIT]) + atomic_load(&C.x[X_TIMER_SET]) +
                       atomic_load(&C.x[X_WAIT_SET]);
    fprintf(stderr, "# pool-stress: %llu ops (%llu accepted: starts+submits+sets) in %.1f s "
            "(+%.1f s to close and drain), %u test threads, seed %llu; %llu I/O starts (%llu "
            "PENDING, %llu called back), %llu work runs of %llu submits (%llu cancelled), "
            "%llu timer runs, %llu wait runs, %llu calls; %u objects in %u groups; pool peak "
            "%u threads (max seen %u, %u grows, %u shrinks seen); port: reissued_after_exit "
            "%llu, dropped_stale %llu, dropped_duplicates %llu\n",
            (unsigned long long)atomic_load(&g_ops), (unsigned long long)counted,
            (t_ops - t0) / 1e9, (t_quiet - t_ops) / 1e9, nworkers,
            (unsigned long long)tt_seed(), (unsigned long long)starts, (unsigned long long)pend,
            (unsigned long long)io_calls, (unsigned long long)work_runs,
            (unsigned long long)work_submits, (unsigned long long)work_cancelled,
            (unsigned long long)timer_runs, (unsigned long long)wait_runs_n,
            (unsigned long long)atomic_load(&C.calls), ninst, ngrp, info.peak_threads, max_seen,
            grows, shrinks, (unsigned long long)ps.reissued_after_exit,
            (unsigned long long)ps.dropped_stale, (unsigned long long)ps.dropped_duplicates);
    fprintf(stderr, "# pool-stress: actions:");
    for (unsigned x = 0; x < X_COUNT; x++)
        if (atomic_load(&C.x[x]))
            fprintf(stderr, " %s=%llu", x_name[x], (unsigned long long)atomic_load(&C.x[x]));
    fprintf(stderr, "\n");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(stderr, "# pool-stress: %s (started/pending/sync/called back;",
                pass ? "statuses called back" : "I/O starts");
        for (unsigned s = 0; s < NST; s++)
            fprintf(stderr, "%s%s", s ? "/" : " ",
                    s < NKST ? tacio_status_name(k_status[s]) + 6 : "other");
        fprintf(stderr, "):");
        for (unsigned k = 0; k < A_IO; k++) {
            if (!atomic_load(&C.started[k]))
                continue;
            fprintf(stderr, " %s %llu/%llu/%llu/%llu [", a_name[k],
                    (unsigned long long)atomic_load(&C.started[k]),
                    (unsigned long long)atomic_load(&C.pending[k]),
                    (unsigned long long)atomic_load(&C.sync[k]),
                    (unsigned long long)atomic_load(&C.called[k]));
            for (unsigned s = 0; s < NST; s++)
                fprintf(stderr, "%s%llu", s ? "/" : "",
                        (unsigned long long)atomic_load(pass ? &C.cb_hist[k][s]
                                                             : &C.sync_hist[k][s]));
            fprintf(stderr, "]");
        }
        if (pass == 0)
            fprintf(stderr, " (brackets: statuses returned by the starts that did not pend)");
        fprintf(stderr, "\n");
    }
    uint32_t other = atomic_load(&C.other_status);
    if (other)
        fprintf(stderr, "# pool-stress: e.g. other status: %s\n", tacio_status_name(other));

    /* Free the test's bookkeeping. */
    while (g_insts) {
        inst_t *in = g_insts;
        g_insts = in->next;
        close_wfds(in);
        pthread_mutex_destroy(&in->m);
        free(in);
    }
    while (g_grps) {
        grp_t *g = g_grps;
        g_grps = g->next;
        free(g);
    }
    for (int i = 0; i < NKOBJ; i++)
        for (int e = 0; e < g_kobj[i].nends; e++)
            pthread_rwlock_destroy(&g_kobj[i].end[e].lk);
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < counts[a]; i++)
            pthread_rwlock_destroy(&arrays[a][i].lk);
    for (int gi = 0; gi < NGROUP; gi++)
        pthread_rwlock_destroy(&g_gs[gi].lk);
    free(g_rec);
    g_rec = NULL;
}

static tt_case_t tt_cases[] = {
    TT_ENTRY(pool_stress_random_races, 300),
};

/* The runner's deadline grows with TACIO_POOL_STRESS_OPS (the case has its
 * own stall watchdog, which says more than a kill would). */
__attribute__((constructor)) static void scale_timeout(void)
{
    uint64_t ops = env_u64("TACIO_POOL_STRESS_OPS", DEFAULT_OPS);
    uint64_t t = 120 + ops / 5000;
    tt_cases[0].timeout_s = (unsigned)(t > 300 ? t : 300);
}

TT_MAIN()
