/* tests/tacio-test.c - runner and helpers of tests/tacio-test.h.
 *
 * The runner follows libuv's runner-unix.c in spirit: the parent never
 * touches tacio, forks one child per (backend, case), watches it with a
 * deadline and reads the child's one-line verdict from a pipe.
 */
#include "tacio-test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

/* ---- state of the process ------------------------------------------------ */

static uint64_t g_seed;
static int g_seed_set;
static _Atomic uint64_t g_rand_state;
static const char *g_backend = "io_uring";
static const char *g_case = "";
static int g_verdict_fd = -1;          /* child: write end of the verdict pipe */
static char g_context[256];
static const char *g_argv0 = "test";

/* ---- time ------------------------------------------------------------------ */

uint64_t tt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tt_sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- verdicts -------------------------------------------------------------- */

const char *tt_backend(void) { return g_backend; }
const char *tt_case_name(void) { return g_case; }

const char *tt_status_str(tacio_status_t s, char *buf, size_t size)
{
    /* tacio_status_name may use a thread-local buffer: copy it out at once. */
    snprintf(buf, size, "%s (0x%08X)", tacio_status_name(s), (unsigned)s);
    return buf;
}

void tt_context(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_context, sizeof g_context, fmt, ap);
    va_end(ap);
}

/* Write the one-line verdict for the parent, then leave. _exit, not exit:
 * other threads of the case may still be inside tacio, and atexit handlers
 * or stdio teardown racing them would only add noise. */
__attribute__((noreturn))
static void child_leave(int code, const char *line)
{
    if (g_verdict_fd >= 0 && line) {
        size_t n = strlen(line);
        ssize_t w = write(g_verdict_fd, line, n);
        (void)w;
    }
    fflush(stdout);
    fflush(stderr);
    _exit(code);
}

static void vfail(const char *file, int line, const char *fmt, va_list ap)
{
    char msg[768], full[1500];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char where[300];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%d", file, line);
    else
        snprintf(where, sizeof where, "%s", file);
    snprintf(full, sizeof full, "%s: %s [%s, seed %llu%s%s]", where, msg, g_backend,
             (unsigned long long)g_seed, g_context[0] ? ", " : "", g_context);
    fprintf(stderr, "%s\n", full);
    child_leave(1, full);
}

void tt__fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, fmt, ap);
    va_end(ap);
    _exit(1); /* not reached */
}

void tt__fail_status(const char *file, int line, const char *ea, const char *eb,
                     tacio_status_t a, tacio_status_t b)
{
    char sa[96], sb[96];
    tt_status_str(a, sa, sizeof sa);
    tt_status_str(b, sb, sizeof sb);
    tt__fail(file, line, "ASSERT_EQ_STATUS(%s, %s): %s != %s", ea, eb, sa, sb);
}

void tt__skip(const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    child_leave(TT_EXIT_SKIP, msg);
}

/* ---- randomness ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void seed_init(void)
{
    if (g_seed_set)
        return;
    const char *env = getenv("TACIO_SEED");
    if (env && *env) {
        g_seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_seed = splitmix64((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec
                            + ((uint64_t)getpid() << 32)) % 1000000000000ull;
    }
    g_seed_set = 1;
}

uint64_t tt_seed(void)
{
    seed_init();
    return g_seed;
}

static void rand_init_for_case(const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a of the case name */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
    uint64_t s = splitmix64(tt_seed() ^ h);
    atomic_store_explicit(&g_rand_state, s ? s : 1, memory_order_relaxed);
}

uint64_t tt_rand(void)
{
    /* relaxed: the state is its own only datum; the CAS makes each step
     * atomic so two threads never get the same value. */
    uint64_t x = atomic_load_explicit(&g_rand_state, memory_order_relaxed), y;
    do {
        y = x ? x : 0x2545F4914F6CDD1Dull;
        y ^= y >> 12;
        y ^= y << 25;
        y ^= y >> 27;
    } while (!atomic_compare_exchange_weak_explicit(&g_rand_state, &x, y,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return y * 0x2545F4914F6CDD1Dull;
}

uint64_t tt_rand_below(uint64_t n)
{
    if (n == 0)
        return 0;
    /* rejection sampling: no modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do
        r = tt_rand();
    while (r >= limit);
    return r % n;
}

/* ---- ports and handles ----------------------------------------------------- */

tacio_port_t *tt_port(unsigned concurrency)
{
    tacio_port_options_t o;
    memset(&o, 0, sizeof o);
    o.concurrency = concurrency;
    o.backend = g_backend;
    tacio_port_t *p = NULL;
    tacio_status_t s = tacio_port_create_ex(&p, &o);
    if (s == TACIO_NOT_SUPPORTED)
        tt__skip("backend %s not supported here: %s", g_backend, tacio_last_error());
    if (s != TACIO_SUCCESS) {
        char b[96];
        tt__fail(__FILE__, __LINE__, "tacio_port_create_ex(backend %s): %s: %s", g_backend,
                 tt_status_str(s, b, sizeof b), tacio_last_error());
    }
    if (!p)
        tt__fail(__FILE__, __LINE__, "tacio_port_create_ex returned SUCCESS and no port");
    return p;
}

tacio_handle_t *tt_handle(tacio_port_t *port, int fd, uint64_t key, unsigned flags)
{
    tacio_handle_t *h = NULL;
    tacio_status_t s = tacio_handle_open(port, fd, key, flags, &h);
    if (s != TACIO_SUCCESS) {
        char b[96];
        tt__fail(__FILE__, __LINE__, "tacio_handle_open(fd %d, flags 0x%x): %s: %s", fd, flags,
                 tt_status_str(s, b, sizeof b), tacio_last_error());
    }
    if (!h)
        tt__fail(__FILE__, __LINE__, "tacio_handle_open returned SUCCESS and no handle");
    return h;
}

unsigned tt_dequeue_all(tacio_port_t *port, tacio_entry_t *entries, unsigned max,
                        unsigned quiet_ms)
{
    return tt_collect(port, entries, max, quiet_ms, quiet_ms);
}

unsigned tt_collect(tacio_port_t *port, tacio_entry_t *entries, unsigned max,
                    unsigned first_ms, unsigned quiet_ms)
{
    unsigned total = 0;
    for (;;) {
        tacio_entry_t scratch[8];
        tacio_entry_t *dst = total < max ? entries + total : scratch;
        unsigned room = total < max ? max - total : 8;
        unsigned n = 0;
        int wait = total == 0 ? (int)first_ms : (int)quiet_ms;
        tacio_status_t s = tacio_port_dequeue(port, dst, room, &n, wait);
        if (s == TACIO_TIMEOUT || s == TACIO_ABANDONED) {
            if (n != 0)
                tt__fail(__FILE__, __LINE__, "tacio_port_dequeue: status 0x%08X with count %u",
                         (unsigned)s, n);
            return total;
        }
        if (s != TACIO_SUCCESS) {
            char b[96];
            tt__fail(__FILE__, __LINE__, "tacio_port_dequeue: %s",
                     tt_status_str(s, b, sizeof b));
        }
        if (n < 1 || n > room)
            tt__fail(__FILE__, __LINE__, "tacio_port_dequeue: SUCCESS with count %u (max %u)",
                     n, room);
        total += n;
    }
}

/* ---- kernel objects -------------------------------------------------------- */

#define SYS_CHECK(expr)                                                        \
    do {                                                                       \
        if ((expr) < 0)                                                        \
            tt__fail(__FILE__, __LINE__, "%s: %s", #expr, strerror(errno));    \
    } while (0)

void tt_socketpair(int type, int fds[2])
{
    SYS_CHECK(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds));
}

static void loopback(struct sockaddr_in *a, uint16_t port)
{
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(port);
}

static void bound_name(int fd, struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    SYS_CHECK(getsockname(fd, (struct sockaddr *)addr, &len));
}

int tt_tcp_listener(int backlog, struct sockaddr_in *addr)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS_CHECK(fd);
    loopback(&a, 0);
    SYS_CHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    SYS_CHECK(listen(fd, backlog));
    if (addr)
        bound_name(fd, addr);
    return fd;
}

void tt_tcp_pair(int *client, int *server)
{
    struct sockaddr_in a;
    int l = tt_tcp_listener(4, &a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS_CHECK(c);
    SYS_CHECK(connect(c, (struct sockaddr *)&a, sizeof a));
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    SYS_CHECK(s);
    close(l);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *client = c;
    *server = s;
}

void tt_udp_pair(int *a, int *b)
{
    struct sockaddr_in aa, ab;
    int fa = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fb = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    SYS_CHECK(fa);
    SYS_CHECK(fb);
    loopback(&aa, 0);
    loopback(&ab, 0);
    SYS_CHECK(bind(fa, (struct sockaddr *)&aa, sizeof aa));
    SYS_CHECK(bind(fb, (struct sockaddr *)&ab, sizeof ab));
    bound_name(fa, &aa);
    bound_name(fb, &ab);
    SYS_CHECK(connect(fa, (struct sockaddr *)&ab, sizeof ab));
    SYS_CHECK(connect(fb, (struct sockaddr *)&aa, sizeof aa));
    *a = fa;
    *b = fb;
}

void tt_closed_port(int type, struct sockaddr_in *addr)
{
    /* Bind an ephemeral port and close it: nothing listens there until the
     * kernel hands the number out again, which it does not do soon. */
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    SYS_CHECK(fd);
    loopback(addr, 0);
    SYS_CHECK(bind(fd, (struct sockaddr *)addr, sizeof *addr));
    bound_name(fd, addr);
    close(fd);
}

void tt_pipe(int fds[2])
{
    SYS_CHECK(pipe2(fds, O_CLOEXEC));
}

int tt_tmpfile(size_t size)
{
    const char *base = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/tacio-test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        tt__fail(__FILE__, __LINE__, "mkdtemp(%s): %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/file", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e = errno;
    if (fd >= 0)
        unlink(path);
    rmdir(dir);
    if (fd < 0)
        tt__fail(__FILE__, __LINE__, "open(%s): %s", path, strerror(e));
    unsigned char chunk[4096];
    for (size_t off = 0; off < size;) {
        size_t n = size - off < sizeof chunk ? size - off : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = tt_pattern_byte(off + i);
        ssize_t w = pwrite(fd, chunk, n, (off_t)off);
        if (w <= 0)
            tt__fail(__FILE__, __LINE__, "pwrite(tmpfile): %s", strerror(errno));
        off += (size_t)w;
    }
    return fd;
}

void tt_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    SYS_CHECK(fl);
    SYS_CHECK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

void tt_close(int fd)
{
    if (fd < 0)
        return;
    if (close(fd) != 0)
        tt__fail(__FILE__, __LINE__, "close(%d): %s", fd, strerror(errno));
}

void tt_close_reset(int fd)
{
    struct linger lg = { 1, 0 };
    SYS_CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    tt_close(fd);
}

int tt_poll(int fd, short events, int timeout_ms)
{
    struct pollfd p = { fd, events, 0 };
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    SYS_CHECK(r);
    return r ? p.revents : 0;
}

int tt_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        tt__fail(__FILE__, __LINE__, "opendir(/proc/self/fd): %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

/* ---- threads --------------------------------------------------------------- */

int tt_gettid(void)
{
    return (int)gettid();
}

static char thread_state(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* "tid (comm) S ...": comm may hold spaces and parens; the state
     * follows the last ')'. */
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

void tt_wait_sleeping(int tid, unsigned timeout_ms)
{
    uint64_t deadline = tt_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int streak = 0;
    char st = 0;
    while (tt_now_ns() < deadline) {
        st = thread_state(tid);
        streak = st == 'S' ? streak + 1 : 0;
        if (streak >= 2)
            return;
        tt_sleep_ms(10);
    }
    tt__fail(__FILE__, __LINE__, "thread %d not asleep after %u ms (state '%c')", tid,
             timeout_ms, st ? st : '?');
}

/* ---- the leak check ------------------------------------------------------- */

#define FD_TRACK 4096

static void fd_snapshot(unsigned char *set)
{
    memset(set, 0, FD_TRACK);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != self && fd >= 0 && fd < FD_TRACK)
            set[fd] = 1;
    }
    closedir(d);
}

static void leak_check(int count_before, const unsigned char *before)
{
    /* Grace period: the library may close an fd on one of its own threads
     * shortly after the case's last call (a handle's fd is closed when no
     * operation in the kernel can still name it). */
    int now = tt_fd_count();
    for (int i = 0; i < 100 && now > count_before; i++) {
        tt_sleep_ms(10);
        now = tt_fd_count();
    }
    if (now <= count_before)
        return;
    static unsigned char after[FD_TRACK];
    char list[512] = "";
    size_t used = 0;
    fd_snapshot(after);
    for (int fd = 0; fd < FD_TRACK; fd++) {
        if (!after[fd] || before[fd])
            continue;
        char link[64], target[128] = "?";
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0)
            target[n] = 0;
        int w = snprintf(list + used, sizeof list - used, " %d->%s", fd, target);
        if (w < 0 || (size_t)w >= sizeof list - used)
            break;
        used += (size_t)w;
    }
    g_context[0] = 0;
    tt__fail("leak-check", 0, "fd leak: %d open at case start, %d at end:%s", count_before,
             now, list);
}

/* ---- the runner ----------------------------------------------------------- */

__attribute__((noreturn))
static void run_child(const tt_case_t *c, int verdict_fd)
{
    static unsigned char before[FD_TRACK];
    g_verdict_fd = verdict_fd;
    g_case = c->name;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rand_init_for_case(c->name);
    setvbuf(stdout, NULL, _IOLBF, 0);
    fd_snapshot(before);
    int count = tt_fd_count();
    c->fn();
    g_context[0] = 0;
    leak_check(count, before);
    child_leave(0, NULL);
}

static const char *sig_name(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s ? s : "?";
}

typedef enum { RUN_OK, RUN_FAIL, RUN_SKIP } result_t;

static result_t run_one(const tt_case_t *c, unsigned mult, char *reason, size_t rsize)
{
    int p[2];
    reason[0] = 0;
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(reason, rsize, "pipe2: %s", strerror(errno));
        return RUN_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(reason, rsize, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return RUN_FAIL;
    }
    if (pid == 0) {
        close(p[0]);
        run_child(c, p[1]);
    }
    close(p[1]);

    uint64_t limit_ns = (uint64_t)(c->timeout_s ? c->timeout_s : 30) * mult * 1000000000ull;
    uint64_t start = tt_now_ns();
    int status = 0, timed_out = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            snprintf(reason, rsize, "waitpid: %s", strerror(errno));
            close(p[0]);
            return RUN_FAIL;
        }
        if (tt_now_ns() - start > limit_ns) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            timed_out = 1;
            break;
        }
        tt_sleep_ms(2);
    }

    /* The verdict line (if any) is in the pipe; the child is gone, so read
     * sees EOF after it. */
    size_t used = 0;
    for (;;) {
        ssize_t n = read(p[0], reason + used, rsize - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used >= rsize - 1)
            break;
    }
    reason[used] = 0;
    close(p[0]);

    if (timed_out) {
        char tail[256];
        snprintf(tail, sizeof tail, "timed out after %u s%s%s", c->timeout_s * mult,
                 used ? "; " : "", used ? reason : "");
        snprintf(reason, rsize, "%s", tail);
        return RUN_FAIL;
    }
    if (WIFSIGNALED(status)) {
        snprintf(reason + used, rsize - used, "%skilled by SIG%s", used ? "; " : "",
                 sig_name(WTERMSIG(status)));
        return RUN_FAIL;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    if (code == 0)
        return RUN_OK;
    if (code == TT_EXIT_SKIP)
        return RUN_SKIP;
    if (!used)
        snprintf(reason, rsize, "exit status %d", code);
    return RUN_FAIL;
}

static int case_selected(const tt_case_t *c, const char *pattern)
{
    return !pattern || strcmp(pattern, c->name) == 0 || fnmatch(pattern, c->name, 0) == 0;
}

int tt_main(const tt_case_t *cases, size_t n, int argc, char **argv)
{
    const char *pattern = argc > 1 ? argv[1] : NULL;
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    g_argv0 = slash ? slash + 1 : (argc > 0 ? argv[0] : "test");
    seed_init();
    signal(SIGPIPE, SIG_DFL);

    unsigned mult = 1;
    const char *m = getenv("TACIO_TEST_TIMEOUT_MULT");
    if (m && atoi(m) > 0)
        mult = (unsigned)atoi(m);

    const char *env = getenv("TACIO_TEST_BACKENDS");
    char backends[256];
    snprintf(backends, sizeof backends, "%s", env && *env ? env : "io_uring");

    size_t matched = 0;
    for (size_t i = 0; i < n; i++)
        matched += case_selected(&cases[i], pattern);
    if (matched == 0) {
        fprintf(stderr, "%s: no case matches '%s'\n", g_argv0, pattern);
        return 2;
    }

    unsigned passed = 0, failed = 0, skipped = 0;
    char *save = NULL;
    for (char *b = strtok_r(backends, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        while (*b == ' ')
            b++;
        if (!*b)
            continue;
        g_backend = b;
        for (size_t i = 0; i < n; i++) {
            if (!case_selected(&cases[i], pattern))
                continue;
            char reason[1600];
            result_t r = run_one(&cases[i], mult, reason, sizeof reason);
            if (r == RUN_OK) {
                printf("ok %s [%s]\n", cases[i].name, b);
                passed++;
            } else if (r == RUN_SKIP) {
                printf("skip %s [%s] (%s)\n", cases[i].name, b, reason[0] ? reason : "skipped");
                skipped++;
            } else {
                printf("FAIL %s [%s] (%s)\n", cases[i].name, b, reason);
                printf("# TACIO_SEED=%llu to replay: TACIO_SEED=%llu TACIO_TEST_BACKENDS=%s %s %s\n",
                       (unsigned long long)g_seed, (unsigned long long)g_seed, b, g_argv0,
                       cases[i].name);
                failed++;
            }
            fflush(stdout);
        }
    }
    printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
    fflush(stdout);
    if (failed)
        return 1;
    if (passed == 0 && skipped > 0)
        return TT_EXIT_SKIP;
    return 0;
}

/* Make io_uring_setup fail with err in this process (the test child), the way
 * container runtimes' seccomp profiles do. */
void tt_deny_io_uring(int err)
{
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fp = {.len = sizeof prog / sizeof prog[0], .filter = prog};
    ASSERT_EQ_INT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ASSERT_EQ_INT(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp), 0);
}


void tt_note(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "# %s: %s\n", tt_case_name(), line);
}
