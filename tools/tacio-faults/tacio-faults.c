/* tacio-faults - list and pretty-print tacio fault records.
 *
 *   tacio-faults [list] [-f LOG]             one line per record
 *   tacio-faults show [WHICH] [-f LOG]       one record in full (WHICH: a
 *                                            number from list, a report id
 *                                            or its prefix, "last" (default))
 *   tacio-faults show --json [WHICH]         the record's JSON line as is
 *   tacio-faults path                        the log tacio programs write
 *
 * LOG defaults to what a tacio program would use here (TACIO_FAULT_LOG,
 * else $XDG_STATE_HOME/tacio/faults.jsonl, else ./tacio-faults/faults.jsonl).
 * Frames the process could not symbolise (its symboliser child timed out,
 * or TACIO_DIAG_NO_SYMBOLS) are resolved here from module_path + offset
 * with libdw, if the module file is still there.
 * EXIT STATUS: 0; 1 no such record / no log; 2 usage.
 */
#include "json.h"

#include <tacio/diag.h>

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *str(const struct jv *o, const char *k)
{
    const struct jv *v = jv_get(o, k);
    return v && v->type == JV_STRING ? v->s : NULL;
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

/* ---- offline symbolisation ------------------------------------------------ */

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

static bool resolve(const char *path, unsigned long long off, bool exact, char *out, size_t size)
{
    if (!path || access(path, R_OK) != 0)
        return false;
    Dwfl *d = dwfl_begin(&offline_callbacks);
    if (!d)
        return false;
    Dwfl_Module *m = dwfl_report_offline(d, path, path, -1);
    dwfl_report_end(d, NULL, NULL);
    bool ok = false;
    if (m) {
        Dwarf_Addr base;
        dwfl_module_info(m, NULL, &base, NULL, NULL, NULL, NULL, NULL);
        Dwarf_Addr a = base + off - (exact ? 0 : 1);
        GElf_Off so;
        GElf_Sym sym;
        const char *fn = dwfl_module_addrinfo(m, a, &so, &sym, NULL, NULL, NULL);
        int line = 0;
        const char *file = NULL;
        Dwfl_Line *l = dwfl_module_getsrc(m, a);
        if (l)
            file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
        const char *slash = strrchr(path, '/');
        if (fn) {
            int n = snprintf(out, size, "%s!%s+0x%llx", slash ? slash + 1 : path, fn,
                             (unsigned long long)so + (exact ? 0 : 1));
            if (file && n > 0 && (size_t)n < size)
                snprintf(out + n, size - (size_t)n, " (%s:%d)", file, line);
            ok = true;
        }
    }
    dwfl_end(d);
    return ok;
}

/* ---- reading ---------------------------------------------------------------- */

struct rec {
    char *line;
    struct jv *v;
};

static int load(const char *path, struct rec **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "tacio-faults: %s: %m\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t count = 0, alloc = 0;
    struct rec *r = NULL;
    unsigned lineno = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] == '\n')
            line[--len] = 0;
        if (!len)
            continue;
        struct jv *v = jv_parse(line);
        if (!v || v->type != JV_OBJECT) {
            fprintf(stderr, "tacio-faults: %s:%u: not a JSON record, skipped\n", path, lineno);
            jv_free(v);
            continue;
        }
        if (count == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            r = realloc(r, alloc * sizeof *r);
            if (!r) {
                fprintf(stderr, "tacio-faults: out of memory\n");
                exit(1);
            }
        }
        r[count].line = strdup(line);
        r[count].v = v;
        count++;
    }
    free(line);
    fclose(f);
    *out = r;
    *n = count;
    return 0;
}

static void free_all(struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].line);
        jv_free(r[i].v);
    }
    free(r);
}

static void where(const struct jv *o, char *buf, size_t size)
{
    const char *mod = str(o, "module"), *off = str(o, "fault_offset");
    const struct jv *stacks = jv_get(o, "stacks");
    const struct jv *frames = stacks && stacks->n ? jv_get(&stacks->items[0], "frames") : NULL;
    const char *frame = frames && frames->n ? str(&frames->items[0], "frame") : NULL;
    if (frame)
        snprintf(buf, size, "%s", frame);
    else if (mod)
        snprintf(buf, size, "%s+%s", mod, or_dash(off));
    else
        snprintf(buf, size, "-");
}

static void list(const struct rec *r, size_t n)
{
    printf("%-4s %-24s %-8s %-24s %-32s %-10s %s\n", "#", "time", "kind", "app[pid]", "exception",
           "code", "where");
    for (size_t i = 0; i < n; i++) {
        const struct jv *o = r[i].v;
        char app[64], w[512];
        const struct jv *a = jv_get(o, "app");
        const struct jv *pid = jv_get(o, "pid");
        snprintf(app, sizeof app, "%s[%lld]", or_dash(a ? str(a, "name") : NULL),
                 pid ? (long long)pid->num : 0);
        where(o, w, sizeof w);
        const char *exc = str(o, "exception");
        if (!exc)
            exc = str(o, "check");
        printf("%-4zu %-24s %-8s %-24s %-32s %-10s %s\n", i + 1, or_dash(str(o, "time")),
               or_dash(str(o, "kind")), app, or_dash(exc), or_dash(str(o, "exception_code")), w);
    }
}

static void show(const struct jv *o)
{
    const struct jv *a = jv_get(o, "app");
    const struct jv *pid = jv_get(o, "pid"), *tid = jv_get(o, "tid");
    printf("Report Id:                    %s\n", or_dash(str(o, "report_id")));
    printf("Kind:                         %s%s%s\n", or_dash(str(o, "kind")),
           str(o, "check") ? "  check " : "", str(o, "check") ? str(o, "check") : "");
    printf("Time:                         %s\n", or_dash(str(o, "time")));
    printf("Faulting application name:    %s, version: %s, build-id: %s\n",
           or_dash(a ? str(a, "name") : NULL), or_dash(a ? str(a, "version") : NULL),
           or_dash(a ? str(a, "build_id") : NULL));
    printf("Faulting application path:    %s\n", or_dash(a ? str(a, "path") : NULL));
    printf("Faulting application start:   %s\n", or_dash(str(o, "start_time")));
    printf("Faulting process id:          %lld\n", pid ? (long long)pid->num : 0);
    printf("Faulting thread id:           %lld (%s)\n", tid ? (long long)tid->num : 0,
           or_dash(str(o, "thread_name")));
    if (str(o, "module")) {
        printf("Faulting module name:         %s, build-id: %s\n", str(o, "module"),
               or_dash(str(o, "module_build_id")));
        printf("Faulting module path:         %s\n", or_dash(str(o, "module_path")));
        printf("Fault offset:                 %s\n", or_dash(str(o, "fault_offset")));
    }
    if (str(o, "exception_code"))
        printf("Exception code:               %s (%s)\n", str(o, "exception_code"),
               or_dash(str(o, "exception")));
    const struct jv *sig = jv_get(o, "signal");
    if (sig)
        printf("Signal:                       %s (%lld), %s, address %s\n",
               or_dash(str(o, "signal_name")), (long long)sig->num, or_dash(str(o, "si_code_name")),
               or_dash(str(o, "fault_address")));
    if (str(o, "message"))
        printf("Message:                      %s\n", str(o, "message"));
    if (str(o, "dump"))
        printf("Dump:                         %s\n", str(o, "dump"));
    const struct jv *stacks = jv_get(o, "stacks");
    for (size_t s = 0; stacks && s < stacks->n; s++) {
        const struct jv *st = &stacks->items[s];
        printf("\nStack %s:\n", or_dash(str(st, "name")));
        const struct jv *frames = jv_get(st, "frames");
        for (size_t i = 0; frames && i < frames->n; i++) {
            const struct jv *f = &frames->items[i];
            const char *text = str(f, "frame");
            char buf[1024];
            if (!str(f, "symbol") && str(f, "offset")) {
                unsigned long long off = strtoull(str(f, "offset"), NULL, 16);
                if (resolve(str(f, "module_path"), off, s == 0 && i == 0, buf, sizeof buf))
                    text = buf;
            }
            printf("  #%-2zu %s\n", i, or_dash(text));
        }
    }
    const struct jv *extra = jv_get(o, "extra");
    if (extra && extra->type == JV_OBJECT) {
        printf("\nExtra:\n");
        for (size_t i = 0; i < extra->n; i++) {
            char *txt = jv_text(&extra->items[i]);
            printf("  %s: %s\n", extra->keys[i], txt ? txt : "?");
            free(txt);
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tacio-faults [list] [-f LOG]\n"
               "       tacio-faults show [--json] [N|REPORT_ID|last] [-f LOG]\n"
               "       tacio-faults path\n");
}

int main(int argc, char **argv)
{
    /* Never ask a debuginfod server: resolving stays on this machine. */
    unsetenv("DEBUGINFOD_URLS");
    const char *cmd = "list", *which = "last", *log = NULL;
    bool json = false;
    int i = 1;
    if (i < argc && argv[i][0] != '-') {
        cmd = argv[i++];
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            log = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-')
            which = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    char def[4096];
    if (!log) {
        tacio_diag_fault_log(def, sizeof def);
        log = def;
    }
    if (strcmp(cmd, "path") == 0) {
        printf("%s\n", log);
        return 0;
    }
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "show") != 0) {
        usage(stderr);
        return 2;
    }
    struct rec *r;
    size_t n;
    if (load(log, &r, &n) != 0)
        return 1;
    if (strcmp(cmd, "list") == 0) {
        list(r, n);
        free_all(r, n);
        return 0;
    }
    if (n == 0) {
        fprintf(stderr, "tacio-faults: %s holds no records\n", log);
        free_all(r, n);
        return 1;
    }
    size_t pick = n;
    if (strcmp(which, "last") != 0) {
        char *end;
        unsigned long k = strtoul(which, &end, 10);
        pick = 0;
        if (!*end && k >= 1 && k <= n && strlen(which) < 6)
            pick = k;
        for (size_t j = 0; !pick && j < n; j++) {
            const char *id = str(r[j].v, "report_id");
            if (id && strncmp(id, which, strlen(which)) == 0)
                pick = j + 1;
        }
        if (!pick) {
            fprintf(stderr, "tacio-faults: no record %s in %s\n", which, log);
            free_all(r, n);
            return 1;
        }
    }
    if (json)
        printf("%s\n", r[pick - 1].line);
    else
        show(r[pick - 1].v);
    free_all(r, n);
    return 0;
}
