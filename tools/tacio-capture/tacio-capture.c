/* tacio-capture - run a tacio program with first-chance capture armed.
 *
 *   tacio-capture [-f STATUS]... [-e] [-v] [-n COUNT] [-d DIR] [-o LOG] -- PROGRAM [ARG...]
 *
 *   -f STATUS  dump when STATUS is delivered (CANCELLED, BUFFER_OVERFLOW,
 *              0xC0000120, ...); may be repeated
 *   -e         dump on a fatal signal (ProcDump's -e: unhandled exception)
 *   -v         dump when a verifier check fires
 *   -n COUNT   at most COUNT dumps (default 1)
 *   -d DIR     where dumps go (default: next to the fault log)
 *   -o LOG     the fault log (TACIO_FAULT_LOG)
 *
 * The ProcDump-like flags become TACIO_CAPTURE (and TACIO_DIAG=1, so the
 * fault handlers are in too), then PROGRAM is executed in place: capture
 * runs inside the program's own tacio, which is why it sees delivered
 * statuses. Attaching to an already running PID is not offered: a status
 * is only visible inside the process (docs/diagnostics.md).
 * EXIT STATUS: PROGRAM's (tacio-capture execs it); 2 usage; 127 exec failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: tacio-capture [-f STATUS]... [-e] [-v] [-n COUNT] [-d DIR] [-o LOG] -- PROGRAM [ARG...]\n");
}

int main(int argc, char **argv)
{
    char on[2048] = "", spec[4096];
    const char *count = "1", *dir = NULL, *log = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+f:evn:d:o:h")) != -1) {
        const char *add = NULL;
        char buf[256];
        switch (opt) {
        case 'f': snprintf(buf, sizeof buf, "status:%s", optarg); add = buf; break;
        case 'e': add = "signal"; break;
        case 'v': add = "verifier"; break;
        case 'n': count = optarg; break;
        case 'd': dir = optarg; break;
        case 'o': log = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (add) {
            if (strlen(on) + strlen(add) + 2 >= sizeof on) {
                fprintf(stderr, "tacio-capture: too many triggers\n");
                return 2;
            }
            if (on[0])
                strcat(on, ",");
            strcat(on, add);
        }
    }
    if (optind >= argc || !on[0]) {
        fprintf(stderr, "tacio-capture: %s\n", optind >= argc ? "no PROGRAM given" : "no trigger (-f, -e or -v)");
        usage(stderr);
        return 2;
    }
    int n = snprintf(spec, sizeof spec, "on=%s;count=%s", on, count);
    if (dir)
        n += snprintf(spec + n, sizeof spec - (size_t)n, ";dir=%s", dir);
    if (n >= (int)sizeof spec) {
        fprintf(stderr, "tacio-capture: arguments too long\n");
        return 2;
    }
    setenv("TACIO_CAPTURE", spec, 1);
    setenv("TACIO_DIAG", "1", 1);
    if (log)
        setenv("TACIO_FAULT_LOG", log, 1);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "tacio-capture: cannot run %s: %m\n", argv[optind]);
    return 127;
}
