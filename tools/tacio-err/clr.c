/* clr.c - the CLR's HRESULTs and exception codes, written by hand.
 *
 * mingw-w64's headers do not carry the CLR's codes, and the runtime's own
 * corerror.h is not something tacio compiles in; the values below are facts
 * (numbers a crashed .NET process reports), each with where it was read:
 *   [H] dotnet/coreclr src/System.Private.CoreLib/shared/System/HResults.cs
 *       (the HResult every managed exception type carries);
 *   [X] the SEH exception codes the CLR raises for a managed exception, as
 *       printed in Windows Error Reporting and the Application event log
 *       ("Exception code: 0xe0434352") and documented in the .NET
 *       debugging guides (SOS "!pe", "sxe clr"). The code spells ASCII:
 *       0xE0 'C' 'O' 'M' and 0xE0 'C' 'C' 'R'.
 * Several COR_E_* names are aliases of a COM HRESULT (COR_E_NULLREFERENCE
 * is E_POINTER); tacio-err prints both, from both tables. */
#include "err-tables.h"

#include <stddef.h>

const struct clr_entry tacio_err_clr[] = {
    /* [X] managed exception raised by .NET Framework 1.0-3.5 ("COM+"). */
    { 0xE0434F4Du, "EXCEPTION_COMPLUS", "A managed (.NET Framework 1.x-3.5 CLR) exception was raised and not handled." },
    /* [X] managed exception raised by CLR 4 and .NET Core ("CCR"). */
    { 0xE0434352u, "EXCEPTION_CLR", "A managed (CLR 4 / .NET Core) exception was raised; the exception object says which." },
    /* [X] the MSVC C++ throw code ("msc"), often seen next to the CLR's. */
    { 0xE06D7363u, "EXCEPTION_MSVC_CPP", "A C++ exception was thrown (MSVC runtime)." },
    /* [H] ExecutionEngineException: the runtime's own state is corrupt
     * (the seed case's crash inside the completion callback). */
    { 0x80131506u, "COR_E_EXECUTIONENGINE", "Internal error in the runtime (ExecutionEngineException): its state is corrupt, often after memory was freed under it." },
    /* [H] NullReferenceException (== E_POINTER). */
    { 0x80004003u, "COR_E_NULLREFERENCE", "Object reference not set to an instance of an object (NullReferenceException)." },
    /* [H] ObjectDisposedException. */
    { 0x80131622u, "COR_E_OBJECTDISPOSED", "The object was used after it was disposed (ObjectDisposedException)." },
    /* [H] InvalidOperationException. */
    { 0x80131509u, "COR_E_INVALIDOPERATION", "The operation is not valid in the object's current state (InvalidOperationException)." },
    /* [H] OutOfMemoryException (== E_OUTOFMEMORY). */
    { 0x8007000Eu, "COR_E_OUTOFMEMORY", "There was not enough memory (OutOfMemoryException)." },
    /* [H] the rest: common in .NET crash reports. */
    { 0x80131500u, "COR_E_EXCEPTION", "Base System.Exception." },
    { 0x80131501u, "COR_E_SYSTEM", "System.SystemException." },
    { 0x80070057u, "COR_E_ARGUMENT", "An argument is not valid (ArgumentException, == E_INVALIDARG)." },
    { 0x80131502u, "COR_E_ARGUMENTOUTOFRANGE", "An argument is outside its allowed range (ArgumentOutOfRangeException)." },
    { 0x80131505u, "COR_E_TIMEOUT", "The operation timed out (TimeoutException)." },
    { 0x80131508u, "COR_E_INDEXOUTOFRANGE", "An index is outside the bounds of the array (IndexOutOfRangeException)." },
    { 0x80004002u, "COR_E_INVALIDCAST", "Invalid cast (InvalidCastException, == E_NOINTERFACE)." },
    { 0x80131515u, "COR_E_NOTSUPPORTED", "The operation is not supported (NotSupportedException)." },
    { 0x8013153Bu, "COR_E_OPERATIONCANCELED", "The operation was cancelled (OperationCanceledException)." },
    { 0x80131620u, "COR_E_IO", "An I/O error occurred (IOException)." },
    { 0x800703E9u, "COR_E_STACKOVERFLOW", "The stack overflowed (StackOverflowException, == HRESULT_FROM_WIN32(ERROR_STACK_OVERFLOW))." },
    { 0x80131530u, "COR_E_THREADABORTED", "The thread was aborted (ThreadAbortException)." },
    { 0x80070005u, "COR_E_UNAUTHORIZEDACCESS", "Access is denied (UnauthorizedAccessException, == E_ACCESSDENIED)." },
    { 0x80131623u, "COR_E_SAFEHANDLEMISSINGATTRIBUTE", NULL },
    { 0x80131577u, "COR_E_KEYNOTFOUND", "The key was not present in the dictionary (KeyNotFoundException)." },
    { 0x80131537u, "COR_E_FORMAT", "The input string was not in a correct format (FormatException)." },
};
const unsigned tacio_err_clr_count = sizeof tacio_err_clr / sizeof tacio_err_clr[0];
