/*
 * pthread_mutex_* on the parking lot.
 *
 * The object stays the program's 40-byte pthread_mutex_t, with glibc's
 * field positions where they matter, so statically initialised mutexes
 * (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, ...)
 * work unchanged:
 *   state  @0   LOCKED (1) | WOKEN (2) | waiters << 3
 *   count  @4   recursion depth (recursive mutexes)
 *   owner  @8   the owner's tid (each G has a unique one)
 *   nusers @12  lock holders, for pthread_mutex_destroy's EBUSY
 *   kind   @16  glibc's kind word: type in the low bits, flags above
 *   sema   @24  wake-up tokens (glibc's __list, unused by these kinds)
 *
 * The algorithm is Go's sync.Mutex (normal mode) on a token semaphore:
 * uncontended lock and unlock are one atomic each. A contended locker
 * spins briefly while another P may release the lock, then counts itself
 * in `waiters` and takes a token from `sema` (parking until there is
 * one). Unlock hands out a token only when there are waiters and nobody
 * is already awake to take the lock (WOKEN): one waiter in flight at a
 * time, instead of every unlock waking a G that then finds the lock taken
 * again. The woken G competes with running ones (barging, as glibc's
 * mutex allows), which keeps throughput high under contention.
 *
 * Robust, priority-inheritance, priority-protect and process-shared
 * mutexes must work across processes or with the kernel's help: they are
 * left entirely to glibc (blocking the M; the syscall hand-off covers
 * that wait), identified by their kind bits.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

#define KIND_TYPE_MASK 0x3
#define KIND_NATIVE_MASK (16 | 32 | 64 | 128) /* robust, PI, PP, pshared */

#define M_LOCKED 1u
#define M_WOKEN 2u
#define M_WAITER 8u /* one waiter in the count above the flag bits */

struct gmutex {
  _Atomic uint32_t state;
  uint32_t count;
  int owner;
  uint32_t nusers;
  int kind;
  uint32_t pad;
  _Atomic uint32_t sema;
};

_Static_assert(sizeof(struct gmutex) <= sizeof(pthread_mutex_t), "mutex layout");
_Static_assert(__builtin_offsetof(struct gmutex, kind) == 16, "mutex layout");

static inline bool native_kind(const struct gmutex *m)
{
  return (__atomic_load_n(&m->kind, __ATOMIC_RELAXED) & KIND_NATIVE_MASK) != 0;
}

/* ---- the token semaphore (Go's semacquire/semrelease) ------------------ */

static bool sema_try(_Atomic uint32_t *s)
{
  uint32_t v = atomic_load_explicit(s, memory_order_relaxed);
  while (v > 0)
    if (atomic_compare_exchange_weak(s, &v, v - 1))
      return true;
  return false;
}

static bool sema_empty(void *arg)
{
  return atomic_load((_Atomic uint32_t *)arg) == 0;
}

static int sema_acquire(_Atomic uint32_t *s, int64_t deadline)
{
  for (;;) {
    if (sema_try(s))
      return GMP_PARK_WOKEN;
    int r = gmp_park_on(s, sema_empty, s, deadline, GMP_WAIT_MUTEX);
    if (r == GMP_PARK_TIMEDOUT)
      return sema_try(s) ? GMP_PARK_WOKEN : GMP_PARK_TIMEDOUT;
  }
}

static void sema_release(_Atomic uint32_t *s)
{
  atomic_fetch_add(s, 1);
  gmp_unpark_one(s);
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
  if (m->nusers != 0 || (atomic_load(&m->state) & M_LOCKED))
    return EBUSY;
  m->kind = -1; /* as glibc: later use is caught (EINVAL from glibc) */
  return 0;
}

static inline void got_it(struct gmutex *m, int tid)
{
  m->owner = tid;
  m->count = 1;
  m->nusers++;
}

/* Contended path. deadline: GMP_NO_DEADLINE or a monotonic time. */
static int lock_slow(struct gmutex *m, int64_t deadline)
{
  bool awoke = false, counted = false;
  int iter = 0;
  uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
  for (;;) {
    /* Spin a little while the lock is held, if it can be released by a
     * G on another P meanwhile; announce ourselves as awake so that the
     * unlocker does not wake a parked waiter too. */
    if ((old & M_LOCKED) && iter < 4 && gmp_procs() > 1) {
      if (!awoke && !(old & M_WOKEN) && (old >> 3) != 0 &&
          atomic_compare_exchange_weak(&m->state, &old, old | M_WOKEN))
        awoke = true;
      for (int i = 0; i < 30; i++)
        __builtin_ia32_pause();
      iter++;
      old = atomic_load_explicit(&m->state, memory_order_relaxed);
      continue;
    }
    uint32_t nw = old;
    if (awoke)
      nw &= ~M_WOKEN;
    if (!(old & M_LOCKED)) {
      nw |= M_LOCKED;
      if (counted)
        nw -= M_WAITER;
      if (atomic_compare_exchange_weak_explicit(&m->state, &old, nw, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
      continue;
    }
    if (!counted)
      nw += M_WAITER;
    if (!atomic_compare_exchange_weak(&m->state, &old, nw))
      continue;
    counted = true;
    if (sema_acquire(&m->sema, deadline) == GMP_PARK_TIMEDOUT) {
      old = atomic_load(&m->state);
      for (;;) {
        if (!(old & M_LOCKED)) {
          if (atomic_compare_exchange_weak(&m->state, &old, (old | M_LOCKED) - M_WAITER))
            return 0;
        } else if (atomic_compare_exchange_weak(&m->state, &old, old - M_WAITER)) {
          return ETIMEDOUT;
        }
      }
    }
    awoke = true;
    iter = 0;
    old = atomic_load_explicit(&m->state, memory_order_relaxed);
  }
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
  if (atomic_compare_exchange_strong_explicit(&m->state, &c, M_LOCKED, memory_order_acquire,
                                              memory_order_relaxed)) {
    got_it(m, tid);
    return 0;
  }
  if (type == PTHREAD_MUTEX_ERRORCHECK && m->owner == tid)
    return EDEADLK;
  if (deadline == GMP_TRY) {
    /* a free lock with stale flag bits (WOKEN, waiters) is still free */
    while (!(c & M_LOCKED)) {
      if (atomic_compare_exchange_weak_explicit(&m->state, &c, c | M_LOCKED,
                                                memory_order_acquire, memory_order_relaxed)) {
        got_it(m, tid);
        return 0;
      }
    }
    return EBUSY;
  }
  if (!abs_ok)
    return EINVAL;
  int r = lock_slow(m, deadline);
  if (r == 0)
    got_it(m, tid);
  return r;
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
    if (m->owner != gmp_g_tid(self) || !(atomic_load(&m->state) & M_LOCKED))
      return EPERM;
    if (type == PTHREAD_MUTEX_RECURSIVE && --m->count > 0)
      return 0;
  }
  m->owner = 0;
  m->nusers--;
  uint32_t old = atomic_fetch_sub_explicit(&m->state, M_LOCKED, memory_order_release) - M_LOCKED;
  /* Wake one waiter only if there are some, the lock was not re-taken,
   * and nobody is already awake to take it. */
  while ((old >> 3) != 0 && !(old & (M_LOCKED | M_WOKEN))) {
    if (atomic_compare_exchange_weak(&m->state, &old, old | M_WOKEN)) {
      sema_release(&m->sema);
      break;
    }
  }
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
