/*
 * Signals sent by a thread to itself. glibc's raise() and abort() send
 * with tgkill(getpid(), THREAD_SELF->tid), and a G's tid is a fake one no
 * kernel thread has: the signal would be lost (raise fails with ESRCH;
 * abort then falls through to its last resort, a SIGSEGV). Sent to the OS
 * thread that runs the G, the signal is delivered before the syscall
 * returns, so the handler runs in the calling G, as NPTL guarantees.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

GMP_EXPORT int raise(int sig)
{
  if (!gmp_self())
    return REAL(raise)(sig);
  /* No scheduling point between reading the M and the tgkill: the G
   * cannot move to another OS thread in between. */
  long r = gmp_sys3(SYS_tgkill, getpid(), gmp_current_ostid(), sig);
  if (r < 0) {
    errno = (int)-r;
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
