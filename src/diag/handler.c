/* handler.c - the fault handlers: one record, then the default action.
 *
 * On SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT the handler (on an
 * alternate stack, so a stack overflow can still be recorded on threads
 * that have one) writes one fault record through the async-signal-safe
 * path of record.c, takes a first-chance dump if the "signal" trigger is
 * armed, then puts back SIG_DFL and lets the signal happen again: a fault
 * re-executes the faulting instruction, a sent signal (abort(), kill) is
 * sent again to the same thread. The process dies exactly as it would have
 * without tacio, and the kernel's core dump (if enabled) shows the original
 * state. The previous handlers are not chained: SIG_DFL is the contract.
 *
 * Installation happens outside the handler and captures everything the
 * handler needs (modules, log path, start time, a primed unwinder), since
 * the handler may not allocate, lock or load anything.
 */
#include "diag/diag-internal.h"
#include "diag/capture.h"

#include <tacio/tacio.h>

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALT_STACK_SIZE (1024 * 1024) /* records, symbolisation child, sanitizer redzones */
#define WAIT_OTHER_MS 10000

static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define N_SIGNALS (sizeof fault_signals / sizeof fault_signals[0])

static struct sigaction old_actions[N_SIGNALS];
static _Atomic int installed;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t altstack_key;
static pthread_once_t altstack_key_once = PTHREAD_ONCE_INIT;
static __thread void *thread_altstack __attribute__((tls_model("initial-exec")));
static __thread int thread_in_handler __attribute__((tls_model("initial-exec")));
/* tid of the thread writing a record: one record per process death. */
static _Atomic int fault_owner;

uintptr_t tacio__uc_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#elif defined(__i386__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_EIP];
#else
    (void)uc;
    return 0;
#endif
}

/* ---- alternate stacks ----------------------------------------------------- */

static void altstack_free(void *p)
{
    stack_t off = { .ss_flags = SS_DISABLE };
    sigaltstack(&off, NULL);
    munmap(p, ALT_STACK_SIZE);
}

static void altstack_key_init(void)
{
    pthread_key_create(&altstack_key, altstack_free);
}

static void ensure_altstack(void)
{
    if (thread_altstack)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_size >= 65536) {
        thread_altstack = cur.ss_sp; /* the application's own: keep it */
        return;
    }
    void *p = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return;
    stack_t ss = { .ss_sp = p, .ss_size = ALT_STACK_SIZE };
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(p, ALT_STACK_SIZE);
        return;
    }
    thread_altstack = p;
    pthread_once(&altstack_key_once, altstack_key_init);
    pthread_setspecific(altstack_key, p);
}

/* ---- the handler ----------------------------------------------------------- */

static void to_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

/* After SIG_DFL: a fault re-executes its instruction when the handler
 * returns; a sent signal has to be sent again (blocked until we return). */
static void again(int sig, const siginfo_t *si)
{
    if (si->si_code <= 0 || sig == SIGABRT)
        syscall(SYS_tgkill, getpid(), tacio__gettid(), sig);
}

/* Frames of the interrupted code: the unwinder walks through the signal
 * trampoline, and the frame whose address is the fault's PC is the first
 * of the interrupted thread. */
static size_t fault_stack(uintptr_t pc, uintptr_t *pcs, size_t max)
{
    void *raw[TACIO_FAULT_MAX_FRAMES + 8];
    int n = backtrace(raw, TACIO_FAULT_MAX_FRAMES + 8);
    int from = -1;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)raw[i] == pc) {
            from = i;
            break;
        }
    size_t out = 0;
    pcs[out++] = pc;
    for (int i = from + 1; from >= 0 && i < n && out < max; i++)
        pcs[out++] = (uintptr_t)raw[i];
    return out;
}

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    const ucontext_t *uc = ucv;
    if (thread_in_handler || atomic_load(&tacio__diag_fatal_recorded)) {
        /* A fault while recording, or the SIGABRT of tacio__diag_fatal,
         * which wrote its own record: just die. */
        to_default(sig);
        again(sig, si);
        errno = saved_errno;
        return;
    }
    thread_in_handler = 1;
    int me = (int)tacio__gettid(), none = 0;
    if (!atomic_compare_exchange_strong(&fault_owner, &none, me)) {
        /* Another thread is recording a fault; the process is going down
         * with it. Wait (bounded) so this thread does not kill the process
         * before that record is out. */
        for (int waited = 0; waited < WAIT_OTHER_MS && atomic_load(&fault_owner); waited += 10) {
            struct timespec ts = { 0, 10 * 1000000L };
            nanosleep(&ts, NULL);
        }
        to_default(sig);
        again(sig, si);
        thread_in_handler = 0;
        errno = saved_errno;
        return;
    }

    uintptr_t pc = tacio__uc_pc(uc);
    uintptr_t pcs[TACIO_FAULT_MAX_FRAMES];
    size_t n = fault_stack(pc, pcs, TACIO_FAULT_MAX_FRAMES);
    char dump[PATH_MAX];
    int have_dump = tacio__capture_signal(uc, dump, sizeof dump);

    bool hw = sig != SIGABRT && si->si_code > 0;
    char msg[160] = "";
    const char *sn = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGILL ? "SIGILL"
                   : sig == SIGFPE ? "SIGFPE" : "SIGABRT";
    tacio__strlcpy(msg, sn, sizeof msg);
    const char *cn = tacio__signal_code_name(sig, si->si_code);
    if (cn) {
        tacio__strlcat(msg, " (", sizeof msg);
        tacio__strlcat(msg, cn, sizeof msg);
        tacio__strlcat(msg, ")", sizeof msg);
    }
    if (hw) {
        char num[24];
        num[tacio__fmt_hex(num, (uintptr_t)si->si_addr, 0)] = 0;
        tacio__strlcat(msg, sig == SIGSEGV || sig == SIGBUS ? " accessing address 0x" : " at 0x",
                       sizeof msg);
        tacio__strlcat(msg, num, sizeof msg);
    } else if (si->si_code <= 0 && sig != SIGABRT) {
        tacio__strlcat(msg, " sent by a process", sizeof msg);
    }

    struct tacio_fault_stack st = { .name = "faulting_thread", .pcs = pcs, .n = n, .first_exact = 1 };
    struct tacio_fault_record r = {
        .kind = "signal",
        .message = msg,
        .exception_code = tacio__signal_ntstatus(sig, si->si_code),
        .signo = sig,
        .si_code = si->si_code,
        .fault_addr = (uintptr_t)si->si_addr,
        .has_fault_addr = hw,
        .fault_pc = pc,
        .stacks = &st,
        .n_stacks = 1,
        .dump = have_dump ? dump : NULL,
        .flags = TACIO_FR_SIGNAL,
    };
    tacio__fault_record_write(&r, NULL);

    to_default(sig);
    again(sig, si);
    atomic_store(&fault_owner, 0);
    errno = saved_errno;
}

/* ---- installation ------------------------------------------------------------- */

static void install_locked(void)
{
    if (atomic_load(&installed))
        return;
    /* Load the unwinder (libgcc_s, dlopen'ed on first use) now: the
     * handler must not. */
    void *prime[4];
    backtrace(prime, 4);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    /* Nothing else runs on this thread while the record is written; a
     * fault inside the handler is then forced to its default action. */
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaction(fault_signals[i], &sa, &old_actions[i]);
    atomic_store(&installed, 1);
}

static _Atomic int auto_state; /* 0 not looked yet, 1 nothing to do, 2 handlers in */

tacio_status_t tacio_diag_install(const tacio_diag_options_t *opts)
{
    pthread_mutex_lock(&install_lock);
    tacio__diag_config_defaults();
    struct tacio__diag_config *c = &tacio__diag_cfg;
    if (opts) {
        if (opts->fault_log && opts->fault_log[0])
            tacio__strlcpy(c->fault_log, opts->fault_log, sizeof c->fault_log);
        if (opts->app_name && opts->app_name[0])
            tacio__strlcpy(c->app_name, opts->app_name, sizeof c->app_name);
        if (opts->app_version)
            tacio__strlcpy(c->app_version, opts->app_version, sizeof c->app_version);
        c->flags = (c->flags & TACIO_DIAG_NO_JOURNAL) | opts->flags;
    }
    tacio__modules_refresh();
    ensure_altstack();
    install_locked();
    atomic_store(&auto_state, 2);
    pthread_mutex_unlock(&install_lock);

    tacio_status_t st = TACIO_SUCCESS;
    const char *spec = getenv("TACIO_CAPTURE");
    if (!opts && spec && *spec)
        st = tacio_capture_configure(spec);
    if (!thread_altstack)
        return TACIO_NO_MEMORY;
    return st == TACIO_SUCCESS ? TACIO_SUCCESS : TACIO_INVALID_PARAMETER;
}

tacio_status_t tacio_diag_uninstall(void)
{
    pthread_mutex_lock(&install_lock);
    if (atomic_load(&installed)) {
        for (size_t i = 0; i < N_SIGNALS; i++)
            sigaction(fault_signals[i], &old_actions[i], NULL);
        atomic_store(&installed, 0);
    }
    pthread_mutex_unlock(&install_lock);
    return TACIO_SUCCESS;
}

tacio_status_t tacio_diag_refresh_modules(void)
{
    tacio__modules_refresh();
    return TACIO_SUCCESS;
}

tacio_status_t tacio_diag_fault_log(char *buf, size_t size)
{
    if (!buf || !size)
        return TACIO_INVALID_PARAMETER;
    pthread_mutex_lock(&install_lock);
    tacio__diag_config_defaults();
    tacio__strlcpy(buf, tacio__diag_cfg.fault_log, size);
    bool cut = strlen(tacio__diag_cfg.fault_log) >= size;
    pthread_mutex_unlock(&install_lock);
    return cut ? TACIO_BUFFER_OVERFLOW : TACIO_SUCCESS;
}

static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

void tacio__diag_autoinstall(void)
{
    int s = atomic_load_explicit(&auto_state, memory_order_relaxed);
    if (s == 1)
        return;
    if (s == 2) {
        ensure_altstack();
        tacio__modules_refresh();
        return;
    }
    if (env_on("TACIO_DIAG")) {
        tacio_diag_install(NULL);
        return;
    }
    const char *spec = getenv("TACIO_CAPTURE");
    if (spec && *spec) {
        if (tacio_capture_configure(spec) != TACIO_SUCCESS) {
            tacio__write_str(2, "tacio: TACIO_CAPTURE ignored: ");
            tacio__write_str(2, tacio_last_error());
            tacio__write_str(2, "\n");
        } else if (strstr(spec, "signal")) {
            /* The "signal" trigger needs the fault handlers. */
            tacio_diag_install(&(tacio_diag_options_t){ 0 });
            return;
        }
    }
    int zero = 0;
    atomic_compare_exchange_strong(&auto_state, &zero, 1);
}

/* So TACIO_DIAG=1 covers a program from its first instruction, not only
 * from its first port (the core calls tacio__diag_autoinstall() too). */
__attribute__((constructor)) static void diag_at_load(void)
{
    tacio__diag_autoinstall();
}
