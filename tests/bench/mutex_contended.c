/* mutex_contended: T threads each do lock; counter++; unlock, for a total of
 * about TOTAL operations, all starting together behind a gate. An ordinary
 * pthread program (never linked with libgmp); run natively or under
 * LD_PRELOAD=libgmp.so.
 *
 *   mutex_contended T [TOTAL]      T >= 1 threads; TOTAL ops (2000000), split
 *                                  evenly (TOTAL/T each, rounded down)
 *
 * Prints, for bench mutex_T<T>:
 *   RESULT mutex_T<T> per_op <ns> ns        wall time from gate to last join / ops
 *   RESULT mutex_T<T> threads <n> count     max OS threads seen in /proc/self/status
 * Exit 1 if the final count is wrong or a thread can't be created. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;    /* protected by mu */
static long per_thread;

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static atomic_int peak_threads;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* OS threads of this process, from /proc/self/status (no stdio: its locks
 * are glibc-internal). -1 if unreadable. */
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

static void note_threads(void)
{
	int n = os_threads();
	int old = atomic_load(&peak_threads);
	while (n > old && !atomic_compare_exchange_weak(&peak_threads, &old, n))
		;
}

static void *worker(void *arg)
{
	long id = (long)(intptr_t)arg;
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);

	long half = per_thread / 2;
	for (long i = 0; i < per_thread; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
		if (id == 0 && i == half)
			note_threads();
	}
	return NULL;
}

static long arg_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "mutex_contended: bad %s '%s' (want %ld..%ld)\n", what, s, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: mutex_contended T [TOTAL_OPS]\n");
		return 2;
	}
	long nthreads = arg_long(argv[1], "T", 1, 1000000);
	long total = argc > 2 ? arg_long(argv[2], "TOTAL_OPS", 1, 1000000000000L) : 2000000;
	per_thread = total / nthreads;
	if (per_thread < 1) {
		fprintf(stderr, "mutex_contended: TOTAL_OPS %ld < T %ld\n", total, nthreads);
		return 2;
	}
	long ops = per_thread * nthreads;

	pthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
	if (!ts) {
		fprintf(stderr, "mutex_contended: out of memory\n");
		return 1;
	}
	for (long i = 0; i < nthreads; i++) {
		int rc = pthread_create(&ts[i], NULL, worker, (void *)(intptr_t)i);
		if (rc != 0) {
			fprintf(stderr, "mutex_contended: pthread_create #%ld of %ld: %s\n",
				i, nthreads, strerror(rc));
			return 1;
		}
	}
	note_threads();         /* all workers exist, parked at the gate */

	double t0 = now_s();
	pthread_mutex_lock(&gate_mu);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	for (long i = 0; i < nthreads; i++)
		pthread_join(ts[i], NULL);
	double el = now_s() - t0;
	free(ts);

	if (counter != ops) {
		fprintf(stderr, "mutex_contended: FAIL: counter=%ld, want %ld (T=%ld)\n",
			counter, ops, nthreads);
		return 1;
	}
	double ns = el / (double)ops * 1e9;
	fprintf(stderr, "mutex_contended: T=%ld, %ld ops in %.3f s: %.2f ns/op, count ok, "
		"peak OS threads %d\n", nthreads, ops, el, ns, atomic_load(&peak_threads));
	printf("RESULT mutex_T%ld per_op %.2f ns\n", nthreads, ns);
	printf("RESULT mutex_T%ld threads %d count\n", nthreads, atomic_load(&peak_threads));
	return 0;
}
