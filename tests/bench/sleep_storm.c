/* sleep_storm: many threads that each sleep briefly many times, all starting
 * together behind a gate. An ordinary pthread program (never linked with
 * libgmp); run natively or under LD_PRELOAD=libgmp.so.
 *
 *   sleep_storm [THREADS [ITERS [SLEEP_US [STACK_KIB]]]]
 *               defaults: 10000 threads x 20 x usleep(1000), 64 KiB stacks
 *
 * Prints:
 *   RESULT sleepstorm wall <s> s           first create .. last join
 *   RESULT sleepstorm run <s> s            gate open .. last join
 *   RESULT sleepstorm late_p50 <us> us     how much later than asked a usleep
 *   RESULT sleepstorm late_p99 <us> us     returned (measured around each call)
 *   RESULT sleepstorm late_max <us> us
 *   RESULT sleepstorm threads <n> count    max OS threads seen in /proc/self/status
 * Exit 1 if a thread can't be created. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long iters;
static long sleep_us;
static int64_t *late_ns;        /* [thread * iters + i], each slot written by its thread */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* OS threads of this process, from /proc/self/status. -1 if unreadable. */
static int os_threads(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strstr(buf, "\nThreads:");
	return p ? atoi(p + 9) : -1;
}

static void *worker(void *arg)
{
	int64_t *late = late_ns + (intptr_t)arg * iters;
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	for (long i = 0; i < iters; i++) {
		int64_t t0 = now_ns();
		usleep((useconds_t)sleep_us);
		late[i] = now_ns() - t0 - (int64_t)sleep_us * 1000;
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* nearest-rank percentile of sorted a[0..n) */
static double pct_us(const int64_t *a, size_t n, double p)
{
	size_t rank = (size_t)(p * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)a[rank - 1] / 1000.0;
}

static long arg_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "sleep_storm: bad %s '%s' (want %ld..%ld)\n", what, s, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc > 5) {
		fprintf(stderr, "usage: sleep_storm [THREADS [ITERS [SLEEP_US [STACK_KIB]]]]\n");
		return 2;
	}
	long nthreads = argc > 1 ? arg_long(argv[1], "THREADS", 1, 1000000) : 10000;
	iters = argc > 2 ? arg_long(argv[2], "ITERS", 1, 1000000) : 20;
	sleep_us = argc > 3 ? arg_long(argv[3], "SLEEP_US", 0, 999999) : 1000;
	long stack_kib = argc > 4 ? arg_long(argv[4], "STACK_KIB", 16, 1048576) : 64;

	size_t nsamples = (size_t)nthreads * (size_t)iters;
	late_ns = calloc(nsamples, sizeof *late_ns);
	pthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
	if (!late_ns || !ts) {
		fprintf(stderr, "sleep_storm: out of memory\n");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	int rc = pthread_attr_setstacksize(&attr, (size_t)stack_kib * 1024);
	if (rc != 0) {
		fprintf(stderr, "sleep_storm: pthread_attr_setstacksize(%ld KiB): %s\n",
			stack_kib, strerror(rc));
		return 1;
	}

	int64_t t_start = now_ns();
	for (long i = 0; i < nthreads; i++) {
		rc = pthread_create(&ts[i], &attr, worker, (void *)(intptr_t)i);
		if (rc != 0) {
			fprintf(stderr, "sleep_storm: pthread_create #%ld of %ld: %s\n",
				i, nthreads, strerror(rc));
			return 1;
		}
	}
	pthread_attr_destroy(&attr);
	int peak = os_threads();        /* all workers exist, parked at the gate */

	int64_t t_gate = now_ns();
	pthread_mutex_lock(&gate_mu);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	for (long i = 0; i < nthreads; i++)
		pthread_join(ts[i], NULL);
	int64_t t_end = now_ns();
	free(ts);

	qsort(late_ns, nsamples, sizeof *late_ns, cmp_i64);
	double wall = (double)(t_end - t_start) / 1e9;
	double run = (double)(t_end - t_gate) / 1e9;
	double p50 = pct_us(late_ns, nsamples, 0.50);
	double p99 = pct_us(late_ns, nsamples, 0.99);
	double pmax = (double)late_ns[nsamples - 1] / 1000.0;
	fprintf(stderr, "sleep_storm: %ld threads (%ld KiB stacks) x %ld x usleep(%ld): "
		"wall %.3f s (create %.3f s, run %.3f s; ideal run %.3f s); "
		"lateness p50 %.1f us, p99 %.1f us, max %.1f us; peak OS threads %d\n",
		nthreads, stack_kib, iters, sleep_us, wall, (double)(t_gate - t_start) / 1e9,
		run, (double)(iters * sleep_us) / 1e6, p50, p99, pmax, peak);
	printf("RESULT sleepstorm wall %.4f s\n", wall);
	printf("RESULT sleepstorm run %.4f s\n", run);
	printf("RESULT sleepstorm late_p50 %.1f us\n", p50);
	printf("RESULT sleepstorm late_p99 %.1f us\n", p99);
	printf("RESULT sleepstorm late_max %.1f us\n", pmax);
	printf("RESULT sleepstorm threads %d count\n", peak);
	free(late_ns);
	return 0;
}
