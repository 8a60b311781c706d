/*
 * echo-load.c - ping-pong load generator for the echo servers.
 *
 *   echo-load --port P --conns N --size BYTES --seconds S
 *             [--warmup S] [--server-pid PID]
 *
 * N connections to 127.0.0.1:P driven by one thread with epoll. Each
 * connection sends SIZE bytes, waits until all SIZE have come back (checking
 * every byte), and starts again at once. After the warm-up (default 1 s) it
 * counts round trips for S seconds and prints one line:
 *
 *   rps=... p50_us=... p99_us=... server_cpu_s=... cpu_us_per_rt=... client_cpu_pct=...
 *
 * server_cpu_s is the server's utime+stime (all its threads, from
 * /proc/PID/stat) over the measured window; it and cpu_us_per_rt are "nan"
 * without --server-pid. client_cpu_pct is this process' CPU (getrusage)
 * over the window, 100 = one CPU busy. Exit status 1, with a message on
 * stderr, on any connect, protocol or I/O error.
 */
#include "bench-common.h"
#include "bench-util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

enum {
	MAX_EVENTS = 1024,
	PATTERN_PERIOD = 251, /* prime: every round's shift gives other bytes */
	CONNECT_TIMEOUT_MS = 5000,
	STALL_SECONDS = 5, /* without any round trip: give up */
};

struct options {
	int port;
	unsigned conns;
	size_t size;
	double seconds;
	double warmup;
	long server_pid; /* 0: none */
};

struct conn {
	int fd;
	size_t sent, got;
	unsigned shift; /* pattern offset of the round in flight */
	uint64_t t0;    /* when the round in flight started */
	bool want_out;  /* EPOLLOUT registered: a send was short */
	unsigned char *rbuf;
};

struct load {
	struct options opt;
	int ep;
	struct conn *conns;
	unsigned char *pattern; /* size + PATTERN_PERIOD bytes */
	uint64_t rts;           /* round trips completed in the current phase */
	struct hist hist;       /* their latencies (bench-util.h) */
};

static void die(const char *fmt, const char *arg, int err)
{
	fprintf(stderr, "echo-load: ");
	fprintf(stderr, fmt, arg);
	if (err != 0)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static double cpu_seconds_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime of the whole process, from /proc/PID/stat fields 14, 15. */
static double cpu_seconds_pid(long pid)
{
	char path[64], buf[1024];
	unsigned long long v[13] = { 0 };
	char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot read %s", path, errno);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		die("cannot read %s", path, n < 0 ? errno : 0);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (p == NULL)
		die("cannot parse %s", path, 0);
	p++;
	/* After ")" come field 3 (state) ... ; utime is field 14. */
	while (*p == ' ')
		p++;
	p = strchr(p, ' '); /* skip state */
	for (int i = 0; p != NULL && i < 13; i++)
		v[i] = strtoull(p, &p, 10);
	return (double)(v[10] + v[11]) / (double)sysconf(_SC_CLK_TCK);
}

static void send_rest(struct load *l, struct conn *c)
{
	const unsigned char *src = l->pattern + c->shift;

	while (c->sent < l->opt.size) {
		ssize_t n = send(c->fd, src + c->sent, l->opt.size - c->sent, MSG_NOSIGNAL);

		if (n > 0) {
			c->sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

			if (!c->want_out && epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
				die("%s", "epoll_ctl", errno);
			c->want_out = true;
			return;
		}
		die("%s", "send", n < 0 ? errno : 0);
	}
	if (c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
			die("%s", "epoll_ctl", errno);
		c->want_out = false;
	}
}

static void start_round(struct load *l, struct conn *c, uint64_t now)
{
	c->t0 = now;
	c->sent = 0;
	c->got = 0;
	c->shift = (c->shift + 1) % PATTERN_PERIOD;
	send_rest(l, c);
}

static void on_readable(struct load *l, struct conn *c)
{
	ssize_t n = recv(c->fd, c->rbuf + c->got, l->opt.size - c->got, 0);
	uint64_t now;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		die("%s", "recv from server", errno);
	if (n == 0)
		die("%s", "server closed a connection", 0);
	c->got += (size_t)n;
	if (c->got > c->sent)
		die("%s", "server sent bytes that were never sent to it", 0);
	if (c->got < l->opt.size)
		return;
	if (memcmp(c->rbuf, l->pattern + c->shift, l->opt.size) != 0)
		die("%s", "echoed bytes differ from the bytes sent", 0);
	now = now_ns();
	hist_add(&l->hist, now - c->t0);
	l->rts++;
	start_round(l, c, now);
}

static int connect_one(const struct options *o, unsigned i)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char what[64];
	struct pollfd pfd;
	int fd, err = 0;
	socklen_t len = sizeof(err);

	snprintf(what, sizeof(what), "127.0.0.1:%d (connection %u of %u)",
		 o->port, i + 1, o->conns);
	sin.sin_port = htons((uint16_t)o->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket for %s", what, errno);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 && errno != EINPROGRESS)
		die("connect to %s", what, errno);
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) != 1)
		die("connect to %s: timed out", what, 0);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
		die("connect to %s", what, err);
	bench_nodelay(fd);
	return fd;
}

static void setup(struct load *l)
{
	size_t plen = l->opt.size + PATTERN_PERIOD;
	rlim_t lim = bench_raise_nofile();

	if (lim < (rlim_t)l->opt.conns + 16) {
		fprintf(stderr, "echo-load: fd limit %llu is too low for %u connections"
			" (raise ulimit -n)\n", (unsigned long long)lim, l->opt.conns);
		exit(1);
	}
	l->pattern = malloc(plen);
	l->conns = calloc(l->opt.conns, sizeof(*l->conns));
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->pattern == NULL || l->conns == NULL || l->ep < 0)
		die("%s", "setup", errno);
	for (size_t i = 0; i < plen; i++)
		l->pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
	for (unsigned i = 0; i < l->opt.conns; i++) {
		struct conn *c = &l->conns[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		c->fd = connect_one(&l->opt, i);
		c->shift = i % PATTERN_PERIOD;
		c->rbuf = malloc(l->opt.size);
		if (c->rbuf == NULL)
			die("%s", "malloc", errno);
		if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
			die("%s", "epoll_ctl", errno);
	}
}

/* Runs the event loop until the monotonic clock reaches end_ns. */
static void run_until(struct load *l, uint64_t end_ns)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t last_rts = l->rts, last_progress = now_ns(), now;

	while ((now = now_ns()) < end_ns) {
		int n = epoll_wait(l->ep, evs, MAX_EVENTS, 100);

		if (n < 0 && errno != EINTR)
			die("%s", "epoll_wait", errno);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (evs[i].events & EPOLLOUT)
				send_rest(l, c);
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(l, c);
		}
		if (l->rts != last_rts) {
			last_rts = l->rts;
			last_progress = now;
		} else if (now - last_progress > (uint64_t)STALL_SECONDS * 1000000000u) {
			die("%s", "no round trip completed for 5 s: server stalled", 0);
		}
		if (bench_stopping())
			die("%s", "interrupted", 0);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: echo-load --port P --conns N --size BYTES --seconds S"
			" [--warmup S] [--server-pid PID]\n");
	exit(2);
}

static double parse_num(const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static struct options parse_args(int argc, char **argv)
{
	struct options o = { .warmup = 1.0 };

	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(k, "--port") == 0)
			o.port = bench_parse_port(v);
		else if (strcmp(k, "--conns") == 0)
			o.conns = (unsigned)parse_num(v, 1, 1000000);
		else if (strcmp(k, "--size") == 0)
			o.size = (size_t)parse_num(v, 1, 1 << 30);
		else if (strcmp(k, "--seconds") == 0)
			o.seconds = parse_num(v, 0.001, 86400);
		else if (strcmp(k, "--warmup") == 0)
			o.warmup = parse_num(v, 0, 86400);
		else if (strcmp(k, "--server-pid") == 0)
			o.server_pid = (long)parse_num(v, 1, 1 << 30);
		else
			usage();
	}
	if (o.port == 0 || o.conns == 0 || o.size == 0 || o.seconds <= 0)
		usage();
	return o;
}

int main(int argc, char **argv)
{
	static struct load l;
	double cpu0, cpu1, srv0 = 0, srv1 = 0, secs, rps;
	uint64_t t0, t1;
	char srv_s[32] = "nan", per_rt[32] = "nan";

	l.opt = parse_args(argc, argv);
	bench_install_signals();
	if (l.opt.server_pid != 0)
		(void)cpu_seconds_pid(l.opt.server_pid); /* fail before connecting */
	setup(&l);

	t0 = now_ns();
	for (unsigned i = 0; i < l.opt.conns; i++)
		start_round(&l, &l.conns[i], t0);
	run_until(&l, t0 + (uint64_t)(l.opt.warmup * 1e9));

	/* The measured window: everything counted afresh from here. */
	memset(&l.hist, 0, sizeof(l.hist));
	l.rts = 0;
	cpu0 = cpu_seconds_self();
	if (l.opt.server_pid != 0)
		srv0 = cpu_seconds_pid(l.opt.server_pid);
	t0 = now_ns();
	run_until(&l, t0 + (uint64_t)(l.opt.seconds * 1e9));
	t1 = now_ns();
	cpu1 = cpu_seconds_self();
	if (l.opt.server_pid != 0)
		srv1 = cpu_seconds_pid(l.opt.server_pid);

	if (l.rts == 0)
		die("%s", "no round trip completed in the measured window", 0);
	secs = (double)(t1 - t0) / 1e9;
	rps = (double)l.rts / secs;
	if (l.opt.server_pid != 0) {
		snprintf(srv_s, sizeof(srv_s), "%.3f", srv1 - srv0);
		snprintf(per_rt, sizeof(per_rt), "%.3f", (srv1 - srv0) * 1e6 / (double)l.rts);
	}
	printf("rps=%.0f p50_us=%.1f p99_us=%.1f server_cpu_s=%s cpu_us_per_rt=%s"
	       " client_cpu_pct=%.1f\n",
	       rps, hist_percentile(&l.hist, 0.50) / 1e3, hist_percentile(&l.hist, 0.99) / 1e3,
	       srv_s, per_rt, (cpu1 - cpu0) * 100.0 / secs);
	fflush(stdout);
	return 0;
}
