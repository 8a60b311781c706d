/* tacio/verify.h - the verifier: the completion contract checked at run time
 * (docs/verifier.md; section 5 of the contract).
 *
 * Off by default. TACIO_VERIFY=1 in the environment (read when the first
 * port is created), or tacio_verify_enable() before the first port, turns
 * on checks of the caller and of tacio itself:
 *
 *   double_completion   one operation completed twice: e.g. it returned
 *                       BUFFER_OVERFLOW synchronously and a completion came
 *                       for it too (the seed case), or two completions came
 *   unknown_delivery    a delivery for a record the runtime never started
 *   started_while_pending  a record started again while pending or queued
 *   released_while_pending tacio_op_release() / tacio_verify_check_free()
 *                       on a record still pending or queued
 *   reused_while_pending  the record's memory was overwritten (re-initialised,
 *                       or freed and reused) while tacio still owned it
 *   freed_while_pending (ASan builds) the record's memory was freed while
 *                       pending: found before tacio would write into it
 *   port_closed_with_pending  a port closed with operations pending or
 *                       entries undelivered and no discard callback to take
 *                       them
 *
 * A report is one readable block on stderr and one fault record (the JSON
 * line of docs/diagnostics.md, kind "verifier"): the check in one sentence,
 * the record, its handle and key, its last state transitions with thread
 * ids and times, and the stacks of both deliveries, symbolised as
 * module!function+0xNN (file:line). Then, in TACIO_VERIFY_ABORT mode (the
 * default, TACIO_VERIFY=1) the process aborts so a capture tool can take a
 * dump; in TACIO_VERIFY_REPORT mode (TACIO_VERIFY=report) the offending
 * delivery is dropped and the program goes on.
 *
 * Off, the hot path pays one predictable branch per hook. On, each
 * operation costs a registry lookup and one stack capture (libunwind).
 *
 * GLOBAL THREAD-SAFETY RULE: any thread.
 */
#ifndef TACIO_VERIFY_H
#define TACIO_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <tacio/io.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TACIO_VERIFY_ABORT  1u /* report, then abort() */
#define TACIO_VERIFY_REPORT 2u /* report, drop the offending delivery, go on */

/* tacio_verify_enable - turn the verifier on (mode ABORT or REPORT), or
 * change its mode. Records started before it was on are not known to it.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (other mode). */
TACIO_EXTERN tacio_status_t tacio_verify_enable(unsigned mode);

/* tacio_verify_mode - 0 when off, else the mode. */
TACIO_EXTERN unsigned tacio_verify_mode(void);

/* tacio_verify_reports - how many reports the verifier has made. */
TACIO_EXTERN uint64_t tacio_verify_reports(void);

/* tacio_op_release - the caller is done with this record and is about to
 * free or reuse its memory. It is a check, not a release: a record is the
 * caller's again when its start call returned a final status, or when its
 * entry was dequeued.
 * RETURN VALUE: TACIO_SUCCESS (idle: the caller may free it);
 *   TACIO_OP_IN_USE (pending, or completed and not yet dequeued: freeing it
 *   now is the seed case's bug; with the verifier on, also a report);
 *   TACIO_INVALID_PARAMETER (NULL). */
TACIO_EXTERN tacio_status_t tacio_op_release(tacio_op_t *op);

/* tacio_verify_check_free - a free hook for the caller's allocator: are
 * operation records tacio still owns inside [mem, mem + len)? Needs the
 * verifier on (it knows the records); off, it answers TACIO_SUCCESS.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_OP_IN_USE (and a report). */
TACIO_EXTERN tacio_status_t tacio_verify_check_free(const void *mem, size_t len);

#ifdef __cplusplus
}
#endif
#endif
