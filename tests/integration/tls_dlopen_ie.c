/* tls_dlopen_ie: a dlopen()ed library with initial-exec TLS, seen from
 * threads that existed before the dlopen.
 * gmp-test: mode=compare
 *
 * glibc places such a library's TLS in the static TLS area of every
 * thread and initialises it (value 99, a zero array) in the threads it
 * knows about. Under a green-thread runtime the threads are Gs whose TCBs
 * glibc does not know, so the runtime must initialise them itself: a G
 * created before the dlopen must still read 99, then keep its own value.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NT 4
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int loaded;
static int (*get)(void);
static void (*set)(int);
static int (*zero_ok)(void);
static int result[NT][3];

static void *early(void *arg)
{
  long id = (long)arg;
  pthread_mutex_lock(&mu);
  while (!loaded)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  result[id][0] = get();
  result[id][1] = zero_ok();
  set(1000 + (int)id);
  for (int i = 0; i < 100; i++)
    sched_yield();
  result[id][2] = get() == 1000 + (int)id;
  return NULL;
}

int main(int argc, char **argv)
{
  char path[PATH_MAX], self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0)
    return 1;
  self[n] = 0;
  snprintf(path, sizeof path, "%s/libittlsie.so", dirname(self));
  pthread_t t[NT];
  for (long i = 0; i < NT; i++)
    pthread_create(&t[i], NULL, early, (void *)i);
  usleep(20000); /* the threads now wait, created before the dlopen */
  void *h = dlopen(path, RTLD_NOW);
  if (!h) {
    printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  get = (int (*)(void))dlsym(h, "tlsie_get");
  set = (void (*)(int))dlsym(h, "tlsie_set");
  zero_ok = (int (*)(void))dlsym(h, "tlsie_zero_ok");
  pthread_mutex_lock(&mu);
  loaded = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < NT; i++)
    pthread_join(t[i], NULL);
  int ok = 1;
  for (int i = 0; i < NT; i++) {
    printf("early thread %d: initial value %d, zero array %s, own value kept %s\n", i,
           result[i][0], result[i][1] ? "zero" : "NOT ZERO", result[i][2] ? "yes" : "no");
    ok &= result[i][0] == 99 && result[i][1] && result[i][2];
  }
  printf("main thread: value %d\n", get());
  return ok ? 0 : 1;
}
