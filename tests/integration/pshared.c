/* pshared: process-shared mutex, condvar, semaphore and barrier, and a
 * named semaphore, used by two threads in each of two processes.
 * gmp-test: mode=compare timeout=120
 *
 * A process-shared object must work across processes, whose threads the
 * runtime of one process cannot park or wake: libgmp leaves these objects
 * to glibc (the waiting thread's P is handed off meanwhile). Checks: a
 * counter incremented under a shared mutex by 2 threads x 2 processes is
 * exact; a cond ping-pong between the processes completes; semaphore
 * tokens cross; a shared barrier releases all 4 threads each round.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ITERS 20000
#define ROUNDS 200
#define PINGS 500

struct shared {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_barrier_t bar;
  sem_t sem;
  long counter;
  int turn;
  int serial;
};

static struct shared *sh;
static sem_t *named;

static void *adder(void *arg)
{
  for (int i = 0; i < ITERS; i++) {
    pthread_mutex_lock(&sh->mu);
    sh->counter++;
    pthread_mutex_unlock(&sh->mu);
  }
  for (int r = 0; r < ROUNDS; r++)
    if (pthread_barrier_wait(&sh->bar) == PTHREAD_BARRIER_SERIAL_THREAD)
      __atomic_add_fetch(&sh->serial, 1, __ATOMIC_RELAXED);
  return NULL;
}

static void pingpong(int me)
{
  for (int i = 0; i < PINGS; i++) {
    pthread_mutex_lock(&sh->mu);
    while (sh->turn != me)
      pthread_cond_wait(&sh->cv, &sh->mu);
    sh->turn = 1 - me;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
  }
}

static void work(int me)
{
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, adder, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  pingpong(me);
  /* semaphore: each side posts 100 tokens for the other */
  for (int i = 0; i < 100; i++) {
    if (me == 0) {
      sem_post(&sh->sem);
      sem_wait(named);
    } else {
      sem_wait(&sh->sem);
      sem_post(named);
    }
  }
}

int main(void)
{
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    return 1;
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&sh->mu, &ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_cond_init(&sh->cv, &ca);
  pthread_barrierattr_t ba;
  pthread_barrierattr_init(&ba);
  pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(&sh->bar, &ba, 4);
  sem_init(&sh->sem, 1, 0);
  char name[64];
  snprintf(name, sizeof name, "/gmp-pshared-%d", (int)getpid());
  named = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
  if (named == SEM_FAILED) {
    perror("sem_open");
    return 1;
  }
  sem_unlink(name);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    work(1);
    _exit(0);
  }
  work(0);
  int st;
  waitpid(pid, &st, 0);
  printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  printf("counter: %ld (expected %d)\n", sh->counter, 4 * ITERS);
  printf("barrier serial threads: %d (expected %d)\n", sh->serial, ROUNDS);
  printf("ping-pong turn back to: %d\n", sh->turn);
  int v;
  sem_getvalue(&sh->sem, &v);
  printf("shared semaphore value: %d\n", v);
  return sh->counter == 4 * ITERS && sh->serial == ROUNDS ? 0 : 1;
}
