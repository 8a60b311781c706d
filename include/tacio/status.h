/* tacio/status.h - 32-bit statuses in the NTSTATUS layout.
 *
 * Every public tacio function reports through a tacio_status_t, never errno.
 * The layout is NTSTATUS's, so a number means the same thing to a person
 * porting Windows code:
 *
 *   bits 31-30  severity: 0 success, 1 informational, 2 warning, 3 error
 *   bit  29     customer bit (set on tacio's own codes that Windows lacks)
 *   bits 27-16  facility
 *   bits 15-0   code
 *
 * A warning is not a failure: TACIO_BUFFER_OVERFLOW says "the data did not
 * fit; the operation record carries the size you need". That is why tacio
 * does not use -errno (liburing, libuv), which cannot say it.
 *
 * Where Windows has a status for a condition, tacio uses its value. errno
 * values with no NTSTATUS equivalent are carried as TACIO_FROM_ERRNO(e) in a
 * customer facility, so the original errno is never lost.
 */
#ifndef TACIO_STATUS_H
#define TACIO_STATUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TACIO_EXTERN __attribute__((visibility("default")))
#else
#define TACIO_EXTERN
#endif

typedef uint32_t tacio_status_t;

/* Success class (severity 0). */
#define TACIO_SUCCESS             ((tacio_status_t)0x00000000u)
#define TACIO_ABANDONED           ((tacio_status_t)0x00000080u) /* STATUS_ABANDONED: port closed under a waiter */
#define TACIO_USER_APC            ((tacio_status_t)0x000000C0u) /* STATUS_USER_APC: an alertable wait ran completion routines */
#define TACIO_TIMEOUT             ((tacio_status_t)0x00000102u) /* STATUS_TIMEOUT: a wait ran out, nothing dequeued */
#define TACIO_PENDING             ((tacio_status_t)0x00000103u) /* STATUS_PENDING: exactly one completion will follow */

/* Warning class (severity 2): the operation is over and carries data. */
#define TACIO_BUFFER_OVERFLOW     ((tacio_status_t)0x80000005u) /* data did not fit; bytes = size needed */
#define TACIO_NO_MORE_ENTRIES     ((tacio_status_t)0x8000001Au)

/* Error class (severity 3). */
#define TACIO_UNSUCCESSFUL        ((tacio_status_t)0xC0000001u)
#define TACIO_NOT_IMPLEMENTED     ((tacio_status_t)0xC0000002u)
#define TACIO_ACCESS_VIOLATION    ((tacio_status_t)0xC0000005u)
#define TACIO_INVALID_HANDLE      ((tacio_status_t)0xC0000008u)
#define TACIO_INVALID_PARAMETER   ((tacio_status_t)0xC000000Du)
#define TACIO_INVALID_DEVICE_REQUEST ((tacio_status_t)0xC0000010u)
#define TACIO_END_OF_FILE         ((tacio_status_t)0xC0000011u)
#define TACIO_NO_MEMORY           ((tacio_status_t)0xC0000017u)
#define TACIO_ACCESS_DENIED       ((tacio_status_t)0xC0000022u)
#define TACIO_BUFFER_TOO_SMALL    ((tacio_status_t)0xC0000023u)
#define TACIO_OBJECT_TYPE_MISMATCH ((tacio_status_t)0xC0000024u)
#define TACIO_OBJECT_NAME_NOT_FOUND ((tacio_status_t)0xC0000034u)
#define TACIO_OBJECT_NAME_COLLISION ((tacio_status_t)0xC0000035u)
#define TACIO_PORT_DISCONNECTED   ((tacio_status_t)0xC0000037u) /* the handle's port is closed */
#define TACIO_PRIVILEGE_NOT_HELD  ((tacio_status_t)0xC0000061u)
#define TACIO_DISK_FULL           ((tacio_status_t)0xC000007Fu)
#define TACIO_INSUFFICIENT_RESOURCES ((tacio_status_t)0xC000009Au)
#define TACIO_DEVICE_NOT_READY    ((tacio_status_t)0xC00000A3u)
#define TACIO_IO_TIMEOUT          ((tacio_status_t)0xC00000B5u)
#define TACIO_FILE_IS_A_DIRECTORY ((tacio_status_t)0xC00000BAu)
#define TACIO_NOT_SUPPORTED       ((tacio_status_t)0xC00000BBu)
#define TACIO_NOT_A_DIRECTORY     ((tacio_status_t)0xC0000103u)
#define TACIO_TOO_MANY_OPENED_FILES ((tacio_status_t)0xC000011Fu)
#define TACIO_CANCELLED           ((tacio_status_t)0xC0000120u)
#define TACIO_FILE_CLOSED         ((tacio_status_t)0xC0000128u) /* handle is closing or closed */
#define TACIO_INVALID_CONNECTION  ((tacio_status_t)0xC0000140u) /* ENOTCONN */
#define TACIO_INVALID_ADDRESS     ((tacio_status_t)0xC0000141u)
#define TACIO_PIPE_BROKEN         ((tacio_status_t)0xC000014Bu)
#define TACIO_INVALID_DEVICE_STATE ((tacio_status_t)0xC0000184u) /* call not valid in the object's state */
#define TACIO_IO_DEVICE_ERROR     ((tacio_status_t)0xC0000185u)
#define TACIO_POSSIBLE_DEADLOCK   ((tacio_status_t)0xC0000194u) /* a wait that could never end (from its own callback) */
#define TACIO_INVALID_BUFFER_SIZE ((tacio_status_t)0xC0000206u) /* EMSGSIZE */
#define TACIO_INVALID_ADDRESS_COMPONENT ((tacio_status_t)0xC0000207u) /* EADDRNOTAVAIL */
#define TACIO_ADDRESS_ALREADY_EXISTS ((tacio_status_t)0xC000020Au) /* EADDRINUSE */
#define TACIO_CONNECTION_RESET    ((tacio_status_t)0xC000020Du)
#define TACIO_CONNECTION_ACTIVE   ((tacio_status_t)0xC000023Bu) /* EISCONN */
#define TACIO_NETWORK_UNREACHABLE ((tacio_status_t)0xC000023Cu)
#define TACIO_HOST_UNREACHABLE    ((tacio_status_t)0xC000023Du)
#define TACIO_CONNECTION_REFUSED  ((tacio_status_t)0xC0000236u)
#define TACIO_CONNECTION_ABORTED  ((tacio_status_t)0xC0000241u)
#define TACIO_NOT_FOUND           ((tacio_status_t)0xC0000225u)
#define TACIO_FILE_TOO_LARGE      ((tacio_status_t)0xC0000904u)

/* tacio's own codes: customer bit set, facility 0xFD. */
#define TACIO_OP_IN_USE           ((tacio_status_t)0xE0FD0001u) /* record still pending or queued */
#define TACIO_BACKEND_UNAVAILABLE ((tacio_status_t)0xE0FD0002u)

/* errno with no NTSTATUS equivalent: customer bit, facility 0xFE, code = errno. */
#define TACIO_FACILITY_ERRNO      0x0FEu
#define TACIO_FROM_ERRNO(e)       ((tacio_status_t)(0xE0000000u | (TACIO_FACILITY_ERRNO << 16) | ((uint32_t)(e) & 0xFFFFu)))

/* Severity tests. Inline so they cost nothing; all are pure. */
static inline unsigned tacio_status_severity(tacio_status_t s) { return s >> 30; }
/* NT_SUCCESS: success or informational. Note TACIO_PENDING, TACIO_TIMEOUT
 * and TACIO_ABANDONED are success-class too (as in NTSTATUS): compare a start
 * call's result with TACIO_PENDING, and a dequeue's with TACIO_SUCCESS,
 * rather than testing the class. */
static inline int tacio_success(tacio_status_t s) { return (s >> 30) <= 1; }
static inline int tacio_warning(tacio_status_t s) { return (s >> 30) == 2; }
static inline int tacio_error(tacio_status_t s) { return (s >> 30) == 3; }

/* tacio_status_name - the symbolic name ("TACIO_CANCELLED").
 * RETURN VALUE: a static string; for a status tacio does not know, a name of
 *   the form "TACIO_STATUS_0x%08X" built in a thread-local buffer, valid until
 *   the calling thread's next call.
 * LIFETIME: nothing to free.
 * THREAD SAFETY: any thread, any time. */
TACIO_EXTERN const char *tacio_status_name(tacio_status_t s);

/* tacio_status_message - a one-sentence English description.
 * RETURN VALUE / LIFETIME / THREAD SAFETY: as tacio_status_name. For an errno
 *   carried with TACIO_FROM_ERRNO, glibc's description of that errno. */
TACIO_EXTERN const char *tacio_status_message(tacio_status_t s);

/* tacio_status_from_errno - the one place errno becomes a status.
 * RETURN VALUE: the NTSTATUS-equivalent for e (positive errno; a negative
 *   value is negated first, so io_uring's -errno results map directly);
 *   TACIO_SUCCESS for 0; TACIO_FROM_ERRNO(e) where no equivalent exists.
 * THREAD SAFETY: pure. */
TACIO_EXTERN tacio_status_t tacio_status_from_errno(int e);

/* tacio_status_to_errno - the closest errno for a status (for code that must
 * hand one on). RETURN VALUE: a positive errno; 0 for success-class statuses
 * except TACIO_TIMEOUT (ETIMEDOUT) and TACIO_ABANDONED (ECANCELED); the
 * original errno for TACIO_FROM_ERRNO(e); EIO when nothing closer exists.
 * THREAD SAFETY: pure. */
TACIO_EXTERN int tacio_status_to_errno(tacio_status_t s);

#ifdef __cplusplus
}
#endif
#endif
