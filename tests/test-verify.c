/* test-verify.c - each check of the verifier provoked on purpose, with the
 * report's fields asserted (not just that something was printed), plus the
 * abort mode end to end and the verifier-off guarantee.
 *
 * A "second completion" is what a lying backend produces (the seed case):
 * here it is made by calling the core's one finishing function a second
 * time for a record, exactly as a backend's completion path would
 * (fake_backend_completion). test-faults drives the real lying backend. */
#define UNW_LOCAL_ONLY
#include <fcntl.h>
#include <libunwind.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tacio-test.h"
#include <tacio/verify.h>

#include "core/internal.h"
#include "verify/verify.h"

/* libunwind opens a pipe on first use: before the runner counts fds. */
__attribute__((constructor)) static void prime_unwinder(void)
{
    void *pcs[2];
    unw_backtrace(pcs, 2);
}

static struct tacio__verify_report g_rep;

static void last_report(const char *check)
{
    ASSERT_TRUE(tacio__verify_last(&g_rep));
    if (strcmp(g_rep.check, check) != 0)
        TT_FAIL("last report is %s, expected %s: %s", g_rep.check, check, g_rep.message);
}

static void assert_contains(const char *hay, const char *needle, const char *what)
{
    if (!strstr(hay, needle))
        TT_FAIL("%s does not contain \"%s\":\n%s", what, needle, hay);
}

/* The kernel's second completion for a record, as a backend reports it. */
__attribute__((noinline)) static bool fake_backend_completion(tacio_op_t *op, uint32_t gen,
                                                                tacio_status_t st)
{
    struct oplist succ = {0};
    bool won = tacio__op_finish(op, gen, st, 7, &succ);
    ASSERT_TRUE(succ.head == NULL);
    return won;
}

typedef struct kit {
    tacio_port_t *p;
    int a, b;
    tacio_handle_t *h;
} kit_t;

static void kit_open(kit_t *k)
{
    k->p = tt_port(1);
    tt_udp_pair(&k->a, &k->b);
    k->h = tt_handle(k->p, k->a, 42, 0);
}

static void kit_close(kit_t *k)
{
    ASSERT_OK(tacio_handle_close(k->h));
    tt_close(k->b);
    unsigned n;
    tacio_entry_t e[8];
    while (tacio_port_dequeue(k->p, e, 8, &n, 50) == TACIO_SUCCESS)
        ;
    ASSERT_OK(tacio_port_close(k->p, NULL, NULL));
}

/* The seed case: a warning returned synchronously, then a completion too. */
__attribute__((noinline)) static tacio_status_t receive_into_small_buffer(kit_t *k, tacio_op_t *op,
                                                                         char *buf)
{
    tacio_status_t st = tacio_recv(k->h, op, buf, 8);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return st;
}

TT_CASE(double_completion_sync_then_queued)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    char big[300], buf[8];
    memset(big, 'q', sizeof big);
    ASSERT_EQ_INT(send(k.b, big, sizeof big, 0), (int)sizeof big);
    ASSERT_TRUE(tt_poll(k.a, POLLIN, 2000) > 0);
    tacio_op_t op;
    tacio_op_init(&op);
    ASSERT_EQ_STATUS(receive_into_small_buffer(&k, &op, buf), TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(op.bytes, sizeof big);
    uint64_t before = tacio_verify_reports();
    ASSERT_TRUE(!fake_backend_completion(&op, op_gen(&op), TACIO_SUCCESS));
    ASSERT_EQ_U64(tacio_verify_reports(), before + 1);
    last_report("double_completion");
    assert_contains(g_rep.message, "completed twice", "message");
    assert_contains(g_rep.message, "returned TACIO_BUFFER_OVERFLOW synchronously", "message");
    assert_contains(g_rep.message, "also queued", "message");
    ASSERT_TRUE(g_rep.op == &op);
    ASSERT_EQ_U64(g_rep.key, 42);
    ASSERT_EQ_STATUS(g_rep.first_status, TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_STATUS(g_rep.second_status, TACIO_SUCCESS);
    ASSERT_TRUE(strcmp(g_rep.first_how, "synchronous") == 0);
    ASSERT_GE_INT(g_rep.first_frames, 3);
    ASSERT_GE_INT(g_rep.second_frames, 2);
    /* Both stacks, symbolised: the first in the synchronous return path,
     * the second in the completion path. */
    assert_contains(g_rep.text, "first delivery", "report");
    assert_contains(g_rep.text, "receive_into_small_buffer", "report");
    assert_contains(g_rep.text, "second delivery", "report");
    assert_contains(g_rep.text, "fake_backend_completion", "report");
    assert_contains(g_rep.text, "test-verify!", "report (module!function)");
    assert_contains(g_rep.text, "test-verify.c:", "report (file:line)");
    assert_contains(g_rep.text, "returned synchronously", "report history");
    /* Dropped: the record was not touched. */
    ASSERT_EQ_STATUS(op.status, TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(op.bytes, sizeof big);
    kit_close(&k);
}

TT_CASE(double_completion_after_delivery)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    tacio_op_t op;
    tacio_op_init(&op);
    char buf[64];
    ASSERT_EQ_STATUS(tacio_recv(k.h, &op, buf, sizeof buf), TACIO_PENDING);
    ASSERT_EQ_INT(send(k.b, "hi", 2, 0), 2);
    tacio_entry_t e;
    unsigned n = 0;
    ASSERT_OK(tacio_port_dequeue(k.p, &e, 1, &n, 5000));
    ASSERT_TRUE(e.op == &op);
    ASSERT_TRUE(!fake_backend_completion(&op, op_gen(&op), TACIO_CANCELLED));
    last_report("double_completion");
    assert_contains(g_rep.message, "first TACIO_SUCCESS (dequeue)", "message");
    assert_contains(g_rep.message, "TACIO_CANCELLED", "message");
    ASSERT_TRUE(strcmp(g_rep.first_how, "dequeue") == 0);
    assert_contains(g_rep.text, "tacio_port_dequeue", "first stack");
    kit_close(&k);
}

TT_CASE(started_while_pending_is_reported)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    tacio_op_t op;
    tacio_op_init(&op);
    char buf[16];
    ASSERT_EQ_STATUS(tacio_recv(k.h, &op, buf, sizeof buf), TACIO_PENDING);
    ASSERT_EQ_STATUS(tacio_recv(k.h, &op, buf, sizeof buf), TACIO_OP_IN_USE);
    last_report("started_while_pending");
    ASSERT_TRUE(g_rep.op == &op);
    assert_contains(g_rep.message, "started again while its operation is pending", "message");
    assert_contains(g_rep.text, "started_while_pending_is_reported", "stack");
    kit_close(&k);
}

typedef struct owner {
    int before;
    tacio_op_t op;
    int after;
} owner_t;

TT_CASE(released_while_pending_is_reported)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    owner_t *o = calloc(1, sizeof *o);
    char buf[16];
    ASSERT_EQ_STATUS(tacio_recv(k.h, &o->op, buf, sizeof buf), TACIO_PENDING);
    uint64_t r0 = tacio_verify_reports();
    ASSERT_EQ_STATUS(tacio_op_release(&o->op), TACIO_OP_IN_USE);
    last_report("released_while_pending");
    assert_contains(g_rep.message, "released by the caller while pending", "message");
    ASSERT_EQ_STATUS(tacio_verify_check_free(o, sizeof *o), TACIO_OP_IN_USE);
    last_report("released_while_pending");
    assert_contains(g_rep.message, "is being freed while operation record", "message");
    ASSERT_TRUE(g_rep.op == &o->op);
    ASSERT_EQ_U64(tacio_verify_reports(), r0 + 2);
    /* Another range: nothing to say. */
    char other[64];
    ASSERT_OK(tacio_verify_check_free(other, sizeof other));
    ASSERT_EQ_INT(send(k.b, "x", 1, 0), 1);
    tacio_entry_t e;
    unsigned n = 0;
    ASSERT_OK(tacio_port_dequeue(k.p, &e, 1, &n, 5000));
    /* Delivered: the caller's again, no report. */
    ASSERT_OK(tacio_op_release(&o->op));
    ASSERT_OK(tacio_verify_check_free(o, sizeof *o));
    ASSERT_EQ_U64(tacio_verify_reports(), r0 + 2);
    free(o);
    kit_close(&k);
}

TT_CASE(reused_while_pending_is_reported)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    tacio_op_t op;
    tacio_op_init(&op);
    char buf[16];
    /* A few generations first, so the re-initialised record's next one
     * differs from the one still in flight. */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_STATUS(tacio_recv(k.h, &op, buf, sizeof buf), TACIO_PENDING);
        ASSERT_OK(tacio_cancel(&op));
        tacio_entry_t e;
        unsigned n = 0;
        ASSERT_OK(tacio_port_dequeue(k.p, &e, 1, &n, 5000));
    }
    ASSERT_EQ_STATUS(tacio_recv(k.h, &op, buf, sizeof buf), TACIO_PENDING);
    uint32_t gen1 = op_gen(&op);
    /* The caller re-initialises the record while tacio owns it (a freed and
     * reallocated struct looks the same), then starts it again. */
    tacio_op_init(&op);
    tacio_status_t st = tacio_recv(k.h, &op, buf, sizeof buf);
    ASSERT_EQ_STATUS(st, TACIO_PENDING);
    last_report("reused_while_pending");
    assert_contains(g_rep.message, "still pending", "message");
    ASSERT_TRUE(g_rep.op == &op);
    ASSERT_EQ_INT(g_rep.gen, gen1);
    /* The old operation's completion comes for a record now on another
     * generation: reported and dropped, the new one completes normally. */
    ASSERT_TRUE(!fake_backend_completion(&op, gen1, TACIO_SUCCESS));
    last_report("double_completion");
    assert_contains(g_rep.message, "after its record was reused", "message");
    kit_close(&k);
    /* The first operation's own completion is dropped the same way when the
     * close cancels it, so the fd use it held never ends and the handle
     * keeps the fd: the price of the caller's misuse in report mode. */
    close(k.a);
}

#if defined(TACIO_ASAN)
TT_CASE(freed_while_pending_is_caught_before_the_write)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    kit_t k;
    kit_open(&k);
    tacio_op_t *op = calloc(1, sizeof *op);
    char buf[16];
    ASSERT_EQ_STATUS(tacio_recv(k.h, op, buf, sizeof buf), TACIO_PENDING);
    uint32_t gen = op_gen(op);
    tacio_op_t *volatile stale = op; /* what the kernel still holds */
    free(op); /* the seed case's mistake */
    ASSERT_TRUE(!fake_backend_completion(stale, gen, TACIO_SUCCESS));
    last_report("freed_while_pending");
    assert_contains(g_rep.message, "after its memory was freed", "message");
    /* The real operation is still in the kernel on a record that is gone:
     * its completion would be reported the same way; end the process here
     * rather than let the backend touch the freed record at close. */
    _exit(0);
}
#endif

static _Atomic unsigned g_discards;
static void count_discard(const tacio_entry_t *e, void *arg)
{
    (void)e;
    (void)arg;
    g_discards++;
}

TT_CASE(port_closed_with_pending_is_reported)
{
    ASSERT_OK(tacio_verify_enable(TACIO_VERIFY_REPORT));
    for (int with_fn = 0; with_fn < 2; with_fn++) {
        tacio_port_t *p = tt_port(1);
        int a, b;
        tt_udp_pair(&a, &b);
        tacio_handle_t *h = tt_handle(p, a, 1, 0);
        tacio_op_t op;
        tacio_op_init(&op);
        char buf[16];
        ASSERT_EQ_STATUS(tacio_recv(h, &op, buf, sizeof buf), TACIO_PENDING);
        uint64_t r0 = tacio_verify_reports();
        ASSERT_OK(tacio_port_close(p, with_fn ? count_discard : NULL, NULL));
        if (with_fn) {
            ASSERT_EQ_U64(tacio_verify_reports(), r0);
            ASSERT_EQ_INT(g_discards, 1);
        } else {
            ASSERT_EQ_U64(tacio_verify_reports(), r0 + 1);
            last_report("port_closed_with_pending");
            assert_contains(g_rep.message, "no discard callback", "message");
        }
        tacio_handle_close(h);
        tt_close(b);
    }
}

/* Abort mode, end to end: the child reports on stderr and in the fault log
 * (a JSON record of kind verifier with both stacks), then dies by SIGABRT. */
TT_CASE(abort_mode_writes_record_and_aborts)
{
    char dir[] = "/tmp/tacio-verify-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char log[256], err[256];
    snprintf(log, sizeof log, "%s/faults.jsonl", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        setenv("TACIO_FAULT_LOG", log, 1);
        setenv("TACIO_DIAG_JOURNAL", "0", 1);
        signal(SIGABRT, SIG_DFL);
        tacio_verify_enable(TACIO_VERIFY_ABORT);
        kit_t k;
        kit_open(&k);
        char big[100], buf[8];
        memset(big, 'z', sizeof big);
        send(k.b, big, sizeof big, 0);
        tt_poll(k.a, POLLIN, 2000);
        tacio_op_t op;
        tacio_op_init(&op);
        receive_into_small_buffer(&k, &op, buf);
        fake_backend_completion(&op, op_gen(&op), TACIO_SUCCESS);
        _exit(3); /* not reached: the report aborts */
    }
    int ws = 0;
    ASSERT_EQ_INT(waitpid(pid, &ws, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGABRT);
    char text[65536];
    FILE *f = fopen(err, "r");
    ASSERT_TRUE(f != NULL);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_contains(text, "tacio verifier: double_completion", "stderr");
    assert_contains(text, "returned TACIO_BUFFER_OVERFLOW synchronously", "stderr");
    assert_contains(text, "aborting", "stderr");
    f = fopen(log, "r");
    if (!f)
        TT_FAIL("no fault log at %s", log);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_contains(text, "\"kind\":\"verifier\"", "fault record");
    assert_contains(text, "\"check\":\"double_completion\"", "fault record");
    assert_contains(text, "first_delivery", "fault record");
    assert_contains(text, "second_delivery", "fault record");
    assert_contains(text, "receive_into_small_buffer", "fault record");
    assert_contains(text, "fake_backend_completion", "fault record");
    assert_contains(text, "\"first_status\":\"TACIO_BUFFER_OVERFLOW\"", "fault record");
    unlink(log);
    unlink(err);
    rmdir(dir);
}

/* Off: no report, but the state machine still refuses the second
 * completion of a record that is still there, and leaves it untouched. */
TT_CASE(verifier_off_still_drops_second_completion)
{
    ASSERT_EQ_INT(tacio_verify_mode(), 0);
    kit_t k;
    kit_open(&k);
    char big[50], buf[8];
    memset(big, 'o', sizeof big);
    ASSERT_EQ_INT(send(k.b, big, sizeof big, 0), (int)sizeof big);
    ASSERT_TRUE(tt_poll(k.a, POLLIN, 2000) > 0);
    tacio_op_t op;
    tacio_op_init(&op);
    ASSERT_EQ_STATUS(receive_into_small_buffer(&k, &op, buf), TACIO_BUFFER_OVERFLOW);
    uint32_t word = op.priv_word;
    ASSERT_TRUE(!fake_backend_completion(&op, op_gen(&op), TACIO_SUCCESS));
    ASSERT_EQ_INT(op.priv_word, word);
    ASSERT_EQ_STATUS(op.status, TACIO_BUFFER_OVERFLOW);
    ASSERT_EQ_U64(tacio_verify_reports(), 0);
    kit_close(&k);
}

TT_CASE(enable_rejects_unknown_mode)
{
    ASSERT_EQ_STATUS(tacio_verify_enable(7), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_INT(tacio_verify_mode(), 0);
    ASSERT_EQ_STATUS(tacio_op_release(NULL), TACIO_INVALID_PARAMETER);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(double_completion_sync_then_queued, 30),
    TT_ENTRY(double_completion_after_delivery, 30),
    TT_ENTRY(started_while_pending_is_reported, 30),
    TT_ENTRY(released_while_pending_is_reported, 30),
    TT_ENTRY(reused_while_pending_is_reported, 30),
#if defined(TACIO_ASAN)
    TT_ENTRY(freed_while_pending_is_caught_before_the_write, 30),
#endif
    TT_ENTRY(port_closed_with_pending_is_reported, 30),
    TT_ENTRY(abort_mode_writes_record_and_aborts, 60),
    TT_ENTRY(verifier_off_still_drops_second_completion, 30),
    TT_ENTRY(enable_rejects_unknown_mode, 30),
};
TT_MAIN()
