/*
 * nop.c - the cost of one round trip through a completion queue, on one
 * thread, in batches.
 *
 *   nop --impl tacio-post|tacio-timer|liburing|liburing-timeout --batch B --seconds S [--warmup S]
 *
 *   tacio-post   B x tacio_port_post, then tacio_port_dequeue until all B are
 *                back (one call when they are all queued): the closest thing
 *                to a NOP through a tacio port; it need not enter the kernel.
 *   tacio-timer  B x tacio_timer_start(ns = 0), then dequeue all B: a request
 *                that goes through the ring and back (timers are never
 *                batched, so each start enters the kernel).
 *   liburing     B x io_uring_prep_nop, one io_uring_submit_and_wait(B), reap
 *                the B CQEs in one peek: the raw ring, the floor.
 *   liburing-timeout  the same with io_uring_prep_timeout(0 ns) instead of a
 *                NOP: what the kernel alone charges for tacio-timer's request.
 *
 * Prints: ns_per_op=... ops_s=... cpu_pct=... saturated=cpu
 * (cpu_pct is the process' CPU over the window; a one-thread loop with
 * nothing to wait for saturates its CPU, which is what saturated= says.)
 */
#include "bench-util.h"

#include <liburing.h>
#include <tacio/tacio.h>

enum { MAX_BATCH = 256, RING_ENTRIES = 256 };

struct opts {
	const char *impl;
	unsigned batch;
	double seconds, warmup;
};

typedef uint64_t (*round_fn)(void *ctx, unsigned batch); /* returns ops done */

static uint64_t tacio_post_round(void *ctx, unsigned batch)
{
	tacio_port_t *port = ctx;
	tacio_entry_t ents[MAX_BATCH];
	unsigned got = 0, n;
	tacio_status_t st;

	for (unsigned i = 0; i < batch; i++) {
		st = tacio_port_post(port, 7, i, NULL, TACIO_SUCCESS);
		if (st != TACIO_SUCCESS)
			fail("nop: tacio_port_post: %s", tacio_status_name(st));
	}
	while (got < batch) {
		st = tacio_port_dequeue(port, ents, batch - got, &n, TACIO_INFINITE);
		if (st != TACIO_SUCCESS)
			fail("nop: tacio_port_dequeue: %s", tacio_status_name(st));
		got += n;
	}
	return batch;
}

struct timer_ctx {
	tacio_port_t *port;
	tacio_op_t ops[MAX_BATCH];
};

static uint64_t tacio_timer_round(void *ctx, unsigned batch)
{
	struct timer_ctx *t = ctx;
	tacio_entry_t ents[MAX_BATCH];
	unsigned got = 0, n;
	tacio_status_t st;

	for (unsigned i = 0; i < batch; i++) {
		st = tacio_timer_start(t->port, &t->ops[i], 9, 0);
		if (st != TACIO_PENDING)
			fail("nop: tacio_timer_start: %s", tacio_status_name(st));
	}
	while (got < batch) {
		st = tacio_port_dequeue(t->port, ents, batch - got, &n, TACIO_INFINITE);
		if (st != TACIO_SUCCESS)
			fail("nop: tacio_port_dequeue: %s", tacio_status_name(st));
		for (unsigned i = 0; i < n; i++)
			if (ents[i].status != TACIO_SUCCESS)
				fail("nop: timer completed with %s", tacio_status_name(ents[i].status));
		got += n;
	}
	return batch;
}

static bool uring_timeouts;

static uint64_t uring_round(void *ctx, unsigned batch)
{
	static struct __kernel_timespec zero;
	struct io_uring *ring = ctx;
	struct io_uring_cqe *cqes[MAX_BATCH];
	unsigned got = 0;
	int ret;

	for (unsigned i = 0; i < batch; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		if (sqe == NULL)
			fail("nop: io_uring_get_sqe: ring full");
		if (uring_timeouts)
			io_uring_prep_timeout(sqe, &zero, 0, 0);
		else
			io_uring_prep_nop(sqe);
		sqe->user_data = i;
	}
	ret = io_uring_submit_and_wait(ring, batch);
	if (ret < 0)
		fail("nop: io_uring_submit_and_wait: %s", strerror(-ret));
	while (got < batch) {
		unsigned n = io_uring_peek_batch_cqe(ring, cqes, batch - got);

		if (n == 0) {
			struct io_uring_cqe *cqe;

			ret = io_uring_wait_cqe(ring, &cqe);
			if (ret < 0)
				fail("nop: io_uring_wait_cqe: %s", strerror(-ret));
			continue;
		}
		for (unsigned i = 0; i < n; i++)
			if (cqes[i]->res < 0 && !(uring_timeouts && cqes[i]->res == -ETIME))
				fail("nop: request completed with %s", strerror(-cqes[i]->res));
		io_uring_cq_advance(ring, n);
		got += n;
	}
	return batch;
}

/* Runs rounds until end_ns; returns ops. The clock is read once per round
 * (batch 1: once per op, which all implementations pay alike). */
static uint64_t run_until(round_fn fn, void *ctx, unsigned batch, uint64_t end_ns)
{
	uint64_t ops = 0;

	while (now_ns() < end_ns)
		ops += fn(ctx, batch);
	return ops;
}

static struct opts parse(int argc, char **argv)
{
	struct opts o = { .batch = 1, .seconds = 2, .warmup = 0.3 };

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--impl") == 0)
			o.impl = argv[i + 1];
		else if (strcmp(argv[i], "--batch") == 0)
			o.batch = (unsigned)arg_num("--batch", argv[i + 1], 1, MAX_BATCH);
		else if (strcmp(argv[i], "--seconds") == 0)
			o.seconds = arg_num("--seconds", argv[i + 1], 0.01, 3600);
		else if (strcmp(argv[i], "--warmup") == 0)
			o.warmup = arg_num("--warmup", argv[i + 1], 0, 3600);
		else
			fail("nop: unknown option %s", argv[i]);
	}
	if (o.impl == NULL || argc % 2 == 0)
		fail("usage: nop --impl tacio-post|tacio-timer|liburing|liburing-timeout --batch B --seconds S [--warmup S]");
	return o;
}

int main(int argc, char **argv)
{
	struct opts o = parse(argc, argv);
	static struct timer_ctx tctx;
	static struct io_uring ring;
	tacio_port_t *port = NULL;
	round_fn fn;
	void *ctx;
	uint64_t t0, t1, ops;
	double c0, c1, secs;
	tacio_status_t st;

	if (strcmp(o.impl, "liburing") == 0 || strcmp(o.impl, "liburing-timeout") == 0) {
		int ret = io_uring_queue_init(RING_ENTRIES, &ring, 0);

		if (ret < 0)
			fail("nop: io_uring_queue_init: %s", strerror(-ret));
		uring_timeouts = o.impl[8] != '\0';
		fn = uring_round;
		ctx = &ring;
	} else if (strcmp(o.impl, "tacio-post") == 0 || strcmp(o.impl, "tacio-timer") == 0) {
		st = tacio_port_create(&port, 1);
		if (st != TACIO_SUCCESS)
			fail("nop: tacio_port_create: %s %s", tacio_status_name(st), tacio_last_error());
		if (o.impl[6] == 'p') {
			fn = tacio_post_round;
			ctx = port;
		} else {
			tctx.port = port;
			fn = tacio_timer_round;
			ctx = &tctx;
		}
	} else {
		fail("nop: unknown --impl %s", o.impl);
		return 1;
	}

	run_until(fn, ctx, o.batch, now_ns() + (uint64_t)(o.warmup * 1e9));
	c0 = cpu_seconds_process();
	t0 = now_ns();
	ops = run_until(fn, ctx, o.batch, t0 + (uint64_t)(o.seconds * 1e9));
	t1 = now_ns();
	c1 = cpu_seconds_process();
	secs = (double)(t1 - t0) / 1e9;

	printf("ns_per_op=%.2f ops_s=%.0f cpu_pct=%.1f saturated=cpu\n",
	       (double)(t1 - t0) / (double)ops, (double)ops / secs, (c1 - c0) * 100 / secs);
	fflush(stdout);

	if (port != NULL) {
		tacio_stats_t s;

		if (tacio_port_stats(port, &s) == TACIO_SUCCESS)
			fprintf(stderr, "nop %s: completions=%llu posted=%llu\n", o.impl,
				(unsigned long long)s.completions, (unsigned long long)s.posted);
		tacio_port_close(port, NULL, NULL);
	} else {
		io_uring_queue_exit(&ring);
	}
	return 0;
}
