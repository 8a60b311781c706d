/*
 * bench-util.h - what the micro-benchmarks (nop, handoff, files, memory)
 * share: clocks, CPU time, thread pinning, a latency histogram, option
 * parsing and the one result line that bench/run-all.sh reads.
 *
 * The result line is "key=value key=value ...\n" on stdout, nothing else on
 * stdout; run-all.sh knows the benchmark, case and implementation from the
 * arguments it passed and records every pair as one CSV row. Diagnostics go
 * to stderr. Exit status 1 on any failure, 77 when the case cannot run here
 * (for example O_DIRECT refused by the filesystem).
 *
 * Header-only and static, like bench-common.h; nothing here is on a hot path
 * except now_ns() and hist_add(), which every implementation pays alike.
 */
#ifndef TACIO_BENCH_UTIL_H
#define TACIO_BENCH_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_EXIT_SKIP 77

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double cpu_seconds_process(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static inline double cpu_seconds_clock(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double cpu_seconds_thread(void)
{
	return cpu_seconds_clock(CLOCK_THREAD_CPUTIME_ID);
}

/* Pin the calling thread to one CPU; cpu < 0 leaves it unpinned. A failure
 * (the CPU is not in our allowed set) is reported and the thread runs
 * unpinned: the numbers are still valid, only noisier. */
static inline void pin_self(int cpu)
{
	cpu_set_t set;
	int err;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err != 0)
		fprintf(stderr, "warning: cannot pin a thread to CPU %d: %s\n", cpu, strerror(err));
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline double arg_num(const char *name, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max)
		fail("bad value for %s: '%s' (want %g..%g)", name, s, min, max);
	return v;
}

/* Log-linear histogram over nanoseconds: 64 sub-buckets per power of two, so
 * a percentile is within 1/64 (1.6%) of the true value (the same scheme as
 * echo-load.c). */
enum {
	HIST_SUB_BITS = 6,
	HIST_SUB = 1 << HIST_SUB_BITS,
	HIST_BUCKETS = 64 * HIST_SUB,
};

struct hist {
	uint64_t n;
	uint64_t b[HIST_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	unsigned shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned)(v >> shift) - HIST_SUB;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
}

static inline void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
}

/* Middle of the bucket's range, in nanoseconds. */
static inline double hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < 2 * HIST_SUB)
		return idx;
	shift = idx / HIST_SUB - 1;
	return (double)(((uint64_t)(idx % HIST_SUB + HIST_SUB) << shift) +
			((uint64_t)1 << shift) / 2);
}

static inline double hist_percentile(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p * (double)h->n + 0.5);
	uint64_t seen = 0;

	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return hist_value(i);
	}
	return 0;
}

/* xorshift64*: the offsets generator of files.c; cheap and good enough to
 * spread 4 KiB reads uniformly. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif
