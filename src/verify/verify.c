/* verify.c - the verifier (docs/verifier.md).
 *
 * A registry keyed by record address, striped by hash so threads working
 * on different records rarely share a lock. Entries stay after delivery:
 * a completion that comes after the first delivery must still find what
 * the first one was (its status, how it was delivered, its stack). An entry
 * is reused when its record starts its next operation.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tacio/verify.h>

#include "core/internal.h"
#include "diag/capture.h"
#include "diag/diag-internal.h"
#include "diag/record.h"
#include "verify/verify.h"

#if defined(TACIO_ASAN)
#include <sanitizer/asan_interface.h>
#endif

int tacio__verify_on;

enum vstate { V_PENDING = 1, V_FINISHED, V_SYNC, V_DELIVERED };
enum vev { EV_BEGIN = 1, EV_FINISH, EV_SYNC, EV_DELIVER, EV_SECOND };

#define NFRAMES 12
#define NHIST 8
#define NPAST 16
#define NSTRIPES 64
#define NBUCKETS 1024

struct vhist {
    uint8_t ev;
    int tid;
    uint64_t t_ns;
    tacio_status_t st;
};

struct vent {
    struct vent *next;
    const void *op;
    uint32_t gen;
    uint8_t state;
    const void *handle;
    uint64_t key;
    tacio_status_t first_status;
    char first_how[16];
    void *first_stack[NFRAMES];
    int nfirst;
    struct vhist hist[NHIST];
    unsigned nhist;
    /* The record's last operations before this one, for a completion of
     * one of them that comes after the record started again (the seed
     * case: the caller reuses the memory once a warning said it was over,
     * and the lying completion may come many reuses later). */
    struct vlife {
        uint32_t gen;
        uint8_t state;
        tacio_status_t status;
        char how[16];
        void *stack[NFRAMES];
        int n;
    } past[NPAST], last_life;
    unsigned npast;
    bool suspect;   /* this life ended in its start call after the backend
                       was asked to arm it and answered with a final status:
                       the only way a backend can lie, so kept in past[] */
};

struct stripe {
    pthread_mutex_t m;
    struct vent *b[NBUCKETS];
};

static struct stripe *stripes;
static unsigned mode;
static _Atomic uint64_t nreports;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tacio__verify_report last;
static bool have_last;

/* ThreadSanitizer builds walk stacks with libgcc's unwinder instead: libunwind
 * keeps a per-thread cache whose destructor locks a mutex after TSan has
 * already finished the exiting thread, and every thread that captured a stack
 * crashed on its way out (SIGSEGV in the mutex interceptor). */
#if defined(__SANITIZE_THREAD__)
#include <unwind.h>
struct walk {
    void **pcs;
    int n, max;
};

static _Unwind_Reason_Code walk_step(struct _Unwind_Context *ctx, void *arg)
{
    struct walk *w = arg;
    if (w->n >= w->max)
        return _URC_END_OF_STACK;
    w->pcs[w->n++] = (void *)_Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

/* Inlined, so that the first frame is the caller's, as with unw_backtrace. */
static inline __attribute__((always_inline)) int stack_pcs(void **pcs, int max)
{
    struct walk w = {pcs, 0, max};
    _Unwind_Backtrace(walk_step, &w);
    return w.n;
}
#else
static inline __attribute__((always_inline)) int stack_pcs(void **pcs, int max)
{
    return unw_backtrace(pcs, max);
}
#endif

/* libunwind opens a pipe (two close-on-exec fds) the first time it checks
 * a frame address, and with it linked, backtrace() is libunwind's too (the
 * fault records' stacks): open it at load, not in the middle of the
 * program, where it would look like a leaked fd. */
static void prime_unwinder(void)
{
    void *pcs[2];
    stack_pcs(pcs, 2);
}

__attribute__((constructor)) static void prime_at_load(void)
{
    prime_unwinder();
}

static void make_stripes(void)
{
    prime_unwinder();
    tacio__modules_refresh();
    stripes = calloc(NSTRIPES, sizeof *stripes);
    if (!stripes)
        return;
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_init(&stripes[i].m, NULL);
}

tacio_status_t tacio_verify_enable(unsigned m)
{
    if (m != TACIO_VERIFY_ABORT && m != TACIO_VERIFY_REPORT)
        return TACIO_INVALID_PARAMETER;
    pthread_once(&init_once, make_stripes);
    if (!stripes)
        return TACIO_NO_MEMORY;
    __atomic_store_n(&mode, m, __ATOMIC_RELAXED);
    __atomic_store_n(&tacio__verify_on, 1, __ATOMIC_RELEASE);
    return TACIO_SUCCESS;
}

static void read_env(void);

unsigned tacio_verify_mode(void)
{
    tacio__verify_autoinit(); /* TACIO_VERIFY counts before the first port too */
    return __atomic_load_n(&tacio__verify_on, __ATOMIC_ACQUIRE) ? __atomic_load_n(&mode, __ATOMIC_RELAXED) : 0;
}

uint64_t tacio_verify_reports(void)
{
    return atomic_load(&nreports);
}

static void read_env(void)
{
    const char *v = getenv("TACIO_VERIFY");
    if (!v || !*v || !strcmp(v, "0"))
        return;
    tacio_verify_enable(!strcmp(v, "report") ? TACIO_VERIFY_REPORT : TACIO_VERIFY_ABORT);
}

void tacio__verify_autoinit(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_env);
}

/* ---- registry ---------------------------------------------------------------- */

static struct stripe *stripe_of(const void *op, unsigned *bucket)
{
    uintptr_t h = (uintptr_t)op;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    *bucket = (unsigned)(h >> 20) % NBUCKETS;
    return &stripes[(h >> 40) % NSTRIPES];
}

static struct vent *find_locked(struct stripe *s, unsigned b, const void *op)
{
    for (struct vent *e = s->b[b]; e; e = e->next)
        if (e->op == op)
            return e;
    return NULL;
}

/* op's entry (NULL if none) with its stripe locked; the caller unlocks
 * (*sp)->m. *bp is the bucket, for an insertion. */
static struct vent *lock_entry(const void *op, struct stripe **sp, unsigned *bp)
{
    struct stripe *s = stripe_of(op, bp);
    pthread_mutex_lock(&s->m);
    *sp = s;
    return find_locked(s, *bp, op);
}

/* History times: the coarse clock (a few ms resolution, a third of the
 * fine clock's cost per hook); reports print them to the millisecond. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The thread id, asked of the kernel once per thread (a syscall per hook
 * was most of the verifier's cost). */
static _Thread_local int my_tid;

static int tid_now(void)
{
    if (!my_tid)
        my_tid = (int)tacio__gettid();
    return my_tid;
}

static void hist_add(struct vent *e, enum vev ev, tacio_status_t st)
{
    struct vhist *h = &e->hist[e->nhist++ % NHIST];
    h->ev = (uint8_t)ev;
    h->tid = tid_now();
    h->t_ns = now_ns();
    h->st = st;
}

/* ---- reports ----------------------------------------------------------------- */

static const char *ev_name(uint8_t ev)
{
    switch (ev) {
    case EV_BEGIN: return "started";
    case EV_FINISH: return "completed";
    case EV_SYNC: return "returned synchronously";
    case EV_DELIVER: return "delivered";
    case EV_SECOND: return "second completion";
    default: return "?";
    }
}

static size_t append(char *buf, size_t cap, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t cap, size_t at, const char *fmt, ...)
{
    if (at >= cap)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + at, cap - at, fmt, ap);
    va_end(ap);
    return n < 0 ? at : (at + (size_t)n < cap ? at + (size_t)n : cap - 1);
}

/* "  #0 module!function+0xNN (file:line)" per frame. */
static size_t append_stack(char *buf, size_t cap, size_t at, const char *title, void *const *pcs,
                           int n)
{
    at = append(buf, cap, at, "  %s:\n", title);
    if (n <= 0)
        return append(buf, cap, at, "    (not captured)\n");
    uintptr_t up[NFRAMES];
    for (int i = 0; i < n; i++)
        up[i] = (uintptr_t)pcs[i];
    char sym[4096];
    sym[0] = 0;
    tacio__symbolize(up, (size_t)n, 0, sym, sizeof sym);
    char *line = sym;
    for (int i = 0; i < n; i++) {
        char fn[256] = "??", file[256] = "";
        unsigned ln = 0;
        char *nl = line ? strchr(line, '\n') : NULL;
        if (line && nl) {
            *nl = 0;
            char *f1 = strchr(line, '\t');
            char *f2 = f1 ? strchr(f1 + 1, '\t') : NULL;
            char *f3 = f2 ? strchr(f2 + 1, '\t') : NULL;
            if (f1 && f2 && f3) {
                *f2 = *f3 = 0;
                if (f1[1])
                    snprintf(fn, sizeof fn, "%s", f1 + 1);
                snprintf(file, sizeof file, "%s", f2 + 1);
                ln = (unsigned)strtoul(f3 + 1, NULL, 10);
            }
            line = nl + 1;
        }
        struct tacio__module m;
        const char *mod = tacio__modules_find(up[i], &m) ? m.name : "?";
        at = append(buf, cap, at, "    #%d %s!%s", i, mod, fn);
        if (file[0])
            at = append(buf, cap, at, " (%s:%u)", file, ln);
        at = append(buf, cap, at, "\n");
    }
    return at;
}

/* One report: the stderr block, the fault record, then abort or go on. */
static void report(const char *check, const struct vent *e, tacio_status_t second_st,
                   void *const *second, int nsecond, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void report(const char *check, const struct vent *e, tacio_status_t second_st,
                   void *const *second, int nsecond, const char *fmt, ...)
{
    static struct tacio__verify_report r; /* under last_lock: reports are rare */
    pthread_mutex_lock(&last_lock);
    memset(&r, 0, sizeof r);
    snprintf(r.check, sizeof r.check, "%s", check);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.message, sizeof r.message, fmt, ap);
    va_end(ap);
    if (e) {
        r.op = e->op;
        r.gen = e->gen;
        r.key = e->key;
        r.first_frames = (unsigned)(e->nfirst > 0 ? e->nfirst : 0);
        snprintf(r.first_how, sizeof r.first_how, "%s", e->first_how);
        r.first_status = e->first_status;
    }
    r.second_frames = (unsigned)(nsecond > 0 ? nsecond : 0);
    r.second_status = second_st;
    tacio__modules_refresh(); /* modules loaded since the last look get their names */
    size_t at = 0, cap = sizeof r.text;
    at = append(r.text, cap, at, "==%d== tacio verifier: %s\n  %s\n", (int)getpid(), check,
                r.message);
    if (e) {
        at = append(r.text, cap, at, "  record %p (generation %u), handle %p, key %llu\n", e->op,
                    e->gen, e->handle, (unsigned long long)e->key);
        at = append(r.text, cap, at, "  last transitions (oldest first):\n");
        unsigned from = e->nhist > NHIST ? e->nhist - NHIST : 0;
        for (unsigned i = from; i < e->nhist; i++) {
            const struct vhist *h = &e->hist[i % NHIST];
            char when[32];
            tacio__fmt_time(when, (int64_t)(h->t_ns / 1000000000u), (long)(h->t_ns % 1000000000u));
            at = append(r.text, cap, at, "    %s tid %d %s %s\n", when, h->tid, ev_name(h->ev),
                        h->ev == EV_BEGIN ? "" : tacio_status_name(h->st));
        }
        at = append_stack(r.text, cap, at,
                          e->nfirst > 0 ? "first delivery (captured when it happened)"
                                        : "first delivery",
                          e->first_stack, e->nfirst);
    }
    if (second)
        at = append_stack(r.text, cap, at,
                          !strcmp(check, "double_completion") ? "second delivery (this call)"
                                                              : "this call",
                          second, nsecond);
    fputs(r.text, stderr);
    fflush(stderr);

    /* The structured record: both stacks raw, symbolised by the writer. */
    uintptr_t s1[NFRAMES], s2[NFRAMES];
    struct tacio_fault_stack st[2];
    size_t ns = 0;
    if (e && e->nfirst > 0) {
        for (int i = 0; i < e->nfirst; i++)
            s1[i] = (uintptr_t)e->first_stack[i];
        st[ns++] = (struct tacio_fault_stack){.name = "first_delivery", .pcs = s1,
                                              .n = (size_t)e->nfirst};
    }
    if (second && nsecond > 0) {
        for (int i = 0; i < nsecond; i++)
            s2[i] = (uintptr_t)second[i];
        st[ns++] = (struct tacio_fault_stack){.name = "second_delivery", .pcs = s2,
                                              .n = (size_t)nsecond};
    }
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"op\":\"%p\",\"generation\":%u,\"handle\":\"%p\",\"key\":%llu,"
             "\"first\":\"%s\",\"first_status\":\"%s\",\"second_status\":\"%s\"",
             r.op, r.gen, e ? e->handle : NULL, (unsigned long long)r.key, r.first_how,
             tacio_status_name(r.first_status), tacio_status_name(second_st));
    char dump[512];
    int dumped = tacio__capture_verifier(check, dump, sizeof dump);
    struct tacio_fault_record fr = {
        .kind = "verifier", .check = check, .message = r.message,
        .exception_code = TACIO_UNSUCCESSFUL, .stacks = st, .n_stacks = ns,
        .extra_json = extra, .dump = dumped ? dump : NULL,
    };
    tacio__fault_record_write(&fr, NULL);
    last = r;
    have_last = true;
    atomic_fetch_add(&nreports, 1);
    pthread_mutex_unlock(&last_lock);
    if (__atomic_load_n(&mode, __ATOMIC_RELAXED) == TACIO_VERIFY_ABORT) {
        fprintf(stderr, "tacio verifier: aborting (TACIO_VERIFY=report to go on instead)\n");
        abort();
    }
}

bool tacio__verify_last(struct tacio__verify_report *out)
{
    pthread_mutex_lock(&last_lock);
    bool ok = have_last;
    if (ok)
        *out = last;
    pthread_mutex_unlock(&last_lock);
    return ok;
}

/* The calling thread's stack from the verifier's hook outwards. Only this
 * function's own frame is dropped: hooks may be tail calls, so a fixed
 * count of further frames could cut the runtime's frames instead. */
__attribute__((noinline)) static int capture(void **pcs)
{
    int n = stack_pcs(pcs, NFRAMES + 2);
    int skip = n > 1 ? 1 : 0;
    memmove(pcs, pcs + skip, (size_t)(n - skip) * sizeof *pcs);
    return n - skip > NFRAMES ? NFRAMES : n - skip;
}

/* ---- hooks --------------------------------------------------------------------- */

void tacio__verify_begin(tacio_op_t *op, uint32_t gen, struct tacio_handle *h)
{
    if (!stripes)
        return;
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    struct vent old;
    bool reused = false;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&s->m);
            return;
        }
        e->op = op;
        e->next = s->b[b];
        s->b[b] = e;
    } else if (e->state == V_PENDING || e->state == V_FINISHED) {
        /* The runtime still owned the record, yet it was idle: its memory
         * was re-initialised or reused by the caller. */
        old = *e;
        reused = true;
    }
    if (e->state) {
        struct vlife *l = e->suspect && e->state == V_SYNC ? &e->past[e->npast++ % NPAST]
                                                            : &e->last_life;
        l->gen = e->gen;
        l->state = e->state;
        l->status = e->first_status;
        memcpy(l->how, e->first_how, sizeof l->how);
        memcpy(l->stack, e->first_stack, sizeof l->stack);
        l->n = e->nfirst;
    }
    e->gen = gen;
    e->state = V_PENDING;
    e->suspect = false;
    e->handle = h;
    e->key = h->type == H_TIMER ? (uint64_t)(uintptr_t)op->priv_buf : h->key;
    e->nfirst = 0;
    e->first_how[0] = 0;
    e->first_status = 0;
    hist_add(e, EV_BEGIN, 0);
    pthread_mutex_unlock(&s->m);
    if (reused) {
        void *here[NFRAMES + 2];
        int n = capture(here);
        report("reused_while_pending", &old, TACIO_PENDING, here, n,
               "operation record %p was started again (generation %u) while its previous "
               "operation (generation %u) was still %s: its memory was re-initialised or "
               "freed and reused before its completion was delivered",
               (void *)op, gen, old.gen, old.state == V_PENDING ? "pending" : "queued");
    }
}

bool tacio__verify_completion(tacio_op_t *op, uint32_t gen, tacio_status_t st)
{
    if (!stripes)
        return true;
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    bool ok = !e || (e->state == V_PENDING && e->gen == gen);
    pthread_mutex_unlock(&s->m);
    /* A second completion: the finish check reports it (and, since it
     * only reads the registry, without touching the record). */
    return ok || tacio__verify_finish(op, gen, st, 0);
}

bool tacio__verify_finish(tacio_op_t *op, uint32_t gen, tacio_status_t st, uint64_t bytes)
{
    (void)bytes;
    if (!stripes)
        return true;
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    if (!e) {
        pthread_mutex_unlock(&s->m);
        return true; /* started before the verifier was on */
    }
    if (e->state == V_PENDING && e->gen == gen) {
#if defined(TACIO_ASAN)
        if (__asan_address_is_poisoned(op)) {
            struct vent copy = *e;
            hist_add(e, EV_SECOND, st);
            pthread_mutex_unlock(&s->m);
            void *here[NFRAMES + 2];
            int n = capture(here);
            report("freed_while_pending", &copy, st, here, n,
                   "operation record %p completed (%s) after its memory was freed: it was "
                   "freed while pending",
                   (void *)op, tacio_status_name(st));
            return false;
        }
#endif
        e->state = V_FINISHED;
        hist_add(e, EV_FINISH, st);
        pthread_mutex_unlock(&s->m);
        return true;
    }
    struct vent copy = *e;
    hist_add(e, EV_SECOND, st);
    pthread_mutex_unlock(&s->m);
    void *here[NFRAMES + 2];
    int n = capture(here);
    const struct vlife *life = NULL;
    if (copy.gen != gen && copy.last_life.gen == gen &&
        (copy.last_life.state == V_SYNC || copy.last_life.state == V_DELIVERED))
        life = &copy.last_life;
    for (unsigned i = 0; !life && copy.gen != gen && i < NPAST && i < copy.npast; i++)
        if (copy.past[i].gen == gen && copy.past[i].state)
            life = &copy.past[i];
    if (life) {
        /* An earlier operation of this record: report it as itself. */
        uint32_t now_gen = copy.gen;
        copy.gen = life->gen;
        copy.state = life->state;
        copy.first_status = life->status;
        memcpy(copy.first_how, life->how, sizeof copy.first_how);
        memcpy(copy.first_stack, life->stack, sizeof copy.first_stack);
        copy.nfirst = life->n;
        if (copy.state == V_SYNC)
            report("double_completion", &copy, st, here, n,
                   "operation %p completed twice: it returned %s synchronously (so the caller "
                   "owned the record again, and has since started it again as generation %u) "
                   "and was also queued, with %s",
                   (void *)op, tacio_status_name(copy.first_status), now_gen,
                   tacio_status_name(st));
        else
            report("double_completion", &copy, st, here, n,
                   "operation %p completed twice: first %s (%s), then again with %s, after the "
                   "record was started again as generation %u",
                   (void *)op, tacio_status_name(copy.first_status), copy.first_how,
                   tacio_status_name(st), now_gen);
    } else if (copy.gen != gen) {
        report("double_completion", &copy, st, here, n,
               "operation %p (generation %u) completed again with %s after its record was "
               "reused for generation %u",
               (void *)op, gen, tacio_status_name(st), copy.gen);
    } else if (copy.state == V_SYNC) {
        report("double_completion", &copy, st, here, n,
               "operation %p completed twice: it returned %s synchronously (so the caller "
               "owned the record again) and was also queued, with %s",
               (void *)op, tacio_status_name(copy.first_status), tacio_status_name(st));
    } else {
        report("double_completion", &copy, st, here, n,
               "operation %p completed twice: first %s (%s), then again with %s",
               (void *)op, tacio_status_name(copy.first_status),
               copy.state == V_DELIVERED ? copy.first_how : "queued, not yet delivered",
               tacio_status_name(st));
    }
    return false;
}

static void first_delivery(tacio_op_t *op, tacio_status_t st, const char *how, enum vstate to)
{
    if (!stripes)
        return;
    void *here[NFRAMES + 2];
    int n = capture(here);
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    if (!e) {
        pthread_mutex_unlock(&s->m);
        return;
    }
    bool ok = e->state == V_FINISHED;
    struct vent copy;
    if (ok) {
        e->state = (uint8_t)to;
        e->first_status = st;
        snprintf(e->first_how, sizeof e->first_how, "%s", how);
        memcpy(e->first_stack, here, (size_t)n * sizeof *here);
        e->nfirst = n;
        hist_add(e, to == V_SYNC ? EV_SYNC : EV_DELIVER, st);
    } else {
        copy = *e;
    }
    pthread_mutex_unlock(&s->m);
    if (!ok)
        report("unknown_delivery", &copy, st, here, n,
               "operation %p was handed out (%s, %s) in a state the runtime did not expect "
               "(%s): a delivery for a record the runtime does not know",
               (void *)op, how, tacio_status_name(st),
               copy.state == V_PENDING ? "still pending" : "already delivered");
}

void tacio__verify_backend_final(tacio_op_t *op)
{
    if (!stripes)
        return;
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    if (e)
        e->suspect = true;
    pthread_mutex_unlock(&s->m);
}

void tacio__verify_sync(tacio_op_t *op, tacio_status_t st)
{
    first_delivery(op, st, "synchronous", V_SYNC);
}

void tacio__verify_delivered(tacio_op_t *op, const char *how)
{
    first_delivery(op, op->status, how, V_DELIVERED);
}

void tacio__verify_in_use(tacio_op_t *op)
{
    if (!stripes)
        return;
    unsigned b;
    struct stripe *s;
    struct vent *e = lock_entry(op, &s, &b);
    struct vent copy;
    bool known = e != NULL;
    if (known)
        copy = *e;
    pthread_mutex_unlock(&s->m);
    void *here[NFRAMES + 2];
    int n = capture(here);
    report("started_while_pending", known ? &copy : NULL, TACIO_OP_IN_USE, here, n,
           "operation record %p was started again while its operation is %s: the start "
           "was refused with TACIO_OP_IN_USE; a record is the caller's again only after "
           "its completion is delivered",
           (void *)op,
           !known ? "in flight" : copy.state == V_PENDING ? "pending" : "completed and queued");
}

void tacio__verify_port_closed(struct tacio_port *p, uint64_t discarded, bool had_discard_fn)
{
    if (!discarded || had_discard_fn)
        return;
    report("port_closed_with_pending", NULL, TACIO_CANCELLED, NULL, 0,
           "port %p was closed with %llu operations pending or completed and undelivered, "
           "and no discard callback to receive them: their records were released unseen",
           (void *)p, (unsigned long long)discarded);
}

/* ---- the caller's own checks ------------------------------------------------------ */

static const char *owned_state(const tacio_op_t *op)
{
    uint32_t w = __atomic_load_n(&op->priv_word, __ATOMIC_ACQUIRE);
    switch (w & OPW_STATE_MASK) {
    case OP_IDLE: return NULL;
    case OP_DONE: return "completed and not yet delivered";
    default: return "pending";
    }
}

tacio_status_t tacio_op_release(tacio_op_t *op)
{
    if (!op)
        return TACIO_INVALID_PARAMETER;
    const char *why = owned_state(op);
    if (!why)
        return TACIO_SUCCESS;
    if (tacio__verifying()) {
        void *here[NFRAMES + 2];
        int n = capture(here);
        report("released_while_pending", NULL, TACIO_OP_IN_USE, here, n,
               "operation record %p was released by the caller while %s: freeing it now "
               "lets its completion land on freed memory (the seed case)",
               (void *)op, why);
    }
    return TACIO_OP_IN_USE;
}

tacio_status_t tacio_verify_check_free(const void *mem, size_t len)
{
    if (!tacio__verifying() || !stripes || !mem)
        return TACIO_SUCCESS;
    uintptr_t lo = (uintptr_t)mem, hi = lo + len;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &stripes[i];
        pthread_mutex_lock(&s->m);
        for (unsigned b = 0; b < NBUCKETS; b++) {
            for (struct vent *e = s->b[b]; e; e = e->next) {
                uintptr_t a = (uintptr_t)e->op;
                if (a < lo || a >= hi || (e->state != V_PENDING && e->state != V_FINISHED))
                    continue;
                struct vent copy = *e;
                pthread_mutex_unlock(&s->m);
                void *here[NFRAMES + 2];
                int n = capture(here);
                report("released_while_pending", &copy, TACIO_OP_IN_USE, here, n,
                       "memory %p..%p is being freed while operation record %p in it is "
                       "%s: its completion would land on freed memory (the seed case)",
                       mem, (void *)hi, (void *)a,
                       copy.state == V_PENDING ? "pending" : "completed and not yet delivered");
                return TACIO_OP_IN_USE;
            }
        }
        pthread_mutex_unlock(&s->m);
    }
    return TACIO_SUCCESS;
}
