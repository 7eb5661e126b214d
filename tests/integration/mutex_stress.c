/* mutex_stress: lock, timedlock with short timeouts and trylock mixed on
 * one mutex by 12 threads; the protected counter must be exact and every
 * thread must finish (a lost wake-up would hang a waiter).
 * gmp-test: mode=compare timeout=120
 *
 * Timed-out waiters are the delicate case of a mutex that hands wake-up
 * tokens to waiters: a token released for a waiter that has just given
 * up must still reach someone. Output is deterministic: totals only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTHREADS 12
#define ITERS 40000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *worker(void *arg)
{
  long id = (long)arg;
  unsigned seed = (unsigned)id * 2654435761u;
  long mine = 0;
  for (int i = 0; i < ITERS; i++) {
    int how = rand_r(&seed) % 3;
    int rc;
    if (how == 0) {
      rc = pthread_mutex_lock(&mu);
    } else if (how == 1) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 20000 + rand_r(&seed) % 200000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      rc = pthread_mutex_timedlock(&mu, &ts);
    } else {
      rc = pthread_mutex_trylock(&mu);
    }
    if (rc == ETIMEDOUT || rc == EBUSY)
      continue;
    if (rc != 0) {
      fprintf(stderr, "lock: %s\n", strerror(rc));
      exit(1);
    }
    counter++;
    mine++;
    if (rand_r(&seed) % 64 == 0)
      sched_yield(); /* hold it across a reschedule now and then */
    pthread_mutex_unlock(&mu);
  }
  return (void *)mine;
}

int main(void)
{
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
      return 1;
  long sum = 0;
  for (int i = 0; i < NTHREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += (long)r;
  }
  printf("threads done: %d\n", NTHREADS);
  printf("counter equals the sum of successful locks: %s\n", sum == counter ? "yes" : "no");
  printf("mutex free at the end: %s\n", pthread_mutex_trylock(&mu) == 0 ? "yes" : "no");
  return sum == counter ? 0 : 1;
}
