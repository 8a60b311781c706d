/*
 * files.c - 4 KiB random reads at queue depth 32 through tacio, and the
 * chores around the data file that bench/run-all.sh also uses for fio.
 *
 *   files --create PATH --size-mb M    make PATH (M MiB of pseudo-random
 *                                      bytes, written and fdatasync'ed, no
 *                                      holes); an existing file of that size
 *                                      with all its blocks is kept
 *   files --preread PATH               read PATH once so it is in the page cache
 *   files --probe-direct PATH          exit 0 if an O_DIRECT 4 KiB read works,
 *                                      77 if the filesystem refuses O_DIRECT
 *   files --file PATH --mode cached|direct [--qd 32] [--bs 4096]
 *         [--seconds S] [--warmup S]
 *
 * The measuring form: one thread, one port, one handle; qd reads in flight,
 * each one restarted at a new random block-aligned offset as it completes
 * (tacio_port_dequeue takes up to qd entries at a time, and the restarts of
 * one batch go to the kernel together with the next dequeue). cached
 * pre-reads the file first; direct opens it O_DIRECT with aligned buffers.
 *
 * Prints: iops=... cpu_pct=... cpu_us_per_io=... saturated=cpu|device
 * (cpu_pct: this process, io_uring's worker threads included, over the
 * window; cpu when above 90% of one CPU.)
 */
#include "bench-util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <tacio/tacio.h>
#include <unistd.h>

enum { CHUNK = 1 << 20, MAX_QD = 1024 };

static void create_file(const char *path, uint64_t size_mb)
{
	uint64_t size = size_mb << 20, seed = 0x9E3779B97F4A7C15ull, done = 0;
	char tmp[4096];
	struct stat st;
	uint64_t *buf;
	int fd;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size == size &&
	    (uint64_t)st.st_blocks * 512 >= size) {
		fprintf(stderr, "files: %s: %llu MiB of data already there, kept\n", path,
			(unsigned long long)size_mb);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	buf = malloc(CHUNK);
	if (fd < 0 || buf == NULL)
		fail("files: create %s: %s", tmp, strerror(errno));
	while (done < size) {
		size_t off = 0;

		for (size_t i = 0; i < CHUNK / sizeof(*buf); i++)
			buf[i] = rng_next(&seed);
		while (off < CHUNK) {
			ssize_t n = write(fd, (char *)buf + off, CHUNK - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				fail("files: write %s: %s", tmp, n < 0 ? strerror(errno) : "short");
			off += (size_t)n;
		}
		done += CHUNK;
	}
	if (fdatasync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0)
		fail("files: finish %s: %s", path, strerror(errno));
	free(buf);
	fprintf(stderr, "files: wrote %s (%llu MiB)\n", path, (unsigned long long)size_mb);
}

static void preread(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = malloc(CHUNK);
	ssize_t n;

	if (fd < 0 || buf == NULL)
		fail("files: open %s: %s", path, strerror(errno));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	while ((n = read(fd, buf, CHUNK)) > 0)
		;
	if (n < 0)
		fail("files: read %s: %s", path, strerror(errno));
	close(fd);
	free(buf);
}

static int probe_direct(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	void *buf = NULL;
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "files: O_DIRECT open of %s: %s\n", path, strerror(errno));
		return errno == EINVAL ? BENCH_EXIT_SKIP : 1;
	}
	if (posix_memalign(&buf, 4096, 4096) != 0)
		fail("files: out of memory");
	n = pread(fd, buf, 4096, 0);
	close(fd);
	free(buf);
	if (n == 4096)
		return 0;
	fprintf(stderr, "files: O_DIRECT read of %s: %s\n", path, n < 0 ? strerror(errno) : "short");
	return n < 0 && errno == EINVAL ? BENCH_EXIT_SKIP : 1;
}

struct req {
	tacio_op_t op;
	unsigned char *buf;
};

struct run {
	tacio_handle_t *h;
	unsigned bs;
	uint64_t nblocks, rng;
	uint64_t ios;
	unsigned inflight;
};

static void check(const struct run *r, tacio_status_t st, uint64_t bytes)
{
	if (st != TACIO_SUCCESS || bytes != r->bs)
		fail("files: read ended with %s, %llu bytes", tacio_status_name(st),
		     (unsigned long long)bytes);
}

/* Start one read; a synchronous completion (allowed by the contract, not
 * expected for files) is counted and the record started again. */
static void start(struct run *r, struct req *q)
{
	for (;;) {
		uint64_t off = (rng_next(&r->rng) % r->nblocks) * r->bs;
		tacio_status_t st = tacio_read(r->h, &q->op, q->buf, r->bs, off);

		if (st == TACIO_PENDING)
			return;
		check(r, st, q->op.bytes);
		r->ios++;
	}
}

/* Reap and restart until end_ns; with stop, let the in-flight ones finish. */
static void run_until(tacio_port_t *port, struct run *r, uint64_t end_ns, bool stop)
{
	tacio_entry_t ents[MAX_QD];

	while (stop ? r->inflight > 0 : now_ns() < end_ns) {
		unsigned n;
		tacio_status_t st = tacio_port_dequeue(port, ents, MAX_QD, &n, 5000);

		if (st != TACIO_SUCCESS)
			fail("files: tacio_port_dequeue: %s (nothing for 5 s?)", tacio_status_name(st));
		for (unsigned i = 0; i < n; i++) {
			struct req *q = tacio_container_of(ents[i].op, struct req, op);

			check(r, ents[i].status, ents[i].bytes);
			r->ios++;
			if (stop)
				r->inflight--;
			else
				start(r, q);
		}
	}
}

static int measure(const char *path, bool direct, unsigned qd, unsigned bs, double seconds,
		   double warmup)
{
	tacio_port_options_t po = { .concurrency = 1, .queue_depth = 2 * qd };
	struct run r = { .bs = bs, .rng = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid() };
	static struct req reqs[MAX_QD];
	tacio_port_t *port;
	unsigned char *bufs = NULL;
	uint64_t t0, t1, ios0;
	double c0, c1, secs, cpu;
	tacio_status_t st;
	struct stat sb;
	int fd;

	if (direct && probe_direct(path) != 0)
		return BENCH_EXIT_SKIP;
	if (!direct)
		preread(path);
	fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0 || fstat(fd, &sb) != 0)
		fail("files: open %s: %s", path, strerror(errno));
	r.nblocks = (uint64_t)sb.st_size / bs;
	if (r.nblocks == 0)
		fail("files: %s is smaller than one block", path);
	if (posix_memalign((void **)&bufs, 4096, (size_t)qd * bs) != 0)
		fail("files: out of memory");
	memset(bufs, 0, (size_t)qd * bs);
	st = tacio_port_create_ex(&port, &po);
	if (st != TACIO_SUCCESS)
		fail("files: tacio_port_create_ex: %s %s", tacio_status_name(st), tacio_last_error());
	st = tacio_handle_open(port, fd, 1, 0, &r.h);
	if (st != TACIO_SUCCESS)
		fail("files: tacio_handle_open: %s %s", tacio_status_name(st), tacio_last_error());

	for (unsigned i = 0; i < qd; i++) {
		reqs[i].buf = bufs + (size_t)i * bs;
		start(&r, &reqs[i]);
	}
	r.inflight = qd;
	run_until(port, &r, now_ns() + (uint64_t)(warmup * 1e9), false);
	ios0 = r.ios;
	c0 = cpu_seconds_process();
	t0 = now_ns();
	run_until(port, &r, t0 + (uint64_t)(seconds * 1e9), false);
	t1 = now_ns();
	c1 = cpu_seconds_process();
	secs = (double)(t1 - t0) / 1e9;
	cpu = c1 - c0;
	printf("iops=%.0f cpu_pct=%.1f cpu_us_per_io=%.3f saturated=%s\n",
	       (double)(r.ios - ios0) / secs, cpu * 100 / secs,
	       cpu * 1e6 / (double)(r.ios - ios0), cpu / secs > 0.9 ? "cpu" : "device");
	fflush(stdout);
	run_until(port, &r, 0, true);
	tacio_handle_close(r.h);
	tacio_port_close(port, NULL, NULL);
	free(bufs);
	return 0;
}

int main(int argc, char **argv)
{
	const char *file = NULL, *mode = "cached";
	unsigned qd = 32, bs = 4096;
	double seconds = 5, warmup = 1;

	if (argc == 3 && strcmp(argv[1], "--preread") == 0) {
		preread(argv[2]);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--probe-direct") == 0)
		return probe_direct(argv[2]);
	if (argc == 5 && strcmp(argv[1], "--create") == 0 && strcmp(argv[3], "--size-mb") == 0) {
		create_file(argv[2], (uint64_t)arg_num("--size-mb", argv[4], 1, 1 << 20));
		return 0;
	}
	if (argc % 2 == 0)
		fail("files: see the file comment for usage");
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--file") == 0)
			file = v;
		else if (strcmp(k, "--mode") == 0)
			mode = v;
		else if (strcmp(k, "--qd") == 0)
			qd = (unsigned)arg_num(k, v, 1, MAX_QD);
		else if (strcmp(k, "--bs") == 0)
			bs = (unsigned)arg_num(k, v, 512, 1 << 24);
		else if (strcmp(k, "--seconds") == 0)
			seconds = arg_num(k, v, 0.01, 3600);
		else if (strcmp(k, "--warmup") == 0)
			warmup = arg_num(k, v, 0, 3600);
		else
			fail("files: unknown option %s", k);
	}
	if (file == NULL || (strcmp(mode, "cached") != 0 && strcmp(mode, "direct") != 0))
		fail("files: --file PATH and --mode cached|direct are required");
	if (bs % 512 != 0)
		fail("files: --bs must be a multiple of 512");
	return measure(file, strcmp(mode, "direct") == 0, qd, bs, seconds, warmup);
}
