/* record.c - the one fault-record writer (record.h says what it promises).
 *
 * Order of work, chosen so the record survives whatever fails next:
 *   1. format the JSON line into a buffer on the caller's stack (the fault
 *      handler runs on a 256 KiB alternate stack);
 *   2. symbolise: directly when called from a normal thread; from the fault
 *      handler in a forked child with a deadline (libdw allocates; a fault
 *      inside malloc would deadlock it in the process), the raw
 *      module+offset frames are written whether or not it answers;
 *   3. append the line to the log with one O_APPEND write;
 *   4. send it to the journal (sd_journal_send is not async-signal-safe
 *      either: from the handler it runs in another forked child, killed
 *      after 2 s).
 */
#include "diag/diag-internal.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#ifndef TACIO_VERSION_STRING
#define TACIO_VERSION_STRING "unknown"
#endif

#define SYM_TIMEOUT_MS 3000
#define JOURNAL_TIMEOUT_MS 2000
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

struct tacio__diag_config tacio__diag_cfg;
_Atomic int tacio__diag_fatal_recorded;

/* ---- signal names and their NTSTATUS ------------------------------------ */

uint32_t tacio__signal_ntstatus(int sig, int code)
{
    switch (sig) {
    case SIGSEGV: return 0xC0000005u;                             /* STATUS_ACCESS_VIOLATION */
    case SIGBUS:  return code == BUS_ADRALN ? 0x80000002u         /* STATUS_DATATYPE_MISALIGNMENT */
                                            : 0xC0000006u;        /* STATUS_IN_PAGE_ERROR */
    case SIGILL:  return code == ILL_PRVOPC || code == ILL_PRVREG
                      ? 0xC0000096u                               /* STATUS_PRIVILEGED_INSTRUCTION */
                      : 0xC000001Du;                              /* STATUS_ILLEGAL_INSTRUCTION */
    case SIGFPE:
        switch (code) {
        case FPE_INTDIV: return 0xC0000094u;                      /* STATUS_INTEGER_DIVIDE_BY_ZERO */
        case FPE_INTOVF: return 0xC0000095u;                      /* STATUS_INTEGER_OVERFLOW */
        case FPE_FLTDIV: return 0xC000008Eu;                      /* STATUS_FLOAT_DIVIDE_BY_ZERO */
        case FPE_FLTOVF: return 0xC0000091u;                      /* STATUS_FLOAT_OVERFLOW */
        case FPE_FLTUND: return 0xC0000093u;                      /* STATUS_FLOAT_UNDERFLOW */
        case FPE_FLTRES: return 0xC000008Fu;                      /* STATUS_FLOAT_INEXACT_RESULT */
        default:         return 0xC0000090u;                      /* STATUS_FLOAT_INVALID_OPERATION */
        }
    /* What Windows reports for abort() and __fastfail: the process ended itself. */
    case SIGABRT: return 0xC0000409u;                             /* STATUS_STACK_BUFFER_OVERRUN */
    default:      return 0;
    }
}

static const char *ntstatus_name(uint32_t code, bool in_signal)
{
    switch (code) {
    case 0xC0000005u: return "STATUS_ACCESS_VIOLATION";
    case 0x80000002u: return "STATUS_DATATYPE_MISALIGNMENT";
    case 0xC0000006u: return "STATUS_IN_PAGE_ERROR";
    case 0xC0000096u: return "STATUS_PRIVILEGED_INSTRUCTION";
    case 0xC000001Du: return "STATUS_ILLEGAL_INSTRUCTION";
    case 0xC0000094u: return "STATUS_INTEGER_DIVIDE_BY_ZERO";
    case 0xC0000095u: return "STATUS_INTEGER_OVERFLOW";
    case 0xC000008Eu: return "STATUS_FLOAT_DIVIDE_BY_ZERO";
    case 0xC0000091u: return "STATUS_FLOAT_OVERFLOW";
    case 0xC0000093u: return "STATUS_FLOAT_UNDERFLOW";
    case 0xC000008Fu: return "STATUS_FLOAT_INEXACT_RESULT";
    case 0xC0000090u: return "STATUS_FLOAT_INVALID_OPERATION";
    case 0xC0000409u: return "STATUS_STACK_BUFFER_OVERRUN";
    default: break;
    }
    if (in_signal)
        return NULL;
    const char *n = tacio_status_name(code);
    return strncmp(n, "TACIO_STATUS_0x", 15) == 0 ? NULL : n;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    default: return NULL;
    }
}

const char *tacio__signal_code_name(int sig, int code)
{
    if (code == SI_USER) return "SI_USER";
    if (code == SI_TKILL) return "SI_TKILL";
    if (code == SI_QUEUE) return "SI_QUEUE";
    if (code <= 0) return NULL;
    switch (sig) {
    case SIGSEGV:
        return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR"
             : code == SEGV_BNDERR ? "SEGV_BNDERR" : code == SEGV_PKUERR ? "SEGV_PKUERR" : NULL;
    case SIGBUS:
        return code == BUS_ADRALN ? "BUS_ADRALN" : code == BUS_ADRERR ? "BUS_ADRERR"
             : code == BUS_OBJERR ? "BUS_OBJERR" : NULL;
    case SIGILL:
        return code == ILL_ILLOPC ? "ILL_ILLOPC" : code == ILL_ILLOPN ? "ILL_ILLOPN"
             : code == ILL_PRVOPC ? "ILL_PRVOPC" : code == ILL_ILLTRP ? "ILL_ILLTRP" : NULL;
    case SIGFPE:
        return code == FPE_INTDIV ? "FPE_INTDIV" : code == FPE_INTOVF ? "FPE_INTOVF"
             : code == FPE_FLTDIV ? "FPE_FLTDIV" : code == FPE_FLTINV ? "FPE_FLTINV" : NULL;
    default:
        return NULL;
    }
}

/* ---- configuration ------------------------------------------------------ */

static void default_log_path(char *out, size_t size)
{
    const char *env = getenv("TACIO_FAULT_LOG");
    if (env && *env) {
        tacio__strlcpy(out, env, size);
        return;
    }
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/') {
        tacio__strlcpy(out, xdg, size);
        tacio__strlcat(out, "/tacio/faults.jsonl", size);
        return;
    }
    /* Absolute, so a later chdir() does not move the log. */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) {
        tacio__strlcpy(out, cwd, size);
        tacio__strlcat(out, "/tacio-faults/faults.jsonl", size);
    } else {
        tacio__strlcpy(out, "tacio-faults/faults.jsonl", size);
    }
}

/* Process start from /proc/self/stat (field 22, clock ticks after boot)
 * and btime in /proc/stat; the time of this call if either is missing. */
static void read_start_time(int64_t *sec, long *nsec)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *sec = now.tv_sec;
    *nsec = now.tv_nsec;
    char buf[4096];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return;
    int field = 2;
    unsigned long long ticks = 0;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    ticks = strtoull(p, NULL, 10);
    fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char st[16384];
    n = read(fd, st, sizeof st - 1);
    close(fd);
    if (n <= 0)
        return;
    st[n] = 0;
    char *b = strstr(st, "\nbtime ");
    long hz = sysconf(_SC_CLK_TCK);
    if (!b || hz <= 0)
        return;
    long long btime = strtoll(b + 7, NULL, 10);
    *sec = btime + (int64_t)(ticks / (unsigned long long)hz);
    *nsec = (long)(ticks % (unsigned long long)hz) * (1000000000L / hz);
}

void tacio__diag_config_defaults(void)
{
    struct tacio__diag_config *c = &tacio__diag_cfg;
    if (c->fault_log[0])
        return;
    default_log_path(c->fault_log, sizeof c->fault_log);
    tacio__strlcpy(c->app_name, program_invocation_short_name, sizeof c->app_name);
    const char *v = getenv("TACIO_APP_VERSION");
    tacio__strlcpy(c->app_version, v ? v : "", sizeof c->app_version);
    ssize_t k = readlink("/proc/self/exe", c->exe, sizeof c->exe - 1);
    c->exe[k > 0 ? k : 0] = 0;
    const char *j = getenv("TACIO_DIAG_JOURNAL");
    if (j && strcmp(j, "0") == 0)
        c->flags |= TACIO_DIAG_NO_JOURNAL;
    read_start_time(&c->start_sec, &c->start_nsec);
    tacio__modules_refresh();
}

/* ---- stacks ------------------------------------------------------------- */

__attribute__((noinline)) size_t tacio__diag_stack_here(uintptr_t *pcs, size_t max)
{
    void *raw[TACIO_FAULT_MAX_FRAMES + 1];
    int n = backtrace(raw, TACIO_FAULT_MAX_FRAMES + 1);
    size_t out = 0;
    for (int i = 1; i < n && out < max; i++) /* 0 is this function */
        pcs[out++] = (uintptr_t)raw[i];
    return out;
}

/* The symbolised lines for stack s: "#s\n" then "INDEX\tFUNC\tFILE\tLINE\n". */
static bool sym_lookup(const char *syms, size_t s, size_t i, const char **func, size_t *func_len,
                       const char **file, size_t *file_len, uint64_t *line)
{
    if (!syms)
        return false;
    char head[24] = "#";
    size_t hn = 1 + tacio__fmt_u64(head + 1, s);
    head[hn++] = '\n';
    head[hn] = 0;
    const char *p = syms;
    if (strncmp(p, head, hn) != 0) {
        char nl_head[26] = "\n";
        tacio__strlcat(nl_head, head, sizeof nl_head);
        p = strstr(syms, nl_head);
        if (!p)
            return false;
        p++;
    }
    p += hn;
    while (*p && *p != '#') {
        const char *end = strchr(p, '\n');
        if (!end)
            return false;
        uint64_t idx = 0;
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            idx = idx * 10 + (uint64_t)(*q++ - '0');
        if (idx == i && *q == '\t') {
            const char *f = ++q;
            while (q < end && *q != '\t')
                q++;
            *func = f;
            *func_len = (size_t)(q - f);
            const char *fl = ++q;
            while (q < end && *q != '\t')
                q++;
            *file = fl;
            *file_len = q < end ? (size_t)(q - fl) : 0;
            *line = 0;
            for (q++; q < end && *q >= '0' && *q <= '9'; q++)
                *line = *line * 10 + (uint64_t)(*q - '0');
            return true;
        }
        p = end + 1;
    }
    return false;
}

static size_t symbolize_all(const struct tacio_fault_record *r, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t s = 0; s < r->n_stacks && len + 32 < size; s++) {
        const struct tacio_fault_stack *st = &r->stacks[s];
        char head[24] = "#";
        size_t hn = 1 + tacio__fmt_u64(head + 1, s);
        head[hn++] = '\n';
        memcpy(out + len, head, hn);
        len += hn;
        out[len] = 0;
        if (st->pcs && st->n)
            len += tacio__symbolize(st->pcs, st->n, st->first_exact, out + len, size - len);
    }
    return len;
}

/* From the fault handler: symbolise in a child that has its own copy of
 * the address space, so a lock the faulting thread held cannot stop the
 * record, only the symbols. */
static void symbolize_in_child(const struct tacio_fault_record *r, char *out, size_t size)
{
    out[0] = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    pid_t pid = _Fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        size_t n = symbolize_all(r, out, size);
        tacio__write_all(p[1], out, n);
        _exit(0);
    }
    close(p[1]);
    size_t len = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (long)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= SYM_TIMEOUT_MS)
            break;
        struct pollfd pf = { p[0], POLLIN, 0 };
        int k = poll(&pf, 1, (int)(SYM_TIMEOUT_MS - spent));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        ssize_t got = read(p[0], out + len, size - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
        if (len + 1 >= size)
            break;
    }
    out[len] = 0;
    close(p[0]);
    tacio__wait_child(pid, 0);
}

/* ---- the JSON line --------------------------------------------------------- */

static void jb_module(struct jbuf *b, uintptr_t pc, bool top)
{
    struct tacio__module m;
    if (!tacio__modules_find(pc, &m))
        return;
    tacio__jb_key(b, "module");
    tacio__jb_str(b, m.name);
    tacio__jb_key(b, top ? "module_path" : "module_path");
    tacio__jb_str(b, m.path);
    if (m.build_id_len) {
        char id[2 * sizeof m.build_id + 1];
        size_t n = 0;
        for (unsigned i = 0; i < m.build_id_len; i++)
            n += tacio__fmt_hex(id + n, m.build_id[i], 2);
        id[n] = 0;
        tacio__jb_key(b, top ? "module_build_id" : "build_id");
        tacio__jb_str(b, id);
    }
    if (top) {
        tacio__jb_key(b, "module_base");
        tacio__jb_hex(b, m.base, 0);
    }
    tacio__jb_key(b, top ? "fault_offset" : "offset");
    tacio__jb_hex(b, pc - m.base, 0);
}

static void jb_frame(struct jbuf *b, const char *syms, size_t s, size_t i, uintptr_t pc)
{
    tacio__jb_raw(b, "{");
    tacio__jb_key(b, "pc");
    tacio__jb_hex(b, pc, 0);
    struct tacio__module m;
    bool have_mod = tacio__modules_find(pc, &m);
    if (have_mod)
        jb_module(b, pc, false);
    const char *func = NULL, *file = NULL;
    size_t func_len = 0, file_len = 0;
    uint64_t line = 0;
    bool have_sym = sym_lookup(syms, s, i, &func, &func_len, &file, &file_len, &line);
    char sym[256] = "", fil[512] = "";
    if (have_sym) {
        tacio__strlcpy(sym, func, func_len + 1 < sizeof sym ? func_len + 1 : sizeof sym);
        tacio__strlcpy(fil, file, file_len + 1 < sizeof fil ? file_len + 1 : sizeof fil);
        if (sym[0]) {
            tacio__jb_key(b, "symbol");
            tacio__jb_str(b, sym);
        }
        if (fil[0]) {
            tacio__jb_key(b, "file");
            tacio__jb_str(b, fil);
            tacio__jb_key(b, "line");
            tacio__jb_u64(b, line);
        }
    }
    /* The one-glance form: module!function+0xNN (file:line). */
    char text[1024] = "";
    if (have_mod)
        tacio__strlcpy(text, m.name, sizeof text);
    else
        tacio__strlcpy(text, "?", sizeof text);
    char num[24];
    if (sym[0]) {
        tacio__strlcat(text, "!", sizeof text);
        tacio__strlcat(text, sym, sizeof text);
    } else {
        tacio__strlcat(text, "+0x", sizeof text);
        num[tacio__fmt_hex(num, have_mod ? pc - m.base : pc, 0)] = 0;
        tacio__strlcat(text, num, sizeof text);
    }
    if (fil[0]) {
        tacio__strlcat(text, " (", sizeof text);
        tacio__strlcat(text, fil, sizeof text);
        tacio__strlcat(text, ":", sizeof text);
        num[tacio__fmt_u64(num, line)] = 0;
        tacio__strlcat(text, num, sizeof text);
        tacio__strlcat(text, ")", sizeof text);
    }
    tacio__jb_key(b, "frame");
    tacio__jb_str(b, text);
    tacio__jb_raw(b, "}");
}

/* level 0: everything; 1: without symbols; 2: without stacks and extra
 * (each a fallback when the line did not fit its buffer). */
static void build_line(struct jbuf *b, const struct tacio_fault_record *r, const char *id,
                       const char *syms, bool in_signal, int level)
{
    if (level >= 1)
        syms = NULL;
    const struct tacio__diag_config *c = &tacio__diag_cfg;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char t[32];

    tacio__jb_raw(b, "{");
    tacio__jb_key(b, "type");
    tacio__jb_str(b, "tacio.fault");
    tacio__jb_key(b, "record_version");
    tacio__jb_u64(b, 1);
    tacio__jb_key(b, "report_id");
    tacio__jb_str(b, id);
    tacio__fmt_time(t, now.tv_sec, now.tv_nsec);
    tacio__jb_key(b, "time");
    tacio__jb_str(b, t);
    tacio__jb_key(b, "kind");
    tacio__jb_str(b, r->kind ? r->kind : "report");
    if (r->check) {
        tacio__jb_key(b, "check");
        tacio__jb_str(b, r->check);
    }
    if (r->message) {
        tacio__jb_key(b, "message");
        tacio__jb_str(b, r->message);
    }

    tacio__jb_key(b, "app");
    tacio__jb_raw(b, "{");
    tacio__jb_key(b, "name");
    tacio__jb_str(b, c->app_name);
    tacio__jb_key(b, "path");
    tacio__jb_str(b, c->exe);
    if (c->app_version[0]) {
        tacio__jb_key(b, "version");
        tacio__jb_str(b, c->app_version);
    }
    struct tacio__module main_mod;
    if (tacio__modules_main(&main_mod) && main_mod.build_id_len) {
        char bid[2 * sizeof main_mod.build_id + 1];
        size_t n = 0;
        for (unsigned i = 0; i < main_mod.build_id_len; i++)
            n += tacio__fmt_hex(bid + n, main_mod.build_id[i], 2);
        bid[n] = 0;
        tacio__jb_key(b, "build_id");
        tacio__jb_str(b, bid);
    }
    tacio__jb_raw(b, "}");
    tacio__jb_key(b, "tacio_version");
    tacio__jb_str(b, TACIO_VERSION_STRING);
    tacio__fmt_time(t, c->start_sec, c->start_nsec);
    tacio__jb_key(b, "start_time");
    tacio__jb_str(b, t);
    tacio__jb_key(b, "pid");
    tacio__jb_i64(b, getpid());
    tacio__jb_key(b, "tid");
    tacio__jb_i64(b, tacio__gettid());
    char tname[17] = "";
    prctl(PR_GET_NAME, tname, 0, 0, 0);
    tname[16] = 0;
    tacio__jb_key(b, "thread_name");
    tacio__jb_str(b, tname);

    if (r->exception_code || r->signo) {
        tacio__jb_key(b, "exception_code");
        tacio__jb_hex(b, r->exception_code, 8);
        const char *en = ntstatus_name(r->exception_code, in_signal);
        if (en) {
            tacio__jb_key(b, "exception");
            tacio__jb_str(b, en);
        }
    }
    if (r->signo) {
        tacio__jb_key(b, "signal");
        tacio__jb_i64(b, r->signo);
        const char *sn = signal_name(r->signo);
        if (sn) {
            tacio__jb_key(b, "signal_name");
            tacio__jb_str(b, sn);
        }
        tacio__jb_key(b, "si_code");
        tacio__jb_i64(b, r->si_code);
        const char *cn = tacio__signal_code_name(r->signo, r->si_code);
        if (cn) {
            tacio__jb_key(b, "si_code_name");
            tacio__jb_str(b, cn);
        }
    }
    if (r->has_fault_addr) {
        tacio__jb_key(b, "fault_address");
        tacio__jb_hex(b, r->fault_addr, 0);
    }
    uintptr_t pc = r->fault_pc;
    if (!pc && r->n_stacks && r->stacks[0].pcs && r->stacks[0].n)
        pc = r->stacks[0].pcs[0];
    if (pc) {
        tacio__jb_key(b, "fault_pc");
        tacio__jb_hex(b, pc, 0);
        jb_module(b, pc, true);
    }
    if (r->dump) {
        tacio__jb_key(b, "dump");
        tacio__jb_str(b, r->dump);
    }

    tacio__jb_key(b, "stacks");
    tacio__jb_raw(b, "[");
    for (size_t s = 0; level < 2 && s < r->n_stacks && s < TACIO_FAULT_MAX_STACKS; s++) {
        const struct tacio_fault_stack *st = &r->stacks[s];
        if (s)
            tacio__jb_raw(b, ",");
        tacio__jb_raw(b, "{");
        tacio__jb_key(b, "name");
        tacio__jb_str(b, st->name ? st->name : "stack");
        tacio__jb_key(b, "frames");
        tacio__jb_raw(b, "[");
        for (size_t i = 0; st->pcs && i < st->n && i < TACIO_FAULT_MAX_FRAMES; i++) {
            if (i)
                tacio__jb_raw(b, ",");
            jb_frame(b, syms, s, i, st->pcs[i]);
        }
        for (size_t i = 0; st->text && i < st->n_text && i < TACIO_FAULT_MAX_FRAMES; i++) {
            if (i || (st->pcs && st->n))
                tacio__jb_raw(b, ",");
            tacio__jb_raw(b, "{");
            tacio__jb_key(b, "frame");
            tacio__jb_str(b, st->text[i]);
            tacio__jb_raw(b, "}");
        }
        tacio__jb_raw(b, "]}");
    }
    tacio__jb_raw(b, "]");
    if (level < 2 && r->extra_json && r->extra_json[0]) {
        tacio__jb_key(b, "extra");
        tacio__jb_raw(b, "{");
        tacio__jb_raw(b, r->extra_json);
        tacio__jb_raw(b, "}");
    }
    tacio__jb_raw(b, "}");
    b->p[b->len++] = '\n';
    b->p[b->len] = 0;
}

/* ---- sinks ------------------------------------------------------------------ */

static int append_line(const char *path, const char *line, size_t n)
{
    int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = open(path, flags, 0644);
    if (fd < 0 && errno == ENOENT) {
        int e = tacio__mkdir_parent(path);
        if (e)
            return e;
        fd = open(path, flags, 0644);
    }
    if (fd < 0)
        return errno;
    ssize_t w;
    do {
        w = write(fd, line, n);
    } while (w < 0 && errno == EINTR);
    int e = w == (ssize_t)n ? 0 : w < 0 ? errno : ENOSPC;
    if (close(fd) != 0 && !e && errno != EINTR)
        e = errno;
    return e;
}

static void journal_send(const struct tacio_fault_record *r, const char *id, const char *line,
                         bool in_signal)
{
    if (tacio__diag_cfg.flags & TACIO_DIAG_NO_JOURNAL)
        return;
    /* No journal here (containers, non-systemd systems): nothing to do. */
    if (access(JOURNAL_SOCKET, W_OK) != 0)
        return;
    const char *kind = r->kind ? r->kind : "report";
    int prio = strcmp(kind, "signal") == 0 || strcmp(kind, "fatal") == 0 ? 2 : 4;
    pid_t pid = 0;
    if (in_signal) {
        pid = _Fork();
        if (pid < 0)
            return;
        if (pid > 0) {
            tacio__wait_child(pid, JOURNAL_TIMEOUT_MS);
            return;
        }
    }
    size_t n = strlen(line);
    sd_journal_send("MESSAGE=tacio %s%s%s in %s (pid %d): %s", kind, r->check ? " " : "",
                    r->check ? r->check : "", tacio__diag_cfg.app_name, (int)getpid(),
                    r->message ? r->message : "",
                    "MESSAGE_ID=" TACIO_DIAG_MESSAGE_ID,
                    "PRIORITY=%d", prio,
                    "SYSLOG_IDENTIFIER=%s", tacio__diag_cfg.app_name,
                    "TACIO_REPORT_ID=%s", id,
                    "TACIO_KIND=%s", kind,
                    "TACIO_RECORD=%.*s", (int)(n && line[n - 1] == '\n' ? n - 1 : n), line,
                    NULL);
    if (in_signal)
        _exit(0);
}

#define LINE_MAX_BYTES (48 * 1024)
#define SYMS_MAX_BYTES (24 * 1024)

tacio_status_t tacio__fault_record_write(const struct tacio_fault_record *r, char *report_id)
{
    bool in_signal = r->flags & TACIO_FR_SIGNAL;
    if (!in_signal)
        tacio__diag_config_defaults();
    char id[37];
    tacio__uuid(id);
    if (report_id)
        tacio__strlcpy(report_id, id, 37);

    char syms[SYMS_MAX_BYTES];
    syms[0] = 0;
    bool want_syms = !(tacio__diag_cfg.flags & TACIO_DIAG_NO_SYMBOLS);
    if (want_syms && in_signal)
        symbolize_in_child(r, syms, sizeof syms);
    else if (want_syms)
        symbolize_all(r, syms, sizeof syms);

    char mem[LINE_MAX_BYTES];
    struct jbuf b;
    for (int level = 0; level < 3; level++) {
        tacio__jb_init(&b, mem, sizeof mem);
        build_line(&b, r, id, syms, in_signal, level);
        if (!b.overflow)
            break;
    }

    const char *path = tacio__diag_cfg.fault_log[0] ? tacio__diag_cfg.fault_log
                                                    : "tacio-faults/faults.jsonl";
    int e = append_line(path, b.p, b.len);
    if (e) {
        const char *en = strerrorname_np(e), *ed = strerrordesc_np(e);
        tacio__write_str(2, "tacio: fault record not written to ");
        tacio__write_str(2, path);
        tacio__write_str(2, ": ");
        tacio__write_str(2, en ? en : "error");
        tacio__write_str(2, " (");
        tacio__write_str(2, ed ? ed : "?");
        tacio__write_str(2, "); the record follows\n");
        tacio__write_all(2, b.p, b.len);
    }
    journal_send(r, id, b.p, in_signal);
    return e ? tacio_status_from_errno(e) : TACIO_SUCCESS;
}

/* ---- public reports and fatal errors ------------------------------------ */

tacio_status_t tacio_diag_report(const char *check, const char *message)
{
    uintptr_t pcs[TACIO_FAULT_MAX_FRAMES];
    size_t n = tacio__diag_stack_here(pcs, TACIO_FAULT_MAX_FRAMES);
    struct tacio_fault_stack st = { .name = "reporting_thread", .pcs = pcs, .n = n };
    struct tacio_fault_record r = {
        .kind = "report", .check = check, .message = message, .stacks = &st, .n_stacks = 1,
    };
    return tacio__fault_record_write(&r, NULL);
}

_Noreturn void tacio__diag_fatal(const char *check, const char *message)
{
    uintptr_t pcs[TACIO_FAULT_MAX_FRAMES];
    size_t n = tacio__diag_stack_here(pcs, TACIO_FAULT_MAX_FRAMES);
    struct tacio_fault_stack st = { .name = "failing_thread", .pcs = pcs, .n = n };
    struct tacio_fault_record r = {
        .kind = "fatal", .check = check, .message = message,
        .exception_code = 0xC0000409u, .stacks = &st, .n_stacks = 1,
    };
    tacio__fault_record_write(&r, NULL);
    atomic_store(&tacio__diag_fatal_recorded, 1);
    abort();
}
