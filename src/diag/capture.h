/* capture.h - first-chance capture hooks for the core and the verifier.
 *
 * The core's delivery path calls tacio__capture_status() for each entry a
 * dequeue hands out, but only while tacio__capture_armed is non-zero:
 *
 *     if (atomic_load_explicit(&tacio__capture_armed, memory_order_relaxed))
 *         tacio__capture_status(e->status, e->op, e->key);
 *
 * Relaxed is enough: arming is not ordered with any delivery (a delivery
 * racing tacio_capture_configure() may or may not be captured), and the
 * configuration itself is published with release/acquire inside capture.c.
 */
#ifndef TACIO_DIAG_CAPTURE_H
#define TACIO_DIAG_CAPTURE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifndef TACIO_INTERNAL
#define TACIO_INTERNAL __attribute__((visibility("hidden")))
#endif

/* Non-zero while a status trigger is armed and dumps remain. */
extern TACIO_INTERNAL _Atomic unsigned tacio__capture_armed;

/* For each entry a dequeue hands out while armed. When status matches a
 * status trigger and the count allows, writes a dump (the calling thread
 * waits for it; the process goes on) and a fault record of kind "capture"
 * naming it, with op and key in its "extra". THREAD SAFETY: any thread;
 * exactly `count` dumps are written however many threads race here. */
TACIO_INTERNAL void tacio__capture_status(uint32_t status, const void *op, uint64_t key);

/* For the verifier: when the "verifier" trigger is armed and the count
 * allows, write a dump and return 1 with its path in path (size bytes);
 * else return 0. The verifier names the path in its own record (field
 * dump). THREAD SAFETY: any thread; not from a signal handler. */
TACIO_INTERNAL int tacio__capture_verifier(const char *check, char *path, size_t size);

#endif
