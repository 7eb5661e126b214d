/* handler_switch: signal handlers that yield or sleep, so that other
 * threads run while a handler is in progress.
 * gmp-test: mode=compare timeout=60
 *
 * 1. Thread A's SIGUSR1 handler yields (sched_yield) or sleeps (usleep)
 *    for 200 ms; meanwhile thread B is sent SIGUSR1. B must run its
 *    handler at once, in B, and A's handler must run once. (Under a
 *    runtime that left the handler's signal mask on the OS thread when it
 *    switched to B, B ran with SIGUSR1 blocked: its signal was later run
 *    in A, and A's thread was never preempted again.)
 * 2. The rendezvous of haproxy's thread dump: every thread is sent the
 *    signal, and each handler yields until all have arrived. With SIGUSR1,
 *    then with SIGURG (the signal haproxy uses, and the one a runtime may
 *    use for its own preemption).
 * Threads sleep, wait in epoll_wait or compute between signals. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define NW 4

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static atomic_int stop;

/* Workers: an event loop, a sleeper, a computer (by index). */
static void *worker(void *arg)
{
	long i = (long)arg;
	int ep = epoll_create1(0);
	struct epoll_event ev[4];
	volatile unsigned long x = 0;
	while (!atomic_load(&stop)) {
		switch (i % 3) {
		case 0:
			epoll_wait(ep, ev, 4, 1);
			break;
		case 1:
			usleep(1000);
			break;
		default:
			for (int k = 0; k < 20000; k++)
				x += k;
		}
	}
	close(ep);
	return NULL;
}

/* ---- 1: a handler in progress while another thread gets a signal ---- */

static pthread_t A, B;
static atomic_int ran_a, ran_b, a_mode;
static double b_sent, b_latency;

static void on_usr1_ab(int sig)
{
	(void)sig;
	if (pthread_equal(pthread_self(), A)) {
		atomic_fetch_add(&ran_a, 1);
		double t0 = now();
		if (atomic_load(&a_mode) == 0) {
			while (now() - t0 < 0.2)
				sched_yield();
		} else {
			usleep(200000);
		}
	} else if (pthread_equal(pthread_self(), B)) {
		atomic_fetch_add(&ran_b, 1);
		b_latency = now() - b_sent;
	}
}

static void handler_in_progress(int mode)
{
	signal(SIGUSR1, on_usr1_ab);
	atomic_store(&ran_a, 0);
	atomic_store(&ran_b, 0);
	atomic_store(&a_mode, mode);
	atomic_store(&stop, 0);
	pthread_create(&A, NULL, worker, (void *)0);
	pthread_create(&B, NULL, worker, (void *)1);
	usleep(30000);
	pthread_kill(A, SIGUSR1);
	usleep(30000);
	b_sent = now();
	pthread_kill(B, SIGUSR1);
	usleep(400000);
	atomic_store(&stop, 1);
	pthread_join(A, NULL);
	pthread_join(B, NULL);
	printf("handler %s: A's ran %d, B's ran %d, B's within 100 ms: %s\n",
	       mode == 0 ? "yielding" : "sleeping", atomic_load(&ran_a), atomic_load(&ran_b),
	       atomic_load(&ran_b) == 1 && b_latency < 0.1 ? "yes" : "no");
}

/* ---- 2: rendezvous in the handlers ---------------------------------- */

static atomic_int arrived, left, expected;

static void on_meet(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	atomic_fetch_add(&arrived, 1);
	double t0 = now();
	while (atomic_load(&arrived) < atomic_load(&expected) && now() - t0 < 5)
		sched_yield();
	atomic_fetch_add(&left, 1);
}

static void rendezvous(int sig, const char *name)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_meet;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(sig, &sa, NULL);
	pthread_t th[NW];
	atomic_store(&stop, 0);
	for (long i = 0; i < NW; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	usleep(30000);
	int met = 0;
	for (int r = 0; r < 20; r++) {
		atomic_store(&arrived, 0);
		atomic_store(&left, 0);
		atomic_store(&expected, NW + 1);
		for (int i = 0; i < NW; i++)
			pthread_kill(th[i], sig);
		raise(sig); /* this thread takes part too */
		double t0 = now();
		while (atomic_load(&left) < NW + 1 && now() - t0 < 10)
			sched_yield();
		if (atomic_load(&arrived) == NW + 1 && atomic_load(&left) == NW + 1)
			met++;
		usleep(2000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NW; i++)
		pthread_join(th[i], NULL);
	printf("%s rendezvous of %d threads: %d of 20 rounds met\n", name, NW + 1, met);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	handler_in_progress(0);
	handler_in_progress(1);
	rendezvous(SIGUSR1, "SIGUSR1");
	rendezvous(SIGURG, "SIGURG");
	return 0;
}
