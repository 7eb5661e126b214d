/*
 * Thread ids: gettid() and the system calls that name a thread by its id.
 *
 * Natively every thread has a kernel tid, and programs use it: as a
 * unique thread number in logs (CPython's threading.get_native_id()), to
 * signal one thread (tgkill), to ask for its affinity or scheduling
 * policy. A G is not a kernel thread, and the OS thread under it changes
 * from one switch to the next, so its id cannot be the OS thread's: ten
 * Gs on one M would share an id, and a signal sent to it would reach
 * whichever G that M runs at the moment.
 *
 * So every G has an id of its own (sched.h: the main G the process's pid,
 * the others numbers from GMP_TID_BASE up, never a real tid), the one
 * glibc already keeps in its TCB. gettid() and syscall(SYS_gettid) return
 * it, and the calls below map it back to the G:
 *   tgkill, tkill, rt_tgsigqueueinfo   the signal goes to that G, as
 *                                      pthread_kill/pthread_sigqueue do;
 *   sched_{get,set}affinity            as pthread_{get,set}affinity_np:
 *                                      a G runs on any P, so it reports
 *                                      the process's mask, and a new mask
 *                                      is checked and recorded nowhere;
 *   sched_{get,set}scheduler/param     as pthread_{get,set}schedparam:
 *                                      recorded and reported, not
 *                                      enforced (docs/pthread-symbols.md);
 *   set_tid_address                    returns the G's id; the address is
 *                                      cleared and woken at the G's exit.
 * The caller's own id in these calls means what 0 means (the calling
 * thread), as natively. An OS thread's id (read from /proc/self/task) and
 * any other process's pass straight through to the kernel. Interfaces
 * that hand a tid to the kernel and are not listed here (/proc/self/task/
 * TID, setpriority, ioprio_set, SIGEV_THREAD_ID timers, F_SETOWN_EX) get
 * the kernel's answer for an unknown thread, ESRCH or ENOENT (README).
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"
#include "shim/shim.h"

static long tid_signal(struct g *g, int sig, const siginfo_t *given)
{
  siginfo_t info;
  if (given) {
    info = *given;
  } else {
    memset(&info, 0, sizeof info);
    info.si_code = SI_TKILL;
    info.si_pid = getpid();
    info.si_uid = getuid();
  }
  info.si_signo = sig;
  return -(long)gmp_signal_thread(g, &info);
}

/* The G that tid names (the caller's own id: the caller), or NULL. */
static struct g *g_of_id(struct g *self, long tid)
{
  if (tid <= 0 || tid != (int)tid)
    return NULL;
  return tid == gmp_g_tid(self) ? self : gmp_g_of_tid((int)tid);
}

/* nr's tid argument names another G (not the caller): that G, or NULL. */
static struct g *other_g(struct g *self, long tid)
{
  struct g *g = g_of_id(self, tid);
  return g == self ? NULL : g;
}

/* The kernel's view of the call (result >= 0 or -errno), for a G caller. */
static long tid_call(struct g *self, long nr, long a1, long a2, long a3, long a4)
{
  struct g *g;
  int policy, prio;
  switch (nr) {
  case SYS_gettid:
    return gmp_g_tid(self);
  case SYS_tgkill:
  case SYS_rt_tgsigqueueinfo:
    /* the caller's own id is a G too: signal_thread handles "myself" */
    if (a1 == getpid() && (g = g_of_id(self, a2)))
      return tid_signal(g, (int)a3, nr == SYS_tgkill ? NULL : (const siginfo_t *)a4);
    break;
  case SYS_tkill:
    if ((g = g_of_id(self, a1)))
      return tid_signal(g, (int)a2, NULL);
    break;
  case SYS_sched_getaffinity:
    if (a1 == gmp_g_tid(self) || other_g(self, a1))
      return gmp_sys3(nr, 0, a2, a3);
    break;
  case SYS_sched_setaffinity:
    if (a1 == gmp_g_tid(self))
      return gmp_sys3(nr, 0, a2, a3);
    if (other_g(self, a1)) {
      cpu_set_t *set = (cpu_set_t *)a3;
      if (!set)
        return -EFAULT;
      return CPU_COUNT_S((size_t)a2, set) ? 0 : -EINVAL;
    }
    break;
  case SYS_sched_getscheduler:
  case SYS_sched_getparam:
  case SYS_sched_setscheduler:
  case SYS_sched_setparam: {
    if (a1 == gmp_g_tid(self))
      a1 = 0;
    if (!(g = other_g(self, a1)))
      break;
    struct sched_param *sp = (struct sched_param *)(nr == SYS_sched_setscheduler ? a3 : a2);
    if (nr != SYS_sched_getscheduler && !sp)
      return -EINVAL;
    gmp_g_sched(g, &policy, &prio, false);
    if (nr == SYS_sched_getscheduler)
      return policy;
    if (nr == SYS_sched_getparam) {
      sp->sched_priority = prio;
      return 0;
    }
    if (nr == SYS_sched_setscheduler)
      policy = (int)a2 & ~SCHED_RESET_ON_FORK;
    /* the setters' checks (valid policy, priority in its range) */
    int rc = pthread_setschedparam(gmp_g_pthread(g), policy, sp);
    return -(long)rc;
  }
  }
  return gmp_sys4(nr, a1, a2, a3, a4);
}

/* set_tid_address from a G. The kernel's would replace the clear_child_tid
 * of the OS thread under it, an M: when that OS thread ended, the kernel
 * would write 0 into the G's memory, long gone by then, and NPTL's join of
 * the M would never see its own word cleared. So a G's call is kept here,
 * per G (libgmp's __thread data is per G), and carried out at the G's
 * exit as the kernel does at a thread's: 0 stored, one waiter woken. */
static __thread int *clear_tid;

void gmp_tid_thread_exit(void)
{
  int *p = clear_tid;
  if (!p)
    return;
  clear_tid = NULL;
  __atomic_store_n(p, 0, __ATOMIC_SEQ_CST);
  /* A waiter may be parked by the runtime's futex (private wait) or in
   * the kernel (shared wait): wake one of either kind. */
  gmp_futex((long)p, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0);
  gmp_sys6(SYS_futex, (long)p, FUTEX_WAKE, 1, 0, 0, 0);
}

bool gmp_tid_syscall(long nr, long a1, long a2, long a3, long a4, long *ret)
{
  if (nr == SYS_set_tid_address) {
    struct g *self = gmp_self();
    if (!self)
      return false;
    clear_tid = (int *)a1;
    *ret = gmp_g_tid(self);
    return true;
  }
  switch (nr) {
  case SYS_gettid: case SYS_tgkill: case SYS_tkill: case SYS_rt_tgsigqueueinfo:
  case SYS_sched_getaffinity: case SYS_sched_setaffinity:
  case SYS_sched_getscheduler: case SYS_sched_getparam:
  case SYS_sched_setscheduler: case SYS_sched_setparam:
    break;
  default:
    return false;
  }
  struct g *self = gmp_self();
  if (!self)
    return false;
  long r = tid_call(self, nr, a1, a2, a3, a4);
  if (r < 0) {
    errno = (int)-r;
    r = -1;
  }
  *ret = r;
  return true;
}

/* The glibc functions: the same calls, in libc's -1/errno form. */
static long libc_form(long nr, long a1, long a2, long a3, long a4)
{
  long r;
  if (gmp_tid_syscall(nr, a1, a2, a3, a4, &r))
    return r;
  r = gmp_sys4(nr, a1, a2, a3, a4);
  if (r < 0) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

GMP_EXPORT pid_t gettid(void)
{
  return (pid_t)libc_form(SYS_gettid, 0, 0, 0, 0);
}

GMP_EXPORT int tgkill(pid_t tgid, pid_t tid, int sig)
{
  return (int)libc_form(SYS_tgkill, tgid, tid, sig, 0);
}

GMP_EXPORT int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set)
{
  /* The kernel copies its own mask size and returns it; glibc clears the
   * rest of the caller's set and returns 0. */
  long r = libc_form(SYS_sched_getaffinity, pid, (long)size, (long)set, 0);
  if (r < 0)
    return -1;
  if ((size_t)r < size)
    memset((char *)set + r, 0, size - (size_t)r);
  return 0;
}

GMP_EXPORT int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t *set)
{
  return (int)libc_form(SYS_sched_setaffinity, pid, (long)size, (long)set, 0);
}

GMP_EXPORT int sched_getscheduler(pid_t pid)
{
  return (int)libc_form(SYS_sched_getscheduler, pid, 0, 0, 0);
}

GMP_EXPORT int sched_setscheduler(pid_t pid, int policy, const struct sched_param *sp)
{
  return (int)libc_form(SYS_sched_setscheduler, pid, policy, (long)sp, 0);
}

GMP_EXPORT int sched_getparam(pid_t pid, struct sched_param *sp)
{
  return (int)libc_form(SYS_sched_getparam, pid, (long)sp, 0, 0);
}

GMP_EXPORT int sched_setparam(pid_t pid, const struct sched_param *sp)
{
  return (int)libc_form(SYS_sched_setparam, pid, (long)sp, 0, 0);
}
