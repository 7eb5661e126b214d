/*
 * Signal dispositions, virtualised. The program's handlers are recorded
 * here and the kernel is given one trampoline instead (with the program's
 * flags and mask), because a signal can land on an OS thread that is
 * between two threads of the program — an M running its scheduler — where
 * the program's handler would see no thread of its own (wrong TLS, wrong
 * pthread_self). The trampoline runs the handler when a G (or a thread the
 * runtime did not make) is current; on an M's scheduler it hands the
 * signal back to the process, blocked on that M, for a thread that
 * accepts it (sched/signal.c).
 *
 * SIGURG belongs to the runtime (preemption): a handler the program sets
 * for it is recorded and called for SIGURGs the runtime did not send
 * (out-of-band data), and the program reads back its own disposition.
 * The crash reporter's handlers are invisible likewise: the program sees
 * SIG_DFL where libgmp installed one.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "preload/preload.h"

extern int __sigaction(int, const struct sigaction *, struct sigaction *);

static struct sigaction prog[NSIG];
static bool known[NSIG];   /* prog[sig] is the program's view */
static gmp_spin lock;

/* Signals whose default action ends the process, asynchronous ones only
 * (faults go to the crash reporter, SIGABRT to abort's own logic). The
 * trampoline stands in for SIG_DFL on these too: delivered to an M's
 * scheduler, the default action would kill the process although every
 * thread of the program blocks the signal (the sigwait pattern). */
static bool term_default(int sig)
{
  switch (sig) {
  case SIGHUP: case SIGINT: case SIGQUIT: case SIGUSR1: case SIGUSR2: case SIGPIPE:
  case SIGALRM: case SIGTERM: case SIGSTKFLT: case SIGXCPU: case SIGXFSZ:
  case SIGVTALRM: case SIGPROF: case SIGIO: case SIGPWR:
    return true;
  default:
    return sig >= SIGRTMIN && sig <= SIGRTMAX;
  }
}

static void run_handler(int sig, siginfo_t *si, void *uc)
{
  struct sigaction a = prog[sig];
  if (!(a.sa_flags & SA_SIGINFO) && a.sa_handler == SIG_DFL) {
    /* The default action, in a thread that accepts the signal: the
     * kernel's own, sent again to this OS thread (blocked until this
     * handler returns). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    __sigaction(sig, &dfl, NULL);
    gmp_sys3(SYS_tgkill, gmp_sys0(SYS_getpid), gmp_sys0(SYS_gettid), sig);
    return;
  }
  if (a.sa_flags & SA_RESETHAND) {
    prog[sig].sa_handler = SIG_DFL; /* the kernel did the same to ours */
    prog[sig].sa_flags &= ~SA_SIGINFO;
  }
  if (a.sa_flags & SA_SIGINFO)
    a.sa_sigaction(sig, si, uc);
  else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN)
    a.sa_handler(sig);
}

/* A program's signal, caught by libgmp's handler. urg: it came through
 * the runtime's SIGURG handler, whose mask blocks everything. */
static void deliver(int sig, siginfo_t *si, void *ucv, bool urg)
{
  uintptr_t slot = (uintptr_t)gmp_tcb_slot_get();
  ucontext_t *uc = ucv;
  if (gmp_running && (slot & GMP_SLOT_G0)) {
    int saved = errno;
    /* On an M's scheduler, switching to a G that accepts it: the G's. */
    if (gmp_sig_on_g0(si)) {
      errno = saved;
      return;
    }
    /* Else keep it blocked here from now on, and queue it to the process
     * again for a thread that accepts it. */
    uint64_t m;
    memcpy(&m, &uc->uc_sigmask, 8);
    m |= 1ULL << (sig - 1);
    memcpy(&uc->uc_sigmask, &m, 8);
    gmp_sig_blocked_on_m();
    gmp_sig_to_process(si);
    errno = saved;
    return;
  }
  if (gmp_running && slot) {
    if (urg) {
      /* The mask the kernel would have given the program's own handler
       * (the runtime's blocks everything): a handler that waits for
       * another thread's signal must let it in. */
      uint64_t want, add;
      memcpy(&want, &uc->uc_sigmask, 8);
      memcpy(&add, &prog[sig].sa_mask, 8);
      want |= add;
      if (!(prog[sig].sa_flags & SA_NODEFER))
        want |= 1ULL << (sig - 1);
      gmp_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &want, NULL, 8);
    }
    /* In a G: its mask is the handler's while the handler runs. */
    struct gmp_handler_save hs;
    gmp_handler_enter(&hs);
    run_handler(sig, si, ucv);
    uint64_t back;
    memcpy(&back, &uc->uc_sigmask, sizeof back);
    gmp_handler_leave(&hs, back);
    return;
  }
  run_handler(sig, si, ucv);
}

static void tramp(int sig, siginfo_t *si, void *ucv)
{
  deliver(sig, si, ucv, false);
}

/* SIGURG not sent by the runtime: the program's, if it handles it (its
 * default is to ignore it). The runtime's handler then runs on the
 * thread's own stack (gmp_preempt_urg_onstack), as the program's would:
 * a handler that yields or waits may move its thread to another OS
 * thread, its frame with it (haproxy's thread dump waits so). */
static void urg_chain(int sig, void *si, void *uc)
{
  if (!known[sig] ||
      (!(prog[sig].sa_flags & SA_SIGINFO) &&
       (prog[sig].sa_handler == SIG_DFL || prog[sig].sa_handler == SIG_IGN)))
    return;
  deliver(sig, si, uc, true);
}

static bool virtual_sig(int sig)
{
  return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP;
}

void gmp_sig_hide(int sig)
{
  /* libgmp installed a handler for sig at start (crash report, SIGURG):
   * the program sees the default. */
  memset(&prog[sig], 0, sizeof prog[sig]);
  prog[sig].sa_handler = SIG_DFL;
  known[sig] = true;
}

static int install_tramp(int sig, const struct sigaction *act)
{
  struct sigaction mine = *act;
  mine.sa_sigaction = tramp;
  mine.sa_flags |= SA_SIGINFO;
  return __sigaction(sig, &mine, NULL);
}

void gmp_sigaction_init(void)
{
  gmp_set_urg_chain(urg_chain);
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction old;
    if (!term_default(sig) || __sigaction(sig, NULL, &old) != 0 ||
        (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
      continue;
    if (install_tramp(sig, &old) == 0) {
      prog[sig] = old;
      known[sig] = true;
    }
  }
}

GMP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
  if (!gmp_running || !virtual_sig(sig))
    return __sigaction(sig, act, old);
  bool urg = sig == SIGURG && gmp_owns_sigurg();
  gmp_spin_lock(&lock);
  struct sigaction prev;
  int r = 0;
  if (known[sig]) {
    prev = prog[sig];
  } else {
    r = __sigaction(sig, NULL, &prev);
  }
  if (r == 0 && act) {
    if (urg) {
      /* The kernel keeps the runtime's handler; urg_chain calls this one,
       * on the thread's stack if it is a handler. */
      gmp_preempt_urg_onstack((act->sa_flags & SA_SIGINFO) ||
                              (act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN));
    } else if (!(act->sa_flags & SA_SIGINFO) &&
               (act->sa_handler == SIG_IGN ||
                (act->sa_handler == SIG_DFL && !term_default(sig)))) {
      r = __sigaction(sig, act, NULL);
    } else {
      r = install_tramp(sig, act);
    }
    if (r == 0) {
      prog[sig] = *act;
      known[sig] = true;
    }
  }
  gmp_spin_unlock(&lock);
  if (r == 0 && old)
    *old = prev;
  return r;
}

/* signal() and friends reach glibc's internal __sigaction, past the
 * wrapper above: defined here with glibc's semantics (BSD: restartable,
 * the signal blocked in its handler; System V: reset and no mask). */
static __sighandler_t set_handler(int sig, __sighandler_t h, int flags, bool mask_self)
{
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = h;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  if (mask_self && sig > 0 && sig < NSIG)
    sigaddset(&act.sa_mask, sig);
  if (h == SIG_ERR || sigaction(sig, &act, &old) != 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  return old.sa_handler;
}

GMP_EXPORT __sighandler_t signal(int sig, __sighandler_t h)
{
  return set_handler(sig, h, SA_RESTART, true);
}

GMP_EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t h)
{
  return set_handler(sig, h, SA_RESTART, true);
}

GMP_EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t h)
{
  return set_handler(sig, h, SA_RESETHAND | SA_NODEFER, false);
}
