/* port.c - the completion queue, its waiters and the concurrency value.
 *
 * Entries are FIFO. Waiting threads are of two kinds: at most one "poller"
 * waits inside the backend (io_uring_enter) and turns kernel results into
 * entries; the others sleep on a futex, stacked LIFO so the most recent
 * waiter is released first. The poller role is sticky: a thread that
 * returns to dequeue with nobody polling takes it again, which keeps the
 * kernel's task work for the operations it issued on the thread that waits
 * (docs/design.md explains the trade and the fall-back timer). */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "diag/capture.h"
#include "diag/record.h"
#include "verify/verify.h"

/* A follower that sees no poller takes the role after this long, so results
 * still arrive while the last poller runs a long entry. */
#define POLLER_VACANCY_MS 2

struct tls {
    struct tacio_port *running;  /* port this thread counts as running on */
    bool blocked;                /* inside blocking_begin/end */
    struct tacio_port *deferred; /* port with submissions this thread batched */
    tacio_op_t *packets;         /* free packet records, any port's: freed at exit */
};
/* initial-exec: read on every operation start; the general-dynamic model a
 * shared library gets by default costs a __tls_get_addr call each time. */
static _Thread_local struct tls tls __attribute__((tls_model("initial-exec")));
static _Thread_local char tls_err[256];
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static bool leave_running_locked(struct tacio_port *p);
static bool hold_for_kick_locked(struct tacio_port *p, bool kick);
static void kick_after_unlock(struct tacio_port *p, bool kick);
static void ring_reset(struct tacio_port *p);

/* Runs when a thread that batched submissions or counted as running exits,
 * so neither is lost with it. Thread-local storage is still valid here. */
static void thread_exit(void *unused)
{
    (void)unused;
    while (tls.packets) {
        tacio_op_t *n = tls.packets->priv_next;
        free(tls.packets);
        tls.packets = n;
    }
    struct tacio_port *d = tls.deferred;
    tls.deferred = NULL;
    if (d && d->magic == PORT_MAGIC)
        d->be->flush(d);
    struct tacio_port *r = tls.running;
    if (r && r->magic == PORT_MAGIC) {
        pthread_mutex_lock(&r->lock);
        bool kick = hold_for_kick_locked(r, leave_running_locked(r));
        pthread_mutex_unlock(&r->lock);
        kick_after_unlock(r, kick);
    }
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, thread_exit);
}

static void arm_exit_hook(void)
{
    pthread_once(&exit_once, make_exit_key);
    if (!pthread_getspecific(exit_key))
        pthread_setspecific(exit_key, &tls);
}

void tacio__set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
}

const char *tacio_last_error(void)
{
    return tls_err;
}

bool tacio__port_should_defer(struct tacio_port *p)
{
    return tls.running == p && !tls.blocked;
}

void tacio__note_deferred(struct tacio_port *p)
{
    if (tls.deferred == p)
        return;
    if (tls.deferred && tls.deferred->magic == PORT_MAGIC)
        tls.deferred->be->flush(tls.deferred);
    tls.deferred = p;
    arm_exit_hook();
}

static void flush_deferred(struct tacio_port *p)
{
    if (tls.deferred == p) {
        tls.deferred = NULL;
        p->be->flush(p);
    }
}

/* ---- futex ---------------------------------------------------------------- */

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- ports: life ------------------------------------------------------------- */

static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tacio_port *free_ports;

static const struct tacio_backend *backend_named(const char *name)
{
    if (strcmp(name, "io_uring") == 0)
        return &tacio__backend_uring;
    if (strcmp(name, "epoll") == 0)
        return &tacio__backend_epoll; /* NULL when not built */
    return NULL;
}

/* Set up p with the requested backend, or with io_uring falling back to
 * epoll when none is requested. p->why says what happened. */
static tacio_status_t init_backend(struct tacio_port *p, const char *name, unsigned depth)
{
    bool chosen = name && *name;
    if (!chosen) {
        name = getenv("TACIO_BACKEND");
        chosen = name && *name;
    }
    const struct tacio_backend *be = backend_named(chosen ? name : "io_uring");
    if (!be) {
        snprintf(p->why, sizeof p->why, "unknown or unbuilt backend \"%s\" (known: io_uring%s)",
                 name, ", epoll");
        return TACIO_NOT_SUPPORTED;
    }
    p->be = be;
    tacio_status_t st = be->init(p, depth, p->why, sizeof p->why);
    if (st == TACIO_NOT_SUPPORTED && !chosen) {
        char first[160];
        snprintf(first, sizeof first, "%.159s", p->why);
        p->be = &tacio__backend_epoll;
        st = p->be->init(p, depth, p->why, sizeof p->why);
        if (st == TACIO_SUCCESS)
            snprintf(p->why, sizeof p->why, "epoll, because %s", first);
    }
    if (st == TACIO_SUCCESS && tacio__faults_active())
        p->be = tacio__faults_wrap(p);
    return st;
}

tacio_status_t tacio_port_create(tacio_port_t **out, unsigned concurrency)
{
    tacio_port_options_t o = {.concurrency = concurrency};
    return tacio_port_create_ex(out, &o);
}

tacio_status_t tacio_port_create_ex(tacio_port_t **out, const tacio_port_options_t *opts)
{
    tacio__diag_autoinstall(); /* TACIO_DIAG / TACIO_CAPTURE for any tacio program */
    tacio__verify_autoinit();  /* TACIO_VERIFY */
    tls_err[0] = 0;
    if (!out)
        return TACIO_INVALID_PARAMETER;
    *out = NULL;
    tacio_port_options_t o = opts ? *opts : (tacio_port_options_t){0};
    pthread_mutex_lock(&free_lock);
    struct tacio_port *p = free_ports;
    if (p)
        free_ports = p->free_next;
    pthread_mutex_unlock(&free_lock);
    struct post_slot *ring = p ? p->ring : NULL;
    if (!p) {
        void *m;
        if (!(p = malloc(sizeof *p)))
            return TACIO_NO_MEMORY;
        if (posix_memalign(&m, 64, RING_SLOTS * sizeof *ring)) {
            free(p);
            return TACIO_NO_MEMORY;
        }
        ring = m;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->slot_cv, NULL);
    }
    memset((char *)p + offsetof(struct tacio_port, magic), 0,
           sizeof *p - offsetof(struct tacio_port, magic));
    p->ring = ring;
    ring_reset(p);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    p->concurrency = o.concurrency ? o.concurrency : (unsigned)(ncpu > 0 ? ncpu : 1);
    p->timers.type = H_TIMER;
    p->timers.fd = -1;
    p->timers.port = p;
    p->timers.magic = HANDLE_MAGIC;
    atomic_init(&p->timers.refs, 1);
    atomic_init(&p->refs, 1);
    tacio_status_t st = init_backend(p, o.backend, o.queue_depth ? o.queue_depth : 256);
    if (st == TACIO_SUCCESS && getenv("TACIO_DEBUG"))
        fprintf(stderr, "tacio: port %p: %s\n", (void *)p, p->why);
    if (st != TACIO_SUCCESS) {
        tacio__set_error("%s", p->why);
        p->magic = PORT_DEAD;
        pthread_mutex_lock(&free_lock);
        p->free_next = free_ports;
        free_ports = p;
        pthread_mutex_unlock(&free_lock);
        return st;
    }
    p->magic = PORT_MAGIC;
    *out = p;
    return TACIO_SUCCESS;
}

static bool port_open(const struct tacio_port *p)
{
    return p && p->magic == PORT_MAGIC &&
           !atomic_load_explicit(&p->closed, memory_order_acquire);
}

void tacio__port_unref(struct tacio_port *p)
{
    if (!p)
        return;
    /* acq_rel: the last handle's uses of the port happen before its reuse. */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    p->be->destroy(p);
    pthread_mutex_lock(&free_lock);
    p->free_next = free_ports;
    free_ports = p;
    pthread_mutex_unlock(&free_lock);
}

tacio_status_t tacio_port_info(tacio_port_t *p, tacio_port_info_t *info)
{
    if (!info)
        return TACIO_INVALID_PARAMETER;
    if (!port_open(p))
        return TACIO_INVALID_HANDLE;
    info->backend = p->be->name;
    info->concurrency = p->concurrency;
    info->why = p->why;
    return TACIO_SUCCESS;
}

tacio_status_t tacio_port_stats(tacio_port_t *p, tacio_stats_t *o)
{
    if (!o)
        return TACIO_INVALID_PARAMETER;
    if (!p || (p->magic != PORT_MAGIC && p->magic != PORT_DEAD))
        return TACIO_INVALID_HANDLE;
#define RD(f) o->f = atomic_load_explicit(&p->st.f, memory_order_relaxed)
    RD(completions);
    RD(sync_completions);
    RD(posted);
    RD(dropped_duplicates);
    RD(dropped_stale);
    RD(reissued_after_exit);
    RD(discarded_at_close);
    RD(cancels_retried);
#undef RD
    return TACIO_SUCCESS;
}

/* ---- the queue ------------------------------------------------------------- */

static void wake_waiter_locked(struct tacio_port *p)
{
    struct waiter *w = p->waiters;
    if (!w)
        return;
    p->waiters = w->next;
    w->next = NULL;
    /* release: the waiter's reads of the queue come after it sees woken. */
    atomic_store_explicit(&w->woken, 1, memory_order_release);
    futex_wake(&w->woken);
}

/* ---- the ring ---------------------------------------------------------------- */

#define RING_MASK (RING_SLOTS - 1)
_Static_assert((RING_SLOTS & RING_MASK) == 0, "RING_SLOTS is a power of two");
_Static_assert(sizeof(struct post_slot) == 32, "two ring slots to a cache line");

enum { SLOT_FREE = 0, SLOT_PACKET = 1, SLOT_RECORD = 2 };
enum claim { CLAIMED, RING_FULL, RING_SHUT };

static void ring_reset(struct tacio_port *p)
{
    for (uint32_t i = 0; i < RING_SLOTS; i++)
        atomic_init(&p->ring[i].seq, i * 4u);
    atomic_init(&p->rhead, 0);
    atomic_init(&p->rtail, 0);
    atomic_init(&p->ovf, false);
}

/* Claim the next position, Vyukov's bounded queue: positions are taken in
 * order by CAS on rtail, each slot says whether its previous round was
 * consumed. Any thread, no lock. */
static enum claim ring_claim(struct tacio_port *p, struct post_slot **slot, uint32_t *pos)
{
    uint64_t t = atomic_load_explicit(&p->rtail, memory_order_relaxed);
    for (;;) {
        if (t & RING_CLOSED)
            return RING_SHUT;
        uint32_t at = (uint32_t)t;
        struct post_slot *s = &p->ring[at & RING_MASK];
        /* acquire: the consumer's reads of the slot's last round come first. */
        uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int32_t d = (int32_t)(seq - at * 4u);
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&p->rtail, &t, t + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *slot = s;
                *pos = at;
                return CLAIMED;
            }
        } else if (d < 0) {
            return RING_FULL; /* the slot still holds position at - RING_SLOTS */
        } else {
            t = atomic_load_explicit(&p->rtail, memory_order_relaxed);
        }
    }
}

/* seq_cst: with the sleeper count, see sleep_announce_locked. */
static void ring_publish(struct post_slot *s, uint32_t pos, unsigned kind)
{
    atomic_store_explicit(&s->seq, pos * 4u + kind, memory_order_seq_cst);
}

static unsigned slot_state(struct tacio_port *p, uint32_t pos, memory_order mo)
{
    uint32_t seq = atomic_load_explicit(&p->ring[pos & RING_MASK].seq, mo);
    uint32_t d = seq - pos * 4u;
    return d <= SLOT_RECORD ? d : SLOT_FREE;
}

/* The ring holds no entry, published or claimed. */
static bool ring_empty_locked(struct tacio_port *p)
{
    uint64_t t = atomic_load_explicit(&p->rtail, memory_order_acquire);
    return (uint32_t)t == atomic_load_explicit(&p->rhead, memory_order_relaxed);
}

static bool posts_waiting(struct tacio_port *p, memory_order mo)
{
    return slot_state(p, atomic_load_explicit(&p->rhead, memory_order_relaxed), mo) != SLOT_FREE;
}

/* Entries can be taken now: the ring's head is published, or the ring is
 * empty and the overflow list is not. */
static bool queue_ready_locked(struct tacio_port *p)
{
    return posts_waiting(p, memory_order_acquire) || (p->qhead && ring_empty_locked(p));
}

static void overflow_push_locked(struct tacio_port *p, tacio_op_t *op)
{
    op->priv_next = NULL;
    if (p->qtail)
        p->qtail->priv_next = op;
    else
        p->qhead = op;
    p->qtail = op;
    if (!atomic_load_explicit(&p->ovf, memory_order_relaxed))
        atomic_store_explicit(&p->ovf, true, memory_order_relaxed);
}

/* Queue one finished record (under lock): into the ring while it has room
 * and nothing overflowed, else behind everything on the overflow list. */
static void queue_record_locked(struct tacio_port *p, tacio_op_t *op)
{
    struct post_slot *s;
    uint32_t pos;
    if (!atomic_load_explicit(&p->ovf, memory_order_relaxed) &&
        ring_claim(p, &s, &pos) == CLAIMED) {
        s->ptr = op;
        ring_publish(s, pos, SLOT_RECORD);
        return;
    }
    overflow_push_locked(p, op);
}

/* A published slot as the entry it stands for: a packet whole, a record as
 * e.op with kind 0 (deliver() or discard_entry() finishes it). */
static tacio_entry_t slot_entry(const struct post_slot *s, unsigned st)
{
    if (st == SLOT_RECORD)
        return (tacio_entry_t){.op = s->ptr};
    return (tacio_entry_t){.op = s->ptr, .key = s->key, .bytes = s->bytes, .status = s->status,
                           .kind = TACIO_ENTRY_POSTED};
}

/* Take up to max entries into e (under lock), ring first. A posted packet is
 * copied out whole; a record goes as e->op with kind 0, for deliver() to
 * fill in and release after the lock is dropped. */
static unsigned take_locked(struct tacio_port *p, tacio_entry_t *e, unsigned max)
{
    unsigned n = 0, packets = 0;
    uint32_t pos = atomic_load_explicit(&p->rhead, memory_order_relaxed);
    while (n < max) {
        struct post_slot *s = &p->ring[pos & RING_MASK];
        unsigned st = slot_state(p, pos, memory_order_acquire);
        if (st == SLOT_FREE)
            break;
        e[n] = slot_entry(s, st);
        packets += st == SLOT_PACKET;
        /* release: this round's reads come before the next claim's writes. */
        atomic_store_explicit(&s->seq, (pos + RING_SLOTS) * 4u, memory_order_release);
        pos++;
        n++;
    }
    atomic_store_explicit(&p->rhead, pos, memory_order_relaxed);
    if (packets) {
        stat_add(&p->st.posted, packets);
        if (!atomic_load_explicit(&p->posts_flowing, memory_order_relaxed))
            atomic_store_explicit(&p->posts_flowing, true, memory_order_relaxed);
    }
    /* The overflow list only once nothing is left in the ring before it. */
    if (n < max && p->qhead && ring_empty_locked(p)) {
        while (n < max && p->qhead) {
            tacio_op_t *op = p->qhead;
            p->qhead = op->priv_next;
            op->priv_next = NULL;
            e[n++] = (tacio_entry_t){.op = op};
        }
        if (!p->qhead) {
            p->qtail = NULL;
            atomic_store_explicit(&p->ovf, false, memory_order_relaxed);
        }
    }
    return n;
}

/* A consumer about to sleep while packets are being posted spins this long
 * first: the next one usually comes sooner than a sleep and a wake-up
 * (a futex or io_uring_enter round trip each side) would take. */
#define POST_SPIN_NS 3000

static bool spin_for_posts(struct tacio_port *p)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 1;; i++) {
        /* Every 8th turn only: each look pulls the posting thread's line
         * away from it, and its next push then waits for it. */
        if (i % 8 == 0 &&
            (posts_waiting(p, memory_order_relaxed) ||
             atomic_load_explicit(&p->closed, memory_order_relaxed)))
            return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
        if (i % 32 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > POST_SPIN_NS)
                return false;
        }
    }
}

/* Going to sleep for entries (the caller holds the lock): counted first,
 * then the posts looked at again, in that order (seq_cst, against the
 * post's push then load of sleepers), so a packet pushed meanwhile is
 * either seen here or its post sees a sleeper and takes the slow path. */
static bool sleep_announce_locked(struct tacio_port *p)
{
    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
    /* Packets stay in the ring until taken: only a thread that may take
     * them now must not sleep (a full running count releases a sleeper
     * when it drops, release_locked). */
    if (p->running < p->concurrency && posts_waiting(p, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

static void sleep_done(struct tacio_port *p)
{
    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
}

/* A packet record on one cache line: the fields a packet uses (status,
 * bytes, user, priv_next, priv_slot, priv_arg) are all in the first 64
 * bytes, the rest stays zero from allocation. */
static tacio_op_t *packet_get(struct tacio_port *p)
{
    tacio_op_t *pk = tls.packets;
    if (!pk) {
        if (!atomic_load_explicit(&p->free_in, memory_order_relaxed) ||
            !(pk = atomic_exchange_explicit(&p->free_in, NULL, memory_order_acquire))) {
            void *m;
            if (posix_memalign(&m, 64, sizeof *pk))
                return NULL;
            return memset(m, 0, sizeof *pk);
        }
        arm_exit_hook();
    }
    tls.packets = pk->priv_next;
    return pk;
}
_Static_assert(offsetof(tacio_op_t, priv_arg) + sizeof(uint64_t) <= 64,
               "a packet's fields fit one cache line");

/* Entries may be waiting and a thread may run: release the most recent
 * waiter, or make the poller return. True if the caller must call be->wake
 * after unlocking. */
static bool release_locked(struct tacio_port *p)
{
    if (p->running >= p->concurrency || !queue_ready_locked(p))
        return false;
    if (p->waiters) {
        wake_waiter_locked(p);
        return false;
    }
    return p->poller;
}

/* A wake decided under p->lock is made after it is released. The port
 * reference taken here keeps the backend alive until then, whatever a
 * concurrent close does meanwhile. */
static bool hold_for_kick_locked(struct tacio_port *p, bool kick)
{
    if (kick)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return kick;
}

static void kick_after_unlock(struct tacio_port *p, bool kick)
{
    if (!kick)
        return;
    p->be->wake(p);
    tacio__port_unref(p);
}

static bool leave_running_locked(struct tacio_port *p)
{
    if (tls.running != p)
        return false;
    if (!tls.blocked && p->running) {
        p->running--;
        if (p->slot_waiters)
            pthread_cond_signal(&p->slot_cv);
    }
    tls.running = NULL;
    tls.blocked = false;
    return release_locked(p);
}

static void append_locked(struct tacio_port *p, struct oplist *l)
{
    tacio_op_t *op = l->head;
    while (op) {
        tacio_op_t *next = op->priv_next;
        queue_record_locked(p, op);
        op = next;
    }
    *l = (struct oplist){0};
}

static void discard_entry(struct tacio_port *p, tacio_op_t *op);

/* Owned records leave l: a routine's goes to its thread (thread.c), a
 * thread-bound handle's to *directed while its thread lives. Called
 * without p->lock (a routine's thread is woken under it). */
static void split_owned(struct oplist *l, struct oplist *directed)
{
    tacio_op_t *op = l->head;
    while (op && !op_owned(op))
        op = op->priv_next;
    if (!op)
        return; /* the common case: nobody owns these */
    struct oplist keep = {0};
    op = l->head;
    while (op) {
        tacio_op_t *next = op->priv_next;
        op->priv_next = NULL;
        struct tacio_thread *t = tacio__op_owner(op);
        if (!t)
            oplist_push(&keep, op);
        else if (op_has_routine(op)) {
            if (!tacio__thread_take_routine(op))
                oplist_push(&keep, op); /* its thread is gone: any thread may take it */
        } else if (tacio__thread_alive(t))
            oplist_push(directed, op);
        else
            oplist_push(&keep, op);
        op = next;
    }
    *l = keep;
}

/* Wake t where it waits on p: its own waiter record, or the poll. */
static bool wake_owner_locked(struct tacio_port *p, struct tacio_thread *t)
{
    for (struct waiter **w = &p->waiters; *w; w = &(*w)->next) {
        if ((*w)->owner == t) {
            struct waiter *me = *w;
            *w = me->next;
            me->next = NULL;
            atomic_store_explicit(&me->woken, 1, memory_order_release);
            futex_wake(&me->woken);
            return false;
        }
    }
    return p->poller && p->poller_owner == t;
}

static bool append_directed_locked(struct tacio_port *p, struct oplist *d)
{
    bool kick = false;
    while (d->head) {
        tacio_op_t *op = d->head;
        d->head = op->priv_next;
        op->priv_next = NULL;
        if (p->dtail)
            p->dtail->priv_next = op;
        else
            p->dhead = op;
        p->dtail = op;
        p->dcount++;
        struct tacio_thread *t = tacio__op_owner(op);
        /* Its thread may have died since split_owned: then anyone takes it. */
        kick |= tacio__thread_alive(t) ? wake_owner_locked(p, t) : release_locked(p);
    }
    *d = (struct oplist){0};
    return kick;
}

static void unlink_directed_locked(struct tacio_port *p, tacio_op_t *prev, tacio_op_t *op)
{
    if (prev)
        prev->priv_next = op->priv_next;
    else
        p->dhead = op->priv_next;
    if (p->dtail == op)
        p->dtail = prev;
    p->dcount--;
    op->priv_next = NULL;
}

/* Up to max thread-bound entries the calling thread may take (its own, and
 * those of threads that died before taking theirs), into e as take_locked
 * does. */
static unsigned take_directed_locked(struct tacio_port *p, struct tacio_thread *me,
                                     tacio_entry_t *e, unsigned max)
{
    unsigned n = 0;
    tacio_op_t *prev = NULL, *op = p->dhead;
    while (op && n < max) {
        tacio_op_t *next = op->priv_next;
        struct tacio_thread *t = tacio__op_owner(op);
        if (t == me || !tacio__thread_alive(t)) {
            unlink_directed_locked(p, prev, op);
            e[n++] = (tacio_entry_t){.op = op};
        } else {
            prev = op;
        }
        op = next;
    }
    return n;
}

void tacio__port_wake_thread(struct tacio_port *p, struct tacio_thread *t)
{
    pthread_mutex_lock(&p->lock);
    bool kick = hold_for_kick_locked(p, wake_owner_locked(p, t));
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
}

void tacio__port_redirect(struct tacio_port *p, struct tacio_thread *t)
{
    pthread_mutex_lock(&p->lock);
    struct oplist l = {0};
    tacio_op_t *prev = NULL, *op = p->dhead;
    while (op) {
        tacio_op_t *next = op->priv_next;
        if (tacio__op_owner(op) == t) {
            unlink_directed_locked(p, prev, op);
            oplist_push(&l, op);
        } else {
            prev = op;
        }
        op = next;
    }
    if (p->collected) {
        pthread_mutex_unlock(&p->lock);
        while (l.head) {
            tacio_op_t *op = l.head;
            l.head = op->priv_next;
            discard_entry(p, op);
        }
        return;
    }
    append_locked(p, &l);
    bool kick = hold_for_kick_locked(p, release_locked(p));
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
}

/* An exiting owner waits for its cancelled operations: reap once if nobody
 * else is reaping, else give the reaper a moment. */
void tacio__port_progress(struct tacio_port *p, struct tacio_thread *t, int ms)
{
    pthread_mutex_lock(&p->lock);
    if (p->poller || atomic_load_explicit(&p->closed, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->lock);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        return;
    }
    p->poller = true;
    p->poller_owner = t; /* a routine queued for t by another thread ends the wait */
    tacio__thread_set_alert_port(t, p);
    pthread_mutex_unlock(&p->lock);
    struct oplist l = {0}, d = {0};
    p->be->wait(p, ms, &l);
    tacio__thread_set_alert_port(t, NULL);
    split_owned(&l, &d);
    pthread_mutex_lock(&p->lock);
    p->poller = false;
    p->poller_owner = NULL;
    append_locked(p, &l);
    bool kick = append_directed_locked(p, &d);
    kick |= release_locked(p);
    kick = hold_for_kick_locked(p, kick);
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
}

void tacio__port_complete_list(struct tacio_port *p, struct oplist *l)
{
    if (!l->head)
        return;
    struct oplist directed = {0};
    split_owned(l, &directed);
    if (!l->head && !directed.head)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->collected) {
        /* Only a start call racing the very end of a close gets here. */
        pthread_mutex_unlock(&p->lock);
        while (directed.head) {
            tacio_op_t *op = directed.head;
            directed.head = op->priv_next;
            oplist_push(l, op);
        }
        while (l->head) {
            tacio_op_t *op = l->head;
            l->head = op->priv_next;
            discard_entry(p, op);
        }
        l->tail = NULL;
        l->n = 0;
        return;
    }
    /* While a close is in progress, entries still queue: the closing thread
     * hands them to discard. */
    append_locked(p, l);
    bool kick = append_directed_locked(p, &directed);
    kick = hold_for_kick_locked(p, release_locked(p) || kick);
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
    *l = (struct oplist){0};
}

static void fill_entry(tacio_entry_t *e, tacio_op_t *op)
{
    unsigned kind = op_kind(op);
    if (kind == K_POSTED) {
        e->op = op->user;
        e->key = op->priv_arg;
        e->bytes = op->bytes;
        e->status = op->status;
        e->kind = TACIO_ENTRY_POSTED;
        return;
    }
    e->op = op;
    e->key = kind == K_TIMER ? (uint64_t)(uintptr_t)op->priv_buf : op_handle(op)->key;
    e->bytes = op->bytes;
    e->status = op->status;
    e->kind = TACIO_ENTRY_OP;
}

static void free_packets(struct tacio_port *p, tacio_op_t *head, tacio_op_t *tail)
{
    tacio_op_t *old = atomic_load_explicit(&p->free_in, memory_order_relaxed);
    do
        tail->priv_next = old;
    while (!atomic_compare_exchange_weak_explicit(&p->free_in, &old, head, memory_order_release,
                                                  memory_order_relaxed));
}

/* Finish the n entries taken under lock: records (kind 0) are filled in and
 * released. Packets were copied whole by take_locked. */
static unsigned deliver(struct tacio_port *p, tacio_entry_t *entries, unsigned n)
{
    tacio_op_t *ph = NULL, *pt = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].kind)
            continue;
        tacio_op_t *op = entries[i].op;
        fill_entry(&entries[i], op);
        if (op_kind(op) == K_POSTED) {
            op->priv_next = ph;
            ph = op;
            if (!pt)
                pt = op;
            stat_add(&p->st.posted, 1);
        } else {
            if (tacio__verifying())
                tacio__verify_delivered(op, "dequeue");
            /* A pool handle's reference goes when its callback returned. */
            if (op_handle(op)->flags & H_FLAG_HOLD)
                tacio__op_release_keep_handle(op);
            else
                tacio__op_release(op);
        }
    }
    if (ph)
        free_packets(p, ph, pt);
    stat_add(&p->st.completions, n);
    /* First-chance capture on a delivered status (src/diag): one relaxed
     * load while no trigger is armed. */
    if (atomic_load_explicit(&tacio__capture_armed, memory_order_relaxed))
        for (unsigned i = 0; i < n; i++)
            tacio__capture_status(entries[i].status, entries[i].op, entries[i].key);
    return n;
}

tacio_status_t tacio_port_dequeue(tacio_port_t *p, tacio_entry_t *entries, unsigned max,
                                  unsigned *count, int timeout_ms)
{
    return tacio_port_dequeue_ex(p, entries, max, count, timeout_ms, 0);
}

tacio_status_t tacio_port_dequeue_ex(tacio_port_t *p, tacio_entry_t *entries, unsigned max,
                                     unsigned *count, int timeout_ms, unsigned flags)
{
    if (count)
        *count = 0;
    if (!entries || !count || max == 0 || (flags & ~TACIO_DEQUEUE_ALERTABLE))
        return TACIO_INVALID_PARAMETER;
    /* One load: a close between two could make an open port look invalid. */
    uint32_t magic = p ? atomic_load_explicit(&p->magic, memory_order_acquire) : 0;
    if (magic == PORT_DEAD)
        return TACIO_ABANDONED;
    if (magic != PORT_MAGIC)
        return TACIO_INVALID_HANDLE;
    atomic_fetch_add_explicit(&p->inside, 1, memory_order_acquire);
    flush_deferred(p);
    struct tacio_port *other = tls.running;
    if (other && other != p && other->magic == PORT_MAGIC) {
        /* Waiting here ends this thread's running period on the other port too. */
        pthread_mutex_lock(&other->lock);
        bool k = hold_for_kick_locked(other, leave_running_locked(other));
        pthread_mutex_unlock(&other->lock);
        kick_after_unlock(other, k);
    }
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    tacio_status_t st;
    unsigned got = 0;
    struct waiter me;
    struct tacio_thread *self = tacio__thread_self(false);
    bool alertable = (flags & TACIO_DEQUEUE_ALERTABLE) && self;
    if (alertable)
        tacio__thread_set_alert_port(self, p);

    bool spun = false;
    pthread_mutex_lock(&p->lock);
    bool kick = leave_running_locked(p);
    for (;;) {
        if (atomic_load_explicit(&p->closed, memory_order_relaxed)) {
            st = TACIO_ABANDONED;
            break;
        }
        /* Checked under the lock after alert_port was set: a routine
         * queued later finds this thread's waiter and wakes it. */
        if (alertable && tacio__thread_apc_pending(self)) {
            st = TACIO_USER_APC;
            break;
        }
        /* Thread-bound completions only this thread can take: handed over
         * whatever the concurrency value says, since nobody else may. */
        if (p->dcount && (got = take_directed_locked(p, self, entries, max)) != 0) {
            if (tls.running != p && !tls.deferred)
                arm_exit_hook();
            p->running++;
            tls.running = p;
            tls.blocked = false;
            st = TACIO_SUCCESS;
            break;
        }
        if (p->running < p->concurrency && (got = take_locked(p, entries, max)) != 0) {
            if (tls.running != p && !tls.deferred)
                arm_exit_hook();
            p->running++;
            tls.running = p;
            tls.blocked = false;
            if (p->waiters)
                kick |= release_locked(p);
            st = TACIO_SUCCESS;
            break;
        }
        int left = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : (int)(deadline - now_ms());
        if (timeout_ms > 0 && left <= 0) {
            st = TACIO_TIMEOUT;
            break;
        }
        if (timeout_ms != 0 && !spun && p->running < p->concurrency &&
            atomic_load_explicit(&p->posts_flowing, memory_order_relaxed)) {
            spun = true;
            pthread_mutex_unlock(&p->lock);
            if (!spin_for_posts(p))
                atomic_store_explicit(&p->posts_flowing, false, memory_order_relaxed);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (!p->poller && p->running < p->concurrency) {
            if (!sleep_announce_locked(p))
                continue;
            struct oplist l = {0}, d = {0};
            p->poller = true;
            p->poller_owner = self;
            pthread_mutex_unlock(&p->lock);
            tacio_status_t ws = p->be->wait(p, left, &l);
            split_owned(&l, &d);
            pthread_mutex_lock(&p->lock);
            sleep_done(p);
            p->poller = false;
            p->poller_owner = NULL;
            append_locked(p, &l);
            kick |= append_directed_locked(p, &d);
            if (ws == TACIO_TIMEOUT && !queue_ready_locked(p) && !p->dcount && timeout_ms >= 0) {
                st = TACIO_TIMEOUT;
                break;
            }
            continue;
        }
        if (timeout_ms == 0) {
            st = TACIO_TIMEOUT;
            break;
        }
        if (!sleep_announce_locked(p))
            continue;
        me.next = p->waiters;
        me.owner = self;
        atomic_init(&me.woken, 0);
        p->waiters = &me;
        int wait_ms = left;
        if (!p->poller && (wait_ms < 0 || wait_ms > POLLER_VACANCY_MS))
            wait_ms = POLLER_VACANCY_MS;
        pthread_mutex_unlock(&p->lock);
        futex_wait(&me.woken, 0, wait_ms);
        pthread_mutex_lock(&p->lock);
        sleep_done(p);
        if (!atomic_load_explicit(&me.woken, memory_order_acquire)) {
            /* Timed out or spurious: take ourselves off the stack. */
            for (struct waiter **w = &p->waiters; *w; w = &(*w)->next) {
                if (*w == &me) {
                    *w = me.next;
                    break;
                }
            }
        }
    }
    kick = hold_for_kick_locked(p, kick);
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
    if (alertable)
        tacio__thread_set_alert_port(self, NULL);
    if (got)
        *count = deliver(p, entries, got);
    atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release);
    if (st == TACIO_USER_APC)
        tacio__thread_run_apcs(self);
    return st;
}

unsigned tacio__port_queued(struct tacio_port *p)
{
    unsigned n = 0;
    pthread_mutex_lock(&p->lock);
    /* Claimed slots count too: they are being published. */
    n = (uint32_t)atomic_load_explicit(&p->rtail, memory_order_relaxed) -
        atomic_load_explicit(&p->rhead, memory_order_relaxed);
    for (tacio_op_t *op = p->qhead; op && n < RING_SLOTS + 1024; op = op->priv_next)
        n++;
    pthread_mutex_unlock(&p->lock);
    return n;
}

bool tacio__port_has_waiting(struct tacio_port *p)
{
    return (uint32_t)atomic_load_explicit(&p->rtail, memory_order_relaxed) !=
               atomic_load_explicit(&p->rhead, memory_order_relaxed) ||
           atomic_load_explicit(&p->ovf, memory_order_relaxed);
}

bool tacio__port_has_run_slot(struct tacio_port *p)
{
    pthread_mutex_lock(&p->lock);
    bool r = p->running < p->concurrency;
    pthread_mutex_unlock(&p->lock);
    return r;
}

tacio_status_t tacio_port_flush(tacio_port_t *p)
{
    if (!port_open(p))
        return TACIO_INVALID_HANDLE;
    flush_deferred(p);
    return TACIO_SUCCESS;
}

void tacio_port_blocking_begin(tacio_port_t *p)
{
    if (!port_open(p) || tls.running != p || tls.blocked)
        return;
    flush_deferred(p);
    pthread_mutex_lock(&p->lock);
    tls.blocked = true;
    if (p->running) {
        p->running--;
        if (p->slot_waiters)
            pthread_cond_signal(&p->slot_cv);
    }
    /* Someone must reap while this thread is away: release a waiter if
     * entries wait or nobody polls. */
    bool kick = release_locked(p);
    if (!kick && p->waiters && !p->poller)
        wake_waiter_locked(p);
    kick = hold_for_kick_locked(p, kick);
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
}

void tacio_port_blocking_end(tacio_port_t *p)
{
    if (!port_open(p) || tls.running != p || !tls.blocked)
        return;
    pthread_mutex_lock(&p->lock);
    tls.blocked = false;
    p->running++;
    pthread_mutex_unlock(&p->lock);
}

void tacio__port_blocking_end_wait(struct tacio_port *p)
{
    if (!port_open(p) || tls.running != p || !tls.blocked)
        return;
    pthread_mutex_lock(&p->lock);
    while (p->running >= p->concurrency && !atomic_load_explicit(&p->closed, memory_order_relaxed)) {
        p->slot_waiters++;
        pthread_cond_wait(&p->slot_cv, &p->lock);
        p->slot_waiters--;
    }
    tls.blocked = false;
    p->running++;
    pthread_mutex_unlock(&p->lock);
}

tacio_status_t tacio_port_post(tacio_port_t *p, uint64_t key, uint64_t bytes, void *ptr,
                               tacio_status_t status)
{
    uint32_t magic = p ? atomic_load_explicit(&p->magic, memory_order_acquire) : 0;
    if (magic == PORT_DEAD)
        return TACIO_PORT_DISCONNECTED;
    if (magic != PORT_MAGIC)
        return TACIO_INVALID_HANDLE;
    if (atomic_load_explicit(&p->closed, memory_order_relaxed))
        return TACIO_PORT_DISCONNECTED;
    struct post_slot *s;
    uint32_t pos;
    enum claim c = atomic_load_explicit(&p->ovf, memory_order_relaxed) ? RING_FULL
                                                                       : ring_claim(p, &s, &pos);
    if (c == RING_SHUT)
        return TACIO_PORT_DISCONNECTED;
    if (c == CLAIMED) {
        /* No lock: a claimed slot, filled, then published. The lock is
         * taken only when someone may be asleep (see sleep_announce_locked
         * for the pairing). */
        s->key = key;
        s->bytes = bytes;
        s->ptr = ptr;
        s->status = status;
        ring_publish(s, pos, SLOT_PACKET);
        if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst)) {
            pthread_mutex_lock(&p->lock);
            bool kick = hold_for_kick_locked(p, release_locked(p));
            pthread_mutex_unlock(&p->lock);
            kick_after_unlock(p, kick);
        }
        return TACIO_SUCCESS;
    }
    /* The ring is full, or overflowed and not yet drained: behind
     * everything on the overflow list, in a record of its own. */
    tacio_op_t *pk = packet_get(p);
    if (!pk)
        return TACIO_NO_MEMORY;
    memset(pk, 0, 64);
    pk->priv_slot = (uint32_t)K_POSTED << 24;
    pk->priv_arg = key;
    pk->bytes = bytes;
    pk->user = ptr;
    pk->status = status;
    pthread_mutex_lock(&p->lock);
    if (atomic_load_explicit(&p->rtail, memory_order_relaxed) & RING_CLOSED) {
        pthread_mutex_unlock(&p->lock);
        pk->priv_next = tls.packets;
        tls.packets = pk;
        arm_exit_hook();
        return TACIO_PORT_DISCONNECTED;
    }
    overflow_push_locked(p, pk);
    bool kick = hold_for_kick_locked(p, release_locked(p));
    pthread_mutex_unlock(&p->lock);
    kick_after_unlock(p, kick);
    return TACIO_SUCCESS;
}

/* ---- close ------------------------------------------------------------------ */

static void discard_entry(struct tacio_port *p, tacio_op_t *op)
{
    tacio_entry_t e;
    fill_entry(&e, op);
    stat_add(&p->st.discarded_at_close, 1);
    bool accepted = op_kind(op) == K_ACCEPT && e.status == TACIO_SUCCESS;
    if (op_kind(op) == K_POSTED) {
        stat_add(&p->st.posted, 1);
        free(op);
    } else {
        stat_add(&p->discarded_ops, 1);
        if (tacio__verifying())
            tacio__verify_delivered(op, "discard");
        /* The record is the caller's again before discard sees it. */
        tacio__op_release(op);
    }
    if (p->discard)
        p->discard(&e, p->discard_arg);
    /* Nobody will ever see this connection: do not leak it. */
    if (accepted)
        close((int)e.bytes);
}

static void wake_everyone_locked(struct tacio_port *p, bool *kick)
{
    while (p->waiters)
        wake_waiter_locked(p);
    *kick = p->poller;
}

tacio_status_t tacio_port_close(tacio_port_t *p, tacio_discard_fn discard, void *arg)
{
    if (!port_open(p))
        return TACIO_INVALID_HANDLE;
    pthread_mutex_lock(&p->lock);
    if (atomic_load_explicit(&p->closed, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->lock);
        return TACIO_INVALID_HANDLE;
    }
    p->discard = discard;
    p->discard_arg = arg;
    /* seq_cst: with the starters' entry (port_enter) and their loads of closed. */
    atomic_store_explicit(&p->closed, true, memory_order_seq_cst);
    pthread_cond_broadcast(&p->slot_cv);
    bool kick;
    wake_everyone_locked(p, &kick);
    pthread_mutex_unlock(&p->lock);
    if (kick)
        p->be->wake(p);
    /* Waiters leave promptly once woken; the poller once its wait returns. */
    while (atomic_load_explicit(&p->inside, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->lock);
        wake_everyone_locked(p, &kick);
        pthread_mutex_unlock(&p->lock);
        if (kick)
            p->be->wake(p);
        usleep(200);
    }
    flush_deferred(p);
    struct oplist drained = {0};
    p->be->drain(p, &drained);
    /* Threads still in a start, cancel or handle close of this port may
     * complete operations: let them queue those first, so the discard
     * below sees them (those calls never block or call back). */
    while (atomic_load_explicit(&p->starting, memory_order_seq_cst) > 0)
        sched_yield();

    pthread_mutex_lock(&p->lock);
    /* Entries in the ring until now are discarded with the queue, oldest
     * first; a post that finds RING_CLOSED returns PORT_DISCONNECTED, and
     * what is queued from here on goes to the overflow list. A post that
     * claimed a slot publishes it without the lock, so it is waited for. */
    uint32_t rfrom = atomic_load_explicit(&p->rhead, memory_order_relaxed);
    uint32_t rto = (uint32_t)atomic_fetch_or_explicit(&p->rtail, RING_CLOSED, memory_order_acquire);
    for (uint32_t pos = rfrom; pos != rto; pos++)
        while (slot_state(p, pos, memory_order_acquire) == SLOT_FREE)
            sched_yield();
    atomic_store_explicit(&p->rhead, rto, memory_order_relaxed);
    append_locked(p, &drained);
    if (p->dhead) {
        /* Thread-bound entries not taken yet are discarded with the rest. */
        struct oplist d = {p->dhead, p->dtail, p->dcount};
        append_locked(p, &d);
        p->dhead = p->dtail = NULL;
        p->dcount = 0;
    }
    tacio_op_t *list = p->qhead;
    p->qhead = p->qtail = NULL;
    p->collected = true;
    tacio_op_t *pk = atomic_exchange_explicit(&p->free_in, NULL, memory_order_acquire);
    pthread_mutex_unlock(&p->lock);
    for (uint32_t pos = rfrom; pos != rto; pos++) {
        tacio_entry_t e = slot_entry(&p->ring[pos & RING_MASK],
                                     slot_state(p, pos, memory_order_relaxed));
        if (!e.kind) {
            discard_entry(p, e.op);
            continue;
        }
        stat_add(&p->st.posted, 1);
        stat_add(&p->st.discarded_at_close, 1);
        if (p->discard)
            p->discard(&e, p->discard_arg);
    }
    while (list) {
        tacio_op_t *op = list;
        list = op->priv_next;
        discard_entry(p, op);
    }
    while (pk) {
        tacio_op_t *n = pk->priv_next;
        free(pk);
        pk = n;
    }
    if (tacio__verifying())
        tacio__verify_port_closed(
            p, atomic_load_explicit(&p->discarded_ops, memory_order_relaxed), discard != NULL);
    p->be->fini(p);
    p->magic = PORT_DEAD;
    if (tls.running == p)
        tls.running = NULL;
    tacio__port_unref(p);
    return TACIO_SUCCESS;
}
