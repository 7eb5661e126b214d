/*
 * The next definitions of every symbol preload/ interposes (normally
 * glibc's), resolved once by gmp_real_init() with dlsym(RTLD_NEXT).
 */
#ifndef GMP_PRELOAD_REAL_H
#define GMP_PRELOAD_REAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <time.h>

/* X(ret, name, params) for each interposed function. */
#define GMP_REAL_LIST(X)                                                          \
  X(int, pthread_create, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *)) \
  X(int, pthread_join, (pthread_t, void **))                                      \
  X(int, pthread_tryjoin_np, (pthread_t, void **))                                \
  X(int, pthread_timedjoin_np, (pthread_t, void **, const struct timespec *))     \
  X(int, pthread_clockjoin_np, (pthread_t, void **, clockid_t, const struct timespec *)) \
  X(int, pthread_detach, (pthread_t))                                             \
  X(void, pthread_exit, (void *))                                                 \
  X(void, __pthread_register_cancel, (__pthread_unwind_buf_t *))                                  \
  X(void, __pthread_unregister_cancel, (__pthread_unwind_buf_t *))                                  \
  X(void, __pthread_unwind_next, (__pthread_unwind_buf_t *))                                    \
  X(int, sched_yield, (void))                                                     \
  X(int, pthread_once, (pthread_once_t *, void (*)(void)))                        \
  X(int, pthread_key_create, (pthread_key_t *, void (*)(void *)))                 \
  X(int, pthread_key_delete, (pthread_key_t))                                     \
  X(void *, pthread_getspecific, (pthread_key_t))                                 \
  X(int, pthread_setspecific, (pthread_key_t, const void *))                      \
  X(int, pthread_getattr_np, (pthread_t, pthread_attr_t *))                       \
  X(int, pthread_setname_np, (pthread_t, const char *))                           \
  X(int, pthread_getname_np, (pthread_t, char *, size_t))                         \
  X(int, pthread_getcpuclockid, (pthread_t, clockid_t *))                         \
  X(int, clock_gettime, (clockid_t, struct timespec *))                           \
  X(int, clock_getres, (clockid_t, struct timespec *))                            \
  X(int, pthread_setschedparam, (pthread_t, int, const struct sched_param *))     \
  X(int, pthread_getschedparam, (pthread_t, int *, struct sched_param *))         \
  X(int, pthread_setschedprio, (pthread_t, int))                                  \
  X(int, pthread_setaffinity_np, (pthread_t, size_t, const cpu_set_t *))          \
  X(int, pthread_getaffinity_np, (pthread_t, size_t, cpu_set_t *))                \
  X(int, pthread_kill, (pthread_t, int))                                          \
  X(int, pthread_cancel, (pthread_t))                                             \
  X(int, pthread_setcancelstate, (int, int *))                                    \
  X(int, pthread_setcanceltype, (int, int *))                                     \
  X(void, pthread_testcancel, (void))                                          \
  X(int, pthread_sigqueue, (pthread_t, int, const union sigval))                  \
  X(int, pthread_mutex_init, (pthread_mutex_t *, const pthread_mutexattr_t *))    \
  X(int, pthread_mutex_destroy, (pthread_mutex_t *))                              \
  X(int, pthread_mutex_lock, (pthread_mutex_t *))                                 \
  X(int, pthread_mutex_trylock, (pthread_mutex_t *))                              \
  X(int, pthread_mutex_timedlock, (pthread_mutex_t *, const struct timespec *))   \
  X(int, pthread_mutex_clocklock, (pthread_mutex_t *, clockid_t, const struct timespec *)) \
  X(int, pthread_mutex_unlock, (pthread_mutex_t *))                               \
  X(int, pthread_mutex_consistent, (pthread_mutex_t *))                           \
  X(int, pthread_cond_init, (pthread_cond_t *, const pthread_condattr_t *))       \
  X(int, pthread_cond_destroy, (pthread_cond_t *))                                \
  X(int, pthread_cond_wait, (pthread_cond_t *, pthread_mutex_t *))                \
  X(int, pthread_cond_timedwait, (pthread_cond_t *, pthread_mutex_t *, const struct timespec *)) \
  X(int, pthread_cond_clockwait, (pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *)) \
  X(int, pthread_cond_signal, (pthread_cond_t *))                                 \
  X(int, pthread_cond_broadcast, (pthread_cond_t *))                              \
  X(int, pthread_rwlock_init, (pthread_rwlock_t *, const pthread_rwlockattr_t *)) \
  X(int, pthread_rwlock_destroy, (pthread_rwlock_t *))                            \
  X(int, pthread_rwlock_rdlock, (pthread_rwlock_t *))                             \
  X(int, pthread_rwlock_tryrdlock, (pthread_rwlock_t *))                          \
  X(int, pthread_rwlock_timedrdlock, (pthread_rwlock_t *, const struct timespec *)) \
  X(int, pthread_rwlock_clockrdlock, (pthread_rwlock_t *, clockid_t, const struct timespec *)) \
  X(int, pthread_rwlock_wrlock, (pthread_rwlock_t *))                             \
  X(int, pthread_rwlock_trywrlock, (pthread_rwlock_t *))                          \
  X(int, pthread_rwlock_timedwrlock, (pthread_rwlock_t *, const struct timespec *)) \
  X(int, pthread_rwlock_clockwrlock, (pthread_rwlock_t *, clockid_t, const struct timespec *)) \
  X(int, pthread_rwlock_unlock, (pthread_rwlock_t *))                             \
  X(int, pthread_spin_init, (pthread_spinlock_t *, int))                          \
  X(int, pthread_spin_destroy, (pthread_spinlock_t *))                            \
  X(int, pthread_spin_lock, (pthread_spinlock_t *))                               \
  X(int, pthread_spin_trylock, (pthread_spinlock_t *))                            \
  X(int, pthread_spin_unlock, (pthread_spinlock_t *))                             \
  X(int, pthread_barrier_init, (pthread_barrier_t *, const pthread_barrierattr_t *, unsigned)) \
  X(int, pthread_barrier_destroy, (pthread_barrier_t *))                          \
  X(int, pthread_barrier_wait, (pthread_barrier_t *))                             \
  X(int, sem_init, (sem_t *, int, unsigned))                                      \
  X(int, sem_destroy, (sem_t *))                                                  \
  X(int, sem_wait, (sem_t *))                                                     \
  X(int, sem_trywait, (sem_t *))                                                  \
  X(int, sem_timedwait, (sem_t *, const struct timespec *))                       \
  X(int, sem_clockwait, (sem_t *, clockid_t, const struct timespec *))            \
  X(int, sem_post, (sem_t *))                                                     \
  X(int, sem_getvalue, (sem_t *, int *))                                          \
  X(void *, dlopen, (const char *, int))                                          \
  X(int, pthread_sigmask, (int, const sigset_t *, sigset_t *))                    \
  X(int, sigprocmask, (int, const sigset_t *, sigset_t *))                        \
  X(int, raise, (int))                                                            \
  X(void, abort, (void))                                                          \
  X(unsigned, sleep, (unsigned))                                                  \
  X(int, usleep, (useconds_t))                                                    \
  X(int, nanosleep, (const struct timespec *, struct timespec *))                 \
  X(int, clock_nanosleep, (clockid_t, int, const struct timespec *, struct timespec *))

#define GMP_REAL_DECL(ret, name, params) extern ret(*real_##name) params;
GMP_REAL_LIST(GMP_REAL_DECL)
#undef GMP_REAL_DECL

/* Returns NULL, or the name of a symbol that could not be resolved. */
const char *gmp_real_init(void);

#endif
