/* tacio/port.h - completion ports (the IOCP model).
 *
 * A port is a FIFO of completion entries plus a set of threads that dequeue
 * them. Operations started on handles associated with the port, posted
 * packets and timers all arrive here, each exactly once.
 *
 * GLOBAL THREAD-SAFETY RULE: every function in this header may be called from
 * any thread at any time on a port that has not been closed, unless its entry
 * says otherwise. A port pointer should not be used after tacio_port_close()
 * has returned. A closed port's memory is kept (never returned to the
 * allocator), so such a call does not crash: dequeue answers
 * TACIO_ABANDONED, post, timers and tacio_handle_open answer
 * TACIO_PORT_DISCONNECTED, the rest TACIO_INVALID_HANDLE, until the memory
 * is reused by a newer port (then the stale pointer names the new port, as a
 * reused Windows HANDLE value would).
 */
#ifndef TACIO_PORT_H
#define TACIO_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tacio_port tacio_port_t;
typedef struct tacio_op tacio_op_t;

/* Wait forever in tacio_port_dequeue(). */
#define TACIO_INFINITE (-1)

/* What one dequeue hands back (the OVERLAPPED_ENTRY role). */
typedef struct tacio_entry {
    tacio_op_t *op;         /* the completed operation record; for a posted
                               packet, the pointer given to tacio_port_post()
                               (may be NULL, never read by tacio) */
    uint64_t key;           /* completion key of the handle, timer or post */
    uint64_t bytes;         /* bytes transferred, or the size needed with
                               TACIO_BUFFER_OVERFLOW; for a post, as given */
    tacio_status_t status;  /* the operation's final status; for a post, as given */
    uint32_t kind;          /* TACIO_ENTRY_OP or TACIO_ENTRY_POSTED */
} tacio_entry_t;

#define TACIO_ENTRY_OP     1u
#define TACIO_ENTRY_POSTED 2u

/* Options for tacio_port_create_ex(). Zero-initialise, then set what you need. */
typedef struct tacio_port_options {
    unsigned concurrency;   /* max threads running entries of this port at
                               once; 0 = number of online CPUs */
    unsigned queue_depth;   /* submission ring size hint; 0 = 256. Not a
                               limit on operations in flight: a start that
                               finds the ring full hands it to the kernel
                               and goes on */
    const char *backend;    /* NULL or "": TACIO_BACKEND from the environment,
                               else the best that works; "io_uring"; "epoll" */
} tacio_port_options_t;

typedef struct tacio_port_info {
    const char *backend;    /* name of the backend in use ("io_uring") */
    unsigned concurrency;   /* effective concurrency value */
    const char *why;        /* one line: why this backend was chosen */
} tacio_port_info_t;

/* Counters a port keeps. Read with tacio_port_stats(). */
typedef struct tacio_stats {
    uint64_t completions;          /* entries handed to callers by dequeue */
    uint64_t sync_completions;     /* operations that ended in their start call */
    uint64_t posted;               /* packets posted */
    uint64_t dropped_duplicates;   /* second deliveries recognised and dropped */
    uint64_t dropped_stale;        /* backend events for records no longer in flight */
    uint64_t reissued_after_exit;  /* operations re-issued because their issuing
                                      thread exited (thread-agnostic I/O) */
    uint64_t discarded_at_close;   /* entries handed to the discard callback */
    uint64_t cancels_retried;      /* cancel requests sent again because the first
                                      missed a target still in flight (one per
                                      interval, never in a loop) */
} tacio_stats_t;

/* tacio_port_create - create a port.
 * RETURN VALUE: TACIO_SUCCESS and *out set; TACIO_INVALID_PARAMETER (out is
 *   NULL); TACIO_NO_MEMORY; TACIO_NOT_SUPPORTED when the requested backend
 *   (or, with none requested, every backend) cannot run here: the reason
 *   ("io_uring_setup: Operation not permitted: kernel.io_uring_disabled=2")
 *   is then available from tacio_last_error().
 * LIFETIME: the port is the caller's until tacio_port_close().
 * THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_port_create(tacio_port_t **out, unsigned concurrency);

/* tacio_port_create_ex - tacio_port_create with options (opts may be NULL:
 * all defaults). Without a backend named here or in TACIO_BACKEND, io_uring
 * is used where it works and epoll otherwise; tacio_port_info says which and
 * why, and with TACIO_DEBUG set that line also goes to stderr.
 * RETURN VALUE, LIFETIME, THREAD SAFETY: as tacio_port_create. */
TACIO_EXTERN tacio_status_t tacio_port_create_ex(tacio_port_t **out, const tacio_port_options_t *opts);

/* tacio_port_info - which backend runs and why.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER / TACIO_INVALID_HANDLE.
 * LIFETIME: the strings stay valid while the port is open. */
TACIO_EXTERN tacio_status_t tacio_port_info(tacio_port_t *port, tacio_port_info_t *info);

/* tacio_port_stats - a snapshot of the port's counters (relaxed reads; each
 * counter is exact, the set is not one atomic snapshot). Works on a closed
 * port too, so the close's own accounting can be read.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (out NULL);
 *   TACIO_INVALID_HANDLE. THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_port_stats(tacio_port_t *port, tacio_stats_t *out);

/* tacio_last_error - a human-readable sentence about the calling thread's
 * most recent tacio_port_create* or tacio_handle_open call that failed with
 * more to say than its status (backend set-up, fd type checks). Those calls
 * clear it when they start; other calls leave it alone.
 * LIFETIME: thread-local, valid until the thread's next tacio call.
 * THREAD SAFETY: per thread. */
TACIO_EXTERN const char *tacio_last_error(void);

/* tacio_port_post - queue a user packet (PostQueuedCompletionStatus).
 * The four values are passed through unread and come back in one entry.
 * RETURN VALUE: TACIO_SUCCESS: exactly one entry will be dequeued (or handed
 *   to the discard callback if the port is closed first). TACIO_NO_MEMORY:
 *   nothing was queued. TACIO_PORT_DISCONNECTED: the port is closed.
 *   TACIO_INVALID_HANDLE: not a port.
 * LIFETIME: ptr is never dereferenced by tacio.
 * COST: while fewer than 1024 entries wait in the port, no allocation, and
 *   the port lock only to wake a sleeping consumer; past that, one
 *   allocation and the lock per post until the backlog is taken. Entries
 *   keep their order either way.
 * THREAD SAFETY: any thread, including from inside the processing of an entry. */
TACIO_EXTERN tacio_status_t tacio_port_post(tacio_port_t *port, uint64_t key, uint64_t bytes,
                                            void *ptr, tacio_status_t status);

/* tacio_port_dequeue - wait for entries (GetQueuedCompletionStatusEx).
 * Fills up to max entries (max >= 1), FIFO. timeout_ms: 0 polls, negative
 * (TACIO_INFINITE) waits forever.
 * RETURN VALUE: TACIO_SUCCESS with *count >= 1; TACIO_TIMEOUT with *count 0;
 *   TACIO_ABANDONED with *count 0 when the port is closed before or while
 *   waiting; TACIO_INVALID_PARAMETER (entries or count NULL, max 0);
 *   TACIO_INVALID_HANDLE (not a port).
 * Each returned operation record is the caller's again (it may be restarted
 * or freed at once).
 * CONCURRENCY: the calling thread counts as running on this port from the
 *   moment this returns SUCCESS until it calls tacio_port_dequeue() again or
 *   tacio_port_blocking_begin(). While the number of running threads is at
 *   the port's concurrency value, waiters are not released even if entries
 *   are queued. Waiting threads are released most-recent-first (LIFO).
 * SUBMISSION: operations that a thread starts while it runs entries of this
 *   port are handed to the kernel in one batch when it next calls this
 *   function, tacio_port_blocking_begin() or tacio_port_flush(), or exits.
 * THREAD SAFETY: any number of threads may wait on one port. */
TACIO_EXTERN tacio_status_t tacio_port_dequeue(tacio_port_t *port, tacio_entry_t *entries,
                                               unsigned max, unsigned *count, int timeout_ms);

/* Flags of tacio_port_dequeue_ex. */
#define TACIO_DEQUEUE_ALERTABLE 0x1u

/* tacio_port_dequeue_ex - tacio_port_dequeue with flags. With
 * TACIO_DEQUEUE_ALERTABLE the wait is also ended by completion routines
 * owed to the calling thread (tacio_op_set_routine): they run, in completion
 * order, on this thread inside this call, and it returns TACIO_USER_APC with
 * *count 0 (GetQueuedCompletionStatusEx with fAlertable).
 * RETURN VALUE: as tacio_port_dequeue, plus TACIO_USER_APC; an unknown flag
 *   is TACIO_INVALID_PARAMETER. Other details: as tacio_port_dequeue. */
TACIO_EXTERN tacio_status_t tacio_port_dequeue_ex(tacio_port_t *port, tacio_entry_t *entries,
                                                  unsigned max, unsigned *count, int timeout_ms,
                                                  unsigned flags);

/* tacio_wait_alertable - wait until completion routines owed to the calling
 * thread have run here (SleepEx(timeout, TRUE)). timeout_ms 0 only runs what
 * is already owed; TACIO_INFINITE waits for at least one.
 * RETURN VALUE: TACIO_USER_APC (one or more routines ran); TACIO_TIMEOUT.
 * THREAD SAFETY: acts on the calling thread only. */
TACIO_EXTERN tacio_status_t tacio_wait_alertable(int timeout_ms);

/* tacio_port_flush - hand operations started by this thread to the kernel now.
 * RETURN VALUE: TACIO_SUCCESS, TACIO_INVALID_HANDLE. Never waits. */
TACIO_EXTERN tacio_status_t tacio_port_flush(tacio_port_t *port);

/* tacio_port_blocking_begin / _end - the calling thread, running entries of
 * this port, is about to block elsewhere (a lock, a sleep, a synchronous
 * call) and stops counting against the concurrency value until _end. Another
 * waiter may be released meanwhile. Calls outside a running period are
 * harmless no-ops. THREAD SAFETY: only the calling thread's own state. */
TACIO_EXTERN void tacio_port_blocking_begin(tacio_port_t *port);
TACIO_EXTERN void tacio_port_blocking_end(tacio_port_t *port);

/* What tacio_port_close() does with an entry nobody will dequeue. */
typedef void (*tacio_discard_fn)(const tacio_entry_t *entry, void *arg);

/* tacio_port_close - close the port.
 * 1. Blocked and future dequeues return TACIO_ABANDONED; posts and new
 *    operations on the port's handles fail (TACIO_PORT_DISCONNECTED).
 * 2. Every operation still in flight is cancelled, and the kernel is waited
 *    for until none can still touch a caller's buffer (this is the one call
 *    in tacio that waits for the kernel, so that buffers may be freed after).
 * 3. Every entry that was queued or arrives in step 2 is handed to discard
 *    exactly once (final status CANCELLED or the natural result); for a
 *    record, the record is the caller's again when discard is called. An
 *    accepted connection in a discarded entry is closed by tacio.
 * discard may be NULL: entries are then only counted (tacio_stats_t).
 * Handles stay valid objects: close them with tacio_handle_close().
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_HANDLE (NULL, not a port,
 *   already closed).
 * A start call on another thread that races the close and finishes
 *   synchronously returns its final status (even in queued-always mode), so
 *   nothing is discarded for it.
 * THREAD SAFETY: any thread not currently inside the port's dequeue. discard
 *   runs on the calling thread; the one exception is a stream operation
 *   queued behind another whose start call, on another thread, is still
 *   running when the close begins: it is discarded on that thread before
 *   that start call returns. Stop starting operations before closing the
 *   port if discard must never run elsewhere. */
TACIO_EXTERN tacio_status_t tacio_port_close(tacio_port_t *port, tacio_discard_fn discard, void *arg);

/* tacio_timer_start - a timed packet: after ns nanoseconds (monotonic), op
 * completes through the port with TACIO_SUCCESS and key.
 * RETURN VALUE: TACIO_PENDING: exactly one completion follows (SUCCESS when
 *   it fires, TACIO_CANCELLED if tacio_cancel(op) won). TACIO_OP_IN_USE: op
 *   is still pending or queued (nothing started). TACIO_INVALID_PARAMETER,
 *   TACIO_INVALID_HANDLE, TACIO_PORT_DISCONNECTED.
 * LIFETIME: op belongs to tacio from PENDING until its entry is dequeued.
 * THREAD SAFETY: any thread. A timer is never batched: it starts now. */
TACIO_EXTERN tacio_status_t tacio_timer_start(tacio_port_t *port, tacio_op_t *op, uint64_t key,
                                              uint64_t ns);

#ifdef __cplusplus
}
#endif
#endif
