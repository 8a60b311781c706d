/*
 * handoff.c - hand-off of posted packets from one producer thread to N
 * consumer threads: tacio's port against a mutex+condvar queue and libuv's
 * thread pool, one implementation per run.
 *
 *   handoff --impl tacio|pool|pool-work|mutex-cv|libuv --consumers N --seconds S
 *           [--warmup S] [--samples K] [--gap-us G] [--window W]
 *           [--pin-producer CPU] [--pin-consumers CPU]
 *
 * Every packet carries its post time: tacio in the packet's bytes field, the
 * others in the item. Two phases:
 *
 *   flood   the producer posts as fast as it can with at most W (1024)
 *           packets not yet taken by a consumer (it spins, yielding, while
 *           the window is full); ops_s = packets taken per second.
 *   paced   K (2000) packets one at a time: post, wait until a consumer has
 *           taken it, sleep G (200) us so every consumer is asleep again;
 *           p50_us / p99_us = post -> consumer has it, i.e. the wake-up
 *           latency of a blocked consumer.
 *
 * What "taken" means for each:
 *   tacio     tacio_port_dequeue returned it (consumers dequeue up to 64 per
 *             call, the GetQueuedCompletionStatusEx idiom); port concurrency
 *             = N.
 *   pool      its callback started: tacio_pool_submit(pool, fn, ctx) from
 *             the producer, fn running on a pool thread (tacio_pool_t with
 *             min = max = concurrency = N threads). The post time and the
 *             phase travel in ctx itself (no allocation), as tacio's travel in
 *             the packet.
 *   pool-work the same through one work object (tacio_pool_work_submit,
 *             the SubmitThreadpoolWork idiom); a work run carries no data,
 *             so the post time is a global (one packet at a time in the
 *             paced phase, where it is read).
 *   mutex-cv  popped under the lock (a bounded ring; consumers pop up to 64
 *             per lock round, the producer signals only when someone waits).
 *   libuv     its work callback started (uv_queue_work from the loop thread,
 *             UV_THREADPOOL_SIZE = N). libuv hands back each finished item to
 *             the loop thread (after_work), so its window is W items not yet
 *             handed back; the producer runs uv_run() to get them.
 *
 * Prints: ops_s= p50_us= p99_us= prod_cpu_pct= cons_cpu_pct= prod_wait_pct=
 * saturated=producer|consumer  (consumer: the producer found the window full
 * for more than 10% of the flood, or a consumer thread was more than 85%
 * busy; cons_cpu_pct is per consumer thread).
 */
#include "bench-util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <tacio/tacio.h>
#include <uv.h>

enum {
	MAX_CONSUMERS = 16,
	DEQ_BATCH = 64,
	KEY_FLOOD = 1,
	KEY_PACED = 2,
	KEY_QUIT = 3,
};

struct opts {
	const char *impl;
	unsigned consumers;
	double seconds, warmup;
	unsigned samples;
	unsigned gap_us;
	unsigned window;
	int pin_producer, pin_consumers;
};

static struct opts o;

/* Packets taken by consumers. Release on the consumer side, acquire on the
 * producer side: when the producer sees the count reach what it posted, the
 * consumers' histogram updates for those packets are visible to it. */
static atomic_uint_fast64_t consumed;
static uint64_t posted;

/* One histogram and one CPU clock per consumer, indexed by registration. */
static struct hist lat[MAX_CONSUMERS];
static clockid_t cons_clock[MAX_CONSUMERS];
static atomic_bool cons_ready[MAX_CONSUMERS]; /* release: cons_clock[i] written */
static atomic_uint next_consumer;

static unsigned register_consumer(void)
{
	unsigned idx = atomic_fetch_add_explicit(&next_consumer, 1, memory_order_relaxed);

	if (idx >= MAX_CONSUMERS)
		fail("handoff: more than %d consumer threads", MAX_CONSUMERS);
	pin_self(o.pin_consumers);
	if (pthread_getcpuclockid(pthread_self(), &cons_clock[idx]) == 0)
		atomic_store_explicit(&cons_ready[idx], true, memory_order_release);
	return idx;
}

static double consumers_cpu(void)
{
	double sum = 0;

	for (unsigned i = 0; i < MAX_CONSUMERS; i++)
		if (atomic_load_explicit(&cons_ready[i], memory_order_acquire))
			sum += cpu_seconds_clock(cons_clock[i]);
	return sum;
}

static inline void take(struct hist *h, uint64_t key, uint64_t stamp)
{
	if (key == KEY_PACED)
		hist_add(h, now_ns() - stamp);
}

/* ---- tacio ------------------------------------------------------------------ */

static tacio_port_t *port;

static void *tacio_consumer(void *arg)
{
	unsigned idx = register_consumer();
	tacio_entry_t ents[DEQ_BATCH];
	bool quit = false;

	(void)arg;
	while (!quit) {
		unsigned n, taken = 0, extra_quits = 0;
		tacio_status_t st = tacio_port_dequeue(port, ents, DEQ_BATCH, &n, TACIO_INFINITE);

		if (st != TACIO_SUCCESS)
			fail("handoff: tacio_port_dequeue: %s", tacio_status_name(st));
		for (unsigned i = 0; i < n; i++) {
			if (ents[i].key == KEY_QUIT) {
				extra_quits += quit;
				quit = true;
				continue;
			}
			take(&lat[idx], ents[i].key, ents[i].bytes);
			taken++;
		}
		atomic_fetch_add_explicit(&consumed, taken, memory_order_release);
		/* One quit per consumer: hand back the ones meant for others. */
		while (extra_quits-- > 0)
			tacio_port_post(port, KEY_QUIT, 0, NULL, TACIO_SUCCESS);
	}
	return NULL;
}

static void tacio_submit(uint64_t key, uint64_t stamp)
{
	tacio_status_t st = tacio_port_post(port, key, stamp, NULL, TACIO_SUCCESS);

	if (st != TACIO_SUCCESS)
		fail("handoff: tacio_port_post: %s", tacio_status_name(st));
}

/* ---- tacio thread pool ----------------------------------------------------- */

static tacio_pool_t *pool;
static tacio_pool_work_t *pool_work;
static _Atomic uint64_t work_stamp; /* pool-work: (stamp << 1) | paced */

static inline void pool_take(uint64_t word)
{
	static _Thread_local int idx = -1;

	if (idx < 0)
		idx = (int)register_consumer();
	take(&lat[idx], (word & 1) ? KEY_PACED : KEY_FLOOD, word >> 1);
	atomic_fetch_add_explicit(&consumed, 1, memory_order_release);
}

static void pool_fn(void *ctx)
{
	pool_take((uint64_t)(uintptr_t)ctx);
}

static void pool_submit(uint64_t key, uint64_t stamp)
{
	uint64_t word = (stamp << 1) | (key == KEY_PACED);
	tacio_status_t st = tacio_pool_submit(pool, pool_fn, (void *)(uintptr_t)word);

	if (st != TACIO_SUCCESS)
		fail("handoff: tacio_pool_submit: %s", tacio_status_name(st));
}

static void pool_work_fn(tacio_pool_work_t *w, void *ctx)
{
	(void)w;
	(void)ctx;
	pool_take(atomic_load_explicit(&work_stamp, memory_order_relaxed));
}

static void pool_work_submit(uint64_t key, uint64_t stamp)
{
	tacio_status_t st;

	/* Published by the submit itself (the port's queue is the fence). */
	atomic_store_explicit(&work_stamp, (stamp << 1) | (key == KEY_PACED), memory_order_relaxed);
	st = tacio_pool_work_submit(pool_work);
	if (st != TACIO_SUCCESS)
		fail("handoff: tacio_pool_work_submit: %s", tacio_status_name(st));
}

/* ---- mutex + condvar ------------------------------------------------------- */

struct item {
	uint64_t key, stamp;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t nonempty;
	struct item *ring;
	unsigned mask;
	uint64_t head, tail; /* under lock */
	unsigned waiters;    /* under lock */
	bool stop;           /* under lock */
} mq = { .lock = PTHREAD_MUTEX_INITIALIZER, .nonempty = PTHREAD_COND_INITIALIZER };

static void *mq_consumer(void *arg)
{
	unsigned idx = register_consumer();
	struct item got[DEQ_BATCH];

	(void)arg;
	for (;;) {
		unsigned n = 0;

		pthread_mutex_lock(&mq.lock);
		while (mq.head == mq.tail && !mq.stop) {
			mq.waiters++;
			pthread_cond_wait(&mq.nonempty, &mq.lock);
			mq.waiters--;
		}
		if (mq.head == mq.tail) {
			pthread_mutex_unlock(&mq.lock);
			return NULL;
		}
		while (n < DEQ_BATCH && mq.head != mq.tail)
			got[n++] = mq.ring[mq.head++ & mq.mask];
		pthread_mutex_unlock(&mq.lock);
		for (unsigned i = 0; i < n; i++)
			take(&lat[idx], got[i].key, got[i].stamp);
		atomic_fetch_add_explicit(&consumed, n, memory_order_release);
	}
}

static void mq_submit(uint64_t key, uint64_t stamp)
{
	pthread_mutex_lock(&mq.lock);
	mq.ring[mq.tail++ & mq.mask] = (struct item){ key, stamp };
	if (mq.waiters > 0)
		pthread_cond_signal(&mq.nonempty);
	pthread_mutex_unlock(&mq.lock);
}

/* ---- libuv thread pool ----------------------------------------------------- */

struct uv_item {
	uv_work_t req;
	uint64_t key, stamp;
	struct uv_item *next_free; /* loop thread only */
};

static uv_loop_t *loop;
static struct uv_item *uv_items, *uv_free;
static unsigned uv_outstanding; /* queued and not handed back; loop thread only */

static void uv_work(uv_work_t *req)
{
	static _Thread_local int idx = -1;
	struct uv_item *it = (struct uv_item *)req;

	if (idx < 0)
		idx = (int)register_consumer();
	take(&lat[idx], it->key, it->stamp);
	atomic_fetch_add_explicit(&consumed, 1, memory_order_release);
}

static void uv_after(uv_work_t *req, int status)
{
	struct uv_item *it = (struct uv_item *)req;

	if (status != 0)
		fail("handoff: libuv work status %d", status);
	it->next_free = uv_free;
	uv_free = it;
	uv_outstanding--;
}

static void uv_submit(uint64_t key, uint64_t stamp)
{
	struct uv_item *it = uv_free;
	int err;

	/* The window check guarantees an item; get handed-back ones if not. */
	while (it == NULL) {
		uv_run(loop, UV_RUN_ONCE);
		it = uv_free;
	}
	uv_free = it->next_free;
	it->key = key;
	it->stamp = stamp;
	uv_outstanding++;
	err = uv_queue_work(loop, &it->req, uv_work, uv_after);
	if (err != 0)
		fail("handoff: uv_queue_work: %s", uv_strerror(err));
}

/* ---- the producer ------------------------------------------------------------ */

static bool is_libuv;
static void (*submit)(uint64_t key, uint64_t stamp);

static uint64_t taken(void)
{
	return atomic_load_explicit(&consumed, memory_order_acquire);
}

/* Until there is room for one more in the window. Returns ns spent waiting. */
static uint64_t wait_room(void)
{
	uint64_t t0;
	unsigned spins = 0;

	if (is_libuv) {
		/* Handed-back items are collected only when the window is full:
		 * one uv_run per window rather than a poll per submission. The
		 * time counted as waiting includes running the after_work
		 * callbacks, which is libuv's own cost of the hand-off. */
		if (uv_outstanding < o.window)
			return 0;
		t0 = now_ns();
		while (uv_outstanding >= o.window)
			uv_run(loop, UV_RUN_ONCE);
		return now_ns() - t0;
	}
	if (posted - taken() < o.window)
		return 0;
	t0 = now_ns();
	while (posted - taken() >= o.window) {
		if (++spins % 64 == 0)
			sched_yield();
		else
			cpu_relax();
	}
	return now_ns() - t0;
}

/* Until every posted packet was taken (and, for libuv, handed back). */
static void drain(void)
{
	unsigned spins = 0;

	while (taken() < posted) {
		if (is_libuv)
			uv_run(loop, UV_RUN_NOWAIT);
		if (++spins % 64 == 0)
			sched_yield();
		else
			cpu_relax();
	}
	while (is_libuv && uv_outstanding > 0)
		uv_run(loop, UV_RUN_ONCE);
}

static uint64_t flood_until(uint64_t end_ns)
{
	uint64_t waited = 0;
	unsigned i = 0;

	for (;;) {
		if ((++i & 63) == 0 && now_ns() >= end_ns)
			return waited;
		waited += wait_room();
		submit(KEY_FLOOD, now_ns());
		posted++;
	}
}

static void paced(void)
{
	struct timespec gap = { .tv_sec = 0, .tv_nsec = (long)o.gap_us * 1000 };

	for (unsigned k = 0; k < o.samples; k++) {
		submit(KEY_PACED, now_ns());
		posted++;
		drain();
		nanosleep(&gap, NULL);
	}
}

static void parse(int argc, char **argv)
{
	o = (struct opts){ .consumers = 1, .seconds = 2, .warmup = 0.3, .samples = 2000,
			   .gap_us = 200, .window = 1024, .pin_producer = -1, .pin_consumers = -1 };
	if (argc % 2 == 0)
		fail("handoff: options come in pairs (see the file comment)");
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--impl") == 0)
			o.impl = v;
		else if (strcmp(k, "--consumers") == 0)
			o.consumers = (unsigned)arg_num(k, v, 1, MAX_CONSUMERS);
		else if (strcmp(k, "--seconds") == 0)
			o.seconds = arg_num(k, v, 0.01, 3600);
		else if (strcmp(k, "--warmup") == 0)
			o.warmup = arg_num(k, v, 0, 3600);
		else if (strcmp(k, "--samples") == 0)
			o.samples = (unsigned)arg_num(k, v, 1, 1e8);
		else if (strcmp(k, "--gap-us") == 0)
			o.gap_us = (unsigned)arg_num(k, v, 0, 999999);
		else if (strcmp(k, "--window") == 0)
			o.window = (unsigned)arg_num(k, v, 1, 1 << 20);
		else if (strcmp(k, "--pin-producer") == 0)
			o.pin_producer = (int)arg_num(k, v, -1, CPU_SETSIZE - 1);
		else if (strcmp(k, "--pin-consumers") == 0)
			o.pin_consumers = (int)arg_num(k, v, -1, CPU_SETSIZE - 1);
		else
			fail("handoff: unknown option %s", k);
	}
	if (o.impl == NULL)
		fail("handoff: --impl tacio|pool|pool-work|mutex-cv|libuv is required");
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_CONSUMERS];
	uint64_t t0, t1, c0, c1, waited;
	double pc0, pc1, cc0, cc1, secs;
	struct hist all = { 0 };
	char nbuf[16];
	bool threads = true;

	parse(argc, argv);
	pin_self(o.pin_producer);
	if (strcmp(o.impl, "tacio") == 0) {
		tacio_status_t st = tacio_port_create(&port, o.consumers);

		if (st != TACIO_SUCCESS)
			fail("handoff: tacio_port_create: %s %s", tacio_status_name(st), tacio_last_error());
		submit = tacio_submit;
		for (unsigned i = 0; i < o.consumers; i++)
			pthread_create(&th[i], NULL, tacio_consumer, NULL);
	} else if (strcmp(o.impl, "pool") == 0 || strcmp(o.impl, "pool-work") == 0) {
		tacio_pool_options_t po = { .min_threads = o.consumers, .max_threads = o.consumers,
					    .concurrency = o.consumers };
		tacio_status_t st = tacio_pool_create(&pool, &po);

		if (st != TACIO_SUCCESS)
			fail("handoff: tacio_pool_create: %s %s", tacio_status_name(st), tacio_last_error());
		submit = pool_submit;
		if (strcmp(o.impl, "pool-work") == 0) {
			st = tacio_pool_work_create(pool, pool_work_fn, NULL, NULL, &pool_work);
			if (st != TACIO_SUCCESS)
				fail("handoff: tacio_pool_work_create: %s", tacio_status_name(st));
			submit = pool_work_submit;
		}
		threads = false;
	} else if (strcmp(o.impl, "mutex-cv") == 0) {
		unsigned cap = 1;

		while (cap < o.window + 1)
			cap <<= 1;
		mq.ring = calloc(cap, sizeof(*mq.ring));
		mq.mask = cap - 1;
		if (mq.ring == NULL)
			fail("handoff: out of memory");
		submit = mq_submit;
		for (unsigned i = 0; i < o.consumers; i++)
			pthread_create(&th[i], NULL, mq_consumer, NULL);
	} else if (strcmp(o.impl, "libuv") == 0) {
		/* Read by libuv when it starts its pool, at the first uv_queue_work. */
		snprintf(nbuf, sizeof(nbuf), "%u", o.consumers);
		setenv("UV_THREADPOOL_SIZE", nbuf, 1);
		loop = uv_default_loop();
		uv_items = calloc(o.window, sizeof(*uv_items));
		if (uv_items == NULL)
			fail("handoff: out of memory");
		for (unsigned i = 0; i < o.window; i++) {
			uv_items[i].next_free = uv_free;
			uv_free = &uv_items[i];
		}
		submit = uv_submit;
		is_libuv = true;
		threads = false;
	} else {
		fail("handoff: unknown --impl %s", o.impl);
	}

	flood_until(now_ns() + (uint64_t)(o.warmup * 1e9));
	c0 = taken();
	pc0 = cpu_seconds_thread();
	cc0 = consumers_cpu();
	t0 = now_ns();
	waited = flood_until(t0 + (uint64_t)(o.seconds * 1e9));
	t1 = now_ns();
	c1 = taken();
	pc1 = cpu_seconds_thread();
	cc1 = consumers_cpu();
	drain();

	/* Only the paced phase records latency (take() looks at the key). */
	paced();

	if (threads) {
		if (port != NULL) {
			for (unsigned i = 0; i < o.consumers; i++)
				tacio_submit(KEY_QUIT, 0);
		} else {
			pthread_mutex_lock(&mq.lock);
			mq.stop = true;
			pthread_cond_broadcast(&mq.nonempty);
			pthread_mutex_unlock(&mq.lock);
		}
		for (unsigned i = 0; i < o.consumers; i++)
			pthread_join(th[i], NULL);
	}
	if (pool != NULL) {
		if (pool_work != NULL)
			tacio_pool_work_close(pool_work, TACIO_POOL_WAIT);
		tacio_pool_close(pool);
	}
	for (unsigned i = 0; i < MAX_CONSUMERS; i++)
		hist_merge(&all, &lat[i]);
	if (all.n != o.samples)
		fail("handoff: %llu latency samples, expected %u", (unsigned long long)all.n, o.samples);

	secs = (double)(t1 - t0) / 1e9;
	printf("ops_s=%.0f p50_us=%.2f p99_us=%.2f prod_cpu_pct=%.1f cons_cpu_pct=%.1f"
	       " prod_wait_pct=%.1f saturated=%s\n",
	       (double)(c1 - c0) / secs, hist_percentile(&all, 0.50) / 1e3,
	       hist_percentile(&all, 0.99) / 1e3, (pc1 - pc0) * 100 / secs,
	       (cc1 - cc0) * 100 / secs / o.consumers, (double)waited * 100 / (double)(t1 - t0),
	       (double)waited > 0.1 * (double)(t1 - t0) || (cc1 - cc0) / secs / o.consumers > 0.85
		       ? "consumer" : "producer");
	fflush(stdout);
	if (port != NULL)
		tacio_port_close(port, NULL, NULL);
	return 0;
}
