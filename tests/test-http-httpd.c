/* tests/test-http-httpd.c - tacio-httpd as a program: first run creates the
 * development PKI and prints the curl commands, the routes answer real curl
 * clients, SIGTERM drains (a request in flight still gets its answer) and
 * the process exits 0. Ports: 0, read back from --port-file.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "tacio-test.h"

#ifndef TACIO_HTTPD_PATH
#error TACIO_HTTPD_PATH must name the tacio-httpd binary
#endif

static char g_dir[256];
static pid_t g_pid;
static unsigned g_port;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

__attribute__((format(printf, 3, 4)))
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void slurp(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void start(const char *extra)
{
    char out[256];
    if (run(out, sizeof out, "command -v curl") != 0)
        TT_SKIP("curl not installed");
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tacio-httpd-XXXXXX", t && *t ? t : "/tmp");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
    char root[300], index[320], portf[300], so[300], se[300], pki[300];
    snprintf(root, sizeof root, "%s/www", g_dir);
    mkdir(root, 0755);
    snprintf(index, sizeof index, "%s/hello.txt", root);
    FILE *f = fopen(index, "w");
    fprintf(f, "static hello\n");
    fclose(f);
    /* A file larger than any buffer of the server: streamed as it drains. */
    snprintf(index, sizeof index, "%s/big.bin", root);
    f = fopen(index, "w");
    for (int i = 0; i < 5 * 1024 * 1024; i++)
        fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    snprintf(portf, sizeof portf, "%s/port", g_dir);
    snprintf(so, sizeof so, "%s/stdout", g_dir);
    snprintf(se, sizeof se, "%s/stderr", g_dir);
    snprintf(pki, sizeof pki, "%s/pki", g_dir);
    g_pid = fork();
    ASSERT_TRUE(g_pid >= 0);
    if (g_pid == 0) {
        /* A failing case leaves with _exit: take the server along. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(so, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        setenv("TACIO_BACKEND", tt_backend(), 1); /* the server runs on the case's backend */
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "exec %s --listen https://127.0.0.1:0/ --pki-dir %s --root %s --port-file %s "
                 "--threads 2 %s",
                 TACIO_HTTPD_PATH, pki, root, portf, extra);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        char p[64];
        slurp(portf, p, sizeof p);
        if (p[0]) {
            g_port = (unsigned)atoi(p);
            return;
        }
        tt_sleep_ms(10);
    }
    TT_FAIL("tacio-httpd did not start");
}

/* SIGTERM; returns the exit status. */
static int stop(void)
{
    kill(g_pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(g_pid, &status, WNOHANG) == g_pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        tt_sleep_ms(10);
    }
    kill(g_pid, SIGKILL);
    waitpid(g_pid, &status, 0);
    TT_FAIL("tacio-httpd did not stop within 10 s of SIGTERM");
}

#define CURL "curl -sS --max-time 20 --cacert %s/pki/ca.pem "

TT_CASE(first_run_routes_and_shutdown)
{
    start("");
    char out[16384], buf[16384];
    slurp(strcat(strcpy(buf, g_dir), "/stdout"), out, sizeof out);
    ASSERT_TRUE(strstr(out, "development certificates created in") != NULL);
    ASSERT_TRUE(strstr(out, "curl --cacert") && strstr(out, "--cert") && strstr(out, "client.key"));
    ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/healthz", g_dir, g_port), 0);
    ASSERT_TRUE(!strcmp(out, "ok\n"));
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--cert %s/pki/client-chain.pem --key %s/pki/client.key "
                           "https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "\"subject\":\"O=tacio development,CN=tacio client\"") != NULL);
    ASSERT_TRUE(strstr(out, "\"verdict\":\"ok\"") && strstr(out, "\"sha256\":\""));
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "--tls-max 1.2 --cert %s/pki/client-chain.pem --key %s/pki/client.key "
                           "https://127.0.0.1:%u/whoami",
                      g_dir, g_dir, g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "\"verdict\":\"ok\"") != NULL);
    ASSERT_EQ_INT(run(out, sizeof out, CURL "-w '%%{http_code}' https://127.0.0.1:%u/whoami",
                      g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "no client certificate") && strstr(out, "403"));
    ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/hello.txt", g_dir, g_port), 0);
    ASSERT_TRUE(!strcmp(out, "static hello\n"));
    /* Twice on one keep-alive connection, byte for byte. */
    ASSERT_EQ_INT(run(out, sizeof out,
                      CURL "-o %s/a.bin -o %s/b.bin https://127.0.0.1:%u/big.bin "
                           "https://127.0.0.1:%u/big.bin && cmp %s/a.bin %s/www/big.bin && "
                           "cmp %s/b.bin %s/www/big.bin",
                      g_dir, g_dir, g_dir, g_port, g_port, g_dir, g_dir, g_dir, g_dir), 0);
    ASSERT_EQ_INT(run(out, sizeof out, CURL "-w '%%{http_code}' https://127.0.0.1:%u/nope",
                      g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "404") != NULL);
    ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/metrics", g_dir, g_port), 0);
    static const char *const want[] = {
        "tacio_http_requests_total{status=\"200\"} 6",
        "tacio_http_requests_total{status=\"403\"} 1",
        "tacio_http_client_cert_requests_total{outcome=\"success\"} 2",
        "tacio_http_client_cert_requests_total{outcome=\"no_certificate\"} 1",
        "tacio_http_handshakes_total{result=\"ok\"} 8",
        "tacio_http_completions_total{status=\"success\"}",
        /* the TLS 1.2 request presents the chain the TLS 1.3 one had */
        "tacio_http_client_cert_verdicts_cached_total 1",
    };
    /* On failure, all the counters: a response counted 499 names the race
     * in the closing note (a TLS close racing the last send's completion). */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            TT_FAIL("/metrics lacks %s:\n%s", want[i], out);
    ASSERT_EQ_INT(stop(), 0);
    slurp(strcat(strcpy(buf, g_dir), "/stdout"), out, sizeof out);
    /* One common-log-format line per request. */
    ASSERT_TRUE(strstr(out, "\"GET /healthz HTTP/1.1\" 200 3") != NULL);
    ASSERT_TRUE(strstr(out, "\"GET /whoami HTTP/1.1\" 403") != NULL);
    ASSERT_TRUE(strstr(out, "127.0.0.1:") != NULL);
    /* Second run: the PKI is found, not re-created. */
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TT_CASE(sigterm_lets_inflight_finish)
{
    /* Two shards, each on its own SO_REUSEPORT socket (the default, shared
     * listeners, runs in first_run_routes_and_shutdown): the drain and the
     * deadline hold across both. */
    start("--log json --shutdown-deadline-ms 3000 --shards 2 --shard-accept hash "
          "--listen http://127.0.0.1:0/");
    char p[64];
    char path[300];
    snprintf(path, sizeof path, "%s/port", g_dir);
    slurp(path, p, sizeof p);
    unsigned http_port = 0;
    sscanf(p, "%*u %u", &http_port);
    ASSERT_TRUE(http_port != 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_TRUE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    const char *head = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234";
    ASSERT_EQ_INT(write(fd, head, strlen(head)), (int)strlen(head));
    tt_sleep_ms(200);
    kill(g_pid, SIGTERM);
    tt_sleep_ms(300);
    ASSERT_EQ_INT(write(fd, "56789", 5), 5);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    ASSERT_TRUE(strstr(buf, "HTTP/1.1 200") && strstr(buf, "Connection: close"));
    ASSERT_TRUE(strstr(buf, "\r\n\r\n0123456789") != NULL);
    close(fd);
    ASSERT_EQ_INT(stop(), 0);
    char out[8192];
    snprintf(path, sizeof path, "%s/stdout", g_dir);
    slurp(path, out, sizeof out);
    ASSERT_TRUE(strstr(out, "{\"peer\":\"127.0.0.1:") && strstr(out, "\"status\":200"));
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --shard-accept cpu: a shard per CPU, each bound to it; every request is
 * answered whichever shard takes it, and too many shards are refused. */
TT_CASE(shard_accept_cpu_serves)
{
    cpu_set_t allowed;
    ASSERT_EQ_INT(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    if (CPU_COUNT(&allowed) < 2)
        TT_SKIP("needs two CPUs");
    start("--shards 2 --shard-accept cpu --log none");
    char out[4096];
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/healthz", g_dir, g_port), 0);
        ASSERT_TRUE(!strcmp(out, "ok\n"));
    }
    ASSERT_EQ_INT(run(out, sizeof out, CURL "https://127.0.0.1:%u/metrics", g_dir, g_port), 0);
    ASSERT_TRUE(strstr(out, "tacio_http_requests_total{status=\"200\"} 8") != NULL);
    ASSERT_EQ_INT(stop(), 0);
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s --threads %d --shards %d --shard-accept cpu --log none 2>&1",
             TACIO_HTTPD_PATH, CPU_COUNT(&allowed) + 1, CPU_COUNT(&allowed) + 1);
    ASSERT_EQ_INT(run(out, sizeof out, "%s", cmd), 2);
    ASSERT_TRUE(strstr(out, "only") && strstr(out, "CPUs to run on"));
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(first_run_routes_and_shutdown, 120),
    TT_ENTRY(shard_accept_cpu_serves, 60),
    TT_ENTRY(sigterm_lets_inflight_finish, 60),
};
TT_MAIN()
