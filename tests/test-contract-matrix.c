/* tests/test-contract-matrix.c - the completion contract, cell by cell.
 *
 * Every operation kind x every outcome x both handle modes, with real kernel
 * objects. For each cell: the value the start returned, the number of
 * completions (dequeued until 100 ms of quiet: exactly 0 or exactly 1), the
 * completion's status, bytes, record pointer, key and kind, and the record's
 * own status/bytes afterwards.
 *
 * The rule under test (io.h): a start returns TACIO_PENDING and then exactly
 * one completion follows, or any other status and then none ever does.
 * Default mode: synchronous results are returned. TACIO_HANDLE_QUEUED_ALWAYS:
 * every accepted operation returns PENDING and completes once through the
 * port, synchronous results (successes, warnings and kernel errors alike)
 * included; rejections (a bad argument: nothing started) still return their
 * error with zero completions.
 *
 * The matrix is data: one kind_def_t per operation kind holds a cell_t per
 * outcome (or the reason the cell cannot occur). The four "interrupting"
 * outcomes (cancel, handle close, port close, issuing thread exit) are
 * derived from the kind's natural cell, so they are not repeated per kind.
 * A cell that cannot occur prints as "skip ... (not applicable: why)".
 *
 * Each cell is its own case (a forked child): "tcp_recv__pending_error__queued".
 */
#include "tacio-test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <arpa/inet.h>

/* ---- the axes --------------------------------------------------------------- */

#define KINDS(X)                                                               \
    X(file_read) X(file_write) X(pipe_read) X(pipe_write) X(tcp_recv)          \
    X(tcp_send) X(tcp_poll) X(udp_recvfrom) X(udp_sendto) X(accept) X(connect) \
    X(fsync) X(timer)

#define OUTCOMES(X, k)                                                         \
    X(k, sync_success) X(k, sync_warning) X(k, sync_error) X(k, rejected)      \
    X(k, pending_success) X(k, pending_error) X(k, pending_cancelled)          \
    X(k, handle_closed) X(k, port_closed) X(k, thread_exit)

#define MODES(X, k, o) X(k, o, default) X(k, o, queued)

#define KIND_ENUM(k) KIND_##k,
#define OUT_ENUM(k, o) OUT_##o,
enum { KINDS(KIND_ENUM) KIND_COUNT };
enum { OUTCOMES(OUT_ENUM, _) OUT_COUNT };
enum { MODE_default, MODE_queued };

/* ---- a cell's expectations --------------------------------------------------- */

typedef enum {
    RET_SYNC = 1,   /* default mode: a final status, no completion */
    RET_PENDING,    /* PENDING, one completion */
    RET_EITHER,     /* the library may do either (io.h does not say); the rule must hold */
    RET_REJECT,     /* rejected: that status in both modes, no completion */
} ret_t;

#define BYTES_ANY (-1)
#define BYTES_FD  (-2)  /* accept: bytes is the new fd */

/* A status written as "the mapping of this errno" (resolved at run time with
 * tacio_status_from_errno, so the matrix does not restate status.c). The
 * encoding is a success-class code in a facility tacio never uses. */
#define ST_ERRNO(e) ((tacio_status_t)(0x0E000000u | (unsigned)(e)))

typedef struct fx fx_t;

typedef struct cell {
    const char *na;                   /* non-NULL: cannot occur, and why */
    void (*setup)(fx_t *);            /* replaces the kind's setup */
    void (*arrange)(fx_t *);          /* before the start */
    void (*trigger)(fx_t *);          /* after a PENDING start: what ends it */
    ret_t ret;
    tacio_status_t st[3];             /* allowed final statuses */
    int nst;
    long long bytes;                  /* expected bytes for those, or BYTES_* */
    void (*verify)(fx_t *, const tacio_op_t *); /* data checks on that result */
} cell_t;

#define WANT(...)                                                              \
    .st = { __VA_ARGS__ },                                                     \
    .nst = (int)(sizeof((tacio_status_t[]){ __VA_ARGS__ }) / sizeof(tacio_status_t))

typedef struct kind_def {
    const char *name;
    int has_handle;
    int holdable;                      /* the pending state lasts until a trigger */
    void (*setup)(fx_t *);
    tacio_status_t (*start)(fx_t *, tacio_op_t *);
    void (*hold)(fx_t *);              /* extra arrange for the interrupting cells */
    void (*after_cancel)(fx_t *);      /* a CANCELLED op consumed/produced nothing */
    cell_t cell[OUT_COUNT];
} kind_def_t;

/* ---- the fixture ----------------------------------------------------------- */

struct fx {
    int kind, outcome, mode;
    unsigned hflags;
    uint64_t key;
    tacio_port_t *port;
    tacio_handle_t *h;
    int h_open, port_open;
    int hfd;                 /* the handle's fd (owned by the handle) */
    int vfd;                 /* a dup of a file handle's fd, to verify through */
    int peer;                /* the other end, raw */
    int aux, aux2;           /* listener, client, filler ... */
    int accepted;            /* an fd delivered by accept, to close */
    tacio_addr_t addr;
    unsigned char buf[512];
    unsigned char *bufp;
    size_t len;
    uint64_t off;
    uint64_t ns;
    int null_op;
    unsigned char *big;
    int rlimit_lowered;
    struct rlimit saved_nofile;
    pthread_t drainer;
    int drainer_on;
    _Atomic int drain_stop;
};

static const unsigned char HELLO[] = "hello";

/* ---- helpers for arranging situations ------------------------------------- */

static void open_handle(fx_t *fx, int fd)
{
    fx->hfd = fd;
    fx->h = tt_handle(fx->port, fd, fx->key, fx->hflags);
    fx->h_open = 1;
}

static void addr_set(tacio_addr_t *a, const struct sockaddr_in *in)
{
    memset(a, 0, sizeof *a);
    a->len = sizeof *in;
    a->u.in = *in;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ASSERT_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    return ntohs(a.sin_port);
}

/* Write until the kernel says EAGAIN, and again after a pause until it stays
 * so: an ACK or a reader in flight may still open room just after. */
static void fill(int fd, int is_socket)
{
    static unsigned char junk[65536];
    int calm = 0;
    while (calm < 3) {
        ssize_t w = is_socket ? send(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL)
                              : write(fd, junk, sizeof junk);
        if (w > 0) {
            calm = 0;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            calm++;
            tt_sleep_ms(20);
            continue;
        }
        TT_FAIL("filling fd %d: %s", fd, w < 0 ? strerror(errno) : "wrote 0");
    }
}

static void *drain_main(void *arg)
{
    fx_t *fx = arg;
    static unsigned char sink[65536];
    while (!atomic_load(&fx->drain_stop)) {
        struct pollfd p = { fx->peer, POLLIN, 0 };
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(fx->peer, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    return NULL;
}

static void start_drainer(fx_t *fx)
{
    tt_set_nonblock(fx->peer);
    atomic_store(&fx->drain_stop, 0);
    ASSERT_EQ_INT(pthread_create(&fx->drainer, NULL, drain_main, fx), 0);
    fx->drainer_on = 1;
}

static void stop_drainer(fx_t *fx)
{
    if (!fx->drainer_on)
        return;
    atomic_store(&fx->drain_stop, 1);
    pthread_join(fx->drainer, NULL);
    fx->drainer_on = 0;
}

static void restore_nofile(fx_t *fx)
{
    if (!fx->rlimit_lowered)
        return;
    ASSERT_EQ_INT(setrlimit(RLIMIT_NOFILE, &fx->saved_nofile), 0);
    fx->rlimit_lowered = 0;
}

static void peer_send_hello(fx_t *fx)
{
    ASSERT_EQ_INT(write(fx->peer, HELLO, 5), 5);
}

static void peer_reset(fx_t *fx)
{
    tt_close_reset(fx->peer);
    fx->peer = -1;
}

static void peer_close(fx_t *fx)
{
    tt_close(fx->peer);
    fx->peer = -1;
}

static void wait_readable(fx_t *fx)
{
    ASSERT_TRUE(tt_poll(fx->hfd, POLLIN, 2000) & POLLIN);
}

static void wait_error(fx_t *fx)
{
    /* the RST or ICMP error has arrived on our socket */
    ASSERT_TRUE(tt_poll(fx->hfd, POLLIN, 2000) & (POLLERR | POLLHUP));
}

/* A CANCELLED receive consumed nothing: what the peer sends after the
 * cancel is still there to read, in full. */
static void after_cancel_rx(fx_t *fx)
{
    peer_send_hello(fx);
    ASSERT_TRUE(tt_poll(fx->hfd, POLLIN, 2000) & POLLIN);
    unsigned char b[16];
    ASSERT_EQ_INT(recv(fx->hfd, b, sizeof b, MSG_DONTWAIT), 5);
    ASSERT_TRUE(memcmp(b, HELLO, 5) == 0);
}

static void after_cancel_pipe_rx(fx_t *fx)
{
    peer_send_hello(fx);
    ASSERT_TRUE(tt_poll(fx->hfd, POLLIN, 2000) & POLLIN);
    unsigned char b[16];
    ASSERT_EQ_INT(read(fx->hfd, b, sizeof b), 5);
    ASSERT_TRUE(memcmp(b, HELLO, 5) == 0);
}

/* ---- files ---------------------------------------------------------------- */

static void setup_file(fx_t *fx)
{
    int fd = tt_tmpfile(4096);
    fx->vfd = dup(fd);
    ASSERT_TRUE(fx->vfd >= 0);
    open_handle(fx, fd);
    fx->len = 100;
}

static void setup_file_read(fx_t *fx)
{
    setup_file(fx);
    fx->off = 1000;
}

static void setup_file_write(fx_t *fx)
{
    setup_file(fx);
    fx->off = 0;
    for (size_t i = 0; i < fx->len; i++)
        fx->buf[i] = (unsigned char)('A' + i % 26);
}

static void setup_file_write_readonly(fx_t *fx)
{
    int rw = tt_tmpfile(4096);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", rw);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(ro >= 0);
    tt_close(rw);
    fx->vfd = dup(ro);
    open_handle(fx, ro);
    fx->len = 100;
    fx->off = 0;
    memset(fx->buf, 'B', fx->len);
}

static tacio_status_t start_read(fx_t *fx, tacio_op_t *op)
{
    return tacio_read(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len, fx->off);
}

static tacio_status_t start_write(fx_t *fx, tacio_op_t *op)
{
    return tacio_write(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len, fx->off);
}

static void arrange_offset_none(fx_t *fx) { fx->off = TACIO_OFFSET_NONE; }
static void arrange_offset_zero(fx_t *fx) { fx->off = 0; }
static void arrange_at_eof(fx_t *fx) { fx->off = 4096; }
static void arrange_len_zero(fx_t *fx) { fx->len = 0; }
static void arrange_null_buf(fx_t *fx) { fx->bufp = NULL; }
static void arrange_null_op(fx_t *fx) { fx->null_op = 1; }

static void verify_file_read(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    for (size_t i = 0; i < fx->len; i++)
        ASSERT_EQ_INT(fx->buf[i], tt_pattern_byte(fx->off + i));
}

static void verify_file_write(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    unsigned char b[512];
    ASSERT_EQ_INT(pread(fx->vfd, b, fx->len, (off_t)fx->off), (long long)fx->len);
    ASSERT_TRUE(memcmp(b, fx->buf, fx->len) == 0);
}

static tacio_status_t start_fsync(fx_t *fx, tacio_op_t *op)
{
    return tacio_fsync(fx->h, fx->null_op ? NULL : op, 0);
}

static void setup_fsync(fx_t *fx)
{
    setup_file(fx);
    ASSERT_EQ_INT(pwrite(fx->vfd, "dirty", 5, 17), 5);
}

/* ---- pipes ---------------------------------------------------------------- */

static void setup_pipe_read(fx_t *fx)
{
    int p[2];
    tt_pipe(p);
    fx->peer = p[1];
    open_handle(fx, p[0]);
    fx->len = 64;
    fx->off = TACIO_OFFSET_NONE;
}

static void setup_pipe_write(fx_t *fx)
{
    /* io.h promises no SIGPIPE for socket sends only; on a pipe whose reader
     * is gone the kernel raises it in whichever thread performs the write. */
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    tt_pipe(p);
    /* one page: quick to fill */
    ASSERT_TRUE(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
    fx->peer = p[0];
    open_handle(fx, p[1]);
    memcpy(fx->buf, HELLO, 5);
    fx->len = 5;
    fx->off = TACIO_OFFSET_NONE;
}

static void arrange_fill_pipe(fx_t *fx) { fill(fx->hfd, 0); }

static void verify_hello_in_buf(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    ASSERT_TRUE(memcmp(fx->buf, HELLO, 5) == 0);
}

static void verify_peer_got_hello(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    if (fx->drainer_on || fx->peer < 0)
        return;   /* the drainer swallowed it, or the peer is gone */
    ASSERT_TRUE(tt_poll(fx->peer, POLLIN, 2000) & POLLIN);
    unsigned char b[16];
    ASSERT_EQ_INT(read(fx->peer, b, sizeof b), 5);
    ASSERT_TRUE(memcmp(b, HELLO, 5) == 0);
}

/* ---- TCP ------------------------------------------------------------------ */

static void setup_tcp_recv(fx_t *fx)
{
    int c, s;
    tt_tcp_pair(&c, &s);
    fx->peer = s;
    open_handle(fx, c);
    fx->len = 64;
}

/* tacio_poll: fx->len carries the events (0 is the rejected cell). */
static void setup_tcp_poll(fx_t *fx)
{
    setup_tcp_recv(fx);
    fx->len = TACIO_POLL_IN;
}

static tacio_status_t start_poll(fx_t *fx, tacio_op_t *op)
{
    return tacio_poll(fx->h, fx->null_op ? NULL : op, (unsigned)fx->len);
}

/* A poll moves no data: the hello is still there to receive. */
static void verify_hello_still_queued(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    unsigned char b[16];
    ASSERT_EQ_INT(recv(fx->hfd, b, sizeof b, MSG_DONTWAIT), 5);
    ASSERT_TRUE(memcmp(b, HELLO, 5) == 0);
}

/* A reset is readiness, not a failed poll: POLLERR or POLLHUP in revents. */
static void verify_poll_saw_reset(fx_t *fx, const tacio_op_t *op)
{
    (void)fx;
    ASSERT_TRUE((op->bytes & (POLLERR | POLLHUP)) != 0);
    ASSERT_EQ_INT(op->bytes & ~(uint64_t)(POLLIN | POLLERR | POLLHUP), 0);
}

static void setup_tcp_send(fx_t *fx)
{
    int c, s, small = 4096;
    tt_tcp_pair(&c, &s);
    ASSERT_EQ_INT(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ASSERT_EQ_INT(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    fx->peer = s;
    open_handle(fx, c);
    memcpy(fx->buf, HELLO, 5);
    fx->len = 5;
}

static tacio_status_t start_recv(fx_t *fx, tacio_op_t *op)
{
    return tacio_recv(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len);
}

static tacio_status_t start_send(fx_t *fx, tacio_op_t *op)
{
    return tacio_send(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len);
}

static void arrange_peer_hello_arrived(fx_t *fx)
{
    peer_send_hello(fx);
    wait_readable(fx);
}

static void arrange_peer_reset_arrived(fx_t *fx)
{
    peer_reset(fx);
    wait_error(fx);
}

static void arrange_fill_tcp(fx_t *fx) { fill(fx->hfd, 1); }

/* ---- UDP ------------------------------------------------------------------ */

static void setup_udp_recvfrom(fx_t *fx)
{
    int a, b;
    tt_udp_pair(&a, &b);
    fx->peer = b;
    open_handle(fx, a);
    fx->len = 64;
}

static int udp_bound(struct sockaddr_in *out)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    ASSERT_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    if (out)
        *out = a;
    return fd;
}

static void setup_udp_sendto(fx_t *fx)
{
    /* two unconnected sockets: sendto names the destination itself */
    struct sockaddr_in bin;
    int a = udp_bound(NULL), b = udp_bound(&bin);
    addr_set(&fx->addr, &bin);
    fx->peer = b;
    open_handle(fx, a);
    memcpy(fx->buf, HELLO, 5);
    fx->len = 5;
}

static tacio_status_t start_recvfrom(fx_t *fx, tacio_op_t *op)
{
    return tacio_recvfrom(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len, &fx->addr);
}

static tacio_status_t start_sendto(fx_t *fx, tacio_op_t *op)
{
    return tacio_sendto(fx->h, fx->null_op ? NULL : op, fx->bufp, fx->len, &fx->addr);
}

static void arrange_big_datagram_queued(fx_t *fx)
{
    unsigned char d[100];
    for (size_t i = 0; i < sizeof d; i++)
        d[i] = tt_pattern_byte(i);
    ASSERT_EQ_INT(send(fx->peer, d, sizeof d, 0), (long long)sizeof d);
    wait_readable(fx);
    fx->len = 10;
}

static void verify_udp_hello(fx_t *fx, const tacio_op_t *op)
{
    verify_hello_in_buf(fx, op);
    ASSERT_EQ_INT(fx->addr.len, sizeof(struct sockaddr_in));
    ASSERT_EQ_INT(fx->addr.u.in.sin_family, AF_INET);
    ASSERT_EQ_INT(ntohs(fx->addr.u.in.sin_port), local_port(fx->peer));
}

static void verify_udp_truncated(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    for (size_t i = 0; i < 10; i++)
        ASSERT_EQ_INT(fx->buf[i], tt_pattern_byte(i));
    ASSERT_EQ_INT(fx->buf[10], 0); /* nothing past len was written */
}

/* Connect the handle's socket to a port nothing listens on: a datagram sent
 * there comes back as an ICMP port-unreachable, i.e. ECONNREFUSED on it. */
static void arrange_udp_refused_target(fx_t *fx)
{
    struct sockaddr_in dead;
    tt_closed_port(SOCK_DGRAM, &dead);
    ASSERT_EQ_INT(connect(fx->hfd, (struct sockaddr *)&dead, sizeof dead), 0);
}

static void udp_send_to_dead(fx_t *fx)
{
    ASSERT_EQ_INT(send(fx->hfd, "x", 1, 0), 1);
}

static void arrange_udp_refused_arrived(fx_t *fx)
{
    arrange_udp_refused_target(fx);
    udp_send_to_dead(fx);
    wait_error(fx);
}

static void arrange_oversized_datagram(fx_t *fx)
{
    fx->big = calloc(1, 70000);
    ASSERT_TRUE(fx->big != NULL);
    fx->bufp = fx->big;
    fx->len = 70000;  /* > 65507: EMSGSIZE from the kernel, not a tacio check */
}

/* ---- accept --------------------------------------------------------------- */

static void setup_accept(fx_t *fx)
{
    open_handle(fx, tt_tcp_listener(16, NULL));
}

static tacio_status_t start_accept(fx_t *fx, tacio_op_t *op)
{
    return tacio_accept(fx->h, fx->null_op ? NULL : op, &fx->addr);
}

static void connect_client(fx_t *fx)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ASSERT_EQ_INT(getsockname(fx->hfd, (struct sockaddr *)&a, &l), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(c >= 0);
    ASSERT_EQ_INT(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    if (fx->aux < 0)
        fx->aux = c;
    else {
        tt_close(fx->aux2);
        fx->aux2 = c;
    }
}

/* No fd can be allocated (RLIMIT_NOFILE at the lowest free number): the
 * queued connection cannot be accepted, EMFILE. Restored after the result. */
static void arrange_no_fds(fx_t *fx)
{
    connect_client(fx);
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(probe >= 0);
    tt_close(probe);
    ASSERT_EQ_INT(getrlimit(RLIMIT_NOFILE, &fx->saved_nofile), 0);
    struct rlimit lim = fx->saved_nofile;
    lim.rlim_cur = (rlim_t)probe;
    ASSERT_EQ_INT(setrlimit(RLIMIT_NOFILE, &lim), 0);
    fx->rlimit_lowered = 1;
}

/* shutdown() on a listener wakes its pending accepts: EINVAL (Linux). */
static void shutdown_listener(fx_t *fx)
{
    ASSERT_EQ_INT(shutdown(fx->hfd, SHUT_RDWR), 0);
}

static void verify_accepted(fx_t *fx, const tacio_op_t *op)
{
    int fd = (int)op->bytes;
    ASSERT_TRUE(fd >= 0);
    fx->accepted = fd;
    int fdfl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
    ASSERT_TRUE(fdfl >= 0 && (fdfl & FD_CLOEXEC));
    ASSERT_TRUE(fl >= 0 && (fl & O_NONBLOCK));
    ASSERT_EQ_INT(fx->addr.len, sizeof(struct sockaddr_in));
    ASSERT_EQ_INT(ntohs(fx->addr.u.in.sin_port), local_port(fx->aux2 >= 0 ? fx->aux2 : fx->aux));
}

static void after_cancel_accept(fx_t *fx)
{
    connect_client(fx);
    int fd = accept4(fx->hfd, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_TRUE(fd >= 0);  /* the connection was left for the next accept */
    tt_close(fd);
}

/* ---- connect -------------------------------------------------------------- */

static void setup_connect(fx_t *fx)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(s >= 0);
    open_handle(fx, s);
}

static tacio_status_t start_connect(fx_t *fx, tacio_op_t *op)
{
    return tacio_connect(fx->h, fx->null_op ? NULL : op, &fx->addr);
}

static void arrange_listening_target(fx_t *fx)
{
    struct sockaddr_in a;
    fx->aux = tt_tcp_listener(16, &a);
    addr_set(&fx->addr, &a);
}

static void arrange_refused_target(fx_t *fx)
{
    struct sockaddr_in a;
    tt_closed_port(SOCK_STREAM, &a);
    addr_set(&fx->addr, &a);
}

/* A listener with backlog 0 and one connection waiting in its accept queue:
 * the queue is full, so the kernel drops our SYN and connect waits for its
 * retransmission (1 s): a connect that stays pending. */
static void arrange_full_backlog(fx_t *fx)
{
    struct sockaddr_in a;
    fx->aux = tt_tcp_listener(0, &a);
    addr_set(&fx->addr, &a);
    fx->aux2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(fx->aux2 >= 0);
    ASSERT_EQ_INT(connect(fx->aux2, (struct sockaddr *)&a, sizeof a), 0);
    tt_sleep_ms(20);
}

/* Make room: the SYN retransmission then completes the connect. */
static void accept_filler(fx_t *fx)
{
    int fd = accept4(fx->aux, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    tt_close(fd);
}

/* Nothing listens any more: the retransmitted SYN gets an RST. */
static void close_listener(fx_t *fx)
{
    tt_close(fx->aux);
    fx->aux = -1;
}

static void verify_connected(fx_t *fx, const tacio_op_t *op)
{
    (void)op;
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ASSERT_EQ_INT(getpeername(fx->hfd, (struct sockaddr *)&a, &l), 0);
    ASSERT_EQ_INT(ntohs(a.sin_port), ntohs(fx->addr.u.in.sin_port));
}

/* ---- timers --------------------------------------------------------------- */

static void setup_timer(fx_t *fx) { fx->ns = 100000000ull; /* 100 ms */ }

static tacio_status_t start_timer(fx_t *fx, tacio_op_t *op)
{
    return tacio_timer_start(fx->port, fx->null_op ? NULL : op, fx->key, fx->ns);
}

static void hold_timer(fx_t *fx) { fx->ns = 30ull * 1000000000ull; }

/* ---- the matrix --------------------------------------------------------------- */

#define NA_FILE_SYNC "file I/O is submitted to io_uring, never tried in the start call: " \
                     "a file operation always returns PENDING"
#define NA_NO_TRUNC_STREAM "a stream receive returns what fits and leaves the rest queued: " \
                           "no truncation, so no warning"
#define NA_NO_PARTIAL_SEND "a send or write has no warning outcome: it writes or it fails"

static const kind_def_t kinds[KIND_COUNT] = {
    [KIND_file_read] = {
        "file_read", 1, 0, setup_file_read, start_read, NULL, NULL, {
            [OUT_sync_success] = { .na = NA_FILE_SYNC },
            [OUT_sync_warning] = { .na = "a file read does not truncate: a short buffer gets a short read" },
            [OUT_sync_error] = { .na = NA_FILE_SYNC " (errors arrive in the completion: see pending_error)" },
            [OUT_rejected] = { .arrange = arrange_offset_none, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 100,
                                      .verify = verify_file_read },
            [OUT_pending_error] = { .arrange = arrange_at_eof, .ret = RET_PENDING,
                                    WANT(TACIO_END_OF_FILE), .bytes = 0 },
        } },
    [KIND_file_write] = {
        "file_write", 1, 0, setup_file_write, start_write, NULL, NULL, {
            [OUT_sync_success] = { .na = NA_FILE_SYNC },
            [OUT_sync_warning] = { .na = NA_NO_PARTIAL_SEND },
            [OUT_sync_error] = { .na = NA_FILE_SYNC " (errors arrive in the completion: see pending_error)" },
            [OUT_rejected] = { .arrange = arrange_offset_none, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 100,
                                      .verify = verify_file_write },
            /* a write on an fd opened O_RDONLY: the kernel's EBADF. tacio may
             * also see the access mode at the start (io.h does not say), so
             * either path is accepted; ACCESS_DENIED is the NT name for it. */
            [OUT_pending_error] = { .setup = setup_file_write_readonly, .ret = RET_EITHER,
                                    WANT(ST_ERRNO(EBADF), TACIO_ACCESS_DENIED), .bytes = 0 },
        } },
    [KIND_pipe_read] = {
        "pipe_read", 1, 1, setup_pipe_read, start_read, NULL, after_cancel_pipe_rx, {
            [OUT_sync_success] = { .arrange = peer_send_hello, .ret = RET_SYNC, WANT(TACIO_SUCCESS),
                                   .bytes = 5, .verify = verify_hello_in_buf },
            [OUT_sync_warning] = { .na = NA_NO_TRUNC_STREAM },
            [OUT_sync_error] = { .arrange = peer_close, .ret = RET_SYNC, WANT(TACIO_END_OF_FILE),
                                 .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_offset_zero, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .trigger = peer_send_hello, .ret = RET_PENDING,
                                      WANT(TACIO_SUCCESS), .bytes = 5, .verify = verify_hello_in_buf },
            [OUT_pending_error] = { .trigger = peer_close, .ret = RET_PENDING,
                                    WANT(TACIO_END_OF_FILE), .bytes = 0 },
        } },
    [KIND_pipe_write] = {
        "pipe_write", 1, 1, setup_pipe_write, start_write, arrange_fill_pipe, NULL, {
            [OUT_sync_success] = { .ret = RET_SYNC, WANT(TACIO_SUCCESS), .bytes = 5,
                                   .verify = verify_peer_got_hello },
            [OUT_sync_warning] = { .na = NA_NO_PARTIAL_SEND },
            [OUT_sync_error] = { .arrange = peer_close, .ret = RET_SYNC, WANT(TACIO_PIPE_BROKEN),
                                 .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_offset_zero, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .arrange = arrange_fill_pipe, .trigger = start_drainer,
                                      .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 5 },
            [OUT_pending_error] = { .arrange = arrange_fill_pipe, .trigger = peer_close,
                                    .ret = RET_PENDING, WANT(TACIO_PIPE_BROKEN), .bytes = 0 },
        } },
    [KIND_tcp_recv] = {
        "tcp_recv", 1, 1, setup_tcp_recv, start_recv, NULL, after_cancel_rx, {
            [OUT_sync_success] = { .arrange = arrange_peer_hello_arrived, .ret = RET_SYNC,
                                   WANT(TACIO_SUCCESS), .bytes = 5, .verify = verify_hello_in_buf },
            [OUT_sync_warning] = { .na = NA_NO_TRUNC_STREAM },
            [OUT_sync_error] = { .arrange = arrange_peer_reset_arrived, .ret = RET_SYNC,
                                 WANT(TACIO_CONNECTION_RESET), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_len_zero, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .trigger = peer_send_hello, .ret = RET_PENDING,
                                      WANT(TACIO_SUCCESS), .bytes = 5, .verify = verify_hello_in_buf },
            [OUT_pending_error] = { .trigger = peer_reset, .ret = RET_PENDING,
                                    WANT(TACIO_CONNECTION_RESET), .bytes = 0 },
        } },
    [KIND_tcp_send] = {
        "tcp_send", 1, 1, setup_tcp_send, start_send, arrange_fill_tcp, NULL, {
            [OUT_sync_success] = { .ret = RET_SYNC, WANT(TACIO_SUCCESS), .bytes = 5,
                                   .verify = verify_peer_got_hello },
            [OUT_sync_warning] = { .na = NA_NO_PARTIAL_SEND },
            /* io.h: "a closed peer is TACIO_PIPE_BROKEN or TACIO_CONNECTION_RESET" */
            [OUT_sync_error] = { .arrange = arrange_peer_reset_arrived, .ret = RET_SYNC,
                                 WANT(TACIO_CONNECTION_RESET, TACIO_PIPE_BROKEN), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_len_zero, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .arrange = arrange_fill_tcp, .trigger = start_drainer,
                                      .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 5 },
            [OUT_pending_error] = { .arrange = arrange_fill_tcp, .trigger = peer_reset,
                                    .ret = RET_PENDING,
                                    WANT(TACIO_CONNECTION_RESET, TACIO_PIPE_BROKEN), .bytes = 0 },
        } },
    [KIND_tcp_poll] = {
        "tcp_poll", 1, 1, setup_tcp_poll, start_poll, NULL, after_cancel_rx, {
            /* a new handle tries poll(2) first (io.h) */
            [OUT_sync_success] = { .arrange = arrange_peer_hello_arrived, .ret = RET_SYNC,
                                   WANT(TACIO_SUCCESS), .bytes = POLLIN,
                                   .verify = verify_hello_still_queued },
            [OUT_sync_warning] = { .na = "a poll has no warning: it reports readiness" },
            [OUT_sync_error] = { .na = "an error or hang-up is readiness: SUCCESS with POLLERR or "
                                       "POLLHUP (see pending_error)" },
            [OUT_rejected] = { .arrange = arrange_len_zero, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .trigger = peer_send_hello, .ret = RET_PENDING,
                                      WANT(TACIO_SUCCESS), .bytes = POLLIN,
                                      .verify = verify_hello_still_queued },
            [OUT_pending_error] = { .trigger = peer_reset, .ret = RET_PENDING, WANT(TACIO_SUCCESS),
                                    .bytes = BYTES_ANY, .verify = verify_poll_saw_reset },
        } },
    [KIND_udp_recvfrom] = {
        "udp_recvfrom", 1, 1, setup_udp_recvfrom, start_recvfrom, NULL, after_cancel_rx, {
            [OUT_sync_success] = { .arrange = arrange_peer_hello_arrived, .ret = RET_SYNC,
                                   WANT(TACIO_SUCCESS), .bytes = 5, .verify = verify_udp_hello },
            [OUT_sync_warning] = { .arrange = arrange_big_datagram_queued, .ret = RET_SYNC,
                                   WANT(TACIO_BUFFER_OVERFLOW), .bytes = 100,
                                   .verify = verify_udp_truncated },
            [OUT_sync_error] = { .arrange = arrange_udp_refused_arrived, .ret = RET_SYNC,
                                 WANT(TACIO_CONNECTION_REFUSED), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_null_buf, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .trigger = peer_send_hello, .ret = RET_PENDING,
                                      WANT(TACIO_SUCCESS), .bytes = 5, .verify = verify_udp_hello },
            [OUT_pending_error] = { .arrange = arrange_udp_refused_target, .trigger = udp_send_to_dead,
                                    .ret = RET_PENDING, WANT(TACIO_CONNECTION_REFUSED), .bytes = 0 },
        } },
    [KIND_udp_sendto] = {
        "udp_sendto", 1, 0, setup_udp_sendto, start_sendto, NULL, NULL, {
            [OUT_sync_success] = { .ret = RET_SYNC, WANT(TACIO_SUCCESS), .bytes = 5,
                                   .verify = verify_peer_got_hello },
            [OUT_sync_warning] = { .na = NA_NO_PARTIAL_SEND },
            [OUT_sync_error] = { .arrange = arrange_oversized_datagram, .ret = RET_SYNC,
                                 WANT(ST_ERRNO(EMSGSIZE)), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_null_buf, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .na = "a loopback datagram send never waits (loopback "
                                            "releases the send buffer at once): no pending state" },
            [OUT_pending_error] = { .na = "a loopback datagram send never waits: no pending state "
                                          "to fail from" },
        } },
    [KIND_accept] = {
        "accept", 1, 1, setup_accept, start_accept, NULL, after_cancel_accept, {
            /* io.h does not say whether accept is tried in the start call */
            [OUT_sync_success] = { .arrange = connect_client, .ret = RET_EITHER, WANT(TACIO_SUCCESS),
                                   .bytes = BYTES_FD, .verify = verify_accepted },
            [OUT_sync_warning] = { .na = "accept has no warning outcome" },
            [OUT_sync_error] = { .arrange = arrange_no_fds, .ret = RET_EITHER,
                                 WANT(ST_ERRNO(EMFILE)), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_null_op, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .trigger = connect_client, .ret = RET_PENDING,
                                      WANT(TACIO_SUCCESS), .bytes = BYTES_FD,
                                      .verify = verify_accepted },
            [OUT_pending_error] = { .trigger = shutdown_listener, .ret = RET_PENDING,
                                    WANT(ST_ERRNO(EINVAL)), .bytes = 0 },
        } },
    [KIND_connect] = {
        "connect", 1, 1, setup_connect, start_connect, NULL, NULL, {
            /* loopback connects may finish in the start call or not */
            [OUT_sync_success] = { .arrange = arrange_listening_target, .ret = RET_EITHER,
                                   WANT(TACIO_SUCCESS), .bytes = 0, .verify = verify_connected },
            [OUT_sync_warning] = { .na = "connect has no warning outcome" },
            [OUT_sync_error] = { .arrange = arrange_refused_target, .ret = RET_EITHER,
                                 WANT(TACIO_CONNECTION_REFUSED), .bytes = 0 },
            [OUT_rejected] = { .arrange = arrange_null_op, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .arrange = arrange_full_backlog, .trigger = accept_filler,
                                      .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 0,
                                      .verify = verify_connected },
            [OUT_pending_error] = { .arrange = arrange_full_backlog, .trigger = close_listener,
                                    .ret = RET_PENDING, WANT(TACIO_CONNECTION_REFUSED), .bytes = 0 },
        } },
    [KIND_fsync] = {
        "fsync", 1, 0, setup_fsync, start_fsync, NULL, NULL, {
            [OUT_sync_success] = { .na = NA_FILE_SYNC },
            [OUT_sync_warning] = { .na = "fsync has no warning outcome" },
            [OUT_sync_error] = { .na = NA_FILE_SYNC },
            [OUT_rejected] = { .arrange = arrange_null_op, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = 0 },
            [OUT_pending_error] = { .na = "fsync on a healthy file system does not fail; EIO "
                                          "needs a failing device" },
        } },
    [KIND_timer] = {
        "timer", 0, 1, setup_timer, start_timer, hold_timer, NULL, {
            [OUT_sync_success] = { .na = "a timer always returns PENDING" },
            [OUT_sync_warning] = { .na = "a timer always returns PENDING" },
            [OUT_sync_error] = { .na = "a timer's only failures in the start call are rejections" },
            [OUT_rejected] = { .arrange = arrange_null_op, .ret = RET_REJECT,
                               WANT(TACIO_INVALID_PARAMETER) },
            [OUT_pending_success] = { .ret = RET_PENDING, WANT(TACIO_SUCCESS), .bytes = BYTES_ANY },
            [OUT_pending_error] = { .na = "a timer that fires always succeeds" },
            [OUT_handle_closed] = { .na = "a timer has no handle" },
        } },
};

/* ---- running a cell -------------------------------------------------------- */

static tacio_status_t resolve(tacio_status_t s)
{
    if ((s & 0xFFFF0000u) == 0x0E000000u)
        return tacio_status_from_errno((int)(s & 0xFFFFu));
    return s;
}

static int allowed(const cell_t *c, tacio_status_t s)
{
    for (int i = 0; i < c->nst; i++)
        if (resolve(c->st[i]) == s)
            return 1;
    return 0;
}

static const char *want_str(const cell_t *c, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c->nst && used < size; i++) {
        char b[96];
        int w = snprintf(buf + used, size - used, "%s%s", i ? " or " : "",
                         tt_status_str(resolve(c->st[i]), b, sizeof b));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

static void fail_status(const char *what, tacio_status_t got, const cell_t *c,
                        const char *extra)
{
    char g[96], w[300];
    TT_FAIL("%s: %s, expected %s%s", what, tt_status_str(got, g, sizeof g),
            want_str(c, w, sizeof w), extra ? extra : "");
}

/* The final result (returned or delivered) against the cell. */
static void check_final(fx_t *fx, const tacio_op_t *op, const cell_t *c, int may_cancel,
                        tacio_status_t st, uint64_t bytes, const char *where)
{
    tt_context("%s", where);
    if (st == TACIO_CANCELLED && may_cancel) {
        ASSERT_EQ_U64(bytes, 0);
    } else {
        if (!allowed(c, st))
            fail_status("final status", st, c, may_cancel ? " or TACIO_CANCELLED" : "");
        if (c->bytes >= 0)
            ASSERT_EQ_U64(bytes, (uint64_t)c->bytes);
    }
    ASSERT_EQ_STATUS(op->status, st);
    ASSERT_EQ_U64(op->bytes, bytes);
    if (st != TACIO_CANCELLED && c->verify)
        c->verify(fx, op);
}

static void check_entry(fx_t *fx, const tacio_entry_t *e, const tacio_op_t *op)
{
    ASSERT_EQ_PTR(e->op, op);
    ASSERT_EQ_U64(e->key, fx->key);
    ASSERT_EQ_INT(e->kind, TACIO_ENTRY_OP);
}

static void describe_entries(const tacio_entry_t *e, unsigned n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < n && i < 4 && used < size; i++) {
        char b[96];
        int w = snprintf(buf + used, size - used, "%s[op %p key 0x%llx %s bytes %llu]",
                         i ? " " : "", (void *)e[i].op, (unsigned long long)e[i].key,
                         tt_status_str(e[i].status, b, sizeof b),
                         (unsigned long long)e[i].bytes);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void expect_completions(tacio_port_t *p, tacio_entry_t *e, unsigned want,
                               unsigned first_ms, unsigned quiet_ms, const char *when)
{
    unsigned n = tt_collect(p, e, 4, first_ms, quiet_ms);
    if (n != want) {
        char d[600];
        describe_entries(e, n, d, sizeof d);
        TT_FAIL("%s: %u completion(s), expected exactly %u %s", when, n, want, d);
    }
}

/* A held-pending operation must not complete before its trigger. */
static void expect_still_pending(fx_t *fx, const char *when)
{
    tacio_entry_t e[4];
    unsigned n = tt_dequeue_all(fx->port, e, 4, 30);
    if (n) {
        char d[600];
        describe_entries(e, n, d, sizeof d);
        TT_FAIL("%s: completed before anything ended it: %s", when, d);
    }
}

/* Check the start's return against the cell's ret for this mode. */
static void check_return(fx_t *fx, const cell_t *c, tacio_status_t s)
{
    char g[96];
    tt_context("start returned");
    if (fx->mode == MODE_queued) {
        if (s != TACIO_PENDING)
            TT_FAIL("queued-always handle: start returned %s, expected TACIO_PENDING "
                    "(every accepted operation completes through the port)",
                    tt_status_str(s, g, sizeof g));
        return;
    }
    if (c->ret == RET_PENDING && s != TACIO_PENDING)
        TT_FAIL("start returned %s, expected TACIO_PENDING", tt_status_str(s, g, sizeof g));
    if (c->ret == RET_SYNC && s == TACIO_PENDING)
        fail_status("start returned (expected a synchronous result)", s, c, NULL);
}

static const char *na_reason(const kind_def_t *kd, int o, int mode, const cell_t **base)
{
    *base = NULL;
    if (!kd->has_handle && mode == MODE_queued)
        return "a timer has no handle, so it has no handle mode (see the default-mode cell)";
    if (kd->cell[o].na)
        return kd->cell[o].na;
    if (o < OUT_pending_cancelled) {
        *base = &kd->cell[o];
        return NULL;
    }
    /* the interrupting outcomes build on the natural cell */
    const cell_t *nat = &kd->cell[OUT_pending_success];
    if (nat->na)
        nat = &kd->cell[OUT_sync_success];
    if (nat->na)
        return "the kind has no natural outcome to interrupt";
    *base = nat;
    return NULL;
}

static void fx_init(fx_t *fx, int k, int o, int m)
{
    memset(fx, 0, sizeof *fx);
    fx->kind = k;
    fx->outcome = o;
    fx->mode = m;
    fx->hflags = m == MODE_queued ? TACIO_HANDLE_QUEUED_ALWAYS : 0;
    fx->key = 0xC0DE0000ull + (uint64_t)k;
    fx->hfd = fx->vfd = fx->peer = fx->aux = fx->aux2 = fx->accepted = -1;
    fx->bufp = fx->buf;
    fx->off = TACIO_OFFSET_NONE;
    fx->port = tt_port(2);
    fx->port_open = 1;
}

static void fx_teardown(fx_t *fx)
{
    tt_context("teardown");
    restore_nofile(fx);
    stop_drainer(fx);
    if (fx->h_open) {
        ASSERT_OK(tacio_handle_close(fx->h));
        fx->h_open = 0;
    }
    if (fx->port_open) {
        /* nothing may arrive once the cell's checks are done */
        expect_completions(fx->port, (tacio_entry_t[4]){ { 0 } }, 0, 20, 20, "teardown");
        ASSERT_OK(tacio_port_close(fx->port, NULL, NULL));
        fx->port_open = 0;
    }
    tt_close(fx->accepted);
    tt_close(fx->peer);
    tt_close(fx->aux);
    tt_close(fx->aux2);
    tt_close(fx->vfd);
    free(fx->big);
}

/* Plain outcomes: sync_*, rejected, pending_success, pending_error. */
static void run_plain(fx_t *fx, const kind_def_t *kd, const cell_t *c)
{
    tacio_op_t op;
    tacio_entry_t e[4];
    tacio_op_init(&op);
    tacio_status_t s = kd->start(fx, &op);

    if (c->ret == RET_REJECT) {
        tt_context("rejection");
        if (s != resolve(c->st[0]))
            fail_status("start returned", s, c, " (a rejection)");
        expect_completions(fx->port, e, 0, 100, 100, "after a rejection");
        /* io.h: a non-PENDING return sets op->status, rejections included
         * (only TACIO_OP_IN_USE leaves the record alone) */
        if (!fx->null_op)
            ASSERT_EQ_STATUS(op.status, s);
        return;
    }
    check_return(fx, c, s);
    if (s != TACIO_PENDING) {
        restore_nofile(fx);
        check_final(fx, &op, c, 0, s, op.bytes, "synchronous result");
        expect_completions(fx->port, e, 0, 100, 100,
                           "after a synchronous result (the rule: no completion may follow)");
        return;
    }
    if (c->trigger) {
        if (kd->holdable)
            expect_still_pending(fx, "before the trigger");
        tt_context("trigger");
        c->trigger(fx);
    }
    expect_completions(fx->port, e, 1, 5000, 100, "after PENDING");
    restore_nofile(fx);
    check_entry(fx, &e[0], &op);
    check_final(fx, &op, c, 0, e[0].status, e[0].bytes, "completion");
}

typedef struct discards {
    unsigned n, mine;
    tacio_entry_t e[8];
    const tacio_op_t *op;
} discards_t;

static void on_discard(const tacio_entry_t *e, void *arg)
{
    discards_t *d = arg;
    if (d->n < 8)
        d->e[d->n] = *e;
    d->n++;
    if (e->op == d->op)
        d->mine++;
}

/* pending_cancelled, handle_closed, port_closed: the op is pending (held
 * until a trigger that never comes, for holdable kinds; racing its own
 * natural completion otherwise) when it is cancelled / its handle closed /
 * its port closed. */
static void run_interrupt(fx_t *fx, const kind_def_t *kd, const cell_t *base)
{
    int o = fx->outcome;
    tacio_op_t op;
    tacio_entry_t e[4];
    tacio_op_init(&op);
    tacio_status_t s = kd->start(fx, &op);

    if (kd->holdable) {
        tt_context("start returned");
        if (s != TACIO_PENDING) {
            char g[96];
            TT_FAIL("start returned %s, expected TACIO_PENDING (the operation cannot finish "
                    "without its trigger)", tt_status_str(s, g, sizeof g));
        }
        expect_still_pending(fx, "before the interruption");
    } else {
        check_return(fx, base, s);
    }

    if (s != TACIO_PENDING) {
        /* over already: the interruption finds nothing and creates nothing */
        check_final(fx, &op, base, 0, s, op.bytes, "synchronous result");
        if (o == OUT_pending_cancelled) {
            ASSERT_EQ_STATUS(tacio_cancel(&op), TACIO_NOT_FOUND);
        } else if (o == OUT_handle_closed) {
            ASSERT_OK(tacio_handle_close(fx->h));
            fx->h_open = 0;
        } else {
            discards_t d = { .op = &op };
            ASSERT_OK(tacio_port_close(fx->port, on_discard, &d));
            fx->port_open = 0;
            ASSERT_EQ_INT(d.mine, 0);
            return;
        }
        expect_completions(fx->port, e, 0, 100, 100, "after interrupting a finished operation");
        return;
    }

    const int held = kd->holdable;
    if (o == OUT_pending_cancelled) {
        tt_context("tacio_cancel");
        tacio_status_t cs = tacio_cancel(&op);
        if (held)
            ASSERT_OK(cs);
        else if (cs != TACIO_SUCCESS && cs != TACIO_NOT_FOUND) {
            char g[96];
            TT_FAIL("tacio_cancel: %s, expected TACIO_SUCCESS or TACIO_NOT_FOUND",
                    tt_status_str(cs, g, sizeof g));
        }
    } else if (o == OUT_handle_closed) {
        tt_context("tacio_handle_close");
        ASSERT_OK(tacio_handle_close(fx->h));
        fx->h_open = 0;
    } else {
        tt_context("tacio_port_close");
        discards_t d = { .op = &op };
        ASSERT_OK(tacio_port_close(fx->port, on_discard, &d));
        fx->port_open = 0;
        if (d.mine != 1 || d.n != 1) {
            char dd[600];
            describe_entries(d.e, d.n, dd, sizeof dd);
            TT_FAIL("port close handed %u entr%s to discard (%u for the op), expected exactly "
                    "one: %s", d.n, d.n == 1 ? "y" : "ies", d.mine, dd);
        }
        check_entry(fx, &d.e[0], &op);
        if (held && d.e[0].status != TACIO_CANCELLED) {
            char g[96];
            TT_FAIL("discarded entry: %s, expected TACIO_CANCELLED",
                    tt_status_str(d.e[0].status, g, sizeof g));
        }
        check_final(fx, &op, base, 1, d.e[0].status, d.e[0].bytes, "discarded entry");
        /* dequeue never returns it. (Which status a dequeue on a closed
         * port gets - ABANDONED or INVALID_HANDLE, port.h says both - is
         * test-bad-input's business; here only "nothing" matters.) */
        unsigned n = 7;
        tt_context("dequeue after close");
        tacio_status_t ds = tacio_port_dequeue(fx->port, e, 4, &n, 50);
        ASSERT_TRUE(ds == TACIO_ABANDONED || ds == TACIO_INVALID_HANDLE);
        ASSERT_EQ_INT(n, 0);
        return;
    }

    expect_completions(fx->port, e, 1, 5000, 100,
                       o == OUT_pending_cancelled ? "after tacio_cancel" : "after tacio_handle_close");
    check_entry(fx, &e[0], &op);
    if (held && e[0].status != TACIO_CANCELLED) {
        char g[96];
        TT_FAIL("completion: %s, expected TACIO_CANCELLED (nothing else could end it)",
                tt_status_str(e[0].status, g, sizeof g));
    }
    check_final(fx, &op, base, 1, e[0].status, e[0].bytes, "completion");

    if (o == OUT_pending_cancelled && held) {
        /* the cancelled record stays dead: the event that would have ended
         * it now produces nothing, and a receive that was cancelled took
         * nothing */
        tt_context("after the cancelled completion");
        if (kd->after_cancel)
            kd->after_cancel(fx);
        else if (base->trigger)
            base->trigger(fx);
        expect_completions(fx->port, e, 0, 100, 100, "after the cancelled completion");
    }
}

typedef struct starter {
    fx_t *fx;
    const kind_def_t *kd;
    tacio_op_t *op;
    tacio_status_t s;
    int tid;
} starter_t;

static void *start_and_exit(void *arg)
{
    starter_t *st = arg;
    st->tid = tt_gettid();
    st->s = st->kd->start(st->fx, st->op);
    return NULL;  /* the thread exits with the operation still pending */
}

/* thread_exit: the start is made by a thread that exits at once; the
 * operation must then finish normally (thread-agnostic I/O), exactly once. */
static void run_thread_exit(fx_t *fx, const kind_def_t *kd, const cell_t *base)
{
    tacio_op_t op;
    tacio_entry_t e[4];
    tacio_op_init(&op);
    starter_t st = { fx, kd, &op, 0, 0 };
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, start_and_exit, &st), 0);
    ASSERT_EQ_INT(pthread_join(t, NULL), 0);
    tacio_status_t s = st.s;
    check_return(fx, base, s);
    if (s != TACIO_PENDING) {
        check_final(fx, &op, base, 0, s, op.bytes, "synchronous result");
        expect_completions(fx->port, e, 0, 100, 100, "after a synchronous result");
        return;
    }
    if (base->trigger) {
        /* the kernel has seen the thread go (join returns after its
         * io_uring requests were cancelled): still nothing may complete */
        tt_sleep_ms(20);
        if (kd->holdable)
            expect_still_pending(fx, "after the issuing thread exited");
        tt_context("trigger");
        base->trigger(fx);
    }
    expect_completions(fx->port, e, 1, 5000, 100, "after the issuing thread exited");
    check_entry(fx, &e[0], &op);
    check_final(fx, &op, base, 0, e[0].status, e[0].bytes, "completion");
}

static void run_cell(int k, int o, int m)
{
    const kind_def_t *kd = &kinds[k];
    const cell_t *c;
    const char *na = na_reason(kd, o, m, &c);
    if (na)
        TT_SKIP("not applicable: %s", na);

    fx_t *fx = calloc(1, sizeof *fx);
    ASSERT_TRUE(fx != NULL);
    fx_init(fx, k, o, m);
    tt_context("setup");
    (c->setup ? c->setup : kd->setup)(fx);
    tt_context("arrange");
    if (c->arrange)
        c->arrange(fx);
    if (o == OUT_pending_cancelled || o == OUT_handle_closed || o == OUT_port_closed) {
        if (kd->hold)
            kd->hold(fx);
        run_interrupt(fx, kd, c);
    } else if (o == OUT_thread_exit) {
        run_thread_exit(fx, kd, c);
    } else {
        run_plain(fx, kd, c);
    }
    fx_teardown(fx);
    free(fx);
    tt_context("%s", "");
}

/* ---- one case per cell ---------------------------------------------------- */

#define CELL_FN(k, o, m)                                                       \
    static void k##__##o##__##m(void) { run_cell(KIND_##k, OUT_##o, MODE_##m); }
#define OUTCOME_FNS(k, o) MODES(CELL_FN, k, o)
#define KIND_FNS(k) OUTCOMES(OUTCOME_FNS, k)
KINDS(KIND_FNS)

#define CELL_ENTRY(k, o, m) TT_ENTRY(k##__##o##__##m, 20),
#define OUTCOME_ENTRIES(k, o) MODES(CELL_ENTRY, k, o)
#define KIND_ENTRIES(k) OUTCOMES(OUTCOME_ENTRIES, k)
/* Beyond the cells: a readability poll after one that found nothing skips
 * its poll(2) (io.h), so the backend alone must see data that is already
 * there, with no new edge coming: the epoll backend's remembered edge, or
 * io_uring's check at arming. Drained by hand in between, as a server drains
 * its listener with accept4(2). */
static void poll_after_nothing_found_sees_waiting_data(void)
{
    tacio_port_t *port = tt_port(1);
    int c, s;
    tt_tcp_pair(&c, &s);
    tacio_handle_t *h = tt_handle(port, c, 7, 0);
    tacio_op_t op;
    tacio_entry_t e[2];
    unsigned char b[16];
    for (int round = 0; round < 3; round++) {
        tt_context("round %d", round);
        memset(&op, 0, sizeof op);
        ASSERT_EQ_STATUS(tacio_poll(h, &op, TACIO_POLL_IN), TACIO_PENDING);
        ASSERT_EQ_INT(write(s, HELLO, 5), 5);
        ASSERT_EQ_INT(tt_collect(port, e, 2, 2000, 100), 1);
        ASSERT_EQ_STATUS(e[0].status, TACIO_SUCCESS);
        ASSERT_EQ_U64(e[0].bytes, POLLIN);
        ASSERT_EQ_INT(recv(c, b, sizeof b, MSG_DONTWAIT), 5);
        /* data waits before the poll starts: SUCCESS now, or PENDING and one completion */
        ASSERT_EQ_INT(write(s, HELLO, 5), 5);
        ASSERT_TRUE(tt_poll(c, POLLIN, 2000) & POLLIN);
        memset(&op, 0, sizeof op);
        tacio_status_t st = tacio_poll(h, &op, TACIO_POLL_IN);
        unsigned n = tt_collect(port, e, 2, st == TACIO_PENDING ? 2000 : 0, 100);
        if (st == TACIO_PENDING) {
            ASSERT_EQ_INT(n, 1);
            ASSERT_EQ_STATUS(e[0].status, TACIO_SUCCESS);
            ASSERT_EQ_U64(e[0].bytes, POLLIN);
        } else {
            ASSERT_EQ_STATUS(st, TACIO_SUCCESS);
            ASSERT_EQ_INT(n, 0);
            ASSERT_EQ_U64(op.bytes, POLLIN);
        }
        ASSERT_EQ_INT(recv(c, b, sizeof b, MSG_DONTWAIT), 5);
        /* nothing left: the next round's poll finds nothing */
    }
    tt_context("%s", "");
    ASSERT_OK(tacio_handle_close(h));
    tt_close(s);
    ASSERT_OK(tacio_port_close(port, NULL, NULL));
}

static const tt_case_t tt_cases[] = {
    KINDS(KIND_ENTRIES)
    TT_ENTRY(poll_after_nothing_found_sees_waiting_data, 20),
};

TT_MAIN()
