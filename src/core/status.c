/* status.c - names, messages and errno conversion for tacio_status_t.
 *
 * This file is the one place errno becomes a status (and back). Every
 * syscall result and every io_uring CQE res that tacio reports goes through
 * tacio_status_from_errno(), so the mapping is decided once, can be read in
 * one switch, and cannot drift between the backends, the pool and the
 * tools. Code elsewhere must not compare errno values to pick a status.
 *
 * Mapping rule: an errno gets a Windows status only where one means the same
 * thing; everything else is carried as TACIO_FROM_ERRNO(e), so the original
 * errno is never lost and tacio_status_to_errno() gives it back exactly.
 */
#include <tacio/status.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

struct status_entry {
    tacio_status_t value;
    const char *name;
    const char *message;
};

/* A macro rather than a function: the name must be the macro's spelling. */
#define ENTRY(s, msg) { (s), #s, (msg) }

/* Every TACIO_* status in status.h, in the header's order. A status added
 * there and not here prints as TACIO_STATUS_0x...; tests/test-status.c
 * checks each one. */
static const struct status_entry status_table[] = {
    ENTRY(TACIO_SUCCESS, "The operation completed successfully."),
    ENTRY(TACIO_ABANDONED, "The port was closed while the caller was waiting on it."),
    ENTRY(TACIO_USER_APC, "Completion routines ran in an alertable wait."),
    ENTRY(TACIO_TIMEOUT, "The wait ran out before a completion arrived; nothing was dequeued."),
    ENTRY(TACIO_PENDING, "The operation was started and exactly one completion will follow."),

    ENTRY(TACIO_BUFFER_OVERFLOW, "The data did not fit in the buffer; the record carries the size needed."),
    ENTRY(TACIO_NO_MORE_ENTRIES, "There are no more entries to return."),

    ENTRY(TACIO_UNSUCCESSFUL, "The operation failed for an unspecified reason."),
    ENTRY(TACIO_NOT_IMPLEMENTED, "The operation is not implemented."),
    ENTRY(TACIO_ACCESS_VIOLATION, "A pointer passed to the operation refers to inaccessible memory."),
    ENTRY(TACIO_INVALID_HANDLE, "The handle is not valid."),
    ENTRY(TACIO_INVALID_PARAMETER, "A parameter passed to the operation is not valid."),
    ENTRY(TACIO_INVALID_DEVICE_REQUEST, "The operation is not valid for this kind of handle."),
    ENTRY(TACIO_END_OF_FILE, "The end of the file or stream was reached."),
    ENTRY(TACIO_NO_MEMORY, "There was not enough memory to complete the operation."),
    ENTRY(TACIO_ACCESS_DENIED, "Access to the object was denied."),
    ENTRY(TACIO_BUFFER_TOO_SMALL, "The buffer is too small to hold even part of the result."),
    ENTRY(TACIO_OBJECT_TYPE_MISMATCH, "The handle refers to the wrong kind of object for this operation."),
    ENTRY(TACIO_OBJECT_NAME_NOT_FOUND, "The named object does not exist."),
    ENTRY(TACIO_OBJECT_NAME_COLLISION, "An object with that name already exists."),
    ENTRY(TACIO_PORT_DISCONNECTED, "The completion port the handle is associated with is closed."),
    ENTRY(TACIO_PRIVILEGE_NOT_HELD, "The caller lacks the privilege the operation needs."),
    ENTRY(TACIO_DISK_FULL, "There is no space left on the device or the quota is exhausted."),
    ENTRY(TACIO_INSUFFICIENT_RESOURCES, "The system lacks the resources (such as buffer space) to complete the operation."),
    ENTRY(TACIO_DEVICE_NOT_READY, "The object is not ready; the operation would block."),
    ENTRY(TACIO_IO_TIMEOUT, "The operation timed out."),
    ENTRY(TACIO_FILE_IS_A_DIRECTORY, "The path names a directory where a file was expected."),
    ENTRY(TACIO_NOT_SUPPORTED, "The operation is not supported on this object."),
    ENTRY(TACIO_NOT_A_DIRECTORY, "A path component is not a directory."),
    ENTRY(TACIO_TOO_MANY_OPENED_FILES, "Too many files are open in the process or the system."),
    ENTRY(TACIO_CANCELLED, "The operation was cancelled."),
    ENTRY(TACIO_FILE_CLOSED, "The handle is closing or closed."),
    ENTRY(TACIO_INVALID_CONNECTION, "The socket is not connected."),
    ENTRY(TACIO_INVALID_ADDRESS, "The network address is not valid."),
    ENTRY(TACIO_PIPE_BROKEN, "The other end of the pipe or connection has been closed."),
    ENTRY(TACIO_INVALID_DEVICE_STATE, "The object is not in a state that allows this call."),
    ENTRY(TACIO_IO_DEVICE_ERROR, "The device reported an input/output error."),
    ENTRY(TACIO_POSSIBLE_DEADLOCK, "The wait could never end: it was called from a callback it waits for."),
    ENTRY(TACIO_INVALID_BUFFER_SIZE, "The message is too large for the transport."),
    ENTRY(TACIO_INVALID_ADDRESS_COMPONENT, "The requested address is not available on this host."),
    ENTRY(TACIO_ADDRESS_ALREADY_EXISTS, "The address is already in use."),
    ENTRY(TACIO_CONNECTION_RESET, "The connection was reset by the peer."),
    ENTRY(TACIO_CONNECTION_ACTIVE, "The socket is already connected."),
    ENTRY(TACIO_NETWORK_UNREACHABLE, "The network is unreachable or down."),
    ENTRY(TACIO_HOST_UNREACHABLE, "The host is unreachable or down."),
    ENTRY(TACIO_CONNECTION_REFUSED, "The peer refused the connection."),
    ENTRY(TACIO_CONNECTION_ABORTED, "The connection was aborted on this host."),
    ENTRY(TACIO_NOT_FOUND, "The object was not found."),
    ENTRY(TACIO_FILE_TOO_LARGE, "The file would grow beyond the largest size allowed."),

    ENTRY(TACIO_OP_IN_USE, "The operation record is still pending or queued and cannot be reused yet."),
    ENTRY(TACIO_BACKEND_UNAVAILABLE, "The requested I/O backend is not available on this system."),
};

#undef ENTRY

/* Both buffers are per thread, and separate so that one printf() may show
 * tacio_status_name(s) and tacio_status_message(s) together. */
static _Thread_local char name_buf[64];
static _Thread_local char message_buf[64];

static const struct status_entry *find_entry(tacio_status_t s)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].value == s)
            return &status_table[i];
    return NULL;
}

/* True for exactly the values TACIO_FROM_ERRNO() produces. */
static int is_from_errno(tacio_status_t s)
{
    return (s & 0xFFFF0000u) == TACIO_FROM_ERRNO(0);
}

static int errno_of(tacio_status_t s)
{
    return (int)(s & 0xFFFFu);
}

const char *tacio_status_name(tacio_status_t s)
{
    const struct status_entry *e = find_entry(s);
    if (e)
        return e->name;
    if (is_from_errno(s)) {
        const char *en = strerrorname_np(errno_of(s));
        if (en)
            snprintf(name_buf, sizeof name_buf, "TACIO_FROM_ERRNO(%s)", en);
        else
            snprintf(name_buf, sizeof name_buf, "TACIO_FROM_ERRNO(%d)", errno_of(s));
        return name_buf;
    }
    snprintf(name_buf, sizeof name_buf, "TACIO_STATUS_0x%08X", (unsigned)s);
    return name_buf;
}

const char *tacio_status_message(tacio_status_t s)
{
    const struct status_entry *e = find_entry(s);
    if (e)
        return e->message;
    if (is_from_errno(s)) {
        const char *desc = strerrordesc_np(errno_of(s));
        if (desc)
            return desc;
        snprintf(message_buf, sizeof message_buf, "Unknown errno %d.", errno_of(s));
        return message_buf;
    }
    snprintf(message_buf, sizeof message_buf, "Unknown status 0x%08X.", (unsigned)s);
    return message_buf;
}

tacio_status_t tacio_status_from_errno(int e)
{
    /* io_uring reports -errno; -INT_MIN would overflow, and a value above
     * 0xFFFF cannot be carried in TACIO_FROM_ERRNO's code field. Neither is
     * a real errno (Linux errnos stop at 4095), so neither gets a guess. */
    if (e == INT_MIN)
        return TACIO_UNSUCCESSFUL;
    if (e < 0)
        e = -e;

    switch (e) {
    case 0:             return TACIO_SUCCESS;

    /* Operation record and handle. */
    case ECANCELED:     return TACIO_CANCELLED;
    case EINVAL:        return TACIO_INVALID_PARAMETER;
    case EBADF:         return TACIO_INVALID_HANDLE;
    case EFAULT:        return TACIO_ACCESS_VIOLATION;
    case ENOSYS:        return TACIO_NOT_IMPLEMENTED;
    case EOPNOTSUPP:    return TACIO_NOT_SUPPORTED;
#if ENOTSUP != EOPNOTSUPP
    case ENOTSUP:       return TACIO_NOT_SUPPORTED;
#endif
    case EAGAIN:        return TACIO_DEVICE_NOT_READY;
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:   return TACIO_DEVICE_NOT_READY;
#endif
    /* ETIME is what an io_uring timeout or linked timeout completes with. */
    case ETIMEDOUT:     return TACIO_IO_TIMEOUT;
    case ETIME:         return TACIO_IO_TIMEOUT;

    /* Resources. */
    case ENOMEM:        return TACIO_NO_MEMORY;
    case ENOBUFS:       return TACIO_INSUFFICIENT_RESOURCES;
    case EMFILE:        return TACIO_TOO_MANY_OPENED_FILES;
    case ENFILE:        return TACIO_TOO_MANY_OPENED_FILES;

    /* Files and paths. */
    case ENOENT:        return TACIO_OBJECT_NAME_NOT_FOUND;
    case EEXIST:        return TACIO_OBJECT_NAME_COLLISION;
    case EACCES:        return TACIO_ACCESS_DENIED;
    case EPERM:         return TACIO_PRIVILEGE_NOT_HELD;
    case ENOSPC:        return TACIO_DISK_FULL;
    case EDQUOT:        return TACIO_DISK_FULL;
    case EFBIG:         return TACIO_FILE_TOO_LARGE;
    case EISDIR:        return TACIO_FILE_IS_A_DIRECTORY;
    case ENOTDIR:       return TACIO_NOT_A_DIRECTORY;
    case EIO:           return TACIO_IO_DEVICE_ERROR;

    /* Pipes and sockets. */
    case EPIPE:         return TACIO_PIPE_BROKEN;
    case ENOTSOCK:      return TACIO_OBJECT_TYPE_MISMATCH;
    case ECONNRESET:    return TACIO_CONNECTION_RESET;
    case ECONNREFUSED:  return TACIO_CONNECTION_REFUSED;
    case ECONNABORTED:  return TACIO_CONNECTION_ABORTED;
    case ENOTCONN:      return TACIO_INVALID_CONNECTION;
    case EISCONN:       return TACIO_CONNECTION_ACTIVE;
    case EADDRINUSE:    return TACIO_ADDRESS_ALREADY_EXISTS;
    case EADDRNOTAVAIL: return TACIO_INVALID_ADDRESS_COMPONENT;
    case ENETUNREACH:   return TACIO_NETWORK_UNREACHABLE;
    case ENETDOWN:      return TACIO_NETWORK_UNREACHABLE;
    case EHOSTUNREACH:  return TACIO_HOST_UNREACHABLE;
    case EHOSTDOWN:     return TACIO_HOST_UNREACHABLE;
    case EMSGSIZE:      return TACIO_INVALID_BUFFER_SIZE;

    /* No equivalent with the same meaning (ESPIPE, EINTR, EINPROGRESS,
     * EALREADY, EBUSY, EAFNOSUPPORT, ENAMETOOLONG, EROFS, EXDEV, ...):
     * carry the errno itself. */
    default:
        if (e > 0xFFFF)
            return TACIO_UNSUCCESSFUL;
        return TACIO_FROM_ERRNO(e);
    }
}

int tacio_status_to_errno(tacio_status_t s)
{
    switch (s) {
    /* Success class, yet a caller handing an errno on needs the reason a
     * wait returned without a completion, so these two do not give 0. */
    case TACIO_TIMEOUT:             return ETIMEDOUT;
    case TACIO_ABANDONED:           return ECANCELED;

    /* Warnings: the operation is over but did not do all that was asked. */
    case TACIO_BUFFER_OVERFLOW:     return EMSGSIZE;
    case TACIO_NO_MORE_ENTRIES:     return ENODATA;

    case TACIO_UNSUCCESSFUL:        return EIO;
    case TACIO_NOT_IMPLEMENTED:     return ENOSYS;
    case TACIO_ACCESS_VIOLATION:    return EFAULT;
    case TACIO_INVALID_HANDLE:      return EBADF;
    case TACIO_INVALID_PARAMETER:   return EINVAL;
    case TACIO_INVALID_DEVICE_REQUEST: return EINVAL;
    case TACIO_END_OF_FILE:         return ENODATA;
    case TACIO_NO_MEMORY:           return ENOMEM;
    case TACIO_ACCESS_DENIED:       return EACCES;
    case TACIO_BUFFER_TOO_SMALL:    return ERANGE;
    case TACIO_OBJECT_TYPE_MISMATCH: return ENOTSOCK;
    case TACIO_OBJECT_NAME_NOT_FOUND: return ENOENT;
    case TACIO_OBJECT_NAME_COLLISION: return EEXIST;
    case TACIO_PORT_DISCONNECTED:   return EPIPE;
    case TACIO_PRIVILEGE_NOT_HELD:  return EPERM;
    case TACIO_DISK_FULL:           return ENOSPC;
    case TACIO_INSUFFICIENT_RESOURCES: return ENOBUFS;
    case TACIO_DEVICE_NOT_READY:    return EAGAIN;
    case TACIO_IO_TIMEOUT:          return ETIMEDOUT;
    case TACIO_FILE_IS_A_DIRECTORY: return EISDIR;
    case TACIO_NOT_SUPPORTED:       return EOPNOTSUPP;
    case TACIO_NOT_A_DIRECTORY:     return ENOTDIR;
    case TACIO_TOO_MANY_OPENED_FILES: return EMFILE;
    case TACIO_CANCELLED:           return ECANCELED;
    case TACIO_FILE_CLOSED:         return EBADF;
    case TACIO_INVALID_CONNECTION:  return ENOTCONN;
    case TACIO_INVALID_ADDRESS:     return EINVAL;
    case TACIO_PIPE_BROKEN:         return EPIPE;
    case TACIO_IO_DEVICE_ERROR:     return EIO;
    case TACIO_INVALID_BUFFER_SIZE: return EMSGSIZE;
    case TACIO_INVALID_ADDRESS_COMPONENT: return EADDRNOTAVAIL;
    case TACIO_ADDRESS_ALREADY_EXISTS: return EADDRINUSE;
    case TACIO_CONNECTION_RESET:    return ECONNRESET;
    case TACIO_CONNECTION_ACTIVE:   return EISCONN;
    case TACIO_NETWORK_UNREACHABLE: return ENETUNREACH;
    case TACIO_HOST_UNREACHABLE:    return EHOSTUNREACH;
    case TACIO_CONNECTION_REFUSED:  return ECONNREFUSED;
    case TACIO_CONNECTION_ABORTED:  return ECONNABORTED;
    case TACIO_NOT_FOUND:           return ENOENT;
    case TACIO_FILE_TOO_LARGE:      return EFBIG;

    case TACIO_OP_IN_USE:           return EBUSY;
    case TACIO_BACKEND_UNAVAILABLE: return ENOSYS;
    default:
        break;
    }
    if (tacio_success(s))
        return 0;
    /* TACIO_FROM_ERRNO(0) is never produced; 0 would read as success. */
    if (is_from_errno(s) && errno_of(s) != 0)
        return errno_of(s);
    return EIO;
}
