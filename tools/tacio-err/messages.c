/* messages.c - short English messages for Windows codes, written by hand.
 *
 * The mingw-w64 headers carry names and values only. These texts are
 * tacio's own one-line descriptions (not Microsoft's FormatMessage text),
 * written for the codes the seed case and common server crashes involve;
 * every other code prints its name alone. */
#include "err-tables.h"

#include <string.h>

static const struct { const char *name, *message; } messages[] = {
    /* NTSTATUS */
    { "STATUS_SUCCESS", "The operation completed successfully." },
    { "STATUS_PENDING", "The operation was started and has not completed: exactly one completion will follow." },
    { "STATUS_TIMEOUT", "The wait timed out." },
    { "STATUS_ABANDONED", "The wait was abandoned (the object's owner went away)." },
    { "STATUS_BUFFER_OVERFLOW", "Warning: the data did not fit in the buffer; part was returned and the size needed is reported. The operation is over, yet it may still complete through the port (the seed case's trap)." },
    { "STATUS_ACCESS_VIOLATION", "The instruction referenced memory it may not access (a segmentation fault; SIGSEGV)." },
    { "STATUS_IN_PAGE_ERROR", "A page of a mapped file or of memory could not be brought in (SIGBUS)." },
    { "STATUS_DATATYPE_MISALIGNMENT", "A misaligned data access (SIGBUS, BUS_ADRALN)." },
    { "STATUS_ILLEGAL_INSTRUCTION", "The processor met an instruction it cannot execute (SIGILL)." },
    { "STATUS_PRIVILEGED_INSTRUCTION", "A privileged instruction was executed in user mode (SIGILL)." },
    { "STATUS_INTEGER_DIVIDE_BY_ZERO", "An integer division by zero (SIGFPE)." },
    { "STATUS_INTEGER_OVERFLOW", "An integer overflow trap (SIGFPE)." },
    { "STATUS_FLOAT_DIVIDE_BY_ZERO", "A floating-point division by zero trap (SIGFPE)." },
    { "STATUS_FLOAT_INVALID_OPERATION", "An invalid floating-point operation trap (SIGFPE)." },
    { "STATUS_STACK_OVERFLOW", "The thread's stack overflowed." },
    { "STATUS_STACK_BUFFER_OVERRUN", "Fail-fast: the process stopped itself (abort(), __fastfail, a detected stack buffer overrun; SIGABRT)." },
    { "STATUS_CANCELLED", "The I/O request was cancelled." },
    { "STATUS_INVALID_HANDLE", "The handle is not valid." },
    { "STATUS_BUFFER_TOO_SMALL", "The buffer is too small to hold any of the result; nothing was returned." },
    { "STATUS_INVALID_PARAMETER", "A parameter is not valid." },
    { "STATUS_NO_MEMORY", "Not enough memory (virtual memory or paging file quota)." },
    { "STATUS_CONNECTION_ABORTED", "The connection was aborted by this host." },
    { "STATUS_CONNECTION_RESET", "The connection was reset by the peer." },
    /* Win32 errors */
    { "ERROR_SUCCESS", "The operation completed successfully." },
    { "NO_ERROR", "The operation completed successfully." },
    { "ERROR_FILE_NOT_FOUND", "The file cannot be found." },
    { "ERROR_ACCESS_DENIED", "Access is denied." },
    { "ERROR_INVALID_HANDLE", "The handle is not valid." },
    { "ERROR_NOT_ENOUGH_MEMORY", "Not enough memory to process the command." },
    { "ERROR_INVALID_PARAMETER", "A parameter is not valid." },
    { "ERROR_INSUFFICIENT_BUFFER", "The buffer passed is too small." },
    { "ERROR_NETNAME_DELETED", "The network name is no longer available (the connection went away under a pending I/O)." },
    { "ERROR_MORE_DATA", "More data is available: the buffer was too small and the size needed is reported. Win32's name for STATUS_BUFFER_OVERFLOW (a warning, not a failure: a completion may still be queued)." },
    { "WAIT_TIMEOUT", "The wait timed out." },
    { "ERROR_NO_MORE_ITEMS", "No more data is available." },
    { "ERROR_ABANDONED_WAIT_0", "The completion port was closed while the thread was waiting on it." },
    { "ERROR_OPERATION_ABORTED", "The I/O operation was aborted, because its thread exited or the application asked to cancel it (STATUS_CANCELLED in Win32)." },
    { "ERROR_IO_INCOMPLETE", "The overlapped I/O operation has not completed yet." },
    { "ERROR_IO_PENDING", "Overlapped I/O is in progress: exactly one completion will follow." },
    { "ERROR_NOT_FOUND", "Element not found (CancelIoEx: no such pending request)." },
    { "ERROR_CANCELLED", "The operation was cancelled by the user." },
    { "ERROR_CONNECTION_ABORTED", "The network connection was aborted by the local system." },
    { "ERROR_CONNECTION_REFUSED", "The remote computer refused the connection." },
    /* HRESULTs */
    { "S_OK", "Success." },
    { "E_ACCESSDENIED", "General access denied error (HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED))." },
    { "E_FAIL", "Unspecified failure." },
    { "E_OUTOFMEMORY", "Ran out of memory." },
    { "E_INVALIDARG", "One or more arguments are not valid." },
    { "E_POINTER", "A pointer that is not valid was used (NullReferenceException in .NET)." },
    { "E_NOTIMPL", "Not implemented." },
    { "E_NOINTERFACE", "No such interface supported." },
    { "E_HANDLE", "The handle is not valid." },
    { "E_UNEXPECTED", "Catastrophic failure." },
};

const char *tacio_err_message(const char *name)
{
    for (unsigned i = 0; i < sizeof messages / sizeof messages[0]; i++)
        if (strcmp(messages[i].name, name) == 0)
            return messages[i].message;
    return NULL;
}
