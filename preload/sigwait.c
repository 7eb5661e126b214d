/*
 * Waiting for signals: sigwait, sigwaitinfo, sigtimedwait, sigsuspend,
 * pause.
 *
 * A signal sent to a G (pthread_kill, pthread_sigqueue) is queued in the
 * G, not in the OS thread that happens to run it (sched/signal.c, rule
 * 3). A thread that waits for such a signal with sigwait has it blocked,
 * as sigwait requires, so nothing would ever deliver it: the kernel's
 * wait alone never sees it (pbzip2 hung at exit so, its main thread
 * joining a signal thread it had sent SIGQUIT to). These wrappers take
 * from the G's queue first, and wait in the kernel for the set plus the
 * runtime's SIGURG, with which a sender kicks a G waiting for a signal it
 * queued; process-directed signals still arrive through the kernel's
 * wait, as natively.
 *
 * sigsuspend and pause wait for a handler to run. The G's mask becomes
 * the one asked for, so that a signal queued for the G and blocked until
 * then is delivered (sched/signal.c looks at the G's mask), and the
 * runtime's SIGURG stays blocked on the OS thread until the kernel's
 * sigsuspend swaps the masks: a kick sent in between is not lost. Both
 * always fail with EINTR once a handler has run, SA_RESTART or not, and
 * wait on when only the runtime's own SIGURG interrupted them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/io.h"

/* The signal number, or -errno. */
static int wait_common(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
  if (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L || ts->tv_sec < 0))
    return -EINVAL;
  uint64_t want;
  memcpy(&want, set, sizeof want);
  siginfo_t spare;
  if (!info)
    info = &spare;
  int64_t deadline = 0;
  if (ts) {
    int64_t ns = ts->tv_sec > INT64_MAX / 2000000000 ? INT64_MAX / 2
                                                     : ts->tv_sec * 1000000000 + ts->tv_nsec;
    deadline = gmp_nanotime() + ns;
  }
  for (;;) {
    gmp_testcancel(); /* a cancellation point, and a cancel kicks the wait */
    int r = gmp_sigwait_once(want, info, deadline);
    if (r == 0)
      continue;
    /* As glibc's wrapper: tkill's code is reported as SI_USER. */
    if (r > 0 && info->si_code == SI_TKILL)
      info->si_code = SI_USER;
    return r;
  }
}

GMP_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
  if (!gmp_self())
    return NEXT(sigtimedwait)(set, info, ts);
  int r = wait_common(set, info, ts);
  if (r < 0) {
    errno = -r;
    return -1;
  }
  return r;
}

GMP_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
  return sigtimedwait(set, info, NULL); /* glibc's is the same call */
}

GMP_EXPORT int sigwait(const sigset_t *set, int *sig)
{
  if (!gmp_self())
    return NEXT(sigwait)(set, sig);
  int r;
  do /* sigwait itself never fails with EINTR */
    r = wait_common(set, NULL, NULL);
  while (r == -EINTR);
  if (r < 0)
    return -r;
  *sig = r;
  return 0;
}

/* Signals nobody can block: the kernel's own (SIGKILL, SIGSTOP) and
 * glibc's SIGCANCEL and SIGSETXID, which NPTL's masks never hold. */
#define UNBLOCKABLE ((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)) | (1ULL << 31) | (1ULL << 32))

static int suspend_with(uint64_t mask)
{
  uint64_t old = gmp_sigmask_get();
  mask &= ~UNBLOCKABLE;
  for (;;) {
    gmp_testcancel();
    if (gmp_sigsuspend_prepare(mask) > 0)
      break; /* queued signals it lets through: their handlers have run */
    uint64_t eff = mask & ~(1ULL << (SIGURG - 1));
    gmp_entersyscall_as("sigsuspend");
    long r = gmp_sys2(SYS_rt_sigsuspend, (long)&eff, 8);
    gmp_exitsyscall();
    if (r != -EINTR || !gmp_eintr_only_ours())
      break;
  }
  gmp_sigmask_set(old);
  errno = EINTR;
  return -1;
}

GMP_EXPORT int sigsuspend(const sigset_t *set)
{
  if (!gmp_self())
    return NEXT(sigsuspend)(set);
  uint64_t mask;
  memcpy(&mask, set, sizeof mask);
  return suspend_with(mask);
}

GMP_EXPORT int pause(void)
{
  if (!gmp_self())
    return NEXT(pause)();
  return suspend_with(gmp_sigmask_get());
}
