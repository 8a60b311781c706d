/* test-status.c - names, messages, severity and errno mapping of statuses.
 *
 * Standalone: exits 0 when every check passes, 1 otherwise, printing one
 * "FAIL: ..." line with both values per failed check.
 */
#include <tacio/status.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int failures;

/* Macros rather than functions so a failure names the expression and line. */
#define ASSERT_EQ_U32(got, want, what)                                          \
    do {                                                                        \
        uint32_t got_ = (uint32_t)(got), want_ = (uint32_t)(want);              \
        if (got_ != want_) {                                                    \
            printf("FAIL: %s:%d: %s: %s = 0x%08X, expected 0x%08X\n", __FILE__, \
                   __LINE__, (what), #got, (unsigned)got_, (unsigned)want_);    \
            failures++;                                                         \
        }                                                                       \
    } while (0)

#define ASSERT_EQ_STR(got, want, what)                                          \
    do {                                                                        \
        const char *got_ = (got), *want_ = (want);                              \
        if (!got_ || !want_ || strcmp(got_, want_) != 0) {                      \
            printf("FAIL: %s:%d: %s: %s = \"%s\", expected \"%s\"\n", __FILE__, \
                   __LINE__, (what), #got, got_ ? got_ : "(null)",              \
                   want_ ? want_ : "(null)");                                   \
            failures++;                                                         \
        }                                                                       \
    } while (0)

struct known_status {
    tacio_status_t value;
    const char *name;
    unsigned severity;
    int errno_back;     /* what tacio_status_to_errno() must give */
};

#define K(s, sev, e) { (s), #s, (sev), (e) }

/* Every status macro in tacio/status.h. */
static const struct known_status known[] = {
    K(TACIO_SUCCESS, 0, 0),
    K(TACIO_ABANDONED, 0, ECANCELED),
    K(TACIO_TIMEOUT, 0, ETIMEDOUT),
    K(TACIO_PENDING, 0, 0),
    K(TACIO_BUFFER_OVERFLOW, 2, EMSGSIZE),
    K(TACIO_NO_MORE_ENTRIES, 2, ENODATA),
    K(TACIO_UNSUCCESSFUL, 3, EIO),
    K(TACIO_NOT_IMPLEMENTED, 3, ENOSYS),
    K(TACIO_ACCESS_VIOLATION, 3, EFAULT),
    K(TACIO_INVALID_HANDLE, 3, EBADF),
    K(TACIO_INVALID_PARAMETER, 3, EINVAL),
    K(TACIO_INVALID_DEVICE_REQUEST, 3, EINVAL),
    K(TACIO_END_OF_FILE, 3, ENODATA),
    K(TACIO_NO_MEMORY, 3, ENOMEM),
    K(TACIO_ACCESS_DENIED, 3, EACCES),
    K(TACIO_BUFFER_TOO_SMALL, 3, ERANGE),
    K(TACIO_OBJECT_TYPE_MISMATCH, 3, ENOTSOCK),
    K(TACIO_OBJECT_NAME_NOT_FOUND, 3, ENOENT),
    K(TACIO_OBJECT_NAME_COLLISION, 3, EEXIST),
    K(TACIO_PORT_DISCONNECTED, 3, EPIPE),
    K(TACIO_PRIVILEGE_NOT_HELD, 3, EPERM),
    K(TACIO_DISK_FULL, 3, ENOSPC),
    K(TACIO_INSUFFICIENT_RESOURCES, 3, ENOBUFS),
    K(TACIO_DEVICE_NOT_READY, 3, EAGAIN),
    K(TACIO_IO_TIMEOUT, 3, ETIMEDOUT),
    K(TACIO_FILE_IS_A_DIRECTORY, 3, EISDIR),
    K(TACIO_NOT_SUPPORTED, 3, EOPNOTSUPP),
    K(TACIO_NOT_A_DIRECTORY, 3, ENOTDIR),
    K(TACIO_TOO_MANY_OPENED_FILES, 3, EMFILE),
    K(TACIO_CANCELLED, 3, ECANCELED),
    K(TACIO_FILE_CLOSED, 3, EBADF),
    K(TACIO_INVALID_CONNECTION, 3, ENOTCONN),
    K(TACIO_INVALID_ADDRESS, 3, EINVAL),
    K(TACIO_PIPE_BROKEN, 3, EPIPE),
    K(TACIO_IO_DEVICE_ERROR, 3, EIO),
    K(TACIO_INVALID_BUFFER_SIZE, 3, EMSGSIZE),
    K(TACIO_INVALID_ADDRESS_COMPONENT, 3, EADDRNOTAVAIL),
    K(TACIO_ADDRESS_ALREADY_EXISTS, 3, EADDRINUSE),
    K(TACIO_CONNECTION_RESET, 3, ECONNRESET),
    K(TACIO_CONNECTION_ACTIVE, 3, EISCONN),
    K(TACIO_NETWORK_UNREACHABLE, 3, ENETUNREACH),
    K(TACIO_HOST_UNREACHABLE, 3, EHOSTUNREACH),
    K(TACIO_CONNECTION_REFUSED, 3, ECONNREFUSED),
    K(TACIO_CONNECTION_ABORTED, 3, ECONNABORTED),
    K(TACIO_NOT_FOUND, 3, ENOENT),
    K(TACIO_FILE_TOO_LARGE, 3, EFBIG),
    K(TACIO_OP_IN_USE, 3, EBUSY),
    K(TACIO_BACKEND_UNAVAILABLE, 3, ENOSYS),
};

#define N_KNOWN (sizeof known / sizeof known[0])

struct mapped_errno {
    int e;
    tacio_status_t status;
    int back;           /* canonical errno of that status */
};

/* Every errno tacio_status_from_errno() maps to a Windows status. */
static const struct mapped_errno mapped[] = {
    { ECANCELED, TACIO_CANCELLED, ECANCELED },
    { EINVAL, TACIO_INVALID_PARAMETER, EINVAL },
    { EBADF, TACIO_INVALID_HANDLE, EBADF },
    { EFAULT, TACIO_ACCESS_VIOLATION, EFAULT },
    { ENOSYS, TACIO_NOT_IMPLEMENTED, ENOSYS },
    { EOPNOTSUPP, TACIO_NOT_SUPPORTED, EOPNOTSUPP },
    { ENOTSUP, TACIO_NOT_SUPPORTED, EOPNOTSUPP },
    { EAGAIN, TACIO_DEVICE_NOT_READY, EAGAIN },
    { EWOULDBLOCK, TACIO_DEVICE_NOT_READY, EAGAIN },
    { ETIMEDOUT, TACIO_IO_TIMEOUT, ETIMEDOUT },
    { ETIME, TACIO_IO_TIMEOUT, ETIMEDOUT },
    { ENOMEM, TACIO_NO_MEMORY, ENOMEM },
    { ENOBUFS, TACIO_INSUFFICIENT_RESOURCES, ENOBUFS },
    { EMFILE, TACIO_TOO_MANY_OPENED_FILES, EMFILE },
    { ENFILE, TACIO_TOO_MANY_OPENED_FILES, EMFILE },
    { ENOENT, TACIO_OBJECT_NAME_NOT_FOUND, ENOENT },
    { EEXIST, TACIO_OBJECT_NAME_COLLISION, EEXIST },
    { EACCES, TACIO_ACCESS_DENIED, EACCES },
    { EPERM, TACIO_PRIVILEGE_NOT_HELD, EPERM },
    { ENOSPC, TACIO_DISK_FULL, ENOSPC },
    { EDQUOT, TACIO_DISK_FULL, ENOSPC },
    { EFBIG, TACIO_FILE_TOO_LARGE, EFBIG },
    { EISDIR, TACIO_FILE_IS_A_DIRECTORY, EISDIR },
    { ENOTDIR, TACIO_NOT_A_DIRECTORY, ENOTDIR },
    { EIO, TACIO_IO_DEVICE_ERROR, EIO },
    { EPIPE, TACIO_PIPE_BROKEN, EPIPE },
    { ENOTSOCK, TACIO_OBJECT_TYPE_MISMATCH, ENOTSOCK },
    { ECONNRESET, TACIO_CONNECTION_RESET, ECONNRESET },
    { ECONNREFUSED, TACIO_CONNECTION_REFUSED, ECONNREFUSED },
    { ECONNABORTED, TACIO_CONNECTION_ABORTED, ECONNABORTED },
    { ENOTCONN, TACIO_INVALID_CONNECTION, ENOTCONN },
    { EISCONN, TACIO_CONNECTION_ACTIVE, EISCONN },
    { EADDRINUSE, TACIO_ADDRESS_ALREADY_EXISTS, EADDRINUSE },
    { EADDRNOTAVAIL, TACIO_INVALID_ADDRESS_COMPONENT, EADDRNOTAVAIL },
    { ENETUNREACH, TACIO_NETWORK_UNREACHABLE, ENETUNREACH },
    { ENETDOWN, TACIO_NETWORK_UNREACHABLE, ENETUNREACH },
    { EHOSTUNREACH, TACIO_HOST_UNREACHABLE, EHOSTUNREACH },
    { EHOSTDOWN, TACIO_HOST_UNREACHABLE, EHOSTUNREACH },
    { EMSGSIZE, TACIO_INVALID_BUFFER_SIZE, EMSGSIZE },
};

/* errnos with no equivalent: carried as TACIO_FROM_ERRNO(e). */
static const int carried[] = {
    ESPIPE, EAFNOSUPPORT, EPROTONOSUPPORT, EDESTADDRREQ, EALREADY, EINPROGRESS,
    EINTR, ENXIO, ENODEV, ELOOP, ENAMETOOLONG, EROFS, EXDEV, EBUSY, ENODATA,
    EOVERFLOW, ERANGE, ENOTEMPTY, ESRCH, EPROTO, ENOPROTOOPT, ESHUTDOWN,
    ENOTTY, E2BIG, ETXTBSY, EMLINK, EDEADLK, ECHILD, EPROTOTYPE, ESOCKTNOSUPPORT,
};

static void test_names_and_messages(void)
{
    for (size_t i = 0; i < N_KNOWN; i++) {
        const char *name = tacio_status_name(known[i].value);
        const char *msg = tacio_status_message(known[i].value);
        ASSERT_EQ_STR(name, known[i].name, "name of a status macro");
        if (!msg || msg[0] == '\0') {
            printf("FAIL: %s: empty message\n", known[i].name);
            failures++;
        }
        for (size_t j = 0; j < i; j++) {
            if (known[i].value == known[j].value)
                printf("FAIL: %s and %s share 0x%08X\n", known[i].name,
                       known[j].name, (unsigned)known[i].value), failures++;
            if (strcmp(name, tacio_status_name(known[j].value)) == 0)
                printf("FAIL: 0x%08X and 0x%08X share the name %s\n",
                       (unsigned)known[i].value, (unsigned)known[j].value,
                       name), failures++;
        }
    }
    ASSERT_EQ_STR(tacio_status_message(TACIO_PENDING),
                  "The operation was started and exactly one completion will follow.",
                  "PENDING message");
}

static void test_severity(void)
{
    for (size_t i = 0; i < N_KNOWN; i++) {
        tacio_status_t s = known[i].value;
        unsigned sev = known[i].severity;
        ASSERT_EQ_U32(tacio_status_severity(s), sev, known[i].name);
        ASSERT_EQ_U32(tacio_success(s), sev <= 1, known[i].name);
        ASSERT_EQ_U32(tacio_warning(s), sev == 2, known[i].name);
        ASSERT_EQ_U32(tacio_error(s), sev == 3, known[i].name);
    }
    /* No macro is informational; a synthetic one still counts as success. */
    ASSERT_EQ_U32(tacio_status_severity(0x40000001u), 1, "informational");
    ASSERT_EQ_U32(tacio_success(0x40000001u), 1, "informational");
    ASSERT_EQ_U32(tacio_warning(0x40000001u), 0, "informational");
    ASSERT_EQ_U32(tacio_error(0x40000001u), 0, "informational");
    ASSERT_EQ_U32(tacio_error(TACIO_FROM_ERRNO(ESPIPE)), 1, "FROM_ERRNO is an error");
}

static void test_to_errno_known(void)
{
    for (size_t i = 0; i < N_KNOWN; i++)
        ASSERT_EQ_U32(tacio_status_to_errno(known[i].value), known[i].errno_back,
                      known[i].name);
}

static void test_mapped_round_trip(void)
{
    ASSERT_EQ_U32(tacio_status_from_errno(0), TACIO_SUCCESS, "errno 0");
    for (size_t i = 0; i < sizeof mapped / sizeof mapped[0]; i++) {
        const struct mapped_errno *m = &mapped[i];
        const char *en = strerrorname_np(m->e);
        ASSERT_EQ_U32(tacio_status_from_errno(m->e), m->status, en);
        ASSERT_EQ_U32(tacio_status_from_errno(-m->e), m->status, en);
        ASSERT_EQ_U32(tacio_status_to_errno(m->status), m->back, en);
        ASSERT_EQ_U32(tacio_status_from_errno(m->back), m->status, en);
    }
}

static void test_carried_round_trip(void)
{
    char want[64];
    for (size_t i = 0; i < sizeof carried / sizeof carried[0]; i++) {
        int e = carried[i];
        const char *en = strerrorname_np(e);
        tacio_status_t s = tacio_status_from_errno(e);
        ASSERT_EQ_U32(s, TACIO_FROM_ERRNO(e), en);
        ASSERT_EQ_U32(tacio_status_from_errno(-e), TACIO_FROM_ERRNO(e), en);
        ASSERT_EQ_U32(tacio_status_to_errno(s), e, en);
        snprintf(want, sizeof want, "TACIO_FROM_ERRNO(%s)", en);
        ASSERT_EQ_STR(tacio_status_name(s), want, en);
        ASSERT_EQ_STR(tacio_status_message(s), strerrordesc_np(e), en);
    }
}

/* Every errno the kernel can return (1..4095): an error status comes out,
 * and going back to errno and in again lands on the same status; a carried
 * errno comes back exactly. */
static void test_errno_sweep(void)
{
    for (int e = 1; e < 4096; e++) {
        tacio_status_t s = tacio_status_from_errno(e);
        int back = tacio_status_to_errno(s);
        if (!tacio_error(s))
            printf("FAIL: errno %d -> 0x%08X is not an error\n", e, (unsigned)s), failures++;
        if (s == TACIO_FROM_ERRNO(e))
            ASSERT_EQ_U32(back, e, "carried errno comes back exactly");
        else
            ASSERT_EQ_U32(tacio_status_from_errno(back), s, "mapped errno is stable");
    }
}

static void test_edges(void)
{
    ASSERT_EQ_U32(tacio_status_from_errno(INT_MIN), TACIO_UNSUCCESSFUL, "INT_MIN");
    ASSERT_EQ_U32(tacio_status_from_errno(0x10000), TACIO_UNSUCCESSFUL, "too large");
    ASSERT_EQ_U32(tacio_status_from_errno(-0x10000), TACIO_UNSUCCESSFUL, "too large");
    ASSERT_EQ_U32(tacio_status_from_errno(5000), TACIO_FROM_ERRNO(5000), "unnamed errno");
    ASSERT_EQ_STR(tacio_status_name(TACIO_FROM_ERRNO(5000)), "TACIO_FROM_ERRNO(5000)",
                  "unnamed errno");
    ASSERT_EQ_STR(tacio_status_message(TACIO_FROM_ERRNO(5000)), "Unknown errno 5000.",
                  "unnamed errno");
    ASSERT_EQ_U32(tacio_status_to_errno(TACIO_FROM_ERRNO(5000)), 5000, "unnamed errno");
    /* Never produced; must not read as success. */
    ASSERT_EQ_U32(tacio_status_to_errno(TACIO_FROM_ERRNO(0)), EIO, "FROM_ERRNO(0)");
}

static void test_unknown(void)
{
    ASSERT_EQ_STR(tacio_status_name(0xC0DE0001u), "TACIO_STATUS_0xC0DE0001", "unknown name");
    ASSERT_EQ_STR(tacio_status_message(0xC0DE0001u), "Unknown status 0xC0DE0001.",
                  "unknown message");
    ASSERT_EQ_STR(tacio_status_name(0x00001234u), "TACIO_STATUS_0x00001234", "unknown name");
    ASSERT_EQ_U32(tacio_status_to_errno(0xC0DE0001u), EIO, "unknown error");
    ASSERT_EQ_U32(tacio_status_to_errno(0x80001234u), EIO, "unknown warning");
    ASSERT_EQ_U32(tacio_status_to_errno(0x00001234u), 0, "unknown success");
    ASSERT_EQ_U32(tacio_status_to_errno(0x40000001u), 0, "unknown informational");

    /* Name and message in one printf: the two buffers must not be shared. */
    const char *n = tacio_status_name(0xC0DE0002u);
    const char *m = tacio_status_message(0xC0DE0003u);
    ASSERT_EQ_STR(n, "TACIO_STATUS_0xC0DE0002", "name survives a message call");
    ASSERT_EQ_STR(m, "Unknown status 0xC0DE0003.", "message");
}

/* Two threads format different unknown statuses in lockstep; each must
 * still read its own text after the other has written. */
#define THREAD_ROUNDS 2000

struct thread_arg {
    pthread_barrier_t *barrier;
    uint32_t base;
    int failures;
    const char *last_name;
};

static void *format_thread(void *p)
{
    struct thread_arg *a = p;
    char want_name[64], want_msg[64];
    for (uint32_t i = 0; i < THREAD_ROUNDS; i++) {
        tacio_status_t s = a->base | i;
        const char *n = tacio_status_name(s);
        const char *m = tacio_status_message(s);
        pthread_barrier_wait(a->barrier);   /* both have written */
        snprintf(want_name, sizeof want_name, "TACIO_STATUS_0x%08X", (unsigned)s);
        snprintf(want_msg, sizeof want_msg, "Unknown status 0x%08X.", (unsigned)s);
        if (strcmp(n, want_name) != 0 || strcmp(m, want_msg) != 0) {
            if (a->failures++ == 0)
                printf("FAIL: thread 0x%08X round %u: got \"%s\" / \"%s\", expected \"%s\" / \"%s\"\n",
                       (unsigned)a->base, (unsigned)i, n, m, want_name, want_msg);
        }
        a->last_name = n;
        pthread_barrier_wait(a->barrier);   /* both have checked */
    }
    return NULL;
}

static void test_thread_local(void)
{
    pthread_barrier_t barrier;
    struct thread_arg a[2] = {
        { &barrier, 0xC0A00000u, 0, NULL },
        { &barrier, 0xC0B00000u, 0, NULL },
    };
    pthread_t t[2];
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, format_thread, &a[i]) != 0) {
            printf("FAIL: pthread_create\n");
            failures++;
            return;
        }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    failures += a[0].failures + a[1].failures;
    if (a[0].last_name == a[1].last_name)
        printf("FAIL: both threads got the buffer %p\n", (void *)a[0].last_name), failures++;
}

int main(void)
{
    test_names_and_messages();
    test_severity();
    test_to_errno_known();
    test_mapped_round_trip();
    test_carried_round_trip();
    test_errno_sweep();
    test_edges();
    test_unknown();
    test_thread_local();
    if (failures) {
        printf("test-status: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test-status: ok\n");
    return 0;
}
