/*
 * The __pthread_* names glibc still exports for binaries linked against
 * the libpthread of glibc < 2.34 (and that libstdc++'s gthr layer once
 * probed). Such a binary calls them instead of the public names, so each
 * forwards to libgmp's public definition.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "preload/preload.h"

#define FORWARD(ret, alias, params, target, args)                           \
  GMP_EXPORT ret alias params;                                              \
  GMP_EXPORT ret alias params { return target args; }

FORWARD(int, __pthread_mutex_init, (pthread_mutex_t *m, const pthread_mutexattr_t *a),
        pthread_mutex_init, (m, a))
FORWARD(int, __pthread_mutex_destroy, (pthread_mutex_t *m), pthread_mutex_destroy, (m))
FORWARD(int, __pthread_mutex_lock, (pthread_mutex_t *m), pthread_mutex_lock, (m))
FORWARD(int, __pthread_mutex_trylock, (pthread_mutex_t *m), pthread_mutex_trylock, (m))
FORWARD(int, __pthread_mutex_unlock, (pthread_mutex_t *m), pthread_mutex_unlock, (m))
FORWARD(int, __pthread_rwlock_init, (pthread_rwlock_t *r, const pthread_rwlockattr_t *a),
        pthread_rwlock_init, (r, a))
FORWARD(int, __pthread_rwlock_destroy, (pthread_rwlock_t *r), pthread_rwlock_destroy, (r))
FORWARD(int, __pthread_rwlock_rdlock, (pthread_rwlock_t *r), pthread_rwlock_rdlock, (r))
FORWARD(int, __pthread_rwlock_tryrdlock, (pthread_rwlock_t *r), pthread_rwlock_tryrdlock, (r))
FORWARD(int, __pthread_rwlock_wrlock, (pthread_rwlock_t *r), pthread_rwlock_wrlock, (r))
FORWARD(int, __pthread_rwlock_trywrlock, (pthread_rwlock_t *r), pthread_rwlock_trywrlock, (r))
FORWARD(int, __pthread_rwlock_unlock, (pthread_rwlock_t *r), pthread_rwlock_unlock, (r))
FORWARD(int, __pthread_once, (pthread_once_t *o, void (*f)(void)), pthread_once, (o, f))
FORWARD(int, __pthread_key_create, (pthread_key_t *k, void (*d)(void *)), pthread_key_create,
        (k, d))
FORWARD(void *, __pthread_getspecific, (pthread_key_t k), pthread_getspecific, (k))
FORWARD(int, __pthread_setspecific, (pthread_key_t k, const void *v), pthread_setspecific,
        (k, v))
