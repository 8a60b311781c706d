/* src/http/steer.c - the CPU steering of src/http/steer.h. */
#include "http/steer.h"

#include <errno.h>
#include <linux/filter.h>
#include <pthread.h>
#include <stdbool.h>
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
    struct group *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct group *groups;

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
        if ((e = attach_locked(g, fd)) != 0)
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
        } else {
            (void)attach_locked(g, g->m[0].fd);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}
