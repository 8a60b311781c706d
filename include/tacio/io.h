/* tacio/io.h - handles and overlapped operations.
 *
 * THE RULE (docs/contract.md): every operation start returns either
 * TACIO_PENDING, and then exactly one completion for that record will be
 * delivered through the handle's port, or any other status, and then the
 * operation is over, no completion will ever be delivered, and the record is
 * the caller's again at once. This holds for success, warnings
 * (TACIO_BUFFER_OVERFLOW with the size needed in op->bytes), errors and
 * rejected arguments alike.
 *
 * GLOBAL THREAD-SAFETY RULE: any function here may be called from any thread,
 * concurrently, on the same or different handles, unless its entry says
 * otherwise. One operation record is in at most one operation at a time:
 * starting a record that is still pending or queued returns TACIO_OP_IN_USE
 * and starts nothing.
 */
#ifndef TACIO_IO_H
#define TACIO_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <tacio/status.h>
#include <tacio/port.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tacio_handle tacio_handle_t;

/* The operation record (the OVERLAPPED role). The caller allocates it,
 * usually embedded in its own per-request struct (recover that struct with
 * tacio_container_of), and zeroes it once (or calls tacio_op_init) before
 * first use. tacio never allocates per operation.
 *
 * Fields:
 *   status  public, read-only: the final status, valid once the operation is
 *           over (a non-PENDING return, or after its entry was dequeued).
 *   bytes   public, read-only: bytes transferred; with TACIO_BUFFER_OVERFLOW,
 *           the size that would have fit everything; for accept, the new fd.
 *   user    public: the caller's, never read or written by tacio.
 *   priv_*  private: do not touch. They hold the record's state and
 *           generation, handle, queue link, and the operation's arguments.
 */
/* A completion routine (the ReadFileEx / APC model): runs on the thread that
 * started the operation, in one of its alertable waits, with the record
 * (the caller's again) and the final result. */
typedef void (*tacio_routine_fn)(tacio_op_t *op, tacio_status_t status, uint64_t bytes);

struct tacio_op {
    tacio_status_t status;
    uint32_t priv_word;
    uint64_t bytes;
    void *user;
    void *priv_handle;
    void *priv_next;
    void *priv_buf;
    uint32_t priv_len;
    uint32_t priv_slot;
    uint64_t priv_arg;
};

#define tacio_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* tacio_op_init - make a record ready for its first operation. A zeroed
 * record is equally ready. Must not be called on a pending record. */
static inline void tacio_op_init(tacio_op_t *op)
{
    *op = (tacio_op_t){0};
}

/* tacio_op_set_routine - deliver this record's next operations to fn on the
 * issuing thread instead of to the port (ReadFileEx and friends). The
 * routine runs only while that thread is in an alertable wait
 * (tacio_wait_alertable, or tacio_port_dequeue_ex with
 * TACIO_DEQUEUE_ALERTABLE), in completion order. The one-bit rule holds: it
 * runs once for a start that returned TACIO_PENDING and never otherwise (a
 * synchronous result is the start call's return value; Windows would also
 * queue the routine for it). If the thread exits with routines owed, its
 * pending operations are cancelled and every routine still runs, on that
 * thread, before it ends (Windows drops them). fn NULL goes back to port
 * delivery. Stays set across operations until changed or tacio_op_init.
 * Must not be called while the record is pending (TACIO_OP_IN_USE then).
 * The routine is kept outside the record, in a table of records that have
 * one (the record stays 64 bytes): NO_MEMORY if that table cannot grow.
 * Setting NULL, or tacio_op_init, before freeing such a record returns its
 * entry; a record freed with a routine set leaves a small entry behind
 * until its address is set again. */
tacio_status_t tacio_op_set_routine(tacio_op_t *op, tacio_routine_fn fn);

/* A socket address plus the scratch space the kernel needs while a
 * recvfrom/sendto/accept/connect is in flight. Caller-owned; it must stay
 * valid until the operation is over. len is the address length (set it for
 * sendto/connect; tacio sets it for recvfrom/accept). */
typedef struct tacio_addr {
    socklen_t len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    uint64_t priv_scratch[10];
} tacio_addr_t;

/* Offset argument for handles that have no position (sockets, pipes). */
#define TACIO_OFFSET_NONE UINT64_MAX

/* Handle flags. */
#define TACIO_HANDLE_QUEUED_ALWAYS 0x1u /* every accepted operation returns
                                           PENDING and completes through the
                                           port, synchronous results included */
#define TACIO_HANDLE_NO_CLOSE_FD   0x2u /* tacio_handle_close leaves the fd open */
#define TACIO_HANDLE_THREAD_BOUND  0x4u /* FO_QUEUE_IRP_TO_THREAD: each operation's
                                           completion is dequeued only by the thread
                                           that started it (from this port); when that
                                           thread exits, its pending operations are
                                           cancelled, and their completions (CANCELLED,
                                           or natural if the cancel lost) go to the
                                           port for any thread, since the issuer is gone */

/* tacio_handle_open - wrap an fd into a handle associated with port and key
 * (CreateIoCompletionPort on a file handle).
 * Supported: regular files, pipes/FIFOs, and TCP, UDP and Unix (stream,
 * datagram, seqpacket) sockets. Sockets and pipes are switched to O_NONBLOCK.
 * RETURN VALUE: TACIO_SUCCESS and *out; TACIO_INVALID_PARAMETER (out NULL,
 *   fd negative, unknown flag); TACIO_INVALID_HANDLE (fd not open, or port
 *   not a port); TACIO_PORT_DISCONNECTED (port closed); TACIO_NOT_SUPPORTED
 *   (directory, character device, other fd types: tacio_last_error() names
 *   the type); TACIO_NO_MEMORY.
 * LIFETIME: on success the handle owns fd (closes it when the handle is
 *   closed and no operation can still name it), unless
 *   TACIO_HANDLE_NO_CLOSE_FD. On failure fd is untouched and still the
 *   caller's.
 * THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_handle_open(tacio_port_t *port, int fd, uint64_t key,
                                              unsigned flags, tacio_handle_t **out);

/* tacio_handle_fd - the fd, for setsockopt() and the like; -1 if h is not an
 * open handle. Do not close it yourself. */
TACIO_EXTERN int tacio_handle_fd(tacio_handle_t *h);

/* tacio_handle_close - close the handle. Returns at once, never waits.
 * Every operation of the handle still pending completes exactly once
 * (TACIO_CANCELLED, or its natural result if it won the race). The fd is
 * closed when no operation in the kernel can still resolve its number, so a
 * reused fd number never receives a stale operation. Operations that other
 * threads start on the handle while or after it closes get
 * TACIO_FILE_CLOSED (TACIO_INVALID_HANDLE once its memory is marked dead).
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_HANDLE (NULL, not a handle,
 *   already closed).
 * LIFETIME: h must not be used after this returns; its memory stays valid
 *   (a later call gets TACIO_INVALID_HANDLE) until reused by a new handle. */
TACIO_EXTERN tacio_status_t tacio_handle_close(tacio_handle_t *h);

/* The operations. Common to all of them:
 * RETURN VALUE: TACIO_PENDING: one completion follows. Otherwise the final
 *   status, op->status and op->bytes set, no completion: TACIO_SUCCESS,
 *   TACIO_BUFFER_OVERFLOW (datagram truncated: op->bytes = its real length;
 *   the buffer holds the first len bytes), TACIO_END_OF_FILE (read at end of
 *   file, or the peer closed a stream: bytes 0), an error from the kernel,
 *   or a rejection that started nothing: TACIO_INVALID_PARAMETER (NULL op,
 *   NULL buffer with len > 0, len > UINT32_MAX, an offset on a socket or
 *   pipe or none on a file, wrong handle type for the call),
 *   TACIO_INVALID_HANDLE, TACIO_FILE_CLOSED, TACIO_PORT_DISCONNECTED,
 *   TACIO_OP_IN_USE, TACIO_INVALID_DEVICE_REQUEST (operation not possible on
 *   this kind of handle, e.g. accept on a file).
 *   A rejection leaves op->status untouched when the record is in use.
 * LIFETIME: op, buf and addr belong to tacio from a PENDING return until the
 *   operation's entry is dequeued (or handed to the port's discard
 *   callback); after any other return they are the caller's at once.
 * THREAD SAFETY: global rule. Several operations may be pending on one
 *   handle; on a stream, receives are satisfied and sends are written in the
 *   order they were started. */

/* Read at offset (files) or from the stream (pipes, sockets: TACIO_OFFSET_NONE).
 * A zero-length read is rejected (TACIO_INVALID_PARAMETER). */
TACIO_EXTERN tacio_status_t tacio_read(tacio_handle_t *h, tacio_op_t *op, void *buf, size_t len,
                                       uint64_t offset);
/* Write at offset (files) or to the stream. A write may be short only when
 * the kernel writes less (op->bytes says how much). */
TACIO_EXTERN tacio_status_t tacio_write(tacio_handle_t *h, tacio_op_t *op, const void *buf,
                                        size_t len, uint64_t offset);
/* Receive on a socket. On datagram and seqpacket sockets truncation is
 * TACIO_BUFFER_OVERFLOW with the real length. len 0 is rejected. */
TACIO_EXTERN tacio_status_t tacio_recv(tacio_handle_t *h, tacio_op_t *op, void *buf, size_t len);
/* Send on a socket (never raises SIGPIPE: a closed peer is TACIO_PIPE_BROKEN
 * or TACIO_CONNECTION_RESET). len 0 is allowed on datagram sockets only. */
TACIO_EXTERN tacio_status_t tacio_send(tacio_handle_t *h, tacio_op_t *op, const void *buf,
                                       size_t len);
/* Receive a datagram and its source address (from may be NULL). */
TACIO_EXTERN tacio_status_t tacio_recvfrom(tacio_handle_t *h, tacio_op_t *op, void *buf,
                                           size_t len, tacio_addr_t *from);
/* Send a datagram to an address (to->len set). */
TACIO_EXTERN tacio_status_t tacio_sendto(tacio_handle_t *h, tacio_op_t *op, const void *buf,
                                         size_t len, tacio_addr_t *to);
/* Accept on a listening socket. On success op->bytes is the new connection's
 * fd (non-blocking, close-on-exec), which the caller owns from delivery on
 * (wrap it with tacio_handle_open). peer may be NULL. */
TACIO_EXTERN tacio_status_t tacio_accept(tacio_handle_t *h, tacio_op_t *op, tacio_addr_t *peer);
/* Connect a stream or datagram socket. The connection's own error
 * (TACIO_CONNECTION_REFUSED, ...) is the status, synchronous or completed. */
TACIO_EXTERN tacio_status_t tacio_connect(tacio_handle_t *h, tacio_op_t *op, tacio_addr_t *to);
/* Flush a file to storage (datasync: fdatasync semantics). Files only. It
 * covers writes that completed before it started; it does not wait for
 * writes still pending (start it after their completions). */
TACIO_EXTERN tacio_status_t tacio_fsync(tacio_handle_t *h, tacio_op_t *op, int datasync);

/* Events for tacio_poll (the values of POLLIN and POLLOUT). */
#define TACIO_POLL_IN  0x001u
#define TACIO_POLL_OUT 0x004u
/* Wait until the socket or pipe shows one of events (readable, writable);
 * no data moves. On success op->bytes is the poll(2) revents seen (an error
 * or hang-up shows as POLLERR 0x8 / POLLHUP 0x10 with the events). It does
 * not take a receive's or send's turn on a stream. events must be
 * TACIO_POLL_IN, TACIO_POLL_OUT or both (on the epoll backend "both" wakes
 * on readability edges only, and reports writability seen then). Not on
 * files (TACIO_INVALID_DEVICE_REQUEST): they are always ready.
 * A poll for writability, and one for readability on a new handle or after a
 * receive that filled its buffer, first asks poll(2) with no wait, so a ready
 * fd returns TACIO_SUCCESS at once with no completion. A readability poll
 * after a receive or poll that found nothing goes straight to the backend
 * (the fd was just drained, so poll(2) would most likely find nothing again):
 * it returns TACIO_PENDING and completes once, at once if the fd is ready. */
TACIO_EXTERN tacio_status_t tacio_poll(tacio_handle_t *h, tacio_op_t *op, unsigned events);

/* tacio_cancel - ask that a pending operation end early (CancelIoEx).
 * RETURN VALUE: TACIO_SUCCESS: requested; the operation still completes
 *   exactly once, with TACIO_CANCELLED or its natural result if that won.
 *   TACIO_NOT_FOUND: op is not pending (idle, already completed and queued,
 *   or never started). TACIO_INVALID_PARAMETER: op NULL.
 * Never waits, never frees. THREAD SAFETY: any thread. */
TACIO_EXTERN tacio_status_t tacio_cancel(tacio_op_t *op);

/* tacio_cancel_handle - tacio_cancel for every pending operation of h.
 * RETURN VALUE: TACIO_SUCCESS (requested for at least one operation),
 *   TACIO_NOT_FOUND (none pending), TACIO_INVALID_HANDLE. */
TACIO_EXTERN tacio_status_t tacio_cancel_handle(tacio_handle_t *h);

#ifdef __cplusplus
}
#endif
#endif
