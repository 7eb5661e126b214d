/*
 * Per-thread CPU-time clocks: pthread_getcpuclockid, and clock_gettime /
 * clock_getres on a thread's clock or CLOCK_THREAD_CPUTIME_ID.
 *
 * The kernel's per-thread clocks measure an OS thread, which under libgmp
 * runs many threads: CLOCK_THREAD_CPUTIME_ID read by a thread gave the
 * CPU time of whichever OS thread ran it. The runtime counts each
 * thread's own (sched/proc.c, from the first request on), and a thread's
 * clock id is one the kernel never hands out: the encoding of a thread
 * CPU clock (~tid << 3 | per-thread) with clock type 3, which the kernel
 * refuses (CPUCLOCK_MAX). So timer_create and clock_nanosleep on it fail
 * with EINVAL, plainly, rather than measure the wrong thread; clock_gettime
 * and clock_getres answer it here. haproxy asks for its threads' clocks
 * to run its watchdog and ignored the ENOENT libgmp used to answer: it
 * then timed its threads on the wall clock and killed itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "preload/preload.h"

#define G_CLOCK_TYPE 3 /* beyond the kernel's CPUCLOCK_MAX: never valid there */
#define PERTHREAD 4

static clockid_t g_clock(int tid)
{
  return (clockid_t)((~(unsigned)tid) << 3) | PERTHREAD | G_CLOCK_TYPE;
}

static bool is_g_clock(clockid_t clk)
{
  return clk < 0 && (clk & 7) == (PERTHREAD | G_CLOCK_TYPE);
}

static int tid_of(clockid_t clk)
{
  return (int)~(clk >> 3);
}

GMP_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t *clk)
{
  struct g *g;
  if (!gmp_self() || !(g = gmp_g_of(t)))
    return REAL(pthread_getcpuclockid)(t, clk);
  if (!gmp_g_alive(g))
    return ESRCH;
  gmp_cpuclock_enable();
  *clk = g_clock(gmp_g_tid(g));
  return 0;
}

/* The G whose clock clk is (NULL: it has ended, or it is not one). */
static struct g *g_of_clock(clockid_t clk)
{
  struct g *self = gmp_self();
  if (clk == CLOCK_THREAD_CPUTIME_ID)
    return self;
  int tid = tid_of(clk);
  if (self && gmp_g_tid(self) == tid)
    return self;
  return gmp_g_of_tid(tid);
}

GMP_EXPORT int clock_gettime(clockid_t clk, struct timespec *ts)
{
  if (__builtin_expect(clk != CLOCK_THREAD_CPUTIME_ID && !is_g_clock(clk), 1) || !gmp_self())
    return REAL(clock_gettime)(clk, ts);
  struct g *g = g_of_clock(clk);
  if (!g) {
    errno = EINVAL; /* as the kernel answers for a thread that has exited */
    return -1;
  }
  gmp_cpuclock_enable();
  int64_t ns = gmp_g_cputime(g);
  ts->tv_sec = ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
  return 0;
}

GMP_EXPORT int clock_getres(clockid_t clk, struct timespec *res)
{
  if (__builtin_expect(!is_g_clock(clk), 1) || !gmp_self())
    return REAL(clock_getres)(clk, res);
  if (!g_of_clock(clk)) {
    errno = EINVAL;
    return -1;
  }
  if (res) {
    res->tv_sec = 0;
    res->tv_nsec = 1;
  }
  return 0;
}
