/* faults.c - fault injection around the real backend (TACIO_FAULTS,
 * tacio_faults_configure; include/tacio/faults.h, docs/faults.md).
 *
 * A port created while a configuration is in force gets a second table in
 * front of its real backend: every entry delegates to p->fault_real, and
 * submit and wait inject, each fault with its probability, from a generator
 * of the port's own (seed + port number). This is a fake backend driven by
 * the real one: everything it hands the core is a real kernel result, only
 * refused, shortened, held back, shuffled, or announced wrongly.
 *
 * Where each fault is injected, and why there:
 *   submit  enomem (instead of arming), eagain (before arming: yield and a
 *           spurious wake of the poller), short (before arming: a shorter
 *           receive length, or a prefix of a stream send written here as
 *           the core's own synchronous attempt would), lie (after a real
 *           arming succeeded: the core is told BUFFER_OVERFLOW, so the op is
 *           both over for the caller and still in the kernel; its kernel
 *           completion goes through the real backend and tacio__op_finish
 *           like any other, and loses to the core's synchronous finish).
 *           Nothing reads the record after the real submit returned: it may
 *           have completed, been delivered and restarted by then.
 *   wait    eagain (an empty return without waiting, never twice running),
 *           delay (finished ops held in a list here until their time, the
 *           real wait's timeout capped at the earliest), reorder (the batch
 *           shuffled, each stream direction's ops kept in their order).
 *   drain   everything still held is handed out with the real drain's.
 *
 * Held ops are finished (DONE) and not yet queued: tacio_cancel says
 * NOT_FOUND for them, as for any completed op not yet dequeued, and each
 * keeps its handle reference until it is delivered. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tacio/faults.h>

#include "backend/backend.h"

enum { F_ENOMEM, F_EAGAIN, F_SHORT, F_DELAY, F_REORDER, F_LIE, F_KINDS };
static const char *const f_name[F_KINDS] = {"enomem", "eagain", "short", "delay", "reorder",
                                            "lie"};

#define REORDER_MAX 128 /* ops shuffled per wait; the rest keep their place after them */

struct fault_cfg {
    bool active;
    bool seeded;       /* seed given in the spec */
    uint64_t seed;
    double prob[F_KINDS];
    uint64_t delay_ns;
    char spec[256];    /* as given, for the log */
};

/* ---- configuration (process-wide) ------------------------------------------ */

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault_cfg cfg;          /* in force for ports created next */
static bool cfg_from_api;             /* tacio_faults_configure was called */
static char cfg_env[256];             /* the TACIO_FAULTS value cfg was parsed from */
static bool cfg_env_seen;
static _Atomic uint32_t port_counter; /* ports wrapped so far */
static _Atomic uint64_t totals[F_KINDS];

static bool parse_prob(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < 0 || d > 1)
        return false;
    *out = d;
    return true;
}

static bool parse_time(const char *v, uint64_t *ns)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || !isfinite(d) || d < 0)
        return false;
    double mult;
    if (!*end || !strcmp(end, "ms"))
        mult = 1e6;
    else if (!strcmp(end, "us"))
        mult = 1e3;
    else if (!strcmp(end, "ns"))
        mult = 1;
    else if (!strcmp(end, "s"))
        mult = 1e9;
    else
        return false;
    d *= mult;
    if (d > 3600e9) /* an hour: anything longer is a typo */
        return false;
    *ns = (uint64_t)d;
    return true;
}

static bool parse_seed(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*v == '-' || !*v)
        return false;
    unsigned long long s = strtoull(v, &end, 0);
    if (*end || errno)
        return false;
    *out = s;
    return true;
}

/* Parse spec into *c. False with a sentence in err naming the bad item. */
static bool parse_spec(const char *spec, struct fault_cfg *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!spec || !*spec)
        return true;
    if (strlen(spec) >= sizeof c->spec) {
        snprintf(err, errlen, "fault spec longer than %zu characters", sizeof c->spec - 1);
        return false;
    }
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    bool any = false;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t n = strlen(item);
        while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            item[--n] = 0;
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(err, errlen, "fault spec item \"%.60s\": expected key=value", item);
            return false;
        }
        *eq = 0;
        const char *key = item, *val = eq + 1;
        any = true;
        if (!strcmp(key, "seed")) {
            if (!parse_seed(val, &c->seed)) {
                snprintf(err, errlen, "fault spec: seed=\"%.60s\" is not an unsigned integer",
                         val);
                return false;
            }
            c->seeded = true;
            continue;
        }
        int k = -1;
        for (int i = 0; i < F_KINDS; i++)
            if (!strcmp(key, f_name[i]))
                k = i;
        if (k < 0) {
            snprintf(err, errlen, "fault spec: unknown key \"%.40s\" (known: seed, enomem, "
                                  "eagain, short, delay, reorder, lie)", key);
            return false;
        }
        char pv[64];
        snprintf(pv, sizeof pv, "%s", val);
        char *colon = strchr(pv, ':');
        if (k == F_DELAY) {
            if (!colon) {
                snprintf(err, errlen, "fault spec: delay=\"%.60s\": expected delay=P:T "
                                      "(e.g. delay=0.05:2ms)", val);
                return false;
            }
            *colon = 0;
            if (!parse_time(colon + 1, &c->delay_ns)) {
                snprintf(err, errlen, "fault spec: delay time \"%.40s\" is not a duration "
                                      "(a number with ns, us, ms or s, under an hour)",
                         colon + 1);
                return false;
            }
        } else if (colon) {
            snprintf(err, errlen, "fault spec: %s=\"%.60s\": only delay takes a time", key,
                     val);
            return false;
        }
        if (!parse_prob(pv, &c->prob[k])) {
            snprintf(err, errlen, "fault spec: %s=\"%.40s\": the probability must be a number "
                                  "in [0, 1]", key, pv);
            return false;
        }
    }
    c->active = any;
    if (!c->seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                  ((uint64_t)getpid() << 32);
    }
    return true;
}

tacio_status_t tacio_faults_configure(const char *spec)
{
    struct fault_cfg c;
    char err[200];
    if (!parse_spec(spec, &c, err, sizeof err)) {
        tacio__set_error("%s", err);
        return TACIO_INVALID_PARAMETER;
    }
    pthread_mutex_lock(&cfg_lock);
    cfg = c;
    cfg_from_api = true;
    pthread_mutex_unlock(&cfg_lock);
    return TACIO_SUCCESS;
}

/* TACIO_FAULTS, parsed again whenever its value changed (cfg_lock held). */
static void env_refresh_locked(void)
{
    if (cfg_from_api)
        return;
    const char *s = getenv("TACIO_FAULTS");
    if (!s)
        s = "";
    if (cfg_env_seen && !strcmp(s, cfg_env))
        return;
    cfg_env_seen = true;
    snprintf(cfg_env, sizeof cfg_env, "%s", s);
    char err[200];
    struct fault_cfg c;
    if (!parse_spec(s, &c, err, sizeof err)) {
        fprintf(stderr, "tacio faults: TACIO_FAULTS ignored: %s\n", err);
        memset(&c, 0, sizeof c);
    }
    cfg = c;
}

bool tacio__faults_active(void)
{
    pthread_mutex_lock(&cfg_lock);
    env_refresh_locked();
    bool on = cfg.active;
    pthread_mutex_unlock(&cfg_lock);
    return on;
}

/* ---- per port ----------------------------------------------------------------- */

struct held {
    tacio_op_t *op;
    uint64_t due;      /* CLOCK_MONOTONIC ns */
};

struct fport {
    struct fault_cfg cfg;
    uint32_t number;
    uint64_t seed;     /* cfg.seed + number */
    _Atomic uint64_t draws;
    _Atomic uint64_t count[F_KINDS];
    bool last_spurious; /* the previous wait was an injected empty return (poller only) */
    pthread_mutex_t lock;    /* held */
    pthread_mutex_t loglock; /* logfd; taken inside lock (delay logs while holding) */
    struct held *held;
    size_t nheld, capheld;
    int logfd;         /* TACIO_FAULTS_LOG, or -1 */
    bool summarised;
};

static struct fport *FP(struct tacio_port *p)
{
    return p->fault_ctx;
}

/* splitmix64 of (seed, draw number): lock-free, and a single-threaded
 * program draws the same sequence on every run. */
static uint64_t draw(struct fport *f, uint64_t *index)
{
    uint64_t i = atomic_fetch_add_explicit(&f->draws, 1, memory_order_relaxed);
    if (index)
        *index = i;
    uint64_t z = f->seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One Bernoulli draw for fault k; *index: the draw's number, for the log. */
static bool roll(struct fport *f, int k, uint64_t *index)
{
    double pr = f->cfg.prob[k];
    if (pr <= 0)
        return false;
    return (double)(draw(f, index) >> 11) * 0x1.0p-53 < pr;
}

static uint64_t below(struct fport *f, uint64_t n)
{
    return n ? draw(f, NULL) % n : 0;
}

static const char *kind_name(unsigned k)
{
    static const char *const n[] = {"none", "read", "write", "recv", "send", "recvfrom",
                                    "sendto", "accept", "connect", "fsync", "timer",
                                    "posted", "poll"};
    return k < sizeof n / sizeof n[0] ? n[k] : "?";
}

/* One line per fault to TACIO_FAULTS_LOG (stderr only gets the summary). */
__attribute__((format(printf, 4, 5)))
static void log_fault(struct fport *f, int k, uint64_t index, const char *fmt, ...)
{
    if (f->logfd < 0)
        return;
    char line[400];
    int n = snprintf(line, sizeof line, "tacio faults: seed=%llu port %u #%llu %s ",
                     (unsigned long long)f->cfg.seed, f->number, (unsigned long long)index,
                     f_name[k]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    pthread_mutex_lock(&f->loglock);
    if (f->logfd >= 0 && write(f->logfd, line, (size_t)n) < 0) {
        /* a log that cannot be written is not worth failing I/O over */
    }
    pthread_mutex_unlock(&f->loglock);
}

static void count(struct fport *f, int k)
{
    atomic_fetch_add_explicit(&f->count[k], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&totals[k], 1, memory_order_relaxed);
}

static void summary_line(struct fport *f, char *buf, size_t len)
{
    int n = snprintf(buf, len, "tacio faults: seed=%llu port %u:", (unsigned long long)f->cfg.seed,
                     f->number);
    for (int k = 0; k < F_KINDS && n > 0 && (size_t)n < len; k++)
        n += snprintf(buf + n, len - (size_t)n, "%s %s %llu", k ? "," : "", f_name[k],
                      (unsigned long long)atomic_load_explicit(&f->count[k],
                                                               memory_order_relaxed));
}

/* ---- submit --------------------------------------------------------------------- */

static bool is_stream(const struct tacio_handle *h)
{
    return (h->type == H_STREAM && !h->seqpacket) || h->type == H_PIPE;
}

/* Receives whose buffer may be filled less than full without changing
 * their meaning: byte streams (records would be truncated). */
static bool short_rx_ok(const tacio_op_t *op)
{
    unsigned k = op_kind(op);
    return (k == K_READ || k == K_RECV) && is_stream(op_handle(op)) && op->priv_len > 1;
}

static bool short_tx_ok(const tacio_op_t *op)
{
    return op_is_stream_tx(op) && !op_handle(op)->seqpacket &&
           op->priv_len - tacio__stream_progress(op) > 1;
}

/* A prefix of the rest written here, non-blocking, as the core's own
 * synchronous attempt writes one: the backend is handed what remains. The
 * op holds a use of the handle, so the fd is open. */
static uint64_t short_tx(struct fport *f, tacio_op_t *op)
{
    struct tacio_handle *h = op_handle(op);
    uint64_t done = tacio__stream_progress(op);
    uint64_t rest = op->priv_len - done;
    size_t n = (size_t)(1 + below(f, rest - 1));
    const char *buf = (const char *)op->priv_buf + done;
    ssize_t r = h->type == H_PIPE ? write(h->fd, buf, n)
                                  : send(h->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r <= 0)
        return 0; /* full (or failing): the armed op will find out */
    tacio__set_stream_progress(op, done + (uint64_t)r);
    return (uint64_t)r;
}

static tacio_status_t f_submit(struct tacio_port *p, tacio_op_t *op, bool defer)
{
    struct fport *f = FP(p);
    const struct tacio_backend *real = p->fault_real;
    unsigned kind = op_kind(op);
    struct tacio_handle *h = op_handle(op);
    uint64_t key = h->key;
    uint64_t ix;

    if (roll(f, F_ENOMEM, &ix)) {
        count(f, F_ENOMEM);
        log_fault(f, F_ENOMEM, ix, "%s op=%p key=%llu: not armed, TACIO_NO_MEMORY",
                  kind_name(kind), (void *)op, (unsigned long long)key);
        return TACIO_NO_MEMORY;
    }
    if (roll(f, F_EAGAIN, &ix)) {
        count(f, F_EAGAIN);
        log_fault(f, F_EAGAIN, ix, "%s op=%p key=%llu: spurious EAGAIN at arming, armed after "
                  "a yield; poller woken", kind_name(kind), (void *)op, (unsigned long long)key);
        sched_yield();
        real->wake(p);
    }
    if (kind != K_TIMER && (short_rx_ok(op) || short_tx_ok(op)) && roll(f, F_SHORT, &ix)) {
        if (short_rx_ok(op)) {
            uint32_t was = op->priv_len;
            op->priv_len = (uint32_t)(1 + below(f, was - 1));
            count(f, F_SHORT);
            log_fault(f, F_SHORT, ix, "%s op=%p key=%llu: armed with %u of %u bytes",
                      kind_name(kind), (void *)op, (unsigned long long)key, op->priv_len, was);
        } else {
            uint64_t before = tacio__stream_progress(op);
            uint64_t wrote = short_tx(f, op);
            if (wrote) {
                count(f, F_SHORT);
                log_fault(f, F_SHORT, ix, "%s op=%p key=%llu: %llu of the %llu bytes left "
                          "written before arming the rest", kind_name(kind), (void *)op,
                          (unsigned long long)key, (unsigned long long)wrote,
                          (unsigned long long)(op->priv_len - before));
            }
        }
    }
    /* Decided before arming: once armed, the record may be gone. */
    bool rx = kind == K_READ || kind == K_RECV || kind == K_RECVFROM;
    uint64_t lix = 0;
    bool lie = rx && roll(f, F_LIE, &lix);
    tacio_status_t st = real->submit(p, op, defer);
    if (st != TACIO_SUCCESS || !lie)
        return st;
    count(f, F_LIE);
    log_fault(f, F_LIE, lix, "%s op=%p key=%llu: armed, and reported as TACIO_BUFFER_OVERFLOW "
              "(its kernel completion follows)", kind_name(kind), (void *)op,
              (unsigned long long)key);
    return TACIO_BUFFER_OVERFLOW;
}

/* ---- wait: delay and reorder -------------------------------------------------------- */

/* The ordered stream an op belongs to (NULL: none): its handle and direction. */
static uintptr_t stream_key(tacio_op_t *op)
{
    unsigned d = tacio__op_dir(op);
    if (d == DIR_NONE)
        return 0;
    return (uintptr_t)op_handle(op) | d; /* handles are at least 8-aligned */
}

static bool hold_locked(struct fport *f, tacio_op_t *op, uint64_t due)
{
    if (f->nheld == f->capheld) {
        size_t cap = f->capheld ? f->capheld * 2 : 64;
        struct held *n = realloc(f->held, cap * sizeof *n);
        if (!n)
            return false;
        f->held = n;
        f->capheld = cap;
    }
    f->held[f->nheld++] = (struct held){op, due};
    return true;
}

/* The due time of the last held op of stream key, 0 if none is held. */
static uint64_t held_due_locked(struct fport *f, uintptr_t key)
{
    if (!key)
        return 0;
    for (size_t i = f->nheld; i-- > 0;)
        if (stream_key(f->held[i].op) == key)
            return f->held[i].due;
    return 0;
}

/* Ops of in: held (chosen, or behind a held op of their stream) or passed
 * to out; then the held ops whose time came (all, with force) go first. */
static void delay_pass(struct fport *f, struct oplist *in, struct oplist *out, uint64_t now,
                       bool force)
{
    struct oplist fresh = {0}, rel = {0};
    pthread_mutex_lock(&f->lock);
    while (in->head) {
        tacio_op_t *op = in->head;
        in->head = op->priv_next;
        uintptr_t key = stream_key(op);
        uint64_t behind = held_due_locked(f, key);
        uint64_t ix;
        if (!force && behind && hold_locked(f, op, behind))
            continue; /* its stream's earlier completion is held: so is it */
        if (!force && f->cfg.delay_ns && roll(f, F_DELAY, &ix) &&
            hold_locked(f, op, now + f->cfg.delay_ns)) {
            count(f, F_DELAY);
            log_fault(f, F_DELAY, ix, "%s op=%p key=%llu: completion held back %llu us",
                      kind_name(op_kind(op)), (void *)op,
                      (unsigned long long)op_handle(op)->key,
                      (unsigned long long)(f->cfg.delay_ns / 1000));
            continue;
        }
        oplist_push(&fresh, op);
    }
    *in = (struct oplist){0};
    /* Held in due order per stream (a chained op has its leader's due
     * time), so taking every due one in list order keeps stream order. */
    size_t keep = 0;
    for (size_t i = 0; i < f->nheld; i++) {
        if (force || f->held[i].due <= now)
            oplist_push(&rel, f->held[i].op);
        else
            f->held[keep++] = f->held[i];
    }
    f->nheld = keep;
    pthread_mutex_unlock(&f->lock);
    if (rel.head) {
        if (out->tail)
            out->tail->priv_next = rel.head;
        else
            out->head = rel.head;
        out->tail = rel.tail;
        out->n += rel.n;
    }
    if (fresh.head) {
        if (out->tail)
            out->tail->priv_next = fresh.head;
        else
            out->head = fresh.head;
        out->tail = fresh.tail;
        out->n += fresh.n;
    }
}

/* Shuffle the first REORDER_MAX ops of l; ops of one stream direction keep
 * their relative order (each takes the next of its stream's ops in the
 * original order at the places the shuffle gave that stream). */
static bool reorder(struct fport *f, struct oplist *l)
{
    tacio_op_t *orig[REORDER_MAX], *perm[REORDER_MAX];
    bool used[REORDER_MAX];
    unsigned n = 0;
    tacio_op_t *rest = l->head;
    while (rest && n < REORDER_MAX) {
        orig[n++] = rest;
        rest = rest->priv_next;
    }
    if (n < 2)
        return false;
    memcpy(perm, orig, n * sizeof *perm);
    for (unsigned i = n - 1; i > 0; i--) {
        unsigned j = (unsigned)below(f, i + 1);
        tacio_op_t *t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memset(used, 0, sizeof used);
    for (unsigned j = 0; j < n; j++) {
        uintptr_t key = stream_key(perm[j]);
        unsigned src = 0;
        if (key) {
            while (used[src] || stream_key(orig[src]) != key)
                src++;
        } else {
            while (orig[src] != perm[j])
                src++;
        }
        used[src] = true;
        perm[j] = orig[src];
    }
    bool changed = false;
    for (unsigned j = 0; j < n; j++)
        changed |= perm[j] != orig[j];
    if (!changed)
        return false;
    for (unsigned j = 0; j + 1 < n; j++)
        perm[j]->priv_next = perm[j + 1];
    perm[n - 1]->priv_next = rest;
    l->head = perm[0];
    if (!rest)
        l->tail = perm[n - 1];
    return true;
}

static tacio_status_t f_wait(struct tacio_port *p, int timeout_ms, struct oplist *out)
{
    struct fport *f = FP(p);
    const struct tacio_backend *real = p->fault_real;
    uint64_t ix;

    if (!f->last_spurious && roll(f, F_EAGAIN, &ix)) {
        f->last_spurious = true;
        count(f, F_EAGAIN);
        log_fault(f, F_EAGAIN, ix, "wait: spurious empty return (timeout %d ms)", timeout_ms);
        return TACIO_SUCCESS;
    }
    f->last_spurious = false;

    /* The earliest held op bounds the real wait. */
    uint64_t now = tacio__now_ns(), first_due = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nheld; i++)
        if (!first_due || f->held[i].due < first_due)
            first_due = f->held[i].due;
    pthread_mutex_unlock(&f->lock);
    bool capped = false;
    int t = timeout_ms;
    if (first_due) {
        uint64_t left = first_due > now ? first_due - now : 0;
        int ms = (int)((left + 999999u) / 1000000u);
        if (t < 0 || ms < t) {
            t = ms;
            capped = true;
        }
    }
    struct oplist got = {0};
    tacio_status_t st = real->wait(p, t, &got);
    struct oplist mine = {0};
    delay_pass(f, &got, &mine, tacio__now_ns(), false);
    if (mine.n >= 2 && roll(f, F_REORDER, &ix) && reorder(f, &mine)) {
        count(f, F_REORDER);
        log_fault(f, F_REORDER, ix, "wait: %u completions handed out in another order", mine.n);
    }
    if (mine.head) {
        if (out->tail)
            out->tail->priv_next = mine.head;
        else
            out->head = mine.head;
        out->tail = mine.tail;
        out->n += mine.n;
        return TACIO_SUCCESS;
    }
    /* Nothing to hand out. A wait cut short for a held op is not the
     * caller's timeout; anything the real wait found and we held is not a
     * timeout either. */
    if (capped || got.n)
        return TACIO_SUCCESS;
    return st;
}

static void f_drain(struct tacio_port *p, struct oplist *out)
{
    struct fport *f = FP(p);
    struct oplist real = {0}, none = {0};
    p->fault_real->drain(p, &real);
    /* Held ops finished before anything the drain found. */
    delay_pass(f, &none, out, tacio__now_ns(), true);
    if (real.head) {
        if (out->tail)
            out->tail->priv_next = real.head;
        else
            out->head = real.head;
        out->tail = real.tail;
        out->n += real.n;
    }
}

/* ---- the rest delegates ------------------------------------------------------------- */

static tacio_status_t f_init(struct tacio_port *p, unsigned depth, char *why, size_t whylen)
{
    return p->fault_real->init(p, depth, why, whylen);
}

static void f_fini(struct tacio_port *p)
{
    struct fport *f = FP(p);
    p->fault_real->fini(p);
    char line[300];
    summary_line(f, line, sizeof line);
    pthread_mutex_lock(&f->loglock);
    bool first = !f->summarised;
    f->summarised = true;
    if (f->logfd >= 0) {
        size_t n = strlen(line);
        if (n < sizeof line - 1) {
            line[n] = '\n';
            if (write(f->logfd, line, n + 1) < 0) {
                /* see log_fault */
            }
            line[n] = 0;
        }
        close(f->logfd);
        f->logfd = -1;
    } else if (first) {
        fprintf(stderr, "%s\n", line);
    }
    pthread_mutex_unlock(&f->loglock);
}

static void f_destroy(struct tacio_port *p)
{
    struct fport *f = FP(p);
    p->fault_real->destroy(p);
    p->fault_ctx = NULL;
    if (!f)
        return;
    if (f->logfd >= 0)
        close(f->logfd);
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->loglock);
    free(f->held);
    free(f);
}

static tacio_status_t f_cancel(struct tacio_port *p, tacio_op_t *op, struct tacio_handle *h)
{
    return p->fault_real->cancel(p, op, h);
}

static tacio_status_t f_cancel_handle(struct tacio_port *p, struct tacio_handle *h)
{
    return p->fault_real->cancel_handle(p, h);
}

static void f_wake(struct tacio_port *p)
{
    p->fault_real->wake(p);
}

static void f_flush(struct tacio_port *p)
{
    p->fault_real->flush(p);
}

/* One table per real backend, so tacio_port_info still names the real one. */
#define FAULT_TABLE(real_name, real_caps)                                                 \
    {                                                                                     \
        .name = real_name, .caps = real_caps, .init = f_init, .fini = f_fini,             \
        .destroy = f_destroy, .submit = f_submit, .cancel = f_cancel,                      \
        .cancel_handle = f_cancel_handle, .wait = f_wait, .wake = f_wake, .flush = f_flush, \
        .drain = f_drain,                                                                 \
    }
static const struct tacio_backend wrap_uring = FAULT_TABLE("io_uring", BE_CAP_FILES_ASYNC | BE_CAP_BATCHED_SENDS);
static const struct tacio_backend wrap_epoll = FAULT_TABLE("epoll", 0);

const struct tacio_backend *tacio__faults_wrap(struct tacio_port *p)
{
    const struct tacio_backend *w = p->be == &tacio__backend_uring   ? &wrap_uring
                                    : p->be == &tacio__backend_epoll ? &wrap_epoll
                                                                     : NULL;
    if (!w || w->caps != p->be->caps)
        return p->be;
    struct fport *f = calloc(1, sizeof *f);
    if (!f)
        return p->be; /* the port works, without faults */
    pthread_mutex_lock(&cfg_lock);
    env_refresh_locked();
    f->cfg = cfg;
    pthread_mutex_unlock(&cfg_lock);
    if (!f->cfg.active) {
        free(f);
        return p->be;
    }
    f->number = atomic_fetch_add_explicit(&port_counter, 1, memory_order_relaxed) + 1;
    f->seed = f->cfg.seed + f->number;
    f->logfd = -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->loglock, NULL);
    const char *log = getenv("TACIO_FAULTS_LOG");
    if (log && *log) {
        f->logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (f->logfd < 0)
            fprintf(stderr, "tacio faults: TACIO_FAULTS_LOG=%s: %s (summary on stderr instead)\n",
                    log, strerror(errno));
    }
    if (f->logfd >= 0) {
        char line[400];
        int n = snprintf(line, sizeof line, "tacio faults: seed=%llu port %u: on (%s): %s\n",
                         (unsigned long long)f->cfg.seed, f->number, p->be->name, f->cfg.spec);
        if (n > 0 && write(f->logfd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0) {
            /* see log_fault */
        }
    }
    size_t wl = strlen(p->why);
    snprintf(p->why + wl, sizeof p->why - wl, "; fault injection: seed=%llu port %u",
             (unsigned long long)f->cfg.seed, f->number);
    p->fault_real = p->be;
    p->fault_ctx = f;
    return w;
}

/* ---- statistics ------------------------------------------------------------------------ */

tacio_status_t tacio_faults_stats(tacio_port_t *p, tacio_faults_stats_t *out)
{
    if (!out)
        return TACIO_INVALID_PARAMETER;
    memset(out, 0, sizeof *out);
    uint64_t c[F_KINDS];
    if (!p) {
        for (int k = 0; k < F_KINDS; k++)
            c[k] = atomic_load_explicit(&totals[k], memory_order_relaxed);
        pthread_mutex_lock(&cfg_lock);
        env_refresh_locked();
        out->seed = cfg.active ? cfg.seed : 0;
        out->active = cfg.active;
        pthread_mutex_unlock(&cfg_lock);
        out->port_number = atomic_load_explicit(&port_counter, memory_order_relaxed);
    } else {
        uint32_t m = atomic_load_explicit(&p->magic, memory_order_acquire);
        if (m != PORT_MAGIC && m != PORT_DEAD)
            return TACIO_INVALID_HANDLE;
        struct fport *f = p->be == &wrap_uring || p->be == &wrap_epoll ? FP(p) : NULL;
        if (!f)
            return TACIO_SUCCESS;
        for (int k = 0; k < F_KINDS; k++)
            c[k] = atomic_load_explicit(&f->count[k], memory_order_relaxed);
        out->seed = f->seed;
        out->port_number = f->number;
        out->active = 1;
    }
    out->enomem = c[F_ENOMEM];
    out->eagain = c[F_EAGAIN];
    out->short_io = c[F_SHORT];
    out->delay = c[F_DELAY];
    out->reorder = c[F_REORDER];
    out->lie = c[F_LIE];
    return TACIO_SUCCESS;
}
