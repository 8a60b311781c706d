/* op.c - the one operation state machine.
 *
 *   IDLE --begin--> INFLIGHT --finish--> DONE --release/deliver--> IDLE
 *
 * tacio__op_finish() is the only transition out of INFLIGHT. Every path that
 * can end an operation goes through it: a kernel completion, a synchronous
 * result inside the start call, cancel, close, port close, and the re-issue
 * logic for exited threads. It is a compare-and-swap on (state, generation),
 * so of two attempts to finish one operation exactly one wins; the loser is
 * dropped and counted, never delivered. */
#include <sched.h>
#include "core/internal.h"
#include "verify/verify.h"

bool tacio__op_begin(tacio_op_t *op, struct tacio_handle *h, unsigned kind, void *buf,
                     uint32_t len, uint64_t arg)
{
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_relaxed);
    if ((w & OPW_STATE_MASK) != OP_IDLE || (w & OPW_CANCEL))
        return false;
    uint32_t gen = ((w >> OPW_GEN_SHIFT) + 1) << OPW_GEN_SHIFT;
    uint32_t keep = w & OPW_ROUTINE;
    if ((w & ~OPW_ROUTINE) == 0) {
        /* A fresh (or zeroed) record: a generation from a process-wide
         * counter, so a record freed and reallocated at the same address
         * does not start again at 1, where a late completion of its
         * previous life would match it. Reused records just count on. */
        static _Atomic uint32_t fresh = 1;
        uint32_t g = atomic_fetch_add_explicit(&fresh, 1, memory_order_relaxed) & 0xFFFFFFu;
        gen = (g ? g : 1) << OPW_GEN_SHIFT;
    }
    /* Claim the record (STARTING) before writing its fields, so a second
     * start of the same record is refused without touching them. acquire:
     * pairs with the release in tacio__op_release, so the previous
     * operation's last writes to the record happen before this one's. */
    if (!atomic_compare_exchange_strong_explicit(op_word(op), &w, gen | keep | OP_STARTING,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    __atomic_store_n(&op->priv_handle, (void *)h, __ATOMIC_RELAXED);
    /* Until the backend gives it a slot, the low bits hold the handle's
     * cancel epoch at start: a cancel_handle or close that comes before the
     * op reaches the kernel is owed to it too. */
    __atomic_store_n(&op->priv_slot,
                     (uint32_t)kind << 24 |
                         (atomic_load_explicit(&h->cancel_epoch, memory_order_acquire) & 0xFFFFFFu),
                     __ATOMIC_RELAXED);
    op->priv_next = NULL;
    op->priv_buf = buf;
    /* Atomic: an epoll cancel that loaded the previous use's INFLIGHT may
     * still read a timer's heap index from here (take_armed_locked). */
    __atomic_store_n(&op->priv_len, len, __ATOMIC_RELAXED);
    op->priv_arg = arg;
    op->status = TACIO_PENDING;
    op->bytes = 0;
    /* release: a cancel that sees INFLIGHT also sees the fields above. */
    atomic_store_explicit(op_word(op), gen | keep | OP_INFLIGHT, memory_order_release);
    if (tacio__verifying())
        tacio__verify_begin(op, (gen >> OPW_GEN_SHIFT) & 0xFFFFFFu, h);
    return true;
}

static unsigned dir_on(const struct tacio_handle *h, const tacio_op_t *op)
{
    if (h->type != H_STREAM && h->type != H_PIPE)
        return DIR_NONE;
    switch (op_kind(op)) {
    case K_READ:
    case K_RECV:
        return DIR_RX;
    case K_WRITE:
    case K_SEND:
        return DIR_TX;
    default:
        return DIR_NONE;
    }
}

unsigned tacio__op_dir(const tacio_op_t *op)
{
    return dir_on(op_handle(op), op);
}

static void qlock(struct tacio_handle *h)
{
    uint32_t z = 0;
    /* acquire/release spin lock: the critical sections are a few pointer moves. */
    while (!atomic_compare_exchange_weak_explicit(&h->qlock, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
        z = 0;
        sched_yield();
    }
}
static void qunlock(struct tacio_handle *h)
{
    atomic_store_explicit(&h->qlock, 0, memory_order_release);
}

bool tacio__dir_enter(tacio_op_t *op)
{
    unsigned d = tacio__op_dir(op);
    if (d == DIR_NONE)
        return true;
    struct tacio_handle *h = op_handle(op);
    bool run;
    qlock(h);
    run = !h->busy[d];
    if (run) {
        h->busy[d] = true;
    } else {
        op->priv_next = NULL;
        if (h->qtail[d])
            h->qtail[d]->priv_next = op;
        else
            h->qhead[d] = op;
        h->qtail[d] = op;
    }
    qunlock(h);
    return run;
}

/* The op that had the turn is over: hand the turn to the next queued op. */
static tacio_op_t *dir_leave(struct tacio_handle *h, unsigned d)
{
    tacio_op_t *next;
    qlock(h);
    next = h->qhead[d];
    if (next) {
        h->qhead[d] = next->priv_next;
        if (!h->qhead[d])
            h->qtail[d] = NULL;
        next->priv_next = NULL;
    } else {
        h->busy[d] = false;
    }
    qunlock(h);
    return next;
}

bool tacio__dir_unqueue(struct tacio_handle *h, tacio_op_t *op)
{
    unsigned d = dir_on(h, op);
    if (d == DIR_NONE)
        return false;
    bool found = false;
    qlock(h);
    tacio_op_t *prev = NULL;
    for (tacio_op_t *it = h->qhead[d]; it; prev = it, it = it->priv_next) {
        if (it != op)
            continue;
        if (prev)
            prev->priv_next = it->priv_next;
        else
            h->qhead[d] = it->priv_next;
        if (h->qtail[d] == it)
            h->qtail[d] = prev;
        found = true;
        break;
    }
    qunlock(h);
    return found;
}

void tacio__dir_unqueue_all(struct tacio_handle *h, struct oplist *out)
{
    tacio_op_t *lists[2];
    qlock(h);
    for (int d = 0; d < 2; d++) {
        lists[d] = h->qhead[d];
        h->qhead[d] = h->qtail[d] = NULL;
    }
    qunlock(h);
    for (int d = 0; d < 2; d++) {
        while (lists[d]) {
            tacio_op_t *op = lists[d];
            lists[d] = op->priv_next;
            oplist_push(out, op);
        }
    }
}

static void update_hints(struct tacio_handle *h, tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    unsigned k = op_kind(op);
    if (k != K_RECV && k != K_READ && k != K_RECVFROM && k != K_ACCEPT)
        return;
    if (h->type == H_FILE)
        return;
    /* A full buffer, a datagram or a connection suggests more is waiting. */
    bool more = st == TACIO_SUCCESS &&
                (k == K_ACCEPT || h->type == H_DGRAM || h->seqpacket || bytes == op->priv_len);
    if (more)
        atomic_fetch_or_explicit(&h->hints, HINT_RX_TRY, memory_order_relaxed);
}

static bool finish_word(tacio_op_t *op, uint32_t gen)
{
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_relaxed);
    for (;;) {
        if ((w & OPW_STATE_MASK) != OP_INFLIGHT || (w >> OPW_GEN_SHIFT) != (gen & 0xFFFFFFu))
            return false;
        uint32_t nw = (w & ~(OPW_STATE_MASK | OPW_CANCEL)) | OP_DONE;
        /* acq_rel: the winner sees the starter's writes to the record and
         * publishes its own to whoever later observes DONE. */
        if (atomic_compare_exchange_weak_explicit(op_word(op), &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    }
}

bool tacio__op_finish(tacio_op_t *op, uint32_t gen, tacio_status_t st, uint64_t bytes,
                      struct oplist *succ)
{
    /* Before anything reads the record: a second completion is caught
     * (and in report mode dropped) without touching it. */
    if (tacio__verifying() && !tacio__verify_finish(op, gen & 0xFFFFFFu, st, bytes))
        return false;
    if (!finish_word(op, gen))
        return false;
    struct tacio_handle *h = op_handle(op);
    op->status = st;
    op->bytes = bytes;
    /* A routine's record stays on its thread's list until it is queued
     * there (tacio__thread_take_routine): an exiting owner waits for it. */
    if (op_owned(op) && !op_has_routine(op))
        tacio__thread_untrack(op);
    update_hints(h, op, st, bytes);
    unsigned d = tacio__op_dir(op);
    if (d != DIR_NONE) {
        tacio_op_t *next = dir_leave(h, d);
        if (next)
            oplist_push(succ, next);
    }
    tacio__handle_use_end(h);
    return true;
}

void tacio__op_finish_unqueued(tacio_op_t *op, tacio_status_t st)
{
    /* It never had its direction's turn, so it hands none on. */
    if (tacio__verifying() && !tacio__verify_finish(op, op_gen(op) & 0xFFFFFFu, st, 0))
        return;
    if (finish_word(op, op_gen(op))) {
        op->status = st;
        op->bytes = 0;
        if (op_owned(op) && !op_has_routine(op))
            tacio__thread_untrack(op);
        tacio__handle_use_end(op_handle(op));
    }
}

bool tacio__op_mark_cancel(tacio_op_t *op)
{
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_acquire);
    do {
        if ((w & OPW_STATE_MASK) != OP_INFLIGHT)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(op_word(op), &w, w | OPW_CANCEL,
                                                    memory_order_acq_rel, memory_order_acquire));
    return true;
}

void tacio__op_release_keep_handle(tacio_op_t *op)
{
    if (op_owned(op))
        tacio__thread_release_op(op);
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_relaxed);
    /* release: the record's final status and bytes are written before the
     * record becomes startable again (pairs with the acquire in begin). */
    atomic_store_explicit(op_word(op), (w & ~(OPW_STATE_MASK | OPW_CANCEL)) | OP_IDLE,
                          memory_order_release);
}

void tacio__op_release(tacio_op_t *op)
{
    struct tacio_handle *h = op_handle(op);
    tacio__op_release_keep_handle(op);
    tacio__handle_unref(h);
}
