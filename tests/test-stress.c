/* tests/test-stress.c - random operations from many threads, counted.
 *
 * N worker threads (TACIO_STRESS_THREADS, default 4) issue random operations
 * against a pool of real kernel objects: Unix stream and datagram
 * socketpairs (the datagram ends autobound, so sendto/recvfrom have
 * addresses), pipes and temp files. The mix: recv, send, recvfrom, sendto,
 * read, write (pipes and files, at offsets), fsync, timers, posted packets,
 * cancels of the worker's own records, cancel of whole handles, closes of
 * objects (and re-opening new ones in their place), polls of the port from a
 * worker (so its next starts are batched), and thread exits: a worker lives
 * a random number of operations, then exits with whatever it has pending,
 * and a new thread takes over its records. Two dedicated threads dequeue.
 *
 * Every record counts its starts that returned PENDING and its deliveries;
 * a token set before the start call and cleared by the one delivery (or by
 * a non-PENDING return) catches a second delivery, or a delivery for a
 * synchronous start, the moment it happens. At the end all objects are
 * closed, the port quiesces, and then: every PENDING start was delivered
 * exactly once, every post once, tacio_port_stats().dropped_duplicates is 0,
 * every record is idle (tacio_cancel says NOT_FOUND and a timer starts on
 * it), the port close discards nothing, and no fd is left (framework).
 *
 * TACIO_STRESS_OPS (default 1000000; 200000 in TSan/ASan builds) counts
 * worker operations (every start, cancel, close, poll, post). Progress goes
 * to stderr every 10%, then one summary line. TACIO_SEED replays the random
 * choices (thread timing differs from run to run); the seed is printed with
 * every failure.
 */
#include "tacio-test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#if defined(TACIO_TSAN) || defined(TACIO_ASAN)
#define DEFAULT_OPS 200000ull
#else
#define DEFAULT_OPS 1000000ull
#endif

#define MAX_WORKERS 16
#define RECS_PER_WORKER 48
#define NOBJ 24
#define BUF 4096
#define FILE_SIZE 65536
#define POST_KEY 0x5057ull
#define TIMER_KEY 0x71ull
#define FINAL_KEY 0xF1ull

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    unsigned long long v = strtoull(s, NULL, 0);
    return v ? (uint64_t)v : dflt;
}

/* ---- per-thread randomness (seeded from tt_rand, so a seed replays) -------- */

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

/* ---- what is counted ------------------------------------------------------------ */

enum {
    A_RECV, A_SEND, A_RECVFROM, A_SENDTO, A_PREAD, A_PWRITE, A_FREAD, A_FWRITE, A_FSYNC,
    A_TIMER, A_POST, A_CANCEL, A_CANCEL_HANDLE, A_CLOSE, A_POLL, A_SKIP, A_COUNT
};
static const char *const a_name[A_COUNT] = {
    "recv", "send", "recvfrom", "sendto", "pipe_read", "pipe_write", "file_read",
    "file_write", "fsync", "timer", "post", "cancel", "cancel_handle", "close", "poll", "skip"
};

typedef struct counters {
    _Atomic uint64_t started[A_COUNT];   /* calls made */
    _Atomic uint64_t pending[A_COUNT];   /* starts that returned PENDING */
    _Atomic uint64_t sync[A_COUNT];      /* starts that returned anything else */
    _Atomic uint64_t delivered[A_COUNT];
    _Atomic uint64_t cancelled[A_COUNT]; /* CANCELLED, delivered or returned */
    _Atomic uint64_t posts_ok, posts_seen;
    _Atomic uint64_t thread_exits, reopens, worker_dequeued, no_free_record;
} counters_t;

static counters_t C;

static void cnt(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- records ------------------------------------------------------------------- */

typedef struct rec {
    tacio_op_t op;
    _Atomic int token;          /* 1 from arm to its delivery (or non-PENDING return) */
    _Atomic uint8_t kind;       /* A_* of the current or last start */
    _Atomic uint32_t pending, delivered;
    tacio_addr_t addr;
    unsigned char buf[BUF];
} rec_t;

static rec_t *g_rec;            /* MAX_WORKERS * RECS_PER_WORKER */
static unsigned g_nrec;

static unsigned rec_index(const rec_t *r)
{
    return (unsigned)(r - g_rec);
}

static rec_t *rec_of(tacio_op_t *op)
{
    uintptr_t a = (uintptr_t)op, base = (uintptr_t)g_rec;
    if (a < base || a >= base + (uintptr_t)g_nrec * sizeof(rec_t) ||
        (a - base) % sizeof(rec_t) != offsetof(rec_t, op))
        TT_FAIL("delivery for a record nobody started (%p)", (void *)op);
    return (rec_t *)(void *)((char *)op - offsetof(rec_t, op));
}

static void arm(rec_t *r, unsigned kind)
{
    atomic_store_explicit(&r->kind, (uint8_t)kind, memory_order_relaxed);
    if (atomic_exchange_explicit(&r->token, 1, memory_order_relaxed) != 0)
        TT_FAIL("record %u reused while a delivery is owed", rec_index(r));
}

/* After a start returned st. */
static void started(rec_t *r, unsigned kind, tacio_status_t st)
{
    cnt(&C.started[kind]);
    if (st == TACIO_PENDING) {
        atomic_fetch_add_explicit(&r->pending, 1, memory_order_relaxed);
        cnt(&C.pending[kind]);
        return;
    }
    cnt(&C.sync[kind]);
    if (st == TACIO_CANCELLED)
        cnt(&C.cancelled[kind]);
    if (st == TACIO_OP_IN_USE)
        TT_FAIL("record %u: start (%s) returned OP_IN_USE on a record that was delivered",
                rec_index(r), a_name[kind]);
    /* acq_rel: pairs with deliver(); 0 here means this non-PENDING start was
     * delivered as well. */
    if (atomic_exchange_explicit(&r->token, 0, memory_order_acq_rel) != 1)
        TT_FAIL("record %u: %s returned %s (no completion may follow) and was delivered",
                rec_index(r), a_name[kind], tacio_status_name(st));
}

/* A status histogram of deliveries: kind x a few statuses, plus "other". */
enum { S_SUCCESS, S_CANCELLED, S_EOF, S_OVERFLOW, S_OTHER, S_COUNT };
static _Atomic uint64_t g_hist[A_COUNT][S_COUNT];
static _Atomic uint32_t g_other_status;   /* one example of S_OTHER */

static void deliver(const tacio_entry_t *e, const char *who)
{
    if (e->kind == TACIO_ENTRY_POSTED) {
        if (e->key != POST_KEY || e->op != NULL)
            TT_FAIL("%s: posted packet with key %llu: not ours", who,
                    (unsigned long long)e->key);
        cnt(&C.posts_seen);
        return;
    }
    if (e->kind != TACIO_ENTRY_OP)
        TT_FAIL("%s: entry of kind %u", who, e->kind);
    rec_t *r = rec_of(e->op);
    unsigned kind = atomic_load_explicit(&r->kind, memory_order_relaxed);
    if (e->status == TACIO_PENDING || e->status == TACIO_OP_IN_USE)
        TT_FAIL("%s: record %u (%s) delivered with %s", who, rec_index(r), a_name[kind],
                tacio_status_name(e->status));
    unsigned s = e->status == TACIO_SUCCESS        ? S_SUCCESS
                 : e->status == TACIO_CANCELLED       ? S_CANCELLED
                 : e->status == TACIO_END_OF_FILE     ? S_EOF
                 : e->status == TACIO_BUFFER_OVERFLOW ? S_OVERFLOW
                                                      : S_OTHER;
    if (s == S_OTHER)
        atomic_store_explicit(&g_other_status, e->status, memory_order_relaxed);
    cnt(&g_hist[kind][s]);
    if (s == S_CANCELLED)
        cnt(&C.cancelled[kind]);
    cnt(&C.delivered[kind]);
    atomic_fetch_add_explicit(&r->delivered, 1, memory_order_relaxed);
    /* release: our reads of the record happen before its reuse. */
    if (atomic_exchange_explicit(&r->token, 0, memory_order_release) != 1)
        TT_FAIL("%s: record %u (%s) delivered (%s, %llu bytes) with no delivery owed: a "
                "second completion, or one for a start that did not return PENDING", who,
                rec_index(r), a_name[kind], tacio_status_name(e->status),
                (unsigned long long)e->bytes);
}

/* ---- kernel objects ------------------------------------------------------------ */

enum { O_STREAM, O_DGRAM, O_PIPE, O_FILE, O_TYPES };
enum { OBJ_OPEN, OBJ_CLOSING, OBJ_CLOSED };

typedef struct obj {
    int type;
    _Atomic int state;
    _Atomic(tacio_handle_t *) h[2];   /* pipe: read end, write end; file: h[0] */
    tacio_addr_t addr[2];             /* datagram ends' names */
} obj_t;

static tacio_port_t *g_port;
static obj_t g_obj[NOBJ];
/* Handle memory is reused by tacio_handle_open. Starts hold this for read,
 * opens for write, so a pointer read from an object while it was open can
 * be used until the read lock is dropped even if the object is closed
 * meanwhile (the call then answers FILE_CLOSED or INVALID_HANDLE). */
static pthread_rwlock_t g_reuse;

static void autobind(int fd, tacio_addr_t *a)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    memset(a, 0, sizeof *a);
    if (bind(fd, (struct sockaddr *)&un, sizeof(sa_family_t)) != 0)
        TT_FAIL("autobind: %s", strerror(errno));
    a->len = sizeof a->u;
    if (getsockname(fd, &a->u.sa, &a->len) != 0)
        TT_FAIL("getsockname: %s", strerror(errno));
}

/* Caller holds g_reuse for write (or is alone). */
static void obj_open(obj_t *o, int type)
{
    int fds[2] = { -1, -1 };
    o->type = type;
    switch (type) {
    case O_STREAM:
        tt_socketpair(SOCK_STREAM, fds);
        break;
    case O_DGRAM:
        tt_socketpair(SOCK_DGRAM, fds);
        autobind(fds[0], &o->addr[0]);
        autobind(fds[1], &o->addr[1]);
        break;
    case O_PIPE:
        tt_pipe(fds);
        break;
    default:
        fds[0] = tt_tmpfile(FILE_SIZE);
        break;
    }
    for (int i = 0; i < 2; i++)
        atomic_store_explicit(&o->h[i], fds[i] >= 0 ? tt_handle(g_port, fds[i], (uint64_t)type, 0)
                                                    : NULL,
                              memory_order_relaxed);
    atomic_store_explicit(&o->state, OBJ_OPEN, memory_order_release);
}

/* One closer wins the object; the others' starts on it meanwhile get
 * FILE_CLOSED / INVALID_HANDLE, or PENDING and then CANCELLED. */
static int obj_close(obj_t *o)
{
    int open = OBJ_OPEN;
    if (!atomic_compare_exchange_strong(&o->state, &open, OBJ_CLOSING))
        return 0;
    for (int i = 0; i < 2; i++) {
        tacio_handle_t *h = atomic_load_explicit(&o->h[i], memory_order_relaxed);
        if (h) {
            tacio_status_t st = tacio_handle_close(h);
            if (st != TACIO_SUCCESS)
                TT_FAIL("tacio_handle_close: %s (%s)", tacio_status_name(st), tacio_last_error());
        }
    }
    atomic_store_explicit(&o->state, OBJ_CLOSED, memory_order_release);
    return 1;
}

static void obj_reopen(obj_t *o, int type)
{
    pthread_rwlock_wrlock(&g_reuse);
    obj_open(o, type);
    pthread_rwlock_unlock(&g_reuse);
    cnt(&C.reopens);
}

/* ---- workers --------------------------------------------------------------------- */

typedef struct slot {
    unsigned id;
    rec_t *recs;                /* RECS_PER_WORKER, survive the threads */
    pthread_t t;
    _Atomic int running, finished;
    uint64_t seed;
    uint64_t life;              /* operations before this thread exits */
} slot_t;

static slot_t g_slot[MAX_WORKERS];
static _Atomic uint64_t g_ops_claimed;
static uint64_t g_ops_total;

static int claim_op(void)
{
    return atomic_fetch_add_explicit(&g_ops_claimed, 1, memory_order_relaxed) < g_ops_total;
}

static rec_t *free_record(slot_t *s, rng_t *rg)
{
    for (int tries = 0; tries < 8; tries++) {
        rec_t *r = &s->recs[rnd_below(rg, RECS_PER_WORKER)];
        /* acquire: pairs with the release in deliver(). */
        if (atomic_load_explicit(&r->token, memory_order_acquire) == 0)
            return r;
    }
    return NULL;
}

static void fill(rec_t *r, size_t n, rng_t *rg)
{
    uint64_t x = rnd(rg);
    for (size_t i = 0; i < n; i++)
        r->buf[i] = (unsigned char)(x + i * 7);
}

/* One I/O start on object o (read lock held). */
static void io_start(rec_t *r, obj_t *o, rng_t *rg)
{
    tacio_handle_t *h0 = atomic_load_explicit(&o->h[0], memory_order_relaxed);
    tacio_handle_t *h1 = atomic_load_explicit(&o->h[1], memory_order_relaxed);
    size_t len = 1 + (size_t)rnd_below(rg, BUF);
    int end = (int)rnd_below(rg, 2);
    tacio_handle_t *h = end ? h1 : h0;
    unsigned kind;
    tacio_status_t st;
    switch (o->type) {
    case O_STREAM:
        if (rnd_below(rg, 2)) {
            kind = A_RECV;
            arm(r, kind);
            st = tacio_recv(h, &r->op, r->buf, len);
        } else {
            kind = A_SEND;
            fill(r, len, rg);
            arm(r, kind);
            st = tacio_send(h, &r->op, r->buf, len);
        }
        break;
    case O_DGRAM:
        len = 1 + (size_t)rnd_below(rg, 1024);
        switch (rnd_below(rg, 4)) {
        case 0:
            kind = A_RECV;
            arm(r, kind);
            st = tacio_recv(h, &r->op, r->buf, len);
            break;
        case 1:
            kind = A_RECVFROM;
            arm(r, kind);
            st = tacio_recvfrom(h, &r->op, r->buf, len, &r->addr);
            break;
        case 2:
            kind = A_SEND;
            fill(r, len, rg);
            arm(r, kind);
            st = tacio_send(h, &r->op, r->buf, len);
            break;
        default:
            kind = A_SENDTO;
            fill(r, len, rg);
            r->addr = o->addr[!end];
            arm(r, kind);
            st = tacio_sendto(h, &r->op, r->buf, len, &r->addr);
            break;
        }
        break;
    case O_PIPE:
        if (rnd_below(rg, 2)) {
            kind = A_PREAD;
            arm(r, kind);
            st = tacio_read(h0, &r->op, r->buf, len, TACIO_OFFSET_NONE);
        } else {
            kind = A_PWRITE;
            fill(r, len, rg);
            arm(r, kind);
            st = tacio_write(h1, &r->op, r->buf, len, TACIO_OFFSET_NONE);
        }
        break;
    default: {
        uint64_t off = rnd_below(rg, FILE_SIZE + 512);
        unsigned w = (unsigned)rnd_below(rg, 5);
        if (w == 0) {
            kind = A_FSYNC;
            arm(r, kind);
            st = tacio_fsync(h0, &r->op, (int)rnd_below(rg, 2));
        } else if (w <= 2) {
            kind = A_FREAD;
            arm(r, kind);
            st = tacio_read(h0, &r->op, r->buf, len, off);
        } else {
            kind = A_FWRITE;
            fill(r, len, rg);
            if (off + len > FILE_SIZE)
                off = FILE_SIZE - len;
            arm(r, kind);
            st = tacio_write(h0, &r->op, r->buf, len, off);
        }
        break;
    }
    }
    started(r, kind, st);
}

static void worker_poll(rng_t *rg)
{
    tacio_entry_t e[8];
    unsigned n = 0;
    tacio_status_t st = tacio_port_dequeue(g_port, e, 1 + (unsigned)rnd_below(rg, 8), &n, 0);
    if (st == TACIO_TIMEOUT)
        return;
    if (st != TACIO_SUCCESS)
        TT_FAIL("worker dequeue: %s", tacio_status_name(st));
    for (unsigned i = 0; i < n; i++)
        deliver(&e[i], "worker");
    atomic_fetch_add_explicit(&C.worker_dequeued, n, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    slot_t *s = arg;
    rng_t rg = { s->seed | 1 };
    for (uint64_t k = 0; k < s->life && claim_op(); k++) {
        unsigned pick = (unsigned)rnd_below(&rg, 1000);
        if (pick < 100) {                       /* cancel one of ours */
            rec_t *r = &s->recs[rnd_below(&rg, RECS_PER_WORKER)];
            tacio_status_t st = tacio_cancel(&r->op);
            cnt(&C.started[A_CANCEL]);
            if (st != TACIO_SUCCESS && st != TACIO_NOT_FOUND)
                TT_FAIL("tacio_cancel: %s", tacio_status_name(st));
            continue;
        }
        if (pick < 170) {                       /* a timer */
            rec_t *r = free_record(s, &rg);
            if (!r) {
                cnt(&C.no_free_record);
                continue;
            }
            arm(r, A_TIMER);
            started(r, A_TIMER, tacio_timer_start(g_port, &r->op, TIMER_KEY,
                                                  rnd_below(&rg, 2000000)));
            continue;
        }
        if (pick < 230) {                       /* a posted packet */
            cnt(&C.started[A_POST]);
            /* count first: the packet may be dequeued before post returns */
            cnt(&C.posts_ok);
            tacio_status_t st = tacio_port_post(g_port, POST_KEY, s->id, NULL, TACIO_SUCCESS);
            if (st != TACIO_SUCCESS)
                TT_FAIL("tacio_port_post: %s", tacio_status_name(st));
            continue;
        }
        if (pick < 260) {                       /* poll the port from this thread */
            cnt(&C.started[A_POLL]);
            worker_poll(&rg);
            continue;
        }
        obj_t *o = &g_obj[rnd_below(&rg, NOBJ)];
        if (pick < 268) {                       /* cancel a whole handle */
            cnt(&C.started[A_CANCEL_HANDLE]);
            pthread_rwlock_rdlock(&g_reuse);
            if (atomic_load_explicit(&o->state, memory_order_acquire) == OBJ_OPEN) {
                tacio_handle_t *h = atomic_load_explicit(&o->h[rnd_below(&rg, 2)],
                                                         memory_order_relaxed);
                if (h) {
                    tacio_status_t st = tacio_cancel_handle(h);
                    if (st != TACIO_SUCCESS && st != TACIO_NOT_FOUND &&
                        st != TACIO_INVALID_HANDLE)
                        TT_FAIL("tacio_cancel_handle: %s", tacio_status_name(st));
                }
            }
            pthread_rwlock_unlock(&g_reuse);
            continue;
        }
        if (pick < 272) {                       /* close it and open a new one */
            cnt(&C.started[A_CLOSE]);
            if (obj_close(o))
                obj_reopen(o, (int)rnd_below(&rg, O_TYPES));
            continue;
        }
        rec_t *r = free_record(s, &rg);
        if (!r) {
            /* (nearly) everything pending: cancel one that is, so the pool
             * drains */
            cnt(&C.no_free_record);
            unsigned j = (unsigned)rnd_below(&rg, RECS_PER_WORKER);
            for (unsigned q = 0; q < RECS_PER_WORKER; q++, j = (j + 1) % RECS_PER_WORKER)
                if (atomic_load_explicit(&s->recs[j].token, memory_order_relaxed)) {
                    tacio_status_t cs = tacio_cancel(&s->recs[j].op);
                    if (cs != TACIO_SUCCESS && cs != TACIO_NOT_FOUND)
                        TT_FAIL("tacio_cancel: %s", tacio_status_name(cs));
                    break;
                }
            continue;
        }
        /* Only a handle read while the object is OPEN under the read lock:
         * a CLOSING object's handle may already be freed and its memory
         * reused. A close can still land right after this check: then the
         * start answers FILE_CLOSED, or PENDING and then CANCELLED. */
        pthread_rwlock_rdlock(&g_reuse);
        if (atomic_load_explicit(&o->state, memory_order_acquire) == OBJ_OPEN)
            io_start(r, o, &rg);
        else
            cnt(&C.started[A_SKIP]);
        pthread_rwlock_unlock(&g_reuse);
    }
    cnt(&C.thread_exits);
    /* release: the supervisor joins after seeing it */
    atomic_store_explicit(&s->finished, 1, memory_order_release);
    return NULL;   /* pending operations stay behind (thread-agnostic I/O) */
}

static void spawn(slot_t *s)
{
    s->seed = tt_rand();
    s->life = 100 + tt_rand_below(5000);
    atomic_store(&s->finished, 0);
    atomic_store(&s->running, 1);
    ASSERT_EQ_INT(pthread_create(&s->t, NULL, worker_main, s), 0);
}

/* ---- dequeuers --------------------------------------------------------------------- */

static void *dequeuer_main(void *arg)
{
    (void)arg;
    for (;;) {
        tacio_entry_t e[32];
        unsigned n = 0;
        tacio_status_t st = tacio_port_dequeue(g_port, e, 32, &n, 50);
        if (st == TACIO_ABANDONED) {
            ASSERT_EQ_INT(n, 0);
            return NULL;
        }
        if (st == TACIO_TIMEOUT) {
            ASSERT_EQ_INT(n, 0);
            continue;
        }
        if (st != TACIO_SUCCESS)
            TT_FAIL("dequeue: %s", tacio_status_name(st));
        ASSERT_TRUE(n >= 1 && n <= 32);
        for (unsigned i = 0; i < n; i++)
            deliver(&e[i], "dequeuer");
    }
}

static _Atomic unsigned g_discards;
static void on_discard(const tacio_entry_t *e, void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_discards, 1);
    deliver(e, "discard");
}

/* ---- the case ------------------------------------------------------------------------ */

static uint64_t sum(_Atomic uint64_t *a)
{
    uint64_t t = 0;
    for (int k = 0; k < A_COUNT; k++)
        t += atomic_load(&a[k]);
    return t;
}

static unsigned owed_records(unsigned *first)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g_nrec; i++)
        if (atomic_load_explicit(&g_rec[i].token, memory_order_acquire)) {
            if (!n && first)
                *first = i;
            n++;
        }
    return n;
}

static unsigned mult(void)
{
    const char *m = getenv("TACIO_TEST_TIMEOUT_MULT");
    return m && atoi(m) > 0 ? (unsigned)atoi(m) : 1;
}

TT_CASE(stress_random_ops)
{
    g_ops_total = env_u64("TACIO_STRESS_OPS", DEFAULT_OPS);
    unsigned nworkers = (unsigned)env_u64("TACIO_STRESS_THREADS", 4);
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    const unsigned ndeq = 2;
    uint64_t t0 = tt_now_ns();
    /* A pipe write whose reader was just closed raises SIGPIPE in the
     * writing thread (io.h promises no SIGPIPE for socket sends only). */
    signal(SIGPIPE, SIG_IGN);

    /* A worker that polled counts as running until it polls again: leave
     * room so the dedicated dequeuers are never held back by the cap. */
    g_port = tt_port(nworkers + ndeq);
    g_nrec = nworkers * RECS_PER_WORKER;
    g_rec = calloc(g_nrec, sizeof *g_rec);
    ASSERT_TRUE(g_rec != NULL);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&g_reuse, &ra);
    pthread_rwlockattr_destroy(&ra);
    for (int i = 0; i < NOBJ; i++)
        obj_open(&g_obj[i], i % O_TYPES);

    pthread_t deq[4];
    for (unsigned i = 0; i < ndeq; i++)
        ASSERT_EQ_INT(pthread_create(&deq[i], NULL, dequeuer_main, NULL), 0);
    for (unsigned i = 0; i < nworkers; i++) {
        g_slot[i].id = i;
        g_slot[i].recs = &g_rec[i * RECS_PER_WORKER];
        spawn(&g_slot[i]);
    }

    /* Supervise: replace exited workers, report progress, watch for a stall. */
    uint64_t next_report = g_ops_total / 10, last_ops = 0;
    uint64_t last_change = tt_now_ns(), stall_ns = 60ull * 1000000000ull * mult();
    for (;;) {
        unsigned alive = 0;
        uint64_t claimed = atomic_load(&g_ops_claimed);
        for (unsigned i = 0; i < nworkers; i++) {
            slot_t *s = &g_slot[i];
            if (!atomic_load(&s->running))
                continue;
            if (atomic_load_explicit(&s->finished, memory_order_acquire)) {
                pthread_join(s->t, NULL);
                atomic_store(&s->running, 0);
                if (claimed < g_ops_total)
                    spawn(s);
            }
            alive += (unsigned)atomic_load(&s->running);
        }
        uint64_t done = claimed < g_ops_total ? claimed : g_ops_total;
        if (done >= next_report && next_report) {
            fprintf(stderr, "# stress: %3llu%% %llu ops, %.1f s, %llu pending now, %llu "
                    "thread exits\n", (unsigned long long)(done * 100 / g_ops_total),
                    (unsigned long long)done, (tt_now_ns() - t0) / 1e9,
                    (unsigned long long)owed_records(NULL),
                    (unsigned long long)atomic_load(&C.thread_exits));
            next_report += g_ops_total / 10;
        }
        if (claimed != last_ops) {
            last_ops = claimed;
            last_change = tt_now_ns();
        } else if (tt_now_ns() - last_change > stall_ns) {
            TT_FAIL("no progress for %llu s at %llu ops (%u workers alive, %u records owed)",
                    (unsigned long long)(stall_ns / 1000000000ull), (unsigned long long)claimed,
                    alive, owed_records(NULL));
        }
        if (!alive && claimed >= g_ops_total)
            break;
        tt_sleep_ms(2);
    }
    uint64_t t_ops = tt_now_ns();

    /* Quiesce: close every object; every pending operation must now come
     * back (CANCELLED or natural), timers fire, posts arrive. */
    tt_context("quiesce");
    for (int i = 0; i < NOBJ; i++)
        obj_close(&g_obj[i]);
    uint64_t deadline = tt_now_ns() + 30ull * 1000000000ull * mult();
    unsigned first = 0;
    while (owed_records(&first) ||
           atomic_load(&C.posts_seen) != atomic_load(&C.posts_ok)) {
        if (tt_now_ns() > deadline) {
            unsigned n = owed_records(&first);
            rec_t *r = &g_rec[first];
            TT_FAIL("after closing everything: %u records still owed a delivery (first: "
                    "record %u, %s, priv_word 0x%x); posts %llu ok, %llu seen", n, first,
                    a_name[atomic_load(&r->kind)], r->op.priv_word,
                    (unsigned long long)atomic_load(&C.posts_ok),
                    (unsigned long long)atomic_load(&C.posts_seen));
        }
        tt_sleep_ms(5);
    }
    for (unsigned i = 0; i < g_nrec; i++) {
        rec_t *r = &g_rec[i];
        if (atomic_load(&r->delivered) != atomic_load(&r->pending))
            TT_FAIL("record %u: %u PENDING starts, %u deliveries", i, atomic_load(&r->pending),
                    atomic_load(&r->delivered));
    }

    /* The summary counts the random phase only. */
    char kinds[1400];
    size_t used = 0;
    for (int k = 0; k < A_COUNT; k++) {
        uint64_t sn = atomic_load(&C.started[k]);
        if (!sn)
            continue;
        int w = snprintf(kinds + used, sizeof kinds - used, " %s=%llu", a_name[k],
                         (unsigned long long)sn);
        if (w > 0 && (size_t)w < sizeof kinds - used)
            used += (size_t)w;
    }
    uint64_t pend = sum(C.pending), sync = sum(C.sync), canc = sum(C.cancelled);
    uint64_t t_quiet = tt_now_ns();

    /* Every record is idle: not pending, and startable again. */
    tt_context("restart every record");
    for (unsigned i = 0; i < g_nrec; i++) {
        rec_t *r = &g_rec[i];
        tacio_status_t st = tacio_cancel(&r->op);
        if (st != TACIO_NOT_FOUND)
            TT_FAIL("record %u: tacio_cancel on an idle record returned %s", i,
                    tacio_status_name(st));
        arm(r, A_TIMER);
        st = tacio_timer_start(g_port, &r->op, FINAL_KEY, 0);
        /* NO_MEMORY (TACIO_FAULTS enomem): nothing armed, no completion
         * follows, the record is ours again: try again. */
        while (st == TACIO_NO_MEMORY) {
            started(r, A_TIMER, st);
            arm(r, A_TIMER);
            st = tacio_timer_start(g_port, &r->op, FINAL_KEY, 0);
        }
        if (st != TACIO_PENDING)
            TT_FAIL("record %u: a timer on an idle record returned %s", i,
                    tacio_status_name(st));
        started(r, A_TIMER, st);
    }
    deadline = tt_now_ns() + 10ull * 1000000000ull * mult();
    while (owed_records(&first)) {
        if (tt_now_ns() > deadline)
            TT_FAIL("final timers: record %u not delivered", first);
        tt_sleep_ms(2);
    }

    tacio_stats_t st;
    ASSERT_OK(tacio_port_stats(g_port, &st));
    tt_context("close");
    ASSERT_OK(tacio_port_close(g_port, on_discard, NULL));
    for (unsigned i = 0; i < ndeq; i++)
        pthread_join(deq[i], NULL);
    ASSERT_EQ_INT(atomic_load(&g_discards), 0);
    ASSERT_EQ_U64(st.dropped_duplicates, 0);
    for (unsigned i = 0; i < g_nrec; i++)
        ASSERT_EQ_INT(atomic_load(&g_rec[i].delivered), atomic_load(&g_rec[i].pending));
    tt_context("%s", "");

    fprintf(stderr, "# stress: %llu ops in %.1f s (+%.1f s to quiesce), %u workers, %u "
            "dequeuers: %llu starts, %llu pending, %llu sync, %llu cancelled, %llu posts; "
            "per kind:%s; thread exits %llu, objects reopened %llu, entries dequeued by "
            "workers %llu, no free record %llu, reissued_after_exit %llu, dropped_stale %llu, "
            "seed %llu\n",
            (unsigned long long)g_ops_total, (t_ops - t0) / 1e9, (t_quiet - t_ops) / 1e9,
            nworkers, ndeq, (unsigned long long)(pend + sync), (unsigned long long)pend,
            (unsigned long long)sync, (unsigned long long)canc,
            (unsigned long long)atomic_load(&C.posts_ok), kinds,
            (unsigned long long)atomic_load(&C.thread_exits),
            (unsigned long long)atomic_load(&C.reopens),
            (unsigned long long)atomic_load(&C.worker_dequeued),
            (unsigned long long)atomic_load(&C.no_free_record),
            (unsigned long long)st.reissued_after_exit, (unsigned long long)st.dropped_stale,
            (unsigned long long)tt_seed());
    uint32_t other = atomic_load(&g_other_status);
    fprintf(stderr, "# stress: delivered statuses (success/cancelled/eof/overflow/other):");
    for (int k = 0; k < A_COUNT; k++) {
        if (!atomic_load(&C.delivered[k]))
            continue;
        fprintf(stderr, " %s %llu/%llu/%llu/%llu/%llu", a_name[k],
                (unsigned long long)atomic_load(&g_hist[k][S_SUCCESS]),
                (unsigned long long)atomic_load(&g_hist[k][S_CANCELLED]),
                (unsigned long long)atomic_load(&g_hist[k][S_EOF]),
                (unsigned long long)atomic_load(&g_hist[k][S_OVERFLOW]),
                (unsigned long long)atomic_load(&g_hist[k][S_OTHER]));
    }
    fprintf(stderr, "%s%s\n", other ? "; e.g. other: " : "", other ? tacio_status_name(other) : "");

    pthread_rwlock_destroy(&g_reuse);
    free(g_rec);
    g_rec = NULL;
}

static tt_case_t tt_cases[] = {
    TT_ENTRY(stress_random_ops, 300),
};

/* The runner's deadline grows with TACIO_STRESS_OPS (the case also has its
 * own stall watchdog, which reports more than a kill would). */
__attribute__((constructor)) static void scale_timeout(void)
{
    uint64_t ops = env_u64("TACIO_STRESS_OPS", DEFAULT_OPS);
    uint64_t t = 120 + ops / 5000;   /* 200 us per op: 1M -> 320 s */
    tt_cases[0].timeout_s = (unsigned)(t > 300 ? t : 300);
}

TT_MAIN()
