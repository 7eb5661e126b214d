/* spawn_many: system() and popen() from 20 threads at once.
 * gmp-test: mode=compare timeout=120
 *
 * glibc runs both through posix_spawn (a vfork-like clone that suspends
 * the calling OS thread until the child execs) and waits for the child
 * with an internal waitpid: both block the OS thread outside any wrapper
 * a runtime could interpose, so a green-thread runtime must notice the
 * blocked OS thread and keep the other threads running. Checks: every
 * system("exit N") returns N, every popen("echo ...") reads its line back,
 * and a ticker thread keeps running meanwhile. Deterministic output.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NT 20
#define ROUNDS 5

static atomic_int bad, stop;
static atomic_long ticks;

static void *ticker(void *arg)
{
  while (!atomic_load(&stop)) {
    usleep(1000);
    atomic_fetch_add(&ticks, 1);
  }
  return NULL;
}

static void *worker(void *arg)
{
  long id = (long)arg;
  for (int r = 0; r < ROUNDS; r++) {
    char cmd[64], want[64], got[64] = "";
    snprintf(cmd, sizeof cmd, "exit %ld", (id + r) % 7);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != (id + r) % 7)
      atomic_fetch_add(&bad, 1);
    snprintf(cmd, sizeof cmd, "echo thread-%ld-round-%d", id, r);
    snprintf(want, sizeof want, "thread-%ld-round-%d\n", id, r);
    FILE *f = popen(cmd, "r");
    if (!f || !fgets(got, sizeof got, f) || strcmp(got, want) != 0)
      atomic_fetch_add(&bad, 1);
    if (f && pclose(f) != 0)
      atomic_fetch_add(&bad, 1);
  }
  return NULL;
}

int main(void)
{
  pthread_t tk, t[NT];
  pthread_create(&tk, NULL, ticker, NULL);
  for (long i = 0; i < NT; i++)
    pthread_create(&t[i], NULL, worker, (void *)i);
  for (int i = 0; i < NT; i++)
    pthread_join(t[i], NULL);
  atomic_store(&stop, 1);
  pthread_join(tk, NULL);
  printf("%d threads x %d rounds of system() and popen(): %s\n", NT, ROUNDS,
         atomic_load(&bad) == 0 ? "all results right" : "WRONG RESULTS");
  printf("ticker kept running: %s\n", atomic_load(&ticks) > 10 ? "yes" : "no");
  return atomic_load(&bad) == 0 ? 0 : 1;
}
