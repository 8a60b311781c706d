/* tacio/pool.h - a thread pool that runs completion callbacks.
 *
 * A pool owns a port and a set of threads that dequeue from it. Objects bound
 * to the pool deliver through that port and each delivery runs its callback
 * once on a pool thread:
 *
 *   I/O objects   an fd opened as a tacio handle on the pool's port; every
 *                 completion of an operation started on that handle runs the
 *                 object's callback once. There is no Start/Cancel
 *                 bookkeeping: an operation whose start call returned
 *                 TACIO_PENDING runs the callback exactly once; any other
 *                 return value means the callback will not run for it
 *                 (warnings such as TACIO_BUFFER_OVERFLOW included: this is
 *                 the rule whose absence caused the seed case).
 *   work objects  tacio_pool_work_submit() runs the callback once per call.
 *   timers        one-shot or periodic, re-settable and cancellable.
 *   waits         one callback when an fd becomes readable or writable, or
 *                 when a timeout passes.
 *
 * Objects may belong to a cleanup group, which closes them together.
 *
 * CALLBACKS: run on pool threads, never on the thread that started the
 * operation or submitted the work (unless that thread is a pool thread).
 * Inside a callback every function of this header and of io.h may be called,
 * including closing the callback's own object, re-setting or closing its own
 * timer, and starting new operations; only the waiting forms
 * (TACIO_POOL_WAIT on the callback's own object or group, and
 * tacio_pool_close) are refused there, with TACIO_POSSIBLE_DEADLOCK, since
 * they would wait for the callback that calls them.
 *
 * THREADS: at least min_threads and at most max_threads. The port's
 * concurrency value caps how many run callbacks at once; a callback that
 * blocks should say so (tacio_pool_blocking_begin/end) so another may run.
 * The pool adds a thread when every thread is busy and work waits (at once
 * when a callback declares that it blocks, after a few milliseconds when
 * callbacks just run long), and a thread above min_threads leaves after
 * idle_ms without work. A thread that leaves never cancels the operations
 * it started (thread-agnostic I/O).
 *
 * GLOBAL THREAD-SAFETY RULE: every function may be called from any thread,
 * pool threads included, on objects that have not been closed.
 */
#ifndef TACIO_POOL_H
#define TACIO_POOL_H

#include <stdint.h>
#include <tacio/io.h>
#include <tacio/port.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tacio_pool tacio_pool_t;
typedef struct tacio_pool_io tacio_pool_io_t;
typedef struct tacio_pool_work tacio_pool_work_t;
typedef struct tacio_pool_timer tacio_pool_timer_t;
typedef struct tacio_pool_wait tacio_pool_wait_t;
typedef struct tacio_pool_group tacio_pool_group_t;

typedef struct tacio_pool_options {
    unsigned min_threads;   /* 0 = 1 */
    unsigned max_threads;   /* 0 = 4 x the concurrency value, at least 4 */
    unsigned concurrency;   /* the port's concurrency value; 0 = online CPUs */
    unsigned idle_ms;       /* a thread above min_threads leaves after this
                               long without work; 0 = 5000 */
    const char *backend;    /* as in tacio_port_options_t */
    const unsigned *cpus;   /* NULL: threads run where the scheduler puts
                               them; else every pool thread is bound to
                               these CPUs (sched_setaffinity numbering),
                               each of which the process must be allowed;
                               the array is not kept */
    unsigned ncpus;         /* entries in cpus */
} tacio_pool_options_t;

/* Flags of the close calls. */
#define TACIO_POOL_WAIT           1u /* return only when every callback owed
                                        by the object(s) has run or been
                                        cancelled */
#define TACIO_POOL_CANCEL_PENDING 2u /* work submitted but not started, and
                                        armed timers and waits, are cancelled
                                        (their callbacks do not run) */

/* tacio_pool_create - start a pool (its port and min_threads threads).
 * RETURN VALUE: TACIO_SUCCESS and *out set; TACIO_INVALID_PARAMETER (out
 *   NULL, min_threads > max_threads, ncpus without cpus, or a CPU the
 *   process may not run on: tacio_last_error() names it); TACIO_NO_MEMORY; a port creation
 *   status (tacio_port_create_ex).
 * LIFETIME: the pool is the caller's until tacio_pool_close(). opts may be
 *   NULL (defaults) and is not kept. */
TACIO_EXTERN tacio_status_t tacio_pool_create(tacio_pool_t **out, const tacio_pool_options_t *opts);

/* tacio_pool_port - the pool's port, e.g. for tacio_port_info or stats.
 * Do not dequeue from it or close it: the pool's threads own that.
 * RETURN VALUE: the port, or NULL for a NULL pool. */
TACIO_EXTERN tacio_port_t *tacio_pool_port(tacio_pool_t *pool);

typedef struct tacio_pool_info {
    unsigned threads;       /* threads now */
    unsigned idle;          /* of which waiting for work */
    unsigned peak_threads;  /* most threads at once so far */
    uint64_t callbacks;     /* callbacks run */
    uint64_t cancelled;     /* callbacks owed and cancelled instead */
    unsigned objects;       /* objects not yet freed */
} tacio_pool_info_t;

/* tacio_pool_info - a snapshot of the pool's counters.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER for NULL arguments. */
TACIO_EXTERN tacio_status_t tacio_pool_info(tacio_pool_t *pool, tacio_pool_info_t *info);

/* tacio_pool_close - close every object still open (as a group close with
 * TACIO_POOL_CANCEL_PENDING | TACIO_POOL_WAIT would), stop the threads and
 * close the port.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_POSSIBLE_DEADLOCK when called from a
 *   pool thread (nothing is done); TACIO_INVALID_PARAMETER for NULL.
 * LIFETIME: the pool and every object of it are freed when it returns.
 * Operations still pending on closed I/O objects complete (CANCELLED or
 * natural) and run their callbacks before it returns. */
TACIO_EXTERN tacio_status_t tacio_pool_close(tacio_pool_t *pool);

/* tacio_pool_blocking_begin / _end - the calling pool thread is about to
 * block (a lock, a synchronous syscall, a wait on another object) / is
 * back. While blocked it does not count against the port's concurrency
 * value, and the pool adds a thread if none is free. No-ops on a thread that
 * is not a pool thread. Calls must pair, on the same thread, inside one
 * callback. */
TACIO_EXTERN void tacio_pool_blocking_begin(void);
TACIO_EXTERN void tacio_pool_blocking_end(void);

/* ---- I/O objects ------------------------------------------------------------ */

/* One completion: op is the record (the caller's again: it may be reused
 * or freed inside the callback), status and bytes its final result. */
typedef void (*tacio_pool_io_fn)(tacio_pool_io_t *io, void *ctx, tacio_op_t *op,
                                 tacio_status_t status, uint64_t bytes);

/* tacio_pool_io_open - wrap fd as a handle on the pool's port and bind cb.
 * flags are tacio_handle_open's (TACIO_HANDLE_QUEUED_ALWAYS,
 * TACIO_HANDLE_NO_CLOSE_FD, TACIO_HANDLE_THREAD_BOUND is refused: pool
 * callbacks run on pool threads). group may be NULL.
 * RETURN VALUE: TACIO_SUCCESS and *out; TACIO_INVALID_PARAMETER; a
 *   tacio_handle_open status; TACIO_NO_MEMORY.
 * LIFETIME: the object is the caller's until tacio_pool_io_close() (or its
 *   group's or pool's close). On failure fd stays the caller's. */
TACIO_EXTERN tacio_status_t tacio_pool_io_open(tacio_pool_t *pool, int fd, unsigned flags,
                                               tacio_pool_io_fn cb, void *ctx,
                                               tacio_pool_group_t *group, tacio_pool_io_t **out);

/* tacio_pool_io_handle - the handle to start operations on (tacio_recv(),
 * tacio_send(), ...). Valid until the object is closed. */
TACIO_EXTERN tacio_handle_t *tacio_pool_io_handle(tacio_pool_io_t *io);

/* tacio_pool_io_close - close the handle (its fd too, unless NO_CLOSE_FD).
 * Pending operations complete, CANCELLED or natural, and each runs the
 * callback once (after this returns, unless TACIO_POOL_WAIT). With
 * TACIO_POOL_WAIT it returns when the last of them has run.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_POSSIBLE_DEADLOCK for WAIT from one of
 *   this object's callbacks (the close is still done, without the wait);
 *   TACIO_INVALID_HANDLE for a closed object.
 * LIFETIME: the object is freed after its last callback; do not use it
 *   after this call (except inside its callbacks still to come). */
TACIO_EXTERN tacio_status_t tacio_pool_io_close(tacio_pool_io_t *io, unsigned flags);

/* ---- work ------------------------------------------------------------------------ */

typedef void (*tacio_pool_work_fn)(tacio_pool_work_t *work, void *ctx);

/* tacio_pool_work_create - a work object: each submit runs fn(work, ctx)
 * once. RETURN VALUE: TACIO_SUCCESS and *out; TACIO_INVALID_PARAMETER;
 * TACIO_NO_MEMORY. LIFETIME: the caller's until tacio_pool_work_close(). */
TACIO_EXTERN tacio_status_t tacio_pool_work_create(tacio_pool_t *pool, tacio_pool_work_fn fn,
                                                   void *ctx, tacio_pool_group_t *group,
                                                   tacio_pool_work_t **out);

/* tacio_pool_work_submit - queue one run. RETURN VALUE: TACIO_SUCCESS (fn
 * will run once, or be counted cancelled by a CANCEL_PENDING close);
 * TACIO_NO_MEMORY (it will not run); TACIO_INVALID_HANDLE (closed). */
TACIO_EXTERN tacio_status_t tacio_pool_work_submit(tacio_pool_work_t *work);

/* tacio_pool_work_close - no more submits. Runs still queued run, or with
 * TACIO_POOL_CANCEL_PENDING are dropped (counted cancelled). WAIT as in
 * tacio_pool_io_close. RETURN VALUE and LIFETIME: as tacio_pool_io_close. */
TACIO_EXTERN tacio_status_t tacio_pool_work_close(tacio_pool_work_t *work, unsigned flags);

/* tacio_pool_submit - run fn(ctx) once on a pool thread, no object needed.
 * RETURN VALUE: TACIO_SUCCESS (it will run, unless the pool closes first:
 *   then it is dropped); TACIO_NO_MEMORY; TACIO_INVALID_PARAMETER. */
TACIO_EXTERN tacio_status_t tacio_pool_submit(tacio_pool_t *pool, void (*fn)(void *ctx),
                                              void *ctx);

/* ---- timers -------------------------------------------------------------------------- */

typedef void (*tacio_pool_timer_fn)(tacio_pool_timer_t *timer, void *ctx);

/* tacio_pool_timer_create - a timer, not armed. RETURN VALUE, LIFETIME: as
 * tacio_pool_work_create (until tacio_pool_timer_close). */
TACIO_EXTERN tacio_status_t tacio_pool_timer_create(tacio_pool_t *pool, tacio_pool_timer_fn fn,
                                                    void *ctx, tacio_pool_group_t *group,
                                                    tacio_pool_timer_t **out);

/* tacio_pool_timer_set - arm: first run due_ns from now, then every
 * period_ns (0 = one-shot). Replaces any earlier setting: a run of the old
 * setting not yet started does not happen. Periodic runs are scheduled from
 * the first due time (n-th run at due + n x period), so lateness does not
 * accumulate; runs missed entirely (the pool was busy for more than a
 * period) are skipped, not bunched. A periodic re-arm that keeps failing
 * for lack of memory (9 tries) stops the timer. RETURN VALUE: TACIO_SUCCESS;
 * TACIO_INVALID_HANDLE (closed); a timer start status (TACIO_NO_MEMORY). */
TACIO_EXTERN tacio_status_t tacio_pool_timer_set(tacio_pool_timer_t *timer, uint64_t due_ns,
                                                 uint64_t period_ns);

/* tacio_pool_timer_cancel - disarm. RETURN VALUE: TACIO_SUCCESS (a run was
 * pending and will not happen; a run already started finishes);
 * TACIO_NOT_FOUND (not armed); TACIO_INVALID_HANDLE (closed). */
TACIO_EXTERN tacio_status_t tacio_pool_timer_cancel(tacio_pool_timer_t *timer);

/* tacio_pool_timer_close - disarm and free after a running callback ends.
 * RETURN VALUE and flags: as tacio_pool_io_close. */
TACIO_EXTERN tacio_status_t tacio_pool_timer_close(tacio_pool_timer_t *timer, unsigned flags);

/* ---- waits ------------------------------------------------------------------------------ */

/* The callback of a wait runs for a readiness (status TACIO_SUCCESS, events
 * = TACIO_POOL_READABLE and/or TACIO_POOL_WRITABLE seen) or a timeout
 * (TACIO_TIMEOUT, events 0); never for a setting replaced or cancelled. */
#define TACIO_POOL_READABLE 1u
#define TACIO_POOL_WRITABLE 2u
typedef void (*tacio_pool_wait_fn)(tacio_pool_wait_t *wait, void *ctx, tacio_status_t status,
                                   unsigned events);

/* tacio_pool_wait_create - a wait object, not armed. RETURN VALUE,
 * LIFETIME: as tacio_pool_work_create (until tacio_pool_wait_close). */
TACIO_EXTERN tacio_status_t tacio_pool_wait_create(tacio_pool_t *pool, tacio_pool_wait_fn fn,
                                                   void *ctx, tacio_pool_group_t *group,
                                                   tacio_pool_wait_t **out);

/* tacio_pool_wait_set - one callback when fd shows one of events
 * (status TACIO_SUCCESS, events = what it showed; an error or hang-up shows
 * as both), or when timeout_ms passes first (TACIO_TIMEOUT, events 0;
 * TACIO_INFINITE for none). Replaces an earlier setting not yet run, whose
 * callback then does not run. fd stays the caller's and must stay open
 * until the callback ran or the wait was cancelled or closed.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (bad fd or events);
 *   TACIO_INVALID_HANDLE (closed); TACIO_NO_MEMORY. */
TACIO_EXTERN tacio_status_t tacio_pool_wait_set(tacio_pool_wait_t *wait, int fd, unsigned events,
                                                int timeout_ms);

/* tacio_pool_wait_cancel - disarm. RETURN VALUE: TACIO_SUCCESS (its
 * callback will not run), TACIO_NOT_FOUND (not armed or already running). */
TACIO_EXTERN tacio_status_t tacio_pool_wait_cancel(tacio_pool_wait_t *wait);

/* tacio_pool_wait_close - as tacio_pool_timer_close. */
TACIO_EXTERN tacio_status_t tacio_pool_wait_close(tacio_pool_wait_t *wait, unsigned flags);

/* ---- cleanup groups ------------------------------------------------------------------------ */

/* Called once per member when group close has finished with it: ctx is the
 * member's own ctx, ran how many of its callbacks ran, cancelled how many
 * owed ones were cancelled instead (CANCEL_PENDING). For an I/O object every
 * operation's callback runs (a cancelled operation runs it with
 * TACIO_CANCELLED), so cancelled stays 0. */
typedef void (*tacio_pool_group_fn)(void *ctx, void *group_ctx, uint64_t ran, uint64_t cancelled);

/* tacio_pool_group_create - an empty group. Objects join at creation.
 * RETURN VALUE: TACIO_SUCCESS and *out; TACIO_INVALID_PARAMETER;
 * TACIO_NO_MEMORY. LIFETIME: the caller's until tacio_pool_group_close(). */
TACIO_EXTERN tacio_status_t tacio_pool_group_create(tacio_pool_t *pool, tacio_pool_group_t **out);

/* tacio_pool_group_close - close every member not closed yet (with flags,
 * as their own close calls) and free the group. With TACIO_POOL_WAIT, wait
 * until every member is done and report each to report (which may be NULL)
 * before returning; without it, report runs as each member finishes, on
 * whichever thread finishes it. Members closed individually before are
 * reported too.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_POSSIBLE_DEADLOCK for WAIT from a
 *   callback of a member (the members are closed, the wait is not done);
 *   TACIO_INVALID_PARAMETER. LIFETIME: group_ctx must stay valid until the
 *   last report. */
TACIO_EXTERN tacio_status_t tacio_pool_group_close(tacio_pool_group_t *group, unsigned flags,
                                                   tacio_pool_group_fn report, void *group_ctx);

#ifdef __cplusplus
}
#endif
#endif
