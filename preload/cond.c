/*
 * pthread_cond_* on the parking lot.
 *
 * Layout inside the program's 48-byte pthread_cond_t (all zero is a valid
 * PTHREAD_COND_INITIALIZER condvar on CLOCK_REALTIME):
 *   seq      @0  bumped by every signal/broadcast; a waiter parks only if
 *                it is unchanged since the waiter released the mutex, so a
 *                signal between unlock and park is never lost
 *   clock    @4  0 = CLOCK_REALTIME, 1 = CLOCK_MONOTONIC (condattr)
 *   nwaiters @8  Gs between "about to wait" and "woken": lets signal with
 *                nobody waiting skip the parking lot entirely
 *   __wrefs @36  glibc's: bit 0 marks a process-shared condvar made by
 *                glibc, which is then left to glibc entirely.
 * nwaiters/seq are a Dekker pair: the waiter increments nwaiters then
 * reads seq (under the bucket lock), the signaller bumps seq then reads
 * nwaiters, all sequentially consistent: at least one sees the other.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

int gmp_mutex_lock(pthread_mutex_t *mx);
int gmp_mutex_unlock(pthread_mutex_t *mx);

struct gcond {
  _Atomic uint32_t seq;
  uint32_t clock;
  _Atomic uint32_t nwaiters;
};
#define WREFS_OFF 36

_Static_assert(sizeof(struct gcond) <= WREFS_OFF, "cond layout");

static inline bool native_cond(pthread_cond_t *c)
{
  return (__atomic_load_n((unsigned *)((char *)c + WREFS_OFF), __ATOMIC_RELAXED) & 1) != 0;
}

GMP_EXPORT int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
  if (!gmp_running)
    return REAL(pthread_cond_init)(c, attr);
  int pshared = PTHREAD_PROCESS_PRIVATE;
  clockid_t clk = CLOCK_REALTIME;
  if (attr) {
    pthread_condattr_getpshared(attr, &pshared);
    pthread_condattr_getclock(attr, &clk);
  }
  if (pshared != PTHREAD_PROCESS_PRIVATE)
    return REAL(pthread_cond_init)(c, attr);
  memset(c, 0, sizeof *c);
  ((struct gcond *)c)->clock = clk == CLOCK_MONOTONIC;
  return 0;
}

GMP_EXPORT int pthread_cond_destroy(pthread_cond_t *c)
{
  if (!gmp_running || native_cond(c))
    return REAL(pthread_cond_destroy)(c);
  return 0;
}

struct wait_arg {
  struct gcond *c;
  uint32_t seq;
};

static bool seq_unchanged(void *arg)
{
  struct wait_arg *w = arg;
  return atomic_load(&w->c->seq) == w->seq;
}

static int cond_wait(pthread_cond_t *cv, pthread_mutex_t *mx, int64_t deadline)
{
  struct gcond *c = (struct gcond *)cv;
  struct wait_arg w = {.c = c};
  gmp_testcancel(); /* a cancellation point, with the mutex still held */
  atomic_fetch_add(&c->nwaiters, 1);
  w.seq = atomic_load(&c->seq);
  int rc = gmp_mutex_unlock(mx);
  if (rc) {
    atomic_fetch_sub(&c->nwaiters, 1);
    return rc;
  }
  int r = gmp_park_on(&c->seq, seq_unchanged, &w, deadline,
                      GMP_WAIT_COND | GMP_WAIT_CANCELPOINT);
  atomic_fetch_sub(&c->nwaiters, 1);
  if (r == GMP_PARK_CANCELED) {
    /* POSIX: the cleanup handlers run with the mutex held again. */
    gmp_mutex_lock(mx);
    gmp_cancel_act();
  }
  /* A robust mutex whose owner died meanwhile: its state is reported. */
  rc = gmp_mutex_lock(mx);
  if (rc == EOWNERDEAD || rc == ENOTRECOVERABLE)
    return rc;
  return r == GMP_PARK_TIMEDOUT ? ETIMEDOUT : 0;
}

GMP_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
  if (!gmp_self() || native_cond(c))
    return NATIVE_BLOCKING(REAL(pthread_cond_wait)(c, m));
  return cond_wait(c, m, GMP_NO_DEADLINE);
}

static int timedwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                     const struct timespec *abs)
{
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
    return EINVAL;
  if (!ts_valid(abs))
    return EINVAL;
  int64_t dl = 0;
  abs_to_deadline(clk, abs, &dl);
  return cond_wait(c, m, dl);
}

GMP_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                      const struct timespec *abs)
{
  if (!gmp_self() || native_cond(c))
    return NATIVE_BLOCKING(REAL(pthread_cond_timedwait)(c, m, abs));
  clockid_t clk = ((struct gcond *)c)->clock ? CLOCK_MONOTONIC : CLOCK_REALTIME;
  return timedwait(c, m, clk, abs);
}

GMP_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                                      const struct timespec *abs)
{
  if (!gmp_self() || native_cond(c))
    return NATIVE_BLOCKING(REAL(pthread_cond_clockwait)(c, m, clk, abs));
  return timedwait(c, m, clk, abs);
}

GMP_EXPORT int pthread_cond_signal(pthread_cond_t *cv)
{
  if (!gmp_running || native_cond(cv))
    return REAL(pthread_cond_signal)(cv);
  struct gcond *c = (struct gcond *)cv;
  atomic_fetch_add(&c->seq, 1);
  if (atomic_load(&c->nwaiters) != 0)
    gmp_unpark_one(&c->seq);
  return 0;
}

GMP_EXPORT int pthread_cond_broadcast(pthread_cond_t *cv)
{
  if (!gmp_running || native_cond(cv))
    return REAL(pthread_cond_broadcast)(cv);
  struct gcond *c = (struct gcond *)cv;
  atomic_fetch_add(&c->seq, 1);
  if (atomic_load(&c->nwaiters) != 0)
    gmp_unpark_all(&c->seq);
  return 0;
}
