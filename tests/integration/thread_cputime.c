/* thread_cputime: per-thread CPU-time clocks.
 * gmp-test: mode=compare timeout=60
 *
 * Two threads spin until their own CLOCK_THREAD_CPUTIME_ID shows 200 ms
 * of CPU time, a third sleeps 200 ms. Checks: the sleeper's clock shows
 * (almost) no CPU time although it may share an OS thread with a spinner;
 * each spinner's clock never runs ahead of the wall clock; the clock id
 * pthread_getcpuclockid gives for a thread reads, from another thread,
 * what that thread reads itself; clock_getres accepts it; a clock of a
 * thread that has been joined is refused. (Under a runtime that runs
 * many threads on one OS thread, the kernel's per-thread clock measured
 * the OS thread: the sleeper was charged the spinner's time, and
 * pthread_getcpuclockid failed, which made haproxy's watchdog time its
 * threads on the wall clock.) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double ts_s(const struct timespec *t) { return t->tv_sec + t->tv_nsec / 1e9; }

static double clk_s(clockid_t c)
{
	struct timespec t;
	if (clock_gettime(c, &t) != 0)
		return -1;
	return ts_s(&t);
}

struct res {
	double cpu;      /* own CPU time used during the run */
	double wall;
	double at_end;   /* own clock's reading at the end */
	atomic_int done;
	atomic_int release;
};

static void *spinner(void *arg)
{
	struct res *r = arg;
	double c0 = clk_s(CLOCK_THREAD_CPUTIME_ID), w0 = clk_s(CLOCK_MONOTONIC);
	volatile unsigned long x = 0;
	while (clk_s(CLOCK_THREAD_CPUTIME_ID) - c0 < 0.2)
		for (int k = 0; k < 10000; k++)
			x += k;
	r->at_end = clk_s(CLOCK_THREAD_CPUTIME_ID);
	r->cpu = r->at_end - c0;
	r->wall = clk_s(CLOCK_MONOTONIC) - w0;
	atomic_store(&r->done, 1);
	while (!atomic_load(&r->release))
		usleep(1000);
	return NULL;
}

static void *sleeper(void *arg)
{
	struct res *r = arg;
	double c0 = clk_s(CLOCK_THREAD_CPUTIME_ID);
	usleep(200000);
	r->cpu = clk_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	atomic_store(&r->done, 1);
	while (!atomic_load(&r->release))
		usleep(1000);
	return NULL;
}

int main(void)
{
	struct res a = {0}, b = {0}, s = {0};
	pthread_t ta, tb, ts;
	pthread_create(&ta, NULL, spinner, &a);
	pthread_create(&tb, NULL, spinner, &b);
	pthread_create(&ts, NULL, sleeper, &s);
	while (!atomic_load(&a.done) || !atomic_load(&b.done) || !atomic_load(&s.done))
		usleep(1000);

	clockid_t ca;
	int e = pthread_getcpuclockid(ta, &ca);
	printf("pthread_getcpuclockid: %s\n", e ? strerror(e) : "ok");
	if (!e) {
		/* a's thread now only sleeps: its clock stands still */
		double seen = clk_s(ca);
		printf("another thread reads its clock as it does: %s\n",
		       seen >= a.at_end - 0.001 && seen - a.at_end < 0.02 ? "yes" : "no");
		struct timespec res;
		printf("clock_getres: %s\n", clock_getres(ca, &res) == 0 ? "ok" : strerror(errno));
	}
	printf("spinners used 200 ms of CPU, no more than the wall clock: %s\n",
	       a.cpu >= 0.2 && b.cpu >= 0.2 && a.cpu <= a.wall + 0.005 && b.cpu <= b.wall + 0.005
	           ? "yes" : "no");
	printf("sleeper's CPU time under 20 ms: %s\n", s.cpu >= 0 && s.cpu < 0.02 ? "yes" : "no");
	atomic_store(&a.release, 1);
	atomic_store(&b.release, 1);
	atomic_store(&s.release, 1);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_join(ts, NULL);
	if (!e) {
		struct timespec t;
		int r = clock_gettime(ca, &t);
		printf("clock of a joined thread: %s\n", r == 0 ? "readable" : strerror(errno));
	}
	return 0;
}
