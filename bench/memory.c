/*
 * memory.c - bytes of tacio state per pending operation.
 *
 *   memory --shape udp|queued [--count 100000] [--per-handle K] [--buf B]
 *          [--teardown 0|1]
 *
 *   udp     count receives pending across as many UDP sockets as the fd
 *           limit allows (RLIMIT_NOFILE is raised to count + 1024 first; as
 *           root the hard limit too), round-robin: on datagram sockets every
 *           receive goes to the kernel, so every one holds a slot.
 *   queued  count receives on count / K Unix stream socketpairs, K (100) per
 *           handle: one per handle is in the kernel, the other K - 1 wait in
 *           the handle's queue (tacio keeps one receive per stream in the
 *           kernel to keep byte order).
 *
 * What is counted. Everything the caller allocates (the tacio_op_t records,
 * the receive buffers) and the sockets and handles are created and touched
 * before the baseline is taken, so the delta is what tacio adds in this
 * process when count operations are started and left pending:
 *   bytes_per_op       resident set delta (/proc/self/statm) / count: slots,
 *                      queue nodes, anything tacio allocates or touches,
 *                      including ring pages it touches
 *   heap_bytes_per_op  malloc'ed bytes delta (mallinfo2) / count
 *   handle_bytes       resident set delta per handle of tacio_handle_open
 *                      (not part of the per-op figure)
 *   caller_bytes_per_op  what the caller itself holds per op (record + buffer)
 *   kernel_slab_bytes_per_op  machine-wide Slab delta (/proc/meminfo) / count:
 *                      the kernel's side (io_uring requests, poll entries);
 *                      not tacio state and not in the target, shown for scale
 * Prints those and count=, handles=, in_kernel=. --teardown 1 then closes
 * every handle and the port and says on stderr how long that took.
 */
#include "bench-util.h"

#include <malloc.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <tacio/tacio.h>
#include <unistd.h>

struct snap {
	uint64_t rss, heap, slab;
};

static struct snap snapshot(void)
{
	struct snap s = { 0 };
	unsigned long size = 0, res = 0;
	struct mallinfo2 mi = mallinfo2();
	char line[256];
	FILE *f;

	f = fopen("/proc/self/statm", "r");
	if (f == NULL || fscanf(f, "%lu %lu", &size, &res) != 2)
		fail("memory: cannot read /proc/self/statm");
	fclose(f);
	s.rss = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
	s.heap = mi.uordblks + mi.hblkhd;
	f = fopen("/proc/meminfo", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned long long kb;

			if (sscanf(line, "Slab: %llu kB", &kb) == 1)
				s.slab = kb * 1024;
		}
		fclose(f);
	}
	return s;
}

/* The kernel frees a dead ring's requests in the background, so the Slab
 * figure of a run that follows another moves on its own for a while: wait
 * (up to 5 s) until it holds still within 1 MiB over 200 ms. */
static void settle_slab(void)
{
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };
	uint64_t prev = snapshot().slab;

	for (int i = 0; i < 25; i++) {
		uint64_t cur;

		nanosleep(&pause, NULL);
		cur = snapshot().slab;
		if ((cur > prev ? cur - prev : prev - cur) < (1u << 20))
			return;
		prev = cur;
	}
}

static void raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want; /* works as root (CAP_SYS_RESOURCE), up to fs.nr_open */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static uint64_t nofile(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
}

static double per(uint64_t after, uint64_t before, uint64_t n)
{
	return ((double)after - (double)before) / (double)n;
}

int main(int argc, char **argv)
{
	const char *shape = NULL;
	unsigned count = 100000, per_handle = 100, buflen = 64, handles, in_kernel;
	tacio_handle_t **hs;
	tacio_op_t *ops;
	unsigned char *bufs;
	int *peers = NULL;
	tacio_port_t *port;
	struct snap s0, s1, s2;
	tacio_status_t st;
	bool udp, teardown = false;
	uint64_t t0, t1;

	if (argc % 2 == 0)
		fail("memory: see the file comment for usage");
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--shape") == 0)
			shape = v;
		else if (strcmp(k, "--count") == 0)
			count = (unsigned)arg_num(k, v, 1, 1e7);
		else if (strcmp(k, "--per-handle") == 0)
			per_handle = (unsigned)arg_num(k, v, 1, 1e7);
		else if (strcmp(k, "--buf") == 0)
			buflen = (unsigned)arg_num(k, v, 1, 1 << 20);
		else if (strcmp(k, "--teardown") == 0)
			teardown = arg_num(k, v, 0, 1) != 0;
		else
			fail("memory: unknown option %s", k);
	}
	if (shape == NULL || (strcmp(shape, "udp") != 0 && strcmp(shape, "queued") != 0))
		fail("memory: --shape udp|queued is required");
	udp = strcmp(shape, "udp") == 0;

	if (udp) {
		raise_nofile((uint64_t)count + 1024);
		handles = nofile() > 1024 ? (unsigned)(nofile() - 1024) : 1;
		if (handles > count)
			handles = count;
		in_kernel = count;
	} else {
		handles = (count + per_handle - 1) / per_handle;
		raise_nofile(2 * (uint64_t)handles + 1024);
		if (nofile() < 2 * (uint64_t)handles + 64)
			fail("memory: fd limit %llu too low for %u socketpairs",
			     (unsigned long long)nofile(), handles);
		in_kernel = handles;
	}

	/* The caller's own memory, allocated and touched before any baseline. */
	ops = calloc(count, sizeof(*ops));
	bufs = calloc(count, buflen);
	hs = calloc(handles, sizeof(*hs));
	if (!udp)
		peers = calloc(handles, sizeof(*peers));
	if (ops == NULL || bufs == NULL || hs == NULL || (!udp && peers == NULL))
		fail("memory: out of memory");
	memset(ops, 0, (size_t)count * sizeof(*ops));
	memset(bufs, 1, (size_t)count * buflen);

	st = tacio_port_create(&port, 1);
	if (st != TACIO_SUCCESS)
		fail("memory: tacio_port_create: %s %s", tacio_status_name(st), tacio_last_error());

	int *fds = calloc(handles, sizeof(*fds));

	if (fds == NULL)
		fail("memory: out of memory");
	for (unsigned i = 0; i < handles; i++) {
		if (udp) {
			fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		} else {
			int sv[2];

			fds[i] = -1;
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
				fds[i] = sv[0];
				peers[i] = sv[1];
			}
		}
		if (fds[i] < 0)
			fail("memory: socket %u of %u: %s", i + 1, handles, strerror(errno));
	}

	settle_slab();
	s0 = snapshot();
	for (unsigned i = 0; i < handles; i++) {
		st = tacio_handle_open(port, fds[i], i, 0, &hs[i]);
		if (st != TACIO_SUCCESS)
			fail("memory: tacio_handle_open %u: %s %s", i, tacio_status_name(st),
			     tacio_last_error());
	}
	s1 = snapshot();
	for (unsigned i = 0; i < count; i++) {
		tacio_handle_t *h = udp ? hs[i % handles] : hs[i / per_handle];

		st = tacio_recv(h, &ops[i], bufs + (size_t)i * buflen, buflen);
		if (st != TACIO_PENDING)
			fail("memory: receive %u of %u returned %s, not PENDING", i + 1, count,
			     tacio_status_name(st));
	}
	s2 = snapshot();

	printf("bytes_per_op=%.1f heap_bytes_per_op=%.1f handle_bytes=%.1f caller_bytes_per_op=%u"
	       " kernel_slab_bytes_per_op=%.0f count=%u handles=%u in_kernel=%u saturated=n/a\n",
	       per(s2.rss, s1.rss, count), per(s2.heap, s1.heap, count),
	       per(s1.rss, s0.rss, handles), (unsigned)sizeof(tacio_op_t) + buflen,
	       per(s2.slab, s1.slab, count), count, handles, in_kernel);
	fflush(stdout);

	/* Tidy teardown only on request: closing the handles costs time
	 * quadratic in the pending count here (each close's cancel-by-fd is a
	 * walk over every pending request: about 5 s for 20,000 and 8 minutes
	 * for 100,000 on this kernel). Exiting lets the kernel tear the ring
	 * down in one pass; nothing of the caller's is freed before that. */
	if (!teardown)
		return 0;
	t0 = now_ns();
	for (unsigned i = 0; i < handles; i++)
		tacio_handle_close(hs[i]);
	t1 = now_ns();
	st = tacio_port_close(port, NULL, NULL);
	if (st != TACIO_SUCCESS)
		fail("memory: tacio_port_close: %s", tacio_status_name(st));
	fprintf(stderr, "memory %s: teardown of %u pending receives: handle closes %.2f s, port close %.2f s\n", shape, count,
		(double)(t1 - t0) / 1e9, (double)(now_ns() - t1) / 1e9);
	for (unsigned i = 0; !udp && i < handles; i++)
		close(peers[i]);
	return 0;
}
