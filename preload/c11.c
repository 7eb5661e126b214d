/*
 * ISO C11 <threads.h>. glibc implements these by calling its pthread
 * functions internally (thrd_create -> __pthread_create_2_1, mtx_lock ->
 * __pthread_mutex_lock), which never reaches the interposed symbols: a
 * C11 thread would be a native thread, and an mtx_t shared with pthread
 * code would be locked by two different implementations. So they are
 * interposed too, as thin translations onto the pthread wrappers.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

#include "preload/preload.h"

static int to_thrd(int err)
{
  switch (err) {
  case 0: return thrd_success;
  case ENOMEM: return thrd_nomem;
  case ETIMEDOUT: return thrd_timedout;
  case EBUSY: return thrd_busy;
  default: return thrd_error;
  }
}

struct c11_start {
  thrd_start_t fn;
  void *arg;
};

static void *c11_trampoline(void *p)
{
  struct c11_start s = *(struct c11_start *)p;
  free(p);
  return (void *)(intptr_t)s.fn(s.arg);
}

GMP_EXPORT int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
  struct c11_start *s = malloc(sizeof *s);
  if (!s)
    return thrd_nomem;
  s->fn = fn;
  s->arg = arg;
  int rc = pthread_create((pthread_t *)thr, NULL, c11_trampoline, s);
  if (rc)
    free(s);
  return rc == EAGAIN ? thrd_nomem : to_thrd(rc);
}

GMP_EXPORT int thrd_join(thrd_t thr, int *res)
{
  void *r;
  int rc = pthread_join((pthread_t)thr, &r);
  if (rc == 0 && res)
    *res = (int)(intptr_t)r;
  return to_thrd(rc);
}

GMP_EXPORT int thrd_detach(thrd_t thr)
{
  return to_thrd(pthread_detach((pthread_t)thr));
}

GMP_EXPORT _Noreturn void thrd_exit(int res)
{
  pthread_exit((void *)(intptr_t)res);
}

GMP_EXPORT void thrd_yield(void)
{
  sched_yield();
}

GMP_EXPORT int thrd_sleep(const struct timespec *d, struct timespec *rem)
{
  if (nanosleep(d, rem) == 0)
    return 0;
  return errno == EINTR ? -1 : -2;
}

GMP_EXPORT int mtx_init(mtx_t *m, int type)
{
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  if (type & mtx_recursive)
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
  pthread_mutexattr_destroy(&a);
  return to_thrd(rc);
}

GMP_EXPORT void mtx_destroy(mtx_t *m)
{
  pthread_mutex_destroy((pthread_mutex_t *)m);
}

GMP_EXPORT int mtx_lock(mtx_t *m)
{
  return to_thrd(pthread_mutex_lock((pthread_mutex_t *)m));
}

GMP_EXPORT int mtx_trylock(mtx_t *m)
{
  return to_thrd(pthread_mutex_trylock((pthread_mutex_t *)m));
}

GMP_EXPORT int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
  return to_thrd(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}

GMP_EXPORT int mtx_unlock(mtx_t *m)
{
  return to_thrd(pthread_mutex_unlock((pthread_mutex_t *)m));
}

GMP_EXPORT int cnd_init(cnd_t *c)
{
  return to_thrd(pthread_cond_init((pthread_cond_t *)c, NULL));
}

GMP_EXPORT void cnd_destroy(cnd_t *c)
{
  pthread_cond_destroy((pthread_cond_t *)c);
}

GMP_EXPORT int cnd_signal(cnd_t *c)
{
  return to_thrd(pthread_cond_signal((pthread_cond_t *)c));
}

GMP_EXPORT int cnd_broadcast(cnd_t *c)
{
  return to_thrd(pthread_cond_broadcast((pthread_cond_t *)c));
}

GMP_EXPORT int cnd_wait(cnd_t *c, mtx_t *m)
{
  return to_thrd(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

GMP_EXPORT int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
                             const struct timespec *restrict ts)
{
  return to_thrd(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

GMP_EXPORT int tss_create(tss_t *key, tss_dtor_t dtor)
{
  pthread_key_t k;
  int rc = pthread_key_create(&k, dtor);
  if (rc == 0)
    *key = k;
  return to_thrd(rc);
}

GMP_EXPORT void tss_delete(tss_t key)
{
  pthread_key_delete(key);
}

GMP_EXPORT void *tss_get(tss_t key)
{
  return pthread_getspecific(key);
}

GMP_EXPORT int tss_set(tss_t key, void *v)
{
  return to_thrd(pthread_setspecific(key, v));
}

GMP_EXPORT void call_once(once_flag *flag, void (*fn)(void))
{
  pthread_once((pthread_once_t *)flag, fn);
}
