/* diag-test-util.h - helpers the diag tests share: run a program, read a
 * file, pick a string field out of a fault record. Header-only (static),
 * since each test is one executable. */
#ifndef TACIO_DIAG_TEST_UTIL_H
#define TACIO_DIAG_TEST_UTIL_H

#include "tacio-test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct run_result {
    int status;        /* waitpid status */
    char out[65536];   /* stdout + stderr, NUL-terminated */
    unsigned ms;       /* how long it ran */
};

/* Run argv (env: extra "K=V" entries, NULL-terminated, may be NULL) with
 * stdout and stderr captured; kill it after timeout_ms (a hang fails). */
static __attribute__((unused)) void run_prog(char *const argv[], char *const env[], unsigned timeout_ms,
                     struct run_result *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        TT_FAIL("pipe2: %s", strerror(errno));
    uint64_t start = tt_now_ns();
    pid_t pid = fork();
    if (pid < 0)
        TT_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        /* The tests read tacio's records and dumps, not the kernel's cores. */
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        execv(argv[0], argv);
        fprintf(stderr, "execv %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        unsigned spent = (unsigned)((tt_now_ns() - start) / 1000000u);
        if (spent >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(p[0]);
            TT_FAIL("%s did not finish within %u ms (it hangs)", argv[0], timeout_ms);
        }
        struct pollfd pf = { p[0], POLLIN, 0 };
        if (poll(&pf, 1, (int)(timeout_ms - spent)) <= 0)
            continue;
        ssize_t n = read(p[0], r->out + len, sizeof r->out - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len + 1 >= sizeof r->out)
            break;
    }
    r->out[len] = 0;
    close(p[0]);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    r->ms = (unsigned)((tt_now_ns() - start) / 1000000u);
}

/* A fresh directory under TMPDIR; removed by rm_rf. */
static __attribute__((unused)) void make_tmpdir(char *out, size_t size)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, size, "%s/tacio-diag-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out))
        TT_FAIL("mkdtemp: %s", strerror(errno));
}

static __attribute__((unused)) void rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* The whole file, malloc'd (NULL when it cannot be read). */
static __attribute__((unused)) char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            if (!buf)
                TT_FAIL("out of memory");
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (!n)
            break;
        len += n;
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

static __attribute__((unused)) unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* The first "key":"value" string in s, copied into out; 0 if none. The
 * record puts its top-level fields before its stacks, so the first match
 * of a key such as "module" is the top-level one. */
static __attribute__((unused)) int json_str_field(const char *s, const char *key, char *out, size_t size)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = s ? strstr(s, pat) : NULL;
    if (!p)
        return 0;
    p += strlen(pat);
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < size) {
        out[n] = p[n];
        n++;
    }
    out[n] = 0;
    return 1;
}

/* Run a shell command line, capture its output; returns the exit status. */
static __attribute__((unused)) int run_shell(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        TT_FAIL("popen %s: %s", cmd, strerror(errno));
    size_t len = fread(out, 1, size - 1, f);
    out[len] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Number of entries in dir whose name starts with prefix. */
static __attribute__((unused)) unsigned count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

#endif
