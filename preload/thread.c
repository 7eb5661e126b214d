/*
 * Thread lifecycle and identity: pthread_create makes a G, not a kernel
 * thread. A G's pthread_t is its TCB address, which is what glibc itself
 * returns from pthread_self() (fs:0x10), so pthread_self and
 * pthread_equal need no wrapper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

_Noreturn void gmp_exit_unwind(void *retval);

/* glibc 2.36's struct pthread_attr (sysdeps/nptl/internaltypes.h). Read
 * directly for one fact no getter reveals: whether a stack size was set
 * (pthread_attr_getstacksize reports the default when it was not, and
 * GMP_STACK_SIZE must then win). */
struct glibc_attr {
  int sched_priority;
  int schedpolicy;
  int flags;
  size_t guardsize;
  void *stackaddr;
  size_t stacksize;
};
#define ATTR_FLAG_STACKADDR 0x0008

static int attr_to_gattr(const pthread_attr_t *attr, struct gmp_gattr *a)
{
  memset(a, 0, sizeof *a);
  a->guardsize = gmp_page_size();
  a->inheritsched = PTHREAD_INHERIT_SCHED;
  a->scope = PTHREAD_SCOPE_SYSTEM;
  if (!attr)
    return 0;
  const struct glibc_attr *ia = (const struct glibc_attr *)attr;
  int ds;
  pthread_attr_getdetachstate(attr, &ds);
  a->detached = ds == PTHREAD_CREATE_DETACHED;
  pthread_attr_getguardsize(attr, &a->guardsize);
  if (ia->flags & ATTR_FLAG_STACKADDR) {
    void *lo;
    size_t sz;
    if (pthread_attr_getstack(attr, &lo, &sz) != 0)
      return EINVAL;
    a->stackaddr = lo;
    a->stacksize = sz;
  } else if (ia->stacksize) {
    a->stacksize = ia->stacksize;
  }
  struct sched_param sp;
  pthread_attr_getschedpolicy(attr, &a->sched_policy);
  pthread_attr_getschedparam(attr, &sp);
  a->sched_priority = sp.sched_priority;
  pthread_attr_getinheritsched(attr, &a->inheritsched);
  pthread_attr_getscope(attr, &a->scope);
  return 0;
}

GMP_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr,
                              void *(*fn)(void *), void *arg)
{
  if (!gmp_self())
    return REAL(pthread_create)(th, attr, fn, arg);
  struct gmp_gattr a;
  int rc = attr_to_gattr(attr, &a);
  if (rc)
    return rc;
  if (a.stacksize && a.stacksize < (size_t)PTHREAD_STACK_MIN)
    return EINVAL;
  rc = gmp_go(th, fn, arg, &a);
  return rc == ENOMEM ? EAGAIN : rc;
}

/* join is a cancellation point: ECANCELED from the runtime means the
 * joiner itself was cancelled while waiting. */
static int join_cp(struct g *g, void **ret, int64_t deadline)
{
  gmp_testcancel();
  int r = gmp_join(g, ret, deadline);
  if (r == ECANCELED)
    gmp_cancel_act();
  return r;
}

GMP_EXPORT int pthread_join(pthread_t t, void **ret)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_join)(t, ret);
  return join_cp(g, ret, GMP_NO_DEADLINE);
}

GMP_EXPORT int pthread_tryjoin_np(pthread_t t, void **ret)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_tryjoin_np)(t, ret);
  return gmp_join(g, ret, GMP_TRY);
}

static int clockjoin(pthread_t t, void **ret, clockid_t clk, const struct timespec *abs)
{
  struct g *g = gmp_g_of(t);
  if (!abs)
    return join_cp(g, ret, GMP_NO_DEADLINE);
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
    return EINVAL;
  int r = gmp_join(g, ret, GMP_TRY);
  if (r != EBUSY)
    return r;
  if (!ts_valid(abs))
    return EINVAL;
  int64_t dl = 0;
  abs_to_deadline(clk, abs, &dl);
  return join_cp(g, ret, dl);
}

GMP_EXPORT int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abs)
{
  if (!gmp_self() || !gmp_g_of(t))
    return REAL(pthread_timedjoin_np)(t, ret, abs);
  return clockjoin(t, ret, CLOCK_REALTIME, abs);
}

GMP_EXPORT int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clk,
                                    const struct timespec *abs)
{
  if (!gmp_self() || !gmp_g_of(t))
    return REAL(pthread_clockjoin_np)(t, ret, clk, abs);
  return clockjoin(t, ret, clk, abs);
}

GMP_EXPORT int pthread_detach(pthread_t t)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_detach)(t);
  return gmp_detach(g);
}

GMP_EXPORT void pthread_exit(void *ret)
{
  if (!gmp_self())
    REAL(pthread_exit)(ret);
  gmp_exit_unwind(ret);
}

GMP_EXPORT int sched_yield(void)
{
  if (!gmp_self())
    return REAL(sched_yield)();
  gmp_yield();
  return 0;
}

/* glibc's headers redirect pthread_yield to sched_yield, but the exported
 * pthread_yield calls sched_yield internally (not through the PLT), so old
 * binaries calling it need their own entry, named with an asm label. */
GMP_EXPORT int gmp_pthread_yield(void) __asm__("pthread_yield");
GMP_EXPORT int gmp_pthread_yield(void)
{
  return sched_yield();
}

/* pthread_once_t: 0 = not run, 1 = running, 2 = done (glibc's bit 1 means
 * done as well, so an object completed natively reads as done here). */
static bool once_running(void *arg)
{
  return __atomic_load_n((int *)arg, __ATOMIC_ACQUIRE) == 1;
}

GMP_EXPORT int pthread_once(pthread_once_t *once, void (*fn)(void))
{
  int *o = (int *)once;
  if (__atomic_load_n(o, __ATOMIC_ACQUIRE) & 2)
    return 0;
  if (!gmp_self())
    return REAL(pthread_once)(once, fn);
  for (;;) {
    int v = 0;
    if (__atomic_compare_exchange_n(o, &v, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      fn();
      __atomic_store_n(o, 2, __ATOMIC_RELEASE);
      gmp_unpark_all(o);
      return 0;
    }
    if (v & 2)
      return 0;
    gmp_park_on(o, once_running, o, GMP_NO_DEADLINE, GMP_WAIT_ONCE);
  }
}

/* ---- identity and attributes ----------------------------------------- */

GMP_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)) || gmp_g_is_main(g))
    return REAL(pthread_getattr_np)(t, attr);
  int rc = pthread_attr_init(attr);
  if (rc)
    return rc;
  void *lo;
  size_t size, guard;
  gmp_g_stack(g, &lo, &size, &guard);
  pthread_attr_setstack(attr, lo, size);
  pthread_attr_setguardsize(attr, guard);
  pthread_attr_setdetachstate(attr, gmp_g_detached(g) ? PTHREAD_CREATE_DETACHED
                                                      : PTHREAD_CREATE_JOINABLE);
  int policy, prio;
  gmp_g_sched(g, &policy, &prio, false);
  struct sched_param sp = {.sched_priority = prio};
  pthread_attr_setschedpolicy(attr, policy);
  pthread_attr_setschedparam(attr, &sp);
  return 0;
}

GMP_EXPORT int pthread_setname_np(pthread_t t, const char *name)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_setname_np)(t, name);
  size_t n = strlen(name);
  if (n >= GMP_MAX_NAME_LEN)
    return ERANGE;
  memcpy(gmp_g_name(g), name, n + 1);
  return 0;
}

GMP_EXPORT int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_getname_np)(t, buf, len);
  /* A thread nobody named is called like the process, as in the kernel
   * (a new thread inherits its creator's comm; here: the program's). */
  const char *name = gmp_g_name(g);
  char comm[GMP_MAX_NAME_LEN];
  if (!*name) {
    snprintf(comm, sizeof comm, "%s", program_invocation_short_name);
    name = comm;
  }
  size_t n = strlen(name);
  if (len < n + 1)
    return ERANGE;
  memcpy(buf, name, n + 1);
  return 0;
}

static int check_policy(int policy, int prio)
{
  if (policy != SCHED_OTHER && policy != SCHED_FIFO && policy != SCHED_RR &&
      policy != SCHED_BATCH && policy != SCHED_IDLE)
    return EINVAL;
  if (prio < sched_get_priority_min(policy) || prio > sched_get_priority_max(policy))
    return EINVAL;
  return 0;
}

/* Scheduling policy and priority are recorded and reported, not enforced:
 * all Gs share the Ps (docs/pthread-symbols.md). */
GMP_EXPORT int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *sp)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_setschedparam)(t, policy, sp);
  int rc = check_policy(policy, sp->sched_priority);
  if (rc)
    return rc;
  int prio = sp->sched_priority;
  gmp_g_sched(g, &policy, &prio, true);
  return 0;
}

GMP_EXPORT int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *sp)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_getschedparam)(t, policy, sp);
  int prio;
  gmp_g_sched(g, policy, &prio, false);
  sp->sched_priority = prio;
  return 0;
}

GMP_EXPORT int pthread_setschedprio(pthread_t t, int prio)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_setschedprio)(t, prio);
  int policy, old;
  gmp_g_sched(g, &policy, &old, false);
  int rc = check_policy(policy, prio);
  if (rc)
    return rc;
  gmp_g_sched(g, &policy, &prio, true);
  return 0;
}

/* Affinity of a G: any P may run it, so it is the process's affinity.
 * Setting one is refused with EINVAL only for an empty set; otherwise it
 * is applied to nothing, and reported as the process's mask (docs). */
GMP_EXPORT int pthread_getaffinity_np(pthread_t t, size_t sz, cpu_set_t *set)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_getaffinity_np)(t, sz, set);
  if (sched_getaffinity(0, sz, set) != 0)
    return errno;
  return 0;
}

GMP_EXPORT int pthread_setaffinity_np(pthread_t t, size_t sz, const cpu_set_t *set)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_setaffinity_np)(t, sz, set);
  if (CPU_COUNT_S(sz, set) == 0)
    return EINVAL;
  return 0;
}

/* Signals to a G (sched/signal.c): to itself and not blocked, straight to
 * the OS thread running it (the handler runs before the call returns, as
 * NPTL guarantees); to another G, or blocked, queued in that G, whose wait is ended and
 * which runs the handler itself, on its own stack, when it next runs. */
int gmp_signal_thread(struct g *g, siginfo_t *info)
{
  int sig = info->si_signo;
  if (sig < 0 || sig >= NSIG)
    return EINVAL;
  if (!gmp_g_alive(g))
    return ESRCH;
  if (sig == 0)
    return 0;
  if (g == gmp_self() && !(gmp_sigmask_get() & (1ULL << (sig - 1)))) {
    /* No scheduling point between reading the M and the syscall. A
     * signal the G blocks is queued in it instead, like any other: left
     * pending on this OS thread, it would stay behind when the G moves on
     * to another, and go to whichever G runs here next and accepts it. */
    long r = gmp_sys4(SYS_rt_tgsigqueueinfo, getpid(), gmp_current_ostid(), sig, info);
    return r < 0 ? (int)-r : 0;
  }
  gmp_signal_g(g, info);
  return 0;
}

GMP_EXPORT int pthread_kill(pthread_t t, int sig)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_kill)(t, sig);
  siginfo_t info;
  memset(&info, 0, sizeof info);
  info.si_signo = sig;
  info.si_code = SI_TKILL;
  info.si_pid = getpid();
  info.si_uid = getuid();
  return gmp_signal_thread(g, &info);
}

GMP_EXPORT int pthread_sigqueue(pthread_t t, int sig, const union sigval val)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_sigqueue)(t, sig, val);
  siginfo_t info;
  memset(&info, 0, sizeof info);
  info.si_signo = sig;
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value = val;
  return gmp_signal_thread(g, &info);
}
