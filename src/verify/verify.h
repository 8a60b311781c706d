/* verify.h - the verifier's hooks in the core (internal).
 *
 * Each hook sits behind tacio__verify_on, one predictable branch while the
 * verifier is off. The registry (verify.c) maps a record's address to what
 * the runtime believes about it: its generation and whether it is pending,
 * finished (its completion decided, not yet delivered) or delivered, plus
 * the stack of its first delivery (or synchronous return) and its last
 * transitions. Lookups never read the record itself, so a completion for a
 * freed record is caught before anything touches it.
 */
#ifndef TACIO_VERIFY_INTERNAL_H
#define TACIO_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <tacio/io.h>

#ifndef TACIO_INTERNAL
#define TACIO_INTERNAL __attribute__((visibility("hidden")))
#endif

struct tacio_port;
struct tacio_handle;

extern TACIO_INTERNAL int tacio__verify_on;

static inline bool tacio__verifying(void)
{
    return __builtin_expect(__atomic_load_n(&tacio__verify_on, __ATOMIC_RELAXED) != 0, 0);
}

/* TACIO_VERIFY from the environment, once (port creation). */
TACIO_INTERNAL void tacio__verify_autoinit(void);
/* op began (INFLIGHT) with generation gen on h. */
TACIO_INTERNAL void tacio__verify_begin(tacio_op_t *op, uint32_t gen, struct tacio_handle *h);
/* A finish of (op, gen) is about to be attempted: false means report mode
 * dropped it (a second completion); the record has not been read. */
TACIO_INTERNAL bool tacio__verify_finish(tacio_op_t *op, uint32_t gen, tacio_status_t st,
                                         uint64_t bytes);
/* A backend's completion for (op, gen) arrived: false when it is a second
 * one (reported; the backend then drops it without reading the record). */
TACIO_INTERNAL bool tacio__verify_completion(tacio_op_t *op, uint32_t gen, tacio_status_t st);
/* The backend was asked to arm op and answered with a final status. */
TACIO_INTERNAL void tacio__verify_backend_final(tacio_op_t *op);
/* The start call returns st to the caller: the record is the caller's. */
TACIO_INTERNAL void tacio__verify_sync(tacio_op_t *op, tacio_status_t st);
/* The entry for op is handed out (how: "dequeue", "discard", "routine"). */
TACIO_INTERNAL void tacio__verify_delivered(tacio_op_t *op, const char *how);
/* A start was refused with TACIO_OP_IN_USE. */
TACIO_INTERNAL void tacio__verify_in_use(tacio_op_t *op);
/* A port closed; discarded entries without a discard callback. */
TACIO_INTERNAL void tacio__verify_port_closed(struct tacio_port *p, uint64_t discarded,
                                              bool had_discard_fn);

/* For tests: the last report's fields. */
struct tacio__verify_report {
    char check[40];
    char message[320];
    const void *op;
    uint32_t gen;
    uint64_t key;
    unsigned first_frames, second_frames;
    char first_how[16];
    tacio_status_t first_status, second_status;
    char text[12288];   /* the stderr block */
};
TACIO_INTERNAL bool tacio__verify_last(struct tacio__verify_report *out);

#endif
