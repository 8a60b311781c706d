/* io.c - starting operations: validation, the synchronous attempt, and the
 * hand-off to the backend. Rule 1 of the contract is decided here: a start
 * returns TACIO_PENDING exactly when a completion will be queued. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "verify/verify.h"

/* 80: the OVERLAPPED role plus the owner thread and routine of rule 3 and
 * ReadFileEx; the caller embeds it, so every byte here is per operation. */
_Static_assert(sizeof(tacio_op_t) <= 64, "tacio_op_t must stay within 64 bytes (one cache line)");

static void run_successors(struct oplist *succ);

static bool queued_always(const struct tacio_handle *h)
{
    return (h->flags & TACIO_HANDLE_QUEUED_ALWAYS) != 0;
}

/* The ops the receive hint (HINT_RX_TRY) steers: receives, accepts, and
 * polls for readability only. A readability poll after one that found
 * nothing skips its poll(2): a server that drained its listener to EAGAIN
 * and polls again would otherwise pay one that finds nothing in every
 * wake-up, and the kernel's poll completes at once anyway when it is ready. */
static bool rx_hinted(const tacio_op_t *op)
{
    switch (op_kind(op)) {
    case K_RECV:
    case K_RECVFROM:
    case K_READ:
    case K_ACCEPT:
        return true;
    case K_POLL:
        return !(op->priv_arg & TACIO_POLL_OUT);
    default:
        return false;
    }
}

/* Whether to try the syscall before arming the kernel (docs/design.md). */
static bool try_first(struct tacio_handle *h, tacio_op_t *op)
{
    if (rx_hinted(op))
        return h->type != H_FILE &&
               (atomic_load_explicit(&h->hints, memory_order_relaxed) & HINT_RX_TRY);
    switch (op_kind(op)) {
    case K_CONNECT:
        return true; /* connect() itself starts the connection */
    case K_POLL:
        return true; /* for writability: one poll(2) with no wait, usually ready */
    case K_SEND:
    case K_SENDTO:
    case K_WRITE:
        /* On io_uring a thread that will enter the ring anyway (a running
         * dequeuer) sends in that enter: one syscall for the whole batch
         * instead of one per send, and the socket is written after the
         * receives that woke it rather than while their senders still hold
         * its lock. Anyone else tries send(2) first. */
        if ((h->port->be->caps & BE_CAP_BATCHED_SENDS) && tacio__port_should_defer(h->port))
            return false;
        return h->type != H_FILE;
    default:
        return false;
    }
}

static void clear_rx_hint(struct tacio_handle *h, tacio_op_t *op)
{
    if (rx_hinted(op))
        atomic_fetch_and_explicit(&h->hints, ~HINT_RX_TRY, memory_order_relaxed);
}

/* End a started op in the thread that is running it. returned_pending: the
 * start call already told the caller PENDING (a queued op running later). */
static tacio_status_t end_now(tacio_op_t *op, tacio_status_t st, uint64_t bytes,
                              bool returned_pending)
{
    struct tacio_handle *h = op_handle(op);
    struct tacio_port *p = h->port;
    struct oplist succ = {0};
    if (!tacio__op_finish(op, op_gen(op), st, bytes, &succ)) {
        stat_add(&p->st.dropped_duplicates, 1);
        return TACIO_PENDING;
    }
    tacio_status_t ret;
    /* Queued-always mode queues a synchronous result, unless the port closed
     * meanwhile: then the start call reports it itself (still a final
     * status with no completion, so rule 1 holds) rather than discarding it
     * on this thread, possibly after tacio_port_close has returned. */
    bool closed = atomic_load_explicit(&p->closed, memory_order_seq_cst);
    if (returned_pending || (queued_always(h) && !closed)) {
        struct oplist l = {0};
        oplist_push(&l, op);
        tacio__port_complete_list(p, &l);
        ret = TACIO_PENDING;
    } else {
        stat_add(&p->st.sync_completions, 1);
        if (tacio__verifying())
            tacio__verify_sync(op, st);
        tacio__op_release(op);
        ret = st;
    }
    run_successors(&succ);
    return ret;
}

/* Run an INFLIGHT op that has its direction's turn. */
static tacio_status_t run(tacio_op_t *op, bool returned_pending)
{
    struct tacio_handle *h = op_handle(op);
    struct tacio_port *p = h->port;
    tacio_status_t st;
    uint64_t bytes;

    if (atomic_load_explicit(&p->closed, memory_order_seq_cst))
        return end_now(op, TACIO_CANCELLED, 0, returned_pending);
    if (try_first(h, op)) {
        if (tacio__sys_try(op, &st, &bytes))
            return end_now(op, st, bytes, returned_pending);
        clear_rx_hint(h, op);
    }
    bool defer = op_kind(op) != K_TIMER && tacio__port_should_defer(p);
    st = p->be->submit(p, op, defer);
    if (st == TACIO_SUCCESS)
        return TACIO_PENDING;
    /* An op that already returned PENDING was cancelled by the close; one
     * still in its start call reports what closed under it. */
    if (st == TACIO_PORT_DISCONNECTED || (st == TACIO_FILE_CLOSED && returned_pending))
        st = TACIO_CANCELLED;
    if (tacio__verifying())
        tacio__verify_backend_final(op);
    return end_now(op, st, tacio__stream_progress(op), returned_pending);
}

static void run_successors(struct oplist *succ)
{
    while (succ->head) {
        tacio_op_t *op = succ->head;
        succ->head = op->priv_next;
        op->priv_next = NULL;
        run(op, true);
    }
    succ->tail = NULL;
    succ->n = 0;
}

void tacio__run_successors(struct oplist *succ)
{
    run_successors(succ);
}

/* ---- starting ------------------------------------------------------------ */

struct args {
    unsigned kind;
    void *buf;
    size_t len;
    uint64_t arg;
};

static tacio_status_t check_handle(struct tacio_handle *h)
{
    if (!tacio__handle_valid(h))
        return TACIO_INVALID_HANDLE;
    if (atomic_load_explicit(&h->use, memory_order_relaxed) & USE_CLOSING)
        return TACIO_FILE_CLOSED;
    if (atomic_load_explicit(&h->port->closed, memory_order_acquire))
        return TACIO_PORT_DISCONNECTED;
    return TACIO_SUCCESS;
}

/* A rejection is a final status too: record it, unless the record belongs to
 * an operation still in flight (TACIO_OP_IN_USE leaves it alone). */
static tacio_status_t reject(tacio_op_t *op, tacio_status_t st)
{
    if (op && (atomic_load_explicit(op_word(op), memory_order_acquire) & OPW_STATE_MASK) == OP_IDLE) {
        op->status = st;
        op->bytes = 0;
    }
    return st;
}

/* Callers have run pre() (op, handle, port checked); a close racing from
 * here on is caught by use_begin, a port close by run(). */
/* Operations with a routine, or on a thread-bound handle, belong to the
 * calling thread (thread.c); NULL for the others, and for no memory. */
static tacio_status_t owner_for(struct tacio_handle *h, tacio_op_t *op, struct tacio_thread **t)
{
    *t = NULL;
    if (!op_has_routine(op) && !(h->flags & TACIO_HANDLE_THREAD_BOUND))
        return TACIO_SUCCESS;
    *t = tacio__thread_self(true);
    if (!*t || !tacio__thread_prepare(*t, h->port, op))
        return TACIO_NO_MEMORY;
    return TACIO_SUCCESS;
}

static tacio_status_t start_in(struct tacio_handle *h, tacio_op_t *op, const struct args *a);

static tacio_status_t start(struct tacio_handle *h, tacio_op_t *op, const struct args *a)
{
    struct tacio_port *p = h->port;
    port_enter(p);
    tacio_status_t st = start_in(h, op, a);
    port_leave(p);
    return st;
}

static tacio_status_t start_in(struct tacio_handle *h, tacio_op_t *op, const struct args *a)
{
    struct tacio_thread *owner;
    if (owner_for(h, op, &owner) != TACIO_SUCCESS)
        return reject(op, TACIO_NO_MEMORY);
    if (!tacio__handle_use_begin(h))
        return reject(op, TACIO_FILE_CLOSED);
    if (!tacio__op_begin(op, h, a->kind, a->buf, (uint32_t)a->len, a->arg)) {
        tacio__handle_use_end(h);
        tacio__handle_unref(h);
        if (tacio__verifying())
            tacio__verify_in_use(op);
        return TACIO_OP_IN_USE;
    }
    if (owner)
        tacio__thread_track(owner, op);
    if (!tacio__dir_enter(op))
        return TACIO_PENDING; /* waits behind the op that has the turn */
    return run(op, false);
}

/* Argument checks that need the handle's type; h is known valid here. */
static tacio_status_t check_buf(const void *buf, size_t len, bool zero_ok)
{
    if (len > UINT32_MAX)
        return TACIO_INVALID_PARAMETER;
    if (len == 0 && !zero_ok)
        return TACIO_INVALID_PARAMETER;
    if (!buf && len > 0)
        return TACIO_INVALID_PARAMETER;
    return TACIO_SUCCESS;
}

/* Checks every start makes first, so a closed handle is reported as such
 * whatever else is wrong with the call. */
static tacio_status_t pre(struct tacio_handle *h, tacio_op_t *op)
{
    if (!op)
        return TACIO_INVALID_PARAMETER;
    return check_handle(h);
}

static tacio_status_t rw(struct tacio_handle *h, tacio_op_t *op, unsigned kind, void *buf,
                         size_t len, uint64_t offset)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    if ((st = check_buf(buf, len, false)) != TACIO_SUCCESS)
        return reject(op, st);
    if (h->type == H_FILE ? offset == TACIO_OFFSET_NONE : offset != TACIO_OFFSET_NONE)
        return reject(op, TACIO_INVALID_PARAMETER);
    if (h->type == H_DGRAM)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    struct args a = {kind, buf, len, h->type == H_FILE ? offset : 0};
    return start(h, op, &a);
}

tacio_status_t tacio_read(tacio_handle_t *h, tacio_op_t *op, void *buf, size_t len,
                          uint64_t offset)
{
    return rw(h, op, K_READ, buf, len, offset);
}

tacio_status_t tacio_write(tacio_handle_t *h, tacio_op_t *op, const void *buf, size_t len,
                           uint64_t offset)
{
    return rw(h, op, K_WRITE, (void *)buf, len, offset);
}

static tacio_status_t sock_op(struct tacio_handle *h, tacio_op_t *op, unsigned kind, void *buf,
                              size_t len, tacio_addr_t *addr)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    bool dgram = h->type == H_DGRAM;
    bool zero_ok = dgram && (kind == K_SEND || kind == K_SENDTO);
    if ((st = check_buf(buf, len, zero_ok)) != TACIO_SUCCESS)
        return reject(op, st);
    if (h->type != H_STREAM && !dgram)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    if ((kind == K_RECVFROM || kind == K_SENDTO) && !dgram)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    if (kind == K_SENDTO && (!addr || addr->len == 0 || addr->len > sizeof addr->u))
        return reject(op, TACIO_INVALID_PARAMETER);
    struct args a = {kind, buf, len, (uint64_t)(uintptr_t)addr};
    return start(h, op, &a);
}

tacio_status_t tacio_recv(tacio_handle_t *h, tacio_op_t *op, void *buf, size_t len)
{
    return sock_op(h, op, K_RECV, buf, len, NULL);
}

tacio_status_t tacio_send(tacio_handle_t *h, tacio_op_t *op, const void *buf, size_t len)
{
    return sock_op(h, op, K_SEND, (void *)buf, len, NULL);
}

tacio_status_t tacio_recvfrom(tacio_handle_t *h, tacio_op_t *op, void *buf, size_t len,
                              tacio_addr_t *from)
{
    return sock_op(h, op, K_RECVFROM, buf, len, from);
}

tacio_status_t tacio_sendto(tacio_handle_t *h, tacio_op_t *op, const void *buf, size_t len,
                            tacio_addr_t *to)
{
    return sock_op(h, op, K_SENDTO, (void *)buf, len, to);
}

tacio_status_t tacio_accept(tacio_handle_t *h, tacio_op_t *op, tacio_addr_t *peer)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    if (h->type != H_STREAM)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    if (peer)
        peer->len = sizeof peer->u;
    struct args a = {K_ACCEPT, NULL, 0, (uint64_t)(uintptr_t)peer};
    return start(h, op, &a);
}

tacio_status_t tacio_connect(tacio_handle_t *h, tacio_op_t *op, tacio_addr_t *to)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    if (!to || to->len == 0 || to->len > sizeof to->u)
        return reject(op, TACIO_INVALID_PARAMETER);
    if (h->type != H_STREAM && h->type != H_DGRAM)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    struct args a = {K_CONNECT, NULL, 0, (uint64_t)(uintptr_t)to};
    return start(h, op, &a);
}

tacio_status_t tacio_fsync(tacio_handle_t *h, tacio_op_t *op, int datasync)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    if (h->type != H_FILE)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    struct args a = {K_FSYNC, NULL, 0, datasync ? 1u : 0u};
    return start(h, op, &a);
}

tacio_status_t tacio_poll(tacio_handle_t *h, tacio_op_t *op, unsigned events)
{
    tacio_status_t st = pre(h, op);
    if (st != TACIO_SUCCESS)
        return reject(op, st);
    if (!events || (events & ~(TACIO_POLL_IN | TACIO_POLL_OUT)))
        return reject(op, TACIO_INVALID_PARAMETER);
    if (h->type == H_FILE)
        return reject(op, TACIO_INVALID_DEVICE_REQUEST);
    struct args a = {K_POLL, NULL, 0, events};
    return start(h, op, &a);
}

tacio_status_t tacio_timer_start(tacio_port_t *p, tacio_op_t *op, uint64_t key, uint64_t ns)
{
    if (!op)
        return TACIO_INVALID_PARAMETER;
    if (!p || (p->magic != PORT_MAGIC && p->magic != PORT_DEAD))
        return reject(op, TACIO_INVALID_HANDLE);
    if (p->magic == PORT_DEAD || atomic_load_explicit(&p->closed, memory_order_seq_cst))
        return reject(op, TACIO_PORT_DISCONNECTED);
    struct tacio_handle *h = &p->timers;
    struct tacio_thread *owner;
    if (owner_for(h, op, &owner) != TACIO_SUCCESS)
        return reject(op, TACIO_NO_MEMORY);
    port_enter(p);
    tacio__handle_use_begin(h);
    if (!tacio__op_begin(op, h, K_TIMER, (void *)(uintptr_t)key, 0, ns)) {
        tacio__handle_use_end(h);
        tacio__handle_unref(h);
        port_leave(p);
        if (tacio__verifying())
            tacio__verify_in_use(op);
        return TACIO_OP_IN_USE;
    }
    if (owner)
        tacio__thread_track(owner, op);
    tacio_status_t st = run(op, false);
    port_leave(p);
    return st;
}

/* ---- cancel ----------------------------------------------------------------- */

tacio_status_t tacio_cancel(tacio_op_t *op)
{
    if (!op)
        return TACIO_INVALID_PARAMETER;
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_acquire);
    if ((w & OPW_STATE_MASK) != OP_INFLIGHT)
        return TACIO_NOT_FOUND;
    /* The op may complete, and its handle close and be opened again for
     * another fd, between that load and here: pin the handle, then look
     * again. Still in flight in the same use, the op holds its own
     * reference, so the handle pinned is its own. */
    struct tacio_handle *h = op_handle(op);
    if (!tacio__handle_try_ref(h))
        return TACIO_NOT_FOUND;
    uint32_t w2 = atomic_load_explicit(op_word(op), memory_order_acquire);
    if ((w2 & OPW_STATE_MASK) != OP_INFLIGHT || (w2 >> OPW_GEN_SHIFT) != (w >> OPW_GEN_SHIFT)) {
        tacio__handle_unref(h);
        return TACIO_NOT_FOUND;
    }
    struct tacio_port *p = h->port;
    port_enter(p);
    tacio_status_t st;
    if (tacio__dir_unqueue(h, op)) {
        /* It was waiting for its turn and never reached the kernel. */
        tacio__op_finish_unqueued(op, TACIO_CANCELLED);
        struct oplist l = {0};
        oplist_push(&l, op);
        tacio__port_complete_list(p, &l);
        st = TACIO_SUCCESS;
    } else {
        st = p->be->cancel(p, op, h);
    }
    port_leave(p);
    tacio__handle_unref(h);
    return st;
}
