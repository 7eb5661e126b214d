/*
 * Runtime-internal locks. The program's own mutexes are built on the
 * parking lot (park.c) and never block an M; these two block (or spin)
 * the M itself and guard only short runtime critical sections.
 *
 *  gmp_spin  test-and-test-and-set; for per-bucket and per-P data held
 *            for a few dozen instructions. After a bounded spin it yields
 *            the CPU to the kernel, so a preempted holder can finish.
 *  gmp_lock  futex lock in the style of Go's lock_futex (0 free, 1 held,
 *            2 held with sleepers), for scheduler-global state on slow paths.
 */
#ifndef GMP_SCHED_LOCK_H
#define GMP_SCHED_LOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "shim/shim.h"

typedef struct { atomic_uint v; } gmp_spin;
typedef struct { _Atomic uint32_t v; } gmp_lock;

static inline void gmp_cpu_relax(void) { __builtin_ia32_pause(); }

static inline void gmp_spin_lock(gmp_spin *l)
{
  for (unsigned i = 0;; i++) {
    if (!atomic_load_explicit(&l->v, memory_order_relaxed) &&
        !atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
      return;
    if (i < 128)
      gmp_cpu_relax();
    else
      gmp_sys0(SYS_sched_yield);
  }
}

static inline int gmp_spin_trylock(gmp_spin *l)
{
  return !atomic_load_explicit(&l->v, memory_order_relaxed) &&
         !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}

static inline void gmp_spin_unlock(gmp_spin *l)
{
  atomic_store_explicit(&l->v, 0, memory_order_release);
}

static inline void gmp_lock_acquire(gmp_lock *l)
{
  uint32_t c = 0;
  if (atomic_compare_exchange_strong_explicit(&l->v, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
    return;
  for (int i = 0; i < 64; i++) {
    c = 0;
    if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->v, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    gmp_cpu_relax();
  }
  while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
    gmp_futex_wait((uint32_t *)&l->v, 2, -1);
}

static inline void gmp_lock_release(gmp_lock *l)
{
  if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
    gmp_futex_wake((uint32_t *)&l->v, 1);
}

#endif
