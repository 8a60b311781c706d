/* uring.c - the io_uring backend.
 *
 * One ring per port, shared by every thread. Submission entries are filled
 * under sq_lock (a few stores) and handed to the kernel by whichever thread
 * next enters it: a thread running entries of this port batches its
 * submissions until it returns to dequeue, where one io_uring_enter both
 * submits and waits.
 *
 * Identity: an SQE's user_data is (slot index << 32 | slot generation). The
 * slot table, not the caller's record, is what a CQE is first checked
 * against, so a CQE for a record that has been finished, reused or freed is
 * recognised and dropped without touching the record.
 *
 * Thread-agnostic I/O: io_uring cancels a request with -ECANCELED when the
 * thread that submitted it exits. Such a CQE, for an operation nobody asked
 * to cancel, is re-issued here from the reaping thread. A request cancelled
 * this way transferred nothing (io_uring cancels only requests still
 * waiting to be issued or for readiness), so re-issue moves no data twice.
 * docs/design.md has the argument and the alternatives. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "verify/verify.h"

#define CHUNK_SHIFT 10
#define CHUNK_SLOTS (1u << CHUNK_SHIFT)
#define MAX_CHUNKS 16384u /* 16M operations in flight per port */
#define NO_SLOT UINT32_MAX
#define UD_WAKE UINT64_MAX
#define UD_IGNORE (UINT64_MAX - 1)
/* A cancel's own CQE: bit 62, then the target's slot index and generation.
 * A handle's ops are cancelled one by one through the handle's list of
 * armed slots: IORING_ASYNC_CANCEL_FD walks every request of the ring, which
 * made closing many handles quadratic (measured: 476 s for 19k handles with
 * 100k receives pending), while a cancel by user_data is a hash lookup. */
#define UD_CANCEL_OP (1ull << 62)
#define UD_CANCEL_MASK UD_CANCEL_OP
/* A cancel can miss a request caught between a wake-up and its re-arming
 * (measured: the cancel reports nothing found while the request goes on
 * waiting). A missed cancel whose target is still in flight is retried at
 * this interval until it lands or the target completes. */
#define CANCEL_RETRY_MS 1
#define REAP_BATCH 128

struct slot {
    tacio_op_t *op;   /* NULL when free */
    struct tacio_handle *h; /* the op's handle, kept here so a completion is
                               matched and unlinked without reading the record */
    uint32_t gen;     /* advanced at every free */
    uint32_t aux;     /* live: handle cancel epoch at start; free: next free */
    uint32_t hnext, hprev; /* the handle's armed list, as index + 1 (0 = none) */
    uint32_t opgen;   /* the op's generation when armed: its completion
                         finishes that generation, never a later one */
};

struct uring {
    struct io_uring ring;
    pthread_mutex_t sq_lock; /* SQ ring, slots, closing */
    struct __kernel_timespec *ts; /* one per SQE index, for timeouts */
    struct slot *chunks[MAX_CHUNKS];
    unsigned nchunks;
    uint32_t free_head;
    unsigned live;
    bool closing;
    _Atomic bool dead;
    _Atomic unsigned unsubmitted;
    _Atomic bool wake_pending;
    uint64_t *retry;        /* cancel user_data values to issue again (sq_lock) */
    _Atomic unsigned nretry; /* written under sq_lock, peeked without */
    unsigned retry_cap;
    /* When the missed cancels are due again (CLOCK_MONOTONIC ns). Issuing
     * them at once spun: the target's completion is usually task work owed
     * to its submitting thread, and until that thread enters the kernel
     * every new cancel misses too (measured: 6.4 cancels per TLS handshake,
     * in bursts of 1 us apiece while the submitter ran a handshake). */
    _Atomic int64_t retry_due;
};

struct msg_scratch {
    struct msghdr msg;
    struct iovec iov;
};
_Static_assert(sizeof(struct msg_scratch) <= sizeof(((tacio_addr_t *)0)->priv_scratch),
               "tacio_addr_t scratch too small for a msghdr");

static struct uring *U(struct tacio_port *p)
{
    return p->bctx;
}

/* ---- slots (all under sq_lock) ------------------------------------------------ */

static struct slot *slot_at(struct uring *u, uint32_t idx)
{
    uint32_t c = idx >> CHUNK_SHIFT;
    if (c >= u->nchunks)
        return NULL;
    return &u->chunks[c][idx & (CHUNK_SLOTS - 1)];
}

static uint32_t slot_alloc(struct uring *u, tacio_op_t *op, uint32_t epoch)
{
    if (u->free_head == NO_SLOT) {
        if (u->nchunks == MAX_CHUNKS)
            return NO_SLOT;
        struct slot *c = calloc(CHUNK_SLOTS, sizeof *c);
        if (!c)
            return NO_SLOT;
        uint32_t base = u->nchunks << CHUNK_SHIFT;
        for (uint32_t i = 0; i < CHUNK_SLOTS; i++)
            c[i].aux = i + 1 < CHUNK_SLOTS ? base + i + 1 : NO_SLOT;
        u->chunks[u->nchunks++] = c;
        u->free_head = base;
    }
    uint32_t idx = u->free_head;
    struct slot *s = slot_at(u, idx);
    u->free_head = s->aux;
    s->op = op;
    s->h = op_handle(op);
    s->opgen = op_gen(op);
    s->aux = epoch;
    u->live++;
    return idx;
}

static void slot_free(struct uring *u, uint32_t idx)
{
    struct slot *s = slot_at(u, idx);
    s->op = NULL;
    s->gen++;
    s->aux = u->free_head;
    u->free_head = idx;
    u->live--;
}

static uint64_t slot_ud(struct uring *u, uint32_t idx)
{
    return (uint64_t)idx << 32 | slot_at(u, idx)->gen;
}

/* ---- the submission ring ----------------------------------------------------- */

static void publish_locked(struct uring *u)
{
    struct io_uring_sq *sq = &u->ring.sq;
    unsigned n = sq->sqe_tail - sq->sqe_head;
    for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++)
        sq->array[i & sq->ring_mask] = i & sq->ring_mask;
    sq->sqe_head = sq->sqe_tail;
    /* release: the SQE contents are visible before the kernel sees the tail. */
    io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    atomic_fetch_add_explicit(&u->unsubmitted, n, memory_order_relaxed);
}

static void enter_submit(struct uring *u)
{
    unsigned n = atomic_exchange_explicit(&u->unsubmitted, 0, memory_order_relaxed);
    if (!n || atomic_load_explicit(&u->dead, memory_order_acquire))
        return;
    int r = io_uring_enter(u->ring.ring_fd, n, 0, 0, NULL);
    if (r < 0 && (r == -EAGAIN || r == -EBUSY || r == -EINTR))
        atomic_fetch_add_explicit(&u->unsubmitted, n, memory_order_relaxed);
}

static struct io_uring_sqe *get_sqe_locked(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe)
        return sqe;
    /* Full: hand every entry the kernel has not taken to it now, ourselves.
     * The unsubmitted count alone is not enough: another thread may have
     * taken it and not yet entered the kernel, and the count is then 0 with
     * the ring full (a start failed for want of room that way). Our enter and
     * theirs are serialised by the kernel; whichever comes second finds less
     * or nothing to take. A few tries cover an enter interrupted or refused
     * for a moment; sq_lock is held, so there is no sleeping here. */
    for (int tries = 0; tries < 4 && !atomic_load_explicit(&u->dead, memory_order_acquire);
         tries++) {
        publish_locked(u);
        atomic_store_explicit(&u->unsubmitted, 0, memory_order_relaxed);
        unsigned ready = io_uring_sq_ready(&u->ring);
        int r = ready ? io_uring_enter(u->ring.ring_fd, ready, 0, 0, NULL) : 0;
        sqe = io_uring_get_sqe(&u->ring);
        if (sqe)
            return sqe;
        if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR)
            break;
    }
    return NULL;
}

static int records(const struct tacio_handle *h)
{
    return h->type == H_DGRAM || h->seqpacket;
}

/* Fill one SQE for op. False if the ring has no room. */
static bool prep_locked(struct uring *u, tacio_op_t *op, uint32_t idx)
{
    struct io_uring_sqe *sqe = get_sqe_locked(u);
    if (!sqe)
        return false;
    struct tacio_handle *h = op_handle(op);
    int fd = h->fd;
    char *buf = op->priv_buf;
    uint64_t done = tacio__stream_progress(op);
    uint64_t off = h->type == H_FILE ? op->priv_arg : (uint64_t)-1;
    tacio_addr_t *addr = (tacio_addr_t *)(uintptr_t)op->priv_arg;

    switch (op_kind(op)) {
    case K_READ:
        io_uring_prep_read(sqe, fd, buf, op->priv_len, off);
        break;
    case K_WRITE:
        io_uring_prep_write(sqe, fd, buf + done, (unsigned)(op->priv_len - done),
                            h->type == H_FILE ? off : (uint64_t)-1);
        break;
    case K_RECV:
        io_uring_prep_recv(sqe, fd, buf, op->priv_len, records(h) ? MSG_TRUNC : 0);
        /* The handle's hint says the last look found nothing: skip io_uring's
         * own inline attempt and wait for readiness straight away. */
        if (!(atomic_load_explicit(&h->hints, memory_order_relaxed) & HINT_RX_TRY))
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        break;
    case K_SEND:
        /* WAITALL: a stream send completes with its whole buffer or an error,
         * so the next queued send never interleaves with its rest. */
        io_uring_prep_send(sqe, fd, buf + done, op->priv_len - done,
                           MSG_NOSIGNAL | (records(h) ? 0 : MSG_WAITALL));
        break;
    case K_RECVFROM:
    case K_SENDTO: {
        if (!addr) {
            io_uring_prep_recv(sqe, fd, buf, op->priv_len, MSG_TRUNC);
            break;
        }
        struct msg_scratch *m = (struct msg_scratch *)(void *)addr->priv_scratch;
        memset(m, 0, sizeof *m);
        m->iov.iov_base = buf;
        m->iov.iov_len = op->priv_len;
        m->msg.msg_name = &addr->u;
        m->msg.msg_iov = &m->iov;
        m->msg.msg_iovlen = 1;
        if (op_kind(op) == K_RECVFROM) {
            m->msg.msg_namelen = sizeof addr->u;
            io_uring_prep_recvmsg(sqe, fd, &m->msg, MSG_TRUNC);
        } else {
            m->msg.msg_namelen = addr->len;
            io_uring_prep_sendmsg(sqe, fd, &m->msg, MSG_NOSIGNAL);
        }
        break;
    }
    case K_ACCEPT:
        if (addr)
            addr->len = sizeof addr->u;
        io_uring_prep_accept(sqe, fd, addr ? &addr->u.sa : NULL, addr ? &addr->len : NULL,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case K_CONNECT:
        /* connect() was started synchronously; wait for its outcome. */
        io_uring_prep_poll_add(sqe, fd, POLLOUT);
        break;
    case K_POLL:
        io_uring_prep_poll_add(sqe, fd, (unsigned)op->priv_arg);
        break;
    case K_FSYNC:
        io_uring_prep_fsync(sqe, fd, op->priv_arg ? IORING_FSYNC_DATASYNC : 0);
        break;
    case K_TIMER: {
        struct __kernel_timespec *ts = &u->ts[sqe - u->ring.sq.sqes];
        ts->tv_sec = (long long)(op->priv_arg / 1000000000u);
        ts->tv_nsec = (long long)(op->priv_arg % 1000000000u);
        io_uring_prep_timeout(sqe, ts, 0, 0);
        break;
    }
    default:
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data64(sqe, slot_ud(u, idx));
    publish_locked(u);
    return true;
}

/* The handle's list of armed slots (h->bdata holds head index + 1). */
static void hlist_add_locked(struct uring *u, struct tacio_handle *h, uint32_t idx)
{
    struct slot *sl = slot_at(u, idx);
    uint32_t head = (uint32_t)(uintptr_t)h->bdata;
    sl->hprev = 0;
    sl->hnext = head;
    if (head)
        slot_at(u, head - 1)->hprev = idx + 1;
    h->bdata = (void *)(uintptr_t)(idx + 1);
}

static void hlist_del_locked(struct uring *u, struct tacio_handle *h, uint32_t idx)
{
    struct slot *sl = slot_at(u, idx);
    if (sl->hprev)
        slot_at(u, sl->hprev - 1)->hnext = sl->hnext;
    else
        h->bdata = (void *)(uintptr_t)sl->hnext;
    if (sl->hnext)
        slot_at(u, sl->hnext - 1)->hprev = sl->hprev;
    sl->hnext = sl->hprev = 0;
}

/* ---- the interface --------------------------------------------------------------- */

static tacio_status_t u_submit(struct tacio_port *p, tacio_op_t *op, bool defer)
{
    struct uring *u = U(p);
    struct tacio_handle *h = op_handle(op);
    pthread_mutex_lock(&u->sq_lock);
    /* A cancel, close or cancel_handle that came while it was starting ends
     * it here instead (tacio__arm_verdict). */
    tacio_status_t st = u->closing ? TACIO_PORT_DISCONNECTED : tacio__arm_verdict(op);
    if (st == TACIO_SUCCESS) {
        uint32_t epoch = op_slot(op);
        uint32_t idx = slot_alloc(u, op, epoch);
        if (idx == NO_SLOT)
            st = TACIO_NO_MEMORY;
        else if (!prep_locked(u, op, idx)) {
            slot_free(u, idx);
            st = TACIO_INSUFFICIENT_RESOURCES;
        } else {
            op_set_slot(op, idx);
            hlist_add_locked(u, h, idx);
        }
    }
    pthread_mutex_unlock(&u->sq_lock);
    if (st != TACIO_SUCCESS)
        return st;
    if (defer)
        tacio__note_deferred(p);
    else
        enter_submit(u);
    return TACIO_SUCCESS;
}

static void retry_later_locked(struct uring *u, uint64_t ud)
{
    if (u->nretry == 0)
        atomic_store_explicit(&u->retry_due,
                              (int64_t)tacio__now_ns() + CANCEL_RETRY_MS * 1000000ll,
                              memory_order_relaxed);
    if (u->nretry == u->retry_cap) {
        unsigned cap = u->retry_cap ? u->retry_cap * 2 : 16;
        uint64_t *n = realloc(u->retry, cap * sizeof *n);
        if (!n)
            return; /* the target still completes when its event comes */
        u->retry = n;
        u->retry_cap = cap;
    }
    u->retry[u->nretry++] = ud;
}

/* Queue the cancel whose own CQE will carry ud (see UD_CANCEL_*). */
static void prep_cancel_locked(struct uring *u, uint64_t ud)
{
    struct io_uring_sqe *sqe = get_sqe_locked(u);
    if (!sqe) {
        retry_later_locked(u, ud);
        return;
    }
    io_uring_prep_cancel64(sqe, ud & ~UD_CANCEL_MASK, 0);
    io_uring_sqe_set_data64(sqe, ud);
    publish_locked(u);
}

static void prep_cancel_all_locked(struct uring *u)
{
    struct io_uring_sqe *sqe = get_sqe_locked(u);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    publish_locked(u);
}

/* A cancel's CQE came back: is its target still waiting in the kernel? */
static void cancel_done_locked(struct uring *u, uint64_t ud)
{
    uint32_t idx = (uint32_t)((ud & ~UD_CANCEL_MASK) >> 32);
    struct slot *s = slot_at(u, idx);
    if (s && s->op && s->gen == (uint32_t)ud && !u->closing &&
        (atomic_load_explicit(op_word(s->op), memory_order_relaxed) & OPW_CANCEL))
        retry_later_locked(u, ud);
}

/* Issue the cancels that missed; each is checked again when its CQE comes. */
static void issue_retries(struct tacio_port *p, struct uring *u)
{
    pthread_mutex_lock(&u->sq_lock);
    unsigned n = u->nretry;
    stat_add(&p->st.cancels_retried, n);
    u->nretry = 0;
    for (unsigned i = 0; i < n; i++)
        prep_cancel_locked(u, u->retry[i]);
    pthread_mutex_unlock(&u->sq_lock);
    if (n)
        enter_submit(u);
}

static tacio_status_t u_cancel(struct tacio_port *p, tacio_op_t *op, struct tacio_handle *h)
{
    struct uring *u = U(p);
    tacio_status_t st = TACIO_SUCCESS;
    pthread_mutex_lock(&u->sq_lock);
    if (op_handle(op) != h || !tacio__op_mark_cancel(op)) {
        st = TACIO_NOT_FOUND;
    } else {
        struct slot *s = slot_at(u, op_slot(op));
        /* Not armed yet (its synchronous attempt is running): the bit makes
         * u_submit end it with CANCELLED instead of arming it. */
        if (s && s->op == op && !u->closing)
            prep_cancel_locked(u, UD_CANCEL_OP | slot_ud(u, op_slot(op)));
    }
    pthread_mutex_unlock(&u->sq_lock);
    if (st == TACIO_SUCCESS)
        enter_submit(u);
    return st;
}

static tacio_status_t u_cancel_handle(struct tacio_port *p, struct tacio_handle *h)
{
    struct uring *u = U(p);
    pthread_mutex_lock(&u->sq_lock);
    /* Owed to every armed op that started before the epoch moved on; the
     * others started after the cancel and are left alone. */
    uint32_t now = handle_epoch(h);
    for (uint32_t i = (uint32_t)(uintptr_t)h->bdata; i && !u->closing;) {
        struct slot *sl = slot_at(u, i - 1);
        /* The verifier looks before the mark reads the record: one that a
         * lying backend also returned synchronously may be freed by now
         * (the seed case, closed before its second completion came). */
        bool owed = sl->aux != now;
        if (owed && tacio__verifying() && !tacio__verify_completion(sl->op, sl->opgen, TACIO_CANCELLED))
            owed = false; /* reported; the ring's teardown ends it */
        if (owed && tacio__op_mark_cancel(sl->op))
            prep_cancel_locked(u, UD_CANCEL_OP | slot_ud(u, i - 1));
        i = sl->hnext;
    }
    pthread_mutex_unlock(&u->sq_lock);
    enter_submit(u);
    return TACIO_SUCCESS;
}

static bool should_reissue(struct uring *u, tacio_op_t *op, struct slot *s)
{
    struct tacio_handle *h = op_handle(op);
    if (u->closing || op_kind(op) == K_TIMER)
        return false;
    if (atomic_load_explicit(op_word(op), memory_order_relaxed) & OPW_CANCEL)
        return false;
    if (atomic_load_explicit(&h->use, memory_order_relaxed) & USE_CLOSING)
        return false;
    return s->aux == handle_epoch(h);
}

static void fill_from_len(tacio_op_t *op)
{
    tacio_addr_t *from = (tacio_addr_t *)(uintptr_t)op->priv_arg;
    if (op_kind(op) != K_RECVFROM || !from)
        return;
    from->len = ((struct msg_scratch *)(void *)from->priv_scratch)->msg.msg_namelen;
}

/* One CQE, under sq_lock. */
static void handle_cqe(struct tacio_port *p, struct uring *u, const struct io_uring_cqe *cqe,
                       struct oplist *out, struct oplist *succ)
{
    uint64_t ud = cqe->user_data;
    if (ud == UD_WAKE) {
        atomic_store_explicit(&u->wake_pending, false, memory_order_relaxed);
        return;
    }
    if (ud == UD_IGNORE)
        return;
    if (ud & UD_CANCEL_MASK) {
        cancel_done_locked(u, ud);
        return;
    }
    uint32_t idx = (uint32_t)(ud >> 32);
    struct slot *s = slot_at(u, idx);
    if (!s || !s->op || s->gen != (uint32_t)ud) {
        stat_add(&p->st.dropped_stale, 1);
        return;
    }
    tacio_op_t *op = s->op;
    long res = cqe->res;
    /* The verifier looks before anything reads the record: a completion
     * for one that already completed (a backend that lied) may be landing
     * on freed memory. */
    if (tacio__verifying() &&
        !tacio__verify_completion(op, s->opgen,
                                  res < 0 ? tacio_status_from_errno((int)-res) : TACIO_SUCCESS)) {
        hlist_del_locked(u, s->h, idx);
        slot_free(u, idx);
        stat_add(&p->st.dropped_duplicates, 1);
        return;
    }
    if (res == -ECANCELED && should_reissue(u, op, s)) {
        uint32_t epoch = s->aux;
        if (prep_locked(u, op, idx)) {
            s->aux = epoch;
            stat_add(&p->st.reissued_after_exit, 1);
            return;
        }
    }
    if (res > 0 && op_is_stream_tx(op) &&
        tacio__stream_progress(op) + (uint64_t)res < op->priv_len) {
        /* A stream send stopped short (its thread exited, or a cancel hit it
         * half way): go on with the rest unless someone asked to stop. */
        tacio__set_stream_progress(op, tacio__stream_progress(op) + (uint64_t)res);
        uint32_t epoch = s->aux;
        if (should_reissue(u, op, s) && prep_locked(u, op, idx)) {
            s->aux = epoch;
            stat_add(&p->st.reissued_after_exit, 1);
            return;
        }
        res = -ECANCELED; /* bytes = the progress, via map_result */
    }
    tacio_status_t st;
    uint64_t bytes;
    if (op_kind(op) == K_CONNECT && res >= 0) {
        st = tacio__connect_result(op_handle(op)->fd);
        bytes = 0;
    } else {
        tacio__map_result(op, res, &st, &bytes);
        fill_from_len(op);
    }
    uint32_t opgen = s->opgen;
    hlist_del_locked(u, s->h, idx);
    slot_free(u, idx);
    if (tacio__op_finish(op, opgen, st, bytes, succ))
        oplist_push(out, op);
    else
        stat_add(&p->st.dropped_duplicates, 1);
}

static void reap(struct tacio_port *p, struct uring *u, struct oplist *out)
{
    struct io_uring_cqe *cqes[REAP_BATCH];
    struct oplist succ = {0};
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, REAP_BATCH);
        if (!n)
            break;
        /* sq_lock also orders the submitters' writes to records and slots
         * before these reads, which the kernel round trip does too but no
         * race detector can see. */
        pthread_mutex_lock(&u->sq_lock);
        for (unsigned i = 0; i < n; i++)
            handle_cqe(p, u, cqes[i], out, &succ);
        pthread_mutex_unlock(&u->sq_lock);
        io_uring_cq_advance(&u->ring, n);
        if (n < REAP_BATCH)
            break;
    }
    enter_submit(u); /* re-issued operations */
    tacio__run_successors(&succ);
}

static tacio_status_t u_wait(struct tacio_port *p, int timeout_ms, struct oplist *out)
{
    struct uring *u = U(p);
    bool capped = false;
    if (atomic_load_explicit(&u->nretry, memory_order_relaxed)) {
        int64_t early = atomic_load_explicit(&u->retry_due, memory_order_relaxed) -
                        (int64_t)tacio__now_ns();
        if (early <= 0)
            issue_retries(p, u);
        /* Wait out the interval (or the next one), then look again. */
        int cap = early > 0 ? (int)((early + 999999) / 1000000) : CANCEL_RETRY_MS;
        if (timeout_ms < 0 || timeout_ms > cap) {
            timeout_ms = cap;
            capped = true; /* not the caller's timeout: never report TIMEOUT */
        }
    }
    unsigned n = atomic_exchange_explicit(&u->unsubmitted, 0, memory_order_relaxed);
    int r = 0;
    if (io_uring_cq_ready(&u->ring) || timeout_ms == 0) {
        if (n)
            r = io_uring_enter(u->ring.ring_fd, n, 0, 0, NULL);
    } else if (timeout_ms < 0) {
        r = io_uring_enter(u->ring.ring_fd, n, 1, IORING_ENTER_GETEVENTS, NULL);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
        r = io_uring_enter2(u->ring.ring_fd, n, 1,
                            IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                            (sigset_t *)(void *)&arg, sizeof arg);
    }
    if (r < 0 && n && (r == -EAGAIN || r == -EBUSY || r == -EINTR))
        atomic_fetch_add_explicit(&u->unsubmitted, n, memory_order_relaxed);
    unsigned before = out->n;
    reap(p, u, out);
    if (out->n == before && !capped && timeout_ms >= 0 && (r == -ETIME || timeout_ms == 0))
        return TACIO_TIMEOUT;
    return TACIO_SUCCESS;
}

static void u_wake(struct tacio_port *p)
{
    struct uring *u = U(p);
    if (atomic_exchange_explicit(&u->wake_pending, true, memory_order_relaxed))
        return;
    pthread_mutex_lock(&u->sq_lock);
    /* After the drain nobody waits, and after fini the ring is gone. */
    struct io_uring_sqe *sqe = u->closing ? NULL : get_sqe_locked(u);
    if (sqe) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, UD_WAKE);
        publish_locked(u);
    } else {
        atomic_store_explicit(&u->wake_pending, false, memory_order_relaxed);
    }
    pthread_mutex_unlock(&u->sq_lock);
    enter_submit(u);
}

static void u_flush(struct tacio_port *p)
{
    enter_submit(U(p));
}

static void u_drain(struct tacio_port *p, struct oplist *out)
{
    struct uring *u = U(p);
    for (int round = 0;; round++) {
        pthread_mutex_lock(&u->sq_lock);
        u->closing = true;
        unsigned live = u->live;
        if (live && round % 10 == 0)
            prep_cancel_all_locked(u);
        pthread_mutex_unlock(&u->sq_lock);
        if (!live)
            break;
        enter_submit(u);
        u_wait(p, 100, out);
    }
    reap(p, u, out);
}

static void u_fini(struct tacio_port *p)
{
    struct uring *u = U(p);
    pthread_mutex_lock(&u->sq_lock);
    atomic_store_explicit(&u->dead, true, memory_order_release);
    io_uring_queue_exit(&u->ring);
    free(u->retry);
    u->retry = NULL;
    u->nretry = 0;
    for (unsigned i = 0; i < u->nchunks; i++)
        free(u->chunks[i]);
    u->nchunks = 0;
    free(u->ts);
    u->ts = NULL;
    pthread_mutex_unlock(&u->sq_lock);
}

static void describe_failure(int err, char *why, size_t whylen)
{
    char sysctl[32] = "";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        if (!fgets(sysctl, sizeof sysctl, f))
            sysctl[0] = 0;
        fclose(f);
        sysctl[strcspn(sysctl, "\n")] = 0;
    }
    const char *cause;
    if (sysctl[0] == '2')
        cause = "io_uring is disabled system-wide (kernel.io_uring_disabled=2)";
    else if (sysctl[0] == '1' && err == EPERM)
        cause = "io_uring is restricted to kernel.io_uring_group (kernel.io_uring_disabled=1)";
    else if (err == ENOSYS)
        cause = "the kernel has no io_uring, or a seccomp filter hides it";
    else if (err == EPERM || err == EACCES)
        cause = "a seccomp filter or security module refuses io_uring";
    else if (err == ENOMEM)
        cause = "the ring could not be allocated (RLIMIT_MEMLOCK or memory)";
    else
        cause = "the kernel refused the ring set-up";
    snprintf(why, whylen, "io_uring_setup: %s: %s", strerror(err), cause);
}

static tacio_status_t u_init(struct tacio_port *p, unsigned depth, char *why, size_t whylen)
{
    struct uring *u = calloc(1, sizeof *u);
    if (!u)
        return TACIO_NO_MEMORY;
    struct io_uring_params prm;
    memset(&prm, 0, sizeof prm);
    /* COOP_TASKRUN: a completion's task work waits for its submitter's next
     * kernel entry (a syscall, a sleep's wake-up or the scheduler tick)
     * instead of interrupting it. Without it every socket wake-up sends the
     * submitter into its task work at once, usually while the waking CPU
     * still holds the socket lock, and the two spin on it. The cost: an op
     * whose submitter is busy in user code without syscalls completes up to
     * one tick later. TACIO_URING_COOP=0 turns it off. */
    const char *coop_env = getenv("TACIO_URING_COOP");
    unsigned coop = coop_env && !strcmp(coop_env, "0") ? 0 : IORING_SETUP_COOP_TASKRUN;
    prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL | coop;
    prm.cq_entries = depth * 16 < 4096 ? 4096 : depth * 16;
    int r = io_uring_queue_init_params(depth, &u->ring, &prm);
    if (r == -EINVAL && coop) { /* before 5.19 */
        memset(&prm, 0, sizeof prm);
        prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
        prm.cq_entries = depth * 16 < 4096 ? 4096 : depth * 16;
        r = io_uring_queue_init_params(depth, &u->ring, &prm);
    }
    if (r == -EINVAL) {
        memset(&prm, 0, sizeof prm);
        prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        prm.cq_entries = 4096;
        r = io_uring_queue_init_params(depth, &u->ring, &prm);
    }
    if (r < 0) {
        describe_failure(-r, why, whylen);
        free(u);
        return r == -ENOMEM ? TACIO_NO_MEMORY : TACIO_NOT_SUPPORTED;
    }
    const unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_SUBMIT_STABLE;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    bool ops_ok = probe && io_uring_opcode_supported(probe, IORING_OP_SOCKET); /* 5.19+ */
    if (probe)
        io_uring_free_probe(probe);
    if ((prm.features & need) != need || !ops_ok) {
        snprintf(why, whylen, "io_uring: this kernel lacks what tacio needs (Linux 5.19 or "
                              "later: cancel by fd, extended wait arguments)");
        io_uring_queue_exit(&u->ring);
        free(u);
        return TACIO_NOT_SUPPORTED;
    }
    u->ts = calloc(u->ring.sq.ring_entries, sizeof *u->ts);
    if (!u->ts) {
        io_uring_queue_exit(&u->ring);
        free(u);
        return TACIO_NO_MEMORY;
    }
    pthread_mutex_init(&u->sq_lock, NULL);
    u->free_head = NO_SLOT;
    p->bctx = u;
    snprintf(why, whylen, "io_uring: available (sq %u, cq %u entries)", u->ring.sq.ring_entries,
             u->ring.cq.ring_entries);
    return TACIO_SUCCESS;
}

static void u_destroy(struct tacio_port *p)
{
    struct uring *u = U(p);
    if (!u)
        return;
    pthread_mutex_destroy(&u->sq_lock);
    free(u);
    p->bctx = NULL;
}

const struct tacio_backend tacio__backend_uring = {
    .name = "io_uring",
    .caps = BE_CAP_FILES_ASYNC | BE_CAP_BATCHED_SENDS,
    .init = u_init,
    .fini = u_fini,
    .destroy = u_destroy,
    .submit = u_submit,
    .cancel = u_cancel,
    .cancel_handle = u_cancel_handle,
    .wait = u_wait,
    .wake = u_wake,
    .flush = u_flush,
    .drain = u_drain,
};
