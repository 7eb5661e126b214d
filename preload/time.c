/*
 * The sleep family parks the G on its P's timer heap. usleep and sleep
 * are wrapped themselves: glibc implements them with internal calls to
 * nanosleep that bypass the PLT.
 *
 * A signal for the sleeping thread ends the sleep after its handler ran
 * (EINTR, with the time left for nanosleep/clock_nanosleep, the seconds
 * left for sleep), as natively; pthread_cancel ends it too (a
 * cancellation point).
 */
#define _GNU_SOURCE
#include <time.h>
#include <unistd.h>

#include "preload/preload.h"

/* The sleep family are cancellation points. Returns 0, or the time
 * left (> 0) when a signal ended the sleep. */
static int64_t sleep_until_cp(int64_t deadline)
{
  gmp_testcancel();
  int r = gmp_sleep_until(deadline);
  if (r == GMP_PARK_CANCELED)
    gmp_cancel_act();
  if (r == GMP_PARK_INTERRUPTED) {
    int64_t left = deadline - gmp_nanotime();
    return left > 0 ? left : 1;
  }
  return 0;
}

static int64_t sleep_ns(int64_t ns)
{
  if (ns <= 0) {
    gmp_testcancel();
    gmp_yield();
    return 0;
  }
  int64_t now = gmp_nanotime();
  return sleep_until_cp(ns > INT64_MAX - now ? INT64_MAX / 2 : now + ns);
}

static int interrupted(int64_t left, struct timespec *rem)
{
  if (rem) {
    rem->tv_sec = left / 1000000000;
    rem->tv_nsec = left % 1000000000;
  }
  return EINTR;
}

GMP_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
  if (!gmp_self())
    return REAL(nanosleep)(req, rem);
  if (!ts_valid(req) || req->tv_sec < 0) {
    errno = EINVAL;
    return -1;
  }
  int64_t left = sleep_ns(ts_ns(req));
  if (left) {
    errno = interrupted(left, rem);
    return -1;
  }
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
    } else if (sleep_until_cp(dl)) {
      return EINTR; /* absolute: rem is not written */
    }
    return 0;
  }
  int64_t left = sleep_ns(ts_ns(req));
  return left ? interrupted(left, rem) : 0;
}

GMP_EXPORT int usleep(useconds_t us)
{
  if (!gmp_self())
    return REAL(usleep)(us);
  if (sleep_ns((int64_t)us * 1000)) {
    errno = EINTR;
    return -1;
  }
  return 0;
}

GMP_EXPORT unsigned sleep(unsigned s)
{
  if (!gmp_self())
    return REAL(sleep)(s);
  int64_t left = sleep_ns((int64_t)s * 1000000000LL);
  return (unsigned)((left + 999999999) / 1000000000); /* seconds left */
}
