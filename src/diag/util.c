/* util.c - async-signal-safe building blocks of the fault records.
 *
 * The fault handler may not call malloc or stdio (a fault inside either
 * would deadlock the handler on their locks), so records are formatted by
 * hand into caller-provided buffers, with syscalls only. */
#include "diag/diag-internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- formatting ------------------------------------------------------- */

size_t tacio__fmt_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t tacio__fmt_hex(char *out, uint64_t v, int digits)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while ((int)n < digits && n < sizeof tmp)
        tmp[n++] = '0';
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void tacio__strlcpy(char *dst, const char *src, size_t size)
{
    if (!size)
        return;
    size_t i = 0;
    for (; src && src[i] && i + 1 < size; i++)
        dst[i] = src[i];
    dst[i] = 0;
}

void tacio__strlcat(char *dst, const char *src, size_t size)
{
    size_t n = strlen(dst);
    if (n < size)
        tacio__strlcpy(dst + n, src, size - n);
}

void tacio__write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

void tacio__write_str(int fd, const char *s)
{
    tacio__write_all(fd, s, strlen(s));
}

/* ---- JSON --------------------------------------------------------------- */

void tacio__jb_init(struct jbuf *b, char *mem, size_t cap)
{
    b->p = mem;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
    if (cap)
        mem[0] = 0;
}

void tacio__jb_rawn(struct jbuf *b, const char *s, size_t n)
{
    /* One byte is kept for the NUL and one for the closing newline. */
    if (b->len + n + 2 > b->cap) {
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void tacio__jb_raw(struct jbuf *b, const char *s)
{
    tacio__jb_rawn(b, s, strlen(s));
}

void tacio__jb_str(struct jbuf *b, const char *s)
{
    if (!s) {
        tacio__jb_raw(b, "null");
        return;
    }
    tacio__jb_raw(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7] = { '\\', 0 };
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            tacio__jb_rawn(b, esc, 2);
        } else if (c == '\n') {
            tacio__jb_raw(b, "\\n");
        } else if (c == '\t') {
            tacio__jb_raw(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            tacio__fmt_hex(esc + 4, c, 2);
            tacio__jb_rawn(b, esc, 6);
        } else {
            tacio__jb_rawn(b, (const char *)&c, 1);
        }
    }
    tacio__jb_raw(b, "\"");
}

void tacio__jb_key(struct jbuf *b, const char *k)
{
    if (b->len && b->p[b->len - 1] != '{' && b->p[b->len - 1] != '[')
        tacio__jb_raw(b, ",");
    tacio__jb_str(b, k);
    tacio__jb_raw(b, ":");
}

void tacio__jb_u64(struct jbuf *b, uint64_t v)
{
    char tmp[24];
    tacio__jb_rawn(b, tmp, tacio__fmt_u64(tmp, v));
}

void tacio__jb_i64(struct jbuf *b, int64_t v)
{
    if (v < 0) {
        tacio__jb_raw(b, "-");
        tacio__jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        tacio__jb_u64(b, (uint64_t)v);
    }
}

void tacio__jb_hex(struct jbuf *b, uint64_t v, int digits)
{
    char tmp[24] = "\"0x";
    size_t n = 3 + tacio__fmt_hex(tmp + 3, v, digits);
    tmp[n++] = '"';
    tacio__jb_rawn(b, tmp, n);
}

/* ---- time, ids ----------------------------------------------------------- */

/* Howard Hinnant's civil_from_days: no gmtime_r (not async-signal-safe:
 * it may take the timezone lock). */
void tacio__fmt_time(char out[32], int64_t sec, long nsec)
{
    int64_t days = sec >= 0 ? sec / 86400 : (sec - 86399) / 86400;
    int64_t rem = sec - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp + (mp < 10 ? 3 : -9);
    y += m <= 2;
    int64_t f[7] = { y, m, d, rem / 3600, rem / 60 % 60, rem % 60, nsec / 1000000 };
    static const char sep[7] = { '-', '-', 'T', ':', ':', '.', 'Z' };
    static const int width[7] = { 4, 2, 2, 2, 2, 2, 3 };
    size_t n = 0;
    for (int i = 0; i < 7; i++) {
        char tmp[24];
        size_t k = tacio__fmt_u64(tmp, (uint64_t)(f[i] < 0 ? 0 : f[i]));
        for (size_t pad = k; (int)pad < width[i]; pad++)
            out[n++] = '0';
        memcpy(out + n, tmp, k);
        n += k;
        out[n++] = sep[i];
    }
    out[n] = 0;
}

void tacio__uuid(char out[37])
{
    unsigned char r[16] = { 0 };
    ssize_t got = getrandom(r, sizeof r, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof r) {
        /* No entropy yet (early boot): time and pid still make it unique
         * enough to tell records apart. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        uint64_t b = (uint64_t)getpid() << 32 | (uint64_t)tacio__gettid();
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        n += tacio__fmt_hex(out + n, r[i], 2);
    }
    out[n] = 0;
}

pid_t tacio__gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* ---- children ------------------------------------------------------------ */

int tacio__wait_child(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int waited = 0;; waited += 5) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- directories --------------------------------------------------------- */

int tacio__mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    tacio__strlcpy(buf, dir, sizeof buf);
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return errno;
        buf[i] = c;
    }
    return 0;
}

int tacio__mkdir_parent(const char *path)
{
    char buf[PATH_MAX];
    tacio__strlcpy(buf, path, sizeof buf);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = 0;
    return tacio__mkdir_p(buf);
}
