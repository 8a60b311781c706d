/* tests/test-cancel-race.c - cancel and close racing completions, on real
 * kernel objects (TCP over loopback, Unix stream and datagram socketpairs,
 * pipes, UDP), thousands of iterations per case.
 *
 * What every case checks (the rule of io.h): a start that returned PENDING
 * is delivered exactly once, with CANCELLED or its natural result; a start
 * that returned anything else is never delivered. Each record carries a
 * counter of owed deliveries ("outstanding": set before the start call,
 * kept by a PENDING return, cleared by the one delivery); a delivery that
 * finds nothing owed is a second delivery (or one for a synchronous start)
 * and fails at once, naming the record. Data is checked byte for byte
 * against a per-pair pattern, so "cancelled, and the data is still there"
 * and "nothing sent that was not reported" are checked too.
 *
 * Timing: each iteration releases helper threads from a barrier, each after
 * its own random delay (0..tens of us, seeded), while the main thread pumps
 * the port, so both orders of every race occur on a loaded 2-core machine.
 * Each case prints one "# case: ..." line with how the races came out.
 *
 * Budget: every case runs its default number of iterations (tuned so the
 * file runs in well under 60 s on a loaded 2-core machine; divided by 4 in
 * TACIO_TSAN / TACIO_ASAN builds). TACIO_RACE_ITERS=N runs N iterations in
 * every case instead; per-case timeouts grow with it.
 *
 * Replay: TACIO_SEED=N (printed with every failure) replays the random
 * choices; thread timing of course differs from run to run.
 */
#include "tacio-test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#if defined(TACIO_TSAN) || defined(TACIO_ASAN)
#define SANITIZED_DIV 4u
#else
#define SANITIZED_DIV 1u
#endif

/* ---- budget ------------------------------------------------------------------ */

static unsigned env_iters(void)
{
    const char *s = getenv("TACIO_RACE_ITERS");
    if (!s || !*s)
        return 0;
    long v = strtol(s, NULL, 0);
    return v > 0 ? (unsigned)v : 0;
}

static unsigned iters(unsigned dflt)
{
    unsigned n = env_iters();
    if (n)
        return n;
    n = dflt / SANITIZED_DIV;
    return n ? n : 1;
}

/* ---- small helpers -------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void spin_ns(uint64_t ns)
{
    if (!ns)
        return;
    uint64_t end = tt_now_ns() + ns;
    while (tt_now_ns() < end)
        cpu_relax();
}

/* A random delay: a quarter of the time none, else uniform in [0, max_ns). */
static uint64_t rdelay(uint64_t max_ns)
{
    return tt_rand_below(4) == 0 ? 0 : tt_rand_below(max_ns);
}

static const char *sname(tacio_status_t s)
{
    return tacio_status_name(s);
}


/* A growable byte string (expected and received streams). */
typedef struct bytes {
    unsigned char *d;
    size_t n, cap;
} bytes_t;

static void bytes_add(bytes_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        b->d = realloc(b->d, cap);
        ASSERT_TRUE(b->d != NULL);
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void bytes_free(bytes_t *b)
{
    free(b->d);
    *b = (bytes_t){0};
}

static void check_same(const bytes_t *want, const bytes_t *got, const char *what)
{
    size_t n = want->n < got->n ? want->n : got->n;
    for (size_t i = 0; i < n; i++)
        if (want->d[i] != got->d[i])
            TT_FAIL("%s: byte %zu of %zu differs: sent 0x%02x, peer got 0x%02x", what, i,
                    want->n, want->d[i], got->d[i]);
    if (want->n != got->n)
        TT_FAIL("%s: completions reported %zu bytes written, the peer received %zu", what,
                want->n, got->n);
}

/* ---- records and deliveries -------------------------------------------------------- */

typedef struct rec {
    tacio_op_t op;
    _Atomic int outstanding;         /* deliveries owed: 1 from arm to delivery */
    _Atomic uint32_t pending;        /* starts that returned PENDING */
    _Atomic uint32_t delivered;      /* deliveries by dequeue or discard */
    _Atomic uint32_t discarded;      /* of which by the discard callback */
    tacio_entry_t last;              /* the last delivery (valid once outstanding is 0) */
    unsigned char *buf;
    size_t cap;
    tacio_addr_t addr;
} rec_t;

static rec_t *g_rec;        /* the case's records, one array */
static unsigned g_nrec;
/* Posted packets: the case's hook, or a failure. */
static void (*g_post_hook)(const tacio_entry_t *e, int discarded);

static rec_t *recs_alloc(unsigned n, size_t cap)
{
    g_rec = calloc(n, sizeof *g_rec);
    ASSERT_TRUE(g_rec != NULL);
    g_nrec = n;
    for (unsigned i = 0; i < n; i++) {
        g_rec[i].buf = malloc(cap);
        ASSERT_TRUE(g_rec[i].buf != NULL);
        g_rec[i].cap = cap;
        tacio_op_init(&g_rec[i].op);
    }
    return g_rec;
}

static void recs_free(void)
{
    for (unsigned i = 0; i < g_nrec; i++)
        free(g_rec[i].buf);
    free(g_rec);
    g_rec = NULL;
    g_nrec = 0;
}

static unsigned rec_index(const rec_t *r)
{
    return (unsigned)(r - g_rec);
}

static rec_t *rec_of(tacio_op_t *op)
{
    uintptr_t a = (uintptr_t)op, base = (uintptr_t)g_rec;
    if (a < base || a >= base + (uintptr_t)g_nrec * sizeof(rec_t) ||
        (a - base) % sizeof(rec_t) != offsetof(rec_t, op))
        TT_FAIL("delivery for a record this case never started (%p)", (void *)op);
    return (rec_t *)(void *)((char *)op - offsetof(rec_t, op));
}

/* Before a start call: one delivery will be owed if it returns PENDING. */
static void arm(rec_t *r)
{
    if (atomic_exchange_explicit(&r->outstanding, 1, memory_order_relaxed) != 0)
        TT_FAIL("record %u started again while a delivery is still owed", rec_index(r));
}

/* After a start call returned st. */
static tacio_status_t started(rec_t *r, tacio_status_t st)
{
    if (st == TACIO_PENDING) {
        atomic_fetch_add_explicit(&r->pending, 1, memory_order_relaxed);
        return st;
    }
    /* acq_rel: pairs with route(); seeing 0 here means a delivery came for a
     * start that did not return PENDING. */
    if (atomic_exchange_explicit(&r->outstanding, 0, memory_order_acq_rel) != 1)
        TT_FAIL("record %u: start returned %s (no completion may follow), yet one was "
                "delivered", rec_index(r), sname(st));
    if (st != TACIO_OP_IN_USE && r->op.status != st)
        TT_FAIL("record %u: start returned %s, record status is %s", rec_index(r), sname(st),
                sname(r->op.status));
    return st;
}

static void route(const tacio_entry_t *e, int discarded)
{
    if (e->kind == TACIO_ENTRY_POSTED) {
        if (!g_post_hook)
            TT_FAIL("unexpected posted packet (key %llu)", (unsigned long long)e->key);
        g_post_hook(e, discarded);
        return;
    }
    if (e->kind != TACIO_ENTRY_OP)
        TT_FAIL("entry of unknown kind %u", e->kind);
    rec_t *r = rec_of(e->op);
    if (e->status == TACIO_PENDING)
        TT_FAIL("record %u delivered with status PENDING", rec_index(r));
    if (r->op.status != e->status || r->op.bytes != e->bytes)
        TT_FAIL("record %u: entry says %s/%llu, record says %s/%llu", rec_index(r),
                sname(e->status), (unsigned long long)e->bytes, sname(r->op.status),
                (unsigned long long)r->op.bytes);
    if (atomic_load_explicit(&r->outstanding, memory_order_relaxed) != 1)
        TT_FAIL("record %u delivered (%s, %llu bytes%s) but no delivery is owed: a second "
                "completion, or one for a start that did not return PENDING", rec_index(r),
                sname(e->status), (unsigned long long)e->bytes, discarded ? ", by discard" : "");
    r->last = *e;
    atomic_fetch_add_explicit(&r->delivered, 1, memory_order_relaxed);
    if (discarded)
        atomic_fetch_add_explicit(&r->discarded, 1, memory_order_relaxed);
    /* release: last and the record are written before the record is free again. */
    if (atomic_exchange_explicit(&r->outstanding, 0, memory_order_release) != 1)
        TT_FAIL("record %u delivered twice at once", rec_index(r));
}

static int owed(rec_t *r)
{
    return atomic_load_explicit(&r->outstanding, memory_order_acquire);
}

/* One dequeue call; every entry routed. Returns how many. */
static unsigned pump_once(tacio_port_t *p, int timeout_ms)
{
    tacio_entry_t e[16];
    unsigned n = 0;
    tacio_status_t s = tacio_port_dequeue(p, e, 16, &n, timeout_ms);
    if (s == TACIO_TIMEOUT) {
        ASSERT_EQ_INT(n, 0);
        return 0;
    }
    ASSERT_OK(s);
    ASSERT_TRUE(n >= 1 && n <= 16);
    for (unsigned i = 0; i < n; i++)
        route(&e[i], 0);
    return n;
}

static void wait_rec(tacio_port_t *p, rec_t *r, unsigned ms, const char *what)
{
    uint64_t deadline = tt_now_ns() + (uint64_t)ms * 1000000ull;
    while (owed(r)) {
        if (tt_now_ns() > deadline) {
            /* The record's private word (io.h: state, cancel bit, generation)
             * and the port's counters, for the report. */
            tacio_stats_t st;
            memset(&st, 0, sizeof st);
            tacio_port_stats(p, &st);
            TT_FAIL("%s: record %u: no completion after %u ms (priv_word 0x%x: state %u%s, "
                    "gen %u; slot 0x%x; stats: completions %llu, stale %llu, dups %llu, "
                    "reissued %llu)", what, rec_index(r), ms, r->op.priv_word,
                    r->op.priv_word & 7u, (r->op.priv_word & 8u) ? " +cancel" : "",
                    r->op.priv_word >> 8, r->op.priv_slot, (unsigned long long)st.completions,
                    (unsigned long long)st.dropped_stale,
                    (unsigned long long)st.dropped_duplicates,
                    (unsigned long long)st.reissued_after_exit);
        }
        pump_once(p, 20);
    }
}

/* End of a case: nothing more arrives (a late second delivery fails in
 * route), every PENDING start was delivered exactly once, no duplicate was
 * even seen by the library, and close discards nothing. */
static unsigned g_close_discards;
static void discard_count(const tacio_entry_t *e, void *arg)
{
    (void)arg;
    g_close_discards++;
    route(e, 1);
}

static void settle_and_close(tacio_port_t *p)
{
    tt_context("settle");
    while (pump_once(p, 100))
        ;
    for (unsigned i = 0; i < g_nrec; i++) {
        rec_t *r = &g_rec[i];
        if (owed(r))
            TT_FAIL("record %u: a start returned PENDING and nothing was delivered", i);
        ASSERT_EQ_INT(atomic_load(&r->delivered), atomic_load(&r->pending));
        ASSERT_EQ_STATUS(tacio_cancel(&r->op), TACIO_NOT_FOUND);
    }
    tacio_stats_t st;
    ASSERT_OK(tacio_port_stats(p, &st));
    ASSERT_EQ_U64(st.dropped_duplicates, 0);
    g_close_discards = 0;
    ASSERT_OK(tacio_port_close(p, discard_count, NULL));
    ASSERT_EQ_INT(g_close_discards, 0);
    tt_context("%s", "");
}

/* ---- racing helpers ----------------------------------------------------------------- */

typedef void (*act_fn)(void *arg);

typedef struct race race_t;
typedef struct racer {
    race_t *rc;
    pthread_t t;
    act_fn fn;
    void *arg;
    uint64_t delay_ns;
} racer_t;

struct race {
    unsigned n;
    racer_t r[4];
    pthread_barrier_t go;
    _Atomic int quit;
    _Atomic unsigned remaining;   /* helpers still running this round */
};

static void *racer_main(void *arg)
{
    racer_t *me = arg;
    race_t *rc = me->rc;
    for (;;) {
        pthread_barrier_wait(&rc->go);
        if (atomic_load_explicit(&rc->quit, memory_order_acquire))
            return NULL;
        if (me->fn) {
            spin_ns(me->delay_ns);
            me->fn(me->arg);
        }
        /* release: the action's writes are seen by the main thread after it
         * sees remaining reach 0. */
        atomic_fetch_sub_explicit(&rc->remaining, 1, memory_order_release);
    }
}

static void race_init(race_t *rc, unsigned n)
{
    memset(rc, 0, sizeof *rc);
    rc->n = n;
    ASSERT_EQ_INT(pthread_barrier_init(&rc->go, NULL, n + 1), 0);
    for (unsigned i = 0; i < n; i++) {
        rc->r[i].rc = rc;
        ASSERT_EQ_INT(pthread_create(&rc->r[i].t, NULL, racer_main, &rc->r[i]), 0);
    }
}

static void race_set(race_t *rc, unsigned i, act_fn fn, void *arg, uint64_t delay_ns)
{
    rc->r[i].fn = fn;
    rc->r[i].arg = arg;
    rc->r[i].delay_ns = delay_ns;
}

/* Release the helpers; the main thread pumps the port (so completions are
 * reaped while the helpers race) until every helper is done. p may be NULL:
 * then the main thread only waits. */
static void race_run(race_t *rc, tacio_port_t *p)
{
    atomic_store_explicit(&rc->remaining, rc->n, memory_order_relaxed);
    pthread_barrier_wait(&rc->go);
    while (atomic_load_explicit(&rc->remaining, memory_order_acquire) != 0) {
        if (p)
            pump_once(p, 1);
        else
            sched_yield();
    }
}

static void race_fini(race_t *rc)
{
    atomic_store_explicit(&rc->quit, 1, memory_order_release);
    pthread_barrier_wait(&rc->go);
    for (unsigned i = 0; i < rc->n; i++)
        pthread_join(rc->r[i].t, NULL);
    pthread_barrier_destroy(&rc->go);
}

/* ---- transports ------------------------------------------------------------------- */

enum { TR_TCP, TR_UNIX, TR_PIPE, TR_UDP, TR_UDGRAM, TR_COUNT };
static const char *const tr_name[TR_COUNT] = { "tcp", "unix_stream", "pipe", "udp", "unix_dgram" };

/* h wraps one end (its fd is hfd); peer is the other end, raw and blocking.
 * Bytes the peer writes follow pat(salt, offset); messages (datagrams) have
 * sizes msz(index), so both sides know them without sharing state. */
typedef struct pair {
    int tr;
    tacio_handle_t *h;
    int hfd, peer;
    int dgram;
    int nb;                 /* peer non-blocking: a write that finds no room is skipped */
    int may_fail;           /* the handle end may be closed: a refused write is skipped */
    unsigned salt, maxmsg;
    _Atomic uint64_t woff;  /* bytes the peer wrote (release after each write) */
    uint64_t wcount;        /* messages the peer wrote (writer only) */
    uint64_t roff, rcount;  /* bytes / messages received (main thread only) */
} pair_t;

static inline unsigned char pat(unsigned salt, uint64_t off)
{
    uint64_t x = (off + salt) * 0x9E3779B97F4A7C15ull;
    return (unsigned char)((x >> 56) ^ off);
}

static size_t msz(const pair_t *pp, uint64_t k)
{
    uint64_t x = (k + 1) * 0xBF58476D1CE4E5B9ull ^ pp->salt;
    x ^= x >> 31;
    return 1 + (size_t)(x % pp->maxmsg);
}

static void pair_open(pair_t *pp, tacio_port_t *p, int tr, unsigned flags, unsigned maxmsg)
{
    int a = -1, b = -1, fds[2];
    memset(pp, 0, sizeof *pp);
    switch (tr) {
    case TR_TCP:
        tt_tcp_pair(&a, &b);
        break;
    case TR_UNIX:
        tt_socketpair(SOCK_STREAM, fds);
        a = fds[0], b = fds[1];
        break;
    case TR_PIPE:
        tt_pipe(fds);
        a = fds[0], b = fds[1];
        break;
    case TR_UDP:
        tt_udp_pair(&a, &b);
        break;
    default:
        tt_socketpair(SOCK_DGRAM, fds);
        a = fds[0], b = fds[1];
        break;
    }
    pp->tr = tr;
    pp->dgram = tr == TR_UDP || tr == TR_UDGRAM;
    pp->hfd = a;
    pp->peer = b;
    pp->salt = (unsigned)tt_rand();
    pp->maxmsg = maxmsg;
    pp->h = tt_handle(p, a, (uint64_t)tr, flags);
}

static void pair_close(pair_t *pp)
{
    if (pp->h)
        ASSERT_OK(tacio_handle_close(pp->h));
    pp->h = NULL;
    tt_close(pp->peer);
    pp->peer = -1;
}

/* The peer writes its next message; returns its size (0: skipped, the
 * peer is non-blocking and had no room). One writer at a time per pair. */
static size_t peer_write(pair_t *pp)
{
    unsigned char buf[4096];
    size_t n = msz(pp, pp->wcount);
    uint64_t off = atomic_load_explicit(&pp->woff, memory_order_relaxed);
    ASSERT_TRUE(n <= sizeof buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = pat(pp->salt, off + i);
    size_t done = 0;
    while (done < n) {
        ssize_t w = pp->tr == TR_PIPE ? write(pp->peer, buf + done, n - done)
                                      : send(pp->peer, buf + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && pp->nb && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (done == 0)
                return 0;
            sched_yield();
            continue;
        }
        if (w < 0 && pp->may_fail && done == 0 &&
            (errno == EPIPE || errno == ECONNREFUSED || errno == ECONNRESET))
            return 0;
        if (w <= 0)
            TT_FAIL("peer write (%s): %s", tr_name[pp->tr], strerror(errno));
        if (pp->dgram && (size_t)w != n)
            TT_FAIL("short datagram write");
        done += (size_t)w;
    }
    pp->wcount++;
    /* release: the bytes' offsets are published after they were written. */
    atomic_store_explicit(&pp->woff, off + n, memory_order_release);
    return n;
}

static void act_peer_write(void *arg)
{
    peer_write(arg);
}

/* Received bytes of a SUCCESS: they must continue the stream (or be the
 * next whole datagram). Main thread. */
static void rx_accept(pair_t *pp, const unsigned char *d, uint64_t n, const char *what)
{
    if (pp->dgram) {
        size_t want = msz(pp, pp->rcount);
        if (n != want)
            TT_FAIL("%s (%s): datagram %llu has %llu bytes, expected %zu", what,
                    tr_name[pp->tr], (unsigned long long)pp->rcount, (unsigned long long)n,
                    want);
        pp->rcount++;
    }
    if (n == 0)
        TT_FAIL("%s (%s): SUCCESS with 0 bytes", what, tr_name[pp->tr]);
    for (uint64_t i = 0; i < n; i++)
        if (d[i] != pat(pp->salt, pp->roff + i))
            TT_FAIL("%s (%s): byte at stream offset %llu is 0x%02x, expected 0x%02x (lost or "
                    "repeated data)", what, tr_name[pp->tr],
                    (unsigned long long)(pp->roff + i), d[i], pat(pp->salt, pp->roff + i));
    pp->roff += n;
}

static tacio_status_t start_rx(pair_t *pp, rec_t *r, size_t len)
{
    tacio_status_t st;
    arm(r);
    if (pp->tr == TR_PIPE)
        st = tacio_read(pp->h, &r->op, r->buf, len, TACIO_OFFSET_NONE);
    else
        st = tacio_recv(pp->h, &r->op, r->buf, len);
    return started(r, st);
}

/* The outcome of a receive that was cancelled or closed while the peer
 * wrote: CANCELLED with nothing, or SUCCESS with the next bytes. Returns 1
 * for SUCCESS. */
static int rx_outcome(pair_t *pp, rec_t *r, tacio_status_t st, uint64_t bytes, const char *what)
{
    if (st == TACIO_CANCELLED) {
        if (bytes != 0)
            TT_FAIL("%s: CANCELLED with %llu bytes", what, (unsigned long long)bytes);
        return 0;
    }
    if (st != TACIO_SUCCESS)
        TT_FAIL("%s (%s): status %s, expected CANCELLED or SUCCESS", what, tr_name[pp->tr],
                sname(st));
    rx_accept(pp, r->buf, bytes, what);
    return 1;
}

/* Read everything the peer wrote and has not been received; then nothing
 * more may be readable. r must be free. */
static void rx_drain(pair_t *pp, tacio_port_t *p, rec_t *r)
{
    uint64_t woff = atomic_load_explicit(&pp->woff, memory_order_acquire);
    while (pp->roff < woff) {
        size_t len = pp->dgram ? r->cap : (size_t)(woff - pp->roff);
        if (len > r->cap)
            len = r->cap;
        tacio_status_t st = start_rx(pp, r, len);
        if (st == TACIO_PENDING) {
            wait_rec(p, r, 5000, "drain (data written before must be readable)");
            st = r->last.status;
        }
        if (st != TACIO_SUCCESS)
            TT_FAIL("drain (%s): %s with %llu bytes still unread", tr_name[pp->tr], sname(st),
                    (unsigned long long)(woff - pp->roff));
        rx_accept(pp, r->buf, r->op.bytes, "drain");
    }
    if (pp->roff != woff)
        TT_FAIL("drain (%s): received %llu bytes, the peer wrote %llu", tr_name[pp->tr],
                (unsigned long long)pp->roff, (unsigned long long)woff);
    if (tt_poll(pp->hfd, POLLIN, 0) & POLLIN)
        TT_FAIL("drain (%s): more readable than the peer wrote", tr_name[pp->tr]);
}

/* Wait (outside tacio) until the kernel has taken the bytes out of the
 * socket: no POLLIN on the handle's fd. */
static void wait_consumed(pair_t *pp)
{
    uint64_t deadline = tt_now_ns() + 5000000000ull;
    while (tt_poll(pp->hfd, POLLIN, 0) & POLLIN) {
        if (tt_now_ns() > deadline)
            TT_FAIL("%s: data not consumed by the pending receive after 5 s", tr_name[pp->tr]);
        sched_yield();
    }
}

static void check_fds(int base, const char *when)
{
    int now = tt_fd_count();
    for (int i = 0; i < 200 && now > base; i++) {
        tt_sleep_ms(10);
        now = tt_fd_count();
    }
    if (now > base)
        TT_FAIL("%s: %d fds open, %d at case start (handle fds not closed)", when, now, base);
}

typedef struct cancel_arg {
    tacio_op_t *op;
    tacio_status_t ret;
} cancel_arg_t;

static void act_cancel(void *arg)
{
    cancel_arg_t *c = arg;
    c->ret = tacio_cancel(c->op);
    if (c->ret != TACIO_SUCCESS && c->ret != TACIO_NOT_FOUND)
        TT_FAIL("tacio_cancel returned %s", sname(c->ret));
}

static void maybe_flush(tacio_port_t *p)
{
    /* The main thread "runs" entries after a dequeue, so its starts are
     * batched until its next dequeue: flush most of the time so the op is in
     * the kernel when the race begins, not always. */
    if (tt_rand_below(4) != 0)
        ASSERT_OK(tacio_port_flush(p));
}

/* ---- (a) recv pending, peer write vs tacio_cancel ------------------------------------- */

TT_CASE(recv_cancel_vs_peer_write)
{
    const unsigned n = iters(4000);
    tacio_port_t *p = tt_port(0);
    rec_t *r = recs_alloc(2, 8192);
    pair_t pairs[TR_COUNT];
    for (int t = 0; t < TR_COUNT; t++)
        pair_open(&pairs[t], p, t, 0, t == TR_TCP || t == TR_UNIX ? 3000 : 1000);
    race_t rc;
    race_init(&rc, 2);
    unsigned cancelled = 0, success = 0, nf = 0;
    for (unsigned i = 0; i < n; i++) {
        pair_t *pp = &pairs[tt_rand_below(TR_COUNT)];
        tt_context("iter %u/%u, %s", i, n, tr_name[pp->tr]);
        size_t len = pp->dgram ? r[0].cap : 1 + tt_rand_below(r[0].cap);
        ASSERT_EQ_STATUS(start_rx(pp, &r[0], len), TACIO_PENDING);
        maybe_flush(p);
        cancel_arg_t ca = { &r[0].op, 0 };
        race_set(&rc, 0, act_peer_write, pp, rdelay(40000));
        race_set(&rc, 1, act_cancel, &ca, rdelay(40000));
        race_run(&rc, p);
        wait_rec(p, &r[0], 5000, "cancelled recv");
        int ok = rx_outcome(pp, &r[0], r[0].last.status, r[0].last.bytes, "recv vs cancel");
        if (ca.ret == TACIO_NOT_FOUND) {
            nf++;
            if (!ok)
                TT_FAIL("tacio_cancel said NOT_FOUND (not pending) but the op completed "
                        "CANCELLED");
        }
        ok ? success++ : cancelled++;
        /* Cancelled or short: the rest of what the peer wrote is still there. */
        rx_drain(pp, p, &r[1]);
    }
    race_fini(&rc);
    tt_context("%s", "");
    tt_note("%u iterations: %u cancelled, %u natural (cancel NOT_FOUND %u)", n, cancelled,
         success, nf);
    for (int t = 0; t < TR_COUNT; t++)
        pair_close(&pairs[t]);
    settle_and_close(p);
    recs_free();
}

/* ---- (b) recv pending, peer write vs tacio_handle_close -------------------------------- */

typedef struct close_arg {
    tacio_handle_t *h;
    tacio_status_t ret;
} close_arg_t;

static void act_close(void *arg)
{
    close_arg_t *c = arg;
    c->ret = tacio_handle_close(c->h);
}

/* A start racing the close: PENDING (then it must complete), or refused. */
typedef struct late_arg {
    pair_t *pp;
    rec_t *r;
    tacio_status_t ret;
} late_arg_t;

static void act_late_start(void *arg)
{
    late_arg_t *l = arg;
    arm(l->r);
    tacio_status_t st = l->pp->tr == TR_PIPE
                            ? tacio_read(l->pp->h, &l->r->op, l->r->buf, l->r->cap,
                                         TACIO_OFFSET_NONE)
                            : tacio_recv(l->pp->h, &l->r->op, l->r->buf, l->r->cap);
    l->ret = started(l->r, st);
}

TT_CASE(recv_close_vs_peer_write)
{
    const unsigned n = iters(2500);
    tacio_port_t *p = tt_port(0);
    int base = tt_fd_count();
    rec_t *r = recs_alloc(3, 4096);
    signal(SIGPIPE, SIG_IGN);   /* the pipe's read end may be closed under the writer */
    race_t rc;
    race_init(&rc, 3);
    unsigned cancelled = 0, success = 0, late_pending = 0, late_refused = 0;
    for (unsigned i = 0; i < n; i++) {
        /* TCP pairs are the costly ones (and leave TIME_WAIT): fewer of them. */
        int tr = tt_rand_below(8) == 0 ? TR_TCP : 1 + (int)tt_rand_below(TR_COUNT - 1);
        pair_t pair, *pp = &pair;
        pair_open(pp, p, tr, 0, 1500);
        pp->may_fail = 1;
        tt_context("iter %u/%u, %s", i, n, tr_name[tr]);
        unsigned nrx = 1 + (unsigned)tt_rand_below(2);
        for (unsigned k = 0; k < nrx; k++)
            ASSERT_EQ_STATUS(start_rx(pp, &r[k], pp->dgram ? r[k].cap : 1 + tt_rand_below(r[k].cap)),
                             TACIO_PENDING);
        maybe_flush(p);
        close_arg_t ca = { pp->h, 0 };
        late_arg_t la = { pp, &r[2], 0 };
        int late = tt_rand_below(2) == 0;
        race_set(&rc, 0, act_peer_write, pp, rdelay(40000));
        race_set(&rc, 1, act_close, &ca, rdelay(40000));
        race_set(&rc, 2, late ? act_late_start : NULL, &la, rdelay(40000));
        race_run(&rc, p);
        ASSERT_EQ_STATUS(ca.ret, TACIO_SUCCESS);
        for (unsigned k = 0; k < nrx; k++) {
            wait_rec(p, &r[k], 5000, "recv on a closed handle");
            /* In start order: the first SUCCESS gets the first bytes. */
            rx_outcome(pp, &r[k], r[k].last.status, r[k].last.bytes, "recv vs close")
                ? success++ : cancelled++;
        }
        if (late) {
            if (la.ret == TACIO_PENDING) {
                late_pending++;
                wait_rec(p, &r[2], 5000, "start racing close");
                rx_outcome(pp, &r[2], r[2].last.status, r[2].last.bytes, "start racing close");
            } else if (la.ret == TACIO_FILE_CLOSED || la.ret == TACIO_INVALID_HANDLE) {
                late_refused++;
            } else if (la.ret == TACIO_SUCCESS) {
                /* it found the data synchronously before the close */
                rx_accept(pp, r[2].buf, r[2].op.bytes, "start racing close");
            } else {
                TT_FAIL("start racing close returned %s", sname(la.ret));
            }
        }
        /* The handle is gone: a new start is refused and never completes. */
        arm(&r[2]);
        tacio_status_t st = started(&r[2], tr == TR_PIPE
                                               ? tacio_read(pp->h, &r[2].op, r[2].buf, 16,
                                                            TACIO_OFFSET_NONE)
                                               : tacio_recv(pp->h, &r[2].op, r[2].buf, 16));
        if (st != TACIO_FILE_CLOSED && st != TACIO_INVALID_HANDLE)
            TT_FAIL("recv on a closed handle returned %s", sname(st));
        pp->h = NULL;
        pair_close(pp);
        if (i % 512 == 511) {
            while (pump_once(p, 0))
                ;
            check_fds(base, "after close");
        }
    }
    race_fini(&rc);
    tt_context("%s", "");
    tt_note("%u iterations: %u recvs cancelled, %u natural; start racing close: %u pending, "
         "%u refused", n, cancelled, success, late_pending, late_refused);
    settle_and_close(p);
    recs_free();
}

/* ---- (c) send on a full socket buffer vs tacio_cancel ---------------------------------- */

/* The sending end's kernel buffer is filled with raw sends; the peer reads
 * into got. Everything the completions report as sent must reach the peer,
 * and nothing more. */
typedef struct txside {
    int tr;
    tacio_handle_t *h;
    int hfd, peer;
    unsigned salt;
    uint64_t filled;      /* pattern offset of raw filler bytes */
    bytes_t want, got;    /* per iteration */
    size_t read_now;      /* the reader's share in the race */
} txside_t;

/* A TCP pair with small buffers set before the connection exists (shrinking
 * the receive buffer of an established connection makes loopback TCP drop
 * and back off for seconds). */
static void tcp_pair_small(int *snd, int *rcv, int sz)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(l >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ_INT(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    ASSERT_EQ_INT(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ_INT(listen(l, 1), 0);
    ASSERT_EQ_INT(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(c >= 0);
    ASSERT_EQ_INT(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    ASSERT_EQ_INT(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_TRUE(s >= 0);
    tt_close(l);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *snd = c;
    *rcv = s;
}

static void tx_open(txside_t *t, tacio_port_t *p, int tr)
{
    int a, b, fds[2];
    int sz = 8192;
    memset(t, 0, sizeof *t);
    if (tr == TR_TCP) {
        tcp_pair_small(&a, &b, sz);
    } else {
        tt_socketpair(SOCK_STREAM, fds);
        a = fds[0], b = fds[1];
        setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    t->tr = tr;
    t->hfd = a;
    t->peer = b;
    t->salt = (unsigned)tt_rand();
    t->h = tt_handle(p, a, 100 + (uint64_t)tr, 0);
}

static void tx_close(txside_t *t)
{
    ASSERT_OK(tacio_handle_close(t->h));
    tt_close(t->peer);
    bytes_free(&t->want);
    bytes_free(&t->got);
}

/* Raw non-blocking sends until the kernel takes no more. */
static void tx_fill(txside_t *t)
{
    unsigned char chunk[4096];
    for (;;) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(t->salt, t->filled + i);
        ssize_t w = send(t->hfd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0)
            TT_FAIL("filler send: %s", strerror(errno));
        bytes_add(&t->want, chunk, (size_t)w);
        t->filled += (uint64_t)w;
    }
}

/* Peer reads exactly n bytes (blocking). */
static void peer_read(txside_t *t, size_t n)
{
    unsigned char buf[8192];
    while (n) {
        ssize_t r = recv(t->peer, buf, n < sizeof buf ? n : sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            TT_FAIL("peer read: %s", r == 0 ? "EOF" : strerror(errno));
        bytes_add(&t->got, buf, (size_t)r);
        n -= (size_t)r;
    }
}

static void act_peer_read(void *arg)
{
    txside_t *t = arg;
    peer_read(t, t->read_now);
}

/* After the sends completed: read what is left and compare; nothing more
 * may arrive. */
static void tx_verify(txside_t *t, const char *what)
{
    while (t->got.n < t->want.n) {
        if (!(tt_poll(t->peer, POLLIN, 5000) & POLLIN))
            TT_FAIL("%s: completions reported %zu bytes, the peer got only %zu", what,
                    t->want.n, t->got.n);
        peer_read(t, 1);
        unsigned char buf[8192];
        ssize_t r = recv(t->peer, buf, sizeof buf < t->want.n - t->got.n ? sizeof buf
                                                                         : t->want.n - t->got.n,
                         MSG_DONTWAIT);
        if (r > 0)
            bytes_add(&t->got, buf, (size_t)r);
    }
    check_same(&t->want, &t->got, what);
    if (tt_poll(t->peer, POLLIN, 0) & POLLIN)
        TT_FAIL("%s: the peer can read more than the completions reported sent", what);
    t->want.n = t->got.n = 0;
}

static void fill_random(unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = tt_rand();
        memcpy(b + i, &x, n - i < 8 ? n - i : 8);
    }
}

/* Check a send's outcome; append what it sent to want. */
static void tx_outcome(txside_t *t, rec_t *r, size_t len, tacio_status_t cret, unsigned *cnt)
{
    tacio_status_t st = r->last.status;
    uint64_t b = r->last.bytes;
    if (b > len)
        TT_FAIL("send of %zu reports %llu bytes", len, (unsigned long long)b);
    if (st == TACIO_SUCCESS) {
        if (cret == TACIO_NOT_FOUND && b != len)
            TT_FAIL("send completed on its own (cancel NOT_FOUND) with %llu of %zu bytes",
                    (unsigned long long)b, len);
        cnt[b == len ? 0 : 1]++;
    } else if (st == TACIO_CANCELLED) {
        if (cret == TACIO_NOT_FOUND)
            TT_FAIL("tacio_cancel said NOT_FOUND but the send completed CANCELLED");
        cnt[b == 0 ? 2 : 3]++;
    } else {
        TT_FAIL("send vs cancel: status %s (%llu bytes)", sname(st), (unsigned long long)b);
    }
    bytes_add(&t->want, r->buf, (size_t)b);
}

TT_CASE(send_full_buffer_cancel)
{
    const unsigned n = iters(2000);
    tacio_port_t *p = tt_port(0);
    rec_t *r = recs_alloc(1, 32768);
    txside_t tx[2];
    tx_open(&tx[0], p, TR_UNIX);
    tx_open(&tx[1], p, TR_TCP);
    race_t rc;
    race_init(&rc, 2);
    unsigned cnt[4] = {0}, sync = 0;   /* full, short success, cancelled 0, cancelled partial */
    for (unsigned i = 0; i < n; i++) {
        txside_t *t = &tx[tt_rand_below(2)];
        tt_context("iter %u/%u, %s", i, n, tr_name[t->tr]);
        tx_fill(t);
        size_t len = 1 + tt_rand_below(r->cap);
        fill_random(r->buf, len);
        arm(r);
        tacio_status_t st = started(r, tacio_send(t->h, &r->op, r->buf, len));
        cancel_arg_t ca = { &r->op, TACIO_NOT_FOUND };
        if (st == TACIO_PENDING) {
            maybe_flush(p);
            /* Room opens for the sender only once most of the filler is
             * read: read between half and all of it. */
            t->read_now = t->want.n / 2 + 1 + tt_rand_below(t->want.n - t->want.n / 2);
            race_set(&rc, 0, act_peer_read, t, rdelay(40000));
            race_set(&rc, 1, act_cancel, &ca, rdelay(150000));
            race_run(&rc, p);
            wait_rec(p, r, 10000, "send vs cancel");
            tx_outcome(t, r, len, ca.ret, cnt);
        } else {
            /* the buffer drained meanwhile (TCP): a synchronous send is whole */
            if (st != TACIO_SUCCESS || r->op.bytes != len)
                TT_FAIL("send on a full buffer returned %s with %llu of %zu bytes", sname(st),
                        (unsigned long long)r->op.bytes, len);
            bytes_add(&t->want, r->buf, len);
            sync++;
        }
        tx_verify(t, "send vs cancel");
    }
    race_fini(&rc);
    tt_context("%s", "");
    tt_note("%u iterations: %u whole, %u short SUCCESS, %u CANCELLED with 0, %u CANCELLED with "
         "partial bytes, %u synchronous", n, cnt[0], cnt[1], cnt[2], cnt[3], sync);
    tx_close(&tx[0]);
    tx_close(&tx[1]);
    settle_and_close(p);
    recs_free();
}

/* ---- (d) cancel of an op completed but not yet dequeued --------------------------------- */

typedef struct deq_arg {
    tacio_port_t *port;
    unsigned max;
    tacio_entry_t e[4];
    unsigned n;
} deq_arg_t;

static void act_dequeue_one(void *arg)
{
    deq_arg_t *d = arg;
    d->n = 0;
    ASSERT_OK(tacio_port_dequeue(d->port, d->e, d->max, &d->n, 5000));
}

TT_CASE(cancel_completed_not_dequeued)
{
    /* The case needs the kernel to finish a receive while no thread is in
     * the port (it waits for the data to leave the socket first). io_uring
     * does; the epoll backend acts on readiness only inside a dequeue
     * (docs/design.md, known differences). */
    if (strcmp(tt_backend(), "epoll") == 0)
        TT_SKIP("epoll completes receives only while a thread waits in the port");
    const unsigned n = iters(3000);
    /* a helper thread dequeues too and then counts as running: leave room */
    tacio_port_t *p = tt_port(4);
    rec_t *r = recs_alloc(3, 2048);
    /* queued-always: a receive that finds its data completes in its start
     * call and is queued (PENDING): it is over before anyone cancels. */
    pair_t q[2], a, b;
    pair_open(&q[0], p, TR_UNIX, TACIO_HANDLE_QUEUED_ALWAYS, 1500);
    pair_open(&q[1], p, TR_UDGRAM, TACIO_HANDLE_QUEUED_ALWAYS, 1500);
    pair_open(&a, p, TR_UNIX, 0, 1500);
    pair_open(&b, p, TR_UNIX, 0, 1500);
    race_t rc;
    race_init(&rc, 2);
    unsigned reaped_nf = 0, reaped_requested = 0;
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        if (i % 2 == 0) {
            /* queued-always, data there first: cancel (racing the dequeue) is
             * always NOT_FOUND, the one completion is the data. */
            pair_t *pp = &q[tt_rand_below(2)];
            size_t sz = peer_write(pp);
            ASSERT_EQ_STATUS(start_rx(pp, &r[0], pp->dgram ? r[0].cap : sz), TACIO_PENDING);
            cancel_arg_t ca = { &r[0].op, 0 };
            deq_arg_t d = { p, 4, {{0}}, 0 };
            race_set(&rc, 0, act_cancel, &ca, rdelay(20000));
            race_set(&rc, 1, act_dequeue_one, &d, rdelay(20000));
            race_run(&rc, NULL);
            ASSERT_EQ_INT(d.n, 1);
            ASSERT_EQ_PTR(d.e[0].op, &r[0].op);
            route(&d.e[0], 0);
            if (ca.ret != TACIO_NOT_FOUND)
                TT_FAIL("tacio_cancel of an op already completed (queued, not dequeued) "
                        "returned %s", sname(ca.ret));
            ASSERT_EQ_STATUS(r[0].last.status, TACIO_SUCCESS);
            rx_accept(pp, r[0].buf, r[0].last.bytes, "queued completion");
            ASSERT_EQ_STATUS(tacio_cancel(&r[0].op), TACIO_NOT_FOUND);
            rx_drain(pp, p, &r[2]);
        } else {
            /* Two receives whose data the kernel has consumed (both CQEs
             * posted); a dequeue of one reaps both. Cancel of the other,
             * racing that dequeue: NOT_FOUND once it is reaped, "requested"
             * before; either way one completion, with the data. */
            ASSERT_EQ_STATUS(start_rx(&a, &r[0], 1500), TACIO_PENDING);
            ASSERT_EQ_STATUS(start_rx(&b, &r[1], 1500), TACIO_PENDING);
            ASSERT_OK(tacio_port_flush(p));
            peer_write(&a);
            wait_consumed(&a);
            peer_write(&b);
            wait_consumed(&b);
            cancel_arg_t ca = { &r[1].op, 0 };
            deq_arg_t d = { p, 1, {{0}}, 0 };
            race_set(&rc, 0, act_cancel, &ca, rdelay(30000));
            race_set(&rc, 1, act_dequeue_one, &d, rdelay(30000));
            race_run(&rc, NULL);
            ASSERT_EQ_INT(d.n, 1);
            route(&d.e[0], 0);
            wait_rec(p, &r[0], 5000, "first receive");
            wait_rec(p, &r[1], 5000, "second receive");
            /* both consumed their data before any cancel: natural results */
            ASSERT_EQ_STATUS(r[0].last.status, TACIO_SUCCESS);
            ASSERT_EQ_STATUS(r[1].last.status, TACIO_SUCCESS);
            rx_accept(&a, r[0].buf, r[0].last.bytes, "first receive");
            rx_accept(&b, r[1].buf, r[1].last.bytes, "second receive");
            ca.ret == TACIO_NOT_FOUND ? reaped_nf++ : reaped_requested++;
            ASSERT_EQ_STATUS(tacio_cancel(&r[1].op), TACIO_NOT_FOUND);
            rx_drain(&a, p, &r[2]);
            rx_drain(&b, p, &r[2]);
        }
    }
    race_fini(&rc);
    tt_context("%s", "");
    tt_note("%u iterations; reaped-not-dequeued: cancel NOT_FOUND %u, requested %u (natural "
         "result every time)", n, reaped_nf, reaped_requested);
    pair_close(&q[0]);
    pair_close(&q[1]);
    pair_close(&a);
    pair_close(&b);
    settle_and_close(p);
    recs_free();
}

/* ---- (e) tacio_cancel_handle with several pending ops racing completions ---------------- */

typedef struct multi {
    pair_t *rx;          /* recvs pending (unix stream) */
    txside_t *tx;        /* sends pending on a full buffer */
    tacio_handle_t *lh;  /* accepts pending (TCP listener) */
    struct sockaddr_in laddr;
    /* the completer's plan */
    unsigned writes, connects;
    int clients[4];
    unsigned nclients;
    /* the canceller's results */
    tacio_status_t cret[3];
    unsigned order[3];
    uint64_t gap_ns[3];
} multi_t;

static void act_complete_some(void *arg)
{
    multi_t *m = arg;
    unsigned acts[3] = { 0, 1, 2 };
    for (unsigned i = 0; i < 3; i++) {
        unsigned j = i + (unsigned)tt_rand_below(3 - i), x = acts[i];
        acts[i] = acts[j];
        acts[j] = x;
    }
    for (unsigned i = 0; i < 3; i++) {
        spin_ns(rdelay(15000));
        if (acts[i] == 0) {
            for (unsigned k = 0; k < m->writes; k++)
                peer_write(m->rx);
        } else if (acts[i] == 1) {
            peer_read(m->tx, m->tx->read_now);
        } else {
            for (unsigned k = 0; k < m->connects; k++) {
                int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ASSERT_TRUE(c >= 0);
                if (connect(c, (struct sockaddr *)&m->laddr, sizeof m->laddr) != 0)
                    TT_FAIL("connect to listener: %s", strerror(errno));
                m->clients[m->nclients++] = c;
            }
        }
    }
}

static void act_cancel_handles(void *arg)
{
    multi_t *m = arg;
    tacio_handle_t *hs[3] = { m->rx->h, m->tx->h, m->lh };
    for (unsigned i = 0; i < 3; i++) {
        spin_ns(m->gap_ns[i]);
        unsigned k = m->order[i];
        m->cret[k] = tacio_cancel_handle(hs[k]);
        if (m->cret[k] != TACIO_SUCCESS && m->cret[k] != TACIO_NOT_FOUND)
            TT_FAIL("tacio_cancel_handle returned %s", sname(m->cret[k]));
    }
}

TT_CASE(cancel_handle_many_ops)
{
    const unsigned n = iters(2000);
    tacio_port_t *p = tt_port(0);
    /* records 0-2 recvs, 3-4 sends, 5-6 accepts, 7 drain, 8-9 probes */
    rec_t *r = recs_alloc(10, 16384);
    pair_t rx;
    pair_open(&rx, p, TR_UNIX, 0, 700);
    txside_t tx;
    tx_open(&tx, p, TR_UNIX);
    multi_t m;
    memset(&m, 0, sizeof m);
    m.rx = &rx;
    m.tx = &tx;
    int lfd = tt_tcp_listener(64, &m.laddr);
    m.lh = tt_handle(p, lfd, 300, 0);
    race_t rc;
    race_init(&rc, 2);
    unsigned cancelled = 0, natural = 0;
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        unsigned nr = 1 + (unsigned)tt_rand_below(3), ns = 1 + (unsigned)tt_rand_below(2),
                 na = 1 + (unsigned)tt_rand_below(2);
        size_t rlen[3], slen[2];
        for (unsigned k = 0; k < nr; k++) {
            rlen[k] = 1 + tt_rand_below(600);
            ASSERT_EQ_STATUS(start_rx(&rx, &r[k], rlen[k]), TACIO_PENDING);
        }
        tx_fill(&tx);
        tacio_status_t sret[2];
        for (unsigned k = 0; k < ns; k++) {
            rec_t *s = &r[3 + k];
            slen[k] = 1 + tt_rand_below(s->cap);
            fill_random(s->buf, slen[k]);
            arm(s);
            sret[k] = started(s, tacio_send(tx.h, &s->op, s->buf, slen[k]));
            if (sret[k] != TACIO_PENDING && sret[k] != TACIO_SUCCESS)
                TT_FAIL("send on a full buffer returned %s", sname(sret[k]));
        }
        for (unsigned k = 0; k < na; k++) {
            rec_t *a = &r[5 + k];
            arm(a);
            ASSERT_EQ_STATUS(started(a, tacio_accept(m.lh, &a->op, &a->addr)), TACIO_PENDING);
        }
        maybe_flush(p);

        m.writes = (unsigned)tt_rand_below(3);
        m.connects = (unsigned)tt_rand_below(3);
        m.nclients = 0;
        tx.read_now = tx.want.n && tt_rand_below(2) ? 1 + tt_rand_below(tx.want.n) : 0;
        for (unsigned k = 0; k < 3; k++) {
            m.order[k] = k;
            m.gap_ns[k] = rdelay(20000);
        }
        for (unsigned k = 0; k < 3; k++) {
            unsigned j = k + (unsigned)tt_rand_below(3 - k), x = m.order[k];
            m.order[k] = m.order[j];
            m.order[j] = x;
        }
        race_set(&rc, 0, act_complete_some, &m, rdelay(20000));
        race_set(&rc, 1, act_cancel_handles, &m, rdelay(20000));
        race_run(&rc, p);

        /* After cancel_handle returned, every op of the handle that was
         * pending at the call completes, soon: cancelled or natural. */
        for (unsigned k = 0; k < nr; k++)
            wait_rec(p, &r[k], 5000, "recv after tacio_cancel_handle");
        for (unsigned k = 0; k < ns; k++)
            if (sret[k] == TACIO_PENDING)
                wait_rec(p, &r[3 + k], 5000, "send after tacio_cancel_handle");
        for (unsigned k = 0; k < na; k++)
            wait_rec(p, &r[5 + k], 5000, "accept after tacio_cancel_handle");
        /* Probe: a receive started now, after every cancel_handle call has
         * returned, is not cancelled by them (a cancel acts on what is in
         * flight when it is called). */
        tacio_status_t probe = start_rx(&rx, &r[8], 1 + tt_rand_below(600));
        if (probe == TACIO_PENDING)
            ASSERT_OK(tacio_port_flush(p));

        /* recvs: in start order they continue the stream */
        for (unsigned k = 0; k < nr; k++) {
            int ok = rx_outcome(&rx, &r[k], r[k].last.status, r[k].last.bytes,
                                "recv vs cancel_handle");
            if (!ok && m.cret[0] == TACIO_NOT_FOUND)
                TT_FAIL("cancel_handle(recv handle) said NOT_FOUND, yet recv %u was CANCELLED", k);
            ok ? natural++ : cancelled++;
        }
        if (probe == TACIO_PENDING) {
            pump_once(p, 0);   /* a dequeue in between: cancels left over would act now */
            peer_write(&rx);
            wait_rec(p, &r[8], 5000, "recv started after cancel_handle returned");
            probe = r[8].last.status;
            if (probe == TACIO_CANCELLED)
                TT_FAIL("a recv started after tacio_cancel_handle returned was CANCELLED (a "
                        "cancel acted on an op that was not in flight when it was called)");
        }
        ASSERT_EQ_STATUS(probe, TACIO_SUCCESS);
        rx_accept(&rx, r[8].buf, r[8].op.bytes, "probe recv");
        rx_drain(&rx, p, &r[7]);
        /* sends */
        for (unsigned k = 0; k < ns; k++) {
            rec_t *s = &r[3 + k];
            if (sret[k] == TACIO_SUCCESS) {
                bytes_add(&tx.want, s->buf, (size_t)s->op.bytes);
                continue;
            }
            unsigned cnt[4] = {0};
            tx_outcome(&tx, s, slen[k], m.cret[1], cnt);
            s->last.status == TACIO_CANCELLED ? cancelled++ : natural++;
        }
        tx_verify(&tx, "sends vs cancel_handle");
        /* accepts: every connection accepted exactly once, by an op or later */
        unsigned accepted = 0;
        for (unsigned k = 0; k < na; k++) {
            rec_t *a = &r[5 + k];
            if (a->last.status == TACIO_SUCCESS) {
                int fd = (int)a->last.bytes;
                ASSERT_TRUE(fcntl(fd, F_GETFD) >= 0);
                tt_close(fd);
                accepted++;
                natural++;
            } else if (a->last.status == TACIO_CANCELLED) {
                if (m.cret[2] == TACIO_NOT_FOUND)
                    TT_FAIL("cancel_handle(listener) said NOT_FOUND, yet accept %u was CANCELLED", k);
                cancelled++;
            } else {
                TT_FAIL("accept vs cancel_handle: %s", sname(a->last.status));
            }
        }
        if (accepted > m.nclients)
            TT_FAIL("%u accepts succeeded for %u connections", accepted, m.nclients);
        while (accepted < m.nclients) {
            if (!(tt_poll(lfd, POLLIN, 5000) & POLLIN))
                TT_FAIL("connection lost: %u connected, %u accepted", m.nclients, accepted);
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            ASSERT_TRUE(fd >= 0);
            tt_close(fd);
            accepted++;
        }
        if (tt_poll(lfd, POLLIN, 0) & POLLIN)
            TT_FAIL("more connections pending than were made");
        /* Probe: an accept started after the cancels returned is not
         * cancelled by them either. */
        rec_t *pa = &r[9];
        arm(pa);
        ASSERT_EQ_STATUS(started(pa, tacio_accept(m.lh, &pa->op, &pa->addr)), TACIO_PENDING);
        ASSERT_OK(tacio_port_flush(p));
        pump_once(p, 0);
        int pc = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(pc >= 0);
        ASSERT_EQ_INT(connect(pc, (struct sockaddr *)&m.laddr, sizeof m.laddr), 0);
        wait_rec(p, pa, 5000, "accept started after cancel_handle returned");
        if (pa->last.status == TACIO_CANCELLED)
            TT_FAIL("an accept started after tacio_cancel_handle returned was CANCELLED");
        ASSERT_EQ_STATUS(pa->last.status, TACIO_SUCCESS);
        tt_close((int)pa->last.bytes);
        tt_close(pc);
        for (unsigned k = 0; k < m.nclients; k++)
            tt_close(m.clients[k]);
    }
    race_fini(&rc);
    tt_context("%s", "");
    tt_note("%u iterations: %u ops cancelled, %u natural", n, cancelled, natural);
    pair_close(&rx);
    tx_close(&tx);
    ASSERT_OK(tacio_handle_close(m.lh));
    settle_and_close(p);
    recs_free();
}

/* ---- (f) a record reused at once, cancels of the old generation -------------------------- */

/* One record, restarted the moment its completion is dequeued, thousands of
 * times, while a canceller thread calls tacio_cancel on it at random
 * moments. A cancel only acts on the record's operation in flight while the
 * call runs: an operation during whose whole life (start call to delivery)
 * no cancel call was running must complete naturally, and a delivered
 * record must always be startable again (no cancel may stick to it). */
typedef struct reuse {
    rec_t *r;
    _Atomic int stop;
    _Atomic uint64_t begun, ended;    /* cancel calls */
    _Atomic uint64_t want_write;      /* writer: gens that asked for data */
    _Atomic uint64_t delivered_gen;   /* main: set when a generation is dequeued */
    pair_t *wp;
    uint64_t nf, req;
} reuse_t;

static void *reuse_canceller(void *arg)
{
    reuse_t *u = arg;
    uint64_t seen = 0;
    while (!atomic_load_explicit(&u->stop, memory_order_acquire)) {
        if (tt_rand_below(2)) {
            spin_ns(rdelay(30000));
        } else {
            /* aim at the boundary: right after a delivery, while the record
             * is being restarted */
            uint64_t deadline = tt_now_ns() + 2000000;
            while (atomic_load_explicit(&u->delivered_gen, memory_order_relaxed) == seen &&
                   tt_now_ns() < deadline && !atomic_load(&u->stop))
                cpu_relax();
            seen = atomic_load_explicit(&u->delivered_gen, memory_order_relaxed);
            spin_ns(tt_rand_below(3000));
        }
        atomic_fetch_add(&u->begun, 1);
        tacio_status_t st = tacio_cancel(&u->r->op);
        atomic_fetch_add(&u->ended, 1);
        if (st == TACIO_SUCCESS)
            u->req++;
        else if (st == TACIO_NOT_FOUND)
            u->nf++;
        else
            TT_FAIL("tacio_cancel returned %s", sname(st));
        if (tt_rand_below(8) == 0)
            sched_yield();
    }
    return NULL;
}

static void *reuse_writer(void *arg)
{
    reuse_t *u = arg;
    uint64_t done = 0;
    for (;;) {
        uint64_t want = atomic_load_explicit(&u->want_write, memory_order_acquire);
        if (want == done) {
            if (atomic_load_explicit(&u->stop, memory_order_acquire))
                return NULL;
            sched_yield();
            continue;
        }
        spin_ns(rdelay(20000));
        peer_write(u->wp);
        done++;
    }
}

TT_CASE(reused_record_old_cancel)
{
    const unsigned n = iters(20000);
    tacio_port_t *p = tt_port(0);
    rec_t *r = recs_alloc(2, 4096);
    pair_t sp, qp;
    pair_open(&sp, p, TR_UNIX, 0, 512);
    pair_open(&qp, p, TR_UDGRAM, TACIO_HANDLE_QUEUED_ALWAYS, 512);
    reuse_t u;
    memset(&u, 0, sizeof u);
    u.r = &r[0];
    u.wp = &sp;
    pthread_t ct, wt;
    ASSERT_EQ_INT(pthread_create(&ct, NULL, reuse_canceller, &u), 0);
    ASSERT_EQ_INT(pthread_create(&wt, NULL, reuse_writer, &u), 0);
    unsigned clean = 0, overlapped = 0, cancelled = 0, kinds[3] = {0};
    for (unsigned i = 0; i < n; i++) {
        unsigned kind = (unsigned)tt_rand_below(3);
        tt_context("gen %u/%u, kind %u", i, n, kind);
        kinds[kind]++;
        /* No cancel call in progress now (b0 == e0) and none begun until the
         * delivery (b1 == b0): nothing may cancel this generation. */
        uint64_t e0 = atomic_load(&u.ended), b0 = atomic_load(&u.begun);
        tacio_status_t st;
        arm(&r[0]);
        if (kind == 0) {
            st = tacio_timer_start(p, &r[0].op, 77, tt_rand_below(30000));
        } else if (kind == 1) {
            atomic_fetch_add_explicit(&u.want_write, 1, memory_order_release);
            st = tacio_recv(sp.h, &r[0].op, r[0].buf, 1 + tt_rand_below(r[0].cap));
        } else {
            peer_write(&qp);
            st = tacio_recv(qp.h, &r[0].op, r[0].buf, r[0].cap);
        }
        if (st == TACIO_OP_IN_USE)
            TT_FAIL("a delivered record could not be restarted: OP_IN_USE (a cancel left "
                    "its mark on an idle record?)");
        started(&r[0], st);
        if (st == TACIO_PENDING) {
            if (tt_rand_below(2))
                ASSERT_OK(tacio_port_flush(p));
            wait_rec(p, &r[0], 10000, "reused record");
            atomic_store_explicit(&u.delivered_gen, i + 1, memory_order_relaxed);
            st = r[0].last.status;
        } else if (!(kind == 1 && st == TACIO_SUCCESS) && st != TACIO_CANCELLED) {
            /* synchronous: data already there (recv), or a cancel that came
             * during the start call itself (CANCELLED, checked below) */
            TT_FAIL("start returned %s", sname(st));
        }
        uint64_t b1 = atomic_load(&u.begun);
        int quiet = b0 == e0 && b1 == b0;
        quiet ? clean++ : overlapped++;
        if (st == TACIO_CANCELLED) {
            cancelled++;
            if (quiet)
                TT_FAIL("generation %u completed CANCELLED, but no tacio_cancel call ran "
                        "during its life (a cancel of an older generation reached it)", i);
            if (r[0].op.bytes != 0)
                TT_FAIL("CANCELLED with %llu bytes", (unsigned long long)r[0].op.bytes);
            continue;
        }
        if (st != TACIO_SUCCESS)
            TT_FAIL("reused record completed with %s", sname(st));
        if (kind == 1)
            rx_accept(&sp, r[0].buf, r[0].op.bytes, "reused recv");
        else if (kind == 2)
            rx_accept(&qp, r[0].buf, r[0].op.bytes, "reused recv (queued-always)");
    }
    atomic_store(&u.stop, 1);
    pthread_join(ct, NULL);
    pthread_join(wt, NULL);
    tt_context("final drain");
    rx_drain(&sp, p, &r[1]);
    rx_drain(&qp, p, &r[1]);
    tt_context("%s", "");
    tt_note("%u generations (timer %u, recv %u, queued recv %u): %u with no cancel call in their "
         "life, %u overlapped, %u cancelled; cancel calls: %llu requested, %llu NOT_FOUND", n,
         kinds[0], kinds[1], kinds[2], clean, overlapped, cancelled,
         (unsigned long long)u.req, (unsigned long long)u.nf);
    pair_close(&sp);
    pair_close(&qp);
    settle_and_close(p);
    recs_free();
}

/* ---- (g) port close racing pending ops and posts ------------------------------------------ */

#define G_RECS 24
#define G_POSTS 4096

typedef struct gctx {
    tacio_port_t *port;
    pair_t pairs[3];
    _Atomic int stop;
    _Atomic int closing;        /* close called */
    _Atomic int close_returned;
    int closer_tid;
    _Atomic int tid_poster, tid_starter, tid_dequeuer;
    _Atomic int first_odd_tid;          /* first discard off the closing thread */
    tacio_entry_t first_odd;
    _Atomic int first_late_tid;         /* first discard after close returned */
    tacio_entry_t first_late;
    _Atomic uint32_t post_ok[G_POSTS], post_seen[G_POSTS];
    _Atomic unsigned nposts;
    _Atomic unsigned discards, discard_elsewhere, discard_late;
    unsigned pending_started, refused;
} gctx_t;

static gctx_t *g_g;

static void g_post_seen(const tacio_entry_t *e, int discarded)
{
    (void)discarded;
    uintptr_t idx = (uintptr_t)e->op;
    if (e->key != 0x9057 || idx >= G_POSTS)
        TT_FAIL("posted packet with key %llu ptr %p: not ours", (unsigned long long)e->key,
                (void *)e->op);
    if (atomic_fetch_add(&g_g->post_seen[idx], 1) != 0)
        TT_FAIL("posted packet %u delivered twice", (unsigned)idx);
}

static void g_discard(const tacio_entry_t *e, void *arg)
{
    gctx_t *g = arg;
    atomic_fetch_add(&g->discards, 1);
    int me = tt_gettid();
    if (me != g->closer_tid) {
        int z = 0;
        if (atomic_compare_exchange_strong(&g->first_odd_tid, &z, me))
            g->first_odd = *e;
        atomic_fetch_add(&g->discard_elsewhere, 1);
    }
    if (atomic_load(&g->close_returned)) {
        int z = 0;
        if (atomic_compare_exchange_strong(&g->first_late_tid, &z, me))
            g->first_late = *e;
        atomic_fetch_add(&g->discard_late, 1);
    }
    route(e, 1);
}

static void *g_poster(void *arg)
{
    gctx_t *g = arg;
    atomic_store(&g->tid_poster, tt_gettid());
    while (!atomic_load(&g->stop)) {
        unsigned i = atomic_fetch_add(&g->nposts, 1);
        if (i >= G_POSTS)
            break;
        /* Mark before posting: the packet may be dequeued before post returns. */
        atomic_store(&g->post_ok[i], 1);
        tacio_status_t st = tacio_port_post(g->port, 0x9057, i, (void *)(uintptr_t)i,
                                            TACIO_SUCCESS);
        if (st != TACIO_SUCCESS) {
            atomic_store(&g->post_ok[i], 0);
            /* a closed port: PORT_DISCONNECTED (port.h); INVALID_HANDLE
             * was the older answer */
            if (st != TACIO_PORT_DISCONNECTED && st != TACIO_INVALID_HANDLE)
                TT_FAIL("post returned %s", sname(st));
            if (!atomic_load(&g->closing))
                TT_FAIL("post refused with %s before the port was closed", sname(st));
            break;
        }
        if (tt_rand_below(4) == 0)
            sched_yield();
    }
    return NULL;
}

static void *g_starter(void *arg)
{
    gctx_t *g = arg;
    atomic_store(&g->tid_starter, tt_gettid());
    while (!atomic_load(&g->stop)) {
        rec_t *r = &g_rec[tt_rand_below(G_RECS)];
        if (owed(r)) {
            if (tt_rand_below(4) == 0)
                tacio_cancel(&r->op);
            if (tt_rand_below(8) == 0) {
                pair_t *pp = &g->pairs[tt_rand_below(3)];
                if (!atomic_load(&g->close_returned))
                    peer_write(pp);
            }
            sched_yield();
            continue;
        }
        unsigned what = (unsigned)tt_rand_below(4);
        tacio_status_t st;
        arm(r);
        if (what == 0) {
            st = tacio_timer_start(g->port, &r->op, 5, tt_rand_below(200000));
        } else {
            pair_t *pp = &g->pairs[what - 1];
            st = pp->tr == TR_PIPE ? tacio_read(pp->h, &r->op, r->buf, r->cap, TACIO_OFFSET_NONE)
                                   : tacio_recv(pp->h, &r->op, r->buf, r->cap);
        }
        started(r, st);
        if (st == TACIO_PENDING) {
            g->pending_started++;
        } else if (st == TACIO_PORT_DISCONNECTED || st == TACIO_CANCELLED ||
                   st == TACIO_INVALID_HANDLE) {
            g->refused++;
            if (!atomic_load(&g->closing))
                TT_FAIL("start refused with %s before the port was closed", sname(st));
            if (atomic_load(&g->close_returned))
                break;
        } else if (st != TACIO_SUCCESS) {
            TT_FAIL("start during port close returned %s", sname(st));
        }
    }
    return NULL;
}

static void *g_dequeuer(void *arg)
{
    gctx_t *g = arg;
    atomic_store(&g->tid_dequeuer, tt_gettid());
    for (;;) {
        tacio_entry_t e[8];
        unsigned n = 0;
        tacio_status_t st = tacio_port_dequeue(g->port, e, 8, &n, 100);
        if (st == TACIO_ABANDONED) {
            ASSERT_EQ_INT(n, 0);
            return NULL;
        }
        if (st == TACIO_TIMEOUT)
            continue;
        ASSERT_OK(st);
        for (unsigned i = 0; i < n; i++)
            route(&e[i], 0);
    }
}

TT_CASE(port_close_races_ops_and_posts)
{
    const unsigned n = iters(600);
    int base = tt_fd_count();
    recs_alloc(G_RECS, 2048);
    gctx_t *g = calloc(1, sizeof *g);
    ASSERT_TRUE(g != NULL);
    g_g = g;
    g_post_hook = g_post_seen;
    uint64_t pend = 0, posts = 0, discards = 0, elsewhere = 0, late = 0;
    char odd[256] = "", lateinfo[256] = "";
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        memset(g, 0, sizeof *g);
        g->port = tt_port(0);
        g->closer_tid = tt_gettid();
        pair_open(&g->pairs[0], g->port, TR_UNIX, 0, 300);
        pair_open(&g->pairs[1], g->port, TR_UDGRAM, 0, 300);
        pair_open(&g->pairs[2], g->port, TR_PIPE, 0, 300);
        for (unsigned k = 0; k < 3; k++) {
            tt_set_nonblock(g->pairs[k].peer);
            g->pairs[k].nb = 1;
        }
        /* a few pending before the race */
        for (unsigned k = 0; k < 4; k++) {
            rec_t *r = &g_rec[k];
            arm(r);
            started(r, k == 0 ? tacio_timer_start(g->port, &r->op, 5, 10000000000ull)
                              : tacio_recv(g->pairs[k % 2].h, &r->op, r->buf, r->cap));
        }
        pthread_t tp, ts, td;
        ASSERT_EQ_INT(pthread_create(&tp, NULL, g_poster, g), 0);
        ASSERT_EQ_INT(pthread_create(&ts, NULL, g_starter, g), 0);
        ASSERT_EQ_INT(pthread_create(&td, NULL, g_dequeuer, g), 0);
        spin_ns(tt_rand_below(1500000));
        atomic_store(&g->closing, 1);
        ASSERT_OK(tacio_port_close(g->port, g_discard, g));
        atomic_store(&g->close_returned, 1);
        atomic_store(&g->stop, 1);
        pthread_join(tp, NULL);
        pthread_join(ts, NULL);
        pthread_join(td, NULL);
        for (unsigned k = 0; k < 3; k++)
            pair_close(&g->pairs[k]);
        for (unsigned k = 0; k < G_RECS; k++) {
            rec_t *r = &g_rec[k];
            if (owed(r))
                TT_FAIL("record %u: started PENDING, neither dequeued nor discarded by the "
                        "port close", k);
            ASSERT_EQ_INT(atomic_load(&r->delivered), atomic_load(&r->pending));
        }
        unsigned np = atomic_load(&g->nposts);
        for (unsigned k = 0; k < np && k < G_POSTS; k++) {
            unsigned ok = atomic_load(&g->post_ok[k]), seen = atomic_load(&g->post_seen[k]);
            if (ok != seen)
                TT_FAIL("posted packet %u: post %s, delivered %u times", k,
                        ok ? "succeeded" : "failed", seen);
            posts += ok;
        }
        pend += g->pending_started;
        discards += atomic_load(&g->discards);
        elsewhere += atomic_load(&g->discard_elsewhere);
        late += atomic_load(&g->discard_late);
        int lt = atomic_load(&g->first_late_tid);
        if (lt && !lateinfo[0]) {
            const char *who = lt == atomic_load(&g->tid_dequeuer) ? "the dequeuer"
                              : lt == atomic_load(&g->tid_starter) ? "the op starter"
                              : lt == atomic_load(&g->tid_poster)  ? "the poster"
                              : lt == g->closer_tid                ? "the closing"
                                                                   : "another";
            snprintf(lateinfo, sizeof lateinfo, "first in iteration %u: on %s thread, entry "
                     "kind %u status %s", i, who, g->first_late.kind,
                     sname(g->first_late.status));
        }
        int ot = atomic_load(&g->first_odd_tid);
        if (ot && !odd[0]) {
            const char *who = ot == atomic_load(&g->tid_dequeuer) ? "the dequeuer"
                              : ot == atomic_load(&g->tid_starter) ? "the op starter"
                              : ot == atomic_load(&g->tid_poster)  ? "the poster"
                                                                   : "another";
            snprintf(odd, sizeof odd, "first in iteration %u: on %s thread, entry kind %u "
                     "status %s", i, who, g->first_odd.kind, sname(g->first_odd.status));
        }
        if (i % 128 == 127)
            check_fds(base, "after port close");
    }
    tt_context("%s", "");
    tt_note("%u iterations: %llu pending starts, %llu posts, %llu discarded (%llu off the closing "
         "thread, %llu after close returned)", n, (unsigned long long)pend,
         (unsigned long long)posts, (unsigned long long)discards,
         (unsigned long long)elsewhere, (unsigned long long)late);
    g_post_hook = NULL;
    free(g);
    recs_free();
    /* Exactly-once held everywhere (checked per iteration above); now the
     * rest of port.h's promise about discard. */
    if (late)
        TT_FAIL("discard callback ran after tacio_port_close returned (%llu times); %s",
                (unsigned long long)late, lateinfo);
    if (elsewhere)
        TT_FAIL("discard callback ran on a thread other than the one closing the port, %llu "
                "of %llu times (port.h: \"discard runs on the calling thread\"); %s",
                (unsigned long long)elsewhere, (unsigned long long)discards, odd);
}

/* ---- (g') the minimal form: a post racing the port close --------------------------------- */

/* One thread posts in a loop, one waits in dequeue (so a post must wake
 * it), the main thread closes the port at a random moment. Every post that
 * returned SUCCESS is dequeued or discarded exactly once, and nothing
 * crashes: a post in progress when close begins must not touch the
 * backend after close has torn it down. */
typedef struct pc {
    tacio_port_t *port;
    _Atomic uint64_t ok, seen;
} pc_t;

static pc_t *g_pc;

static void pc_seen(const tacio_entry_t *e, int discarded)
{
    (void)discarded;
    if (e->key != 0x9C)
        TT_FAIL("posted packet with key %llu: not ours", (unsigned long long)e->key);
    atomic_fetch_add(&g_pc->seen, 1);
}

static void pc_discard(const tacio_entry_t *e, void *arg)
{
    (void)arg;
    route(e, 1);
}

static void *pc_poster(void *arg)
{
    pc_t *c = arg;
    for (;;) {
        atomic_fetch_add(&c->ok, 1);   /* before: it may be dequeued before post returns */
        tacio_status_t st = tacio_port_post(c->port, 0x9C, 0, NULL, TACIO_SUCCESS);
        if (st == TACIO_SUCCESS)
            continue;
        atomic_fetch_sub(&c->ok, 1);
        if (st != TACIO_PORT_DISCONNECTED && st != TACIO_INVALID_HANDLE)
            TT_FAIL("post returned %s", sname(st));
        return NULL;
    }
}

static void *pc_dequeuer(void *arg)
{
    pc_t *c = arg;
    for (;;) {
        tacio_entry_t e[8];
        unsigned n = 0;
        tacio_status_t st = tacio_port_dequeue(c->port, e, 8, &n, 100);
        if (st == TACIO_ABANDONED)
            return NULL;
        if (st == TACIO_TIMEOUT)
            continue;
        ASSERT_OK(st);
        for (unsigned i = 0; i < n; i++)
            route(&e[i], 0);
    }
}

TT_CASE(post_racing_port_close)
{
    const unsigned n = iters(3000);
    pc_t c;
    g_pc = &c;
    g_post_hook = pc_seen;
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        memset(&c, 0, sizeof c);
        c.port = tt_port(0);
        pthread_t tp, td;
        ASSERT_EQ_INT(pthread_create(&td, NULL, pc_dequeuer, &c), 0);
        ASSERT_EQ_INT(pthread_create(&tp, NULL, pc_poster, &c), 0);
        spin_ns(tt_rand_below(300000));
        ASSERT_OK(tacio_port_close(c.port, pc_discard, NULL));
        pthread_join(tp, NULL);
        pthread_join(td, NULL);
        if (atomic_load(&c.ok) != atomic_load(&c.seen))
            TT_FAIL("%llu posts succeeded, %llu dequeued or discarded",
                    (unsigned long long)atomic_load(&c.ok),
                    (unsigned long long)atomic_load(&c.seen));
        total += atomic_load(&c.ok);
    }
    tt_context("%s", "");
    tt_note("%u closes, %llu posts, each delivered once", n, (unsigned long long)total);
    g_post_hook = NULL;
}

/* ---- (g2) starts racing the close of their handle ---------------------------------------- */

/* A thread writes to a pipe through its handle in a loop while the main
 * thread closes the handle. A start that checked the handle just before the
 * close dropped the last reference must be answered FILE_CLOSED or
 * INVALID_HANDLE without reviving the handle: reviving it made its release
 * free it a second time, and the free list then gave one handle to two
 * later opens (found by test-stress on epoll under ASan). */
typedef struct sc {
    tacio_handle_t *h;
    rec_t *r;
    _Atomic int go;
    unsigned writes;
    tacio_status_t last;
} sc_t;

static void *sc_writer(void *arg)
{
    sc_t *c = arg;
    atomic_store_explicit(&c->go, 1, memory_order_release);
    for (;;) {
        arm(c->r);
        tacio_status_t st =
            started(c->r, tacio_write(c->h, &c->r->op, "x", 1, TACIO_OFFSET_NONE));
        if (st != TACIO_SUCCESS) {
            c->last = st;
            return NULL;
        }
        c->writes++;
    }
}

TT_CASE(start_racing_handle_close)
{
    const unsigned n = iters(12000);
    tacio_port_t *p = tt_port(0);
    recs_alloc(1, 16);
    unsigned closed_first = 0, raced = 0;
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        int fds[2];
        tt_pipe(fds);
        sc_t c = { .h = tt_handle(p, fds[1], 1, 0), .r = &g_rec[0] };
        pthread_t t;
        ASSERT_EQ_INT(pthread_create(&t, NULL, sc_writer, &c), 0);
        /* Yield, not spin: with another test on both CPUs the new thread
         * may not run until this one gives up its slice. */
        while (!atomic_load_explicit(&c.go, memory_order_acquire))
            sched_yield();
        spin_ns(tt_rand_below(20000));
        ASSERT_OK(tacio_handle_close(c.h));
        pthread_join(t, NULL);
        if (c.last == TACIO_PENDING) /* the pipe filled up: the close cancels it */
            wait_rec(p, c.r, 5000, "write pending at close");
        else if (c.last != TACIO_FILE_CLOSED && c.last != TACIO_INVALID_HANDLE)
            TT_FAIL("a write racing the close returned %s", sname(c.last));
        if (c.last == TACIO_INVALID_HANDLE)
            closed_first++;
        else
            raced++;
        ASSERT_EQ_STATUS(tacio_handle_close(c.h), TACIO_INVALID_HANDLE);
        close(fds[0]);
        /* The handle was freed once: two new opens get two different handles. */
        int a[2], b[2];
        tt_pipe(a);
        tt_pipe(b);
        tacio_handle_t *ha = tt_handle(p, a[0], 2, 0), *hb = tt_handle(p, b[0], 3, 0);
        if (ha == hb)
            TT_FAIL("two open handles share one record %p: a handle was freed twice", (void *)ha);
        ASSERT_OK(tacio_handle_close(ha));
        ASSERT_OK(tacio_handle_close(hb));
        close(a[1]);
        close(b[1]);
    }
    tt_context("%s", "");
    tt_note("%u closes raced by writes: %u writes saw FILE_CLOSED or a pending cancel, %u saw "
         "the handle already gone", n, raced, closed_first);
    settle_and_close(p);
    recs_free();
}

/* ---- a cancel racing the close and reuse of the op's handle ----------------------- */

/* A canceller that saw the record in flight may find, a moment later, that
 * it completed, its handle closed and the handle's memory opened again for
 * another fd (closed handles are recycled). The cancel must then answer
 * NOT_FOUND (or cancel the record's next use, on its own handle), never act
 * on the handle that took the old one's place: CI's TSan run caught
 * tacio_cancel reading a handle that tacio_handle_open was clearing. */
typedef struct canceller {
    tacio_op_t *op;
    _Atomic int stop;
    _Atomic unsigned tries, hits;
} canceller_t;

static void *cancel_loop(void *arg)
{
    canceller_t *c = arg;
    while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
        tacio_status_t st = tacio_cancel(c->op);
        if (st == TACIO_SUCCESS)
            atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
        else if (st != TACIO_NOT_FOUND)
            TT_FAIL("tacio_cancel racing a close returned %s", sname(st));
        atomic_fetch_add_explicit(&c->tries, 1, memory_order_relaxed);
    }
    return NULL;
}

TT_CASE(cancel_racing_handle_close_and_reuse)
{
    const unsigned n = iters(40000);
    tacio_port_t *p = tt_port(0);
    recs_alloc(1, 16);
    rec_t *r = &g_rec[0];
    canceller_t c = { .op = &r->op };
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, cancel_loop, &c), 0);
    unsigned pending = 0, cancelled = 0, sync_cancelled = 0, sync_closed = 0;
    for (unsigned i = 0; i < n; i++) {
        tt_context("iter %u/%u", i, n);
        int fds[2];
        tt_pipe(fds);
        tacio_handle_t *h = tt_handle(p, fds[0], 1, 0);
        arm(r);
        tacio_status_t st = started(r, tacio_read(h, &r->op, r->buf, r->cap, TACIO_OFFSET_NONE));
        spin_ns(rdelay(20000));
        ASSERT_OK(tacio_handle_close(h));
        if (st == TACIO_PENDING) {
            pending++;
            wait_rec(p, r, 5000, "read pending at close");
            if (r->last.status != TACIO_CANCELLED)
                TT_FAIL("a read ended by a close or a cancel came back %s",
                        sname(r->last.status));
            cancelled++;
        } else if (st == TACIO_CANCELLED) {
            sync_cancelled++; /* the canceller came while it was starting */
        } else if (st == TACIO_FILE_CLOSED) {
            sync_closed++;
        } else {
            TT_FAIL("a read of an empty pipe returned %s", sname(st));
        }
        /* The freed handle's memory goes to the next open, at once. */
        int a[2];
        tt_pipe(a);
        tacio_handle_t *ha = tt_handle(p, a[0], 2, 0);
        ASSERT_OK(tacio_handle_close(ha));
        close(a[1]);
        close(fds[1]);
    }
    atomic_store_explicit(&c.stop, 1, memory_order_release);
    pthread_join(t, NULL);
    tt_context("%s", "");
    tt_note("%u reads: %u pending (%u came back CANCELLED), %u cancelled while starting, %u "
            "closed while starting; %u cancels, %u found their target", n, pending, cancelled,
            sync_cancelled, sync_closed, atomic_load(&c.tries), atomic_load(&c.hits));
    settle_and_close(p);
    recs_free();
}

/* ---- a cancel that misses is retried at an interval ---------------------------------- */

/* A cancel can find its target already taken off the kernel's lists, its
 * completion waiting as task work for the thread that issued it; while that
 * thread runs user code (no system call, so no task work) every new cancel
 * misses too. Such cancels used to be sent again at once, in a loop: about
 * a thousand a millisecond for as long as the issuer ran (seen as 6 cancels
 * per TLS handshake in tacio-httpd). Now at most one round per millisecond,
 * and the target still completes once, CANCELLED. */
typedef struct busy_issuer {
    tacio_handle_t *h;
    tacio_op_t op;
    char buf[16];
    _Atomic int started;
    _Atomic int stop;
    tacio_status_t st;
} busy_issuer_t;

static void *busy_issuer_main(void *arg)
{
    busy_issuer_t *b = arg;
    b->st = tacio_recv(b->h, &b->op, b->buf, sizeof b->buf);
    atomic_store(&b->started, 1);
    /* User code only (the clock is the vDSO's) for up to 200 ms. */
    uint64_t end = tt_now_ns() + 200000000ull;
    while (!atomic_load(&b->stop) && tt_now_ns() < end)
        cpu_relax();
    return NULL;
}

TT_CASE(missed_cancel_retried_at_an_interval)
{
    tacio_port_t *p = tt_port(2);
    int fds[2];
    tt_socketpair(SOCK_STREAM, fds);
    busy_issuer_t b = {0};
    b.h = tt_handle(p, fds[0], 5, 0);
    tacio_op_init(&b.op);
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, busy_issuer_main, &b), 0);
    while (!atomic_load(&b.started))
        sched_yield();
    ASSERT_EQ_STATUS(b.st, TACIO_PENDING);
    /* The byte wakes the receive; its completion is now owed to the
     * spinning thread, so the cancel below finds nothing to cancel. */
    ASSERT_EQ_INT(write(fds[1], "x", 1), 1);
    uint64_t t0 = tt_now_ns();
    ASSERT_OK(tacio_cancel(&b.op));
    tacio_entry_t e;
    unsigned n = 0;
    ASSERT_OK(tacio_port_dequeue(p, &e, 1, &n, 10000));
    uint64_t ms = (tt_now_ns() - t0) / 1000000 + 1;
    atomic_store(&b.stop, 1);
    pthread_join(t, NULL);
    ASSERT_EQ_INT(n, 1);
    ASSERT_TRUE(e.op == &b.op);
    /* Either outcome, once: cancelled, or the byte. */
    if (e.status == TACIO_SUCCESS)
        ASSERT_TRUE(e.bytes == 1 && b.buf[0] == 'x');
    else
        ASSERT_EQ_STATUS(e.status, TACIO_CANCELLED);
    tacio_stats_t st;
    ASSERT_OK(tacio_port_stats(p, &st));
    tt_note("[%s] %s after %llu ms, %llu cancels sent again",
            tt_backend(), tacio_status_name(e.status), (unsigned long long)ms, (unsigned long long)st.cancels_retried);
    /* One round a millisecond, with slack for timer rounding. */
    ASSERT_TRUE(st.cancels_retried <= 2 * ms + 4);
    ASSERT_EQ_INT(tacio_port_dequeue(p, &e, 1, &n, 50), TACIO_TIMEOUT); /* and only once */
    tacio_handle_close(b.h);
    close(fds[1]);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

/* ---- (h) the issuing thread exits right after starting ------------------------------------ */

/* A thread starts a receive and exits while it is pending (as a plain
 * thread, or as a port worker whose submission is still batched when it
 * exits); the peer writes at a random moment around that exit. The receive
 * completes once, with the data. Each round runs several such threads on
 * different pairs at once: on this kernel a request whose submitter exited
 * is only failed (and re-issued by tacio) when its event comes, a jiffy or
 * two later, so rounds overlap that wait. */
#define H_PAIRS 10   /* two of each transport */

typedef struct exiter {
    pair_t *pp;
    rec_t *r;
    size_t len;
    tacio_port_t *port;
    int as_worker;          /* dequeue a packet first: batched submission at exit */
    uint64_t linger_ns, write_delay_ns;
    tacio_status_t ret;
    _Atomic int started;    /* the start call returned */
    pthread_t t;
} exiter_t;

static void *exit_after_start(void *arg)
{
    exiter_t *x = arg;
    if (x->as_worker) {
        /* become a thread running entries of the port (others' completions
         * may come first: route them) */
        for (;;) {
            tacio_entry_t e;
            unsigned n = 0;
            ASSERT_OK(tacio_port_dequeue(x->port, &e, 1, &n, 5000));
            ASSERT_EQ_INT(n, 1);
            if (e.kind == TACIO_ENTRY_POSTED && e.key == 0xE1)
                break;
            route(&e, 0);
        }
    }
    x->ret = start_rx(x->pp, x->r, x->len);
    atomic_store_explicit(&x->started, 1, memory_order_release);
    spin_ns(x->linger_ns);
    return NULL;   /* exits with the op pending */
}

typedef struct round {
    exiter_t *x;
    unsigned n;
} round_t;

/* The peer of each pair writes after its thread's start returned, at a
 * random moment around that thread's exit. */
static void act_write_after_starts(void *arg)
{
    round_t *rd = arg;
    for (unsigned k = 0; k < rd->n; k++) {
        exiter_t *x = &rd->x[k];
        while (!atomic_load_explicit(&x->started, memory_order_acquire))
            sched_yield();
        spin_ns(x->write_delay_ns);
        peer_write(x->pp);
    }
}

static void h_post_seen(const tacio_entry_t *e, int discarded)
{
    (void)discarded;
    TT_FAIL("posted packet %llu seen by the main thread", (unsigned long long)e->key);
}

TT_CASE(issuing_thread_exits)
{
    const unsigned n = iters(3000);
    tacio_port_t *p = tt_port(H_PAIRS + 2);
    rec_t *r = recs_alloc(H_PAIRS + 1, 4096);
    g_post_hook = h_post_seen;
    pair_t pairs[H_PAIRS];
    for (int t = 0; t < H_PAIRS; t++)
        pair_open(&pairs[t], p, t % TR_COUNT, 0, 1500);
    race_t rc;
    race_init(&rc, 1);
    unsigned worker_runs = 0, done = 0, rounds = 0;
    exiter_t x[H_PAIRS];
    while (done < n) {
        unsigned k = 1 + (unsigned)tt_rand_below(H_PAIRS);
        if (k > n - done)
            k = n - done;
        /* k distinct pairs, in random order */
        unsigned idx[H_PAIRS];
        for (unsigned j = 0; j < H_PAIRS; j++)
            idx[j] = j;
        for (unsigned j = 0; j < k; j++) {
            unsigned q = j + (unsigned)tt_rand_below(H_PAIRS - j), t = idx[j];
            idx[j] = idx[q];
            idx[q] = t;
        }
        tt_context("round %u, %u threads, %u of %u done", rounds, k, done, n);
        for (unsigned j = 0; j < k; j++) {
            pair_t *pp = &pairs[idx[j]];
            exiter_t *e = &x[j];
            memset(e, 0, sizeof *e);
            e->pp = pp;
            e->r = &r[idx[j]];
            e->len = pp->dgram ? e->r->cap : 1 + tt_rand_below(e->r->cap);
            e->port = p;
            e->as_worker = (int)tt_rand_below(2);
            e->linger_ns = rdelay(30000);
            e->write_delay_ns = rdelay(80000);
            worker_runs += (unsigned)e->as_worker;
            if (e->as_worker)
                ASSERT_OK(tacio_port_post(p, 0xE1, 0, NULL, TACIO_SUCCESS));
        }
        for (unsigned j = 0; j < k; j++)
            ASSERT_EQ_INT(pthread_create(&x[j].t, NULL, exit_after_start, &x[j]), 0);
        round_t rd = { x, k };
        race_set(&rc, 0, act_write_after_starts, &rd, 0);
        race_run(&rc, NULL);
        for (unsigned j = 0; j < k; j++)
            pthread_join(x[j].t, NULL);
        for (unsigned j = 0; j < k; j++) {
            exiter_t *e = &x[j];
            if (e->ret != TACIO_PENDING)
                TT_FAIL("%s: recv with nothing to read returned %s", tr_name[e->pp->tr],
                        sname(e->ret));
            wait_rec(p, e->r, 5000, "recv whose issuing thread exited");
            if (e->r->last.status == TACIO_CANCELLED)
                TT_FAIL("%s%s: recv completed CANCELLED after its issuing thread exited (I/O "
                        "must be thread-agnostic)", tr_name[e->pp->tr],
                        e->as_worker ? " (worker thread)" : "");
            ASSERT_EQ_STATUS(e->r->last.status, TACIO_SUCCESS);
            rx_accept(e->pp, e->r->buf, e->r->last.bytes, "recv after thread exit");
            rx_drain(e->pp, p, &r[H_PAIRS]);
        }
        done += k;
        rounds++;
    }
    race_fini(&rc);
    tt_context("%s", "");
    tacio_stats_t st;
    ASSERT_OK(tacio_port_stats(p, &st));
    tt_note("%u threads exited with a recv pending (%u of them port workers), %u rounds: "
         "reissued_after_exit %llu", n, worker_runs, rounds,
         (unsigned long long)st.reissued_after_exit);
    for (int t = 0; t < H_PAIRS; t++)
        pair_close(&pairs[t]);
    settle_and_close(p);
    g_post_hook = NULL;
    recs_free();
}

/* ---- the list --------------------------------------------------------------------------- */

static tt_case_t tt_cases[] = {
    TT_ENTRY(recv_cancel_vs_peer_write, 120),
    TT_ENTRY(recv_close_vs_peer_write, 120),
    TT_ENTRY(send_full_buffer_cancel, 120),
    TT_ENTRY(cancel_completed_not_dequeued, 120),
    TT_ENTRY(cancel_handle_many_ops, 120),
    TT_ENTRY(reused_record_old_cancel, 120),
    TT_ENTRY(port_close_races_ops_and_posts, 120),
    TT_ENTRY(post_racing_port_close, 120),
    TT_ENTRY(start_racing_handle_close, 120),
    TT_ENTRY(cancel_racing_handle_close_and_reuse, 120),
    TT_ENTRY(issuing_thread_exits, 120),
    TT_ENTRY(missed_cancel_retried_at_an_interval, 30),
};

/* With TACIO_RACE_ITERS above the defaults, give each case more time. */
__attribute__((constructor)) static void scale_timeouts(void)
{
    unsigned n = env_iters();
    if (!n)
        return;
    for (size_t i = 0; i < sizeof tt_cases / sizeof tt_cases[0]; i++) {
        unsigned f = n / 1000 + 1;
        tt_cases[i].timeout_s = tt_cases[i].timeout_s * (f < 1 ? 1 : f);
    }
}

TT_MAIN()
