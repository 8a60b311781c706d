/* test-seed-repro.c - examples/seed-repro under the seed case's conditions:
 * a backend that returns BUFFER_OVERFLOW synchronously for a receive it
 * also completes later (TACIO_FAULTS lie), with a caller that frees its
 * record on the warning.
 *   - no faults: every request served, nothing reported;
 *   - lie, verifier on: the report names the double completion, the first
 *     stack is the synchronous return in serve_request, the second the
 *     completion path inside a dequeue; the process aborts;
 *   - lie, verifier off, ASan build: ASan sees the runtime read the freed
 *     record: the seed case's use-after-free, stack all runtime.
 * io_uring only: on epoll a lying completion writes its result into the
 * record before the verifier's check (docs/verifier.md, limits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tacio-test.h"

static char g_out[1 << 18];

/* Run seed-repro with env prepended; its stdout+stderr in g_out. The fault
 * handlers are on (TACIO_DIAG=1): an unexpected crash leaves its record,
 * stack included, in the output below the run's own. */
static int run(const char *env)
{
    char log[64], cmd[1400];
    snprintf(log, sizeof log, "/tmp/tacio-seed-repro-%d.jsonl", (int)getpid());
    unlink(log);
    snprintf(cmd, sizeof cmd,
             "env TACIO_BACKEND=io_uring TACIO_DIAG=1 TACIO_DIAG_JOURNAL=0 TACIO_FAULT_LOG=%s "
             "ASAN_OPTIONS=abort_on_error=0:detect_leaks=0 %s %s --requests 300 2>&1; rc=$?; "
             "[ $rc -ne 0 ] && [ $rc -ne 134 ] && cat %s 2>/dev/null; exit $rc",
             log, env, SEED_REPRO_BIN, log);
    FILE *f = popen(cmd, "r");
    ASSERT_TRUE(f != NULL);
    size_t n = fread(g_out, 1, sizeof g_out - 1, f);
    g_out[n] = 0;
    int ws = pclose(f);
    unlink(log);
    return ws;
}

static void contains(const char *needle)
{
    if (!strstr(g_out, needle))
        TT_FAIL("seed-repro output lacks \"%s\":\n%s", needle, g_out);
}

TT_CASE(no_faults_serves_everything)
{
    if (strcmp(tt_backend(), "io_uring") != 0)
        TT_SKIP("runs on io_uring");
    int ws = run("");
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        TT_FAIL("seed-repro failed (status %#x):\n%s", ws, g_out);
    contains("verifier reports: 0");
    contains("second completions dropped by the runtime: 0");
}

TT_CASE(lie_with_verifier_reports_both_stacks)
{
    if (strcmp(tt_backend(), "io_uring") != 0)
        TT_SKIP("runs on io_uring");
    int ws = run("TACIO_VERIFY=1 TACIO_FAULTS=seed=1,lie=0.05");
    if (!WIFSIGNALED(ws) && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 134))
        TT_FAIL("seed-repro did not abort (status %#x):\n%s", ws, g_out);
    contains("tacio verifier: double_completion");
    contains("completed twice: it returned TACIO_BUFFER_OVERFLOW synchronously");
    contains("and was also queued");
    const char *first = strstr(g_out, "first delivery");
    const char *second = strstr(g_out, "second delivery");
    ASSERT_TRUE(first && second && first < second);
    const char *sr = strstr(first, "serve_request");
    if (!sr || sr > second)
        TT_FAIL("the first stack does not show serve_request:\n%s", g_out);
    /* The second time the runtime would touch the record: its second
     * completion in a dequeue, or, when the program ends before that
     * completion comes, the handle's close, which would mark it cancelled. */
    if (!strstr(second, "tacio_port_dequeue") && !strstr(second, "tacio_handle_close"))
        TT_FAIL("the second stack is neither a dequeue nor the handle's close:\n%s", g_out);
    contains("aborting");
}

TT_CASE(lie_without_verifier_is_the_seed_crash)
{
    if (strcmp(tt_backend(), "io_uring") != 0)
        TT_SKIP("runs on io_uring");
#if !defined(TACIO_ASAN)
    TT_SKIP("needs the ASan build to see the use-after-free");
#else
    int ws = run("TACIO_FAULTS=seed=1,lie=0.05");
    ASSERT_TRUE(!(WIFEXITED(ws) && WEXITSTATUS(ws) == 0));
    contains("heap-use-after-free");
    contains("uring.c"); /* inside the runtime's completion path */
    contains("seed-repro.c"); /* freed by the caller, after the warning */
#endif
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(no_faults_serves_everything, 60),
    TT_ENTRY(lie_with_verifier_reports_both_stacks, 60),
    TT_ENTRY(lie_without_verifier_is_the_seed_crash, 60),
};
TT_MAIN()
