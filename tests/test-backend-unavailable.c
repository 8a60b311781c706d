/* test-backend-unavailable.c - where io_uring cannot run, port creation
 * fails with TACIO_NOT_SUPPORTED and a sentence naming the cause, instead of
 * a crash or a port that silently does nothing. io_uring is taken away with
 * a seccomp filter in the forked test child, the way container runtimes do. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "tacio-test.h"


static void expect_refused(int err, const char *words)
{
    tt_deny_io_uring(err);
    tacio_port_t *p = (tacio_port_t *)0x1;
    tacio_port_options_t o = {.backend = "io_uring"};
    ASSERT_EQ_STATUS(tacio_port_create_ex(&p, &o), TACIO_NOT_SUPPORTED);
    ASSERT_EQ_PTR(p, NULL);
    const char *why = tacio_last_error();
    tt_context("tacio_last_error() = \"%s\"", why);
    ASSERT_TRUE(strstr(why, "io_uring_setup") != NULL);
    ASSERT_TRUE(strstr(why, words) != NULL);
    /* Nothing half-made: a second attempt says the same, a NULL out is still rejected.
     * (With no backend named, the epoll fallback would take over: see
     * test-epoll-fallback.c.) */
    ASSERT_EQ_STATUS(tacio_port_create_ex(&p, &o), TACIO_NOT_SUPPORTED);
    ASSERT_EQ_STATUS(tacio_port_create(NULL, 1), TACIO_INVALID_PARAMETER);
}

TT_CASE(seccomp_eperm_names_the_filter)
{
    expect_refused(EPERM, "seccomp");
}

TT_CASE(seccomp_enosys_names_missing_io_uring)
{
    expect_refused(ENOSYS, "no io_uring");
}

TT_CASE(unknown_backend_is_named)
{
    tacio_port_t *p = NULL;
    tacio_port_options_t o = {.backend = "kqueue"};
    ASSERT_EQ_STATUS(tacio_port_create_ex(&p, &o), TACIO_NOT_SUPPORTED);
    ASSERT_TRUE(strstr(tacio_last_error(), "kqueue") != NULL);
    ASSERT_EQ_PTR(p, NULL);
}

TT_CASE(working_port_explains_its_backend)
{
    tacio_port_t *p = tt_port(0);
    tacio_port_info_t info;
    ASSERT_OK(tacio_port_info(p, &info));
    ASSERT_TRUE(strcmp(info.backend, tt_backend()) == 0);
    ASSERT_TRUE(info.why && strlen(info.why) > 0);
    ASSERT_TRUE(info.concurrency >= 1);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
}

TT_CASE(op_record_fits_80_bytes)
{
    ASSERT_LE_INT((int)sizeof(tacio_op_t), 64);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(seccomp_eperm_names_the_filter, 30),
    TT_ENTRY(seccomp_enosys_names_missing_io_uring, 30),
    TT_ENTRY(unknown_backend_is_named, 30),
    TT_ENTRY(working_port_explains_its_backend, 30),
    TT_ENTRY(op_record_fits_80_bytes, 30),
};
TT_MAIN()
