/* sigwait_thread: signals sent to a thread that waits for them with
 * sigwait, sigwaitinfo or sigtimedwait.
 * gmp-test: mode=compare timeout=60
 *
 * Every thread blocks SIGUSR1, SIGUSR2 and SIGRTMIN; one waits for them.
 * Checks that a signal sent with pthread_kill while it waits, or before
 * it begins to wait, is taken by its sigwait (pbzip2 hung at exit under
 * a runtime that only delivered thread-directed signals to threads that
 * did not block them); that pthread_sigqueue's value and the sender's pid
 * arrive with sigwaitinfo; that a process-directed signal (kill) is taken
 * as well; that sigtimedwait times out with EAGAIN, and returns at once
 * with a zero timeout; that a signal it does not block, with a handler,
 * runs the handler and ends sigwaitinfo with EINTR; and that
 * pthread_cancel ends a thread blocked in sigwait. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sigset_t set;
static atomic_int stage;

static void pause_ms(int ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

static double since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) + (b.tv_nsec - a->tv_nsec) / 1e9;
}

static void *waiter(void *arg)
{
	(void)arg;
	int sig = 0;
	/* 1: sent while waiting */
	atomic_store(&stage, 1);
	int r = sigwait(&set, &sig);
	printf("sigwait: %d, %s\n", r, r == 0 ? strsignal(sig) : "-");
	/* 2: sent before the wait begins */
	atomic_store(&stage, 2);
	while (atomic_load(&stage) != 3)
		pause_ms(1);
	r = sigwait(&set, &sig);
	printf("sigwait (sent earlier): %d, %s\n", r, r == 0 ? strsignal(sig) : "-");
	/* 4: pthread_sigqueue with a value */
	atomic_store(&stage, 4);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	r = sigwaitinfo(&set, &si);
	printf("sigwaitinfo: %s, code %s, value %d, from this process: %s\n",
	       r == SIGRTMIN ? "SIGRTMIN" : "other", si.si_code == SI_QUEUE ? "SI_QUEUE" : "other",
	       si.si_value.sival_int, si.si_pid == getpid() ? "yes" : "no");
	/* 5: process-directed */
	atomic_store(&stage, 5);
	memset(&si, 0, sizeof si);
	struct timespec ten = {10, 0};
	r = sigtimedwait(&set, &si, &ten);
	printf("sigtimedwait (kill): %s, code %s\n", r == SIGUSR2 ? "SIGUSR2" : "other",
	       si.si_code == SI_USER ? "SI_USER" : "other");
	/* 6: timeouts */
	struct timespec t0, d = {0, 100 * 1000 * 1000}, zero = {0, 0};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = sigtimedwait(&set, NULL, &d);
	int e = errno;
	double took = since(&t0);
	printf("sigtimedwait 100 ms: %d, %s, on time: %s\n", r, r < 0 ? strerror(e) : "-",
	       took >= 0.099 && took < 2.0 ? "yes" : "no");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = sigtimedwait(&set, NULL, &zero);
	e = errno;
	printf("sigtimedwait 0: %d, %s, at once: %s\n", r, r < 0 ? strerror(e) : "-",
	       since(&t0) < 0.05 ? "yes" : "no");
	d.tv_nsec = 1000000000;
	r = sigtimedwait(&set, NULL, &d);
	e = errno;
	printf("sigtimedwait bad timeout: %d, %s\n", r, r < 0 ? strerror(e) : "-");
	return NULL;
}

static volatile sig_atomic_t hups;
static void on_hup(int sig)
{
	(void)sig;
	hups++;
}

static void *interrupted(void *arg)
{
	(void)arg;
	atomic_store(&stage, 20);
	siginfo_t si;
	int r = sigwaitinfo(&set, &si);
	int e = errno;
	printf("sigwaitinfo, SIGHUP handled: %d, %s, handler ran %d time(s)\n", r,
	       r < 0 ? strerror(e) : "-", (int)hups);
	return NULL;
}

static void *cancelled(void *arg)
{
	(void)arg;
	int sig;
	atomic_store(&stage, 10);
	sigwait(&set, &sig);
	printf("cancelled thread: sigwait returned\n");
	return NULL;
}

static void wait_stage(int s)
{
	while (atomic_load(&stage) != s)
		pause_ms(1);
	pause_ms(30); /* let it block */
}

int main(void)
{
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	pthread_t t;
	if (pthread_create(&t, NULL, waiter, NULL) != 0)
		return 1;
	wait_stage(1);
	pthread_kill(t, SIGUSR1);
	wait_stage(2);
	pthread_kill(t, SIGUSR2);
	atomic_store(&stage, 3);
	wait_stage(4);
	union sigval v = {.sival_int = 4242};
	pthread_sigqueue(t, SIGRTMIN, v);
	wait_stage(5);
	kill(getpid(), SIGUSR2);
	pthread_join(t, NULL);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	if (pthread_create(&t, NULL, interrupted, NULL) != 0)
		return 1;
	wait_stage(20);
	pthread_kill(t, SIGHUP);
	pthread_join(t, NULL);

	pthread_t c;
	if (pthread_create(&c, NULL, cancelled, NULL) != 0)
		return 1;
	wait_stage(10);
	pthread_cancel(c);
	void *ret = NULL;
	pthread_join(c, &ret);
	printf("cancelled thread: %s\n", ret == PTHREAD_CANCELED ? "cancelled" : "not cancelled");
	return 0;
}
