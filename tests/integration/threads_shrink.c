/* threads_shrink: after a burst of threads blocked in the kernel, the
 * process does not keep an OS thread for each of them forever.
 * gmp-test: mode=compare timeout=60
 *
 * 24 threads each wait in waitpid() for a child that sleeps 300 ms (a
 * genuinely blocking system call: under a green-thread runtime each takes
 * an OS thread while it waits). All are joined; 7 s later the process's
 * OS threads (/proc/self/task) must be back to a handful: natively 1;
 * under a runtime, its CPUs' worth plus its own few. Output and results
 * are the same either way.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N 24

static int os_threads(void)
{
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void *waiter(void *arg)
{
  (void)arg;
  pid_t pid = fork();
  if (pid == 0) {
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    _exit(3);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return (void *)1L;
  return (void *)(long)(WIFEXITED(st) && WEXITSTATUS(st) == 3 ? 0 : 1);
}

int main(void)
{
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    if (pthread_create(&t[i], NULL, waiter, NULL) != 0) {
      printf("pthread_create failed\n");
      return 1;
    }
  int bad = 0;
  for (int i = 0; i < N; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += r != NULL;
  }
  printf("%d threads waited for their children, %d failed\n", N, bad);
  sleep(7);
  int n = os_threads();
  int limit = (int)ncpu + 3;
  printf("OS threads 7 s later within %s: %s\n", "CPUs + 3", n > 0 && n <= limit ? "yes" : "NO");
  if (n > limit)
    fprintf(stderr, "%d OS threads, limit %d\n", n, limit);
  return bad || n > limit;
}
