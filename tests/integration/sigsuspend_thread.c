/* sigsuspend_thread: pause and sigsuspend in a thread that another
 * thread signals with pthread_kill.
 * gmp-test: mode=compare timeout=60
 *
 * Both calls wait for a handler to run and then fail with EINTR, even
 * when the handler was installed with SA_RESTART (signal(7): they are
 * never restarted). Checks pause woken by a signal with an SA_RESTART
 * handler; sigsuspend woken by a signal the thread normally blocks and
 * unblocks only in its sigsuspend mask; and sigsuspend returning at once
 * for such a signal sent before it was called (pending while blocked). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got1, got2;
static atomic_int stage;

static void on_usr1(int s) { (void)s; got1++; }
static void on_usr2(int s) { (void)s; got2++; }

static void pause_ms(int ms)
{
	struct timespec d = {0, ms * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

static void *pauser(void *arg)
{
	(void)arg;
	atomic_store(&stage, 1);
	int r = pause();
	int e = errno;
	printf("pause: %d (%s), SIGUSR1 handled %d time(s)\n", r, strerror(e), (int)got1);
	return NULL;
}

static void *suspender(void *arg)
{
	(void)arg;
	sigset_t usr2, during;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, &during);
	sigdelset(&during, SIGUSR2);
	/* woken while it waits */
	atomic_store(&stage, 2);
	int r = sigsuspend(&during);
	int e = errno;
	printf("sigsuspend: %d (%s), SIGUSR2 handled %d time(s)\n", r, strerror(e), (int)got2);
	/* sent before it waits: pending, blocked, until sigsuspend */
	atomic_store(&stage, 3);
	while (atomic_load(&stage) != 4)
		pause_ms(1);
	printf("before sigsuspend: SIGUSR2 handled %d time(s)\n", (int)got2);
	r = sigsuspend(&during);
	e = errno;
	printf("sigsuspend (sent earlier): %d (%s), SIGUSR2 handled %d time(s)\n", r, strerror(e),
	       (int)got2);
	return NULL;
}

static void wait_stage(int s)
{
	while (atomic_load(&stage) != s)
		pause_ms(1);
	pause_ms(30);
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	/* Only the suspender ever takes SIGUSR2. */
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);

	pthread_t t;
	if (pthread_create(&t, NULL, pauser, NULL) != 0)
		return 1;
	wait_stage(1);
	pthread_kill(t, SIGUSR1);
	pthread_join(t, NULL);

	if (pthread_create(&t, NULL, suspender, NULL) != 0)
		return 1;
	wait_stage(2);
	pthread_kill(t, SIGUSR2);
	wait_stage(3);
	pthread_kill(t, SIGUSR2);
	atomic_store(&stage, 4);
	pthread_join(t, NULL);
	return 0;
}
