/* coredump.c - an ELF core of the running process, written by a forked child.
 *
 * Why a forked child: fork() gives the child a copy-on-write snapshot of
 * the whole address space at one instant, so the child can write that
 * snapshot at leisure while the parent goes on (only the triggering thread
 * waits). The child has one thread, the one that forked; the dump therefore
 * shows exactly one thread, with the registers it had at the trigger:
 *   - from the fault handler, the fault's ucontext (every register exact);
 *   - from a status trigger, getcontext() in tacio__core_dump itself (the
 *     callee-saved registers, rip and rsp: enough for gdb to unwind).
 * The other threads' stacks are in the dump's memory but not listed as
 * threads (their registers are not known without ptrace); docs/diagnostics.md
 * says what that means for reading a dump.
 *
 * The child only uses syscalls and memory it maps itself (it may be a
 * _Fork() child of a fault handler, with malloc's lock held by nobody it
 * can wait for). Layout, as the kernel writes cores: ELF header, program
 * headers (PT_NOTE then one PT_LOAD per mapping), notes (NT_PRSTATUS,
 * NT_PRPSINFO, NT_FPREGSET, NT_AUXV, NT_FILE), page-aligned memory.
 * What memory is written follows the kernel's default coredump_filter:
 * anonymous and written (private writable) mappings in full, the first
 * page of each file mapping at offset 0 (ELF header and build-id), nothing
 * of other read-only file mappings (gdb reads those from the files).
 * Pages of zeros become holes in a sparse file.
 */
#include "diag/diag-internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <asm/prctl.h>
#define CORE_MACHINE EM_X86_64
#define HAVE_CORE_WRITER 1
#else
#define HAVE_CORE_WRITER 0
#endif

#if HAVE_CORE_WRITER

#define MAX_MAPS 8192
#define BIG_MAPPING (1ull << 30) /* bigger anonymous mappings (sanitizer shadow) are left out */

struct map {
    uintptr_t lo, hi;
    uint64_t file_off;
    uint32_t flags;         /* PF_R | PF_W | PF_X */
    uint32_t path_off;      /* into the path pool; 0 = anonymous */
    uint64_t dump;          /* bytes of it to write */
};

struct core_state {
    struct map *maps;
    size_t n;
    char *paths;
    size_t paths_len, paths_cap;
    char *auxv;
    size_t auxv_len;
};

static void *map_mem(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Whole file into fresh anonymous memory (procfs files have no size). */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = map_mem(cap);
    while (buf) {
        if (n + 4096 > cap) {
            char *bigger = map_mem(cap * 2);
            if (bigger)
                memcpy(bigger, buf, n);
            munmap(buf, cap);
            buf = bigger;
            cap *= 2;
            if (!buf)
                break;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static uint64_t parse_hex(const char **p)
{
    uint64_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
        if (d == 16)
            return v;
        v = v * 16 + d;
    }
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int read_maps(struct core_state *cs)
{
    size_t len;
    char *text = slurp("/proc/self/maps", &len);
    if (!text)
        return errno ? errno : EIO;
    cs->maps = map_mem(MAX_MAPS * sizeof *cs->maps);
    cs->paths_cap = len + 16;
    cs->paths = map_mem(cs->paths_cap);
    if (!cs->maps || !cs->paths)
        return ENOMEM;
    cs->paths_len = 1; /* offset 0 means "no path" */
    long page = sysconf(_SC_PAGESIZE);
    for (const char *p = text; *p && cs->n < MAX_MAPS;) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        struct map m = { 0 };
        m.lo = parse_hex(&p);
        p++;
        m.hi = parse_hex(&p);
        p++;
        char perms[4] = { p[0], p[1], p[2], p[3] };
        p += 5;
        m.file_off = parse_hex(&p);
        /* dev and inode, then the path after spaces */
        for (int field = 0; field < 2 && p < eol; field++) {
            while (p < eol && *p == ' ')
                p++;
            while (p < eol && *p != ' ')
                p++;
        }
        while (p < eol && *p == ' ')
            p++;
        const char *path = p;
        size_t plen = (size_t)(eol - p);
        m.flags = (perms[0] == 'r' ? PF_R : 0) | (perms[1] == 'w' ? PF_W : 0) |
                  (perms[2] == 'x' ? PF_X : 0);
        bool shared = perms[3] == 's';
        bool file = plen > 0 && path[0] == '/';
        if (plen) {
            memcpy(cs->paths + cs->paths_len, path, plen);
            cs->paths[cs->paths_len + plen] = 0;
            m.path_off = (uint32_t)cs->paths_len;
            cs->paths_len += plen + 1;
        }
        uint64_t size = m.hi - m.lo;
        const char *pp = plen ? cs->paths + m.path_off : "";
        if (!(m.flags & PF_R) || starts(pp, "[vvar") || starts(pp, "[vsyscall]") ||
            (starts(pp, "/dev/") && !starts(pp, "/dev/zero") && !starts(pp, "/dev/shm/")))
            m.dump = 0;
        else if (file && !(m.flags & PF_W) && !shared)
            m.dump = m.file_off == 0 ? (uint64_t)page : 0; /* ELF header page only */
        else if (size > BIG_MAPPING)
            m.dump = 0;
        else
            m.dump = size;
        if (m.dump > size)
            m.dump = size;
        cs->maps[cs->n++] = m;
        p = *eol ? eol + 1 : eol;
    }
    /* text stays mapped: this child exits right after the dump. */
    cs->auxv = slurp("/proc/self/auxv", &cs->auxv_len);
    return 0;
}

/* ---- notes ---------------------------------------------------------------- */

struct nbuf {
    char *p;
    size_t len, cap;
};

static void note(struct nbuf *nb, const char *name, uint32_t type, const void *desc, size_t dlen)
{
    size_t namesz = strlen(name) + 1;
    size_t need = sizeof(Elf64_Nhdr) + ((namesz + 3) & ~3ul) + ((dlen + 3) & ~3ul);
    if (nb->len + need > nb->cap)
        return;
    Elf64_Nhdr h = { (Elf64_Word)namesz, (Elf64_Word)dlen, type };
    memcpy(nb->p + nb->len, &h, sizeof h);
    nb->len += sizeof h;
    memcpy(nb->p + nb->len, name, namesz);
    nb->len += (namesz + 3) & ~3ul;
    memcpy(nb->p + nb->len, desc, dlen);
    nb->len += (dlen + 3) & ~3ul;
}

static void regs_from_uc(struct user_regs_struct *u, const ucontext_t *uc)
{
    const greg_t *g = uc->uc_mcontext.gregs;
    memset(u, 0, sizeof *u);
    u->r15 = (unsigned long long)g[REG_R15];
    u->r14 = (unsigned long long)g[REG_R14];
    u->r13 = (unsigned long long)g[REG_R13];
    u->r12 = (unsigned long long)g[REG_R12];
    u->rbp = (unsigned long long)g[REG_RBP];
    u->rbx = (unsigned long long)g[REG_RBX];
    u->r11 = (unsigned long long)g[REG_R11];
    u->r10 = (unsigned long long)g[REG_R10];
    u->r9 = (unsigned long long)g[REG_R9];
    u->r8 = (unsigned long long)g[REG_R8];
    u->rax = (unsigned long long)g[REG_RAX];
    u->rcx = (unsigned long long)g[REG_RCX];
    u->rdx = (unsigned long long)g[REG_RDX];
    u->rsi = (unsigned long long)g[REG_RSI];
    u->rdi = (unsigned long long)g[REG_RDI];
    u->orig_rax = ~0ull;
    u->rip = (unsigned long long)g[REG_RIP];
    u->eflags = (unsigned long long)g[REG_EFL];
    u->rsp = (unsigned long long)g[REG_RSP];
    u->cs = 0x33;
    u->ss = 0x2b;
    unsigned long fs = 0, gs = 0;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
    syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
    u->fs_base = fs;
    u->gs_base = gs;
}

static void build_notes(struct nbuf *nb, const struct core_state *cs, const ucontext_t *uc,
                        pid_t pid, pid_t tid)
{
    struct elf_prstatus pr;
    memset(&pr, 0, sizeof pr);
    pr.pr_pid = tid;
    pr.pr_ppid = getppid();
    pr.pr_pgrp = getpgrp();
    pr.pr_sid = getsid(0);
    struct user_regs_struct regs;
    regs_from_uc(&regs, uc);
    memcpy(&pr.pr_reg, &regs, sizeof regs < sizeof pr.pr_reg ? sizeof regs : sizeof pr.pr_reg);
    note(nb, "CORE", NT_PRSTATUS, &pr, sizeof pr);

    struct elf_prpsinfo ps;
    memset(&ps, 0, sizeof ps);
    ps.pr_state = 0;
    ps.pr_sname = 'R';
    ps.pr_pid = pid;
    ps.pr_ppid = getppid();
    ps.pr_uid = getuid();
    ps.pr_gid = getgid();
    tacio__strlcpy(ps.pr_fname, program_invocation_short_name, sizeof ps.pr_fname);
    size_t cl;
    char *cmd = slurp("/proc/self/cmdline", &cl);
    if (cmd) {
        size_t n = cl < sizeof ps.pr_psargs - 1 ? cl : sizeof ps.pr_psargs - 1;
        for (size_t i = 0; i < n; i++)
            ps.pr_psargs[i] = cmd[i] ? cmd[i] : ' ';
        ps.pr_psargs[n] = 0;
    }
    note(nb, "CORE", NT_PRPSINFO, &ps, sizeof ps);

    if (uc->uc_mcontext.fpregs)
        note(nb, "CORE", NT_FPREGSET, uc->uc_mcontext.fpregs, sizeof(struct user_fpregs_struct));
    if (cs->auxv && cs->auxv_len)
        note(nb, "CORE", NT_AUXV, cs->auxv, cs->auxv_len);

    /* NT_FILE: count, page size, (start, end, offset in pages) each, names. */
    size_t nfiles = 0;
    for (size_t i = 0; i < cs->n; i++)
        if (cs->maps[i].path_off && cs->paths[cs->maps[i].path_off] == '/')
            nfiles++;
    size_t sz = 16 + nfiles * 24 + cs->paths_len;
    char *f = map_mem(sz);
    if (!f)
        return;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t *w = (uint64_t *)(void *)f;
    w[0] = nfiles;
    w[1] = (uint64_t)page;
    size_t k = 2;
    for (size_t i = 0; i < cs->n; i++)
        if (cs->maps[i].path_off && cs->paths[cs->maps[i].path_off] == '/') {
            w[k++] = cs->maps[i].lo;
            w[k++] = cs->maps[i].hi;
            w[k++] = cs->maps[i].file_off / (uint64_t)page;
        }
    size_t off = k * 8;
    for (size_t i = 0; i < cs->n; i++)
        if (cs->maps[i].path_off && cs->paths[cs->maps[i].path_off] == '/') {
            const char *p = cs->paths + cs->maps[i].path_off;
            size_t l = strlen(p) + 1;
            memcpy(f + off, p, l);
            off += l;
        }
    note(nb, "CORE", NT_FILE, f, off);
}

/* ---- writing --------------------------------------------------------------- */

/* Reads any mapping, sanitizer shadow included: not instrumented. */
__attribute__((no_sanitize_address, no_sanitize("undefined")))
static bool all_zero(const char *p, size_t n)
{
    const uint64_t *q = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (q[i])
            return false;
    return true;
}

/* Copy [lo, lo+n) to fd at off. In anonymous memory (safe to read: no
 * file behind it to end early), all-zero chunks become holes; elsewhere
 * pwrite() copies straight from memory and reports an unreadable page as
 * EFAULT instead of faulting, which also leaves a hole. */
static int write_region(int fd, uintptr_t lo, uint64_t n, off_t off, bool anon)
{
    const size_t chunk = 64 * 1024;
    for (uint64_t done = 0; done < n;) {
        size_t len = n - done < chunk ? (size_t)(n - done) : chunk;
        const char *src = (const char *)(lo + done);
        if (anon && all_zero(src, len)) {
            done += len;
            continue;
        }
        /* The raw syscall: a sanitizer's pwrite interceptor would check
         * the source against its shadow and abort on memory it does not
         * track (its own shadow, other mappings). */
        ssize_t w = (ssize_t)syscall(SYS_pwrite64, fd, src, len, (long)(off + (off_t)done));
        if (w < 0 && errno == EFAULT)
            w = (ssize_t)len;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0)
            return errno;
        else if (w == 0)
            return ENOSPC;
        done += (uint64_t)w;
    }
    return 0;
}

static int write_core(const char *path, const ucontext_t *uc, pid_t pid, pid_t tid)
{
    struct core_state cs = { 0 };
    int e = read_maps(&cs);
    if (e)
        return e;
    size_t nload = 0;
    for (size_t i = 0; i < cs.n; i++)
        if (cs.maps[i].flags & PF_R)
            nload++;

    struct nbuf nb = { .cap = 1 << 20 };
    nb.p = map_mem(nb.cap);
    if (!nb.p)
        return ENOMEM;
    build_notes(&nb, &cs, uc, pid, tid);

    long page = sysconf(_SC_PAGESIZE);
    size_t nph = 1 + nload;
    size_t hdr = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
    size_t phsz = nph * sizeof(Elf64_Phdr);
    Elf64_Phdr *ph = map_mem(phsz);
    if (!ph)
        return ENOMEM;
    off_t data = (off_t)((hdr + nb.len + (size_t)page - 1) & ~((size_t)page - 1));

    ph[0] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = hdr, .p_filesz = nb.len, .p_align = 4 };
    size_t k = 1;
    off_t at = data;
    for (size_t i = 0; i < cs.n; i++) {
        const struct map *m = &cs.maps[i];
        if (!(m->flags & PF_R))
            continue;
        ph[k++] = (Elf64_Phdr){
            .p_type = PT_LOAD, .p_flags = m->flags, .p_offset = (Elf64_Off)at,
            .p_vaddr = m->lo, .p_filesz = m->dump, .p_memsz = m->hi - m->lo,
            .p_align = (Elf64_Xword)page,
        };
        at += (off_t)m->dump;
    }

    Elf64_Ehdr eh = { 0 };
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
    eh.e_type = ET_CORE;
    eh.e_machine = CORE_MACHINE;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = (Elf64_Half)(nph < PN_XNUM ? nph : PN_XNUM);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT && tacio__mkdir_parent(path) == 0)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno;
    e = 0;
    if (pwrite(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        pwrite(fd, ph, phsz, sizeof eh) != (ssize_t)phsz ||
        pwrite(fd, nb.p, nb.len, (off_t)hdr) != (ssize_t)nb.len)
        e = errno ? errno : ENOSPC;
    for (size_t i = 0, j = 1; !e && i < cs.n; i++) {
        const struct map *m = &cs.maps[i];
        if (!(m->flags & PF_R))
            continue;
        const Elf64_Phdr *p = &ph[j++];
        bool anon = !m->path_off || cs.paths[m->path_off] == '[';
        if (p->p_filesz)
            e = write_region(fd, (uintptr_t)p->p_vaddr, p->p_filesz, (off_t)p->p_offset, anon);
    }
    /* The file must reach its full length even if it ends in a hole. */
    if (!e && ftruncate(fd, at) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e)
        unlink(path);
    return e;
}

/* noinline: the dump's registers are this frame's, and gdb unwinds from
 * here to the caller; inlined, the frame would be the caller's own. */
__attribute__((noinline)) int tacio__core_dump(const char *path, const ucontext_t *uc,
                                               bool in_signal, int timeout_ms)
{
    ucontext_t here;
    if (!uc) {
        if (getcontext(&here) != 0)
            return errno;
        uc = &here;
    }
    /* The dump names the process and thread that triggered it, not the
     * child that writes it. */
    pid_t self = getpid(), tid = tacio__gettid();
    pid_t pid = in_signal ? _Fork() : fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        /* The parent's other threads are gone here; only syscalls below. */
        int e = write_core(path, uc, self, tid);
        _exit(e > 255 ? 255 : e);
    }
    int st = tacio__wait_child(pid, timeout_ms);
    return st < 0 ? ETIMEDOUT : st;
}

#else /* !HAVE_CORE_WRITER */

int tacio__core_dump(const char *path, const ucontext_t *uc, bool in_signal, int timeout_ms)
{
    (void)path; (void)uc; (void)in_signal; (void)timeout_ms;
    return ENOTSUP;
}

#endif
