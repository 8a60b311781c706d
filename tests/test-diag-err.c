/* test-diag-err.c - tacio-err decodes every input the issue lists, in
 * every form (decimal, hex with and without 0x, negative, names, several
 * at once, --json) and says with its exit status whether anything matched. */
#include "tacio-test.h"
#include "diag/diag-test-util.h"

#ifndef TACIO_ERR_PATH
#error "TACIO_ERR_PATH: path of the tacio-err executable"
#endif

struct expect {
    const char *input;
    const char *want[4];   /* substrings the output must hold */
};

static const struct expect table[] = {
    { "0xC0000005",  { "NTSTATUS", "STATUS_ACCESS_VIOLATION", "TACIO_ACCESS_VIOLATION" } },
    { "0x80131506",  { "CLR", "COR_E_EXECUTIONENGINE", "FACILITY_URT" } },
    { "0xE0434F4D",  { "CLR", "EXCEPTION_COMPLUS", "managed" } },
    { "0xE0434352",  { "EXCEPTION_CLR" } },
    { "0x80000005",  { "STATUS_BUFFER_OVERFLOW", "TACIO_BUFFER_OVERFLOW", "severity 2 (warning)" } },
    { "0x103",       { "STATUS_PENDING", "ERROR_NO_MORE_ITEMS", "TACIO_PENDING" } },
    { "234",         { "Win32", "ERROR_MORE_DATA" } },
    { "995",         { "ERROR_OPERATION_ABORTED" } },
    { "1236",        { "ERROR_CONNECTION_ABORTED" } },
    { "0x80070005",  { "E_ACCESSDENIED", "ERROR_ACCESS_DENIED (5) via HRESULT_FROM_WIN32", "FACILITY_WIN32", "COR_E_UNAUTHORIZEDACCESS" } },
    { "-2147024891", { "0x80070005", "E_ACCESSDENIED", "ERROR_ACCESS_DENIED" } },
    { "ECANCELED",   { "errno", "ECANCELED (125)", "Operation canceled" } },
    { "125",         { "ECANCELED" } },
    { "SIGSEGV",     { "signal", "SIGSEGV (11)", "Segmentation fault" } },
    { "c0000005",    { "bare hex", "STATUS_ACCESS_VIOLATION" } },
    { "C0000120",    { "STATUS_CANCELLED", "TACIO_CANCELLED" } },
    { "-125",        { "ECANCELED (125) via -errno" } },
    { "COR_E_EXECUTIONENGINE", { "0x80131506", "COR_E_EXECUTIONENGINE" } },
    { "COR_E_NULLREFERENCE",   { "0x80004003", "E_POINTER" } },
    { "COR_E_OBJECTDISPOSED",  { "0x80131622" } },
    { "COR_E_INVALIDOPERATION", { "0x80131509" } },
    { "COR_E_OUTOFMEMORY",     { "0x8007000E", "E_OUTOFMEMORY" } },
    { "ENOENT",      { "ENOENT (2)", "ERROR_FILE_NOT_FOUND" } },
    { "STATUS_PENDING", { "0x00000103", "ERROR_NO_MORE_ITEMS" } },
    { "ERROR_IO_PENDING", { "997", "ERROR_IO_PENDING" } },
    { "TACIO_OP_IN_USE", { "0xE0FD0001", "tacio" } },
    { "segv",        { "SIGSEGV" } },
    { "0xD0000005",  { "HRESULT_FROM_NT", "STATUS_ACCESS_VIOLATION" } },
};

static void run_err(char *const *args, struct run_result *r)
{
    char *argv[16] = { TACIO_ERR_PATH };
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    run_prog(argv, NULL, 20000, r);
}

TT_CASE(every_listed_input_decodes)
{
    static struct run_result r;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        tt_context("tacio-err %s", table[i].input);
        char *args[] = { (char *)table[i].input, NULL };
        run_err(args, &r);
        if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
            TT_FAIL("tacio-err %s: exit %d, output:\n%s", table[i].input, WEXITSTATUS(r.status), r.out);
        for (size_t k = 0; k < 4 && table[i].want[k]; k++)
            if (!strstr(r.out, table[i].want[k]))
                TT_FAIL("tacio-err %s: output lacks \"%s\":\n%s", table[i].input, table[i].want[k], r.out);
    }
}

TT_CASE(several_at_once_and_exit_status)
{
    static struct run_result r;
    char *all_known[] = { "0xC0000005", "234", "SIGSEGV", NULL };
    run_err(all_known, &r);
    ASSERT_TRUE(WIFEXITED(r.status));
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 0);
    ASSERT_TRUE(strstr(r.out, "STATUS_ACCESS_VIOLATION") && strstr(r.out, "ERROR_MORE_DATA") &&
                strstr(r.out, "Segmentation fault"));

    char *one_unknown[] = { "0xC0000005", "NO_SUCH_NAME_ANYWHERE", NULL };
    run_err(one_unknown, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 1);
    ASSERT_TRUE(strstr(r.out, "STATUS_ACCESS_VIOLATION") != NULL);
    ASSERT_TRUE(strstr(r.out, "NO_SUCH_NAME_ANYWHERE: no such name") != NULL);

    char *nothing_fits[] = { "0x7FFF1234", NULL };
    run_err(nothing_fits, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 1);

    char *no_args[] = { NULL };
    run_err(no_args, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 2);
    char *bad_opt[] = { "--frobnicate", "1", NULL };
    run_err(bad_opt, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 2);
}

TT_CASE(json_output)
{
    static struct run_result r;
    char *args[] = { "--json", "0x80070005", "ECANCELED", NULL };
    run_err(args, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 0);
    ASSERT_TRUE(r.out[0] == '[');
    ASSERT_TRUE(strstr(r.out, "\"input\":\"0x80070005\"") != NULL);
    ASSERT_TRUE(strstr(r.out, "\"name\":\"E_ACCESSDENIED\"") != NULL);
    ASSERT_TRUE(strstr(r.out, "\"via\":\"HRESULT_FROM_WIN32\"") != NULL);
    ASSERT_TRUE(strstr(r.out, "\"facility_name\":\"FACILITY_WIN32\"") != NULL);
    ASSERT_TRUE(strstr(r.out, "\"table\":\"errno\",\"name\":\"ECANCELED\",\"value\":125") != NULL);
    /* It is JSON: python3, if there, must load it. */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[256], out[256];
        snprintf(cmd, sizeof cmd, "%s --json 0xC0000005 SIGSEGV | /usr/bin/python3 -c "
                 "'import json,sys; d=json.load(sys.stdin); print(len(d))'", TACIO_ERR_PATH);
        ASSERT_EQ_INT(run_shell(cmd, out, sizeof out), 0);
        ASSERT_EQ_INT(atoi(out), 2);
    }
}

TT_CASE(tables_are_generated_not_typed)
{
    /* Thousands of names from the mingw-w64 headers, not a hand list:
     * codes the tests never name must decode too. */
    static struct run_result r;
    char *args[] = { "STATUS_DEVICE_DOOR_OPEN", "ERROR_DS_NAME_ERROR_NOT_FOUND", "WSAECONNRESET",
                     "E_NOTIMPL", NULL };
    run_err(args, &r);
    ASSERT_EQ_INT(WEXITSTATUS(r.status), 0);
    ASSERT_TRUE(strstr(r.out, "0x80000289") != NULL);  /* STATUS_DEVICE_DOOR_OPEN */
    ASSERT_TRUE(strstr(r.out, "8470") != NULL);        /* ERROR_DS_NAME_ERROR_NOT_FOUND */
    ASSERT_TRUE(strstr(r.out, "10054") != NULL);       /* WSAECONNRESET */
    ASSERT_TRUE(strstr(r.out, "0x80004001") != NULL);  /* E_NOTIMPL */
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(every_listed_input_decodes, 60),
    TT_ENTRY(several_at_once_and_exit_status, 30),
    TT_ENTRY(json_output, 30),
    TT_ENTRY(tables_are_generated_not_typed, 30),
};
TT_MAIN()
