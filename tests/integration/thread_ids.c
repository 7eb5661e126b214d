/* Thread ids: gettid() is unique per thread and equal to syscall(SYS_gettid);
 * the main thread's is the pid; a thread's id names it in tgkill, tkill,
 * rt_tgsigqueueinfo, sched_getaffinity and sched_getscheduler; a child
 * forked from a non-main thread has gettid() == getpid().
 * (CPython's test_threading checks get_native_id() is unique per thread.)
 * gmp-test: mode=compare
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 40

static pid_t ids[N];
static pthread_barrier_t all_have_ids;   /* every thread has recorded its id */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;                            /* main has finished signalling */
static volatile sig_atomic_t got[N];      /* handler ran in thread i */
static volatile sig_atomic_t bad_handler; /* handler ran in the wrong thread */
static __thread int my_index = -1;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
  (void)sig; (void)uc;
  int i = my_index;
  if (i < 0 || gettid() != ids[i]) {
    bad_handler = 1;
    return;
  }
  /* which sender: value 1000+i from rt_tgsigqueueinfo, else tgkill/tkill */
  if (si->si_code == SI_QUEUE && si->si_value.sival_int != 1000 + i)
    bad_handler = 1;
  got[i]++;
}

static void *worker(void *arg)
{
  int i = (int)(long)arg;
  my_index = i;
  pid_t a = gettid();
  pid_t b = (pid_t)syscall(SYS_gettid);
  ids[i] = a == b ? a : -1;
  pthread_barrier_wait(&all_have_ids);
  pthread_mutex_lock(&mu);
  while (!go)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  /* still the same id after blocking (the thread may be on another CPU) */
  if (gettid() != a)
    ids[i] = -2;
  return NULL;
}

static void *forker(void *arg)
{
  (void)arg;
  pid_t pid = fork();
  if (pid == 0)
    _exit(gettid() == getpid() && syscall(SYS_gettid) == getpid() ? 0 : 1);
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return (void *)1L;
  return (void *)(long)(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
}

static int cmp_pid(const void *a, const void *b)
{
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return x < y ? -1 : x > y;
}

int main(void)
{
  printf("main: gettid()==getpid(): %d, syscall==gettid: %d\n", gettid() == getpid(),
         syscall(SYS_gettid) == gettid());

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);

  pthread_t th[N];
  pthread_barrier_init(&all_have_ids, NULL, N + 1);
  for (int i = 0; i < N; i++)
    if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0) {
      printf("pthread_create failed\n");
      return 1;
    }
  pthread_barrier_wait(&all_have_ids);

  pid_t sorted[N + 1];
  memcpy(sorted, ids, sizeof ids);
  sorted[N] = gettid();
  qsort(sorted, N + 1, sizeof sorted[0], cmp_pid);
  int distinct = 1, valid = 1;
  for (int i = 0; i < N + 1; i++) {
    if (sorted[i] <= 0)
      valid = 0;
    if (i && sorted[i] != sorted[i - 1])
      distinct++;
  }
  printf("threads: %d, ids valid: %d, distinct ids (incl. main): %d\n", N, valid, distinct);

  /* each thread by its id: three ways of sending, one signal per thread */
  int sent_ok = 1;
  for (int i = 0; i < N; i++) {
    int r;
    if (i % 3 == 0)
      r = tgkill(getpid(), ids[i], SIGUSR1);
    else if (i % 3 == 1)
      r = (int)syscall(SYS_tkill, ids[i], SIGUSR1);
    else {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      si.si_signo = SIGUSR1;
      si.si_code = SI_QUEUE;
      si.si_pid = getpid();
      si.si_uid = getuid();
      si.si_value.sival_int = 1000 + i;
      r = (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), ids[i], SIGUSR1, &si);
    }
    if (r != 0)
      sent_ok = 0;
  }
  printf("signals sent by id: %d\n", sent_ok);

  cpu_set_t mine, theirs;
  CPU_ZERO(&mine);
  CPU_ZERO(&theirs);
  int aff = sched_getaffinity(0, sizeof mine, &mine) == 0 &&
            sched_getaffinity(ids[0], sizeof theirs, &theirs) == 0 &&
            CPU_COUNT(&theirs) > 0;
  printf("sched_getaffinity(thread id): %d\n", aff);
  printf("sched_getscheduler(thread id) == SCHED_OTHER: %d\n",
         sched_getscheduler(ids[1]) == SCHED_OTHER);
  struct sched_param sp = {0};
  printf("sched_getparam(thread id) == 0, priority 0: %d\n",
         sched_getparam(ids[2], &sp) == 0 && sp.sched_priority == 0);

  pthread_mutex_lock(&mu);
  go = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  int stable = 1;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    if (ids[i] < 0)
      stable = 0;
  }
  int delivered = 1;
  for (int i = 0; i < N; i++)
    if (got[i] != 1)
      delivered = 0;
  printf("ids stable across blocking: %d\n", stable);
  printf("each thread got its one signal, in its own handler: %d (wrong thread: %d)\n",
         delivered, (int)bad_handler);

  /* an id of a thread that has ended names no thread */
  errno = 0;
  int r = tgkill(getpid(), ids[0], 0);
  printf("tgkill(ended thread, 0): %d %s\n", r, r ? strerror(errno) : "");

  pthread_t f;
  void *fr;
  pthread_create(&f, NULL, forker, NULL);
  pthread_join(f, &fr);
  printf("child forked by a thread: gettid()==getpid(): %d\n", fr == NULL);
  return 0;
}
