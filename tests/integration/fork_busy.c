/* fork_busy: fork and wait, again and again, while CPU-bound threads keep
 * every CPU busy with short system calls (pipe, write, read, close) and
 * malloc. Children alternate between exec'ing a shell, starting a thread
 * and using stdio/malloc/pipes, and must all exit with status 7.
 * gmp-test: mode=compare timeout=90
 *
 * Natively the kernel runs the forking thread soon after waitpid returns.
 * A green-thread runtime must preempt threads that spend nearly all their
 * time in libc and system-call wrappers (where an asynchronous preemption
 * signal cannot switch them), and must run a thread back from a blocking
 * call before the queue of CPU-bound ones: otherwise the forking thread
 * waits a time slice per busy thread after every fork, or forever.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 120
#define BUSY 12

static atomic_int stop;
static atomic_long rounds;

static void *busy(void *arg)
{
  unsigned seed = (unsigned)(long)arg;
  char buf[64];
  while (!atomic_load(&stop)) {
    int p[2];
    if (pipe(p) != 0) {
      perror("pipe");
      exit(1);
    }
    if (write(p[1], "hello", 5) != 5 || read(p[0], buf, sizeof buf) != 5)
      exit(2);
    close(p[0]);
    close(p[1]);
    free(malloc(100 + rand_r(&seed) % 1000));
    atomic_fetch_add(&rounds, 1);
  }
  return NULL;
}

static void *child_thread(void *arg)
{
  free(malloc(10));
  return arg;
}

int main(void)
{
  pthread_t th[BUSY];
  for (int i = 0; i < BUSY; i++)
    if (pthread_create(&th[i], NULL, busy, (void *)(long)i) != 0) {
      printf("pthread_create failed\n");
      return 1;
    }
  int bad = 0;
  for (int i = 0; i < FORKS; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      int p[2];
      char b[8];
      if (pipe(p) != 0 || write(p[1], "x", 1) != 1 || read(p[0], b, 1) != 1)
        _exit(5);
      char *m = malloc(4096);
      memset(m, 1, 4096);
      free(m);
      if (i % 3 == 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
          _exit(6);
      } else if (i % 3 == 2) {
        execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
        _exit(8);
      }
      _exit(7);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
      bad++;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < BUSY; i++)
    pthread_join(th[i], NULL);
  printf("forks %d, failed children %d, busy threads ran: %d\n", FORKS, bad,
         atomic_load(&rounds) > 0);
  return bad != 0;
}
