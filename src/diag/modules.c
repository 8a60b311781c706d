/* modules.c - the table of loaded modules the fault handler names faults by.
 *
 * dl_iterate_phdr() takes the dynamic loader's lock, so the handler cannot
 * call it (the faulting thread may hold that lock). The table is built
 * outside the handler (at install, at each port creation, on
 * tacio_diag_refresh_modules()) and read by the handler without locks
 * under a sequence count. */
#include "diag/diag-internal.h"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MAX_MODULES 256

static struct tacio__module modules[MAX_MODULES];
static _Atomic unsigned n_modules;
/* Odd while a refresh rewrites the table; readers retry or give up. */
static _Atomic unsigned seq;
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long last_adds = ~0ull, last_subs = ~0ull;

static void read_build_id(struct dl_phdr_info *info, struct tacio__module *m)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            const char *name = p + sizeof *nh;
            const char *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (desc + nh->n_descsz > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                m->build_id_len = nh->n_descsz < sizeof m->build_id ? nh->n_descsz : sizeof m->build_id;
                memcpy(m->build_id, desc, m->build_id_len);
                return;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    unsigned *n = arg;
    if (*n >= MAX_MODULES)
        return 1;
    struct tacio__module *m = &modules[*n];
    memset(m, 0, sizeof *m);
    m->base = info->dlpi_addr;
    m->lo = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (lo < m->lo)
            m->lo = lo;
        if (hi > m->hi)
            m->hi = hi;
    }
    if (m->hi == 0)
        return 0;
    if (*n == 0 && (!info->dlpi_name || !info->dlpi_name[0])) {
        ssize_t k = readlink("/proc/self/exe", m->path, sizeof m->path - 1);
        m->path[k > 0 ? k : 0] = 0;
    } else {
        tacio__strlcpy(m->path, info->dlpi_name ? info->dlpi_name : "", sizeof m->path);
    }
    if (!m->path[0])
        tacio__strlcpy(m->path, *n == 0 ? "main" : "[vdso]", sizeof m->path);
    const char *slash = strrchr(m->path, '/');
    m->name = slash ? slash + 1 : m->path;
    read_build_id(info, m);
    (*n)++;
    return 0;
}

static int read_counts(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    unsigned long long *c = arg;
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
    return 1;
}

void tacio__modules_refresh(void)
{
    pthread_mutex_lock(&refresh_lock);
    /* dlpi_adds/subs change only when a module is loaded or unloaded, so
     * the common call (each port creation) costs one callback. */
    unsigned long long c[2] = { 0, 0 };
    dl_iterate_phdr(read_counts, c);
    if (c[0] != last_adds || c[1] != last_subs) {
        atomic_fetch_add_explicit(&seq, 1, memory_order_acq_rel); /* odd: readers back off */
        unsigned n = 0;
        dl_iterate_phdr(add_module, &n);
        atomic_store_explicit(&n_modules, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&seq, 1, memory_order_release); /* even: table complete */
        last_adds = c[0];
        last_subs = c[1];
    }
    pthread_mutex_unlock(&refresh_lock);
}

static int find(uintptr_t pc, struct tacio__module *out, bool main_only)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        /* acquire: the table read below is the one this count describes */
        unsigned s = atomic_load_explicit(&seq, memory_order_acquire);
        if (s & 1)
            continue;
        unsigned n = atomic_load_explicit(&n_modules, memory_order_relaxed);
        int found = 0;
        for (unsigned i = 0; i < n && !found; i++) {
            if (main_only || (pc >= modules[i].lo && pc < modules[i].hi)) {
                *out = modules[i];
                found = 1;
            }
        }
        atomic_thread_fence(memory_order_acquire); /* the copy happened before the re-check */
        if (atomic_load_explicit(&seq, memory_order_relaxed) != s)
            continue;
        if (found) {
            const char *slash = strrchr(out->path, '/');
            out->name = slash ? slash + 1 : out->path;
        }
        return found;
    }
    return 0;
}

int tacio__modules_find(uintptr_t pc, struct tacio__module *out)
{
    return find(pc, out, false);
}

int tacio__modules_main(struct tacio__module *out)
{
    return find(0, out, true);
}
