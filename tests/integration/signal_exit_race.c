/* signal_exit_race: process-directed real-time signals while the only
 * threads that accept them keep starting and ending.
 * gmp-test: mode=compare timeout=60
 *
 * The process sends itself 20,000 SIGRTMIN+2 (real-time: each one is
 * queued, none merged), blocked in every thread but short-lived ones
 * that three others create and join in a loop. Natively the kernel keeps
 * a signal for the process until a thread that accepts it takes it, so
 * every one is handled exactly once. A runtime that hands a signal to a
 * thread about to end (one still on its way out when the signal lands on
 * its OS thread, or one its monitor picked) lost it with the thread: ~10
 * of 20,000 here, and a sigwait test hung when the single signal it
 * waited for went so. Checks that all are handled, none twice. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define SENDS 20000

static atomic_int handled;
static atomic_int stop;

static void on_rt(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

static void *short_lived(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 2);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	volatile int x = 0;
	for (int i = 0; i < 200; i++)
		x += i;
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_t t;
		if (pthread_create(&t, NULL, short_lived, NULL) == 0)
			pthread_join(t, NULL);
	}
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
	struct sigaction sa = {0};
	sa.sa_handler = on_rt;
	sigaction(SIGRTMIN + 2, &sa, NULL);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_t c[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&c[i], NULL, churn, NULL);
	int sent = 0;
	for (int i = 0; i < SENDS; i++) {
		if (kill(getpid(), SIGRTMIN + 2) == 0)
			sent++;
		if (i % 16 == 0)
			usleep(50);
	}
	/* Until all are handled (a few ms), or 10 s. */
	double t0 = now();
	while (atomic_load(&handled) < sent && now() - t0 < 10)
		usleep(1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i], NULL);
	sigset_t p;
	sigemptyset(&p);
	sigpending(&p);
	printf("sent %d, handled %d, still pending: %s\n", sent, atomic_load(&handled),
	       sigismember(&p, SIGRTMIN + 2) ? "yes" : "no");
	return atomic_load(&handled) == sent ? 0 : 1;
}
