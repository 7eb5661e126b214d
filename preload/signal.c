/*
 * Signals sent by a thread to itself. glibc's raise() and abort() send
 * with tgkill(getpid(), THREAD_SELF->tid), and a G's tid is a fake one no
 * kernel thread has: the signal would be lost (raise fails with ESRCH;
 * abort then falls through to its last resort, a SIGSEGV). Sent to the OS
 * thread that runs the G, the signal is delivered before the syscall
 * returns, so the handler runs in the calling G, as NPTL guarantees
 * (raise goes through pthread_kill, which also keeps a blocked one queued
 * in the G).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

GMP_EXPORT int raise(int sig)
{
  if (!gmp_self())
    return REAL(raise)(sig);
  /* pthread_kill to oneself (gmp_signal_thread): not blocked, straight to
   * this OS thread; blocked, queued in the G, wherever it runs next. */
  int e = pthread_kill(pthread_self(), sig);
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

GMP_EXPORT void abort(void)
{
  if (gmp_self()) {
    /* glibc's abort raises SIGABRT internally (not through the PLT) with
     * the TCB's tid: give the TCB the real tid of this OS thread. The G
     * never resumes normal life after abort, so the change is final. */
    gmp_tls_set_tid(gmp_thread_self(), gmp_current_ostid());
  }
  REAL(abort)();
  __builtin_unreachable();
}

/* ---- per-thread signal masks ---------------------------------------------
 * The mask belongs to the thread, not to the OS thread under it: kept in
 * the G, applied to whichever OS thread runs it (sched/proc.c). A signal
 * blocked by every running G stays pending until a G that accepts it
 * runs, which is how POSIX delivers a process-directed signal "to a thread
 * that does not block it". SIGURG stays deliverable (the runtime's own
 * interrupt); the program still reads back the mask it set. */

static int mask_op(int how, const sigset_t *set, sigset_t *old)
{
  uint64_t cur = gmp_sigmask_get();
  if (old) {
    sigemptyset(old);
    memcpy(old, &cur, 8);
  }
  if (!set)
    return 0;
  uint64_t s;
  memcpy(&s, set, 8);
  uint64_t n;
  switch (how) {
  case SIG_BLOCK: n = cur | s; break;
  case SIG_UNBLOCK: n = cur & ~s; break;
  case SIG_SETMASK: n = s; break;
  default: return EINVAL;
  }
  /* SIGKILL and SIGSTOP cannot be blocked; the kernel ignores them too. */
  n &= ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)));
  /* Nor glibc's own SIGCANCEL and SIGSETXID (__SIGRTMIN, __SIGRTMIN + 1):
   * NPTL's pthread_sigmask drops them, and setuid & co. need every OS
   * thread to take SIGSETXID, whatever G it runs. */
  n &= ~((1ULL << (32 - 1)) | (1ULL << (33 - 1)));
  gmp_sigmask_set(n);
  return 0;
}

GMP_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
  if (!gmp_self())
    return REAL(pthread_sigmask)(how, set, old);
  return mask_op(how, set, old);
}

GMP_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
  if (!gmp_self())
    return REAL(sigprocmask)(how, set, old);
  int r = mask_op(how, set, old);
  if (r) {
    errno = r;
    return -1;
  }
  return 0;
}
