#define _GNU_SOURCE
/*
 * pthread_key_* on Gs (sched/tsd.c keeps the data per G and runs the
 * destructors when a G ends, which glibc would only do for its own
 * threads).
 */
#include "preload/preload.h"

/* Keys made before libgmp started — a library's constructor can run before
 * libgmp's (GLib's GPrivate does) — are glibc's: below native_below, get
 * and set go to glibc, which keeps the values in the calling thread's TCB,
 * and every G has a TCB of its own. (glibc runs their destructors only
 * for its own threads: a G's values of such keys are not destroyed.) */
static unsigned native_below;

void gmp_tsd_init(void)
{
  /* glibc hands out the lowest free key: a probe shows how many are taken. */
  pthread_key_t k;
  if (REAL(pthread_key_create)(&k, NULL) != 0)
    return;
  REAL(pthread_key_delete)(k);
  native_below = k;
  gmp_key_reserve(k);
}

static bool native_key(pthread_key_t key) { return key < native_below; }

GMP_EXPORT int pthread_key_create(pthread_key_t *key, void (*destr)(void *))
{
  if (!gmp_running)
    return REAL(pthread_key_create)(key, destr);
  unsigned k;
  int rc = gmp_key_create(&k, destr);
  if (rc == 0)
    *key = k;
  return rc;
}

GMP_EXPORT int pthread_key_delete(pthread_key_t key)
{
  if (!gmp_running || native_key(key))
    return REAL(pthread_key_delete)(key);
  return gmp_key_delete(key);
}

GMP_EXPORT void *pthread_getspecific(pthread_key_t key)
{
  if (!gmp_self() || native_key(key))
    return REAL(pthread_getspecific)(key);
  return gmp_getspecific(key);
}

/* glibc declares the value parameter access(none) (the pointer is stored,
 * never dereferenced), which makes gcc warn, wrongly, that passing it on
 * reads uninitialised memory. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
GMP_EXPORT int pthread_setspecific(pthread_key_t key, const void *v)
{
  if (!gmp_self() || native_key(key))
    return REAL(pthread_setspecific)(key, v);
  return gmp_setspecific(key, v);
}
#pragma GCC diagnostic pop
