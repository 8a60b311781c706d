/* tacio/faults.h - fault injection: a backend that wraps the real one and
 * lies to the core the ways a kernel, an allocator or a buggy driver can
 * (docs/faults.md).
 *
 * Off by default. TACIO_FAULTS in the environment (read each time a port is
 * created, unless tacio_faults_configure() was called), or
 * tacio_faults_configure(), names the faults and their probabilities:
 *
 *   TACIO_FAULTS="seed=42,enomem=0.01,eagain=0.05,short=0.1,delay=0.05:2ms,reorder=0.1,lie=0.001"
 *
 *   seed=N       base of the per-port generators (decimal or 0x hex); port
 *                number k (1, 2, ... in creation order, process-wide) draws
 *                from seed + k. Absent: chosen from the clock and printed.
 *   enomem=P     an arming fails with TACIO_NO_MEMORY and nothing is armed:
 *                the start call returns it (no completion follows), or an op
 *                that already returned PENDING completes with it.
 *   eagain=P     a spurious EAGAIN at arming (the op is armed anyway, after a
 *                yield, and the waiting thread gets a spurious wake-up), and
 *                spurious empty returns from the backend's wait (never twice
 *                in a row). Invisible to the program but for timing.
 *   short=P      stream and pipe receives are armed with a smaller length
 *                (the completion carries fewer bytes: a legal short read);
 *                stream sends and pipe writes have a random prefix written
 *                by the injector before the rest is armed (the op still
 *                completes once, with its whole buffer).
 *   delay=P:T    a completion the backend reported is held back for T (ns,
 *                us, ms or s; a bare number is ms) and handed out by a later
 *                wait; completions of the same stream direction behind a
 *                held one are held behind it.
 *   reorder=P    the completions of one wait are handed out in another
 *                order; two of the same stream handle and direction never
 *                swap.
 *   lie=P        the seed case: a receive (read, recv, recvfrom) is armed
 *                for real and the core is told TACIO_BUFFER_OVERFLOW, which
 *                the start call returns as a final status; the kernel's
 *                completion then comes too, through the real backend. The
 *                core drops it (tacio_stats_t.dropped_duplicates), the
 *                verifier reports it. A lie makes the program's view wrong
 *                by design: never use it where results are checked.
 *
 * P is a probability in [0, 1]. Each port draws from its own generator; a
 * single-threaded program with the same seed and spec replays the same
 * faults. Every fault is logged with the seed: one line per fault to the
 * file named by TACIO_FAULTS_LOG (appended), else one summary line per port
 * on stderr when the port closes ("tacio faults: seed=42 port 3: enomem 12,
 * eagain 40, ...").
 *
 * GLOBAL THREAD-SAFETY RULE: any thread. A configuration applies to ports
 * created after it; a port keeps the one it was created with.
 */
#ifndef TACIO_FAULTS_H
#define TACIO_FAULTS_H

#include <stdint.h>
#include <tacio/port.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* tacio_faults_configure - set the fault specification for ports created
 * from now on, overriding TACIO_FAULTS for the rest of the process.
 * spec NULL or "": no injection for later ports.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER for a malformed spec
 *   (unknown key, value not a number, probability outside [0, 1], delay
 *   without a time or with an unknown unit): the configuration in force is
 *   unchanged and tacio_last_error() names the key and value at fault.
 * LIFETIME: spec is read during the call only.
 * THREAD SAFETY: any thread; ports being created meanwhile get the old or
 *   the new configuration. */
TACIO_EXTERN tacio_status_t tacio_faults_configure(const char *spec);

/* Counts of injected faults, one per kind. */
typedef struct tacio_faults_stats {
    uint64_t enomem;   /* armings refused with TACIO_NO_MEMORY */
    uint64_t eagain;   /* spurious EAGAIN at arming + spurious empty waits */
    uint64_t short_io; /* receives armed shorter + sends with a prefix written */
    uint64_t delay;    /* completions held back by choice (not those held behind them) */
    uint64_t reorder;  /* waits whose completions were handed out in another order */
    uint64_t lie;      /* armed operations reported as TACIO_BUFFER_OVERFLOW */
    uint64_t seed;     /* port: the seed its generator draws from (base seed + port
                        * number); NULL port: the base seed of the configuration
                        * in force (0 when off) */
    uint32_t port_number; /* port: its number in the log; NULL port: ports wrapped so far */
    uint32_t active;   /* port: 1 if it injects; NULL port: 1 if later ports will */
} tacio_faults_stats_t;

/* tacio_faults_stats - what was injected, into *out: on port (open or
 * closed, not yet freed), or in the whole process when port is NULL (every
 * port since the process began, closed ones included).
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER (out NULL);
 *   TACIO_INVALID_HANDLE (not a port). A port without injection gives
 *   zeros, active 0.
 * THREAD SAFETY: any thread; the counts are a snapshot. */
TACIO_EXTERN tacio_status_t tacio_faults_stats(tacio_port_t *port, tacio_faults_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
