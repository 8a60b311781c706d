/* capture.c - first-chance capture: a dump when something first happens.
 *
 * The configuration is immutable once published: configure() builds a new
 * one and swaps the pointer (release), triggers read it (acquire). Old
 * configurations are never freed, because a trigger may still be reading
 * one; there are as many as configure() calls, each a few hundred bytes.
 * The count is a separate counter reset by each configure(): a trigger
 * reserves a dump with a CAS below the count, so exactly `count` dumps are
 * written however many threads hit triggers at once.
 */
#include "diag/diag-internal.h"
#include "diag/capture.h"
#include "core/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_STATUSES 32
#define DUMP_TIMEOUT_MS 120000

struct capture_cfg {
    uint32_t statuses[MAX_STATUSES];
    unsigned n_status;
    bool verifier, signal;
    unsigned count;
    char dir[PATH_MAX];
};

_Atomic unsigned tacio__capture_armed;
static _Atomic(struct capture_cfg *) current;
static _Atomic unsigned reserved;   /* dumps claimed under the current configuration */
static _Atomic unsigned written;    /* dumps written by triggers, ever */
static _Atomic unsigned sequence;   /* N in core.tacio.PID.N */

/* ---- parsing ------------------------------------------------------------- */

/* tacio's statuses live in these ranges (status.h): scanning them with
 * tacio_status_name() finds every name without a second list to keep. */
static bool status_by_name(const char *name, uint32_t *out)
{
    static const uint32_t ranges[][2] = {
        { 0x00000000u, 0x00000FFFu }, { 0x40000000u, 0x40000FFFu },
        { 0x80000000u, 0x80000FFFu }, { 0xC0000000u, 0xC0000FFFu },
        { 0xE0FD0000u, 0xE0FD0FFFu },
    };
    const char *bare = name;
    if (strncasecmp(bare, "TACIO_", 6) == 0)
        bare += 6;
    else if (strncasecmp(bare, "STATUS_", 7) == 0)
        bare += 7;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (uint32_t v = ranges[r][0]; v <= ranges[r][1]; v++) {
            const char *n = tacio_status_name(v);
            if (strncmp(n, "TACIO_", 6) == 0 && strncmp(n, "TACIO_STATUS_0x", 15) != 0 &&
                strcasecmp(n + 6, bare) == 0) {
                *out = v;
                return true;
            }
        }
    return false;
}

static bool parse_status(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (*s && !*end && !errno && v <= 0xFFFFFFFFul) {
        *out = (uint32_t)v;
        return true;
    }
    return status_by_name(s, out);
}

static int parse(const char *spec, struct capture_cfg *c)
{
    char buf[2048];
    if (strlen(spec) >= sizeof buf) {
        tacio__set_error("capture spec longer than %zu bytes", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    c->count = 1;
    char *save = NULL;
    for (char *f = strtok_r(buf, "; ", &save); f; f = strtok_r(NULL, "; ", &save)) {
        char *eq = strchr(f, '=');
        if (!eq) {
            tacio__set_error("capture spec: '%s' is not KEY=VALUE (keys: on, count, dir)", f);
            return -1;
        }
        *eq = 0;
        const char *key = f, *val = eq + 1;
        if (strcmp(key, "on") == 0) {
            char *s2 = NULL;
            char vb[1024];
            snprintf(vb, sizeof vb, "%s", val);
            for (char *t = strtok_r(vb, ",", &s2); t; t = strtok_r(NULL, ",", &s2)) {
                if (strcmp(t, "verifier") == 0) {
                    c->verifier = true;
                } else if (strcmp(t, "signal") == 0) {
                    c->signal = true;
                } else if (strncmp(t, "status:", 7) == 0) {
                    uint32_t st;
                    if (!parse_status(t + 7, &st)) {
                        tacio__set_error("capture spec: unknown status '%s' (a tacio status name "
                                         "such as CANCELLED, or a number)", t + 7);
                        return -1;
                    }
                    if (c->n_status >= MAX_STATUSES) {
                        tacio__set_error("capture spec: more than %d statuses", MAX_STATUSES);
                        return -1;
                    }
                    c->statuses[c->n_status++] = st;
                } else {
                    tacio__set_error("capture spec: unknown trigger '%s' (status:NAME, verifier, "
                                     "signal)", t);
                    return -1;
                }
            }
        } else if (strcmp(key, "count") == 0) {
            char *end;
            unsigned long n = strtoul(val, &end, 10);
            if (!*val || *end || n > 100000) {
                tacio__set_error("capture spec: count '%s' is not a number up to 100000", val);
                return -1;
            }
            c->count = (unsigned)n;
        } else if (strcmp(key, "dir") == 0) {
            if (!*val || strlen(val) >= sizeof c->dir - 64) {
                tacio__set_error("capture spec: dir is empty or too long");
                return -1;
            }
            snprintf(c->dir, sizeof c->dir, "%s", val);
        } else {
            tacio__set_error("capture spec: unknown key '%s' (on, count, dir)", key);
            return -1;
        }
    }
    if (!c->dir[0]) {
        /* Next to the fault log, which names them. */
        tacio__diag_config_defaults();
        snprintf(c->dir, sizeof c->dir, "%s", tacio__diag_cfg.fault_log);
        char *slash = strrchr(c->dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(c->dir, sizeof c->dir, ".");
    }
    return 0;
}

tacio_status_t tacio_capture_configure(const char *spec)
{
    bool off = !spec || !*spec || strcmp(spec, "off") == 0;
    struct capture_cfg *c = NULL;
    if (!off) {
        c = calloc(1, sizeof *c);
        if (!c)
            return TACIO_NO_MEMORY;
        if (parse(spec, c) != 0) {
            free(c);
            return TACIO_INVALID_PARAMETER;
        }
#if !defined(__x86_64__)
        free(c);
        tacio__set_error("capture: no core writer for this architecture");
        return TACIO_NOT_SUPPORTED;
#endif
    }
    /* Disarm first, so no trigger reserves against the old count after the
     * reset; then publish (release: the fields before the pointer). */
    atomic_store_explicit(&tacio__capture_armed, 0, memory_order_relaxed);
    atomic_store_explicit(&current, NULL, memory_order_release);
    atomic_store(&reserved, 0);
    atomic_store_explicit(&current, c, memory_order_release);
    if (c && c->n_status && c->count)
        atomic_store_explicit(&tacio__capture_armed, 1, memory_order_relaxed);
    return TACIO_SUCCESS;
}

unsigned tacio_capture_count(void)
{
    return atomic_load(&written);
}

/* ---- triggers --------------------------------------------------------------- */

static bool reserve(const struct capture_cfg *c)
{
    unsigned n = atomic_load(&reserved);
    do {
        if (n >= c->count)
            return false;
    } while (!atomic_compare_exchange_weak(&reserved, &n, n + 1));
    if (n + 1 >= c->count)
        atomic_store_explicit(&tacio__capture_armed, 0, memory_order_relaxed);
    return true;
}

/* DIR/core.tacio.PID.N, async-signal-safe. */
static void dump_path(const char *dir, char *out, size_t size)
{
    char num[24];
    tacio__strlcpy(out, dir, size);
    tacio__strlcat(out, "/core.tacio.", size);
    num[tacio__fmt_u64(num, (uint64_t)getpid())] = 0;
    tacio__strlcat(out, num, size);
    tacio__strlcat(out, ".", size);
    num[tacio__fmt_u64(num, atomic_fetch_add(&sequence, 1) + 1)] = 0;
    tacio__strlcat(out, num, size);
}

/* Dump, then the record naming it (or saying why there is none). */
static tacio_status_t dump_and_record(const char *dir, const char *check, const char *why,
                                      uint32_t code, const char *extra, char *path, size_t size)
{
    char p[PATH_MAX];
    dump_path(dir, p, sizeof p);
    int e = tacio__core_dump(p, NULL, false, DUMP_TIMEOUT_MS);
    char msg[PATH_MAX + 512];
    if (e)
        snprintf(msg, sizeof msg, "first-chance capture: %s; dump %s not written: %s (%s)", why, p,
                 strerrorname_np(e) ? strerrorname_np(e) : "?", strerror(e));
    else
        snprintf(msg, sizeof msg, "first-chance capture: %s; dump written to %s", why, p);
    uintptr_t pcs[TACIO_FAULT_MAX_FRAMES];
    size_t n = tacio__diag_stack_here(pcs, TACIO_FAULT_MAX_FRAMES);
    struct tacio_fault_stack st = { .name = "triggering_thread", .pcs = pcs, .n = n };
    struct tacio_fault_record r = {
        .kind = "capture", .check = check, .message = msg, .exception_code = code,
        .stacks = &st, .n_stacks = 1, .extra_json = extra, .dump = e ? NULL : p,
    };
    tacio__fault_record_write(&r, NULL);
    if (e)
        return tacio_status_from_errno(e);
    if (path && size) {
        tacio__strlcpy(path, p, size);
        if (strlen(p) >= size)
            return TACIO_BUFFER_OVERFLOW;
    }
    return TACIO_SUCCESS;
}

void tacio__capture_status(uint32_t status, const void *op, uint64_t key)
{
    const struct capture_cfg *c = atomic_load_explicit(&current, memory_order_acquire);
    if (!c)
        return;
    bool match = false;
    for (unsigned i = 0; i < c->n_status && !match; i++)
        match = c->statuses[i] == status;
    if (!match || !reserve(c))
        return;
    char check[96], why[192], extra[160];
    const char *name = tacio_status_name(status);
    snprintf(check, sizeof check, "status:%s", name);
    snprintf(why, sizeof why, "%s (0x%08X) delivered for op %p, key %llu", name, (unsigned)status,
             op, (unsigned long long)key);
    snprintf(extra, sizeof extra, "\"trigger\":\"status\",\"op\":\"%p\",\"key\":%llu", op,
             (unsigned long long)key);
    if (dump_and_record(c->dir, check, why, status, extra, NULL, 0) == TACIO_SUCCESS)
        atomic_fetch_add(&written, 1);
}

int tacio__capture_verifier(const char *check, char *path, size_t size)
{
    const struct capture_cfg *c = atomic_load_explicit(&current, memory_order_acquire);
    if (!c || !c->verifier || !reserve(c))
        return 0;
    char p[PATH_MAX];
    dump_path(c->dir, p, sizeof p);
    int e = tacio__core_dump(p, NULL, false, DUMP_TIMEOUT_MS);
    if (e) {
        char msg[PATH_MAX + 512];
        snprintf(msg, sizeof msg, "tacio: first-chance capture for verifier check %s: dump %s not "
                 "written: %s\n", check ? check : "?", p, strerror(e));
        tacio__write_str(2, msg);
        return 0;
    }
    atomic_fetch_add(&written, 1);
    tacio__strlcpy(path, p, size);
    return 1;
}

int tacio__capture_signal(const ucontext_t *uc, char *path, size_t size)
{
    const struct capture_cfg *c = atomic_load_explicit(&current, memory_order_acquire);
    if (!c || !c->signal || !reserve(c))
        return 0;
    dump_path(c->dir, path, size);
    if (tacio__core_dump(path, uc, true, DUMP_TIMEOUT_MS) != 0)
        return 0;
    atomic_fetch_add(&written, 1);
    return 1;
}

tacio_status_t tacio_capture_now(const char *reason, char *path, size_t size)
{
    const struct capture_cfg *c = atomic_load_explicit(&current, memory_order_acquire);
    char dir[PATH_MAX];
    if (c) {
        tacio__strlcpy(dir, c->dir, sizeof dir);
    } else {
        tacio__diag_config_defaults();
        tacio__strlcpy(dir, tacio__diag_cfg.fault_log, sizeof dir);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            tacio__strlcpy(dir, ".", sizeof dir);
    }
    char why[300];
    snprintf(why, sizeof why, "requested: %s", reason ? reason : "tacio_capture_now");
    return dump_and_record(dir, "api", why, 0, "\"trigger\":\"api\"", path, size);
}
