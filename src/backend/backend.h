/* backend.h - the one interface every backend implements.
 *
 * A port holds a pointer to one of these tables, chosen at run time, so
 * several backends run side by side in one process. The core owns the state
 * machine; a backend only arms operations in the kernel and reports their
 * results, always through tacio__op_finish() (core/internal.h).
 */
#ifndef TACIO_BACKEND_H
#define TACIO_BACKEND_H

#include "core/internal.h"

#define BE_CAP_FILES_ASYNC 0x1u /* regular-file I/O is asynchronous in the kernel */
/* A send prepared by a running dequeuer rides on the ring's next enter with
 * no syscall of its own, so the core skips its send(2) attempt then. */
#define BE_CAP_BATCHED_SENDS 0x2u

struct tacio_backend {
    const char *name;
    unsigned caps;
    /* Set up p->bctx. On failure, write the reason into why. */
    tacio_status_t (*init)(struct tacio_port *p, unsigned depth, char *why, size_t whylen);
    /* Release the kernel objects; called after drain. Later calls into the
     * backend (from threads still holding handles) must fail cleanly. */
    void (*fini)(struct tacio_port *p);
    /* Free p->bctx; called when the port's last reference goes. */
    void (*destroy)(struct tacio_port *p);
    /* Arm an INFLIGHT op whose synchronous attempt (if any) would block.
     * SUCCESS: exactly one tacio__op_finish will follow from the backend.
     * Any other status: nothing was armed; the core ends the op with it. */
    tacio_status_t (*submit)(struct tacio_port *p, tacio_op_t *op, bool defer);
    /* Request cancellation of one op / all ops of a handle. Never waits.
     * SUCCESS if requested, NOT_FOUND if nothing was in flight. cancel's h
     * is the handle the caller found the op on, with a reference held: an
     * op now on another handle is a later use, NOT_FOUND (and the other
     * handle may be gone: never read it). */
    tacio_status_t (*cancel)(struct tacio_port *p, tacio_op_t *op, struct tacio_handle *h);
    tacio_status_t (*cancel_handle)(struct tacio_port *p, struct tacio_handle *h);
    /* Wait up to timeout_ms (negative: forever) for results; append every op
     * finished to out. Called by one thread at a time (the poller).
     * Returns TACIO_SUCCESS (possibly with nothing), TACIO_TIMEOUT. */
    tacio_status_t (*wait)(struct tacio_port *p, int timeout_ms, struct oplist *out);
    /* Make the thread inside wait return soon. Any thread. */
    void (*wake)(struct tacio_port *p);
    /* Hand operations prepared by this thread to the kernel. */
    void (*flush)(struct tacio_port *p);
    /* Port close: cancel everything and wait until no op is in the kernel;
     * append each op finished to out. Called by the poller. */
    void (*drain)(struct tacio_port *p, struct oplist *out);
};

TACIO_INTERNAL extern const struct tacio_backend tacio__backend_uring;
TACIO_INTERNAL extern const struct tacio_backend tacio__backend_epoll;

/* Fault injection (src/backend/faults.c): a backend that wraps the real one
 * (TACIO_FAULTS, tacio_faults_configure). tacio__faults_active: whether a
 * configuration is in force (read at port creation). tacio__faults_wrap:
 * called with p->be initialised; stores the real table in p->fault_real,
 * its own state in p->fault_ctx, and returns the table to use as p->be
 * (p->be unchanged on failure). */
TACIO_INTERNAL bool tacio__faults_active(void);
TACIO_INTERNAL const struct tacio_backend *tacio__faults_wrap(struct tacio_port *p);

#endif
