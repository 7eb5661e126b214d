/*
 * The sleep family parks the G on its P's timer heap. usleep and sleep
 * are wrapped themselves: glibc implements them with internal calls to
 * nanosleep that bypass the PLT.
 *
 * Early wake-up by a signal (EINTR, remaining time) needs per-G signal
 * delivery, which is not in this layer yet: a sleeping G sleeps through
 * signals, which are handled on whichever thread the kernel picks.
 * pthread_cancel does end a sleep (a cancellation point).
 */
#define _GNU_SOURCE
#include <time.h>
#include <unistd.h>

#include "preload/preload.h"

/* The sleep family are cancellation points. */
static void sleep_until_cp(int64_t deadline)
{
  gmp_testcancel();
  if (gmp_sleep_until(deadline) == GMP_PARK_CANCELED)
    gmp_cancel_act();
}

static void sleep_ns(int64_t ns)
{
  if (ns <= 0) {
    gmp_testcancel();
    gmp_yield();
    return;
  }
  int64_t now = gmp_nanotime();
  sleep_until_cp(ns > INT64_MAX - now ? INT64_MAX / 2 : now + ns);
}

GMP_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
  if (!gmp_self())
    return REAL(nanosleep)(req, rem);
  if (!ts_valid(req) || req->tv_sec < 0) {
    errno = EINVAL;
    return -1;
  }
  sleep_ns(ts_ns(req));
  return 0;
}

GMP_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                               struct timespec *rem)
{
  if (!gmp_self())
    return REAL(clock_nanosleep)(clk, flags, req, rem);
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC && clk != CLOCK_BOOTTIME &&
      clk != CLOCK_TAI)
    /* CPU-time clocks (process/thread) and unknown ids: glibc's answer. */
    return REAL(clock_nanosleep)(clk, flags, req, rem);
  if (!ts_valid(req) || (!(flags & TIMER_ABSTIME) && req->tv_sec < 0))
    return EINVAL;
  if (flags & TIMER_ABSTIME) {
    int64_t dl;
    if (!abs_to_deadline(clk, req, &dl))
      return EINVAL;
    if (dl <= gmp_nanotime()) {
      gmp_testcancel();
      gmp_yield();
    } else {
      sleep_until_cp(dl);
    }
    return 0;
  }
  sleep_ns(ts_ns(req));
  return 0;
}

GMP_EXPORT int usleep(useconds_t us)
{
  if (!gmp_self())
    return REAL(usleep)(us);
  sleep_ns((int64_t)us * 1000);
  return 0;
}

GMP_EXPORT unsigned sleep(unsigned s)
{
  if (!gmp_self())
    return REAL(sleep)(s);
  sleep_ns((int64_t)s * 1000000000LL);
  return 0;
}
