/* tacio-err - every meaning a number (or a name) can have.
 *
 *   tacio-err [--json] VALUE...
 *
 * VALUE is decimal (234, -2147024891), hex with 0x (0xC0000005) or bare hex
 * as err.exe reads it (C0000005; all-digit input is decimal first, and read
 * as hex only when it means nothing as decimal), or a name (ENOENT,
 * SIGSEGV, COR_E_EXECUTIONENGINE, STATUS_PENDING, TACIO_CANCELLED: reverse
 * lookup, then the number's every meaning).
 *
 * Tables: NTSTATUS, HRESULT (with its fields and HRESULT_FROM_WIN32 /
 * HRESULT_FROM_NT), Win32, CLR, errno, signals, tacio's statuses.
 * EXIT STATUS: 0 every VALUE matched something; 1 at least one matched
 * nothing; 2 usage error.
 */
#include "err-tables.h"

#include <tacio/status.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_MATCHES 64

struct match {
    const char *table;
    char name[64];
    uint32_t value;
    const char *message;
    const char *via;      /* "HRESULT_FROM_WIN32", "-errno", ... or NULL */
};

struct decoded {
    const char *input;
    char how[96];         /* how the input was read */
    bool have_value;
    int64_t value;
    struct match m[MAX_MATCHES];
    unsigned n;
};

static void add(struct decoded *d, const char *table, const char *name, uint32_t value,
                const char *message, const char *via)
{
    if (d->n >= MAX_MATCHES)
        return;
    for (unsigned i = 0; i < d->n; i++)
        if (strcmp(d->m[i].table, table) == 0 && strcmp(d->m[i].name, name) == 0)
            return;
    struct match *m = &d->m[d->n++];
    m->table = table;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = value;
    m->message = message;
    m->via = via;
}

static void scan(struct decoded *d, const char *table, const struct err_entry *t, unsigned n,
                 uint32_t v, const char *via)
{
    for (unsigned i = 0; i < n; i++)
        if (t[i].value == v)
            add(d, table, t[i].name, v, tacio_err_message(t[i].name), via);
}

static const char *facility_name(const struct err_entry *t, unsigned n, unsigned f)
{
    for (unsigned i = 0; i < n; i++)
        if (t[i].value == f)
            return t[i].name;
    return NULL;
}

/* tacio's own names: tacio_status_name() knows them; unknown values come
 * back as "TACIO_STATUS_0x..." */
static bool tacio_known(uint32_t v)
{
    return strncmp(tacio_status_name(v), "TACIO_STATUS_0x", 15) != 0;
}

static void decode_errno(struct decoded *d, long e, const char *via)
{
    if (e <= 0 || e > 4095)
        return;
    const char *n = strerrorname_np((int)e);
    if (n)
        add(d, "errno", n, (uint32_t)e, strerrordesc_np((int)e), via);
}

static void signal_name(int s, char *buf, size_t size)
{
    const char *a = sigabbrev_np(s);
    if (a)
        snprintf(buf, size, "SIG%s", a);
    else if (s >= SIGRTMIN && s <= SIGRTMAX)
        snprintf(buf, size, "SIGRTMIN+%d", s - SIGRTMIN);
    else
        buf[0] = 0;
}

static void decode_signal(struct decoded *d, long s)
{
    if (s <= 0 || s > SIGRTMAX)
        return;
    char name[32];
    signal_name((int)s, name, sizeof name);
    if (!name[0])
        return;
    const char *desc = sigdescr_np((int)s);
    add(d, "signal", name, (uint32_t)s, desc ? desc : "Real-time signal", NULL);
}

static void decode_value(struct decoded *d, int64_t value)
{
    d->have_value = true;
    d->value = value;
    if (value < INT32_MIN || value > (int64_t)UINT32_MAX)
        return;
    uint32_t v = (uint32_t)value;

    scan(d, "NTSTATUS", tacio_err_ntstatus, tacio_err_ntstatus_count, v, NULL);
    scan(d, "HRESULT", tacio_err_hresult, tacio_err_hresult_count, v, NULL);
    for (unsigned i = 0; i < tacio_err_clr_count; i++)
        if (tacio_err_clr[i].value == v)
            add(d, "CLR", tacio_err_clr[i].name, v, tacio_err_clr[i].message, NULL);
    if (v <= 0xFFFF)
        scan(d, "Win32", tacio_err_win32, tacio_err_win32_count, v, NULL);
    /* An HRESULT wrapping a Win32 error or an NTSTATUS names it too. */
    if ((v & 0xFFFF0000u) == 0x80070000u)
        scan(d, "Win32", tacio_err_win32, tacio_err_win32_count, v & 0xFFFF, "HRESULT_FROM_WIN32");
    if (v & 0x10000000u)
        scan(d, "NTSTATUS", tacio_err_ntstatus, tacio_err_ntstatus_count, v & ~0x10000000u,
             "HRESULT_FROM_NT");
    if (tacio_known(v))
        add(d, "tacio", tacio_status_name(v), v, tacio_status_message(v), NULL);
    if (value > 0) {
        decode_errno(d, (long)value, NULL);
        decode_signal(d, (long)value);
    } else if (value < 0) {
        /* -errno, as io_uring and the kernel return it. */
        decode_errno(d, (long)-value, "-errno");
    }
}

/* ---- names ------------------------------------------------------------- */

static bool lookup_table(const char *name, const struct err_entry *t, unsigned n, uint32_t *v)
{
    for (unsigned i = 0; i < n; i++)
        if (strcasecmp(t[i].name, name) == 0) {
            *v = t[i].value;
            return true;
        }
    return false;
}

static bool lookup_exact(const char *name, const char **table, int64_t *value)
{
    uint32_t v;
    if (lookup_table(name, tacio_err_ntstatus, tacio_err_ntstatus_count, &v)) {
        *table = "NTSTATUS"; *value = v; return true;
    }
    if (lookup_table(name, tacio_err_hresult, tacio_err_hresult_count, &v)) {
        *table = "HRESULT"; *value = v; return true;
    }
    if (lookup_table(name, tacio_err_win32, tacio_err_win32_count, &v)) {
        *table = "Win32"; *value = v; return true;
    }
    for (unsigned i = 0; i < tacio_err_clr_count; i++)
        if (strcasecmp(tacio_err_clr[i].name, name) == 0) {
            *table = "CLR"; *value = tacio_err_clr[i].value; return true;
        }
    for (int e = 1; e < 4096; e++) {
        const char *n = strerrorname_np(e);
        if (n && strcasecmp(n, name) == 0) {
            *table = "errno"; *value = e; return true;
        }
    }
    for (int s = 1; s <= SIGRTMAX; s++) {
        char sn[32];
        signal_name(s, sn, sizeof sn);
        if (sn[0] && (strcasecmp(sn, name) == 0 || strcasecmp(sn + 3, name) == 0)) {
            *table = "signal"; *value = s; return true;
        }
    }
    if (strncasecmp(name, "TACIO_", 6) == 0) {
        /* tacio's codes reuse NTSTATUS values, plus its customer facility. */
        for (unsigned i = 0; i < tacio_err_ntstatus_count; i++) {
            uint32_t t = tacio_err_ntstatus[i].value;
            if (tacio_known(t) && strcasecmp(tacio_status_name(t), name) == 0) {
                *table = "tacio"; *value = t; return true;
            }
        }
        for (uint32_t t = 0xE0FD0000u; t <= 0xE0FD0FFFu; t++)
            if (tacio_known(t) && strcasecmp(tacio_status_name(t), name) == 0) {
                *table = "tacio"; *value = t; return true;
            }
    }
    return false;
}

static bool lookup_name(const char *name, const char **table, int64_t *value, char *spelled,
                        size_t size)
{
    static const char *const prefixes[] = { "", "STATUS_", "ERROR_", "TACIO_", "SIG" };
    for (unsigned i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s%s", prefixes[i], name);
        if (lookup_exact(buf, table, value)) {
            snprintf(spelled, size, "%s", buf);
            return true;
        }
    }
    return false;
}

/* ---- input ------------------------------------------------------------- */

static bool all_of(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

static void decode_input(struct decoded *d, const char *in)
{
    memset(d, 0, sizeof *d);
    d->input = in;
    const char *digits = "0123456789";
    const char *hex = "0123456789abcdefABCDEF";

    if ((in[0] == '-' && all_of(in + 1, digits)) || all_of(in, digits)) {
        errno = 0;
        long long v = strtoll(in, NULL, 10);
        if (errno == 0) {
            snprintf(d->how, sizeof d->how, "decimal");
            decode_value(d, v);
        }
        if (d->n == 0 && in[0] != '-' && strlen(in) <= 8) {
            memset(d->m, 0, sizeof d->m);
            snprintf(d->how, sizeof d->how, "bare hex (nothing matched as decimal)");
            decode_value(d, (int64_t)strtoull(in, NULL, 16));
        }
        return;
    }
    if ((in[0] == '0' && (in[1] == 'x' || in[1] == 'X') && all_of(in + 2, hex) && strlen(in) <= 18) ||
        (all_of(in, hex) && strlen(in) <= 16)) {
        uint64_t v = strtoull(in, NULL, 16);
        snprintf(d->how, sizeof d->how, "%s", in[1] == 'x' || in[1] == 'X' ? "hex" : "bare hex");
        decode_value(d, v > INT64_MAX ? INT64_MAX : (int64_t)v);
        return;
    }
    const char *table;
    int64_t value;
    char spelled[128];
    if (lookup_name(in, &table, &value, spelled, sizeof spelled)) {
        snprintf(d->how, sizeof d->how, "name %.60s (%s)", spelled, table);
        decode_value(d, value);
        /* The name itself first, whichever table it came from. */
        for (unsigned i = 0; i < d->n; i++)
            if (strcasecmp(d->m[i].name, spelled) == 0 && i != 0) {
                struct match t = d->m[i];
                memmove(&d->m[1], &d->m[0], i * sizeof d->m[0]);
                d->m[0] = t;
                break;
            }
        return;
    }
    snprintf(d->how, sizeof d->how, "unknown name");
}

/* ---- output ------------------------------------------------------------ */

static void print_fields_text(uint32_t v)
{
    if (v <= 0xFFFF)
        return;
    unsigned sev = v >> 30, cust = (v >> 29) & 1, ntfac = (v >> 16) & 0xFFF;
    static const char *const sevname[] = { "success", "informational", "warning", "error" };
    const char *fn = cust ? NULL : facility_name(tacio_err_ntfacility, tacio_err_ntfacility_count, ntfac);
    printf("  %-12s severity %u (%s), customer %u, facility 0x%03X%s%s%s, code 0x%04X\n",
           "as NTSTATUS", sev, sevname[sev], cust, ntfac, fn ? " (" : "", fn ? fn : "",
           fn ? ")" : "", v & 0xFFFF);
    unsigned s = v >> 31, r = (v >> 30) & 1, n = (v >> 28) & 1, hfac = (v >> 16) & 0x7FF;
    const char *hn = facility_name(tacio_err_facility, tacio_err_facility_count, hfac);
    printf("  %-12s S=%u (%s), R=%u, C=%u, N=%u%s, facility %u%s%s%s, code %u (0x%04X)\n",
           "as HRESULT", s, s ? "failure" : "success", r, cust, n,
           n ? " (HRESULT_FROM_NT)" : "", hfac, hn ? " (" : "", hn ? hn : "", hn ? ")" : "",
           v & 0xFFFF, v & 0xFFFF);
    if (!n && s && hfac == 7)
        printf("  %-12s HRESULT_FROM_WIN32(%u)\n", "", v & 0xFFFF);
}

static void print_text(const struct decoded *d)
{
    if (!d->have_value) {
        printf("%s: no such name in any table\n", d->input);
        return;
    }
    uint32_t v = (uint32_t)d->value;
    if (d->value < INT32_MIN || d->value > (int64_t)UINT32_MAX)
        printf("%s = %lld (%s): does not fit in 32 bits\n", d->input, (long long)d->value, d->how);
    else
        printf("%s = 0x%08X = %u = %d (%s)\n", d->input, v, v, (int32_t)v, d->how);
    for (unsigned i = 0; i < d->n; i++) {
        const struct match *m = &d->m[i];
        printf("  %-12s %s", m->table, m->name);
        if (strcmp(m->table, "errno") == 0 || strcmp(m->table, "signal") == 0 ||
            m->value <= 0xFFFF)
            printf(" (%u)", m->value);
        else
            printf(" (0x%08X)", m->value);
        if (m->via)
            printf(" via %s", m->via);
        if (m->message)
            printf(": %s", m->message);
        printf("\n");
    }
    if (d->n == 0)
        printf("  no table has this value\n");
    if (d->value >= INT32_MIN && d->value <= (int64_t)UINT32_MAX)
        print_fields_text(v);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const struct decoded *d, bool first)
{
    printf("%s{\"input\":", first ? "" : ",");
    json_str(d->input);
    printf(",\"read_as\":");
    json_str(d->how);
    if (d->have_value && d->value >= INT32_MIN && d->value <= (int64_t)UINT32_MAX) {
        uint32_t v = (uint32_t)d->value;
        printf(",\"value\":%lld,\"hex\":\"0x%08X\",\"signed32\":%d", (long long)d->value, v, (int32_t)v);
        unsigned cust = (v >> 29) & 1;
        printf(",\"ntstatus_fields\":{\"severity\":%u,\"customer\":%u,\"facility\":%u,\"code\":%u}",
               v >> 30, cust, (v >> 16) & 0xFFF, v & 0xFFFF);
        printf(",\"hresult_fields\":{\"s\":%u,\"r\":%u,\"c\":%u,\"n\":%u,\"facility\":%u,\"code\":%u",
               v >> 31, (v >> 30) & 1, cust, (v >> 28) & 1, (v >> 16) & 0x7FF, v & 0xFFFF);
        const char *hn = facility_name(tacio_err_facility, tacio_err_facility_count, (v >> 16) & 0x7FF);
        if (hn) {
            printf(",\"facility_name\":");
            json_str(hn);
        }
        printf("}");
    } else if (d->have_value) {
        printf(",\"value\":%lld", (long long)d->value);
    }
    printf(",\"matches\":[");
    for (unsigned i = 0; i < d->n; i++) {
        const struct match *m = &d->m[i];
        printf("%s{\"table\":", i ? "," : "");
        json_str(m->table);
        printf(",\"name\":");
        json_str(m->name);
        printf(",\"value\":%u", m->value);
        if (m->via) {
            printf(",\"via\":");
            json_str(m->via);
        }
        if (m->message) {
            printf(",\"message\":");
            json_str(m->message);
        }
        printf("}");
    }
    printf("]}");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tacio-err [--json] VALUE...\n"
            "  VALUE: decimal (234, -2147024891), hex (0xC0000005, C0000005) or a name\n"
            "         (ENOENT, SIGSEGV, STATUS_PENDING, ERROR_MORE_DATA, COR_E_EXECUTIONENGINE,\n"
            "         TACIO_CANCELLED)\n"
            "  Prints every meaning in the NTSTATUS, HRESULT, Win32, CLR, errno, signal and\n"
            "  tacio tables. Exit status: 0 all matched, 1 something matched nothing, 2 usage.\n");
}

int main(int argc, char **argv)
{
    bool json = false;
    int first = 1;
    for (; first < argc && argv[first][0] == '-' && argv[first][1] == '-'; first++) {
        if (strcmp(argv[first], "--json") == 0)
            json = true;
        else if (strcmp(argv[first], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else {
            fprintf(stderr, "tacio-err: unknown option %s\n", argv[first]);
            usage(stderr);
            return 2;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    int unmatched = 0;
    if (json)
        printf("[");
    for (int i = first; i < argc; i++) {
        struct decoded d;
        decode_input(&d, argv[i]);
        if (d.n == 0)
            unmatched++;
        if (json)
            print_json(&d, i == first);
        else
            print_text(&d);
    }
    if (json)
        printf("]\n");
    return unmatched ? 1 : 0;
}
