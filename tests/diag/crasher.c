/* crasher - a tacio program that faults in a known place, for the diag tests.
 *
 *   crasher segv|abort|fpe|bus|kill|fatal|capture-signal|report
 *
 * Each mode installs the fault handlers (tacio_diag_install) unless
 * TACIO_CRASHER_NO_INSTALL is set (then TACIO_DIAG=1 must do it), and
 * reaches the fault through a chain of named noinline functions so a
 * record's stack can be checked frame by frame. The line the SIGSEGV
 * happens on carries the marker CRASH-LINE (the tests read it from here).
 */
#include <tacio/diag.h>
#include <tacio/tacio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "diag/record.h"

volatile int *volatile crash_target;
volatile int divisor;

__attribute__((noinline)) int crash_here(int x)
{
    *crash_target = x; /* CRASH-LINE */
    return x + 1;
}

__attribute__((noinline)) int crash_caller(int x)
{
    int r = crash_here(x * 2);
    return r + 1; /* not a tail call: crash_caller stays on the stack */
}

__attribute__((noinline)) int divide_here(int x)
{
    return x / divisor;
}

__attribute__((noinline)) void bus_here(void)
{
    /* A page of a file that is shorter than the mapping: SIGBUS. */
    char path[] = "/tmp/tacio-crasher-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    char *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    volatile char c = p[4096];
    (void)c;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: crasher segv|abort|fpe|bus|kill|fatal|report\n");
        return 2;
    }
    if (!getenv("TACIO_CRASHER_NO_INSTALL")) {
        tacio_diag_options_t o = {
            .app_version = "1.2.3-test",
            .flags = getenv("TACIO_CRASHER_NO_SYMBOLS") ? TACIO_DIAG_NO_SYMBOLS : 0,
        };
        tacio_status_t st = tacio_diag_install(&o);
        if (st != TACIO_SUCCESS) {
            fprintf(stderr, "tacio_diag_install: %s\n", tacio_status_name(st));
            return 3;
        }
    }
    const char *m = argv[1];
    if (strcmp(m, "segv") == 0)
        return crash_caller(21);
    if (strcmp(m, "abort") == 0)
        abort();
    if (strcmp(m, "fpe") == 0)
        return divide_here(7);
    if (strcmp(m, "bus") == 0) {
        bus_here();
        return 0;
    }
    if (strcmp(m, "kill") == 0) {
        kill(getpid(), SIGSEGV);
        return 0;
    }
    if (strcmp(m, "fatal") == 0)
        tacio__diag_fatal("test.fatal", "crasher asked for a fatal error");
    if (strcmp(m, "report") == 0)
        return tacio_diag_report("test.report", "crasher reports and goes on") == TACIO_SUCCESS ? 0 : 4;
    fprintf(stderr, "crasher: unknown mode %s\n", m);
    return 2;
}
