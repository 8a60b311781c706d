/* src/http/steer.c - the CPU steering of src/http/steer.h. */
#include "http/steer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

struct member {
    int fd;
    unsigned cpu;
};

/* One listening address: its sockets in the kernel's group order. */
struct group {
    struct sockaddr_storage addr;
    socklen_t len;
    struct member *m;
    unsigned n, cap;
    bool off; /* by hash for now: its connections came in on too few of its CPUs */
    struct group *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct group *groups;

/* New connections by the CPU that received them, all groups together (a
 * property of the machine's network, not of an address), looked at every
 * LOOK_EVERY of them. Counts wrap; only differences are read. */
#define STEER_CPUS 1024
#define LOOK_EVERY 512u
static _Atomic uint32_t arrived[STEER_CPUS];
static _Atomic uint32_t arrivals;
static uint32_t looked[STEER_CPUS]; /* arrived[] at the last look, under mu */

static struct group *find_locked(const struct sockaddr_storage *a, socklen_t len)
{
    for (struct group *g = groups; g; g = g->next)
        if (g->len == len && !memcmp(&g->addr, a, len))
            return g;
    return NULL;
}

/* The program, on any of the group's sockets (it is the group's): "the
 * socket of the receiving CPU", first match, else an index past the end,
 * which makes the kernel fall back to its hash. */
static int attach_locked(const struct group *g, int fd)
{
    unsigned len = 2 + 2 * g->n;
    if (len > BPF_MAXINSNS)
        return EINVAL;
    struct sock_filter *code = calloc(len, sizeof *code);
    if (!code)
        return ENOMEM;
    unsigned i = 0;
    code[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_CPU);
    for (unsigned k = 0; k < g->n; k++) {
        code[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, g->m[k].cpu, 0, 1);
        code[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, k);
    }
    code[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
    struct sock_fprog prog = {.len = (unsigned short)len, .filter = code};
    int e = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0 ? 0 : errno;
    free(code);
    return e;
}

/* "Always the kernel's hash", the group's program while it is off. A
 * program rather than SO_DETACH_REUSEPORT_BPF (Linux 5.3): it works wherever
 * steering does. */
static int attach_hash_locked(int fd)
{
    struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0xffffffffu)};
    struct sock_fprog prog = {.len = 1, .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0 ? 0 : errno;
}

tacio_status_t tacio__steer_join(int fd, unsigned cpu)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return tacio_status_from_errno(errno);
    pthread_mutex_lock(&mu);
    struct group *g = find_locked(&a, len);
    int e = 0;
    if (!g && (g = calloc(1, sizeof *g))) {
        g->addr = a;
        g->len = len;
        g->next = groups;
        groups = g;
    }
    if (!g)
        e = ENOMEM;
    if (!e && g->n == g->cap) {
        unsigned cap = g->cap ? 2 * g->cap : 4;
        struct member *m = realloc(g->m, cap * sizeof *m);
        if (m) {
            g->m = m;
            g->cap = cap;
        } else {
            e = ENOMEM;
        }
    }
    if (!e) {
        g->m[g->n++] = (struct member){fd, cpu};
        /* An off group's program is the group's, this socket's too. */
        if (!g->off && (e = attach_locked(g, fd)) != 0)
            g->n--; /* it listens, by hash; the others keep their program */
    }
    pthread_mutex_unlock(&mu);
    return e ? tacio_status_from_errno(e) : TACIO_SUCCESS;
}

void tacio__steer_leave(int fd)
{
    pthread_mutex_lock(&mu);
    for (struct group **gp = &groups; *gp; gp = &(*gp)->next) {
        struct group *g = *gp;
        unsigned i = 0;
        while (i < g->n && g->m[i].fd != fd)
            i++;
        if (i == g->n)
            continue;
        /* What the kernel does when the socket leaves the group. */
        g->m[i] = g->m[--g->n];
        if (g->n == 0) {
            *gp = g->next;
            free(g->m);
            free(g);
        } else if (!g->off) {
            (void)attach_locked(g, g->m[0].fd);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}

static void addr_string(const struct group *g, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (g->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&g->addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, ntohs(a->sin_port));
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&g->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
}

/* Each group, over the connections that came in on its CPUs since the last
 * look: if the busiest of its n CPUs took more than 1.5/n of them, steering
 * would load that CPU's queue with them all, so the group goes by hash;
 * back on below 1.2/n (the gap keeps a group near the line from flapping).
 * Returns whether a group changed, described in why. */
static bool look_locked(char *why, size_t len)
{
    static uint32_t d[STEER_CPUS];
    for (unsigned c = 0; c < STEER_CPUS; c++) {
        uint32_t now = atomic_load_explicit(&arrived[c], memory_order_relaxed);
        d[c] = now - looked[c];
        looked[c] = now;
    }
    bool changed = false;
    for (struct group *g = groups; g; g = g->next) {
        if (g->n < 2)
            continue;
        uint64_t total = 0, max = 0;
        unsigned busiest = 0;
        for (unsigned k = 0; k < g->n; k++) {
            bool dup = false; /* two queues on one CPU: count it once */
            for (unsigned j = 0; j < k && !dup; j++)
                dup = g->m[j].cpu == g->m[k].cpu;
            if (dup || g->m[k].cpu >= STEER_CPUS)
                continue;
            uint32_t v = d[g->m[k].cpu];
            total += v;
            if (v > max) {
                max = v;
                busiest = g->m[k].cpu;
            }
        }
        if (total < LOOK_EVERY / 4)
            continue;
        bool turn_off = !g->off && 2 * max * g->n > 3 * total;
        bool turn_on = g->off && 5 * max * g->n < 6 * total;
        if (!turn_off && !turn_on)
            continue;
        int e = turn_off ? attach_hash_locked(g->m[0].fd) : attach_locked(g, g->m[0].fd);
        if (e)
            continue; /* the kernel kept the old program: so does the group */
        g->off = turn_off;
        char a[INET6_ADDRSTRLEN + 16];
        addr_string(g, a, sizeof a);
        if (!changed)
            snprintf(why, len,
                     "%s: %llu of the last %llu new connections on its queues' CPUs came in on "
                     "CPU %u: %s",
                     a, (unsigned long long)max, (unsigned long long)total, busiest,
                     turn_off ? "steering by CPU is off, the kernel's hash spreads them"
                              : "steering by CPU is back on");
        changed = true;
    }
    return changed;
}

bool tacio__steer_arrived(int fd, char *why, size_t len)
{
    int cpu = -1;
    socklen_t sl = sizeof cpu;
    if (getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &sl) != 0 || cpu < 0 || cpu >= STEER_CPUS)
        return false;
    atomic_fetch_add_explicit(&arrived[cpu], 1, memory_order_relaxed);
    if ((atomic_fetch_add_explicit(&arrivals, 1, memory_order_relaxed) + 1) % LOOK_EVERY)
        return false;
    pthread_mutex_lock(&mu);
    bool changed = look_locked(why, len);
    pthread_mutex_unlock(&mu);
    return changed;
}
