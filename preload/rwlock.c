/*
 * pthread_rwlock_* on the parking lot.
 *
 * State lives in the program's 56-byte pthread_rwlock_t and is guarded by
 * a small per-object spinlock (held for a few instructions, never across a
 * park: the validate callback of gmp_park_on releases it after the G is
 * queued, so a waker that takes the spinlock afterwards always finds the
 * G in the queue):
 *   readers  @0   active readers
 *   wwait    @4   parked writers   (park key: &wwait)
 *   rwait    @8   parked readers   (park key: &readers)
 *   lock     @12  the spinlock
 *   writer   @24  tid of the writer holding it (glibc's __cur_writer), 0 if none
 *   shared   @28  glibc's __shared: non-zero means glibc's own (pshared)
 *   flags    @48  glibc's __flags: the kind (PREFER_WRITER_NONRECURSIVE = 2)
 * Readers are preferred (glibc's default) unless the kind asks writers
 * first, in which case a reader does not enter while a writer waits.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

struct grw {
  uint32_t readers;
  uint32_t wwait;
  uint32_t rwait;
  uint32_t lock;
  uint32_t pad[2];
  int writer;
  int shared;
  uint32_t pad2[4];
  uint32_t flags;
};
_Static_assert(sizeof(struct grw) <= sizeof(pthread_rwlock_t), "rwlock layout");
_Static_assert(__builtin_offsetof(struct grw, writer) == 24, "rwlock layout");
_Static_assert(__builtin_offsetof(struct grw, flags) == 48, "rwlock layout");

static inline void lk(struct grw *r)
{
  while (__atomic_exchange_n(&r->lock, 1, __ATOMIC_ACQUIRE))
    __builtin_ia32_pause();
}
static inline void ulk(struct grw *r)
{
  __atomic_store_n(&r->lock, 0, __ATOMIC_RELEASE);
}

static inline bool native_rw(pthread_rwlock_t *rw)
{
  return ((struct grw *)rw)->shared != 0;
}

GMP_EXPORT int pthread_rwlock_init(pthread_rwlock_t *rw, const pthread_rwlockattr_t *attr)
{
  if (!gmp_running)
    return REAL(pthread_rwlock_init)(rw, attr);
  int pshared = PTHREAD_PROCESS_PRIVATE, kind = PTHREAD_RWLOCK_PREFER_READER_NP;
  if (attr) {
    pthread_rwlockattr_getpshared(attr, &pshared);
    pthread_rwlockattr_getkind_np(attr, &kind);
  }
  if (pshared != PTHREAD_PROCESS_PRIVATE)
    return REAL(pthread_rwlock_init)(rw, attr);
  memset(rw, 0, sizeof *rw);
  ((struct grw *)rw)->flags = (uint32_t)kind;
  return 0;
}

GMP_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *rw)
{
  if (!gmp_running || native_rw(rw))
    return REAL(pthread_rwlock_destroy)(rw);
  return 0;
}

static bool release_lock(void *arg)
{
  ulk(arg);
  return true;
}

static int rdlock(struct grw *r, struct g *self, int64_t deadline, bool abs_ok)
{
  int tid = gmp_g_tid(self);
  bool prefer_writer = r->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
  lk(r);
  for (;;) {
    if (r->writer == 0 && !(prefer_writer && r->wwait)) {
      if (r->readers == UINT32_MAX) {
        ulk(r);
        return EAGAIN;
      }
      r->readers++;
      ulk(r);
      return 0;
    }
    if (r->writer == tid) {
      ulk(r);
      return deadline == GMP_TRY ? EBUSY : EDEADLK;
    }
    if (deadline == GMP_TRY || !abs_ok) {
      ulk(r);
      return deadline == GMP_TRY ? EBUSY : EINVAL;
    }
    r->rwait++;
    int w = gmp_park_on(&r->readers, release_lock, r, deadline, GMP_WAIT_RWLOCK);
    lk(r);
    r->rwait--;
    if (w == GMP_PARK_TIMEDOUT && !(r->writer == 0 && !(prefer_writer && r->wwait))) {
      ulk(r);
      return ETIMEDOUT;
    }
  }
}

static int wrlock(struct grw *r, struct g *self, int64_t deadline, bool abs_ok)
{
  int tid = gmp_g_tid(self);
  lk(r);
  for (;;) {
    if (r->writer == 0 && r->readers == 0) {
      r->writer = tid;
      ulk(r);
      return 0;
    }
    if (r->writer == tid) {
      ulk(r);
      return deadline == GMP_TRY ? EBUSY : EDEADLK;
    }
    if (deadline == GMP_TRY || !abs_ok) {
      ulk(r);
      return deadline == GMP_TRY ? EBUSY : EINVAL;
    }
    r->wwait++;
    int w = gmp_park_on(&r->wwait, release_lock, r, deadline, GMP_WAIT_RWLOCK);
    lk(r);
    r->wwait--;
    if (w == GMP_PARK_TIMEDOUT && !(r->writer == 0 && r->readers == 0)) {
      /* a writer that gives up may unblock readers held back for it */
      bool wake_readers = r->writer == 0 && r->rwait && r->wwait == 0;
      ulk(r);
      if (wake_readers)
        gmp_unpark_all(&r->readers);
      return ETIMEDOUT;
    }
  }
}

GMP_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw)
{
  struct g *self = gmp_self();
  if (!self || native_rw(rw))
    return REAL(pthread_rwlock_unlock)(rw);
  struct grw *r = (struct grw *)rw;
  bool prefer_writer = r->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
  lk(r);
  if (r->writer) {
    if (r->writer != gmp_g_tid(self)) {
      ulk(r);
      return EPERM;
    }
    r->writer = 0;
  } else if (r->readers) {
    r->readers--;
  } else {
    ulk(r);
    return EPERM;
  }
  bool wake_writer = false, wake_readers = false;
  if (r->readers == 0) {
    if (r->wwait && (prefer_writer || !r->rwait))
      wake_writer = true;
    else if (r->rwait)
      wake_readers = true;
    else if (r->wwait)
      wake_writer = true;
  }
  ulk(r);
  if (wake_writer)
    gmp_unpark_one(&r->wwait);
  if (wake_readers)
    gmp_unpark_all(&r->readers);
  return 0;
}

static int lock_common(pthread_rwlock_t *rw, bool write, clockid_t clk,
                       const struct timespec *abs, bool try)
{
  struct g *self = gmp_self();
  struct grw *r = (struct grw *)rw;
  int64_t dl = GMP_NO_DEADLINE;
  bool ok = true;
  if (try) {
    dl = GMP_TRY;
  } else if (abs) {
    if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
      return EINVAL;
    ok = ts_valid(abs);
    if (ok)
      abs_to_deadline(clk, abs, &dl);
  }
  return write ? wrlock(r, self, dl, ok) : rdlock(r, self, dl, ok);
}

#define RW_WRAP(name, realcall, write, clk, abs, try)                          \
  {                                                                            \
    if (!gmp_self() || native_rw(rw))                                          \
      return NATIVE_BLOCKING(realcall);                                        \
    return lock_common(rw, write, clk, abs, try);                              \
  }

GMP_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw)
RW_WRAP(rdlock, REAL(pthread_rwlock_rdlock)(rw), false, CLOCK_REALTIME, NULL, false)
GMP_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw)
RW_WRAP(tryrdlock, REAL(pthread_rwlock_tryrdlock)(rw), false, CLOCK_REALTIME, NULL, true)
GMP_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *a)
RW_WRAP(timedrdlock, REAL(pthread_rwlock_timedrdlock)(rw, a), false, CLOCK_REALTIME, a, false)
GMP_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t c, const struct timespec *a)
RW_WRAP(clockrdlock, REAL(pthread_rwlock_clockrdlock)(rw, c, a), false, c, a, false)
GMP_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw)
RW_WRAP(wrlock, REAL(pthread_rwlock_wrlock)(rw), true, CLOCK_REALTIME, NULL, false)
GMP_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *rw)
RW_WRAP(trywrlock, REAL(pthread_rwlock_trywrlock)(rw), true, CLOCK_REALTIME, NULL, true)
GMP_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *a)
RW_WRAP(timedwrlock, REAL(pthread_rwlock_timedwrlock)(rw, a), true, CLOCK_REALTIME, a, false)
GMP_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t c, const struct timespec *a)
RW_WRAP(clockwrlock, REAL(pthread_rwlock_clockwrlock)(rw, c, a), true, c, a, false)
