/* syscall_read: the cost of a system call that does not block, through the
 * program's usual libc call: read(2) of 1 byte from /dev/zero, N times.
 *
 * An idle second thread exists during the measurement, because a process
 * under libgmp is always multi-threaded (its Ms and sysmon) and the kernel
 * then takes the file's position lock and reference count atomically on
 * every read: comparing with a single-threaded native run would charge
 * that kernel cost to the runtime.
 *   syscall_read [N=2000000]  ->  RESULT syscall_read per_op <ns> ns
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];

static void *idle(void *arg)
{
  char c;
  ssize_t r = read(pipefd[0], &c, 1); /* until main is done */
  (void)r;
  return NULL;
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 2000000;
  if (n <= 0 || pipe(pipefd) != 0)
    return 2;
  pthread_t t;
  pthread_create(&t, NULL, idle, NULL);
  int fd = open("/dev/zero", O_RDONLY);
  if (fd < 0)
    return 2;
  char c;
  for (long i = 0; i < n / 10; i++) /* warm-up */
    if (read(fd, &c, 1) != 1)
      return 1;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++)
    if (read(fd, &c, 1) != 1)
      return 1;
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
  if (write(pipefd[1], "x", 1) != 1)
    return 1;
  pthread_join(t, NULL);
  printf("RESULT syscall_read per_op %.1f ns\n", ns);
  fprintf(stderr, "syscall_read: %ld reads of 1 byte from /dev/zero: %.1f ns each\n", n, ns);
  return 0;
}
