/*
 * echo-epoll.c - the hand-written epoll baseline for the echo benchmark.
 *
 * One thread, level-triggered epoll, non-blocking sockets. A readable socket
 * is read into one shared buffer until it is drained and every chunk is
 * written straight back; only what a short write leaves over is copied into
 * the connection's own buffer, and then the connection waits for EPOLLOUT
 * instead of EPOLLIN until that is sent (so a slow reader cannot make the
 * server buffer without bound).
 *
 * "Drained" is EAGAIN, or a read shorter than the buffer: for TCP a short read
 * means the receive queue was empty at that moment, and level triggering
 * reports the socket again if more has come since, so the extra read that
 * would only return EAGAIN is saved (one syscall a round trip in ping-pong).
 *
 * Usage: echo-epoll --port P   (127.0.0.1 only; stops on SIGINT/SIGTERM)
 */
#include "bench-common.h"

#include <stdint.h>
#include <sys/epoll.h>

enum {
	MAX_EVENTS = 512,
	RBUF_SIZE = 65536,
};

/* Indexed by fd. out holds only the unsent tail of a short write. */
struct conn {
	unsigned char *out;
	uint32_t off, len, cap;
	bool open;
};

struct server {
	int ep;
	int lfd;
	struct conn *conns;
	unsigned nconns;
	unsigned char rbuf[RBUF_SIZE];
};

static void close_conn(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];

	close(fd); /* also removes it from the epoll set */
	free(c->out);
	*c = (struct conn){ 0 };
}

static bool set_interest(struct server *s, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(s->ep, EPOLL_CTL_MOD, fd, &ev) == 0;
}

/* Keep the unsent tail and wait for EPOLLOUT. False: connection closed. */
static bool defer_tail(struct server *s, int fd, const unsigned char *p, size_t len)
{
	struct conn *c = &s->conns[fd];

	if (c->cap < len) {
		unsigned char *n = realloc(c->out, len);

		if (n == NULL) {
			close_conn(s, fd);
			return false;
		}
		c->out = n;
		c->cap = (uint32_t)len;
	}
	memcpy(c->out, p, len);
	c->off = 0;
	c->len = (uint32_t)len;
	if (!set_interest(s, fd, EPOLLOUT)) {
		close_conn(s, fd);
		return false;
	}
	return true;
}

/* Write p back. True: all of it went out; false: the tail is deferred or
 * the connection was closed (either way, stop reading it for now). */
static bool echo_back(struct server *s, int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			defer_tail(s, fd, p, len);
			return false;
		}
		close_conn(s, fd);
		return false;
	}
	return true;
}

static void on_readable(struct server *s, int fd)
{
	for (;;) {
		ssize_t n = recv(fd, s->rbuf, RBUF_SIZE, 0);

		if (n > 0) {
			if (!echo_back(s, fd, s->rbuf, (size_t)n))
				return;
			if (n < RBUF_SIZE)
				return; /* drained; see the file comment */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_conn(s, fd); /* EOF or error */
		return;
	}
}

static void on_writable(struct server *s, int fd)
{
	struct conn *c = &s->conns[fd];

	while (c->off < c->len) {
		ssize_t n = send(fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n > 0) {
			c->off += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_conn(s, fd);
		return;
	}
	c->off = c->len = 0;
	if (!set_interest(s, fd, EPOLLIN))
		close_conn(s, fd);
}

static void on_accept(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				fprintf(stderr, "echo-epoll: accept: %s\n", strerror(errno));
			if (errno == EINTR)
				continue;
			return;
		}
		if ((unsigned)fd >= s->nconns) {
			close(fd);
			continue;
		}
		bench_nodelay(fd);
		ev.data.fd = fd;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			continue;
		}
		s->conns[fd].open = true;
	}
}

static void dispatch(struct server *s, const struct epoll_event *ev)
{
	int fd = ev->data.fd;

	if (fd == s->lfd) {
		on_accept(s);
		return;
	}
	if (!s->conns[fd].open)
		return; /* closed earlier in this batch */
	if (ev->events & EPOLLOUT)
		on_writable(s, fd);
	else if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(s, fd);
}

int main(int argc, char **argv)
{
	static struct server s;
	struct epoll_event evs[MAX_EVENTS];
	struct epoll_event lev = { .events = EPOLLIN };
	int port = bench_server_args(argc, argv);
	rlim_t lim;

	bench_install_signals();
	lim = bench_raise_nofile();
	s.nconns = lim > (1u << 20) ? (1u << 20) : (unsigned)lim;
	s.conns = calloc(s.nconns, sizeof(*s.conns));
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.conns == NULL || s.ep < 0) {
		fprintf(stderr, "echo-epoll: setup: %s\n", strerror(errno));
		return 1;
	}
	s.lfd = bench_listen(port, true);
	lev.data.fd = s.lfd;
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &lev) != 0) {
		perror("echo-epoll: epoll_ctl");
		return 1;
	}
	bench_announce(port);
	while (!bench_stopping()) {
		int n = epoll_wait(s.ep, evs, MAX_EVENTS, -1);

		if (n < 0 && errno != EINTR) {
			perror("echo-epoll: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++)
			dispatch(&s, &evs[i]);
	}
	for (unsigned fd = 0; fd < s.nconns; fd++)
		if (s.conns[fd].open)
			close_conn(&s, (int)fd);
	close(s.lfd);
	close(s.ep);
	return 0;
}
