/*
 * sched/ — the public interface of the runtime to preload/.
 *
 * sched/ knows nothing of POSIX error conventions beyond returning errno
 * values; preload/ translates pthread/sem/sleep semantics into these calls.
 * All functions here are called from a G (the current thread of the
 * program), unless said otherwise.
 */
#ifndef GMP_SCHED_H
#define GMP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "shim/shim.h"

struct g;

/* ---- lifecycle -------------------------------------------------------- */

struct gmp_config {
  int maxprocs;          /* number of Ps */
  bool asyncpreemptoff;  /* GMP_DEBUG=asyncpreemptoff=1 */
  int maxthreads;        /* GMP_DEBUG=maxthreads=N: limit on Ms (Go: 10000) */
  int schedtrace_ms;     /* GMP_DEBUG=schedtrace=MS, 0: off */
  bool scheddetail;      /* GMP_DEBUG=scheddetail=1 */
  int dumpsignal;        /* GMP_DEBUG=dumpsignal=SIG, 0: off */
  const char *tracefile; /* GMP_TRACEFILE, NULL: stderr */
  const char *tracejson; /* GMP_TRACE: Chrome trace-event file, NULL: off */
  size_t stack_size;     /* default G stack size */
  long guard_limit;      /* stacks with a guard page; -1: from max_map_count */
  int verbose;
};

/* Native pthread entry points the runtime itself needs (M creation, the
 * TLS probe), resolved by preload/real.c. */
struct gmp_native {
  int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
  int (*join)(pthread_t, void **);
};

/* Convert the calling (main) thread into the main G on M0 and start the
 * other Ms. Returns NULL, or a one-line reason the runtime cannot run here
 * (nothing has been changed then: the caller falls back to native). */
const char *gmp_sched_init(const struct gmp_config *cfg, const struct gmp_native *nat);

/* fork: pthread_atfork handlers, registered by preload/ at init. */
void gmp_fork_prepare(void);
void gmp_fork_parent(void);
void gmp_fork_child(void);

/* GMP_DEBUG=stats=1: the counters, printed at exit. */
void gmp_stats_print(void);
/* Ask sysmon for a goroutine dump on the trace output (async-signal-safe:
 * the GMP_DEBUG=dumpsignal handler calls it). */
void gmp_dump_request(void);
/* The dump signal is the runtime's: when no running thread accepts it,
 * sysmon takes it from the pending set and dumps. */
void gmp_sig_own(int sig);
/* A signal name or number ("SIGQUIT", "QUIT", "3") to its number; NULL,
 * or what was expected. Only signals a program may catch. */
const char *gmp_parse_signal(const char *s, int *out);

/* True once gmp_sched_init succeeded. */
extern bool gmp_running;

/* ---- the current G ---------------------------------------------------- */

/* The G running on this thread, or NULL on a thread the runtime did not
 * make (and on the runtime's own g0 contexts: see gmp_curg_user). */
/* The TCB slot holds the G pointer; for an M's scheduler context (g0)
 * the pointer is tagged with bit 0, so that telling a program G from g0
 * costs one test and no memory access beyond the slot. */
#define GMP_SLOT_G0 ((uintptr_t)1)
static inline struct g *gmp_curg_raw(void)
{
  return (struct g *)((uintptr_t)gmp_tcb_slot_get() & ~GMP_SLOT_G0);
}
static inline struct g *gmp_curg(void) /* NULL unless a program G */
{
  uintptr_t s = (uintptr_t)gmp_tcb_slot_get();
  return s & GMP_SLOT_G0 ? NULL : (struct g *)s;
}

/* The G behind a pthread_t, or NULL if it is not one of ours. */
struct g *gmp_g_of(pthread_t t);
/* Thread ids of Gs. The main G keeps the process's own (gettid() ==
 * getpid() in the main thread, as programs check); every other G gets a
 * number of its own from GMP_TID_BASE up: above PID_MAX_LIMIT (2^22, the
 * most any kernel hands out), so it is never an OS thread's; below 2^30,
 * so that in a robust or PI futex word (FUTEX_TID_MASK) it leaves the
 * OWNER_DIED and WAITERS bits clear. */
#define GMP_TID_BASE 0x400000
#define GMP_TID_END 0x3fffffff
/* The live G whose tid is tid, or NULL (an OS thread's tid, a G that has
 * ended). Walks every G: for the rare calls that name a thread by tid
 * (tgkill, sched_setaffinity, ...), never on a hot path. */
struct g *gmp_g_of_tid(int tid);
/* Per-thread CPU-time clocks (proc.c): turned on at the program's first
 * request; a G's CPU time in ns so far. */
void gmp_cpuclock_enable(void);
int64_t gmp_g_cputime(struct g *g);
pthread_t gmp_g_pthread(struct g *g);
uint64_t gmp_g_id(struct g *g);

/* ---- creation, exit, join --------------------------------------------- */

struct gmp_gattr {
  size_t stacksize;      /* 0: default */
  void *stackaddr;       /* lowest address of a caller-provided stack, or NULL */
  size_t guardsize;
  bool detached;
  int sched_policy, sched_priority, inheritsched, scope;
};

/* Start fn(arg) in a new G. Returns 0 or EAGAIN/ENOMEM/EINVAL. */
int gmp_go(pthread_t *out, void *(*fn)(void *), void *arg, const struct gmp_gattr *a);
_Noreturn void gmp_goexit(void *retval);
/* Called in every G as it ends, after its TSD destructors (preload/ uses
 * it to release the robust mutexes the G still holds). */
void gmp_set_exit_hook(void (*hook)(void));

/* deadline: GMP_NO_DEADLINE, GMP_TRY (don't wait), or monotonic ns. */
#define GMP_NO_DEADLINE INT64_MAX
#define GMP_TRY INT64_MIN
int gmp_join(struct g *g, void **retval, int64_t deadline); /* 0, EBUSY, ETIMEDOUT, EINVAL, EDEADLK, ECANCELED (the joiner was cancelled) */
int gmp_detach(struct g *g);                                /* 0, EINVAL */
bool gmp_g_alive(struct g *g);

void gmp_yield(void);
/* A safe point for preemption, at a wrapper's return: if sysmon asked the
 * current G to give up its P and the signal could not switch it where it
 * stood, yield now. Cheap when nothing is asked (one load). */
void gmp_preempt_point(void);

/* Attributes of a G, for pthread_getattr_np & co. */
void gmp_g_stack(struct g *g, void **lo, size_t *size, size_t *guard);
bool gmp_g_detached(struct g *g);
void gmp_g_sched(struct g *g, int *policy, int *priority, bool set);
#define GMP_MAX_NAME_LEN 16 /* the kernel's TASK_COMM_LEN */
char *gmp_g_name(struct g *g);
bool gmp_g_is_main(struct g *g);
/* The glibc tid of a G (its mutex owner id). */
int gmp_g_tid(struct g *g);
/* The kernel tid of the M running g right now, or 0 if it is not running. */
int gmp_g_ostid(struct g *g);
int gmp_procs(void);
/* The kernel tid of the OS thread running the calling G right now. */
int gmp_current_ostid(void);
/* Run a glibc call with the OS thread's own TCB in fs (set*id). */
void *gmp_m_fs_enter(void);
void gmp_m_fs_leave(void *prev);

/* ---- signal masks ----------------------------------------------------------
 * Per thread, as POSIX wants: kept in the G, applied to the OS thread
 * running it (at switch-in, only when it differs). Masks are the kernel's
 * 64-bit sets. */
uint64_t gmp_sigmask_get(void);
void gmp_sigmask_set(uint64_t mask);
/* One round of sigtimedwait for the calling G, until deadline (nanotime;
 * 0: none): the signal number taken, with its siginfo; 0 if the G was
 * kicked (a signal queued for it, a cancel: look again); or -EAGAIN
 * (deadline passed), -EINTR (a handler ran). Signals queued for the G
 * (pthread_kill) count, as the kernel's own do. */
int gmp_sigwait_once(uint64_t set, void *siginfo, int64_t deadline);
/* signalfd (preload/signalfd.c). The running G's queued signals of set
 * (its own, sent with pthread_kill & co: the kernel's signalfd only sees
 * the OS thread's and the process's): take the lowest into *siginfo and
 * return its number, or 0. */
int gmp_sig_take(uint64_t set, void *siginfo);
/* The signals queued for the running G that it blocks (sigpending). */
uint64_t gmp_sig_queued_blocked(void);
/* Publish the blocked signals the running G waits for (see sigwait_set
 * in runtime.h); returns the previous set, to restore. */
uint64_t gmp_sigwake_swap(uint64_t set);
/* After a wait ended with GMP_PARK_INTERRUPTED / EINTR: was it for one of
 * those signals (then look again rather than fail with EINTR)? */
bool gmp_sigwake_pending(void);
/* Send a signal to g (pthread_kill, pthread_sigqueue): its handler runs in
 * g, on whichever OS thread runs it, as soon as g runs with the signal
 * unblocked; a wait of g is ended (EINTR, or a spurious wake-up where
 * POSIX wants the wait to go on). info->si_signo is the signal. */
void gmp_signal_g(struct g *g, const void *info);
/* A signal handler found itself on an M's scheduler and blocked the
 * signal there: the M's mask is no longer what it last set. */
void gmp_sig_blocked_on_m(void);
/* In a signal handler on an M's scheduler context: give the signal to the
 * G this M is switching to, if it accepts it (signal.c). */
bool gmp_sig_on_g0(const void *info);
/* Around a program's signal handler run in a G (preload/sigaction.c):
 * the kernel's handler mask becomes the G's while it runs; back is the
 * mask the sigreturn will install (the signal frame's). */
struct gmp_handler_save {
  uint64_t sigmask, sigmask_eff;
};
void gmp_handler_enter(struct gmp_handler_save *s);
void gmp_handler_leave(const struct gmp_handler_save *s, uint64_t back);
/* The program has (true) or no longer has a SIGURG handler (preempt.c). */
void gmp_preempt_urg_onstack(bool program_handler);
/* Give a signal back to the process, for a thread that accepts it
 * (async-signal-safe; the kernel lets only a sender use its own codes:
 * another's goes as a sigqueue). */
void gmp_sig_to_process(const void *info);
/* Does the runtime own SIGURG (the program had no handler at start)? A
 * SIGURG the runtime did not send is passed to chain(sig, siginfo, uc). */
bool gmp_owns_sigurg(void);
void gmp_set_urg_chain(void (*chain)(int, void *, void *));
/* After a call was interrupted (EINTR, GMP_PARK_INTERRUPTED): did every
 * signal handled meanwhile ask for SA_RESTART? */
bool gmp_sig_restart(void);

/* ---- blocking system calls -------------------------------------------------
 * A call that may block in the kernel is bracketed by these: while it
 * blocks, sysmon hands the G's P to another M after ~20 us, so the other
 * Gs keep running. Between the two calls the caller must not use any
 * other runtime function. The fast path (the call returns at once) is
 * one atomic store and one CAS. Neither changes errno. */
void gmp_entersyscall(void);
/* The same, naming the call for the goroutine dump and schedtrace
 * ("syscall waitpid"); name must be a string literal. */
void gmp_entersyscall_as(const char *name);
void gmp_exitsyscall(void);

/* Call fn on every TCB the runtime made or adopted (live and pooled Gs,
 * the main G, M0's scheduler context). */
void gmp_for_each_tcb(void (*fn)(void *tcb, void *ctx), void *ctx);

/* For crash reports: what the runtime knows of g (async-signal-safe). */
struct gmp_ginfo {
  uint64_t id;
  void *(*start)(void *);
  void *stack_lo, *stack_hi;
  size_t guard;
  bool is_main;
};
void gmp_g_info(struct g *g, struct gmp_ginfo *out);

/* ---- parking ------------------------------------------------------------ */

/* Park the current G on addr. validate(arg) runs with the address's queue
 * locked, before the G is queued: if it returns false, nothing is parked
 * and GMP_PARK_INVALID is returned (the futex "value changed" case). A
 * waker that changes the state validate reads, then calls gmp_unpark_*,
 * can therefore never be missed. */
#define GMP_PARK_WOKEN 0
#define GMP_PARK_TIMEDOUT 1
#define GMP_PARK_INVALID 2
#define GMP_PARK_CANCELED 3
/* A signal for the G ended the wait; its handler has run in the G by the
 * time the park returns (the caller fails with EINTR, or waits again). */
#define GMP_PARK_INTERRUPTED 4
/* Or'ed into reason: the wait is a cancellation point (pthread_cancel
 * ends it with GMP_PARK_CANCELED). */
#define GMP_WAIT_CANCELPOINT 0x100
enum gmp_reason { GMP_WAIT_MUTEX = 1, GMP_WAIT_COND, GMP_WAIT_RWLOCK, GMP_WAIT_SEM,
                  GMP_WAIT_BARRIER, GMP_WAIT_JOIN, GMP_WAIT_SLEEP, GMP_WAIT_ONCE,
                  GMP_WAIT_IOR = 10, GMP_WAIT_IOW = 11, GMP_WAIT_FUTEX = 12 };
int gmp_park_on(const void *addr, bool (*validate)(void *), void *arg,
                int64_t deadline, int reason);
/* gmp_park_on for a wait on file descriptor fd (shown by schedtrace). */
int gmp_park_on_fd(const void *addr, bool (*validate)(void *), void *arg,
                   int64_t deadline, int reason, int fd);
/* End the park of every G parked on addr and prepend them to *list
 * (linked by gmp_g_next), without making them runnable yet: the caller
 * readies them, one by one (gmp_ready_g) or as a batch (the poller).
 * Returns how many. */
int gmp_unpark_collect(const void *addr, struct g **list);
struct g *gmp_g_next(struct g *g);
void gmp_ready_g(struct g *g);
/* Ready g to run next on the caller's P, waking no other M (a direct
 * hand-off from a writer to the reader it just fed). */
void gmp_ready_handoff(struct g *g);
/* The poller (poller/) asks for an M to block in epoll_wait: a G started
 * waiting for an fd while nobody watches the poller and Ps are idle. */
bool gmp_netpoll_unwatched(void);
void gmp_netpoll_want_poller(void);
/* Wake the oldest G parked on addr. Returns 1 if one was woken. */
int gmp_unpark_one(const void *addr);
/* Wake every G parked on addr. Returns how many. */
int gmp_unpark_all(const void *addr);
/* Wake up to max Gs parked on addr, oldest first. Returns how many. */
int gmp_unpark_n(const void *addr, int max);
/* Dequeue and claim the first G parked on addr, without readying it: the
 * caller runs it (or readies it). NULL if none. */
struct g *gmp_unpark_take(const void *addr);

/* Complete the GMP_TRACE file now (normally done by an atexit handler):
 * for _exit and fatal signals. Nothing unless tracing, in the process
 * that opened the trace. */
void gmp_tev_finish(void);
/* With both queues locked and validate(arg) true (or validate NULL): wake
 * up to nwake Gs parked on from, and move up to nmove more to wait on to
 * instead (futex requeue). Returns woken + moved, or -1 if validate
 * refused (nothing done). */
int gmp_requeue(const void *from, const void *to, int nwake, int nmove,
                bool (*validate)(void *), void *arg);
/* Sleep until the monotonic deadline (a cancellation point: returns
 * GMP_PARK_CANCELED if pthread_cancel ended it, else GMP_PARK_TIMEDOUT). */
int gmp_sleep_until(int64_t deadline);

/* ---- cancellation --------------------------------------------------------
 * The runtime keeps the state and ends cancellable waits; preload/ acts on
 * it (unwinding) with POSIX's rules. */
/* Mark g cancelled; end its wait if it is parked at a cancellation point.
 * Returns the kernel tid of the OS thread running g if g is running (the
 * caller may need to interrupt a system call there), else 0. */
int gmp_cancel(struct g *g);
/* Is a cancel pending and enabled for the current G? */
bool gmp_cancel_pending(void);
/* Read and optionally set the current G's cancel state and type. */
void gmp_cancel_state(int *disabled, bool set);
void gmp_cancel_type(int *async, bool set);
/* Called by sysmon for every G blocked in a system call with a cancel
 * pending (to re-interrupt it): installed by preload/. */
void gmp_set_cancel_kick(void (*kick)(int ostid));
/* The runtime's SIGURG handler calls this first, in the interrupted G
 * (preload/ uses it for asynchronous cancellation). */
void gmp_set_async_hook(void (*hook)(void));
/* SIGURG is the runtime's interrupt: preemption and cancellation kicks. */
void gmp_interrupt_ostid(int ostid);
/* After a wrapped call failed with EINTR: was it (possibly) the runtime's
 * own SIGURG rather than the program's signal? Clears the mark. */
bool gmp_eintr_was_ours(void);
/* The same for a call that is never restarted after a handler (pause,
 * sigsuspend, System V IPC: signal(7)): true only if no handler of the
 * program's ran. */
bool gmp_eintr_only_ours(void);
/* For sigsuspend: make mask the calling G's (SIGURG blocked on its OS
 * thread until the kernel's sigsuspend swaps masks atomically) and deliver
 * the signals queued for it that mask lets through. Returns how many were
 * delivered (their handlers have run). */
int gmp_sigsuspend_prepare(uint64_t mask);

/* ---- thread-specific data ------------------------------------------------ */

int gmp_key_create(unsigned *key, void (*destr)(void *));
/* Keys 0..n-1 were made by glibc before the runtime started (a library
 * constructor): never hand them out (preload/tsd.c passes them to glibc). */
void gmp_key_reserve(unsigned n);
int gmp_key_delete(unsigned key);
void *gmp_getspecific(unsigned key);
int gmp_setspecific(unsigned key, const void *v);

/* ---- configuration parsing (env.c) -------------------------------------- */

/* Parsers return NULL on success or a description of the accepted values. */
const char *gmp_parse_int(const char *s, long lo, long hi, long *out);
const char *gmp_parse_size(const char *s, size_t lo, size_t hi, size_t *out);
/* Default number of Ps: CPUs in the affinity mask, lowered to the cgroup
 * CPU quota (v2 cpu.max, v1 cfs_quota_us/cfs_period_us), at least 1. */
int gmp_default_procs(void);
/* NPTL's default stack size: RLIMIT_STACK (2 MiB when unlimited, 16 KiB minimum). */
size_t gmp_default_stack(void);

#endif
