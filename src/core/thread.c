/* thread.c - operations owned by the thread that started them: those with a
 * completion routine (delivered on that thread in its alertable waits) and
 * those on thread-bound handles (dequeued only by that thread). Contract
 * rule 3's opt-in: when the owner exits, its pending operations are
 * cancelled, and each still completes exactly once.
 *
 * A thread gets its record on its first owned operation (or alertable
 * wait): one allocation per thread, none per operation except when the
 * table of its pending operations has to grow.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "verify/verify.h"

struct tacio_thread {
    pthread_mutex_t m;
    _Atomic uint32_t refs;          /* 1 while the thread lives + 1 per owned record not released */
    _Atomic bool alive;
    _Atomic uint32_t apc_pending;   /* routines are queued (read without m) */
    _Atomic uint32_t alert_word;    /* futex of tacio_wait_alertable */
    _Atomic(struct tacio_port *) alert_port; /* port of an alertable dequeue in progress */
    tacio_op_t *apc_head, *apc_tail;
    tacio_op_t **pending;           /* owned operations in flight */
    unsigned npending, cap;
    struct tacio_port **ports;      /* ports it started owned operations on (ref held) */
    unsigned nports, pcap;
};

/* ---- the owner table ------------------------------------------------------
 * tacio_op_t has no room for its owner thread and routine (it stays one
 * cache line), so they are kept here, keyed by the record's address; the
 * record's word says whether to look (OPW_OWNED, OPW_ROUTINE), so records
 * that have neither never touch it. Open addressing with linear probing,
 * striped by address; an entry lives while the record has a routine set or
 * an owner. */
struct own_ent {
    const tacio_op_t *op;
    struct tacio_thread *t;
    tacio_routine_fn fn;
};
#define OWN_STRIPES 16
static struct own_stripe {
    pthread_mutex_t m;
    struct own_ent *v;
    unsigned cap, n;
} own[OWN_STRIPES] = {[0 ... OWN_STRIPES - 1] = {.m = PTHREAD_MUTEX_INITIALIZER}};

static uint64_t own_hash(const tacio_op_t *op)
{
    return ((uint64_t)(uintptr_t)op >> 4) * 0x9E3779B97F4A7C15ull;
}

static struct own_stripe *own_stripe(const tacio_op_t *op)
{
    return &own[own_hash(op) >> 60 & (OWN_STRIPES - 1)];
}

static struct own_ent *own_find_locked(struct own_stripe *s, const tacio_op_t *op)
{
    if (!s->cap)
        return NULL;
    for (unsigned i = (unsigned)own_hash(op) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i].op == op)
            return &s->v[i];
        if (!s->v[i].op)
            return NULL;
    }
}

static struct own_ent *own_insert_locked(struct own_stripe *s, const tacio_op_t *op)
{
    struct own_ent *e = own_find_locked(s, op);
    if (e)
        return e;
    if ((s->n + 1) * 4 > s->cap * 3) {
        unsigned cap = s->cap ? 2 * s->cap : 64;
        struct own_ent *v = calloc(cap, sizeof *v);
        if (!v)
            return NULL;
        for (unsigned j = 0; j < s->cap; j++) {
            if (!s->v[j].op)
                continue;
            unsigned i = (unsigned)own_hash(s->v[j].op) & (cap - 1);
            while (v[i].op)
                i = (i + 1) & (cap - 1);
            v[i] = s->v[j];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    unsigned i = (unsigned)own_hash(op) & (s->cap - 1);
    while (s->v[i].op)
        i = (i + 1) & (s->cap - 1);
    s->v[i] = (struct own_ent){.op = op};
    s->n++;
    return &s->v[i];
}

/* Backward-shift deletion: the probe chains stay unbroken without
 * tombstones. */
static void own_remove_locked(struct own_stripe *s, struct own_ent *e)
{
    unsigned mask = s->cap - 1, i = (unsigned)(e - s->v), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->v[j].op)
            break;
        unsigned home = (unsigned)own_hash(s->v[j].op) & mask;
        /* Move j into the hole at i unless its home lies in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            s->v[i] = s->v[j];
            i = j;
        }
    }
    s->v[i] = (struct own_ent){0};
    s->n--;
}

tacio_status_t tacio_op_set_routine(tacio_op_t *op, tacio_routine_fn fn)
{
    if (!op)
        return TACIO_INVALID_PARAMETER;
    if ((atomic_load_explicit(op_word(op), memory_order_acquire) & OPW_STATE_MASK) != OP_IDLE)
        return TACIO_OP_IN_USE;
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    struct own_ent *e = fn ? own_insert_locked(s, op) : own_find_locked(s, op);
    if (fn && !e) {
        pthread_mutex_unlock(&s->m);
        return TACIO_NO_MEMORY;
    }
    if (e) {
        e->fn = fn;
        if (!fn && !e->t)
            own_remove_locked(s, e);
    }
    pthread_mutex_unlock(&s->m);
    if (fn)
        atomic_fetch_or_explicit(op_word(op), OPW_ROUTINE, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(op_word(op), ~OPW_ROUTINE, memory_order_relaxed);
    return TACIO_SUCCESS;
}

struct tacio_thread *tacio__op_owner(const tacio_op_t *op)
{
    if (!op_owned(op))
        return NULL;
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    struct own_ent *e = own_find_locked(s, op);
    struct tacio_thread *t = e ? e->t : NULL;
    pthread_mutex_unlock(&s->m);
    return t;
}

static tacio_routine_fn op_routine(const tacio_op_t *op)
{
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    struct own_ent *e = own_find_locked(s, op);
    tacio_routine_fn fn = e ? e->fn : NULL;
    pthread_mutex_unlock(&s->m);
    return fn;
}

static _Thread_local struct tacio_thread *self;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_gone(void *arg);

static void make_key(void)
{
    pthread_key_create(&key, thread_gone);
}

struct tacio_thread *tacio__thread_self(bool create)
{
    if (self || !create)
        return self;
    struct tacio_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->m, NULL);
    atomic_init(&t->refs, 1);
    atomic_init(&t->alive, true);
    pthread_once(&key_once, make_key);
    if (pthread_setspecific(key, t) != 0) {
        pthread_mutex_destroy(&t->m);
        free(t);
        return NULL;
    }
    self = t;
    return t;
}

static void thread_unref(struct tacio_thread *t)
{
    /* acq_rel: every user's accesses happen before the free. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&t->m);
    free(t->pending);
    free(t->ports);
    free(t);
}

static void pending_remove_locked(struct tacio_thread *t, tacio_op_t *op)
{
    for (unsigned i = 0; i < t->npending; i++) {
        if (t->pending[i] == op) {
            t->pending[i] = t->pending[--t->npending];
            break;
        }
    }
}

void tacio__thread_release_op(tacio_op_t *op)
{
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    struct own_ent *e = own_find_locked(s, op);
    struct tacio_thread *t = e ? e->t : NULL;
    if (e) {
        e->t = NULL;
        /* A routine set before a tacio_op_init is stale: the word decides. */
        if (!op_has_routine(op))
            e->fn = NULL;
        if (!e->fn)
            own_remove_locked(s, e);
    }
    pthread_mutex_unlock(&s->m);
    atomic_fetch_and_explicit(op_word(op), ~OPW_OWNED, memory_order_relaxed);
    if (t && op_has_routine(op)) {
        /* A routine's record that ended without being queued for its thread
         * (a synchronous result, a discard at close) leaves the list here. */
        pthread_mutex_lock(&t->m);
        pending_remove_locked(t, op);
        pthread_mutex_unlock(&t->m);
    }
    if (t)
        thread_unref(t);
}

bool tacio__thread_alive(const struct tacio_thread *t)
{
    return atomic_load_explicit(&t->alive, memory_order_acquire);
}

/* Room for one more tracked operation, and the port in the list; called by
 * the owner before the operation begins, so tracking cannot fail later. */
bool tacio__thread_prepare(struct tacio_thread *t, struct tacio_port *p, tacio_op_t *op)
{
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    bool ok = own_insert_locked(s, op) != NULL;
    pthread_mutex_unlock(&s->m);
    if (!ok)
        return false;
    pthread_mutex_lock(&t->m);
    if (t->npending == t->cap) {
        unsigned cap = t->cap ? 2 * t->cap : 16;
        tacio_op_t **n = realloc(t->pending, cap * sizeof *n);
        if (n) {
            t->pending = n;
            t->cap = cap;
        } else {
            ok = false;
        }
    }
    unsigned i = 0;
    while (ok && i < t->nports && t->ports[i] != p)
        i++;
    if (ok && i == t->nports) {
        if (t->nports == t->pcap) {
            unsigned cap = t->pcap ? 2 * t->pcap : 4;
            struct tacio_port **n = realloc(t->ports, cap * sizeof *n);
            if (n) {
                t->ports = n;
                t->pcap = cap;
            } else {
                ok = false;
            }
        }
        if (ok) {
            t->ports[t->nports++] = p;
            atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&t->m);
    return ok;
}

void tacio__thread_track(struct tacio_thread *t, tacio_op_t *op)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    struct own_stripe *s = own_stripe(op);
    pthread_mutex_lock(&s->m);
    /* Inserted by prepare; inserting again only covers a record restarted
     * while its last life was still being released (a caller's race). */
    struct own_ent *e = own_insert_locked(s, op);
    if (e)
        e->t = t;
    if (e && !op_has_routine(op))
        e->fn = NULL;
    pthread_mutex_unlock(&s->m);
    atomic_fetch_or_explicit(op_word(op), OPW_OWNED, memory_order_release);
    pthread_mutex_lock(&t->m);
    t->pending[t->npending++] = op;
    pthread_mutex_unlock(&t->m);
}

void tacio__thread_untrack(tacio_op_t *op)
{
    struct tacio_thread *t = tacio__op_owner(op);
    pthread_mutex_lock(&t->m);
    pending_remove_locked(t, op);
    pthread_mutex_unlock(&t->m);
}

/* A routine's record completed: queue it for its thread and wake that
 * thread wherever it waits alertably. False when the thread is gone (the
 * caller then queues the entry on the port). */
bool tacio__thread_take_routine(tacio_op_t *op)
{
    struct tacio_thread *t = tacio__op_owner(op);
    pthread_mutex_lock(&t->m);
    /* Off the pending list and onto the routine queue in one step: an
     * exiting owner waits while the list is not empty, so it cannot finish
     * between the record's completion and its queueing here (it once did,
     * and the routine's entry went to the port instead). */
    pending_remove_locked(t, op);
    if (!atomic_load_explicit(&t->alive, memory_order_relaxed)) {
        pthread_mutex_unlock(&t->m);
        return false;
    }
    op->priv_next = NULL;
    if (t->apc_tail)
        t->apc_tail->priv_next = op;
    else
        t->apc_head = op;
    t->apc_tail = op;
    pthread_mutex_unlock(&t->m);
    /* The flag before the wakes: a waiter checks it after registering. */
    atomic_store_explicit(&t->apc_pending, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&t->alert_word, 1, memory_order_seq_cst);
    syscall(SYS_futex, &t->alert_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    struct tacio_port *p = atomic_load_explicit(&t->alert_port, memory_order_seq_cst);
    if (p)
        tacio__port_wake_thread(p, t);
    return true;
}

bool tacio__thread_apc_pending(const struct tacio_thread *t)
{
    return atomic_load_explicit(&t->apc_pending, memory_order_seq_cst) != 0;
}

void tacio__thread_set_alert_port(struct tacio_thread *t, struct tacio_port *p)
{
    atomic_store_explicit(&t->alert_port, p, memory_order_seq_cst);
}

/* Run the routines owed, in completion order. The record is released
 * before its routine runs, so the routine may restart or free it. */
unsigned tacio__thread_run_apcs(struct tacio_thread *t)
{
    unsigned n = 0;
    for (;;) {
        pthread_mutex_lock(&t->m);
        tacio_op_t *list = t->apc_head;
        t->apc_head = t->apc_tail = NULL;
        atomic_store_explicit(&t->apc_pending, 0, memory_order_seq_cst);
        pthread_mutex_unlock(&t->m);
        if (!list)
            return n;
        while (list) {
            tacio_op_t *op = list;
            list = op->priv_next;
            op->priv_next = NULL;
            tacio_routine_fn fn = op_routine(op);
            tacio_status_t st = op->status;
            uint64_t bytes = op->bytes;
            if (tacio__verifying())
                tacio__verify_delivered(op, "routine");
            tacio__op_release(op);
            fn(op, st, bytes);
            n++;
        }
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

tacio_status_t tacio_wait_alertable(int timeout_ms)
{
    struct tacio_thread *t = tacio__thread_self(true);
    if (!t)
        return TACIO_NO_MEMORY;
    int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&t->alert_word, memory_order_seq_cst);
        if (tacio__thread_apc_pending(t) && tacio__thread_run_apcs(t))
            return TACIO_USER_APC;
        if (timeout_ms == 0)
            return TACIO_TIMEOUT;
        int64_t left = timeout_ms > 0 ? deadline - mono_ms() : 50;
        if (left <= 0)
            return TACIO_TIMEOUT;
        /* Operations of this thread in flight complete only if someone
         * reaps their port: reap it here when nobody else does (on one
         * port, waiting in it; on several, in turns). */
        pthread_mutex_lock(&t->m);
        unsigned inflight = t->npending, nports = t->nports;
        pthread_mutex_unlock(&t->m);
        if (inflight && nports) {
            int slice = nports == 1 ? (int)(left < 50 ? left : 50) : 1;
            for (unsigned i = 0; i < nports; i++)
                tacio__port_progress(t->ports[i], t, slice);
            continue;
        }
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000};
        syscall(SYS_futex, &t->alert_word, FUTEX_WAIT_PRIVATE, seen,
                timeout_ms > 0 ? &ts : NULL, NULL, 0);
    }
}

/* The owner exits (contract rule 3's opt-in): cancel what it still has in
 * flight, help the ports make progress until those operations have
 * completed (io_uring needs a thread to reap the cancellations), run the
 * routines owed here, on this thread, and send completions nobody can
 * take on it any more to the ports. */
static void thread_gone(void *arg)
{
    struct tacio_thread *t = arg;
    pthread_mutex_lock(&t->m);
    unsigned n = t->npending;
    tacio_op_t **copy = n ? malloc(n * sizeof *copy) : NULL;
    if (copy)
        memcpy(copy, t->pending, n * sizeof *copy);
    pthread_mutex_unlock(&t->m);
    for (unsigned i = 0; copy && i < n; i++)
        tacio_cancel(copy[i]);
    free(copy);
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&t->m);
        unsigned left = t->npending;
        pthread_mutex_unlock(&t->m);
        tacio__thread_run_apcs(t);
        if (!left || mono_ms() > deadline)
            break;
        for (unsigned i = 0; i < t->nports; i++)
            tacio__port_progress(t->ports[i], t, 1);
    }
    pthread_mutex_lock(&t->m);
    atomic_store_explicit(&t->alive, false, memory_order_release);
    pthread_mutex_unlock(&t->m);
    tacio__thread_run_apcs(t);
    for (unsigned i = 0; i < t->nports; i++) {
        tacio__port_redirect(t->ports[i], t);
        tacio__port_unref(t->ports[i]);
    }
    t->nports = 0;
    self = NULL;
    thread_unref(t);
}
