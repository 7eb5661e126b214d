/*
 * gmp-test: mode=compare timeout=30
 *
 * What redis does at shutdown: its I/O threads run with asynchronous
 * cancellation and block on a mutex the main thread holds; the main
 * thread cancels and joins them. Natively SIGCANCEL unwinds a thread
 * blocked in pthread_mutex_lock; the join returns PTHREAD_CANCELED.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "lib/check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *io_thread(void *arg)
{
  pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
  for (;;) {
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
  }
  return arg;
}

int main(void)
{
  pthread_t t[4];
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 4; i++)
    CHECK(pthread_create(&t[i], NULL, io_thread, NULL) == 0, "create");
  usleep(100000); /* all four blocked on the mutex */
  int canceled = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    CHECK(pthread_cancel(t[i]) == 0, "cancel");
    CHECK(pthread_join(t[i], &r) == 0, "join");
    canceled += r == PTHREAD_CANCELED;
  }
  pthread_mutex_unlock(&mu);
  printf("%d of 4 threads blocked on a mutex were cancelled\n", canceled);
  return 0;
}
