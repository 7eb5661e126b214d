/*
 * Unnamed POSIX semaphores on the parking lot, in glibc's own layout
 * (struct new_sem): a 64-bit word with the value in the low 32 bits and
 * the number of waiters in the high 32, then `private`. Because value
 * and waiter count share one word, sem_post's CAS tells it atomically
 * whether anyone may be parked: an uncontended post never touches the
 * parking lot.
 *
 * Process-shared semaphores (sem_init with pshared, and every named one
 * from sem_open) have private == FUTEX_SHARED, which in glibc's encoding
 * is 128 (the value XORed into FUTEX_PRIVATE_FLAG; FUTEX_PRIVATE is 0),
 * and stay glibc's: their waiters may live in another process.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "preload/preload.h"

#define VALUE_MASK 0xffffffffULL
#define WAITER_ONE (1ULL << 32)
#define GLIBC_FUTEX_PRIVATE 0

struct gsem {
  _Atomic uint64_t data;
  int private_;
  int pad;
};
_Static_assert(sizeof(struct gsem) <= sizeof(sem_t), "sem layout");

static inline bool native_sem(sem_t *s)
{
  return ((struct gsem *)s)->private_ != GLIBC_FUTEX_PRIVATE;
}

GMP_EXPORT int sem_init(sem_t *s, int pshared, unsigned value)
{
  if (!gmp_running || pshared)
    return REAL(sem_init)(s, pshared, value);
  if (value > SEM_VALUE_MAX) {
    errno = EINVAL;
    return -1;
  }
  struct gsem *g = (struct gsem *)s;
  atomic_store(&g->data, value);
  g->private_ = GLIBC_FUTEX_PRIVATE;
  g->pad = 0;
  return 0;
}

GMP_EXPORT int sem_destroy(sem_t *s)
{
  if (!gmp_running || native_sem(s))
    return REAL(sem_destroy)(s);
  return 0;
}

static bool try_take(struct gsem *g)
{
  uint64_t d = atomic_load(&g->data);
  while (d & VALUE_MASK)
    if (atomic_compare_exchange_weak(&g->data, &d, d - 1))
      return true;
  return false;
}

static bool value_zero(void *arg)
{
  return (atomic_load(&((struct gsem *)arg)->data) & VALUE_MASK) == 0;
}

static int sem_wait_common(struct gsem *g, int64_t deadline, bool abs_ok)
{
  if (deadline != GMP_TRY)
    gmp_testcancel(); /* sem_wait and sem_timedwait are cancellation points */
  if (try_take(g))
    return 0;
  if (deadline == GMP_TRY) {
    errno = EAGAIN;
    return -1;
  }
  if (!abs_ok) {
    errno = EINVAL;
    return -1;
  }
  atomic_fetch_add(&g->data, WAITER_ONE);
  int rc = 0;
  for (;;) {
    /* Take a unit and drop our waiter mark in one CAS. */
    uint64_t d = atomic_load(&g->data);
    bool got = false;
    while (d & VALUE_MASK) {
      if (atomic_compare_exchange_weak(&g->data, &d, d - 1 - WAITER_ONE)) {
        got = true;
        break;
      }
    }
    if (got)
      break;
    int r = gmp_park_on(g, value_zero, g, deadline, GMP_WAIT_SEM | GMP_WAIT_CANCELPOINT);
    if (r == GMP_PARK_CANCELED) {
      atomic_fetch_sub(&g->data, WAITER_ONE);
      gmp_cancel_act();
    }
    if (r == GMP_PARK_INTERRUPTED) { /* a signal handler ran: EINTR, as natively */
      atomic_fetch_sub(&g->data, WAITER_ONE);
      errno = EINTR;
      rc = -1;
      break;
    }
    if (r == GMP_PARK_TIMEDOUT) {
      d = atomic_load(&g->data);
      for (;;) {
        if (d & VALUE_MASK) {
          if (atomic_compare_exchange_weak(&g->data, &d, d - 1 - WAITER_ONE))
            return 0;
        } else if (atomic_compare_exchange_weak(&g->data, &d, d - WAITER_ONE)) {
          break;
        }
      }
      errno = ETIMEDOUT;
      rc = -1;
      break;
    }
  }
  return rc;
}

GMP_EXPORT int sem_wait(sem_t *s)
{
  if (!gmp_self() || native_sem(s))
    return NATIVE_BLOCKING(REAL(sem_wait)(s));
  return sem_wait_common((struct gsem *)s, GMP_NO_DEADLINE, true);
}

GMP_EXPORT int sem_trywait(sem_t *s)
{
  if (!gmp_self() || native_sem(s))
    return REAL(sem_trywait)(s);
  return sem_wait_common((struct gsem *)s, GMP_TRY, true);
}

static int sem_timed(sem_t *s, clockid_t clk, const struct timespec *abs)
{
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC) {
    errno = EINVAL;
    return -1;
  }
  int64_t dl = 0;
  bool ok = ts_valid(abs);
  if (ok)
    abs_to_deadline(clk, abs, &dl);
  return sem_wait_common((struct gsem *)s, dl, ok);
}

GMP_EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs)
{
  if (!gmp_self() || native_sem(s))
    return NATIVE_BLOCKING(REAL(sem_timedwait)(s, abs));
  return sem_timed(s, CLOCK_REALTIME, abs);
}

GMP_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *abs)
{
  if (!gmp_self() || native_sem(s))
    return NATIVE_BLOCKING(REAL(sem_clockwait)(s, clk, abs));
  return sem_timed(s, clk, abs);
}

GMP_EXPORT int sem_post(sem_t *s)
{
  if (!gmp_running || native_sem(s))
    return REAL(sem_post)(s);
  struct gsem *g = (struct gsem *)s;
  uint64_t d = atomic_load(&g->data);
  do {
    if ((d & VALUE_MASK) == SEM_VALUE_MAX) {
      errno = EOVERFLOW;
      return -1;
    }
  } while (!atomic_compare_exchange_weak(&g->data, &d, d + 1));
  if (d >> 32)
    gmp_unpark_one(g);
  return 0;
}

GMP_EXPORT int sem_getvalue(sem_t *s, int *v)
{
  if (!gmp_running || native_sem(s))
    return REAL(sem_getvalue)(s, v);
  *v = (int)(atomic_load(&((struct gsem *)s)->data) & VALUE_MASK);
  return 0;
}
