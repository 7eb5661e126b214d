/* wakeup_latency: how late a thread that sleeps 1 ms in a loop wakes up,
 * alone and with 4 threads spinning in pure compute loops beside it.
 *   wakeup_latency [HOGS=4] [SAMPLES=500]
 *   -> RESULT wakeup_h<HOGS> p50|p99|max <us> us
 * Under a green-thread runtime the hogs never call anything: only
 * asynchronous preemption (10 ms slices, as in Go) lets the sleeper run
 * when they outnumber the Ps.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int stop;
static volatile double sink;

static void *hog(void *arg)
{
  double x = 1.0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    for (int i = 0; i < 1000; i++)
      x = x * 1.0000001 + 0.5;
  sink = x;
  return NULL;
}

static double now_us(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  int hogs = argc > 1 ? atoi(argv[1]) : 4;
  int n = argc > 2 ? atoi(argv[2]) : 500;
  if (hogs < 0 || n <= 0)
    return 2;
  pthread_t *t = calloc((size_t)hogs + 1, sizeof *t);
  double *late = calloc((size_t)n, sizeof *late);
  for (int i = 0; i < hogs; i++)
    pthread_create(&t[i], NULL, hog, NULL);
  for (int i = 0; i < n; i++) {
    double a = now_us();
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    late[i] = now_us() - a - 1000.0;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < hogs; i++)
    pthread_join(t[i], NULL);
  qsort(late, (size_t)n, sizeof *late, cmp);
  printf("RESULT wakeup_h%d p50 %.1f us\n", hogs, late[n / 2]);
  printf("RESULT wakeup_h%d p99 %.1f us\n", hogs, late[n * 99 / 100]);
  printf("RESULT wakeup_h%d max %.1f us\n", hogs, late[n - 1]);
  fprintf(stderr, "wakeup_latency: %d hogs, %d sleeps of 1 ms: late p50 %.1f us, p99 %.1f us, max %.1f us\n",
          hogs, n, late[n / 2], late[n * 99 / 100], late[n - 1]);
  return 0;
}
