/*
 * echo-uring.c - the hand-written liburing baseline for the echo benchmark.
 *
 * One ring, one thread. Multishot accept; per connection one multishot recv
 * that draws from a provided-buffer ring; each received buffer is sent back
 * as it is and returns to the buffer ring when its send completes. One
 * io_uring_submit_and_wait per loop turn, CQEs peeked in batches, buffer-ring
 * tail published once per turn.
 *
 * Usage: echo-uring --port P   (127.0.0.1 only; stops on SIGINT/SIGTERM)
 *
 * Written against liburing 2.3 (no io_uring_setup_buf_ring there: the buffer
 * ring is mmap'ed and registered by hand). Needs Linux >= 6.0 for multishot
 * recv.
 */
#include "bench-common.h"

#include <liburing.h>
#include <stdint.h>
#include <sys/mman.h>

enum {
	SQ_ENTRIES = 2048,
	CQ_ENTRIES = 8 * SQ_ENTRIES, /* multishot posts many CQEs per SQE */
	CQE_BATCH = 512,
	BGID = 1,
	/* The buffer ring is a FIFO, so every buffer in it is touched once per
	 * trip round the ring: keep only as many in it as the load needs. Start
	 * with BUF_START and double on ENOBUFS, up to BUF_MAX (the ring size). */
	BUF_MAX = 8192, /* power of two, <= 32768 */
	BUF_START = 64,
	BUF_SIZE = 16384,
};

enum op { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

enum conn_flag {
	CONN_OPEN = 1u << 0,
	CONN_RECV_ARMED = 1u << 1, /* a multishot recv is in the kernel */
	CONN_SENDING = 1u << 2,    /* the send of the queue head is in the kernel */
	CONN_CLOSING = 1u << 3,
	CONN_STARVED = 1u << 4, /* recv ended in ENOBUFS, waits for a buffer */
};

/* A received buffer waiting for, or under, its send. */
struct buf {
	uint32_t len;
	uint32_t off; /* bytes already sent */
	int32_t next; /* next buffer in the connection's send queue, -1 ends */
};

/* Indexed by fd. Buffers leave the queue in receive order and only the head
 * is ever being sent, so echoed bytes never reorder on a short send. */
struct conn {
	int32_t head, tail; /* send queue of buffer ids, -1 when empty */
	int32_t next_starved;
	uint32_t flags;
};

struct server {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	unsigned char *mem; /* BUF_MAX * BUF_SIZE, buffer id i at i * BUF_SIZE */
	struct buf bufs[BUF_MAX];
	unsigned nbufs;    /* buffers ever given to the kernel */
	unsigned pending;  /* buffers added since the tail was last published */
	struct conn *conns;
	unsigned nconns;
	int starved;       /* list of CONN_STARVED fds, -1 ends */
	int lfd;
};

static inline uint64_t udata(enum op op, int fd)
{
	return (uint64_t)(uint32_t)fd << 8 | (uint64_t)op;
}

static inline enum op udata_op(uint64_t ud)
{
	return (enum op)(ud & 0xff);
}

static inline int udata_fd(uint64_t ud)
{
	return (int)(uint32_t)(ud >> 8);
}

/* Make the buffers added this turn visible to the kernel: one release store
 * (inside io_uring_buf_ring_advance) per publish. */
static void publish_bufs(struct server *s)
{
	if (s->pending == 0)
		return;
	io_uring_buf_ring_advance(s->br, (int)s->pending);
	s->pending = 0;
}

static void recycle(struct server *s, unsigned bid)
{
	io_uring_buf_ring_add(s->br, s->mem + (size_t)bid * BUF_SIZE, BUF_SIZE,
			      (unsigned short)bid, io_uring_buf_ring_mask(BUF_MAX),
			      (int)s->pending);
	s->pending++;
}

/* Double the buffers in circulation; false when all BUF_MAX already are. */
static bool grow_bufs(struct server *s)
{
	unsigned add = s->nbufs < BUF_MAX - s->nbufs ? s->nbufs : BUF_MAX - s->nbufs;

	if (add == 0)
		return false;
	for (unsigned i = 0; i < add; i++)
		recycle(s, s->nbufs + i);
	s->nbufs += add;
	return true;
}

static struct io_uring_sqe *get_sqe(struct server *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	while (sqe == NULL) {
		/* SQ full mid-turn: flush it; recvs in it must see this turn's
		 * buffers. */
		publish_bufs(s);
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static void arm_accept(struct server *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, udata(OP_ACCEPT, s->lfd));
}

static void arm_recv(struct server *s, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, udata(OP_RECV, fd));
	s->conns[fd].flags |= CONN_RECV_ARMED;
}

static void start_send(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];
	struct buf *b = &s->bufs[c->head];
	struct io_uring_sqe *sqe = get_sqe(s);

	/* MSG_WAITALL: the kernel retries a short stream send itself. */
	io_uring_prep_send(sqe, fd, s->mem + (size_t)c->head * BUF_SIZE + b->off,
			   b->len - b->off, MSG_NOSIGNAL | MSG_WAITALL);
	io_uring_sqe_set_data64(sqe, udata(OP_SEND, fd));
	c->flags |= CONN_SENDING;
}

static void queue_send(struct server *s, int fd, unsigned bid, uint32_t len)
{
	struct conn *c = &s->conns[fd];

	s->bufs[bid] = (struct buf){ .len = len, .off = 0, .next = -1 };
	if (c->head < 0)
		c->head = (int32_t)bid;
	else
		s->bufs[c->tail].next = (int32_t)bid;
	c->tail = (int32_t)bid;
	if (!(c->flags & CONN_SENDING))
		start_send(s, fd);
}

/* The only place a connection's fd is closed: when no request of ours can
 * still name it, so a reused fd number never meets a stale CQE. */
static void maybe_close(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];

	if (c->flags & (CONN_RECV_ARMED | CONN_SENDING | CONN_STARVED))
		return;
	for (int32_t bid = c->head; bid >= 0; bid = s->bufs[bid].next)
		recycle(s, (unsigned)bid);
	close(fd);
	*c = (struct conn){ .head = -1, .tail = -1, .next_starved = -1 };
}

static void begin_close(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];

	if (!(c->flags & CONN_CLOSING)) {
		c->flags |= CONN_CLOSING;
		/* Ends a still-armed multishot recv with res 0. */
		if (c->flags & CONN_RECV_ARMED)
			shutdown(fd, SHUT_RDWR);
	}
	maybe_close(s, fd);
}

static void on_accept(struct server *s, const struct io_uring_cqe *cqe)
{
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept(s);
	if (fd < 0) {
		fprintf(stderr, "echo-uring: accept: %s\n", strerror(-fd));
		return;
	}
	if ((unsigned)fd >= s->nconns) {
		close(fd);
		return;
	}
	bench_nodelay(fd);
	s->conns[fd] = (struct conn){ .head = -1, .tail = -1, .next_starved = -1,
				      .flags = CONN_OPEN };
	arm_recv(s, fd);
}

static void starve(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];

	c->flags |= CONN_STARVED;
	c->next_starved = s->starved;
	s->starved = fd;
}

/* Called once a turn after buffers came back: re-arm every starved recv. */
static void feed_starved(struct server *s)
{
	while (s->starved >= 0) {
		int fd = s->starved;
		struct conn *c = &s->conns[fd];

		s->starved = c->next_starved;
		c->flags &= ~CONN_STARVED;
		if (c->flags & CONN_CLOSING)
			maybe_close(s, fd);
		else
			arm_recv(s, fd);
	}
}

static void on_recv(struct server *s, int fd, const struct io_uring_cqe *cqe)
{
	struct conn *c = &s->conns[fd];

	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->flags &= ~CONN_RECV_ARMED;
	if (cqe->res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		if (c->flags & CONN_CLOSING)
			recycle(s, bid);
		else
			queue_send(s, fd, bid, (uint32_t)cqe->res);
	} else if (cqe->flags & IORING_CQE_F_BUFFER) {
		recycle(s, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	}
	if (c->flags & CONN_RECV_ARMED)
		return;
	/* The multishot recv is over: find out why. */
	if (c->flags & CONN_CLOSING)
		maybe_close(s, fd);
	else if (cqe->res == -ENOBUFS && grow_bufs(s))
		arm_recv(s, fd);
	else if (cqe->res == -ENOBUFS)
		starve(s, fd);
	else if (cqe->res > 0)
		arm_recv(s, fd);
	else
		begin_close(s, fd); /* EOF or error */
}

static void on_send(struct server *s, int fd, const struct io_uring_cqe *cqe)
{
	struct conn *c = &s->conns[fd];
	int32_t bid = c->head;
	struct buf *b = &s->bufs[bid];

	c->flags &= ~CONN_SENDING;
	if (cqe->res < 0) {
		begin_close(s, fd);
		return;
	}
	b->off += (uint32_t)cqe->res;
	if (b->off < b->len && !(c->flags & CONN_CLOSING)) {
		start_send(s, fd);
		return;
	}
	c->head = b->next;
	recycle(s, (unsigned)bid);
	if (c->flags & CONN_CLOSING)
		maybe_close(s, fd);
	else if (c->head >= 0)
		start_send(s, fd);
}

static void dispatch(struct server *s, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	switch (udata_op(ud)) {
	case OP_ACCEPT:
		on_accept(s, cqe);
		break;
	case OP_RECV:
		on_recv(s, udata_fd(ud), cqe);
		break;
	case OP_SEND:
		on_send(s, udata_fd(ud), cqe);
		break;
	}
}

static int setup_ring(struct io_uring *ring)
{
	/* Best first: task work deferred to our own io_uring_enter (one
	 * thread, one submitter), then cooperative task work, then plain. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = CQ_ENTRIES;
		ret = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		return ret;
	/* Saves an fget/fput of the ring fd per io_uring_enter; optional. */
	(void)io_uring_register_ring_fd(ring);
	return 0;
}

static int setup_bufs(struct server *s)
{
	size_t ring_bytes = (size_t)BUF_MAX * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg;
	int ret;

	s->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s->mem = mmap(NULL, (size_t)BUF_MAX * BUF_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->br == MAP_FAILED || s->mem == MAP_FAILED)
		return -ENOMEM;
	io_uring_buf_ring_init(s->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)s->br;
	reg.ring_entries = BUF_MAX;
	reg.bgid = BGID;
	ret = io_uring_register_buf_ring(&s->ring, &reg, 0);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < BUF_START; i++)
		recycle(s, i);
	s->nbufs = BUF_START;
	publish_bufs(s);
	return 0;
}

static int setup_conns(struct server *s)
{
	rlim_t lim = bench_raise_nofile();

	s->nconns = lim > (1u << 20) ? (1u << 20) : (unsigned)lim;
	s->conns = calloc(s->nconns, sizeof(*s->conns));
	if (s->conns == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nconns; i++)
		s->conns[i] = (struct conn){ .head = -1, .tail = -1, .next_starved = -1 };
	s->starved = -1;
	return 0;
}

static int run(struct server *s)
{
	struct io_uring_cqe *cqes[CQE_BATCH];

	arm_accept(s);
	while (!bench_stopping()) {
		unsigned n;
		int ret;

		publish_bufs(s);
		ret = io_uring_submit_and_wait(&s->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY &&
		    ret != -ETIME) {
			fprintf(stderr, "echo-uring: io_uring_submit_and_wait: %s\n",
				strerror(-ret));
			return 1;
		}
		n = io_uring_peek_batch_cqe(&s->ring, cqes, CQE_BATCH);
		for (unsigned i = 0; i < n; i++)
			dispatch(s, cqes[i]);
		io_uring_cq_advance(&s->ring, n);
		if (s->pending > 0)
			feed_starved(s);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct server s;
	int port = bench_server_args(argc, argv);
	int ret;

	bench_install_signals();
	if (setup_conns(&s) < 0) {
		fprintf(stderr, "echo-uring: out of memory\n");
		return 1;
	}
	ret = setup_ring(&s.ring);
	if (ret < 0) {
		fprintf(stderr, "echo-uring: io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	ret = setup_bufs(&s);
	if (ret < 0) {
		fprintf(stderr, "echo-uring: buffer ring: %s\n", strerror(-ret));
		return 1;
	}
	s.lfd = bench_listen(port, false);
	bench_announce(port);
	ret = run(&s);
	/* The ring's teardown, and with it the release of the files its
	 * requests hold, finishes asynchronously after exit: shut the sockets
	 * down first so the port is free as soon as we are gone. */
	shutdown(s.lfd, SHUT_RDWR);
	for (unsigned fd = 0; fd < s.nconns; fd++)
		if (s.conns[fd].flags & CONN_OPEN)
			shutdown((int)fd, SHUT_RDWR);
	io_uring_queue_exit(&s.ring);
	return ret;
}
