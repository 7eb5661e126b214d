/*
 * pthread_mutex_* on the parking lot.
 *
 * The object stays the program's 40-byte pthread_mutex_t, with glibc's
 * field positions where they matter, so statically initialised mutexes
 * (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, ...)
 * work unchanged:
 *   state  @0   LOCKED (1) | WOKEN (2) | DEAD (4) | NOTRECOV (8) | waiters << 4
 *   count  @4   recursion depth; bit 31: robust mutex inconsistent
 *   owner  @8   the owner's tid (each G has a unique one)
 *   nusers @12  lock holders, for pthread_mutex_destroy's EBUSY
 *   kind   @16  glibc's kind word: type in the low bits, flags above
 *   sema   @20  wake-up tokens (glibc's __spins/__elision, unused here)
 *   next/prev @24  robust mutexes: the owning G's list of held ones
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
 * Robust mutexes (EOWNERDEAD when the owner thread ends holding one) are
 * kept here too: glibc's depend on the kernel walking a robust list
 * registered per OS thread, and a G's end is no OS thread's exit. Each G
 * keeps its held robust mutexes in a list (libgmp's __thread data is per
 * G); at its end they are marked DEAD and released, and the next locker
 * gets EOWNERDEAD, as with NPTL.
 * Priority inheritance: all Gs share the Ps with equal priority, so there
 * is no inversion to fix; a PI mutex is a mutex here (the kernel's PI
 * futexes key on a real tid, which a G does not have).
 * Process-shared and priority-protect mutexes are left entirely to glibc
 * (blocking the M; the syscall hand-off covers that wait).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

#define KIND_TYPE_MASK 0x3
#define KIND_ROBUST 16
#define KIND_PI 32
#define KIND_NATIVE_MASK (64 | 128) /* priority-protect, process-shared */

#define M_LOCKED 1u
#define M_WOKEN 2u
#define M_DEAD 4u      /* robust: released by a G that ended holding it */
#define M_NOTRECOV 8u  /* robust: unlocked while inconsistent */
#define M_SHIFT 4
#define M_WAITER (1u << M_SHIFT) /* one waiter in the count above the flags */
#define C_INCONSISTENT 0x80000000u

struct gmutex {
  _Atomic uint32_t state;
  uint32_t count;
  int owner;
  uint32_t nusers;
  int kind;
  _Atomic uint32_t sema;
  struct gmutex *next, *prev;
};

_Static_assert(sizeof(struct gmutex) <= sizeof(pthread_mutex_t), "mutex layout");
_Static_assert(__builtin_offsetof(struct gmutex, kind) == 16, "mutex layout");
_Static_assert(__builtin_offsetof(struct gmutex, next) == 24, "mutex layout");

/* The robust mutexes the current G holds (per G: libgmp's TLS is). */
static __thread struct gmutex *robust_held;

static void robust_push(struct gmutex *m)
{
  m->prev = NULL;
  m->next = robust_held;
  if (robust_held)
    robust_held->prev = m;
  robust_held = m;
}

static void robust_pop(struct gmutex *m)
{
  if (m->prev)
    m->prev->next = m->next;
  else if (robust_held == m)
    robust_held = m->next;
  if (m->next)
    m->next->prev = m->prev;
  m->next = m->prev = NULL;
}

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
  if (pshared != PTHREAD_PROCESS_PRIVATE || proto == PTHREAD_PRIO_PROTECT)
    return REAL(pthread_mutex_init)(mx, attr);
  struct gmutex *m = (struct gmutex *)mx;
  memset(mx, 0, sizeof *mx);
  m->kind = type | (robust == PTHREAD_MUTEX_ROBUST ? KIND_ROBUST : 0) |
            (proto == PTHREAD_PRIO_INHERIT ? KIND_PI : 0);
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

/* The lock is ours. For a robust mutex released by a dead owner, it is
 * ours but inconsistent: EOWNERDEAD, until pthread_mutex_consistent. */
static inline int got_it(struct gmutex *m, int tid)
{
  m->owner = tid;
  m->count = 1;
  m->nusers++;
  if (!(m->kind & KIND_ROBUST))
    return 0;
  robust_push(m);
  if (atomic_load_explicit(&m->state, memory_order_relaxed) & M_DEAD) {
    atomic_fetch_and(&m->state, ~M_DEAD);
    m->count |= C_INCONSISTENT;
    return EOWNERDEAD;
  }
  return 0;
}

/* A woken waiter of a mutex that became unrecoverable passes the wake-up
 * on, so that every waiter returns ENOTRECOVERABLE. */
static int give_up_notrecov(struct gmutex *m, bool counted)
{
  uint32_t old = atomic_load(&m->state);
  if (counted)
    old = atomic_fetch_sub(&m->state, M_WAITER) - M_WAITER;
  if ((old >> M_SHIFT) != 0) {
    atomic_fetch_add(&m->sema, 1);
    gmp_unpark_one(&m->sema);
  }
  return ENOTRECOVERABLE;
}

/* Contended path. deadline: GMP_NO_DEADLINE or a monotonic time. */
static int lock_slow(struct gmutex *m, int64_t deadline)
{
  bool awoke = false, counted = false;
  int iter = 0;
  uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
  for (;;) {
    if (old & M_NOTRECOV)
      return give_up_notrecov(m, counted);
    /* Spin a little while the lock is held, if it can be released by a
     * G on another P meanwhile; announce ourselves as awake so that the
     * unlocker does not wake a parked waiter too. */
    if ((old & M_LOCKED) && iter < 4 && gmp_procs() > 1) {
      if (!awoke && !(old & M_WOKEN) && (old >> M_SHIFT) != 0 &&
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
                                              memory_order_relaxed))
    return got_it(m, tid);
  if (c & M_NOTRECOV)
    return ENOTRECOVERABLE;
  if ((type == PTHREAD_MUTEX_ERRORCHECK || (m->kind & KIND_ROBUST)) && m->owner == tid &&
      (c & M_LOCKED))
    return deadline == GMP_TRY ? EBUSY : EDEADLK;
  if (deadline == GMP_TRY) {
    /* a free lock with stale flag bits (WOKEN, DEAD, waiters) is free */
    while (!(c & M_LOCKED)) {
      if (atomic_compare_exchange_weak_explicit(&m->state, &c, c | M_LOCKED,
                                                memory_order_acquire, memory_order_relaxed))
        return got_it(m, tid);
    }
    return EBUSY;
  }
  if (!abs_ok)
    return EINVAL;
  int r = lock_slow(m, deadline);
  if (r == 0)
    return got_it(m, tid);
  return r;
}

int gmp_mutex_lock(pthread_mutex_t *mx)
{
  struct g *self = gmp_self();
  struct gmutex *m = (struct gmutex *)mx;
  if (!self || native_kind(m))
    return NATIVE_BLOCKING(REAL(pthread_mutex_lock)(mx));
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
    return NATIVE_BLOCKING(REAL(pthread_mutex_timedlock)(mx, abs));
  return timedlock(mx, CLOCK_REALTIME, abs);
}

GMP_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *mx, clockid_t clk,
                                       const struct timespec *abs)
{
  if (!gmp_self() || native_kind((struct gmutex *)mx))
    return NATIVE_BLOCKING(REAL(pthread_mutex_clocklock)(mx, clk, abs));
  return timedlock(mx, clk, abs);
}

static int unlock_held(struct gmutex *m, bool robust);

int gmp_mutex_unlock(pthread_mutex_t *mx)
{
  struct gmutex *m = (struct gmutex *)mx;
  struct g *self = gmp_self();
  if (!self || native_kind(m))
    return REAL(pthread_mutex_unlock)(mx);
  int type = m->kind & KIND_TYPE_MASK;
  bool robust = (m->kind & KIND_ROBUST) != 0;
  if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK || robust) {
    if (m->owner != gmp_g_tid(self) || !(atomic_load(&m->state) & M_LOCKED))
      return EPERM;
    if (type == PTHREAD_MUTEX_RECURSIVE && (--m->count & ~C_INCONSISTENT) > 0)
      return 0;
  }
  return unlock_held(m, robust);
}

/* Release a held mutex (also used for the robust mutexes of a dead G). */
static int unlock_held(struct gmutex *m, bool robust)
{
  uint32_t extra = 0;
  if (robust) {
    robust_pop(m);
    if (m->count & C_INCONSISTENT)
      extra = M_NOTRECOV; /* unlocked without pthread_mutex_consistent */
    m->count = 0;
  }
  m->owner = 0;
  m->nusers--;
  if (extra)
    atomic_fetch_or(&m->state, extra);
  uint32_t old = atomic_fetch_sub_explicit(&m->state, M_LOCKED, memory_order_release) - M_LOCKED;
  /* Wake one waiter only if there are some, the lock was not re-taken,
   * and nobody is already awake to take it. */
  while ((old >> M_SHIFT) != 0 && !(old & (M_LOCKED | M_WOKEN)) ) {
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
  if (!(m->kind & KIND_ROBUST) || !(m->count & C_INCONSISTENT))
    return EINVAL;
  m->count &= ~C_INCONSISTENT;
  return 0;
}

/* Headers redirect the _np name to pthread_mutex_consistent; old
 * binaries still call the exported pthread_mutex_consistent_np. */
GMP_EXPORT int gmp_mutex_consistent_np(pthread_mutex_t *mx) __asm__("pthread_mutex_consistent_np");
GMP_EXPORT int gmp_mutex_consistent_np(pthread_mutex_t *mx)
{
  return pthread_mutex_consistent(mx);
}

/* At the end of a G: release the robust mutexes it still holds, marked
 * DEAD so that their next owner learns it (EOWNERDEAD). */
void gmp_mutex_thread_exit(void)
{
  struct gmutex *m;
  while ((m = robust_held)) {
    atomic_fetch_or(&m->state, M_DEAD);
    m->count &= ~C_INCONSISTENT;
    unlock_held(m, true);
  }
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
