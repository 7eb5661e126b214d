/* timer_siginfo: a process-directed signal keeps its siginfo, whichever
 * thread takes it.
 * gmp-test: mode=compare timeout=60
 *
 * A POSIX timer (SIGEV_SIGNAL, process-directed, with a value) fires
 * every 2 ms while four threads sleep, yield and compute; only the one
 * that sleeps (0.5 ms at a time) accepts the signal, so it is mostly
 * taken as that thread is switched back in. Every delivery
 * must carry si_code SI_TIMER and the timer's value: haproxy's watchdog
 * tells its timers' signals apart so, and killed the process when a
 * timer's signal arrived looking like a tkill (a runtime that gave the
 * signal to a thread between two of its runs, with no room for its
 * siginfo, made one up). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int good, bad, stop;

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code == SI_TIMER && si->si_value.sival_int == 77)
		atomic_fetch_add(&good, 1);
	else
		atomic_fetch_add(&bad, 1);
}

static void *worker(void *arg)
{
	long i = (long)arg;
	volatile unsigned long x = 0;
	if (i == 0) { /* the one thread that takes SIGALRM, mostly asleep */
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGALRM);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	}
	while (!atomic_load(&stop)) {
		if (i == 0)
			usleep(500);
		else if (i == 1)
			sched_yield();
		else
			for (int k = 0; k < 50000; k++)
				x += k;
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_alarm;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &blk, NULL); /* inherited by all but one */
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGALRM;
	sev.sigev_value.sival_int = 77;
	timer_t tm;
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) != 0) {
		perror("timer_create");
		return 1;
	}
	struct itimerspec it = {{0, 2000000}, {0, 2000000}};
	timer_settime(tm, 0, &it, NULL);
	while (atomic_load(&good) + atomic_load(&bad) < 200)
		usleep(1000);
	timer_delete(tm);
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("timer signals: at least 200 handled, with a siginfo not the timer's: %d\n",
	       atomic_load(&bad));
	return 0;
}
