/* test-diag-capture.c - first-chance capture: dumps of a running process.
 *
 * The status trigger is driven by calling the core's hook,
 * tacio__capture_status(), from a known function (trigger_site), as the
 * delivery path will once it is wired; each dump is then opened with
 * `gdb -batch -ex bt` and must show trigger_site on the triggering
 * thread's stack. Also: exactly `count` dumps however many threads race,
 * the process goes on, each dump is named in a fault record, the verifier
 * trigger, tacio_capture_now, bad specs, and an unwritable dump directory.
 */
#include "tacio-test.h"
#include "diag/diag-test-util.h"

#include <elf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <tacio/diag.h>

#include "diag/capture.h"

static char g_dir[4096], g_log[4200];

static void setup(void)
{
    make_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_log, sizeof g_log, "%s/faults.jsonl", g_dir);
    tacio_diag_options_t o = { .fault_log = g_log, .flags = TACIO_DIAG_NO_JOURNAL };
    ASSERT_OK(tacio_diag_install(&o));
}

static void configure(const char *fmt)
{
    char spec[4600];
    snprintf(spec, sizeof spec, fmt, g_dir);
    ASSERT_OK(tacio_capture_configure(spec));
}

__attribute__((noinline)) static void trigger_site(uint32_t status, uint64_t key)
{
    static tacio_op_t op;
    tacio__capture_status(status, &op, key);
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call */
}

static void gdb_bt(const char *core, const char *must1, const char *must2)
{
    char cmd[8400], out[65536];
    snprintf(cmd, sizeof cmd, "gdb -nx -batch -ex bt /proc/%d/exe '%s' 2>&1", (int)getpid(), core);
    run_shell(cmd, out, sizeof out);
    if (!strstr(out, "#0  ") || !strstr(out, must1) || (must2 && !strstr(out, must2)))
        TT_FAIL("gdb bt of %s lacks %s / %s:\n%s", core, must1, must2 ? must2 : "", out);
}

static void expect_core_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        TT_FAIL("dump %s: %s", path, strerror(errno));
    Elf64_Ehdr eh;
    ASSERT_EQ_INT(read(fd, &eh, sizeof eh), sizeof eh);
    close(fd);
    ASSERT_TRUE(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0);
    ASSERT_EQ_INT(eh.e_type, ET_CORE);
}

TT_CASE(status_trigger_writes_exactly_count_dumps)
{
#if !defined(__x86_64__)
    TT_SKIP("no core writer for this architecture");
#endif
    setup();
    configure("on=status:CANCELLED,status:BUFFER_OVERFLOW;count=3;dir=%s");
    ASSERT_EQ_INT(atomic_load(&tacio__capture_armed), 1);
    for (int i = 0; i < 2; i++)
        trigger_site(TACIO_SUCCESS, 100 + (uint64_t)i); /* not a trigger */
    ASSERT_EQ_INT(tacio_capture_count(), 0);
    for (int i = 0; i < 5; i++)
        trigger_site(i == 1 ? TACIO_BUFFER_OVERFLOW : TACIO_CANCELLED, (uint64_t)i);
    /* The process went on through all of it, and stopped at count. */
    ASSERT_EQ_INT(tacio_capture_count(), 3);
    ASSERT_EQ_INT(count_files(g_dir, "core.tacio."), 3);
    ASSERT_EQ_INT(atomic_load(&tacio__capture_armed), 0);

    /* One record per dump, naming it and the status. */
    char *log = read_file(g_log);
    ASSERT_TRUE(log != NULL);
    ASSERT_EQ_INT(count_lines(log), 3);
    char first[4400];
    snprintf(first, sizeof first, "\"dump\":\"%s/core.tacio.%d.1\"", g_dir, (int)getpid());
    if (!strstr(log, first))
        TT_FAIL("log does not name %s:\n%s", first, log);
    ASSERT_TRUE(strstr(log, "\"kind\":\"capture\"") != NULL);
    ASSERT_TRUE(strstr(log, "\"check\":\"status:TACIO_CANCELLED\"") != NULL);
    ASSERT_TRUE(strstr(log, "\"check\":\"status:TACIO_BUFFER_OVERFLOW\"") != NULL);
    ASSERT_TRUE(strstr(log, "\"exception_code\":\"0xc0000120\"") != NULL);
    ASSERT_TRUE(strstr(log, "\"key\":0") != NULL);
    ASSERT_TRUE(strstr(log, "!trigger_site+0x") != NULL);
    free(log);

    char core[4400];
    for (int n = 1; n <= 3; n++) {
        snprintf(core, sizeof core, "%s/core.tacio.%d.%d", g_dir, (int)getpid(), n);
        expect_core_file(core);
    }
    snprintf(core, sizeof core, "%s/core.tacio.%d.1", g_dir, (int)getpid());
    gdb_bt(core, "trigger_site", "tacio__capture_status");
    rm_rf(g_dir);
}

/* End to end: cancelled receives delivered by a real dequeue trigger the
 * capture through the core's hook; count stops it, the program goes on. */
__attribute__((noinline)) static unsigned dequeue_site(tacio_port_t *p, tacio_entry_t *e)
{
    unsigned n = 0;
    ASSERT_OK(tacio_port_dequeue(p, e, 1, &n, 5000));
    __asm__ volatile("" ::: "memory");
    return n;
}

TT_CASE(delivered_status_triggers_dump_through_the_core)
{
#if !defined(__x86_64__)
    TT_SKIP("no core writer for this architecture");
#endif
    setup();
    configure("on=status:CANCELLED;count=2;dir=%s");
    tacio_port_t *p = tt_port(1);
    int a, b;
    tt_udp_pair(&a, &b);
    tacio_handle_t *h = tt_handle(p, a, 77, 0);
    tacio_op_t op[3];
    char buf[3][16];
    for (int i = 0; i < 3; i++) {
        tacio_op_init(&op[i]);
        ASSERT_EQ_STATUS(tacio_recv(h, &op[i], buf[i], sizeof buf[i]), TACIO_PENDING);
    }
    ASSERT_OK(tacio_cancel_handle(h));
    for (int i = 0; i < 3; i++) {
        tacio_entry_t e;
        ASSERT_EQ_INT(dequeue_site(p, &e), 1);
        ASSERT_EQ_STATUS(e.status, TACIO_CANCELLED);
    }
    ASSERT_EQ_INT(tacio_capture_count(), 2);
    ASSERT_EQ_INT(count_files(g_dir, "core.tacio."), 2);
    char *log = read_file(g_log);
    ASSERT_TRUE(log != NULL);
    ASSERT_TRUE(strstr(log, "\"check\":\"status:TACIO_CANCELLED\"") != NULL);
    ASSERT_TRUE(strstr(log, "\"key\":77") != NULL);
    free(log);
    char core[4400];
    snprintf(core, sizeof core, "%s/core.tacio.%d.1", g_dir, (int)getpid());
    gdb_bt(core, "dequeue_site", "tacio_port_dequeue");
    ASSERT_OK(tacio_handle_close(h));
    tt_close(b);
    ASSERT_OK(tacio_port_close(p, NULL, NULL));
    rm_rf(g_dir);
}

static _Atomic int g_go;

static void *racer(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_go))
        ;
    for (int i = 0; i < 10; i++)
        trigger_site(TACIO_CANCELLED, 7);
    return NULL;
}

TT_CASE(racing_threads_get_exactly_count_dumps)
{
#if !defined(__x86_64__)
    TT_SKIP("no core writer for this architecture");
#endif
    setup();
    configure("on=status:CANCELLED;count=3;dir=%s");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, racer, NULL), 0);
    atomic_store(&g_go, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ_INT(tacio_capture_count(), 3);
    ASSERT_EQ_INT(count_files(g_dir, "core.tacio."), 3);
    char *log = read_file(g_log);
    ASSERT_EQ_INT(count_lines(log), 3);
    free(log);
    rm_rf(g_dir);
}

TT_CASE(verifier_trigger_and_capture_now)
{
#if !defined(__x86_64__)
    TT_SKIP("no core writer for this architecture");
#endif
    setup();
    configure("on=verifier;count=1;dir=%s");
    ASSERT_EQ_INT(atomic_load(&tacio__capture_armed), 0); /* no status trigger */
    char path[4400];
    ASSERT_EQ_INT(tacio__capture_verifier("double_delivery", path, sizeof path), 1);
    expect_core_file(path);
    ASSERT_EQ_INT(tacio__capture_verifier("double_delivery", path, sizeof path), 0); /* count */

    /* The API dump: whatever the count, named in a record. */
    ASSERT_OK(tacio_capture_now("test asked", path, sizeof path));
    expect_core_file(path);
    gdb_bt(path, "verifier_trigger_and_capture_now", NULL);
    char *log = read_file(g_log);
    ASSERT_TRUE(log && strstr(log, "\"check\":\"api\"") && strstr(log, "requested: test asked"));
    free(log);
    rm_rf(g_dir);
}

TT_CASE(bad_specs_are_rejected_and_keep_the_old_one)
{
    setup();
    configure("on=status:CANCELLED;count=2;dir=%s");
    static const char *const bad[] = {
        "on=status:NO_SUCH_STATUS", "on=bogus", "count=abc", "count", "colour=red",
        "on=status:CANCELLED;dir=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_context("spec %s", bad[i]);
        ASSERT_EQ_STATUS(tacio_capture_configure(bad[i]), TACIO_INVALID_PARAMETER);
        ASSERT_TRUE(tacio_last_error()[0] != 0);
    }
    tt_context("%s", "");
    ASSERT_EQ_INT(atomic_load(&tacio__capture_armed), 1);
    /* Names with and without prefixes, and numbers. */
    ASSERT_OK(tacio_capture_configure("on=status:TACIO_CANCELLED,status:STATUS_BUFFER_OVERFLOW,status:0xC0000120"));
    ASSERT_OK(tacio_capture_configure("off"));
    ASSERT_EQ_INT(atomic_load(&tacio__capture_armed), 0);
    ASSERT_OK(tacio_capture_configure(NULL));
    rm_rf(g_dir);
}

TT_CASE(unwritable_dump_dir_is_reported_not_fatal)
{
    setup();
    ASSERT_OK(tacio_capture_configure("on=status:CANCELLED;count=1;dir=/proc/self/tacio-none"));
    trigger_site(TACIO_CANCELLED, 1);
    ASSERT_EQ_INT(tacio_capture_count(), 0);
    char *log = read_file(g_log);
    ASSERT_TRUE(log != NULL);
    if (!strstr(log, "not written"))
        TT_FAIL("record does not say the dump failed:\n%s", log);
    ASSERT_TRUE(strstr(log, "\"dump\"") == NULL);
    free(log);
    rm_rf(g_dir);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(status_trigger_writes_exactly_count_dumps, 120),
    TT_ENTRY(racing_threads_get_exactly_count_dumps, 120),
    TT_ENTRY(delivered_status_triggers_dump_through_the_core, 120),
    TT_ENTRY(verifier_trigger_and_capture_now, 120),
    TT_ENTRY(bad_specs_are_rejected_and_keep_the_old_one, 30),
    TT_ENTRY(unwritable_dump_dir_is_reported_not_fatal, 30),
};
TT_MAIN()
