/* poll_loop_starve: event loops that poll without waiting must not
 * starve a sleeping thread.
 * gmp-test: mode=selfcheck timeout=60
 *
 * Three threads loop on epoll_wait, poll and select with a zero timeout,
 * with a little computation in between (an event loop that polls rather
 * than blocks), while the main thread sleeps 50 ms five times. Natively
 * the kernel preempts the loops. A green-thread runtime must too: a loop
 * that spends its time in libc and non-waiting system calls can only be
 * made to give way when one of them returns (without asynchronous
 * preemption, GMP_DEBUG=asyncpreemptoff=1 in tests/tools/cli.sh, that was
 * never: the sleeper never woke). Checks the worst oversleep stays under
 * 60 ms. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop;

static void *loop(void *arg)
{
	long kind = (long)arg;
	int ep = epoll_create1(0);
	int p[2];
	if (ep < 0 || pipe(p) != 0)
		return NULL;
	struct epoll_event ev[4];
	volatile unsigned long x = 0;
	while (!atomic_load(&stop)) {
		if (kind == 0) {
			epoll_wait(ep, ev, 4, 0);
		} else if (kind == 1) {
			struct pollfd pf = {p[0], POLLIN, 0};
			poll(&pf, 1, 0);
		} else {
			fd_set r;
			FD_ZERO(&r);
			FD_SET(p[0], &r);
			struct timeval tv = {0, 0};
			select(p[0] + 1, &r, NULL, NULL, &tv);
		}
		for (int k = 0; k < 20000; k++)
			x += k;
	}
	close(ep);
	close(p[0]);
	close(p[1]);
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
	pthread_t t[3];
	for (long i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, loop, (void *)i);
	double worst = 0;
	for (int i = 0; i < 5; i++) {
		double t0 = now();
		usleep(50000);
		double late = now() - t0 - 0.05;
		if (late > worst)
			worst = late;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("worst oversleep of a 50 ms usleep: %s 60 ms\n", worst < 0.06 ? "under" : "OVER");
	if (worst >= 0.06) {
		fprintf(stderr, "poll_loop_starve: worst oversleep %.1f ms\n", worst * 1e3);
		return 1;
	}
	return 0;
}
