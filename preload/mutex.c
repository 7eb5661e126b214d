/*
 * pthread_mutex_* on the parking lot.
 *
 * The object stays the program's 40-byte pthread_mutex_t, laid out as
 * glibc lays it out, so statically initialised mutexes
 * (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, ...)
 * work unchanged:
 *   __lock   0 free, 1 locked, 2 locked with (maybe) parked waiters
 *   __count  recursion depth (recursive mutexes)
 *   __owner  the owner's tid (each G has a unique one)
 *   __nusers lock holders, for pthread_mutex_destroy's EBUSY
 *   __kind   glibc's kind word: type in the low bits, flags above.
 * The lock word follows the futex mutex design (Drepper, "Futexes are
 * tricky"), with park/unpark on the word's address instead of the futex
 * syscall: uncontended lock and unlock are one atomic each and never
 * leave user space.
 *
 * Robust, priority-inheritance, priority-protect and process-shared
 * mutexes must work across processes or with the kernel's help: they are
 * left entirely to glibc (blocking the M; the syscall hand-off will cover
 * that wait), identified by their kind bits.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

#define KIND_TYPE_MASK 0x3
#define KIND_NATIVE_MASK (16 | 32 | 64 | 128) /* robust, PI, PP, pshared */

struct gmutex {
  _Atomic uint32_t lock;
  uint32_t count;
  int owner;
  uint32_t nusers;
  int kind;
};

_Static_assert(sizeof(struct gmutex) <= sizeof(pthread_mutex_t), "mutex layout");

static inline bool native_kind(const struct gmutex *m)
{
  return (__atomic_load_n(&m->kind, __ATOMIC_RELAXED) & KIND_NATIVE_MASK) != 0;
}

GMP_EXPORT int pthread_mutex_init(pthread_mutex_t *mx, const pthread_mutexattr_t *attr)
{
  if (!gmp_running)
    return REAL(pthread_mutex_init)(mx, attr);
  int type = PTHREAD_MUTEX_DEFAULT, pshared = PTHREAD_PROCESS_PRIVATE;
  int robust = PTHREAD_MUTEX_STALLED, proto = PTHREAD_PRIO_NONE;
  if (attr) {
    pthread_mutexattr_gettype(attr, &type);
    pthread_mutexattr_getpshared(attr, &pshared);
    pthread_mutexattr_getrobust(attr, &robust);
    pthread_mutexattr_getprotocol(attr, &proto);
  }
  if (pshared != PTHREAD_PROCESS_PRIVATE || robust != PTHREAD_MUTEX_STALLED ||
      proto != PTHREAD_PRIO_NONE)
    return REAL(pthread_mutex_init)(mx, attr);
  struct gmutex *m = (struct gmutex *)mx;
  memset(mx, 0, sizeof *mx);
  m->kind = type;
  return 0;
}

GMP_EXPORT int pthread_mutex_destroy(pthread_mutex_t *mx)
{
  struct gmutex *m = (struct gmutex *)mx;
  if (!gmp_running || native_kind(m))
    return REAL(pthread_mutex_destroy)(mx);
  if (m->nusers != 0 || atomic_load(&m->lock) != 0)
    return EBUSY;
  m->kind = -1; /* as glibc: later use is caught (EINVAL from glibc) */
  return 0;
}

static bool still_contended(void *arg)
{
  return atomic_load((_Atomic uint32_t *)arg) == 2;
}

static inline void got_it(struct gmutex *m, int tid)
{
  m->owner = tid;
  m->count = 1;
  m->nusers++;
}

/* deadline: GMP_NO_DEADLINE, GMP_TRY, or a monotonic time. abs is only
 * validated when the call would block, as POSIX requires. */
static int mutex_lock(struct gmutex *m, struct g *self, int64_t deadline, bool abs_ok)
{
  int tid = gmp_g_tid(self);
  int type = m->kind & KIND_TYPE_MASK;
  if (type == PTHREAD_MUTEX_RECURSIVE && m->owner == tid) {
    if (m->count == UINT32_MAX)
      return EAGAIN;
    m->count++;
    return 0;
  }
  uint32_t c = 0;
  if (atomic_compare_exchange_strong_explicit(&m->lock, &c, 1, memory_order_acquire,
                                              memory_order_relaxed)) {
    got_it(m, tid);
    return 0;
  }
  if (type == PTHREAD_MUTEX_ERRORCHECK && m->owner == tid)
    return EDEADLK;
  if (deadline == GMP_TRY)
    return EBUSY;
  if (!abs_ok)
    return EINVAL;
  if (gmp_procs() > 1) {
    for (int i = 0; i < GMP_SPIN_TRIES; i++) {
      c = 0;
      if (atomic_load_explicit(&m->lock, memory_order_relaxed) == 0 &&
          atomic_compare_exchange_weak_explicit(&m->lock, &c, 1, memory_order_acquire,
                                                memory_order_relaxed)) {
        got_it(m, tid);
        return 0;
      }
      __builtin_ia32_pause();
    }
  }
  /* Once we have waited, take it as contended (2): we cannot know whether
   * other waiters remain, and a spurious unpark is cheap. */
  while (atomic_exchange_explicit(&m->lock, 2, memory_order_acquire) != 0) {
    int r = gmp_park_on(&m->lock, still_contended, &m->lock, deadline, GMP_WAIT_MUTEX);
    if (r == GMP_PARK_TIMEDOUT) {
      c = 0;
      if (atomic_compare_exchange_strong(&m->lock, &c, 2))
        break;
      return ETIMEDOUT;
    }
  }
  got_it(m, tid);
  return 0;
}

int gmp_mutex_lock(pthread_mutex_t *mx)
{
  struct g *self = gmp_self();
  struct gmutex *m = (struct gmutex *)mx;
  if (!self || native_kind(m))
    return REAL(pthread_mutex_lock)(mx);
  return mutex_lock(m, self, GMP_NO_DEADLINE, true);
}

GMP_EXPORT int pthread_mutex_lock(pthread_mutex_t *mx)
{
  return gmp_mutex_lock(mx);
}

GMP_EXPORT int pthread_mutex_trylock(pthread_mutex_t *mx)
{
  struct g *self = gmp_self();
  struct gmutex *m = (struct gmutex *)mx;
  if (!self || native_kind(m))
    return REAL(pthread_mutex_trylock)(mx);
  int r = mutex_lock(m, self, GMP_TRY, true);
  return r == EDEADLK ? EBUSY : r;
}

static int timedlock(pthread_mutex_t *mx, clockid_t clk, const struct timespec *abs)
{
  struct gmutex *m = (struct gmutex *)mx;
  struct g *self = gmp_self();
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
    return EINVAL;
  int64_t dl = 0;
  bool ok = ts_valid(abs);
  if (ok)
    abs_to_deadline(clk, abs, &dl);
  return mutex_lock(m, self, dl, ok);
}

GMP_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *mx, const struct timespec *abs)
{
  if (!gmp_self() || native_kind((struct gmutex *)mx))
    return REAL(pthread_mutex_timedlock)(mx, abs);
  return timedlock(mx, CLOCK_REALTIME, abs);
}

GMP_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *mx, clockid_t clk,
                                       const struct timespec *abs)
{
  if (!gmp_self() || native_kind((struct gmutex *)mx))
    return REAL(pthread_mutex_clocklock)(mx, clk, abs);
  return timedlock(mx, clk, abs);
}

int gmp_mutex_unlock(pthread_mutex_t *mx)
{
  struct gmutex *m = (struct gmutex *)mx;
  struct g *self = gmp_self();
  if (!self || native_kind(m))
    return REAL(pthread_mutex_unlock)(mx);
  int type = m->kind & KIND_TYPE_MASK;
  if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
    if (m->owner != gmp_g_tid(self) || atomic_load(&m->lock) == 0)
      return EPERM;
    if (type == PTHREAD_MUTEX_RECURSIVE && --m->count > 0)
      return 0;
  }
  m->owner = 0;
  m->nusers--;
  if (atomic_exchange_explicit(&m->lock, 0, memory_order_release) == 2)
    gmp_unpark_one(&m->lock);
  return 0;
}

GMP_EXPORT int pthread_mutex_unlock(pthread_mutex_t *mx)
{
  return gmp_mutex_unlock(mx);
}

GMP_EXPORT int pthread_mutex_consistent(pthread_mutex_t *mx)
{
  struct gmutex *m = (struct gmutex *)mx;
  if (!gmp_running || native_kind(m))
    return REAL(pthread_mutex_consistent)(mx);
  return EINVAL; /* not a robust mutex */
}

/* ---- spinlocks ----------------------------------------------------------
 * A G that spins on a lock whose holder is not running (one P, or the
 * holder parked) would spin forever on a P the holder needs: after a
 * short spin the G yields its P. */

GMP_EXPORT int pthread_spin_init(pthread_spinlock_t *l, int pshared)
{
  __atomic_store_n((int *)l, 0, __ATOMIC_RELEASE);
  return 0;
}

GMP_EXPORT int pthread_spin_destroy(pthread_spinlock_t *l)
{
  return 0;
}

GMP_EXPORT int pthread_spin_lock(pthread_spinlock_t *l)
{
  int *w = (int *)l;
  bool g = gmp_self() != NULL;
  for (unsigned i = 0;; i++) {
    if (__atomic_load_n(w, __ATOMIC_RELAXED) == 0 &&
        __atomic_exchange_n(w, 1, __ATOMIC_ACQUIRE) == 0)
      return 0;
    if (i < 64 || !g)
      __builtin_ia32_pause();
    else
      gmp_yield();
  }
}

GMP_EXPORT int pthread_spin_trylock(pthread_spinlock_t *l)
{
  int *w = (int *)l;
  return __atomic_exchange_n(w, 1, __ATOMIC_ACQUIRE) == 0 ? 0 : EBUSY;
}

GMP_EXPORT int pthread_spin_unlock(pthread_spinlock_t *l)
{
  __atomic_store_n((int *)l, 0, __ATOMIC_RELEASE);
  return 0;
}
