#define _GNU_SOURCE
/*
 * pthread_key_* on Gs (sched/tsd.c keeps the data per G and runs the
 * destructors when a G ends, which glibc would only do for its own
 * threads).
 */
#include "preload/preload.h"

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
  if (!gmp_running)
    return REAL(pthread_key_delete)(key);
  return gmp_key_delete(key);
}

GMP_EXPORT void *pthread_getspecific(pthread_key_t key)
{
  if (!gmp_self())
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
  if (!gmp_self())
    return REAL(pthread_setspecific)(key, v);
  return gmp_setspecific(key, v);
}
#pragma GCC diagnostic pop
