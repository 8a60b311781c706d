/* sysio.c - the synchronous, non-blocking attempt of an operation and the
 * mapping of kernel results to statuses. Both are backend-independent: the
 * core uses the first to finish operations inside their start call, and
 * every backend maps its kernel results through the second, so a result
 * means the same thing whichever path produced it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"

static bool is_rx(unsigned kind)
{
    return kind == K_READ || kind == K_RECV || kind == K_RECVFROM;
}

void tacio__map_result(tacio_op_t *op, long res, tacio_status_t *st, uint64_t *bytes)
{
    struct tacio_handle *h = op_handle(op);
    unsigned kind = op_kind(op);
    uint64_t done = tacio__stream_progress(op);

    *bytes = 0;
    if (kind == K_TIMER && res == -ETIME)
        res = 0; /* a timeout operation reports its expiry as -ETIME */
    if (res < 0) {
        *st = tacio_status_from_errno((int)-res);
        /* A stream send that had written part of its buffer reports it. */
        *bytes = done;
        return;
    }
    switch (kind) {
    case K_ACCEPT:
        *st = TACIO_SUCCESS;
        *bytes = (uint64_t)res;
        return;
    case K_TIMER:
    case K_FSYNC:
    case K_CONNECT:
        *st = TACIO_SUCCESS;
        return;
    case K_POLL:
        /* The revents mask, as poll(2) gives it: io_uring also reports
         * POLLRDHUP, unasked, which the epoll backend's poll(2) never does. */
        *st = TACIO_SUCCESS;
        *bytes = (uint64_t)res & (op->priv_arg | POLLERR | POLLHUP | POLLNVAL);
        return;
    default:
        break;
    }
    if (is_rx(kind)) {
        bool records = h->type == H_DGRAM || h->seqpacket;
        if (records) {
            /* MSG_TRUNC makes the kernel return the datagram's real length. */
            *bytes = (uint64_t)res;
            *st = (uint64_t)res > op->priv_len ? TACIO_BUFFER_OVERFLOW : TACIO_SUCCESS;
            if (res == 0 && h->seqpacket)
                *st = TACIO_END_OF_FILE; /* seqpacket peer closed */
            return;
        }
        *bytes = (uint64_t)res;
        *st = res == 0 ? TACIO_END_OF_FILE : TACIO_SUCCESS;
        return;
    }
    *bytes = done + (uint64_t)res;
    *st = TACIO_SUCCESS;
}

tacio_status_t tacio__connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return tacio_status_from_errno(err);
}

static long try_recvfrom(tacio_op_t *op, int fd, int flags)
{
    tacio_addr_t *from = (tacio_addr_t *)(uintptr_t)op->priv_arg;
    if (!from)
        return recv(fd, op->priv_buf, op->priv_len, flags);
    from->len = sizeof from->u;
    long r = recvfrom(fd, op->priv_buf, op->priv_len, flags, &from->u.sa, &from->len);
    return r;
}

bool tacio__sys_try(tacio_op_t *op, tacio_status_t *st, uint64_t *bytes)
{
    struct tacio_handle *h = op_handle(op);
    int fd = h->fd;
    bool records = h->type == H_DGRAM || h->seqpacket;
    int rflags = MSG_DONTWAIT | (records ? MSG_TRUNC : 0);
    uint64_t done = tacio__stream_progress(op);
    char *buf = op->priv_buf;
    long r;

    switch (op_kind(op)) {
    case K_READ:
        r = read(fd, buf, op->priv_len);
        break;
    case K_WRITE:
        r = write(fd, buf + done, op->priv_len - done);
        break;
    case K_RECV:
        r = recv(fd, buf, op->priv_len, rflags);
        break;
    case K_RECVFROM:
        r = try_recvfrom(op, fd, rflags);
        break;
    case K_SEND:
        r = send(fd, buf + done, op->priv_len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
    case K_SENDTO: {
        tacio_addr_t *to = (tacio_addr_t *)(uintptr_t)op->priv_arg;
        r = sendto(fd, buf, op->priv_len, MSG_DONTWAIT | MSG_NOSIGNAL, &to->u.sa, to->len);
        break;
    }
    case K_ACCEPT: {
        tacio_addr_t *peer = (tacio_addr_t *)(uintptr_t)op->priv_arg;
        if (peer)
            peer->len = sizeof peer->u;
        r = accept4(fd, peer ? &peer->u.sa : NULL, peer ? &peer->len : NULL,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    }
    case K_POLL: {
        struct pollfd pf = {.fd = fd, .events = (short)op->priv_arg};
        r = poll(&pf, 1, 0);
        if (r == 0)
            return false;
        if (r > 0)
            r = (unsigned short)pf.revents;
        break;
    }
    case K_CONNECT: {
        tacio_addr_t *to = (tacio_addr_t *)(uintptr_t)op->priv_arg;
        r = connect(fd, &to->u.sa, to->len);
        if (r < 0 && errno == EINPROGRESS)
            return false; /* the backend waits for writability */
        break;
    }
    default:
        return false;
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return false;
        r = -errno;
    }
    /* A stream write that wrote part of its buffer goes on asynchronously for
     * the rest, so the caller sees one result for the whole buffer. */
    if (r >= 0 && (op_kind(op) == K_SEND || op_kind(op) == K_WRITE) &&
        (h->type == H_STREAM || h->type == H_PIPE) && done + (uint64_t)r < op->priv_len) {
        tacio__set_stream_progress(op, done + (uint64_t)r);
        return false;
    }
    tacio__map_result(op, r, st, bytes);
    return true;
}
