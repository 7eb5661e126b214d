/* syscall_eintr_busy: a blocking system call interrupted by a signal whose
 * handler has SA_RESTART is restarted, however busy the process is.
 * gmp-test: mode=compare timeout=60
 *
 * Main waits for a child in waitpid while a kicker thread sends it
 * SIGUSR1 (handler installed with SA_RESTART) and two threads keep every
 * CPU busy. Natively waitpid is restarted after the handler and returns
 * the child. Under a runtime the signal reaches the waiting thread by
 * interrupting its system call; the call must be restarted as SA_RESTART
 * says even when the thread resumes on another OS thread because its CPU
 * was handed to a busy thread while it was blocked (it once returned
 * EINTR then: the "restart" mark was left on the OS thread it came from). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 100

static atomic_int stop;
static atomic_long spins;
static atomic_int waiting; /* main is about to wait: round number + 1 */
static atomic_int handled;
static pthread_t main_thread;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

static void *busy(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed);
	return NULL;
}

static void pause_ms(int ms)
{
	struct timespec d = {0, ms * 1000L * 1000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

/* Once per round, 5 ms after main announced its wait: one SIGUSR1. */
static void *kicker(void *arg)
{
	(void)arg;
	int seen = 0;
	while (!atomic_load(&stop)) {
		int w = atomic_load(&waiting);
		if (w == seen) {
			pause_ms(1);
			continue;
		}
		seen = w;
		pause_ms(5);
		pthread_kill(main_thread, SIGUSR1);
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();

	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, i == 2 ? kicker : busy, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	int waited = 0;
	for (int i = 0; i < ROUNDS; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			pause_ms(20);
			_exit(i % 5);
		}
		atomic_store(&waiting, i + 1);
		int st = 0;
		pid_t w = waitpid(pid, &st, 0);
		if (w == pid && WIFEXITED(st) && WEXITSTATUS(st) == i % 5)
			waited++;
		else
			fprintf(stderr, "round %d: waitpid returned %d (%s), status %#x\n", i, (int)w,
				w < 0 ? strerror(errno) : "-", st);
		if (w != pid)
			waitpid(pid, NULL, 0);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("children waited for: %d of %d\n", waited, ROUNDS);
	printf("signals handled: %s\n", atomic_load(&handled) >= ROUNDS / 2 ? "most" : "few");
	printf("busy threads ran: %s\n", atomic_load(&spins) > 0 ? "yes" : "no");
	return 0;
}
