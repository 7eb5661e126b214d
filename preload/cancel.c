/*
 * pthread_cancel and its state, with NPTL's semantics, on Gs.
 *
 * glibc's pthread_cancel signals the target's tid, which for a G is a
 * fake one, so cancellation is done here: the runtime marks the G and
 * ends a wait at a cancellation point (sched/park.c); the G acts on it at
 * its next cancellation point by unwinding with PTHREAD_CANCELED, which
 * runs its cleanup handlers and C++ destructors (preload/exit.c).
 *
 * A G blocked in a system call is interrupted with SIGURG sent to its OS
 * thread (the runtime's handler, sched/preempt.c, is installed without
 * SA_RESTART, so the call fails with EINTR and the wrapper acts); sysmon
 * repeats the signal while the cancel is pending, which covers a signal
 * that lands just before the call starts. With asynchronous cancellation
 * enabled, the same signal unwinds the G from wherever it was interrupted,
 * as glibc's SIGCANCEL handler does.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "preload/preload.h"

_Noreturn void gmp_exit_unwind(void *retval);

_Noreturn void gmp_cancel_act(void)
{
  /* Cancellation is disabled while the cleanup handlers run (POSIX). */
  int disabled = 1;
  gmp_cancel_state(&disabled, true);
  gmp_exit_unwind(PTHREAD_CANCELED);
}

void gmp_testcancel(void)
{
  if (gmp_cancel_pending())
    gmp_cancel_act();
}

static void kick(int ostid)
{
  gmp_interrupt_ostid(ostid);
}

/* Runs first in the runtime's SIGURG handler, in the interrupted G. */
static void async_hook(void)
{
  if (!gmp_cancel_pending())
    return;
  int async = 0;
  gmp_cancel_type(&async, false);
  if (async) {
    /* The unwinding leaves the handler without sigreturn: unblock SIGURG
     * (blocked during its handler), or this OS thread would keep it
     * blocked for every G it runs next. */
    sigset_t urg;
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    pthread_sigmask(SIG_UNBLOCK, &urg, NULL);
    gmp_cancel_act(); /* unwinds through the signal frame */
  }
}

void gmp_cancel_init(void)
{
  gmp_set_async_hook(async_hook);
  gmp_set_cancel_kick(kick);
}

GMP_EXPORT int pthread_cancel(pthread_t t)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_cancel)(t);
  if (!gmp_g_alive(g))
    return 0; /* a finished, unjoined thread: NPTL returns 0 as well */
  int ostid = gmp_cancel(g);
  if (g == gmp_self()) {
    int async = 0;
    gmp_cancel_type(&async, false);
    if (async)
      gmp_testcancel();
    return 0;
  }
  if (ostid)
    kick(ostid);
  return 0;
}

GMP_EXPORT int pthread_setcancelstate(int state, int *oldstate)
{
  if (!gmp_self())
    return REAL(pthread_setcancelstate)(state, oldstate);
  if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE)
    return EINVAL;
  int d = state == PTHREAD_CANCEL_DISABLE;
  gmp_cancel_state(&d, true);
  if (oldstate)
    *oldstate = d ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
  int async = 0;
  gmp_cancel_type(&async, false);
  if (async)
    gmp_testcancel();
  return 0;
}

GMP_EXPORT int pthread_setcanceltype(int type, int *oldtype)
{
  if (!gmp_self())
    return REAL(pthread_setcanceltype)(type, oldtype);
  if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
    return EINVAL;
  int a = type == PTHREAD_CANCEL_ASYNCHRONOUS;
  gmp_cancel_type(&a, true);
  if (oldtype)
    *oldtype = a ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
  if (type == PTHREAD_CANCEL_ASYNCHRONOUS)
    gmp_testcancel();
  return 0;
}

GMP_EXPORT void pthread_testcancel(void)
{
  if (!gmp_self()) {
    REAL(pthread_testcancel)();
    return;
  }
  gmp_testcancel();
}
