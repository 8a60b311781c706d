/* pool.c - threads that run callbacks for the objects bound to one port.
 *
 * Every object has a reference count: one for the caller (dropped by its
 * close) plus one for each callback it is owed (a work submission in the
 * queue, a timer or wait operation pending, an I/O handle alive) plus one
 * while a callback of a timer or wait runs. The last reference finishes the
 * object: its group hears of it, and it is freed. Waiting closes wait for the
 * count to come down to the caller's own reference.
 *
 * I/O objects need no count of their operations: their handle is opened with
 * H_FLAG_HOLD, so each delivery keeps the handle alive until the callback
 * has returned, and the handle's release (after the last callback of the
 * last operation) drops the object's handle reference.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tacio/pool.h>

#include "core/internal.h"

enum obj_kind { OBJ_IO = 1, OBJ_WORK, OBJ_TIMER, OBJ_WAIT, OBJ_CALL };

struct obj {
    enum obj_kind kind;
    struct tacio_pool *pool;
    struct tacio_pool_group *group;
    struct obj *gnext, *gprev;  /* the group's members (pool lock) */
    struct obj *pnext, *pprev;  /* all of the pool's objects (pool lock) */
    void *ctx;
    _Atomic uint32_t refs;
    _Atomic bool closed;
    _Atomic bool cancel_pending;
    bool zombie;                /* finished, kept for its group's report */
    _Atomic uint64_t ran, cancelled;
};

struct tacio_pool_io {
    struct obj o;
    tacio_handle_t *h;
    tacio_pool_io_fn fn;
};

struct tacio_pool_work {
    struct obj o;
    tacio_pool_work_fn fn;
};

struct tacio_pool_timer {
    struct obj o;
    tacio_pool_timer_fn fn;
    pthread_mutex_t m;
    tacio_op_t op;
    bool op_pending;
    bool armed;                 /* the caller's setting wants a run */
    uint32_t seq, op_seq;       /* setting generation; the pending op's */
    uint64_t due, period;       /* absolute CLOCK_MONOTONIC ns */
};

struct tacio_pool_wait {
    struct obj o;
    tacio_pool_wait_fn fn;
    pthread_mutex_t m;
    tacio_handle_t *h;          /* on fd, NO_CLOSE_FD */
    int hfd;
    tacio_op_t poll, tmo;
    bool poll_pending, tmo_pending;
    bool armed;
    uint32_t seq, started_seq;
    int fd;
    unsigned events;
    int timeout_ms;
};

struct tacio_pool_group {
    struct tacio_pool *pool;
    tacio_pool_group_t *next, *prev; /* the pool's open groups */
    struct obj *members;
    unsigned live;              /* members not yet reported */
    bool closing, waiting;
    bool closer_active;         /* group close still walks the members: it frees the group */
    tacio_pool_group_fn report;
    void *gctx;
};

struct zombie_thread {
    pthread_t t;
    struct zombie_thread *next;
};

struct tacio_pool {
    tacio_port_t *port;
    pthread_mutex_t lock;
    pthread_cond_t cv;          /* objects finishing, threads leaving */
    pthread_cond_t mon_cv;
    unsigned min, max, idle_ms;
    unsigned threads, peak;
    _Atomic unsigned idle;
    _Atomic uint64_t progress;  /* callbacks finished, for the monitor */
    _Atomic int64_t cb_avg_ns;  /* time per callback, moving average over batches */
    _Atomic bool mon_asleep;
    _Atomic bool can_grow;      /* threads < max: only then is the monitor worth waking */
    _Atomic unsigned nthreads;  /* threads, for lock-free reads */
    _Atomic unsigned blocked;   /* threads inside tacio_pool_blocking_begin/end */
    unsigned concurrency;
    _Atomic unsigned close_waiters; /* closes waiting for an object's refs to reach 1 */
    bool stopping;
    pthread_t monitor;
    pthread_t *live;            /* thread ids, joinable; [max] */
    bool *live_used;
    struct zombie_thread *zombies;
    unsigned objects;
    struct obj *all;
    tacio_pool_group_t *groups;
    _Atomic uint64_t callbacks, cancelled;
    struct obj call;            /* target of tacio_pool_submit's packets */
    pthread_attr_t attr;        /* the threads' CPUs (tacio_pool_options_t.cpus) */
    bool has_attr;
};

/* The pool thread's own state: which pool, which object's callback runs. */
static _Thread_local struct {
    struct tacio_pool *pool;
    struct obj *current;
    bool blocked;
} me;

#define BATCH 16
/* Callbacks longer than this on average (TLS handshakes: hundreds of
 * microseconds of crypto) are taken one at a time, so entries that arrive
 * together are run by as many threads as the concurrency value allows
 * rather than one after another on the thread that dequeued them. */
#define LONG_CALLBACK_NS 20000

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t key_of(struct obj *o)
{
    return (uint64_t)(uintptr_t)o;
}

/* ---- object lifetime --------------------------------------------------------- */

static void obj_init(struct obj *o, enum obj_kind kind, struct tacio_pool *pool, void *ctx,
                     uint32_t refs)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->pool = pool;
    o->ctx = ctx;
    atomic_init(&o->refs, refs);
}

/* Join a group and the pool's count. Fails for a closing group. */
static tacio_status_t obj_attach(struct obj *o, tacio_pool_group_t *g)
{
    struct tacio_pool *pool = o->pool;
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping || (g && g->closing)) {
        pthread_mutex_unlock(&pool->lock);
        return TACIO_INVALID_DEVICE_STATE;
    }
    pool->objects++;
    o->pnext = pool->all;
    if (pool->all)
        pool->all->pprev = o;
    pool->all = o;
    if (g) {
        o->group = g;
        o->gnext = g->members;
        if (g->members)
            g->members->gprev = o;
        g->members = o;
        g->live++;
    }
    pthread_mutex_unlock(&pool->lock);
    return TACIO_SUCCESS;
}

static void obj_free(struct obj *o)
{
    if (o->kind == OBJ_TIMER)
        pthread_mutex_destroy(&((struct tacio_pool_timer *)o)->m);
    if (o->kind == OBJ_WAIT)
        pthread_mutex_destroy(&((struct tacio_pool_wait *)o)->m);
    free(o);
}

static void group_unlink_locked(tacio_pool_group_t *g, struct obj *o)
{
    if (o->gprev)
        o->gprev->gnext = o->gnext;
    else
        g->members = o->gnext;
    if (o->gnext)
        o->gnext->gprev = o->gprev;
    o->gnext = o->gprev = NULL;
}

/* Report a finished member to its group, then free it; the last one of a
 * closing group not waited for frees the group too. */
static void obj_report_and_free(struct obj *o)
{
    struct tacio_pool *pool = o->pool;
    tacio_pool_group_t *g = o->group;
    if (g && g->report)
        g->report(o->ctx, g->gctx, atomic_load(&o->ran), atomic_load(&o->cancelled));
    pthread_mutex_lock(&pool->lock);
    bool free_group = false;
    if (g) {
        group_unlink_locked(g, o);
        g->live--;
        free_group = g->closing && !g->waiting && !g->closer_active && g->live == 0;
    }
    pool->objects--;
    if (o->pprev)
        o->pprev->pnext = o->pnext;
    else
        pool->all = o->pnext;
    if (o->pnext)
        o->pnext->pprev = o->pprev;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->lock);
    obj_free(o);
    if (free_group)
        free(g);
}

static void obj_finish(struct obj *o)
{
    struct tacio_pool *pool = o->pool;
    tacio_pool_group_t *g = o->group;
    if (g) {
        pthread_mutex_lock(&pool->lock);
        if (!g->closing) {
            /* The group's close reports it (with its report function). */
            o->zombie = true;
            pthread_mutex_unlock(&pool->lock);
            return;
        }
        pthread_mutex_unlock(&pool->lock);
    }
    obj_report_and_free(o);
}

static void obj_ref(struct obj *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

static void obj_unref(struct obj *o)
{
    /* o may be freed by its owner's close as soon as the count is down to
     * the owner's reference: after the decrement only the pool is read.
     * seq_cst with the waiter's increment of close_waiters and its load of
     * refs: one of the two sees the other (no lost wake-up). */
    struct tacio_pool *pool = o->pool;
    uint32_t left = atomic_fetch_sub(&o->refs, 1) - 1;
    if (left == 0) {
        obj_finish(o);
    } else if (left == 1 && atomic_load(&pool->close_waiters)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* Callbacks of o (or of a member of group g) run on this thread now. */
static bool inside_own_callback(struct obj *o, tacio_pool_group_t *g)
{
    struct obj *cur = me.current;
    return cur && ((o && cur == o) || (g && cur->group == g));
}

/* The caller's reference goes; with TACIO_POOL_WAIT, first wait until it is
 * the last one (every owed callback has run or been cancelled). */
static tacio_status_t obj_close_tail(struct obj *o, unsigned flags)
{
    tacio_status_t st = TACIO_SUCCESS;
    if (flags & TACIO_POOL_WAIT) {
        if (inside_own_callback(o, NULL)) {
            st = TACIO_POSSIBLE_DEADLOCK;
        } else {
            struct tacio_pool *pool = o->pool;
            atomic_fetch_add(&pool->close_waiters, 1);
            pthread_mutex_lock(&pool->lock);
            while (atomic_load(&o->refs) > 1)
                pthread_cond_wait(&pool->cv, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
            atomic_fetch_sub(&pool->close_waiters, 1);
        }
    }
    obj_unref(o);
    return st;
}

static bool obj_mark_closed(struct obj *o, unsigned flags)
{
    if (atomic_exchange(&o->closed, true))
        return false;
    if (flags & TACIO_POOL_CANCEL_PENDING)
        atomic_store(&o->cancel_pending, true);
    return true;
}

static void count_ran(struct obj *o)
{
    atomic_fetch_add_explicit(&o->ran, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->pool->callbacks, 1, memory_order_relaxed);
}

static void count_cancelled(struct obj *o)
{
    atomic_fetch_add_explicit(&o->cancelled, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->pool->cancelled, 1, memory_order_relaxed);
}

/* ---- threads ------------------------------------------------------------------ */

static void *worker_main(void *arg);

static void reap_zombies(struct tacio_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    struct zombie_thread *z = pool->zombies;
    pool->zombies = NULL;
    pthread_mutex_unlock(&pool->lock);
    while (z) {
        struct zombie_thread *next = z->next;
        pthread_join(z->t, NULL);
        free(z);
        z = next;
    }
}

static bool spawn_locked(struct tacio_pool *pool)
{
    if (pool->stopping || pool->threads >= pool->max)
        return false;
    unsigned slot = 0;
    while (slot < pool->max && pool->live_used[slot])
        slot++;
    if (slot == pool->max)
        return false;
    if (pthread_create(&pool->live[slot], pool->has_attr ? &pool->attr : NULL, worker_main, pool) != 0)
        return false;
    pool->live_used[slot] = true;
    pool->threads++;
    atomic_store_explicit(&pool->nthreads, pool->threads, memory_order_relaxed);
    atomic_store_explicit(&pool->can_grow, pool->threads < pool->max, memory_order_relaxed);
    if (pool->threads > pool->peak)
        pool->peak = pool->threads;
    return true;
}

/* The calling worker leaves: its id moves to the zombie list so that the
 * next spawn or the close joins it. */
static void leave_locked(struct tacio_pool *pool)
{
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < pool->max; i++) {
        if (pool->live_used[i] && pthread_equal(pool->live[i], self)) {
            pool->live_used[i] = false;
            struct zombie_thread *z = malloc(sizeof *z);
            if (z) {
                z->t = self;
                z->next = pool->zombies;
                pool->zombies = z;
            } else {
                pthread_detach(self);
            }
            break;
        }
    }
    pool->threads--;
    atomic_store_explicit(&pool->nthreads, pool->threads, memory_order_relaxed);
    atomic_store_explicit(&pool->can_grow, true, memory_order_relaxed);
    pthread_cond_broadcast(&pool->cv);
}

static void dispatch(struct tacio_pool *pool, const tacio_entry_t *e);

static void *worker_main(void *arg)
{
    struct tacio_pool *pool = arg;
    me.pool = pool;
    tacio_entry_t e[BATCH];
    for (;;) {
        unsigned n = 0;
        unsigned want =
            atomic_load_explicit(&pool->cb_avg_ns, memory_order_relaxed) > LONG_CALLBACK_NS ? 1
                                                                                            : BATCH;
        atomic_fetch_add_explicit(&pool->idle, 1, memory_order_relaxed);
        tacio_status_t st = tacio_port_dequeue(pool->port, e, want, &n, (int)pool->idle_ms);
        unsigned idle = atomic_fetch_sub_explicit(&pool->idle, 1, memory_order_relaxed) - 1;
        if (st == TACIO_TIMEOUT) {
            pthread_mutex_lock(&pool->lock);
            if (pool->threads > pool->min && !pool->stopping) {
                leave_locked(pool);
                pthread_mutex_unlock(&pool->lock);
                return NULL;
            }
            pthread_mutex_unlock(&pool->lock);
            continue;
        }
        if (st != TACIO_SUCCESS)
            break; /* TACIO_ABANDONED: the pool is closing */
        if (idle == 0 && atomic_load_explicit(&pool->can_grow, memory_order_relaxed) &&
            atomic_load_explicit(&pool->mon_asleep, memory_order_relaxed) &&
            (atomic_load_explicit(&pool->nthreads, memory_order_relaxed) < pool->concurrency ||
             atomic_load_explicit(&pool->blocked, memory_order_relaxed) > 0) &&
            tacio__port_has_waiting(pool->port) &&
            atomic_exchange_explicit(&pool->mon_asleep, false, memory_order_relaxed)) {
            /* Everybody is busy, work waits, and the pool may grow into a
             * run slot: the monitor watches for callbacks that run long
             * (one signal per monitor sleep). Not otherwise: a pool of one
             * thread is "all busy" at every dequeue, and waking the monitor
             * then cost two thread switches each time for nothing. Work
             * that arrives later is caught by the monitor's 100 ms tick. */
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->mon_cv);
            pthread_mutex_unlock(&pool->lock);
        }
        int64_t t0 = mono_ns();
        for (unsigned i = 0; i < n; i++)
            dispatch(pool, &e[i]);
        /* A racy moving average is enough: it only picks the batch size. */
        int64_t per = (mono_ns() - t0) / (int64_t)(n ? n : 1);
        int64_t avg = atomic_load_explicit(&pool->cb_avg_ns, memory_order_relaxed);
        atomic_store_explicit(&pool->cb_avg_ns, avg + (per - avg) / 8, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->progress, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Adds a thread when every thread has been busy for a while with no
 * callback finishing and entries wait: callbacks that run long (or block
 * without saying so) must not starve the queue. */
static void *monitor_main(void *arg)
{
    struct tacio_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    while (!pool->stopping) {
        bool useless = atomic_load(&pool->idle) > 0 || pool->threads >= pool->max;
        if (!useless) {
            /* A thread added while concurrency-many threads run would only
             * wait for a run slot (the port's rule), waking every few
             * milliseconds for nothing (tacio-httpd's one-thread shards did
             * that under load). So this helps a pool with fewer threads than
             * its concurrency value, or with threads that declared a block. */
            pthread_mutex_unlock(&pool->lock);
            useless = !tacio__port_has_run_slot(pool->port);
            pthread_mutex_lock(&pool->lock);
        }
        if (useless) {
            atomic_store(&pool->mon_asleep, true);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            /* A safety net, for work that arrived after every thread went
             * into a callback (workers signal only when work waits as they
             * start one). */
            ts.tv_nsec += 100 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&pool->mon_cv, &pool->lock, &ts);
            atomic_store(&pool->mon_asleep, false);
            continue;
        }
        uint64_t before = atomic_load(&pool->progress);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&pool->mon_cv, &pool->lock, &ts);
        if (pool->stopping)
            break;
        if (atomic_load(&pool->idle) == 0 && atomic_load(&pool->progress) == before &&
            pool->threads < pool->max) {
            pthread_mutex_unlock(&pool->lock);
            bool want = tacio__port_queued(pool->port) && tacio__port_has_run_slot(pool->port);
            pthread_mutex_lock(&pool->lock);
            if (want)
                spawn_locked(pool);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void tacio_pool_blocking_begin(void)
{
    struct tacio_pool *pool = me.pool;
    if (!pool || me.blocked)
        return;
    me.blocked = true;
    atomic_fetch_add_explicit(&pool->blocked, 1, memory_order_relaxed);
    tacio_port_blocking_begin(pool->port);
    if (atomic_load(&pool->idle) == 0) {
        pthread_mutex_lock(&pool->lock);
        if (atomic_load(&pool->idle) == 0)
            spawn_locked(pool);
        pthread_mutex_unlock(&pool->lock);
    }
}

void tacio_pool_blocking_end(void)
{
    struct tacio_pool *pool = me.pool;
    if (!pool || !me.blocked)
        return;
    me.blocked = false;
    atomic_fetch_sub_explicit(&pool->blocked, 1, memory_order_relaxed);
    tacio__port_blocking_end_wait(pool->port);
}

/* ---- the pool ------------------------------------------------------------------ */

static unsigned ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The pool's threads start bound to cpus: each must be one the process may
 * run on, so that a typo fails here and not as a pool without threads. */
static tacio_status_t bind_attr(struct tacio_pool *pool, const unsigned *cpus, unsigned n)
{
    unsigned top = 0;
    for (unsigned i = 0; i < n; i++)
        if (cpus[i] > top)
            top = cpus[i];
    if (top >= 1u << 16) {
        tacio__set_error("cpu %u: no such CPU", top);
        return TACIO_INVALID_PARAMETER;
    }
    size_t size = CPU_ALLOC_SIZE(top + 1);
    cpu_set_t *want = CPU_ALLOC(top + 1), *allowed = CPU_ALLOC(top + 1);
    tacio_status_t st = want && allowed ? TACIO_SUCCESS : TACIO_NO_MEMORY;
    if (st == TACIO_SUCCESS) {
        CPU_ZERO_S(size, want);
        CPU_ZERO_S(size, allowed);
        /* EINVAL: the process's mask is wider than this set, so CPUs above
         * top are allowed too; the ones asked for are still answered. */
        if (sched_getaffinity(0, size, allowed) != 0 && errno != EINVAL)
            st = tacio_status_from_errno(errno);
    }
    for (unsigned i = 0; st == TACIO_SUCCESS && i < n; i++) {
        if (!CPU_ISSET_S(cpus[i], size, allowed)) {
            tacio__set_error("cpu %u: not one this process may run on", cpus[i]);
            st = TACIO_INVALID_PARAMETER;
        }
        CPU_SET_S(cpus[i], size, want);
    }
    if (st == TACIO_SUCCESS) {
        int e = pthread_attr_init(&pool->attr);
        if (e == 0 && (e = pthread_attr_setaffinity_np(&pool->attr, size, want)) != 0)
            pthread_attr_destroy(&pool->attr);
        if (e != 0)
            st = tacio_status_from_errno(e);
        pool->has_attr = e == 0;
    }
    CPU_FREE(want);
    CPU_FREE(allowed);
    return st;
}

static void drop_attr(struct tacio_pool *pool)
{
    if (pool->has_attr)
        pthread_attr_destroy(&pool->attr);
    pool->has_attr = false;
}

tacio_status_t tacio_pool_create(tacio_pool_t **out, const tacio_pool_options_t *opts)
{
    if (!out)
        return TACIO_INVALID_PARAMETER;
    *out = NULL;
    tacio_pool_options_t o = opts ? *opts : (tacio_pool_options_t){0};
    unsigned conc = o.concurrency ? o.concurrency : ncpu();
    unsigned min = o.min_threads ? o.min_threads : 1;
    unsigned max = o.max_threads ? o.max_threads : (4 * conc > 4 ? 4 * conc : 4);
    if (min > max) {
        tacio__set_error("min_threads %u > max_threads %u", min, max);
        return TACIO_INVALID_PARAMETER;
    }
    if (o.ncpus && !o.cpus) {
        tacio__set_error("ncpus %u with no cpus", o.ncpus);
        return TACIO_INVALID_PARAMETER;
    }
    struct tacio_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return TACIO_NO_MEMORY;
    if (o.cpus && o.ncpus) {
        tacio_status_t cst = bind_attr(pool, o.cpus, o.ncpus);
        if (cst != TACIO_SUCCESS) {
            free(pool);
            return cst;
        }
    }
    pool->live = calloc(max, sizeof *pool->live);
    pool->live_used = calloc(max, sizeof *pool->live_used);
    if (!pool->live || !pool->live_used) {
        free(pool->live);
        free(pool->live_used);
        drop_attr(pool);
        free(pool);
        return TACIO_NO_MEMORY;
    }
    pool->concurrency = conc;
    tacio_port_options_t po = {.concurrency = conc, .backend = o.backend};
    tacio_status_t st = tacio_port_create_ex(&pool->port, &po);
    if (st != TACIO_SUCCESS) {
        free(pool->live);
        free(pool->live_used);
        drop_attr(pool);
        free(pool);
        return st;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pthread_cond_init(&pool->mon_cv, NULL);
    pool->min = min;
    pool->max = max;
    pool->idle_ms = o.idle_ms ? o.idle_ms : 5000;
    obj_init(&pool->call, OBJ_CALL, pool, NULL, 1);
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < min; i++)
        spawn_locked(pool);
    unsigned got = pool->threads;
    pthread_mutex_unlock(&pool->lock);
    if (got == 0 || pthread_create(&pool->monitor, NULL, monitor_main, pool) != 0) {
        pool->stopping = true; /* no thread was made: nothing to join but those made */
        tacio_port_close(pool->port, NULL, NULL);
        for (unsigned i = 0; i < max; i++)
            if (pool->live_used[i])
                pthread_join(pool->live[i], NULL);
        free(pool->live);
        free(pool->live_used);
        drop_attr(pool);
        free(pool);
        return TACIO_INSUFFICIENT_RESOURCES;
    }
    *out = pool;
    return TACIO_SUCCESS;
}

tacio_port_t *tacio_pool_port(tacio_pool_t *pool)
{
    return pool ? pool->port : NULL;
}

tacio_status_t tacio_pool_info(tacio_pool_t *pool, tacio_pool_info_t *info)
{
    if (!pool || !info)
        return TACIO_INVALID_PARAMETER;
    pthread_mutex_lock(&pool->lock);
    info->threads = pool->threads;
    info->peak_threads = pool->peak;
    info->objects = pool->objects;
    pthread_mutex_unlock(&pool->lock);
    info->idle = atomic_load(&pool->idle);
    info->callbacks = atomic_load(&pool->callbacks);
    info->cancelled = atomic_load(&pool->cancelled);
    return TACIO_SUCCESS;
}


/* ---- I/O objects ------------------------------------------------------------------ */

static void io_handle_freed(void *ctx)
{
    obj_unref(ctx);
}

tacio_status_t tacio_pool_io_open(tacio_pool_t *pool, int fd, unsigned flags, tacio_pool_io_fn cb,
                                  void *ctx, tacio_pool_group_t *group, tacio_pool_io_t **out)
{
    if (out)
        *out = NULL;
    if (!pool || !cb || !out || fd < 0 || (group && group->pool != pool) ||
        (flags & TACIO_HANDLE_THREAD_BOUND))
        return TACIO_INVALID_PARAMETER;
    struct tacio_pool_io *io = malloc(sizeof *io);
    if (!io)
        return TACIO_NO_MEMORY;
    obj_init(&io->o, OBJ_IO, pool, ctx, 2); /* the caller's + the handle's */
    io->fn = cb;
    tacio_status_t st = obj_attach(&io->o, group);
    if (st != TACIO_SUCCESS) {
        free(io);
        return st;
    }
    st = tacio_handle_open(pool->port, fd, key_of(&io->o), flags, &io->h);
    if (st != TACIO_SUCCESS) {
        atomic_store(&io->o.refs, 1);
        atomic_store(&io->o.closed, true);
        obj_unref(&io->o);
        return st;
    }
    tacio__handle_hold_deliveries(io->h, io_handle_freed, &io->o);
    *out = io;
    return TACIO_SUCCESS;
}

tacio_handle_t *tacio_pool_io_handle(tacio_pool_io_t *io)
{
    return io ? io->h : NULL;
}

tacio_status_t tacio_pool_io_close(tacio_pool_io_t *io, unsigned flags)
{
    if (!io || !obj_mark_closed(&io->o, flags))
        return TACIO_INVALID_HANDLE;
    tacio_handle_close(io->h);
    return obj_close_tail(&io->o, flags);
}

static void io_deliver(struct tacio_pool_io *io, const tacio_entry_t *e)
{
    tacio_handle_t *h = io->h;
    io->fn(io, io->o.ctx, e->op, e->status, e->bytes);
    count_ran(&io->o);
    /* The delivery's handle reference (H_FLAG_HOLD): the last one frees the
     * handle, which drops the object's handle reference. */
    tacio__handle_unref(h);
}

/* ---- work -------------------------------------------------------------------------- */

tacio_status_t tacio_pool_work_create(tacio_pool_t *pool, tacio_pool_work_fn fn, void *ctx,
                                      tacio_pool_group_t *group, tacio_pool_work_t **out)
{
    if (out)
        *out = NULL;
    if (!pool || !fn || !out || (group && group->pool != pool))
        return TACIO_INVALID_PARAMETER;
    struct tacio_pool_work *w = malloc(sizeof *w);
    if (!w)
        return TACIO_NO_MEMORY;
    obj_init(&w->o, OBJ_WORK, pool, ctx, 1);
    w->fn = fn;
    tacio_status_t st = obj_attach(&w->o, group);
    if (st != TACIO_SUCCESS) {
        free(w);
        return st;
    }
    *out = w;
    return TACIO_SUCCESS;
}

tacio_status_t tacio_pool_work_submit(tacio_pool_work_t *w)
{
    if (!w || atomic_load_explicit(&w->o.closed, memory_order_acquire))
        return TACIO_INVALID_HANDLE;
    obj_ref(&w->o);
    tacio_status_t st = tacio_port_post(w->o.pool->port, key_of(&w->o), 0, NULL, TACIO_SUCCESS);
    if (st != TACIO_SUCCESS)
        obj_unref(&w->o);
    return st;
}

tacio_status_t tacio_pool_work_close(tacio_pool_work_t *w, unsigned flags)
{
    if (!w || !obj_mark_closed(&w->o, flags))
        return TACIO_INVALID_HANDLE;
    return obj_close_tail(&w->o, flags);
}

static void work_deliver(struct tacio_pool_work *w)
{
    if (atomic_load(&w->o.cancel_pending)) {
        count_cancelled(&w->o);
    } else {
        w->fn(w, w->o.ctx);
        count_ran(&w->o);
    }
    obj_unref(&w->o);
}

tacio_status_t tacio_pool_submit(tacio_pool_t *pool, void (*fn)(void *ctx), void *ctx)
{
    if (!pool || !fn)
        return TACIO_INVALID_PARAMETER;
    return tacio_port_post(pool->port, key_of(&pool->call), (uint64_t)(uintptr_t)fn, ctx,
                           TACIO_SUCCESS);
}

/* ---- timers ------------------------------------------------------------------------ */

tacio_status_t tacio_pool_timer_create(tacio_pool_t *pool, tacio_pool_timer_fn fn, void *ctx,
                                       tacio_pool_group_t *group, tacio_pool_timer_t **out)
{
    if (out)
        *out = NULL;
    if (!pool || !fn || !out || (group && group->pool != pool))
        return TACIO_INVALID_PARAMETER;
    struct tacio_pool_timer *t = calloc(1, sizeof *t);
    if (!t)
        return TACIO_NO_MEMORY;
    obj_init(&t->o, OBJ_TIMER, pool, ctx, 1);
    t->fn = fn;
    pthread_mutex_init(&t->m, NULL);
    tacio_status_t st = obj_attach(&t->o, group);
    if (st != TACIO_SUCCESS) {
        pthread_mutex_destroy(&t->m);
        free(t);
        return st;
    }
    *out = t;
    return TACIO_SUCCESS;
}

/* Arm the one timer operation for the current setting. Re-armed from a
 * delivery (periodic runs, or a setting that came while the old operation
 * was pending), a transient NO_MEMORY is retried a few times rather than
 * the timer stopping silently; from tacio_pool_timer_set the caller gets
 * the status. */
static tacio_status_t timer_start_once_locked(struct tacio_pool_timer *t);
static tacio_status_t timer_start_locked(struct tacio_pool_timer *t, bool retry)
{
    tacio_status_t st = timer_start_once_locked(t);
    for (int i = 0; retry && i < 8 && st == TACIO_NO_MEMORY; i++) {
        t->armed = true;
        sched_yield();
        st = timer_start_once_locked(t);
    }
    return st;
}

static tacio_status_t timer_start_once_locked(struct tacio_pool_timer *t)
{
    uint64_t now = now_ns();
    obj_ref(&t->o);
    t->op_seq = t->seq;
    tacio_status_t st = tacio_timer_start(t->o.pool->port, &t->op, key_of(&t->o),
                                          t->due > now ? t->due - now : 0);
    if (st == TACIO_PENDING) {
        t->op_pending = true;
        return TACIO_SUCCESS;
    }
    t->armed = false;
    obj_unref(&t->o);
    return st;
}

tacio_status_t tacio_pool_timer_set(tacio_pool_timer_t *t, uint64_t due_ns, uint64_t period_ns)
{
    if (!t)
        return TACIO_INVALID_HANDLE;
    pthread_mutex_lock(&t->m);
    if (atomic_load(&t->o.closed)) {
        pthread_mutex_unlock(&t->m);
        return TACIO_INVALID_HANDLE;
    }
    t->seq++;
    t->armed = true;
    t->due = now_ns() + due_ns;
    t->period = period_ns;
    tacio_status_t st = TACIO_SUCCESS;
    if (t->op_pending)
        tacio_cancel(&t->op); /* its completion arms the new setting */
    else
        st = timer_start_locked(t, false);
    pthread_mutex_unlock(&t->m);
    return st;
}

static tacio_status_t timer_disarm(struct tacio_pool_timer *t, bool closing)
{
    pthread_mutex_lock(&t->m);
    if (!closing && atomic_load(&t->o.closed)) {
        pthread_mutex_unlock(&t->m);
        return TACIO_INVALID_HANDLE;
    }
    bool was = t->armed;
    t->armed = false;
    t->seq++;
    if (t->op_pending)
        tacio_cancel(&t->op);
    if (was)
        count_cancelled(&t->o);
    pthread_mutex_unlock(&t->m);
    return was ? TACIO_SUCCESS : TACIO_NOT_FOUND;
}

tacio_status_t tacio_pool_timer_cancel(tacio_pool_timer_t *t)
{
    if (!t)
        return TACIO_INVALID_HANDLE;
    return timer_disarm(t, false);
}

tacio_status_t tacio_pool_timer_close(tacio_pool_timer_t *t, unsigned flags)
{
    if (!t || !obj_mark_closed(&t->o, flags))
        return TACIO_INVALID_HANDLE;
    timer_disarm(t, true);
    return obj_close_tail(&t->o, flags);
}

static void timer_deliver(struct tacio_pool_timer *t, tacio_status_t status)
{
    pthread_mutex_lock(&t->m);
    t->op_pending = false;
    bool fire = status == TACIO_SUCCESS && t->op_seq == t->seq && t->armed;
    if (fire) {
        if (t->period) {
            /* From the first due time, skipping runs missed entirely. */
            uint64_t now = now_ns();
            t->due += t->period;
            if (t->due <= now)
                t->due += ((now - t->due) / t->period + 1) * t->period;
            timer_start_locked(t, true);
        } else {
            t->armed = false;
        }
        obj_ref(&t->o); /* for the callback */
    } else if (t->armed) {
        timer_start_locked(t, true); /* a new setting came while this op was pending */
    }
    pthread_mutex_unlock(&t->m);
    obj_unref(&t->o); /* the operation's */
    if (fire) {
        t->fn(t, t->o.ctx);
        count_ran(&t->o);
        obj_unref(&t->o);
    }
}

/* ---- waits ----------------------------------------------------------------------------- */

tacio_status_t tacio_pool_wait_create(tacio_pool_t *pool, tacio_pool_wait_fn fn, void *ctx,
                                      tacio_pool_group_t *group, tacio_pool_wait_t **out)
{
    if (out)
        *out = NULL;
    if (!pool || !fn || !out || (group && group->pool != pool))
        return TACIO_INVALID_PARAMETER;
    struct tacio_pool_wait *w = calloc(1, sizeof *w);
    if (!w)
        return TACIO_NO_MEMORY;
    obj_init(&w->o, OBJ_WAIT, pool, ctx, 1);
    w->fn = fn;
    w->hfd = -1;
    pthread_mutex_init(&w->m, NULL);
    tacio_status_t st = obj_attach(&w->o, group);
    if (st != TACIO_SUCCESS) {
        pthread_mutex_destroy(&w->m);
        free(w);
        return st;
    }
    *out = w;
    return TACIO_SUCCESS;
}

/* Start the operations of the current setting once those of earlier
 * settings are all over (a record is restarted only after its delivery). */
static tacio_status_t wait_kick_locked(struct tacio_pool_wait *w)
{
    if (w->poll_pending || w->tmo_pending)
        return TACIO_SUCCESS;
    if (w->h && (!w->armed || w->hfd != w->fd || atomic_load(&w->o.closed))) {
        tacio_handle_close(w->h);
        w->h = NULL;
        w->hfd = -1;
    }
    if (!w->armed || w->started_seq == w->seq)
        return TACIO_SUCCESS;
    w->started_seq = w->seq;
    tacio_status_t st = TACIO_SUCCESS;
    if (!w->h) {
        st = tacio_handle_open(w->o.pool->port, w->fd, key_of(&w->o), TACIO_HANDLE_NO_CLOSE_FD,
                               &w->h);
        if (st != TACIO_SUCCESS) {
            w->h = NULL;
            w->armed = false;
            return st;
        }
        w->hfd = w->fd;
    }
    unsigned ev = ((w->events & TACIO_POOL_READABLE) ? TACIO_POLL_IN : 0) |
                  ((w->events & TACIO_POOL_WRITABLE) ? TACIO_POLL_OUT : 0);
    obj_ref(&w->o);
    st = tacio_handle_fd(w->h) >= 0 ? TACIO_SUCCESS : TACIO_INVALID_HANDLE;
    tacio_status_t ps = TACIO_PENDING;
    if (st == TACIO_SUCCESS) {
        /* Queued-always is not set on this handle: a ready fd ends the start
         * call at once; run the callback for it through the port, like any. */
        ps = tacio_poll(w->h, &w->poll, ev);
    }
    if (ps == TACIO_PENDING) {
        w->poll_pending = true;
    } else {
        obj_unref(&w->o);
        if (ps != TACIO_SUCCESS) {
            w->armed = false;
            return ps;
        }
        /* Ready now: one run, through the queue so it is on a pool thread. */
        obj_ref(&w->o);
        w->poll.bytes = w->poll.bytes ? w->poll.bytes : 1;
        tacio_status_t post = tacio_port_post(w->o.pool->port, key_of(&w->o), w->poll.bytes,
                                              &w->poll, TACIO_SUCCESS);
        if (post != TACIO_SUCCESS) {
            obj_unref(&w->o);
            w->armed = false;
            return post;
        }
        w->poll_pending = true;
        return TACIO_SUCCESS;
    }
    if (w->timeout_ms >= 0) {
        obj_ref(&w->o);
        tacio_status_t ts = tacio_timer_start(w->o.pool->port, &w->tmo, key_of(&w->o),
                                              (uint64_t)w->timeout_ms * 1000000u);
        if (ts == TACIO_PENDING)
            w->tmo_pending = true;
        else
            obj_unref(&w->o);
    }
    return TACIO_SUCCESS;
}

tacio_status_t tacio_pool_wait_set(tacio_pool_wait_t *w, int fd, unsigned events, int timeout_ms)
{
    if (!w)
        return TACIO_INVALID_HANDLE;
    if (fd < 0 || !events || (events & ~(TACIO_POOL_READABLE | TACIO_POOL_WRITABLE)) ||
        timeout_ms < TACIO_INFINITE)
        return TACIO_INVALID_PARAMETER;
    pthread_mutex_lock(&w->m);
    if (atomic_load(&w->o.closed)) {
        pthread_mutex_unlock(&w->m);
        return TACIO_INVALID_HANDLE;
    }
    w->seq++;
    w->armed = true;
    w->fd = fd;
    w->events = events;
    w->timeout_ms = timeout_ms;
    if (w->poll_pending)
        tacio_cancel(&w->poll);
    if (w->tmo_pending)
        tacio_cancel(&w->tmo);
    tacio_status_t st = wait_kick_locked(w);
    pthread_mutex_unlock(&w->m);
    return st;
}

static tacio_status_t wait_disarm(struct tacio_pool_wait *w, bool closing)
{
    pthread_mutex_lock(&w->m);
    if (!closing && atomic_load(&w->o.closed)) {
        pthread_mutex_unlock(&w->m);
        return TACIO_INVALID_HANDLE;
    }
    bool was = w->armed;
    w->armed = false;
    w->seq++;
    if (w->poll_pending)
        tacio_cancel(&w->poll);
    if (w->tmo_pending)
        tacio_cancel(&w->tmo);
    if (was)
        count_cancelled(&w->o);
    wait_kick_locked(w); /* closes the handle when nothing is pending */
    pthread_mutex_unlock(&w->m);
    return was ? TACIO_SUCCESS : TACIO_NOT_FOUND;
}

tacio_status_t tacio_pool_wait_cancel(tacio_pool_wait_t *w)
{
    if (!w)
        return TACIO_INVALID_HANDLE;
    return wait_disarm(w, false);
}

tacio_status_t tacio_pool_wait_close(tacio_pool_wait_t *w, unsigned flags)
{
    if (!w || !obj_mark_closed(&w->o, flags))
        return TACIO_INVALID_HANDLE;
    wait_disarm(w, true);
    return obj_close_tail(&w->o, flags);
}

static unsigned events_of(uint64_t revents)
{
    unsigned ev = 0;
    if (revents & (POLLIN | POLLERR | POLLHUP))
        ev |= TACIO_POOL_READABLE;
    if (revents & (POLLOUT | POLLERR | POLLHUP))
        ev |= TACIO_POOL_WRITABLE;
    return ev;
}

static void wait_deliver(struct tacio_pool_wait *w, const tacio_entry_t *e)
{
    bool is_poll = e->op == &w->poll;
    pthread_mutex_lock(&w->m);
    if (is_poll)
        w->poll_pending = false;
    else
        w->tmo_pending = false;
    /* The setting these operations belong to is the one started last. */
    bool current = w->armed && w->started_seq == w->seq;
    bool fire = current && e->status == TACIO_SUCCESS;
    tacio_status_t st = is_poll ? TACIO_SUCCESS : TACIO_TIMEOUT;
    unsigned ev = is_poll ? events_of(e->bytes) : 0;
    if (fire) {
        w->armed = false; /* one run per setting */
        if (is_poll && w->tmo_pending)
            tacio_cancel(&w->tmo);
        if (!is_poll && w->poll_pending)
            tacio_cancel(&w->poll);
        obj_ref(&w->o);
    }
    /* A setting that came meanwhile starts now; a transient NO_MEMORY is
     * retried rather than the wait going quiet. */
    bool pending_setting = w->armed && w->started_seq != w->seq;
    tacio_status_t ks = wait_kick_locked(w);
    for (int i = 0; pending_setting && i < 8 && ks == TACIO_NO_MEMORY &&
                    !atomic_load(&w->o.closed); i++) {
        w->armed = true;
        w->started_seq = w->seq - 1;
        sched_yield();
        ks = wait_kick_locked(w);
    }
    pthread_mutex_unlock(&w->m);
    obj_unref(&w->o);
    if (fire) {
        w->fn(w, w->o.ctx, st, ev);
        count_ran(&w->o);
        obj_unref(&w->o);
    }
}

/* ---- dispatch ------------------------------------------------------------------------- */

static void dispatch(struct tacio_pool *pool, const tacio_entry_t *e)
{
    struct obj *o = (struct obj *)(uintptr_t)e->key;
    struct obj *outer = me.current;
    me.current = o;
    switch (o->kind) {
    case OBJ_IO:
        io_deliver((struct tacio_pool_io *)o, e);
        break;
    case OBJ_WORK:
        work_deliver((struct tacio_pool_work *)o);
        break;
    case OBJ_TIMER:
        timer_deliver((struct tacio_pool_timer *)o, e->status);
        break;
    case OBJ_WAIT:
        wait_deliver((struct tacio_pool_wait *)o, e);
        break;
    case OBJ_CALL: {
        void (*fn)(void *) = (void (*)(void *))(uintptr_t)e->bytes;
        fn(e->op);
        atomic_fetch_add_explicit(&pool->callbacks, 1, memory_order_relaxed);
        break;
    }
    }
    me.current = outer;
    if (me.blocked)
        tacio_pool_blocking_end(); /* a callback that forgot its _end */
}

/* ---- groups --------------------------------------------------------------------------- */

tacio_status_t tacio_pool_group_create(tacio_pool_t *pool, tacio_pool_group_t **out)
{
    if (out)
        *out = NULL;
    if (!pool || !out)
        return TACIO_INVALID_PARAMETER;
    tacio_pool_group_t *g = calloc(1, sizeof *g);
    if (!g)
        return TACIO_NO_MEMORY;
    g->pool = pool;
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        free(g);
        return TACIO_INVALID_DEVICE_STATE;
    }
    g->next = pool->groups;
    if (pool->groups)
        pool->groups->prev = g;
    pool->groups = g;
    pthread_mutex_unlock(&pool->lock);
    *out = g;
    return TACIO_SUCCESS;
}

static tacio_status_t close_any(struct obj *o, unsigned flags)
{
    switch (o->kind) {
    case OBJ_IO:
        return tacio_pool_io_close((tacio_pool_io_t *)o, flags);
    case OBJ_WORK:
        return tacio_pool_work_close((tacio_pool_work_t *)o, flags);
    case OBJ_TIMER:
        return tacio_pool_timer_close((tacio_pool_timer_t *)o, flags);
    case OBJ_WAIT:
        return tacio_pool_wait_close((tacio_pool_wait_t *)o, flags);
    default:
        return TACIO_INVALID_PARAMETER;
    }
}

/* Close the first member of the list that is still open; false when none
 * is left. A reference keeps it alive across the unlocked close. */
static bool close_next_open(struct tacio_pool *pool, tacio_pool_group_t *g, unsigned flags)
{
    pthread_mutex_lock(&pool->lock);
    struct obj *o = g ? g->members : pool->all;
    while (o && (atomic_load(&o->closed) || o->zombie))
        o = g ? o->gnext : o->pnext;
    if (o)
        obj_ref(o);
    pthread_mutex_unlock(&pool->lock);
    if (!o)
        return false;
    close_any(o, flags & ~TACIO_POOL_WAIT);
    obj_unref(o);
    return true;
}

tacio_status_t tacio_pool_group_close(tacio_pool_group_t *g, unsigned flags,
                                      tacio_pool_group_fn report, void *gctx)
{
    if (!g)
        return TACIO_INVALID_PARAMETER;
    struct tacio_pool *pool = g->pool;
    bool wait = (flags & TACIO_POOL_WAIT) != 0;
    tacio_status_t st = TACIO_SUCCESS;
    if (wait && inside_own_callback(NULL, g)) {
        st = TACIO_POSSIBLE_DEADLOCK;
        wait = false;
    }
    pthread_mutex_lock(&pool->lock);
    if (g->closing) {
        pthread_mutex_unlock(&pool->lock);
        return TACIO_INVALID_HANDLE;
    }
    g->report = report;
    g->gctx = gctx;
    g->waiting = wait;
    g->closing = true;
    g->closer_active = true;
    if (g->prev)
        g->prev->next = g->next;
    else
        pool->groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    /* Members that finished before: reported now. */
    for (;;) {
        struct obj *z = g->members;
        while (z && !z->zombie)
            z = z->gnext;
        if (!z)
            break;
        z->zombie = false;
        pthread_mutex_unlock(&pool->lock);
        obj_report_and_free(z);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    while (close_next_open(pool, g, flags))
        ;
    pthread_mutex_lock(&pool->lock);
    while (wait && g->live > 0)
        pthread_cond_wait(&pool->cv, &pool->lock);
    /* Members finishing from now on free the group when the last one goes;
     * if none is left, that is this thread's job. */
    g->closer_active = false;
    bool free_now = g->live == 0;
    pthread_mutex_unlock(&pool->lock);
    if (free_now)
        free(g);
    return st;
}

/* ---- closing the pool ---------------------------------------------------------------- */

/* Only tacio_pool_submit's packets can still be queued when the port
 * closes: they are dropped, as documented. */
static void discard_at_close(const tacio_entry_t *e, void *arg)
{
    (void)e;
    (void)arg;
}

tacio_status_t tacio_pool_close(tacio_pool_t *pool)
{
    if (!pool)
        return TACIO_INVALID_PARAMETER;
    if (me.pool == pool)
        return TACIO_POSSIBLE_DEADLOCK;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        tacio_pool_group_t *g = pool->groups;
        pthread_mutex_unlock(&pool->lock);
        if (!g)
            break;
        tacio_pool_group_close(g, TACIO_POOL_CANCEL_PENDING | TACIO_POOL_WAIT, NULL, NULL);
    }
    while (close_next_open(pool, NULL, TACIO_POOL_CANCEL_PENDING))
        ;
    pthread_mutex_lock(&pool->lock);
    while (pool->objects > 0)
        pthread_cond_wait(&pool->cv, &pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->mon_cv);
    pthread_mutex_unlock(&pool->lock);
    pthread_join(pool->monitor, NULL);
    tacio_port_close(pool->port, discard_at_close, pool);
    for (unsigned i = 0; i < pool->max; i++)
        if (pool->live_used[i])
            pthread_join(pool->live[i], NULL);
    reap_zombies(pool);
    pthread_cond_destroy(&pool->cv);
    pthread_cond_destroy(&pool->mon_cv);
    pthread_mutex_destroy(&pool->lock);
    free(pool->live);
    free(pool->live_used);
    drop_attr(pool);
    free(pool);
    return TACIO_SUCCESS;
}
