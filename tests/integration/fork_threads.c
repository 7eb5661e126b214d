/* fork_threads: fork from a thread while other threads run, then use
 * threads, locks and sleeps in the child.
 * gmp-test: mode=compare timeout=120
 *
 * POSIX: the child has one thread, the one that called fork. Under a
 * green-thread runtime the child must rebuild the scheduler around that
 * thread (other Gs, OS threads and the monitor thread do not exist in
 * it). Checks: 4 busy threads in the parent keep running across the fork;
 * the child (forked from a non-main thread) mallocs, creates 8 threads
 * that contend on a mutex, sleep and join, and exits 0; the parent's
 * threads finish with exact counts; a second fork from main works too.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static volatile int stop;

static void *busy(void *arg)
{
  long n = 0;
  while (!stop) {
    pthread_mutex_lock(&mu);
    counter++;
    pthread_mutex_unlock(&mu);
    if (++n % 1000 == 0)
      usleep(100);
  }
  return (void *)n;
}

/* The child's own mutex: `mu` may be held by a parent thread at the
 * moment of fork, and that thread does not exist in the child. */
static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;

static void *child_worker(void *arg)
{
  for (int i = 0; i < 10000; i++) {
    pthread_mutex_lock(&cmu);
    counter++;
    pthread_mutex_unlock(&cmu);
    if (i % 2500 == 0)
      usleep(500);
  }
  char *p = malloc(1000);
  memset(p, 1, 1000);
  free(p);
  return NULL;
}

static int child_main(void)
{
  counter = 0;
  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    if (pthread_create(&t[i], NULL, child_worker, NULL) != 0)
      return 2;
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  return counter == 80000 ? 0 : 3;
}

static void *forker(void *arg)
{
  usleep(20000);
  pid_t pid = fork();
  if (pid == 0)
    _exit(child_main());
  int st = -1;
  waitpid(pid, &st, 0);
  return (void *)(long)(WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st));
}

int main(void)
{
  setvbuf(stdout, NULL, _IONBF, 0);
  pthread_t b[4], f;
  for (int i = 0; i < 4; i++)
    pthread_create(&b[i], NULL, busy, NULL);
  pthread_create(&f, NULL, forker, NULL);
  void *r;
  pthread_join(f, &r);
  printf("child forked from a thread exited with %ld\n", (long)r);
  pid_t pid = fork();
  if (pid == 0)
    _exit(child_main());
  int st;
  waitpid(pid, &st, 0);
  printf("child forked from main exited with %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  stop = 1;
  long total = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(b[i], &r);
    total += (long)r;
  }
  printf("parent threads' counts match the counter: %s\n", total == counter ? "yes" : "no");
  return 0;
}
