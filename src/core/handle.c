/* handle.c - wrapping fds, and closing them only when no operation in the
 * kernel can still resolve the number. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/internal.h"

/* Closed handles are kept on a free list, never returned to malloc, so that
 * a call on a closed handle finds HANDLE_DEAD and is answered with
 * TACIO_INVALID_HANDLE instead of reading freed memory. */
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tacio_handle *free_handles;

static struct tacio_handle *handle_alloc(void)
{
    pthread_mutex_lock(&free_lock);
    struct tacio_handle *h = free_handles;
    if (h)
        free_handles = h->free_next;
    pthread_mutex_unlock(&free_lock);
    if (!h) {
        h = malloc(sizeof *h);
        if (h)
            atomic_init(&h->refs, 0);
    }
    if (h) {
        /* Not refs: a tacio_cancel holding a pointer to this handle's past
         * life reads it (tacio__handle_try_ref), and must see the 0 the
         * release left, not a store racing it. tacio_handle_open sets it
         * last, with release, once the rest is in place. */
        memset(h, 0, offsetof(struct tacio_handle, refs));
        memset((char *)h + offsetof(struct tacio_handle, refs) + sizeof h->refs, 0,
               sizeof *h - offsetof(struct tacio_handle, refs) - sizeof h->refs);
    }
    return h;
}

static void handle_free(struct tacio_handle *h)
{
    struct tacio_port *p = h->port;
    void (*on_free)(void *) = h->on_free;
    void *ctx = h->on_free_ctx;
    h->magic = HANDLE_DEAD;
    pthread_mutex_lock(&free_lock);
    h->free_next = free_handles;
    free_handles = h;
    pthread_mutex_unlock(&free_lock);
    if (on_free)
        on_free(ctx);
    tacio__port_unref(p);
}

void tacio__handle_hold_deliveries(struct tacio_handle *h, void (*on_free)(void *), void *ctx)
{
    h->on_free = on_free;
    h->on_free_ctx = ctx;
    h->flags |= H_FLAG_HOLD;
}

bool tacio__handle_valid(const struct tacio_handle *h)
{
    return h && h->magic == HANDLE_MAGIC && h->type != H_TIMER;
}

static tacio_status_t classify_socket(int fd, int type, struct tacio_handle *h)
{
    if (type == SOCK_STREAM || type == SOCK_SEQPACKET) {
        h->type = H_STREAM;
        h->seqpacket = type == SOCK_SEQPACKET;
        return TACIO_SUCCESS;
    }
    if (type == SOCK_DGRAM) {
        h->type = H_DGRAM;
        return TACIO_SUCCESS;
    }
    tacio__set_error("fd %d is a socket of type %d; tacio supports stream, datagram "
                     "and seqpacket sockets", fd, type);
    return TACIO_NOT_SUPPORTED;
}

static tacio_status_t classify(int fd, struct tacio_handle *h)
{
    /* Sockets first, with one call: a server opens one handle per accepted
     * connection, and fstat(2) would be a second syscall in every accept. */
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        return classify_socket(fd, type, h);
    if (errno == EBADF) {
        tacio__set_error("fd %d: %s", fd, strerror(errno));
        return TACIO_INVALID_HANDLE;
    }
    if (errno != ENOTSOCK)
        return tacio_status_from_errno(errno);
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        tacio__set_error("fstat(%d): %s", fd, strerror(errno));
        return TACIO_INVALID_HANDLE;
    }
    if (S_ISREG(sb.st_mode)) {
        h->type = H_FILE;
        return TACIO_SUCCESS;
    }
    if (S_ISFIFO(sb.st_mode)) {
        h->type = H_PIPE;
        return TACIO_SUCCESS;
    }
    const char *what = S_ISDIR(sb.st_mode) ? "a directory"
                       : S_ISCHR(sb.st_mode) ? "a character device"
                       : S_ISBLK(sb.st_mode) ? "a block device"
                                             : "of an unknown file type";
    tacio__set_error("fd %d is %s; tacio handles regular files, pipes and sockets", fd, what);
    return TACIO_NOT_SUPPORTED;
}

tacio_status_t tacio_handle_open(tacio_port_t *port, int fd, uint64_t key, unsigned flags,
                                 tacio_handle_t **out)
{
    tacio__set_error("%s", "");
    if (!out || fd < 0 ||
        (flags & ~(TACIO_HANDLE_QUEUED_ALWAYS | TACIO_HANDLE_NO_CLOSE_FD | TACIO_HANDLE_THREAD_BOUND)))
        return TACIO_INVALID_PARAMETER;
    /* One load: a close between two could make an open port look invalid. */
    uint32_t magic = port ? atomic_load_explicit(&port->magic, memory_order_acquire) : 0;
    if (magic == PORT_DEAD)
        return TACIO_PORT_DISCONNECTED;
    if (magic != PORT_MAGIC)
        return TACIO_INVALID_HANDLE;
    if (atomic_load_explicit(&port->closed, memory_order_acquire))
        return TACIO_PORT_DISCONNECTED;
    struct tacio_handle *h = handle_alloc();
    if (!h)
        return TACIO_NO_MEMORY;
    tacio_status_t st = classify(fd, h);
    if (st == TACIO_SUCCESS && h->type != H_FILE) {
        /* FIONBIO sets O_NONBLOCK in one call, where fcntl needs a
         * read-modify-write of two. */
        int on = 1;
        if (ioctl(fd, FIONBIO, &on) < 0)
            st = tacio_status_from_errno(errno);
    }
    if (st != TACIO_SUCCESS) {
        /* Never opened: no port reference to drop, no on_free to run. */
        pthread_mutex_lock(&free_lock);
        h->magic = HANDLE_DEAD;
        h->free_next = free_handles;
        free_handles = h;
        pthread_mutex_unlock(&free_lock);
        return st;
    }
    h->fd = fd;
    h->key = key;
    h->flags = (uint16_t)flags;
    h->port = port;
    atomic_fetch_add_explicit(&port->refs, 1, memory_order_relaxed);
    atomic_init(&h->hints, HINT_RX_TRY);
    h->magic = HANDLE_MAGIC;
    atomic_store_explicit(&h->refs, 1, memory_order_release);
    *out = h;
    return TACIO_SUCCESS;
}

int tacio_handle_fd(tacio_handle_t *h)
{
    if (!tacio__handle_valid(h))
        return -1;
    if (atomic_load_explicit(&h->use, memory_order_relaxed) & USE_CLOSING)
        return -1;
    return h->fd;
}

static void close_fd_if_last(struct tacio_handle *h, uint32_t now)
{
    if (now != USE_CLOSING)
        return;
    if (!atomic_compare_exchange_strong_explicit(&h->use, &now, USE_CLOSING | USE_FD_CLOSED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    if (!(h->flags & TACIO_HANDLE_NO_CLOSE_FD) && h->fd >= 0)
        close(h->fd);
}

bool tacio__handle_try_ref(struct tacio_handle *h)
{
    /* Only from a live count: a start racing the close that dropped the last
     * reference must not revive the handle, or its release would free it a
     * second time (the free list would then hand one handle to two opens).
     * acquire: pairs with tacio_handle_open's release of the first
     * reference, so a caller that got one reads the open's fields. */
    uint32_t r = atomic_load_explicit(&h->refs, memory_order_acquire);
    do {
        if (r == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&h->refs, &r, r + 1, memory_order_acquire,
                                                    memory_order_acquire));
    return true;
}

bool tacio__handle_use_begin(struct tacio_handle *h)
{
    if (!tacio__handle_try_ref(h))
        return false;
    uint32_t prev = atomic_fetch_add_explicit(&h->use, USE_ONE, memory_order_acquire);
    if (!(prev & USE_CLOSING))
        return true;
    tacio__handle_use_end(h);
    tacio__handle_unref(h);
    return false;
}

void tacio__handle_use_end(struct tacio_handle *h)
{
    /* acq_rel: the fd's last user's syscalls happen before its close. */
    uint32_t now = atomic_fetch_sub_explicit(&h->use, USE_ONE, memory_order_acq_rel) - USE_ONE;
    close_fd_if_last(h, now);
}

void tacio__handle_unref(struct tacio_handle *h)
{
    if (h->type == H_TIMER) {
        atomic_fetch_sub_explicit(&h->refs, 1, memory_order_relaxed);
        return;
    }
    /* acq_rel: every delivery's reads of the handle happen before its reuse. */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
        handle_free(h);
}

/* Operations waiting for their direction's turn never reached the kernel:
 * cancelling them is ending them here. */
static void end_queued(struct tacio_handle *h)
{
    struct oplist q = {0};
    tacio__dir_unqueue_all(h, &q);
    struct oplist done = {0};
    while (q.head) {
        tacio_op_t *op = q.head;
        q.head = op->priv_next;
        tacio__op_finish_unqueued(op, TACIO_CANCELLED);
        oplist_push(&done, op);
    }
    if (done.n)
        tacio__port_complete_list(h->port, &done);
}

/* Everything of h that started before the cancel epoch moved: its queued
 * operations end here and the backend cancels the rest, unless the port is
 * closing: then its drain ends them. */
static void cancel_started(struct tacio_handle *h)
{
    struct tacio_port *p = h->port;
    port_enter(p);
    end_queued(h);
    if (!atomic_load_explicit(&p->closed, memory_order_acquire))
        p->be->cancel_handle(p, h);
    port_leave(p);
}

tacio_status_t tacio_handle_close(tacio_handle_t *h)
{
    if (!tacio__handle_valid(h)) {
        tacio__set_error("handle %p is not an open tacio handle (magic %#x)", (void *)h,
                         h ? h->magic : 0u);
        return TACIO_INVALID_HANDLE;
    }
    /* The closer is a user of the fd itself until the backend has let go of
     * it (epoll_ctl on it below): otherwise the last op's end could close the
     * fd, and the number be reused, under that call. */
    atomic_fetch_add_explicit(&h->use, USE_ONE, memory_order_acquire);
    uint32_t prev = atomic_fetch_or_explicit(&h->use, USE_CLOSING, memory_order_acq_rel);
    if (prev & USE_CLOSING) {
        tacio__handle_use_end(h);
        tacio__set_error("handle %p (fd %d) is already being closed", (void *)h, h->fd);
        return TACIO_INVALID_HANDLE;
    }
    atomic_fetch_add_explicit(&h->cancel_epoch, 1, memory_order_release);

    /* Even with nothing in flight: a backend may hold the fd (epoll set). */
    cancel_started(h);
    tacio__handle_use_end(h); /* closes the fd if no op still names it */
    tacio__handle_unref(h);
    return TACIO_SUCCESS;
}

tacio_status_t tacio_cancel_handle(tacio_handle_t *h)
{
    if (!tacio__handle_valid(h))
        return TACIO_INVALID_HANDLE;
    /* Held as a use for the same reason as in close: a racing close must not
     * close the fd under the backend's cancel. */
    uint32_t prev = atomic_fetch_add_explicit(&h->use, USE_ONE, memory_order_acquire);
    tacio_status_t st = TACIO_SUCCESS;
    if (prev & USE_CLOSING) {
        st = TACIO_INVALID_HANDLE;
    } else if (prev < USE_ONE) {
        st = TACIO_NOT_FOUND;
    } else {
        atomic_fetch_add_explicit(&h->cancel_epoch, 1, memory_order_release);
        cancel_started(h);
    }
    tacio__handle_use_end(h);
    return st;
}
