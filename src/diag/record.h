/* record.h - the one fault-record writer (internal).
 *
 * Every record tacio writes goes through tacio__fault_record_write(): the
 * fault handler's, first-chance capture's, tacio_diag_report()'s, the
 * verifier's reports and fatal runtime errors. A record is one JSON line
 * (docs/diagnostics.md, "Reading a record") appended with one write() to
 * the fault log, and sent to the systemd journal (MESSAGE_ID
 * TACIO_DIAG_MESSAGE_ID) when one is listening.
 *
 * What the caller fills (zero-initialise, then set what applies):
 *   kind      "signal", "capture", "verifier", "fatal", "report"
 *   check     machine-readable name of what fired ("double_delivery",
 *             "status:TACIO_CANCELLED"), or NULL
 *   message   one line for a person, or NULL
 *   exception_code  the NTSTATUS-style code (0xC0000005 for SIGSEGV; the
 *             delivered status for a capture); 0 = none
 *   signo, si_code, fault_addr, has_fault_addr  for signals
 *   fault_pc  the faulting / reporting instruction; its module, build-id
 *             and offset become the record's "module" and "fault_offset";
 *             0 = the first frame of stacks[0]
 *   stacks    up to TACIO_FAULT_MAX_STACKS named stacks (the verifier's
 *             "first_delivery" and "second_delivery"), each either raw
 *             addresses (pcs, innermost first; first_exact says pcs[0] is
 *             the exact PC rather than a return address) which the writer
 *             symbolises as module!function+0xNN (file:line), or strings
 *             already symbolised (text)
 *   extra_json  JSON members written verbatim inside the record's "extra"
 *             object ("\"op\":\"0x55d0...\",\"handle\":3"), or NULL; the
 *             caller guarantees it is valid JSON
 *   dump      path of a core dump taken for this event, or NULL
 *   flags     TACIO_FR_SIGNAL: the caller is a signal handler; the writer
 *             then stays async-signal-safe (symbolisation and the journal
 *             run in forked children with timeouts, never in the process)
 *
 * RETURN VALUE: TACIO_SUCCESS when the line reached the log file; else the
 *   status of the failure (TACIO_DISK_FULL, TACIO_ACCESS_DENIED, ...): the
 *   writer then printed "tacio: fault record not written to PATH: ERRNO" and
 *   the record itself on stderr. It never blocks for long: every child it
 *   forks is killed after a bounded time, and the log is opened O_NONBLOCK.
 * report_id (may be NULL) receives the record's id (a UUID, 36 chars + NUL).
 * LIFETIME: everything r points to is read during the call only.
 * THREAD SAFETY: any thread, and signal handlers with TACIO_FR_SIGNAL.
 *   Lines are appended with O_APPEND in one write(), so concurrent records
 *   do not interleave.
 */
#ifndef TACIO_DIAG_RECORD_H
#define TACIO_DIAG_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <tacio/status.h>
#include <tacio/diag.h>

#ifndef TACIO_INTERNAL
#define TACIO_INTERNAL __attribute__((visibility("hidden")))
#endif

#define TACIO_FAULT_MAX_STACKS 4
#define TACIO_FAULT_MAX_FRAMES 64
#define TACIO_FR_SIGNAL 1u

struct tacio_fault_stack {
    const char *name;            /* "faulting_thread", "first_delivery", ... */
    const uintptr_t *pcs;        /* raw addresses, innermost first */
    size_t n;
    int first_exact;             /* pcs[0] is the PC itself, not a return address */
    const char *const *text;     /* or: frames already symbolised */
    size_t n_text;
};

struct tacio_fault_record {
    const char *kind;
    const char *check;
    const char *message;
    uint32_t exception_code;
    int signo, si_code;
    uintptr_t fault_addr;
    int has_fault_addr;
    uintptr_t fault_pc;
    const struct tacio_fault_stack *stacks;
    size_t n_stacks;
    const char *extra_json;
    const char *dump;
    unsigned flags;
};

TACIO_INTERNAL tacio_status_t tacio__fault_record_write(const struct tacio_fault_record *r,
                                                        char *report_id);

/* tacio__diag_fatal - a fatal runtime error: write a record of kind
 * "fatal" (with the calling thread's stack) and abort(). The fault handler,
 * if installed, does not write a second record for that SIGABRT.
 * THREAD SAFETY: any thread; not from a signal handler. */
TACIO_INTERNAL _Noreturn void tacio__diag_fatal(const char *check, const char *message);

/* tacio__diag_autoinstall - what port creation calls: the first call reads
 * TACIO_DIAG and TACIO_CAPTURE and installs / configures accordingly (an
 * ELF constructor in handler.c calls it at load too); later calls only give
 * the calling thread its alternate signal stack when handlers are in place.
 * Cheap when neither variable is set: one relaxed atomic load.
 * THREAD SAFETY: any thread. */
TACIO_INTERNAL void tacio__diag_autoinstall(void);

/* Capture the calling thread's stack (innermost first, starting at the
 * caller of this function) into pcs. RETURN VALUE: frames stored. */
TACIO_INTERNAL size_t tacio__diag_stack_here(uintptr_t *pcs, size_t max);

#endif
