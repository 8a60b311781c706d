/*
 * echo-libuv.c - the libuv baseline for the echo benchmark.
 *
 * One thread, one uv_loop (epoll underneath). Written the way a careful
 * libuv server is: every read goes into one shared buffer (alloc_cb hands
 * out the same 64 KiB each time, which is safe because read_cb consumes it
 * before returning) and is written straight back with uv_try_write; only a
 * short write copies its tail into the connection's buffer, queues a
 * uv_write for it and stops reading the connection until that write is done
 * (the same flow control as echo-epoll.c, so a slow reader cannot make the
 * server buffer without bound).
 *
 * Usage: echo-libuv --port P   (127.0.0.1 only; stops on SIGINT/SIGTERM)
 */
#include "bench-common.h"

#include <uv.h>

enum { RBUF_SIZE = 65536 };

struct conn {
	uv_tcp_t tcp; /* first: the handle pointer is the conn pointer */
	uv_write_t wr;
	char *tail;
	size_t cap;
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigint_h, sigterm_h;
static char rbuf[RBUF_SIZE];

static void on_closed(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;

	free(c->tail);
	free(c);
}

static void close_conn(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	*buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;

	if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		close_conn(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)s;
	uv_buf_t out;
	int n;

	if (nread == 0)
		return; /* EAGAIN */
	if (nread < 0) {
		close_conn(c); /* UV_EOF or an error */
		return;
	}
	out = uv_buf_init(buf->base, (unsigned)nread);
	n = uv_try_write(s, &out, 1);
	if (n == nread)
		return;
	if (n < 0 && n != UV_EAGAIN) {
		close_conn(c);
		return;
	}
	if (n < 0)
		n = 0;
	/* Short write: keep the tail, send it asynchronously, pause reading. */
	if (c->cap < (size_t)(nread - n)) {
		char *t = realloc(c->tail, (size_t)(nread - n));

		if (t == NULL) {
			close_conn(c);
			return;
		}
		c->tail = t;
		c->cap = (size_t)(nread - n);
	}
	memcpy(c->tail, buf->base + n, (size_t)(nread - n));
	out = uv_buf_init(c->tail, (unsigned)(nread - n));
	uv_read_stop(s);
	c->wr.data = c;
	if (uv_write(&c->wr, s, &out, 1, on_written) != 0)
		close_conn(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct conn *c;

	if (status < 0) {
		fprintf(stderr, "echo-libuv: accept: %s\n", uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	uv_tcp_init(loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		close_conn(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		close_conn(c);
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (h == (uv_handle_t *)&listener || h == (uv_handle_t *)&sigint_h ||
	    h == (uv_handle_t *)&sigterm_h) {
		if (!uv_is_closing(h))
			uv_close(h, NULL);
		return;
	}
	if (h->type == UV_TCP)
		close_conn((struct conn *)h);
}

static void on_signal(uv_signal_t *h, int sig)
{
	(void)sig;
	uv_stop(h->loop);
}

int main(int argc, char **argv)
{
	int port = bench_server_args(argc, argv);
	int fd, err;

	signal(SIGPIPE, SIG_IGN);
	bench_raise_nofile();
	loop = uv_default_loop();
	uv_signal_init(loop, &sigint_h);
	uv_signal_init(loop, &sigterm_h);
	uv_signal_start(&sigint_h, on_signal, SIGINT);
	uv_signal_start(&sigterm_h, on_signal, SIGTERM);

	/* The same listening socket as the other servers (SO_REUSEADDR,
	 * backlog 4096), handed to libuv. */
	fd = bench_listen(port, true);
	uv_tcp_init(loop, &listener);
	err = uv_tcp_open(&listener, fd);
	if (err == 0)
		err = uv_listen((uv_stream_t *)&listener, 4096, on_connection);
	if (err != 0) {
		fprintf(stderr, "echo-libuv: listen: %s\n", uv_strerror(err));
		return 1;
	}
	bench_announce(port);
	uv_run(loop, UV_RUN_DEFAULT);

	uv_walk(loop, close_any, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	return 0;
}
