/* internal.h - the core's shared definitions. Not installed. */
#ifndef TACIO_INTERNAL_H
#define TACIO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <tacio/tacio.h>

#define TACIO_INTERNAL __attribute__((visibility("hidden")))

/* ---- the operation record's private word ------------------------------
 * priv_word is accessed only atomically:
 *   bits 0-2  state (OP_IDLE, OP_INFLIGHT, OP_DONE)
 *   bit  3    cancel requested (set only while OP_INFLIGHT)
 *   bit  4    a routine is set (tacio_op_set_routine; kept across starts)
 *   bit  5    owned by a thread while started (routine or thread-bound
 *             handle): the owner and routine are in thread.c's table
 *   bits 8-31 generation, advanced by every start
 * priv_slot: bits 24-31 operation kind; bits 0-23 the handle's cancel epoch
 * at start (mod 2^24) until the backend arms it, then the backend's slot. */
enum { OP_IDLE = 0, OP_INFLIGHT = 1, OP_DONE = 2, OP_STARTING = 3 };
#define OPW_STATE_MASK 7u
#define OPW_CANCEL 8u
#define OPW_ROUTINE 16u
#define OPW_OWNED 32u
#define OPW_GEN_SHIFT 8

enum op_kind {
    K_NONE = 0, K_READ, K_WRITE, K_RECV, K_SEND, K_RECVFROM, K_SENDTO,
    K_ACCEPT, K_CONNECT, K_FSYNC, K_TIMER, K_POSTED, K_POLL
};

static inline _Atomic uint32_t *op_word(tacio_op_t *op)
{
    return (_Atomic uint32_t *)(void *)&op->priv_word;
}
/* priv_slot and priv_handle are read by tacio_cancel racing a restart of
 * the same record, so they are accessed atomically (relaxed: plain moves). */
static inline unsigned op_kind(const tacio_op_t *op)
{
    return __atomic_load_n(&op->priv_slot, __ATOMIC_RELAXED) >> 24;
}
static inline uint32_t op_slot(const tacio_op_t *op)
{
    return __atomic_load_n(&op->priv_slot, __ATOMIC_RELAXED) & 0xFFFFFFu;
}
static inline void op_set_slot(tacio_op_t *op, uint32_t slot)
{
    uint32_t v = __atomic_load_n(&op->priv_slot, __ATOMIC_RELAXED);
    __atomic_store_n(&op->priv_slot, (v & 0xFF000000u) | (slot & 0xFFFFFFu), __ATOMIC_RELAXED);
}
static inline struct tacio_handle *op_handle(const tacio_op_t *op)
{
    return (struct tacio_handle *)__atomic_load_n(&op->priv_handle, __ATOMIC_RELAXED);
}

/* ---- handles ------------------------------------------------------------ */
enum handle_type { H_FILE = 1, H_PIPE, H_STREAM, H_DGRAM, H_TIMER };

#define HANDLE_MAGIC 0x74616368u /* "tach" */
#define HANDLE_DEAD  0x64656164u
/* h->use: bit 0 closing, bit 1 fd closed, bits 2.. ops that may name the fd.
 * The fd is closed by whoever moves it from exactly USE_CLOSING (closing,
 * no op left) to USE_CLOSING|USE_FD_CLOSED: one CAS, one close. */
#define USE_CLOSING 1u
#define USE_FD_CLOSED 2u
#define USE_ONE 4u

/* Adaptive "try the syscall first" hints for receives and accepts: set while
 * the last attempt found data, so ping-pong traffic does not pay a failed
 * syscall per receive (docs/design.md). */
#define HINT_RX_TRY 1u

struct tacio_handle {
    _Atomic uint32_t magic; /* atomic: checked by calls racing the handle's release */
    uint8_t type;
    uint8_t seqpacket;      /* SOCK_SEQPACKET: record boundaries, stream order */
    uint16_t flags;
    int fd;
    uint64_t key;
    struct tacio_port *port;
    _Atomic uint32_t use;   /* (ops that may name the fd) << 1 | USE_CLOSING */
    _Atomic uint32_t refs;  /* memory: 1 while open + 1 per op until delivered */
    _Atomic uint32_t rx_pending, tx_pending; /* ops in flight per direction */
    _Atomic uint32_t hints;
    _Atomic uint32_t cancel_epoch; /* advanced by cancel_handle and close */
    /* Stream order: on pipes and stream sockets at most one receive and one
     * send per handle is in the kernel at a time (the kernel wakes several
     * pending ones in no fixed order); the rest wait here, FIFO. */
    _Atomic uint32_t qlock;
    bool busy[2];
    tacio_op_t *qhead[2], *qtail[2];
    void *bdata;            /* the backend's per-handle state (io_uring: armed list) */
    /* The pool's handles (H_FLAG_HOLD): a delivery keeps its reference until
     * the pool's callback returned and calls tacio__handle_unref; on_free
     * runs when the last reference goes, after the last callback. */
    void (*on_free)(void *ctx);
    void *on_free_ctx;
    struct tacio_handle *free_next;
};
/* Internal bit of tacio_handle.flags (public flags use the low bits). */
#define H_FLAG_HOLD 0x8000u
enum { DIR_RX = 0, DIR_TX = 1, DIR_NONE = 2 };

/* The handle's cancel epoch, as a starting op keeps it in its slot. The
 * acquire makes a close's CLOSING (set before its epoch step) visible. */
static inline uint32_t handle_epoch(const struct tacio_handle *h)
{
    return atomic_load_explicit(&((struct tacio_handle *)h)->cancel_epoch,
                                memory_order_acquire) & 0xFFFFFFu;
}

static inline bool handle_closing(const struct tacio_handle *h)
{
    return atomic_load_explicit(&((struct tacio_handle *)h)->use, memory_order_relaxed) &
           USE_CLOSING;
}

/* What a backend answers an op it is about to arm (its own port's closing
 * aside): TACIO_SUCCESS to arm it; TACIO_CANCELLED if a cancel, or a
 * cancel_handle after its start, came while it was starting; and
 * TACIO_FILE_CLOSED if its handle closed meanwhile (io.h). A close steps the
 * epoch too, so CLOSING is looked at again after the epoch's acquire: a
 * close between the two reads must not pass for a cancel. */
static inline tacio_status_t tacio__arm_verdict(tacio_op_t *op)
{
    const struct tacio_handle *h = op_handle(op);
    if (atomic_load_explicit(op_word(op), memory_order_relaxed) & OPW_CANCEL)
        return TACIO_CANCELLED;
    if (handle_closing(h))
        return TACIO_FILE_CLOSED;
    if (op_slot(op) != handle_epoch(h))
        return handle_closing(h) ? TACIO_FILE_CLOSED : TACIO_CANCELLED;
    return TACIO_SUCCESS;
}

/* ---- ports --------------------------------------------------------------- */
#define PORT_MAGIC 0x706f7274u /* "port" */
#define PORT_DEAD  0x64656170u

struct tacio_backend;

struct tacio_thread;
struct waiter {
    struct waiter *next;
    _Atomic uint32_t woken;
    struct tacio_thread *owner; /* the waiting thread's record, if it has one */
};

/* One ring entry, two to a cache line. seq says the slot's state for
 * position pos: 4*pos free, 4*pos+1 a posted packet, 4*pos+2 a completed
 * record (ptr); the consumer frees it for pos+RING_SLOTS. */
struct post_slot {
    _Atomic uint32_t seq;
    tacio_status_t status;
    uint64_t key;
    uint64_t bytes;
    void *ptr;
};
#define RING_SLOTS 1024u
#define RING_CLOSED (UINT64_C(1) << 63)

struct tacio_port {
    /* First, and initialised once per allocation: ports are recycled, never
     * freed, and a stale call racing a close may still lock it. */
    pthread_mutex_t lock;   /* queue, waiters, running, poller, closed */
    pthread_cond_t slot_cv; /* threads back from blocking, waiting for a run slot (pool) */
    _Atomic uint32_t magic;
    /* Read by every post, so on this line of fields that rarely change,
     * not on the consumers' (a post that misses here pays a cross-core
     * miss each time). */
    _Atomic bool closed;
    _Atomic bool ovf;        /* see the ring, below */
    struct post_slot *ring;  /* see the ring, below */
    const struct tacio_backend *be;
    void *bctx;
    const struct tacio_backend *fault_real; /* be wraps this one (fault injection) */
    void *fault_ctx;
    unsigned concurrency;

    tacio_op_t *qhead, *qtail;
    struct waiter *waiters; /* LIFO stack */
    unsigned running;
    unsigned slot_waiters;  /* threads in tacio__port_blocking_end_wait */
    bool poller;            /* a thread is inside be->wait */
    struct tacio_thread *poller_owner; /* its record, if it has one */
    /* Completions of thread-bound handles, each for one thread (FIFO). */
    tacio_op_t *dhead, *dtail;
    unsigned dcount;
    bool poller_in_kernel;
    bool collected;         /* close took the queue: later entries are discarded where they finish */
    _Atomic bool posts_flowing; /* the last take found packets: spin before sleeping */

    _Atomic uint32_t inside;   /* threads inside dequeue */
    _Atomic uint32_t starting; /* threads inside a start, cancel or handle close of this
                                  port: close collects only after they are out, so what
                                  they complete is queued (and discarded by the close)
                                  before it returns, never discarded on their thread after */
    _Atomic uint32_t refs;     /* 1 while open + 1 per handle */
    tacio_discard_fn discard;
    void *discard_arg;
    _Atomic uint64_t discarded_ops; /* operation records discarded by close (the verifier's check) */

    /* Entries wait in two places, delivered in this order: the ring (posts
     * and, while it has room, completions), then the overflow list qhead
     * (used only while the ring is full, and until it is empty again: ovf),
     * so what was queued first comes out first. The ring is an array
     * because the consumer then reads entries two to a cache line, in an
     * order the prefetcher follows; a linked list costs one cross-core miss
     * per packet, one after the other (docs/design.md "Posted packets").
     * rhead: next position to take, under lock (atomic for the spinning
     * reader). ovf: set and cleared under lock, read by posters. */
    _Atomic uint32_t rhead;
    /* The posting side, on cache lines of its own (the pads; not an
     * alignment, so a stray pointer checked for magic is no misaligned
     * access): a posting thread keeps them while consumers take the lock.
     * rtail: next position to claim; RING_CLOSED once close took the ring.
     * A post is a CAS on it and a store to its slot (tacio_port_post).
     * sleepers: threads about to sleep for entries (waiters, and the poller
     * in be->wait), changed under lock. A post reads it after publishing:
     * zero means someone awake will see the packet, so the post needs no
     * lock. */
    char pad_post0[64];
    _Atomic uint64_t rtail;
    _Atomic uint32_t sleepers;
    char pad_post1[64];
    _Atomic(tacio_op_t *) free_in; /* delivered packet records back for reuse, a batch per push */
    char pad_post2[64];

    struct tacio_handle timers; /* pseudo-handle that owns timer operations */
    char why[256];
    struct {
        _Atomic uint64_t completions, sync_completions, posted, dropped_duplicates,
            dropped_stale, reissued_after_exit, discarded_at_close, cancels_retried;
    } st;
    struct tacio_port *free_next;
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* CLOCK_MONOTONIC in ns, for the backends' deadlines. */
static inline uint64_t tacio__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A singly linked list of finished records, linked through priv_next. */
struct oplist {
    tacio_op_t *head, *tail;
    unsigned n;
};
static inline void oplist_push(struct oplist *l, tacio_op_t *op)
{
    op->priv_next = NULL;
    if (l->tail)
        l->tail->priv_next = op;
    else
        l->head = op;
    l->tail = op;
    l->n++;
}

/* Around calls that may complete operations on p outside a dequeue (start,
 * cancel, handle close). seq_cst with the close's store of closed and its
 * load of starting: a thread that entered before the close looked is
 * waited for; one that enters later sees closed. */
static inline void port_enter(struct tacio_port *p)
{
    atomic_fetch_add_explicit(&p->starting, 1, memory_order_seq_cst);
}
static inline void port_leave(struct tacio_port *p)
{
    atomic_fetch_sub_explicit(&p->starting, 1, memory_order_release);
}

/* ---- the state machine (op.c) --------------------------------------------- */

/* Start: IDLE -> INFLIGHT, generation advanced. False if the record is in use. */
TACIO_INTERNAL bool tacio__op_begin(tacio_op_t *op, struct tacio_handle *h, unsigned kind,
                                    void *buf, uint32_t len, uint64_t arg);

/* The only transition out of INFLIGHT; every backend and every synchronous
 * path calls it. Exactly one caller wins for a given (record, generation);
 * a loser's result is dropped and counted. On success the record holds its
 * final status and bytes and is OP_DONE: the winner then either returns it
 * synchronously (tacio__op_release) or queues it (tacio__port_complete). */
TACIO_INTERNAL bool tacio__op_finish(tacio_op_t *op, uint32_t gen, tacio_status_t st,
                                     uint64_t bytes, struct oplist *succ);
/* The ordered direction an op belongs to on its handle (DIR_NONE: unordered). */
TACIO_INTERNAL unsigned tacio__op_dir(const tacio_op_t *op);
/* Take the direction's turn, or queue op behind the one that has it.
 * True: op has the turn and must run now. */
TACIO_INTERNAL bool tacio__dir_enter(tacio_op_t *op);
/* Remove a queued (not yet running) op from h's queue; true if it was there. h is
 * the handle the caller holds a reference on, not op's field read again: the
 * record may have moved on to another handle meanwhile (tacio_cancel). */
TACIO_INTERNAL bool tacio__dir_unqueue(struct tacio_handle *h, tacio_op_t *op);
/* Remove every queued op of h into out (close, cancel_handle). */
TACIO_INTERNAL void tacio__dir_unqueue_all(struct tacio_handle *h, struct oplist *out);
/* Finish an op that never ran (taken out of its direction's queue). */
TACIO_INTERNAL void tacio__op_finish_unqueued(tacio_op_t *op, tacio_status_t st);

/* Set the cancel bit if, and only if, op is still INFLIGHT (a plain OR
 * could mark a record that has meanwhile finished and gone back to IDLE). */
TACIO_INTERNAL bool tacio__op_mark_cancel(tacio_op_t *op);

/* DONE -> IDLE and the handle's reference dropped: the record is the caller's. */
TACIO_INTERNAL void tacio__op_release(tacio_op_t *op);
/* tacio__op_release without dropping the handle reference (H_FLAG_HOLD). */
TACIO_INTERNAL void tacio__op_release_keep_handle(tacio_op_t *op);

/* Finish a started op in its start call: default mode returns the status,
 * queued-always mode queues the completion and returns PENDING. */
TACIO_INTERNAL tacio_status_t tacio__op_end_sync(tacio_op_t *op, tacio_status_t st, uint64_t bytes);

static inline uint32_t op_gen(tacio_op_t *op)
{
    return atomic_load_explicit(op_word(op), memory_order_relaxed) >> OPW_GEN_SHIFT;
}

/* Bytes a stream send or write has already written (kept in priv_arg, which
 * holds the offset or address for every other kind). */
static inline bool op_is_stream_tx(const tacio_op_t *op)
{
    unsigned k = op_kind(op);
    uint8_t t = op_handle(op)->type;
    return (k == K_SEND || k == K_WRITE) && (t == H_STREAM || t == H_PIPE);
}
static inline uint64_t tacio__stream_progress(const tacio_op_t *op)
{
    return op_is_stream_tx(op) ? op->priv_arg : 0;
}
static inline void tacio__set_stream_progress(tacio_op_t *op, uint64_t done)
{
    op->priv_arg = done;
}

/* Run ops that were handed their direction's turn by a finish (io.c). */
TACIO_INTERNAL void tacio__run_successors(struct oplist *succ);

/* ---- ports (port.c) ---------------------------------------------------------- */
TACIO_INTERNAL void tacio__port_complete_list(struct tacio_port *p, struct oplist *l);
TACIO_INTERNAL bool tacio__port_should_defer(struct tacio_port *p);
TACIO_INTERNAL void tacio__note_deferred(struct tacio_port *p);
TACIO_INTERNAL void tacio__port_unref(struct tacio_port *p);
TACIO_INTERNAL void tacio__set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- handles (handle.c) ------------------------------------------------------ */
TACIO_INTERNAL void tacio__handle_unref(struct tacio_handle *h);
/* For src/pool: make h's deliveries hold their reference (see H_FLAG_HOLD).
 * Call before the first operation is started on h. */
TACIO_INTERNAL void tacio__handle_hold_deliveries(struct tacio_handle *h, void (*on_free)(void *),
                                                  void *ctx);
/* Entries queued on p and not yet dequeued (a snapshot, for pool sizing). */
TACIO_INTERNAL unsigned tacio__port_queued(struct tacio_port *p);
/* Whether entries may be waiting: a lock-free glance (ring not empty, or the
 * overflow list in use), exact only when nobody posts or takes meanwhile. */
TACIO_INTERNAL bool tacio__port_has_waiting(struct tacio_port *p);
/* Whether one more thread could take an entry now: fewer threads run than
 * the concurrency value allows (threads that declared a block do not run). */
TACIO_INTERNAL bool tacio__port_has_run_slot(struct tacio_port *p);
/* tacio_port_blocking_end that waits for a run slot (running below the
 * concurrency value) instead of running over it: the pool's strict cap. */
TACIO_INTERNAL void tacio__port_blocking_end_wait(struct tacio_port *p);

/* ---- owned operations (thread.c): routines and thread-bound handles ---- */
struct tacio_thread;
/* The calling thread's record; created when create (NULL: no memory). */
TACIO_INTERNAL struct tacio_thread *tacio__thread_self(bool create);
/* Before an owned operation begins on p: room to track it (in t and in
 * the owner table, for op). */
TACIO_INTERNAL bool tacio__thread_prepare(struct tacio_thread *t, struct tacio_port *p,
                                          tacio_op_t *op);
/* The owner of a started owned record (OPW_OWNED), else NULL. */
TACIO_INTERNAL struct tacio_thread *tacio__op_owner(const tacio_op_t *op);
static inline bool op_owned(const tacio_op_t *op)
{
    return __atomic_load_n(&op->priv_word, __ATOMIC_RELAXED) & OPW_OWNED;
}
static inline bool op_has_routine(const tacio_op_t *op)
{
    return __atomic_load_n(&op->priv_word, __ATOMIC_RELAXED) & OPW_ROUTINE;
}
/* After it began (INFLIGHT), by the owner: owner recorded, tracked. */
TACIO_INTERNAL void tacio__thread_track(struct tacio_thread *t, tacio_op_t *op);
/* At finish (out of INFLIGHT): no longer in flight. Not for a routine's record:
 * tacio__thread_take_routine or its release takes that off the list. */
TACIO_INTERNAL void tacio__thread_untrack(tacio_op_t *op);
/* At release: drop the record's reference on its thread. */
TACIO_INTERNAL void tacio__thread_release_op(tacio_op_t *op);
TACIO_INTERNAL bool tacio__thread_alive(const struct tacio_thread *t);
TACIO_INTERNAL bool tacio__thread_take_routine(tacio_op_t *op);
TACIO_INTERNAL bool tacio__thread_apc_pending(const struct tacio_thread *t);
TACIO_INTERNAL void tacio__thread_set_alert_port(struct tacio_thread *t, struct tacio_port *p);
TACIO_INTERNAL unsigned tacio__thread_run_apcs(struct tacio_thread *t);
/* port.c's side: wake t where it waits on p; reap p once if nobody polls;
 * move t's undelivered thread-bound entries to p's main queue. */
TACIO_INTERNAL void tacio__port_wake_thread(struct tacio_port *p, struct tacio_thread *t);
TACIO_INTERNAL void tacio__port_progress(struct tacio_port *p, struct tacio_thread *t, int ms);
TACIO_INTERNAL void tacio__port_redirect(struct tacio_port *p, struct tacio_thread *t);
/* A reference on h if it still has one (its memory stays a handle: closed
 * handles go to a free list); false once the last went. */
TACIO_INTERNAL bool tacio__handle_try_ref(struct tacio_handle *h);
/* An op is starting: takes a use and a reference. False if h is closing. */
TACIO_INTERNAL bool tacio__handle_use_begin(struct tacio_handle *h);
TACIO_INTERNAL bool tacio__handle_valid(const struct tacio_handle *h);
/* An op that may name the fd ended: closes the fd if the handle is closing
 * and this was the last one. */
TACIO_INTERNAL void tacio__handle_use_end(struct tacio_handle *h);

/* ---- synchronous syscalls (sysio.c) ----------------------------------------- */
/* Try the operation now without blocking. Returns true when it is over
 * (*st, *bytes set), false when it would block. */
TACIO_INTERNAL bool tacio__sys_try(tacio_op_t *op, tacio_status_t *st, uint64_t *bytes);
/* Map a kernel result (>= 0 or -errno) of op's kind to status and bytes. */
TACIO_INTERNAL void tacio__map_result(tacio_op_t *op, long res, tacio_status_t *st,
                                      uint64_t *bytes);
/* The final status of a non-blocking connect that became writable. */
TACIO_INTERNAL tacio_status_t tacio__connect_result(int fd);

#endif
