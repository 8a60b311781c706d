/* test-diag-fault.c - fault records from real signals in a real program.
 *
 * Each case runs tests/diag/crasher.c (built as tacio-diag-crasher) in a
 * child, lets it die by a real signal, and reads what it left: the JSON
 * line in the fault log, its module, build-id, exception code, fault
 * offset (checked with addr2line against the marked line of crasher.c),
 * the symbolised stack, and how it died (the default action, re-raised).
 * Then the cases where the log cannot be written: a missing directory (it
 * is created), /dev/full and a full tmpfs (ENOSPC), an impossible
 * directory; the record then goes to stderr and the process still dies at
 * once. And tacio-faults reading the log back.
 */
#include "tacio-test.h"
#include "diag/diag-test-util.h"

#include <sched.h>
#include <sys/mount.h>

#ifndef TACIO_CRASHER
#error "TACIO_CRASHER: path of tacio-diag-crasher"
#endif
#ifndef TACIO_CRASHER_SRC
#error "TACIO_CRASHER_SRC: path of tests/diag/crasher.c"
#endif
#ifndef TACIO_CAPTURE_TOOL
#error "TACIO_CAPTURE_TOOL: path of tacio-capture"
#endif
#ifndef TACIO_FAULTS_PATH
#error "TACIO_FAULTS_PATH: path of tacio-faults"
#endif

#define RUN_TIMEOUT_MS 30000

static char g_dir[4096], g_log[4200], g_env_log[4300];
static struct run_result g_run;

static void setup(void)
{
    make_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_log, sizeof g_log, "%s/faults.jsonl", g_dir);
    snprintf(g_env_log, sizeof g_env_log, "TACIO_FAULT_LOG=%s", g_log);
}

static void crash(const char *mode, char *const extra_env[])
{
    char *argv[] = { TACIO_CRASHER, (char *)mode, NULL };
    char *env[8] = { g_env_log, "TACIO_DIAG_JOURNAL=0" };
    size_t n = 2;
    for (size_t i = 0; extra_env && extra_env[i] && n < 7; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    run_prog(argv, env, RUN_TIMEOUT_MS, &g_run);
}

static void expect_signal(int sig)
{
    if (!WIFSIGNALED(g_run.status) || WTERMSIG(g_run.status) != sig)
        TT_FAIL("crasher should die by signal %d (default action re-raised); status 0x%x, "
                "output:\n%s", sig, g_run.status, g_run.out);
}

static char *one_record(void)
{
    char *log = read_file(g_log);
    if (!log)
        TT_FAIL("no fault log at %s; crasher said:\n%s", g_log, g_run.out);
    if (count_lines(log) != 1)
        TT_FAIL("expected exactly one record, found %u:\n%s", count_lines(log), log);
    return log;
}

static void expect_field(const char *rec, const char *key, const char *want)
{
    char got[1024];
    if (!json_str_field(rec, key, got, sizeof got))
        TT_FAIL("record lacks \"%s\":\n%s", key, rec);
    if (want && strcmp(got, want) != 0)
        TT_FAIL("record's \"%s\" is \"%s\", expected \"%s\":\n%s", key, got, want, rec);
}

/* The line of crasher.c that holds the CRASH-LINE marker. */
static int crash_line(void)
{
    char *src = read_file(TACIO_CRASHER_SRC);
    ASSERT_TRUE(src != NULL);
    int line = 1;
    for (char *p = src; *p; p++) {
        if (strncmp(p, "/* CRASH-LINE */", 16) == 0)
            break;
        line += *p == '\n';
    }
    free(src);
    return line;
}

TT_CASE(segv_record_names_module_function_and_line)
{
    setup();
    crash("segv", NULL);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    expect_field(rec, "type", "tacio.fault");
    expect_field(rec, "kind", "signal");
    expect_field(rec, "exception_code", "0xc0000005");
    expect_field(rec, "exception", "STATUS_ACCESS_VIOLATION");
    expect_field(rec, "signal_name", "SIGSEGV");
    expect_field(rec, "si_code_name", "SEGV_MAPERR");
    expect_field(rec, "fault_address", "0x0");
    expect_field(rec, "module", "tacio-diag-crasher");
    expect_field(rec, "module_build_id", NULL);
    expect_field(rec, "report_id", NULL);
    expect_field(rec, "start_time", NULL);
    expect_field(rec, "tacio_version", NULL);
    expect_field(rec, "version", "1.2.3-test");
    ASSERT_TRUE(strstr(rec, "\"signal\":11,") != NULL);
    ASSERT_TRUE(strstr(rec, "\"tid\":") != NULL);

    /* The stack, innermost first, as module!function+0xNN. */
    char frame[1024];
    expect_field(rec, "frame", NULL);
    json_str_field(rec, "frame", frame, sizeof frame);
    if (strncmp(frame, "tacio-diag-crasher!crash_here+0x", 32) != 0)
        TT_FAIL("first frame is \"%s\", expected tacio-diag-crasher!crash_here+0x..", frame);
    ASSERT_TRUE(strstr(rec, "tacio-diag-crasher!crash_caller+0x") != NULL);
    ASSERT_TRUE(strstr(rec, "tacio-diag-crasher!main+0x") != NULL);
    char want_line[64];
    snprintf(want_line, sizeof want_line, "crasher.c:%d)", crash_line());
    if (!strstr(frame, want_line))
        TT_FAIL("first frame \"%s\" does not name %s", frame, want_line);

    /* The fault offset, given to addr2line with the module's file, is the
     * marked line: the record alone locates the fault, as the Windows
     * entry's module + offset do. */
    char path[1024], off[64], cmd[2200], out[4096];
    json_str_field(rec, "module_path", path, sizeof path);
    json_str_field(rec, "fault_offset", off, sizeof off);
    snprintf(cmd, sizeof cmd, "addr2line -f -e '%s' %s", path, off);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    /* addr2line prints "file:line" without the frame's ")". */
    snprintf(want_line, sizeof want_line, "crasher.c:%d", crash_line());
    if (!strstr(out, "crash_here\n") || !strstr(out, want_line))
        TT_FAIL("addr2line -f -e %s %s said:\n%s\nexpected crash_here at %s", path, off, out, want_line);
    free(rec);
    rm_rf(g_dir);
}

TT_CASE(each_fault_signal_maps_to_its_ntstatus)
{
    static const struct { const char *mode; int sig; const char *code, *exc, *frame; } t[] = {
        { "abort", SIGABRT, "0xc0000409", "STATUS_STACK_BUFFER_OVERRUN", "abort" },
        { "fpe", SIGFPE, "0xc0000094", "STATUS_INTEGER_DIVIDE_BY_ZERO", "tacio-diag-crasher!divide_here+0x" },
        { "bus", SIGBUS, "0xc0000006", "STATUS_IN_PAGE_ERROR", "tacio-diag-crasher!bus_here+0x" },
        { "kill", SIGSEGV, "0xc0000005", "STATUS_ACCESS_VIOLATION", "kill" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        tt_context("crasher %s", t[i].mode);
        setup();
        crash(t[i].mode, NULL);
        expect_signal(t[i].sig);
        char *rec = one_record();
        expect_field(rec, "kind", "signal");
        expect_field(rec, "exception_code", t[i].code);
        expect_field(rec, "exception", t[i].exc);
        if (!strstr(rec, t[i].frame))
            TT_FAIL("record for %s lacks frame %s:\n%s", t[i].mode, t[i].frame, rec);
        if (strcmp(t[i].mode, "kill") == 0)
            expect_field(rec, "si_code_name", "SI_USER");
        free(rec);
        rm_rf(g_dir);
    }
}

TT_CASE(fatal_error_writes_one_record_then_aborts)
{
    setup();
    crash("fatal", NULL);
    expect_signal(SIGABRT);
    char *rec = one_record(); /* not a second one for the SIGABRT */
    expect_field(rec, "kind", "fatal");
    expect_field(rec, "check", "test.fatal");
    expect_field(rec, "message", "crasher asked for a fatal error");
    free(rec);
    rm_rf(g_dir);
}

TT_CASE(report_does_not_end_the_process)
{
    setup();
    crash("report", NULL);
    ASSERT_TRUE(WIFEXITED(g_run.status));
    ASSERT_EQ_INT(WEXITSTATUS(g_run.status), 0);
    char *rec = one_record();
    expect_field(rec, "kind", "report");
    expect_field(rec, "check", "test.report");
    ASSERT_TRUE(strstr(rec, "tacio-diag-crasher!main+0x") != NULL);
    free(rec);
    rm_rf(g_dir);
}

TT_CASE(tacio_diag_env_installs_the_handlers)
{
    setup();
    char *env[] = { "TACIO_CRASHER_NO_INSTALL=1", "TACIO_DIAG=1", NULL };
    crash("segv", env);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    expect_field(rec, "exception_code", "0xc0000005");
    ASSERT_TRUE(strstr(rec, "crash_here") != NULL);
    free(rec);

    /* Without TACIO_DIAG nothing is installed: no record, same death
     * (under ASan, ASan's own SIGSEGV report and exit instead). */
    unlink(g_log);
    char *none[] = { "TACIO_CRASHER_NO_INSTALL=1", NULL };
    crash("segv", none);
#ifdef TACIO_ASAN
    ASSERT_TRUE(WIFSIGNALED(g_run.status) || (WIFEXITED(g_run.status) && WEXITSTATUS(g_run.status) != 0));
#else
    expect_signal(SIGSEGV);
#endif
    ASSERT_TRUE(access(g_log, F_OK) != 0);
    rm_rf(g_dir);
}

TT_CASE(missing_directory_is_created)
{
    setup();
    snprintf(g_log, sizeof g_log, "%s/not/there/yet/faults.jsonl", g_dir);
    snprintf(g_env_log, sizeof g_env_log, "TACIO_FAULT_LOG=%s", g_log);
    crash("segv", NULL);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    expect_field(rec, "exception_code", "0xc0000005");
    free(rec);
    rm_rf(g_dir);
}

/* The record is not lost when its file cannot be written: it goes to
 * stderr with the reason, and the process still dies at once. */
static void expect_on_stderr(const char *target, const char *errname)
{
    expect_signal(SIGSEGV);
    char want[4400];
    snprintf(want, sizeof want, "tacio: fault record not written to %s: %s", target, errname);
    if (!strstr(g_run.out, want))
        TT_FAIL("stderr lacks \"%s\":\n%s", want, g_run.out);
    ASSERT_TRUE(strstr(g_run.out, "\"type\":\"tacio.fault\"") != NULL);
    ASSERT_TRUE(strstr(g_run.out, "crash_here") != NULL);
    if (g_run.ms > 10000)
        TT_FAIL("crasher took %u ms to die with an unwritable log", g_run.ms);
}

TT_CASE(full_device_says_so_on_stderr)
{
    setup();
    snprintf(g_env_log, sizeof g_env_log, "TACIO_FAULT_LOG=/dev/full");
    crash("segv", NULL);
    expect_on_stderr("/dev/full", "ENOSPC");
    rm_rf(g_dir);
}

TT_CASE(impossible_directory_says_so_on_stderr)
{
    setup();
    /* procfs refuses mkdir even to root. */
    snprintf(g_env_log, sizeof g_env_log, "TACIO_FAULT_LOG=/proc/self/tacio-none/faults.jsonl");
    crash("segv", NULL);
    expect_signal(SIGSEGV);
    ASSERT_TRUE(strstr(g_run.out, "tacio: fault record not written to /proc/self/tacio-none/faults.jsonl: ") != NULL);
    ASSERT_TRUE(strstr(g_run.out, "\"exception_code\":\"0xc0000005\"") != NULL);
    rm_rf(g_dir);
}

TT_CASE(full_filesystem_says_so_on_stderr)
{
    /* A real full disk: a one-page tmpfs in a private mount namespace,
     * filled up before the crash. Needs CAP_SYS_ADMIN; skipped without. */
    setup();
    if (unshare(CLONE_NEWNS) != 0)
        TT_SKIP("unshare(CLONE_NEWNS): %s", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tacio-full", g_dir, "tmpfs", 0, "size=4k") != 0)
        TT_SKIP("cannot mount a tmpfs: %s", strerror(errno));
    char fill[4200];
    snprintf(fill, sizeof fill, "%s/fill", g_dir);
    int fd = open(fill, O_WRONLY | O_CREAT, 0600);
    ASSERT_TRUE(fd >= 0);
    char page[4096];
    memset(page, 'x', sizeof page);
    while (write(fd, page, sizeof page) > 0)
        ;
    close(fd);
    crash("segv", NULL);
    expect_on_stderr(g_log, "ENOSPC");
    umount2(g_dir, MNT_DETACH);
    rm_rf(g_dir);
}

TT_CASE(journal_absent_is_graceful)
{
    setup();
    if (access("/run/systemd/journal/socket", F_OK) == 0)
        TT_SKIP("a journal is listening here; this case checks the journal-less path");
    char *argv[] = { TACIO_CRASHER, "segv", NULL };
    char *env[] = { g_env_log, NULL }; /* journal not disabled: it is tried */
    run_prog(argv, env, RUN_TIMEOUT_MS, &g_run);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    expect_field(rec, "exception_code", "0xc0000005");
    ASSERT_TRUE(strstr(g_run.out, "journal") == NULL); /* nothing said about it */
    ASSERT_LE_INT(g_run.ms, 5000);
    free(rec);
    rm_rf(g_dir);
}

TT_CASE(tacio_faults_lists_and_shows)
{
    setup();
    crash("segv", NULL);
    crash("fpe", NULL);
    char cmd[4400], out[65536];
    snprintf(cmd, sizeof cmd, "%s list -f '%s'", TACIO_FAULTS_PATH, g_log);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    ASSERT_EQ_INT(count_lines(out), 3); /* heading + two records */
    ASSERT_TRUE(strstr(out, "STATUS_ACCESS_VIOLATION") && strstr(out, "STATUS_INTEGER_DIVIDE_BY_ZERO"));
    ASSERT_TRUE(strstr(out, "tacio-diag-crasher!crash_here+0x") != NULL);

    snprintf(cmd, sizeof cmd, "%s show 1 -f '%s'", TACIO_FAULTS_PATH, g_log);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    ASSERT_TRUE(strstr(out, "Faulting application name:    tacio-diag-crasher, version: 1.2.3-test") != NULL);
    ASSERT_TRUE(strstr(out, "Faulting module name:         tacio-diag-crasher, build-id: ") != NULL);
    ASSERT_TRUE(strstr(out, "Exception code:               0xc0000005 (STATUS_ACCESS_VIOLATION)") != NULL);
    ASSERT_TRUE(strstr(out, "Fault offset:                 0x") != NULL);
    ASSERT_TRUE(strstr(out, "#0  tacio-diag-crasher!crash_here+0x") != NULL);
    ASSERT_TRUE(strstr(out, "#1  tacio-diag-crasher!crash_caller+0x") != NULL);

    snprintf(cmd, sizeof cmd, "%s show last --json -f '%s'", TACIO_FAULTS_PATH, g_log);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    ASSERT_TRUE(strstr(out, "\"exception\":\"STATUS_INTEGER_DIVIDE_BY_ZERO\"") != NULL);

    snprintf(cmd, sizeof cmd, "%s show nosuch -f '%s' 2>/dev/null", TACIO_FAULTS_PATH, g_log);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 1);
    rm_rf(g_dir);
}

TT_CASE(symbols_resolved_offline_when_the_process_could_not)
{
    /* TACIO_DIAG_NO_SYMBOLS leaves raw module+offset frames (what a record
     * holds when the symboliser child is killed); tacio-faults resolves
     * them from the module file. */
    setup();
    char *env[] = { "TACIO_CRASHER_NO_SYMBOLS=1", NULL };
    crash("segv", env);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    ASSERT_TRUE(strstr(rec, "\"symbol\"") == NULL);
    ASSERT_TRUE(strstr(rec, "tacio-diag-crasher+0x") != NULL);
    free(rec);
    char cmd[4400], out[65536];
    snprintf(cmd, sizeof cmd, "%s show -f '%s'", TACIO_FAULTS_PATH, g_log);
    ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    if (!strstr(out, "#0  tacio-diag-crasher!crash_here+0x") || !strstr(out, "crasher.c:"))
        TT_FAIL("tacio-faults did not resolve the raw frames:\n%s", out);
    rm_rf(g_dir);
}

TT_CASE(signal_trigger_dumps_the_faulting_thread)
{
    setup();
    char cap[4400];
    snprintf(cap, sizeof cap, "TACIO_CAPTURE=on=signal;count=1;dir=%s", g_dir);
    char *env[] = { cap, NULL };
    crash("segv", env);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    char dump[4096];
    expect_field(rec, "dump", NULL);
    json_str_field(rec, "dump", dump, sizeof dump);
    ASSERT_TRUE(access(dump, R_OK) == 0);
    free(rec);
    char cmd[8400], out[65536];
    snprintf(cmd, sizeof cmd, "gdb -nx -batch -ex bt '%s' '%s' 2>&1", TACIO_CRASHER, dump);
    run_shell(cmd, out, sizeof out);
    if (!strstr(out, "#0  ") || !strstr(out, "crash_here") || !strstr(out, "crash_caller") ||
        !strstr(out, "main"))
        TT_FAIL("gdb bt of %s does not show crash_here <- crash_caller <- main:\n%s", dump, out);
    rm_rf(g_dir);
}

TT_CASE(tacio_capture_runs_a_program_with_capture_armed)
{
    setup();
    char argv_dir[4200];
    snprintf(argv_dir, sizeof argv_dir, "%s", g_dir);
    char *argv[] = { TACIO_CAPTURE_TOOL, "-e", "-n", "1", "-d", argv_dir, "-o", g_log, "--",
                     TACIO_CRASHER, "segv", NULL };
    char *env[] = { "TACIO_CRASHER_NO_INSTALL=1", "TACIO_DIAG_JOURNAL=0", NULL };
    run_prog(argv, env, RUN_TIMEOUT_MS, &g_run);
    expect_signal(SIGSEGV);
    char *rec = one_record();
    expect_field(rec, "dump", NULL);
    ASSERT_EQ_INT(count_files(g_dir, "core.tacio."), 1);
    free(rec);
    char *bad[] = { TACIO_CAPTURE_TOOL, "--", TACIO_CRASHER, "segv", NULL };
    run_prog(bad, NULL, RUN_TIMEOUT_MS, &g_run);
    ASSERT_TRUE(WIFEXITED(g_run.status));
    ASSERT_EQ_INT(WEXITSTATUS(g_run.status), 2); /* no trigger given */
    rm_rf(g_dir);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(segv_record_names_module_function_and_line, 60),
    TT_ENTRY(each_fault_signal_maps_to_its_ntstatus, 120),
    TT_ENTRY(fatal_error_writes_one_record_then_aborts, 60),
    TT_ENTRY(report_does_not_end_the_process, 60),
    TT_ENTRY(tacio_diag_env_installs_the_handlers, 60),
    TT_ENTRY(missing_directory_is_created, 60),
    TT_ENTRY(full_device_says_so_on_stderr, 60),
    TT_ENTRY(impossible_directory_says_so_on_stderr, 60),
    TT_ENTRY(full_filesystem_says_so_on_stderr, 60),
    TT_ENTRY(journal_absent_is_graceful, 60),
    TT_ENTRY(tacio_faults_lists_and_shows, 60),
    TT_ENTRY(symbols_resolved_offline_when_the_process_could_not, 60),
    TT_ENTRY(signal_trigger_dumps_the_faulting_thread, 120),
    TT_ENTRY(tacio_capture_runs_a_program_with_capture_armed, 60),
};
TT_MAIN()
