/* symbolize.c - addresses to module!function+0xNN (file:line) with libdw.
 *
 * libdw allocates and takes locks, so this never runs in a signal handler:
 * the fault handler runs it in a forked child (record.c), everything else
 * calls it directly. It reads the modules of the live process from
 * /proc/PID/maps and their DWARF from the files on disk (or the
 * /usr/lib/debug/.build-id tree); it never asks a debuginfod server. */
#include "diag/diag-internal.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Only local separate debug files, by build-id: libdw's standard finder
 * may consult debuginfod (network) when DEBUGINFOD_URLS is set. */
static int find_local_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                                Dwarf_Addr base, const char *file_name,
                                const char *debuglink_file, GElf_Word debuglink_crc,
                                char **debuginfo_file_name)
{
    (void)userdata; (void)modname; (void)base; (void)file_name;
    (void)debuglink_file; (void)debuglink_crc;
    const unsigned char *id;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &id, &vaddr);
    if (len <= 1)
        return -1;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%02x/", id[0]);
    for (int i = 1; i < len && n < (int)sizeof path - 8; i++)
        n += snprintf(path + n, sizeof path - (size_t)n, "%02x", id[i]);
    snprintf(path + n, sizeof path - (size_t)n, ".debug");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        *debuginfo_file_name = strdup(path);
    return fd;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_local_debuginfo,
};

size_t tacio__symbolize(const uintptr_t *pcs, size_t n, int first_exact, char *out, size_t size)
{
    if (!size)
        return 0;
    out[0] = 0;
    Dwfl *dwfl = dwfl_begin(&callbacks);
    if (!dwfl)
        return 0;
    size_t len = 0;
    if (dwfl_linux_proc_report(dwfl, getpid()) != 0 || dwfl_report_end(dwfl, NULL, NULL) != 0) {
        dwfl_end(dwfl);
        return 0;
    }
    for (size_t i = 0; i < n && len + 1 < size; i++) {
        Dwarf_Addr pc = pcs[i];
        /* A return address points after the call; the call's line is at pc-1. */
        Dwarf_Addr look = (i == 0 && first_exact) || pc == 0 ? pc : pc - 1;
        Dwfl_Module *mod = dwfl_addrmodule(dwfl, look);
        const char *func = NULL, *file = NULL;
        GElf_Off off = 0;
        int line = 0;
        if (mod) {
            GElf_Sym sym;
            func = dwfl_module_addrinfo(mod, look, &off, &sym, NULL, NULL, NULL);
            off += pc - look; /* report the offset of pc itself */
            Dwfl_Line *l = dwfl_module_getsrc(mod, look);
            if (l)
                file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
        }
        int w;
        if (func)
            w = snprintf(out + len, size - len, "%zu\t%s+0x%llx\t%s\t%d\n", i, func,
                         (unsigned long long)off, file ? file : "", line);
        else
            w = snprintf(out + len, size - len, "%zu\t\t%s\t%d\n", i, file ? file : "", line);
        if (w < 0 || (size_t)w >= size - len) {
            out[len] = 0;
            break;
        }
        len += (size_t)w;
    }
    dwfl_end(dwfl);
    return len;
}
