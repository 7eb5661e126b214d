/*
 * pthread_barrier_* on the parking lot. Layout in the 32-byte object:
 *   count @0, arrived @4, gen @8 (park key), lock @16, magic @20.
 * The magic marks a barrier made here; a process-shared one is made by
 * glibc (which never writes our magic value) and left to glibc.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "preload/preload.h"

#define BARRIER_MAGIC 0x676d7062u /* "gmpb" */

struct gbar {
  uint32_t count;
  uint32_t arrived;
  _Atomic uint32_t gen;
  uint32_t pad;
  uint32_t lock;
  uint32_t magic;
};
_Static_assert(sizeof(struct gbar) <= sizeof(pthread_barrier_t), "barrier layout");

static inline bool ours(pthread_barrier_t *b)
{
  return ((struct gbar *)b)->magic == BARRIER_MAGIC;
}

GMP_EXPORT int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *attr,
                                    unsigned count)
{
  if (!gmp_running)
    return REAL(pthread_barrier_init)(b, attr, count);
  int pshared = PTHREAD_PROCESS_PRIVATE;
  if (attr)
    pthread_barrierattr_getpshared(attr, &pshared);
  if (pshared != PTHREAD_PROCESS_PRIVATE) {
    ((struct gbar *)b)->magic = 0;
    return REAL(pthread_barrier_init)(b, attr, count);
  }
  if (count == 0 || count > INT32_MAX)
    return EINVAL;
  memset(b, 0, sizeof *b);
  struct gbar *g = (struct gbar *)b;
  g->count = count;
  g->magic = BARRIER_MAGIC;
  return 0;
}

GMP_EXPORT int pthread_barrier_destroy(pthread_barrier_t *b)
{
  if (!gmp_running || !ours(b))
    return REAL(pthread_barrier_destroy)(b);
  struct gbar *g = (struct gbar *)b;
  if (__atomic_load_n(&g->arrived, __ATOMIC_ACQUIRE) != 0)
    return EBUSY;
  g->magic = 0;
  return 0;
}

struct gen_arg {
  struct gbar *b;
  uint32_t gen;
};

static bool same_gen(void *arg)
{
  struct gen_arg *a = arg;
  return atomic_load(&a->b->gen) == a->gen;
}

GMP_EXPORT int pthread_barrier_wait(pthread_barrier_t *bar)
{
  if (!gmp_self() || !ours(bar))
    return NATIVE_BLOCKING(REAL(pthread_barrier_wait)(bar));
  struct gbar *b = (struct gbar *)bar;
  while (__atomic_exchange_n(&b->lock, 1, __ATOMIC_ACQUIRE))
    __builtin_ia32_pause();
  struct gen_arg a = {.b = b, .gen = atomic_load(&b->gen)};
  if (++b->arrived == b->count) {
    b->arrived = 0;
    atomic_fetch_add(&b->gen, 1);
    __atomic_store_n(&b->lock, 0, __ATOMIC_RELEASE);
    gmp_unpark_all(&b->gen);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  __atomic_store_n(&b->lock, 0, __ATOMIC_RELEASE);
  while (atomic_load(&b->gen) == a.gen)
    gmp_park_on(&b->gen, same_gen, &a, GMP_NO_DEADLINE, GMP_WAIT_BARRIER);
  return 0;
}
