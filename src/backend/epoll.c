/* epoll.c - the readiness backend, for kernels and sandboxes without io_uring.
 *
 * Sockets and pipes: one edge-triggered registration per fd number
 * (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET), made by the first operation that has
 * to wait. Each fd has two wait lists (receive side, send side), FIFO, linked
 * through priv_next. When a side becomes ready its head operations are run
 * with tacio__sys_try, the non-blocking call the core makes in the start
 * call, until one would block; so a result here means what a synchronous one
 * or io_uring's means. A connect waits for writability, then reads SO_ERROR.
 *
 * Regular files and fsync cannot be polled: two worker threads, started on
 * first use, run pread/pwrite/fsync/fdatasync and hand results to the port.
 * Timers: a min-heap here; its earliest deadline bounds the epoll wait.
 *
 * Readiness: an edge is reported once. An edge for a side with nothing
 * waiting is remembered (ready) and the next operation armed on that side is
 * tried at once; a side being run by a thread (busy) notes an edge in again,
 * and its runner looks once more before it believes "would block". So no edge
 * is lost between the core's failed attempt and the arming.
 *
 * Per-fd state lives in a table indexed by fd number, allocated once per
 * number and kept until the port goes; h->bdata caches the entry. Nothing
 * here ever dereferences a handle that has no operation in flight: a handle
 * closed while idle gets no call into the backend, its memory is reused, and
 * the entry only compares the old pointer (owner). An event for an entry
 * whose fd was closed or reused at worst runs a spurious attempt that finds
 * EAGAIN.
 *
 * Locking: one mutex per port guards everything below. Syscalls on the
 * caller's fds and tacio__op_finish run outside it; taken operations carry
 * their result in their own status/bytes fields until the finish writes the
 * same values for good (nobody reads them while the record is in flight).
 * The port's lock is never taken while this one is held. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"

#define NWORKERS 2
#define NEVENTS 128

struct wlist {
    tacio_op_t *head, *tail;
    bool ready; /* an edge came since the last "would block" seen here */
    bool busy;  /* a thread is running this list; its head may be in a syscall */
    bool again; /* an edge came while busy: the runner tries once more */
};

struct efd {
    struct wlist side[2];   /* DIR_RX, DIR_TX */
    const void *owner;      /* handle whose registration is in the set: compared only */
    bool registered;
};

struct ep {
    pthread_mutex_t lock;
    pthread_cond_t work;    /* workers wait for file operations */
    pthread_cond_t quiet;   /* drain waits for active == 0 */
    int epfd, evfd;
    bool closing;           /* drain began: nothing is armed any more */
    bool stop;              /* fini: workers leave */
    bool sleeping;          /* the poller is (about to be) inside epoll_wait */
    bool wake_req;          /* a wake came while not sleeping: do not sleep next */
    bool evfd_armed;        /* the eventfd holds an unread wake */
    bool no_pwait2;         /* poller only */
    uint64_t sleep_until;   /* the deadline the sleeping poller wakes at */
    unsigned active;        /* threads holding taken ops outside the lock */

    struct efd **fds;
    size_t nfds;

    tacio_op_t **heap;
    unsigned nheap, heapcap;

    tacio_op_t *fq_head, *fq_tail;
    unsigned fq_len;
    pthread_t workers[NWORKERS];
    unsigned nworkers, idle;

    struct tacio_port *port;
    char wake_tag;          /* the eventfd's epoll data */
    struct epoll_event evs[NEVENTS]; /* poller only */
};

static struct ep *E(struct tacio_port *p)
{
    return p->bctx;
}

static bool cancel_requested(tacio_op_t *op)
{
    return atomic_load_explicit(op_word(op), memory_order_relaxed) & OPW_CANCEL;
}

/* Set the cancel bit on the generation seen in w0, only while it is in
 * flight: a cancel that loses to the finish must leave no mark on the idle
 * record, nor on the next generation. Under the lock, which orders it with
 * the arming checks (relaxed is enough). */
static void mark_cancel(tacio_op_t *op, uint32_t w0)
{
    uint32_t w = w0;
    while ((w & OPW_STATE_MASK) == OP_INFLIGHT && !(w & OPW_CANCEL) &&
           (w >> OPW_GEN_SHIFT) == (w0 >> OPW_GEN_SHIFT)) {
        if (atomic_compare_exchange_weak_explicit(op_word(op), &w, w | OPW_CANCEL,
                                                  memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

/* The result an op taken out of the backend will be finished with. */
static void park(tacio_op_t *op, tacio_status_t st, uint64_t bytes, struct oplist *fin)
{
    op->status = st;
    op->bytes = bytes;
    oplist_push(fin, op);
}

static void park_cancelled(tacio_op_t *op, struct oplist *fin)
{
    park(op, TACIO_CANCELLED, tacio__stream_progress(op), fin);
}

/* An armed op keeps the epoch it started in (this backend never writes the
 * slot); a cancel_handle or close is owed to the ops started before it. */
static bool owed_handle_cancel(const tacio_op_t *op, const struct tacio_handle *h)
{
    return handle_closing(h) || op_slot(op) != handle_epoch(h);
}

/* Under the lock: a cancel, close or cancel_handle that came while the op
 * was starting ends it instead (tacio__arm_verdict, as on io_uring). */
static tacio_status_t arm_check_locked(struct ep *e, tacio_op_t *op)
{
    if (e->closing)
        return TACIO_PORT_DISCONNECTED;
    return tacio__arm_verdict(op);
}

/* ---- waking the poller ---------------------------------------------------------- */

static void kick_locked(struct ep *e)
{
    if (!e->sleeping) {
        e->wake_req = true; /* the poller checks it before it sleeps */
        return;
    }
    if (e->evfd_armed || e->evfd < 0)
        return;
    uint64_t one = 1;
    if (write(e->evfd, &one, sizeof one) == (ssize_t)sizeof one)
        e->evfd_armed = true;
}

/* ---- finishing ------------------------------------------------------------------- */

static void finish_all(struct tacio_port *p, struct oplist *fin, struct oplist *done,
                       struct oplist *succ)
{
    tacio_op_t *op = fin->head;
    while (op) {
        tacio_op_t *next = op->priv_next;
        if (tacio__op_finish(op, op_gen(op), op->status, op->bytes, succ))
            oplist_push(done, op);
        else
            stat_add(&p->st.dropped_duplicates, 1);
        op = next;
    }
    *fin = (struct oplist){0};
}

static void active_leave_locked(struct ep *e)
{
    if (--e->active == 0 && e->closing)
        pthread_cond_broadcast(&e->quiet);
}

/* Drain: successors handed their turn by a finish end CANCELLED here, as
 * the core's run() would end them on a closed port. */
static void cancel_successors(struct tacio_port *p, struct oplist *succ, struct oplist *done)
{
    while (succ->head) {
        tacio_op_t *op = succ->head;
        succ->head = op->priv_next;
        if (!succ->head)
            succ->tail = NULL;
        succ->n--;
        op->priv_next = NULL;
        if (tacio__op_finish(op, op_gen(op), TACIO_CANCELLED, tacio__stream_progress(op), succ))
            oplist_push(done, op);
        else
            stat_add(&p->st.dropped_duplicates, 1);
    }
}

/* For every thread but the poller: finish what it took (lock held on entry,
 * released on return; the caller counted itself in active), hand it to the
 * port and run the successors. Drain waits for active to reach zero, so all
 * of it reaches the port before the close collects its entries. */
static void settle_unlock(struct tacio_port *p, struct ep *e, struct oplist *fin)
{
    if (!fin->head) {
        active_leave_locked(e);
        pthread_mutex_unlock(&e->lock);
        return;
    }
    pthread_mutex_unlock(&e->lock);
    struct oplist done = {0}, succ = {0};
    finish_all(p, fin, &done, &succ);
    tacio__port_complete_list(p, &done);
    tacio__run_successors(&succ);
    pthread_mutex_lock(&e->lock);
    active_leave_locked(e);
    pthread_mutex_unlock(&e->lock);
}

/* ---- sockets and pipes ----------------------------------------------------------- */

static unsigned side_of(const tacio_op_t *op)
{
    switch (op_kind(op)) {
    case K_READ:
    case K_RECV:
    case K_RECVFROM:
    case K_ACCEPT:
        return DIR_RX;
    case K_POLL:
        return (op->priv_arg & POLLIN) ? DIR_RX : DIR_TX;
    default:
        return DIR_TX;
    }
}

static void wl_append(struct wlist *w, tacio_op_t *op)
{
    op->priv_next = NULL;
    if (w->tail)
        w->tail->priv_next = op;
    else
        w->head = op;
    w->tail = op;
}

static bool wl_unlink(struct wlist *w, tacio_op_t *op)
{
    tacio_op_t *prev = NULL;
    for (tacio_op_t *it = w->head; it; prev = it, it = it->priv_next) {
        if (it != op)
            continue;
        if (prev)
            prev->priv_next = it->priv_next;
        else
            w->head = it->priv_next;
        if (w->tail == it)
            w->tail = prev;
        it->priv_next = NULL;
        return true;
    }
    return false;
}

static struct efd *efd_for(struct ep *e, int fd)
{
    if ((size_t)fd >= e->nfds) {
        size_t n = e->nfds ? e->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct efd **t = realloc(e->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + e->nfds, 0, (n - e->nfds) * sizeof *t);
        e->fds = t;
        e->nfds = n;
    }
    if (!e->fds[fd])
        e->fds[fd] = calloc(1, sizeof **e->fds);
    return e->fds[fd];
}

/* h's fd in the set, registered by h. A handle's first op always registers
 * (bdata NULL: the entry may carry a registration of an older handle that
 * had the same number, or the same address). */
static tacio_status_t attach_locked(struct ep *e, struct tacio_handle *h, struct efd **out)
{
    struct efd *f = h->bdata;
    if (f && f->registered && f->owner == h) {
        *out = f;
        return TACIO_SUCCESS;
    }
    if (!f && !(f = efd_for(e, h->fd)))
        return TACIO_NO_MEMORY;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = f};
    int r = epoll_ctl(e->epfd, EPOLL_CTL_ADD, h->fd, &ev);
    if (r < 0 && errno == EEXIST) /* the same file, registered by an older handle */
        r = epoll_ctl(e->epfd, EPOLL_CTL_MOD, h->fd, &ev);
    if (r < 0)
        return tacio_status_from_errno(errno);
    if (!f->side[DIR_RX].head && !f->side[DIR_TX].head) {
        /* What is ready now is reported by the registration itself. */
        f->side[DIR_RX].ready = f->side[DIR_TX].ready = false;
    }
    f->owner = h;
    f->registered = true;
    h->bdata = f;
    *out = f;
    return TACIO_SUCCESS;
}

/* h is closing and nothing of it waits here: take the fd out of the set now,
 * while the op being taken still keeps it open (the core closes it after the
 * last finish). Only the registering handle removes it, so a number reused
 * and registered since is never touched. */
static void release_locked(struct ep *e, struct efd *f, const struct tacio_handle *h)
{
    if (!f->registered || f->owner != h || f->side[DIR_RX].head || f->side[DIR_TX].head)
        return;
    if (!handle_closing(h))
        return;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    f->registered = false;
    f->owner = NULL;
}

static void take_locked(struct ep *e, struct efd *f, unsigned d, tacio_op_t *op,
                        tacio_status_t st, uint64_t bytes, struct oplist *fin)
{
    wl_unlink(&f->side[d], op);
    park(op, st, bytes, fin);
    release_locked(e, f, op_handle(op));
}

enum { TRY_DONE, TRY_BLOCKED, TRY_AGAIN };

static int attempt(tacio_op_t *op, tacio_status_t *st, uint64_t *bytes)
{
    int fd = op_handle(op)->fd;
    if (op_kind(op) == K_CONNECT) {
        /* connect() was started by the core; writable means it is decided. */
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int r = poll(&pf, 1, 0);
        if (r == 0)
            return TRY_BLOCKED;
        if (r < 0 && errno == EINTR)
            return TRY_AGAIN;
        *st = r < 0 ? tacio_status_from_errno(errno) : tacio__connect_result(fd);
        *bytes = 0;
        return TRY_DONE;
    }
    uint64_t before = tacio__stream_progress(op);
    errno = 0;
    if (tacio__sys_try(op, st, bytes))
        return TRY_DONE;
    /* Part of a stream send went out: go on until the kernel says EAGAIN. */
    if (tacio__stream_progress(op) != before || errno == EINTR)
        return TRY_AGAIN;
    return TRY_BLOCKED;
}

/* A stream receive that got less than it asked for emptied the queue, and any
 * later data brings a new edge: treat it as "would block", so the next
 * receive waits for that edge instead of paying a failed syscall (ping-pong).
 * Not at end of file (a later receive returns 0 at once, and no edge comes),
 * not for records (one per call). */
static bool drained(const tacio_op_t *op, tacio_status_t st, uint64_t bytes)
{
    const struct tacio_handle *h = op_handle(op);
    unsigned k = op_kind(op);
    return st == TACIO_SUCCESS && (k == K_RECV || k == K_READ) && !h->seqpacket &&
           (h->type == H_STREAM || h->type == H_PIPE) && bytes > 0 && bytes < op->priv_len;
}

/* Run side d of f until its head would block or it is empty. The caller set
 * busy; the lock is held on entry and return and dropped around each
 * syscall. Only the busy holder removes the head, so op stays the head. */
static void run_locked(struct ep *e, struct efd *f, unsigned d, struct oplist *fin)
{
    struct wlist *w = &f->side[d];
    for (;;) {
        tacio_op_t *op = w->head;
        if (!op)
            break;
        w->again = false;
        pthread_mutex_unlock(&e->lock);
        tacio_status_t st = TACIO_SUCCESS;
        uint64_t bytes = 0;
        int r = attempt(op, &st, &bytes);
        pthread_mutex_lock(&e->lock);
        if (r == TRY_AGAIN)
            continue;
        if (r == TRY_DONE) {
            bool empty = drained(op, st, bytes);
            take_locked(e, f, d, op, st, bytes, fin);
            if (empty && !w->again) {
                w->ready = false;
                break;
            }
            continue;
        }
        if (cancel_requested(op) || handle_closing(op_handle(op)) || e->closing) {
            take_locked(e, f, d, op, TACIO_CANCELLED, tacio__stream_progress(op), fin);
            continue;
        }
        if (w->again)
            continue;
        w->ready = false;
        break;
    }
    w->busy = false;
}

static tacio_status_t submit_poll(struct tacio_port *p, struct ep *e, tacio_op_t *op)
{
    struct tacio_handle *h = op_handle(op);
    unsigned d = side_of(op);
    struct efd *f = NULL;
    pthread_mutex_lock(&e->lock);
    tacio_status_t st = arm_check_locked(e, op);
    if (st == TACIO_SUCCESS)
        st = attach_locked(e, h, &f);
    if (st != TACIO_SUCCESS) {
        pthread_mutex_unlock(&e->lock);
        return st;
    }
    struct wlist *w = &f->side[d];
    wl_append(w, op);
    if (!w->ready || w->busy) {
        pthread_mutex_unlock(&e->lock);
        return TACIO_SUCCESS;
    }
    /* An edge is unaccounted for: it may have come after the core's attempt. */
    w->busy = true;
    e->active++;
    struct oplist fin = {0};
    run_locked(e, f, d, &fin);
    settle_unlock(p, e, &fin);
    return TACIO_SUCCESS;
}

/* One epoll event, under the lock (dropped while sides run). */
static void on_event_locked(struct ep *e, struct efd *f, uint32_t ev, struct oplist *fin)
{
    const uint32_t rx = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    const uint32_t tx = EPOLLOUT | EPOLLHUP | EPOLLERR;
    for (unsigned d = 0; d < 2; d++) {
        if (!(ev & (d == DIR_RX ? rx : tx)))
            continue;
        struct wlist *w = &f->side[d];
        w->ready = true;
        if (w->busy) {
            w->again = true;
            continue;
        }
        if (!w->head)
            continue;
        w->busy = true;
        run_locked(e, f, d, fin);
    }
}

/* Take every op of side w (of handle h, or of all handles when h is NULL)
 * that is not running; a running head gets the cancel bit, and its runner
 * ends it CANCELLED if it would block. */
static void cancel_side_locked(struct efd *f, unsigned d,
                               const struct tacio_handle *h, struct oplist *fin)
{
    struct wlist *w = &f->side[d];
    tacio_op_t *prev = NULL, *op = w->head;
    while (op) {
        tacio_op_t *next = op->priv_next;
        bool mine = !h || (op_handle(op) == h && owed_handle_cancel(op, h));
        if (mine && w->busy && op == w->head) {
            mark_cancel(op, atomic_load_explicit(op_word(op), memory_order_relaxed));
            mine = false;
        }
        if (!mine) {
            prev = op;
            op = next;
            continue;
        }
        if (prev)
            prev->priv_next = next;
        else
            w->head = next;
        if (w->tail == op)
            w->tail = prev;
        park_cancelled(op, fin);
        op = next;
    }
}

/* ---- timers ------------------------------------------------------------------------ */

/* A timer's absolute deadline replaces its relative delay in priv_arg. */
static uint64_t deadline_of(const tacio_op_t *op)
{
    return op->priv_arg;
}

/* A timer's heap index lives in its priv_len (a timer has no length). */
static void heap_put(struct ep *e, unsigned i, tacio_op_t *op)
{
    e->heap[i] = op;
    op->priv_len = i;
}

static void sift_up(struct ep *e, unsigned i)
{
    tacio_op_t *op = e->heap[i];
    while (i > 0) {
        unsigned up = (i - 1) / 2;
        if (deadline_of(e->heap[up]) <= deadline_of(op))
            break;
        heap_put(e, i, e->heap[up]);
        i = up;
    }
    heap_put(e, i, op);
}

static void sift_down(struct ep *e, unsigned i)
{
    tacio_op_t *op = e->heap[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= e->nheap)
            break;
        if (c + 1 < e->nheap && deadline_of(e->heap[c + 1]) < deadline_of(e->heap[c]))
            c++;
        if (deadline_of(op) <= deadline_of(e->heap[c]))
            break;
        heap_put(e, i, e->heap[c]);
        i = c;
    }
    heap_put(e, i, op);
}

static void heap_remove(struct ep *e, unsigned i)
{
    tacio_op_t *last = e->heap[--e->nheap];
    if (i == e->nheap)
        return;
    heap_put(e, i, last);
    sift_down(e, i);
    sift_up(e, last->priv_len);
}

static tacio_status_t heap_push(struct ep *e, tacio_op_t *op)
{
    if (e->nheap == e->heapcap) {
        if (e->heapcap > UINT32_MAX / 4)
            return TACIO_INSUFFICIENT_RESOURCES;
        unsigned cap = e->heapcap ? e->heapcap * 2 : 64;
        tacio_op_t **h = realloc(e->heap, cap * sizeof *h);
        if (!h)
            return TACIO_NO_MEMORY;
        e->heap = h;
        e->heapcap = cap;
    }
    e->heap[e->nheap] = op;
    sift_up(e, e->nheap++);
    return TACIO_SUCCESS;
}

static void expire_locked(struct ep *e, uint64_t now, struct oplist *fin)
{
    while (e->nheap && deadline_of(e->heap[0]) <= now) {
        tacio_op_t *op = e->heap[0];
        heap_remove(e, 0);
        tacio_status_t st;
        uint64_t bytes;
        tacio__map_result(op, 0, &st, &bytes);
        park(op, st, bytes, fin);
    }
}

static tacio_status_t submit_timer(struct ep *e, tacio_op_t *op)
{
    pthread_mutex_lock(&e->lock);
    tacio_status_t st = arm_check_locked(e, op);
    if (st == TACIO_SUCCESS) {
        uint64_t now = tacio__now_ns();
        op->priv_arg = op->priv_arg > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + op->priv_arg;
        st = heap_push(e, op);
        /* A sleeping poller with a later deadline must look again. */
        if (st == TACIO_SUCCESS && e->sleeping && op->priv_arg < e->sleep_until)
            kick_locked(e);
    }
    pthread_mutex_unlock(&e->lock);
    return st;
}

/* ---- files ------------------------------------------------------------------------- */

static void run_file(tacio_op_t *op, tacio_status_t *st, uint64_t *bytes)
{
    int fd = op_handle(op)->fd;
    long r;
    do {
        switch (op_kind(op)) {
        case K_READ:
            r = pread(fd, op->priv_buf, op->priv_len, (off_t)op->priv_arg);
            break;
        case K_WRITE:
            r = pwrite(fd, op->priv_buf, op->priv_len, (off_t)op->priv_arg);
            break;
        case K_FSYNC:
            r = op->priv_arg ? fdatasync(fd) : fsync(fd);
            break;
        default:
            r = -1;
            errno = EINVAL;
            break;
        }
    } while (r < 0 && errno == EINTR);
    tacio__map_result(op, r < 0 ? -(long)errno : r, st, bytes);
}

static void *worker_main(void *arg)
{
    struct tacio_port *p = arg;
    struct ep *e = E(p);
    pthread_mutex_lock(&e->lock);
    for (;;) {
        tacio_op_t *op = e->fq_head;
        if (!op) {
            if (e->stop)
                break;
            e->idle++;
            pthread_cond_wait(&e->work, &e->lock);
            e->idle--;
            continue;
        }
        e->fq_head = op->priv_next;
        if (!e->fq_head)
            e->fq_tail = NULL;
        e->fq_len--;
        /* Running: out of the queue, so cancel leaves it to complete. */
        e->active++;
        pthread_mutex_unlock(&e->lock);
        tacio_status_t st;
        uint64_t bytes;
        run_file(op, &st, &bytes);
        struct oplist fin = {0};
        park(op, st, bytes, &fin);
        pthread_mutex_lock(&e->lock);
        settle_unlock(p, e, &fin);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static bool start_worker_locked(struct ep *e)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Workers take no signals: the application's handlers run on its threads. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&e->workers[e->nworkers], NULL, worker_main, e->port);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return false;
    e->nworkers++;
    return true;
}

static tacio_status_t submit_file(struct ep *e, tacio_op_t *op)
{
    pthread_mutex_lock(&e->lock);
    tacio_status_t st = arm_check_locked(e, op);
    if (st == TACIO_SUCCESS && e->nworkers < NWORKERS && e->fq_len >= e->idle &&
        !start_worker_locked(e) && e->nworkers == 0)
        st = TACIO_INSUFFICIENT_RESOURCES;
    if (st == TACIO_SUCCESS) {
        op->priv_next = NULL;
        if (e->fq_tail)
            e->fq_tail->priv_next = op;
        else
            e->fq_head = op;
        e->fq_tail = op;
        e->fq_len++;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->lock);
    return st;
}

static bool fq_unlink_locked(struct ep *e, tacio_op_t *op)
{
    tacio_op_t *prev = NULL;
    for (tacio_op_t *it = e->fq_head; it; prev = it, it = it->priv_next) {
        if (it != op)
            continue;
        if (prev)
            prev->priv_next = it->priv_next;
        else
            e->fq_head = it->priv_next;
        if (e->fq_tail == it)
            e->fq_tail = prev;
        e->fq_len--;
            return true;
    }
    return false;
}

/* Queued (not running) file ops of h, or all of them when h is NULL. */
static void cancel_files_locked(struct ep *e, const struct tacio_handle *h, struct oplist *fin)
{
    tacio_op_t *op = e->fq_head;
    while (op) {
        tacio_op_t *next = op->priv_next;
        if (!h || (op_handle(op) == h && owed_handle_cancel(op, h))) {
            fq_unlink_locked(e, op);
            park_cancelled(op, fin);
        }
        op = next;
    }
}

/* ---- the interface ----------------------------------------------------------------- */

static tacio_status_t e_submit(struct tacio_port *p, tacio_op_t *op, bool defer)
{
    /* Nothing to batch: arming is a few stores under the lock. */
    (void)defer;
    struct ep *e = E(p);
    if (op_kind(op) == K_TIMER)
        return submit_timer(e, op);
    switch (op_handle(op)->type) {
    case H_FILE:
        return submit_file(e, op);
    case H_PIPE:
    case H_STREAM:
    case H_DGRAM:
        return submit_poll(p, e, op);
    default:
        return TACIO_INVALID_DEVICE_REQUEST;
    }
}

/* Take op out if it is armed and not running. Where it would be follows
 * from its kind and handle; finding it there proves it is armed. */
static void take_armed_locked(struct ep *e, tacio_op_t *op, struct tacio_handle *h,
                              struct oplist *fin)
{
    if (op_kind(op) == K_TIMER) {
        /* The record may be restarting (op_begin) after the completion this
         * cancel came for: the index is then checked against the heap. */
        unsigned i = __atomic_load_n(&op->priv_len, __ATOMIC_RELAXED);
        if (i < e->nheap && e->heap[i] == op) {
            heap_remove(e, i);
            park_cancelled(op, fin);
        }
        return;
    }
    if (h->type == H_FILE) {
        if (fq_unlink_locked(e, op)) /* a running one is out of the queue */
            park_cancelled(op, fin);
        return;
    }
    struct efd *f = h->bdata;
    unsigned d = side_of(op);
    if (!f || (f->side[d].busy && f->side[d].head == op))
        return; /* not armed yet, or running: the cancel bit decides */
    if (wl_unlink(&f->side[d], op)) {
        park_cancelled(op, fin);
        release_locked(e, f, h);
    }
}

static tacio_status_t e_cancel(struct tacio_port *p, tacio_op_t *op, struct tacio_handle *h)
{
    struct ep *e = E(p);
    struct oplist fin = {0};
    pthread_mutex_lock(&e->lock);
    uint32_t w = atomic_load_explicit(op_word(op), memory_order_acquire);
    if ((w & OPW_STATE_MASK) != OP_INFLIGHT || op_handle(op) != h) {
        pthread_mutex_unlock(&e->lock);
        return TACIO_NOT_FOUND;
    }
    mark_cancel(op, w);
    if (!e->closing)
        take_armed_locked(e, op, h, &fin);
    e->active++;
    settle_unlock(p, e, &fin);
    return TACIO_SUCCESS;
}

static tacio_status_t e_cancel_handle(struct tacio_port *p, struct tacio_handle *h)
{
    struct ep *e = E(p);
    struct oplist fin = {0};
    pthread_mutex_lock(&e->lock);
    if (e->closing) {
        pthread_mutex_unlock(&e->lock);
        return TACIO_SUCCESS;
    }
    struct efd *f = h->bdata;
    if (f) {
        cancel_side_locked(f, DIR_RX, h, &fin);
        cancel_side_locked(f, DIR_TX, h, &fin);
        /* The fd is open here: the core's cancel and close hold a use of
         * it across this call. */
        release_locked(e, f, h);
    }
    if (h->type == H_FILE)
        cancel_files_locked(e, h, &fin);
    e->active++;
    settle_unlock(p, e, &fin);
    return TACIO_SUCCESS;
}

static int sleep_in_epoll(struct ep *e, uint64_t until, uint64_t now)
{
    uint64_t left = until > now ? until - now : 0;
    int n;
    if (!e->no_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        n = epoll_pwait2(e->epfd, e->evs, NEVENTS, until == UINT64_MAX ? NULL : &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n < 0 ? 0 : n;
        e->no_pwait2 = true;
    }
    int ms = -1;
    if (until != UINT64_MAX) {
        uint64_t m = (left + 999999u) / 1000000u; /* round up: never wake early */
        ms = m > INT_MAX ? INT_MAX : (int)m;
    }
    n = epoll_wait(e->epfd, e->evs, NEVENTS, ms);
    return n < 0 ? 0 : n;
}

static tacio_status_t e_wait(struct tacio_port *p, int timeout_ms, struct oplist *out)
{
    struct ep *e = E(p);
    struct oplist fin = {0}, succ = {0};
    unsigned before = out->n;
    uint64_t now = tacio__now_ns();
    uint64_t limit = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000u;

    pthread_mutex_lock(&e->lock);
    expire_locked(e, now, &fin);
    uint64_t until = limit;
    if (fin.head || e->wake_req || e->epfd < 0)
        until = now;
    else if (e->nheap && deadline_of(e->heap[0]) < until)
        until = deadline_of(e->heap[0]);
    e->wake_req = false;
    e->sleeping = until > now;
    e->sleep_until = until;
    pthread_mutex_unlock(&e->lock);

    int n = e->epfd < 0 ? 0 : sleep_in_epoll(e, until, now);

    pthread_mutex_lock(&e->lock);
    e->sleeping = false;
    for (int i = 0; i < n; i++) {
        void *tag = e->evs[i].data.ptr;
        uint32_t ev = e->evs[i].events;
        if (tag == &e->wake_tag) {
            uint64_t v;
            if (read(e->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                continue;
            e->evfd_armed = false;
            continue;
        }
        on_event_locked(e, tag, ev, &fin);
    }
    now = tacio__now_ns();
    expire_locked(e, now, &fin);
    pthread_mutex_unlock(&e->lock);

    finish_all(p, &fin, out, &succ);
    tacio__run_successors(&succ);
    if (out->n == before && timeout_ms >= 0 && now >= limit)
        return TACIO_TIMEOUT;
    return TACIO_SUCCESS;
}

static void e_wake(struct tacio_port *p)
{
    struct ep *e = E(p);
    pthread_mutex_lock(&e->lock);
    kick_locked(e);
    pthread_mutex_unlock(&e->lock);
}

static void e_flush(struct tacio_port *p)
{
    (void)p; /* every submission is armed at once */
}

static void e_drain(struct tacio_port *p, struct oplist *out)
{
    struct ep *e = E(p);
    struct oplist fin = {0}, succ = {0};
    pthread_mutex_lock(&e->lock);
    e->closing = true;
    for (;;) {
        for (size_t i = 0; i < e->nfds; i++) {
            struct efd *f = e->fds[i];
            if (!f)
                continue;
            cancel_side_locked(f, DIR_RX, NULL, &fin);
            cancel_side_locked(f, DIR_TX, NULL, &fin);
        }
        while (e->nheap) {
            tacio_op_t *op = e->heap[0];
            heap_remove(e, 0);
            park_cancelled(op, &fin);
        }
        cancel_files_locked(e, NULL, &fin);
        if (!e->active)
            break;
        /* Running syscalls and file work end on their own; their threads
         * queue the results before they leave. */
        pthread_cond_wait(&e->quiet, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    finish_all(p, &fin, out, &succ);
    cancel_successors(p, &succ, out);
}

static void e_fini(struct tacio_port *p)
{
    struct ep *e = E(p);
    pthread_mutex_lock(&e->lock);
    e->closing = true;
    e->stop = true;
    pthread_cond_broadcast(&e->work);
    unsigned n = e->nworkers;
    pthread_t w[NWORKERS];
    memcpy(w, e->workers, sizeof w);
    e->nworkers = 0;
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < n; i++) {
        if (pthread_equal(w[i], pthread_self()))
            pthread_detach(w[i]); /* port closed from a discard callback on a worker */
        else
            pthread_join(w[i], NULL);
    }
    pthread_mutex_lock(&e->lock);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->evfd >= 0)
        close(e->evfd);
    e->epfd = e->evfd = -1;
    for (size_t i = 0; i < e->nfds; i++)
        free(e->fds[i]);
    free(e->fds);
    e->fds = NULL;
    e->nfds = 0;
    free(e->heap);
    e->heap = NULL;
    e->nheap = e->heapcap = 0;
    pthread_mutex_unlock(&e->lock);
}

static tacio_status_t init_failed(struct ep *e, const char *what, char *why, size_t whylen)
{
    int err = errno;
    snprintf(why, whylen, "epoll: %s: %s", what, strerror(err));
    if (e->epfd >= 0)
        close(e->epfd);
    free(e);
    if (err == ENOMEM)
        return TACIO_NO_MEMORY;
    if (err == EMFILE || err == ENFILE)
        return TACIO_TOO_MANY_OPENED_FILES;
    return TACIO_NOT_SUPPORTED;
}

static tacio_status_t e_init(struct tacio_port *p, unsigned depth, char *why, size_t whylen)
{
    (void)depth;
    struct ep *e = calloc(1, sizeof *e);
    if (!e)
        return TACIO_NO_MEMORY;
    e->evfd = -1;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0)
        return init_failed(e, "epoll_create1", why, whylen);
    e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->evfd < 0)
        return init_failed(e, "eventfd", why, whylen);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->wake_tag};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev) < 0) {
        int err = errno;
        close(e->evfd);
        errno = err;
        return init_failed(e, "epoll_ctl(eventfd)", why, whylen);
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->quiet, NULL);
    e->port = p;
    p->bctx = e;
    snprintf(why, whylen, "epoll: available (files and fsync on %d worker threads)", NWORKERS);
    return TACIO_SUCCESS;
}

static void e_destroy(struct tacio_port *p)
{
    struct ep *e = E(p);
    if (!e)
        return;
    pthread_cond_destroy(&e->quiet);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->lock);
    free(e);
    p->bctx = NULL;
}

const struct tacio_backend tacio__backend_epoll = {
    .name = "epoll",
    .caps = 0,
    .init = e_init,
    .fini = e_fini,
    .destroy = e_destroy,
    .submit = e_submit,
    .cancel = e_cancel,
    .cancel_handle = e_cancel_handle,
    .wait = e_wait,
    .wake = e_wake,
    .flush = e_flush,
    .drain = e_drain,
};
