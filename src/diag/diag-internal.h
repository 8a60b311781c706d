/* diag-internal.h - what the files of src/diag share. Not installed.
 *
 * Everything marked "async-signal-safe" here uses only syscalls and plain
 * memory: no malloc, no stdio, no locks. The fault handler may call it. */
#ifndef TACIO_DIAG_INTERNAL_H
#define TACIO_DIAG_INTERNAL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ucontext.h>

#include "diag/record.h"

/* ---- JSON into a fixed buffer (async-signal-safe) --------------------- */
struct jbuf {
    char *p;
    size_t len, cap;
    bool overflow;      /* something did not fit; the line is cut short */
};
TACIO_INTERNAL void tacio__jb_init(struct jbuf *b, char *mem, size_t cap);
TACIO_INTERNAL void tacio__jb_raw(struct jbuf *b, const char *s);
TACIO_INTERNAL void tacio__jb_rawn(struct jbuf *b, const char *s, size_t n);
TACIO_INTERNAL void tacio__jb_str(struct jbuf *b, const char *s);     /* "escaped" or null */
TACIO_INTERNAL void tacio__jb_key(struct jbuf *b, const char *k);     /* [,]"k": */
TACIO_INTERNAL void tacio__jb_u64(struct jbuf *b, uint64_t v);
TACIO_INTERNAL void tacio__jb_i64(struct jbuf *b, int64_t v);
TACIO_INTERNAL void tacio__jb_hex(struct jbuf *b, uint64_t v, int digits); /* "0x..." */

/* ---- small async-signal-safe helpers ----------------------------------- */
TACIO_INTERNAL size_t tacio__fmt_u64(char *out, uint64_t v);           /* no NUL */
TACIO_INTERNAL size_t tacio__fmt_hex(char *out, uint64_t v, int digits); /* no 0x, no NUL */
TACIO_INTERNAL void tacio__strlcpy(char *dst, const char *src, size_t size);
TACIO_INTERNAL void tacio__strlcat(char *dst, const char *src, size_t size);
TACIO_INTERNAL void tacio__write_all(int fd, const char *s, size_t n);
TACIO_INTERNAL void tacio__write_str(int fd, const char *s);
/* "2024-05-01T12:00:00.123Z" from a realtime timespec (25 bytes + NUL). */
TACIO_INTERNAL void tacio__fmt_time(char out[32], int64_t sec, long nsec);
/* A random UUID (36 chars + NUL), from getrandom(). */
TACIO_INTERNAL void tacio__uuid(char out[37]);
/* Wait for child pid at most timeout_ms, then SIGKILL it. RETURN VALUE: its
 * exit status (0..255), or -1 when it was killed, died by a signal, or
 * could not be waited for. */
TACIO_INTERNAL int tacio__wait_child(pid_t pid, int timeout_ms);
/* mkdir -p of the directory part of path (async-signal-safe). */
TACIO_INTERNAL int tacio__mkdir_parent(const char *path);
TACIO_INTERNAL int tacio__mkdir_p(const char *dir);
TACIO_INTERNAL pid_t tacio__gettid(void);

/* ---- loaded modules (captured outside the handler) --------------------- */
struct tacio__module {
    uintptr_t base;         /* load bias: offset = pc - base */
    uintptr_t lo, hi;       /* span of its PT_LOAD segments */
    char path[256];
    const char *name;       /* basename, points into path */
    unsigned char build_id[32];
    unsigned build_id_len;
};
TACIO_INTERNAL void tacio__modules_refresh(void);
/* Copy the module holding pc into *out (async-signal-safe). RETURN: 1/0. */
TACIO_INTERNAL int tacio__modules_find(uintptr_t pc, struct tacio__module *out);
/* The main program (first module). RETURN: 1/0. */
TACIO_INTERNAL int tacio__modules_main(struct tacio__module *out);

/* ---- symbolisation with libdw (never in a signal handler) -------------- */
/* For each pc, one line "INDEX\tFUNCTION+0xOFF\tFILE\tLINE\n" appended to
 * out (FUNCTION, FILE may be "" and LINE 0 when unknown). pcs after the
 * first (or all, when !first_exact) are return addresses: looked up at
 * pc - 1. RETURN VALUE: bytes written to out (NUL-terminated). */
TACIO_INTERNAL size_t tacio__symbolize(const uintptr_t *pcs, size_t n, int first_exact,
                                       char *out, size_t size);

/* ---- configuration shared by record.c, handler.c, capture.c ------------ */
struct tacio__diag_config {
    char fault_log[PATH_MAX];
    char app_name[64];
    char app_version[64];
    char exe[PATH_MAX];
    unsigned flags;                 /* TACIO_DIAG_* */
    int64_t start_sec;              /* process start, realtime */
    long start_nsec;
};
/* Written only by tacio_diag_install() under its mutex, before the handlers
 * are installed or while they are; read by the handler. A fault racing a
 * re-install may read a half-copied string: it is NUL-terminated anyway. */
extern TACIO_INTERNAL struct tacio__diag_config tacio__diag_cfg;
TACIO_INTERNAL void tacio__diag_config_defaults(void);   /* once, idempotent */

/* ---- signals ----------------------------------------------------------- */
TACIO_INTERNAL uint32_t tacio__signal_ntstatus(int sig, int code);
TACIO_INTERNAL const char *tacio__signal_code_name(int sig, int code);
TACIO_INTERNAL uintptr_t tacio__uc_pc(const ucontext_t *uc);

/* ---- core dumps --------------------------------------------------------- */
/* Write an ELF core of this process to path from a forked child (the caller
 * waits for it, at most timeout_ms). uc: the registers the dump shows for
 * its one thread (the fault's context); NULL: the caller's own context at
 * this call. in_signal: fork with _Fork() (async-signal-safe).
 * RETURN VALUE: 0, or a positive errno. */
TACIO_INTERNAL int tacio__core_dump(const char *path, const ucontext_t *uc, bool in_signal,
                                    int timeout_ms);

/* ---- capture from the fault handler ------------------------------------ */
/* When the "signal" trigger is armed and the count allows, write a dump
 * with the fault's registers and return 1 with its path. Async-signal-safe. */
TACIO_INTERNAL int tacio__capture_signal(const ucontext_t *uc, char *path, size_t size);
/* Set by tacio__diag_fatal so the SIGABRT it causes is not recorded twice. */
extern TACIO_INTERNAL _Atomic int tacio__diag_fatal_recorded;

#endif
