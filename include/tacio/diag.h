/* tacio/diag.h - fault records and first-chance capture.
 *
 * Linux counterparts of what diagnosed the seed case (docs/diagnostics.md):
 *
 *   - fault records: on SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT, one JSON
 *     line with the fields of the Windows application-error event (faulting
 *     module and build-id, fault offset, exception code as an NTSTATUS,
 *     faulting thread, the thread's stack as module!function+0xNN), written
 *     to a log file and to the systemd journal; then the signal's default
 *     action, so the process dies as it would have and core dumps happen.
 *   - first-chance capture: a core dump of the running process, without
 *     ending it, when a chosen status is delivered, a verifier check fires
 *     or a fatal signal arrives; each dump is named in a fault record.
 *
 * Environment (read by tacio_diag_install(NULL) and, when TACIO_DIAG or
 * TACIO_CAPTURE is set, at library load and at port creation):
 *   TACIO_DIAG=1          install the fault handlers in any tacio program
 *   TACIO_FAULT_LOG=FILE  the log file; default $XDG_STATE_HOME/tacio/faults.jsonl,
 *                         else ./tacio-faults/faults.jsonl
 *   TACIO_CAPTURE=SPEC    first-chance capture, as tacio_capture_configure()
 *   TACIO_APP_VERSION=V   the application version written in records
 *   TACIO_DIAG_JOURNAL=0  do not send records to the journal
 *
 * GLOBAL THREAD-SAFETY RULE: every function here may be called from any
 * thread; none may be called from a signal handler.
 */
#ifndef TACIO_DIAG_H
#define TACIO_DIAG_H

#include <stddef.h>
#include <stdint.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The MESSAGE_ID every journal entry tacio writes carries (generated once,
 * never changes): journalctl MESSAGE_ID=2f6c1d8e9a4b4e57b3c0d5e1f7a86243 */
#define TACIO_DIAG_MESSAGE_ID "2f6c1d8e9a4b4e57b3c0d5e1f7a86243"

/* Flags of tacio_diag_options_t. */
#define TACIO_DIAG_NO_JOURNAL 1u  /* never send records to the journal */
#define TACIO_DIAG_NO_SYMBOLS 2u  /* raw module+offset frames only (no libdw) */

/* Options for tacio_diag_install(). Zero-initialise; NULL fields fall back
 * to the environment, then to the defaults above. */
typedef struct tacio_diag_options {
    const char *fault_log;    /* log file path (TACIO_FAULT_LOG) */
    const char *app_name;     /* default: program_invocation_short_name */
    const char *app_version;  /* default: TACIO_APP_VERSION, else none */
    unsigned flags;           /* TACIO_DIAG_* */
} tacio_diag_options_t;

/* tacio_diag_install - install the fault handlers (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGABRT) on an alternate stack, and apply TACIO_CAPTURE if set.
 * Captures what the handler needs later without allocating: the loaded
 * modules (refreshed by tacio_diag_refresh_modules()), the log path, the
 * process start time; primes the unwinder so the handler never loads it.
 * Calling it again replaces the options; the handlers stay installed once.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_NO_MEMORY (alternate stack);
 *   TACIO_INVALID_PARAMETER (TACIO_CAPTURE does not parse: the capture stays
 *   off, the fault handlers are installed anyway).
 * LIFETIME: opts and its strings are copied; nothing to free.
 * THREAD SAFETY: any thread; the alternate stack is given to the calling
 *   thread and to each thread that calls a tacio_diag_* function or creates
 *   a tacio port later; a fault on a thread without one runs on its own
 *   stack (a stack overflow there then dies without a record). */
TACIO_EXTERN tacio_status_t tacio_diag_install(const tacio_diag_options_t *opts);

/* tacio_diag_uninstall - put back the signal actions found at install.
 * RETURN VALUE: TACIO_SUCCESS (also when nothing was installed).
 * THREAD SAFETY: any thread; a fault racing it may see either action. */
TACIO_EXTERN tacio_status_t tacio_diag_uninstall(void);

/* tacio_diag_refresh_modules - re-read the list of loaded modules (after a
 * dlopen), so a fault in the new module is named by the handler.
 * RETURN VALUE: TACIO_SUCCESS. THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_diag_refresh_modules(void);

/* tacio_diag_fault_log - the path records are appended to.
 * RETURN VALUE: TACIO_SUCCESS and the path in buf (NUL-terminated);
 *   TACIO_BUFFER_OVERFLOW when it did not fit (truncated);
 *   TACIO_INVALID_PARAMETER (buf NULL or size 0).
 * LIFETIME: buf is the caller's. THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_diag_fault_log(char *buf, size_t size);

/* tacio_diag_report - write a fault record of kind "report" for the
 * calling thread (its stack, symbolised), without ending the process.
 * check: a short machine-readable name ("app.invariant"), may be NULL;
 * message: one line for a person.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_IO_DEVICE_ERROR (or the mapped errno)
 *   when the log could not be written: the record then went to stderr.
 * LIFETIME: the strings are read during the call only.
 * THREAD SAFETY: any thread; records are appended whole (one write each). */
TACIO_EXTERN tacio_status_t tacio_diag_report(const char *check, const char *message);

/* tacio_capture_configure - set first-chance capture.
 *   spec: "on=TRIGGER[,TRIGGER...];count=N;dir=DIR" (any order; ';' or
 *   ' ' between fields), NULL or "" or "off" to disarm. TRIGGER is
 *   status:NAME (NAME: a tacio status with or without TACIO_ / STATUS_,
 *   e.g. CANCELLED, BUFFER_OVERFLOW, or its hex value 0xC0000120), verifier
 *   or signal. count: dumps to write at most (default 1) across all
 *   triggers; dir: where dumps go (default: the fault log's directory).
 * A trigger writes an ELF core dump of the process in a forked child (the
 *   process goes on; the triggering thread waits for the dump), and a fault
 *   record of kind "capture" naming it. Dumps are named
 *   DIR/core.tacio.PID.N (N counts from 1 in this process).
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (spec does not
 *   parse; the previous configuration stays); TACIO_NOT_SUPPORTED (no core
 *   writer for this architecture).
 * LIFETIME: spec is copied. THREAD SAFETY: any thread; a trigger racing
 *   it uses the old or the new configuration. */
TACIO_EXTERN tacio_status_t tacio_capture_configure(const char *spec);

/* tacio_capture_now - write one dump now, whatever the triggers and count.
 * reason: written in the record (may be NULL). path: receives the dump's
 *   path (may be NULL).
 * RETURN VALUE: TACIO_SUCCESS; TACIO_BUFFER_OVERFLOW (dump written, path
 *   truncated); the status of the failure (TACIO_DISK_FULL,
 *   TACIO_ACCESS_DENIED, ...) when the dump could not be written.
 * LIFETIME: the caller's buffers. THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_capture_now(const char *reason, char *path, size_t size);

/* tacio_capture_count - dumps written by triggers so far in this process
 * (tacio_capture_now() not included).
 * THREAD SAFETY: any thread. */
TACIO_EXTERN unsigned tacio_capture_count(void);

#ifdef __cplusplus
}
#endif
#endif
