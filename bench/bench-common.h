/*
 * bench-common.h - the few helpers every bench program shares: command-line
 * port parsing, the loopback listener, stop-on-signal and the fd limit.
 *
 * Header-only and static so each bench program stays one translation unit;
 * nothing here is on a hot path.
 */
#ifndef TACIO_BENCH_COMMON_H
#define TACIO_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Set by the SIGINT/SIGTERM handler, read by the event loop. A lock-free
 * atomic is async-signal-safe; relaxed is enough because the flag publishes
 * no other data. */
static atomic_bool bench_stop;

static void bench_on_signal(int sig)
{
	(void)sig;
	atomic_store_explicit(&bench_stop, true, memory_order_relaxed);
}

static inline bool bench_stopping(void)
{
	return atomic_load_explicit(&bench_stop, memory_order_relaxed);
}

/* No SA_RESTART: a blocking epoll_wait / io_uring_enter must return EINTR so
 * the loop sees the flag. SIGPIPE is ignored; sends also pass MSG_NOSIGNAL. */
static inline void bench_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Raise the soft fd limit to the hard one; returns the resulting soft limit. */
static inline rlim_t bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/* Parse "1".."65535"; returns 0 on anything else. */
static inline int bench_parse_port(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 1 || v > 65535)
		return 0;
	return (int)v;
}

/* The servers' one command line: "NAME --port P". Exits with usage on error. */
static inline int bench_server_args(int argc, char **argv)
{
	int port = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") != 0 || i + 1 >= argc) {
			port = 0;
			break;
		}
		port = bench_parse_port(argv[++i]);
	}
	if (port == 0) {
		fprintf(stderr, "usage: %s --port P\n", argv[0]);
		exit(2);
	}
	return port;
}

/* A listening TCP socket on 127.0.0.1:port with SO_REUSEADDR; exits on error.
 * nonblock: make the listener O_NONBLOCK (the epoll server accepts until
 * EAGAIN). */
static inline int bench_listen(int port, bool nonblock)
{
	struct sockaddr_in sin;
	int one = 1;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		fprintf(stderr, "bind 127.0.0.1:%d: %s\n", port, strerror(errno));
		exit(1);
	}
	if (listen(fd, 4096) != 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

/* The readiness line the bench runner waits for. */
static inline void bench_announce(int port)
{
	printf("listening on 127.0.0.1:%d\n", port);
	fflush(stdout);
}

/* Every server and the client disable Nagle alike, so no side waits for a
 * delayed ACK on a partial write. */
static inline void bench_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

#endif
