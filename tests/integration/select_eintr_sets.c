/* select_eintr_sets: select interrupted by a signal leaves the fd sets as
 * they were.
 * gmp-test: mode=compare timeout=60
 *
 * The kernel's select does not touch the sets when it fails, and CPython
 * relies on it: after EINTR it calls select again with the same sets (its
 * select module does not rebuild them). A runtime that had cleared them
 * while looking for ready fds left the retry waiting on nothing: asyncio's
 * SelectSelector then missed every signal (test_asyncio.test_events hung).
 * A helper thread interrupts main's select with SIGUSR1 (handler, no
 * SA_RESTART), then makes the socket readable; main retries with the same
 * sets, as CPython does. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sv[2];
static pthread_t main_thread;
static volatile sig_atomic_t got;

static void on_usr1(int s)
{
	(void)s;
	got++;
}

static void *helper(void *arg)
{
	(void)arg;
	struct timespec d = {0, 100 * 1000 * 1000};
	nanosleep(&d, NULL);
	pthread_kill(main_thread, SIGUSR1);
	nanosleep(&d, NULL);
	if (write(sv[1], "x", 1) != 1)
		perror("write");
	return NULL;
}

int main(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();
	pthread_t t;
	if (pthread_create(&t, NULL, helper, NULL) != 0)
		return 1;

	fd_set r, w;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(sv[0], &r);
	struct timeval tv = {5, 0};
	int n = select(sv[0] + 1, &r, &w, NULL, &tv);
	int e = errno;
	printf("first select: %d (%s), handler ran: %d\n", n, n < 0 ? strerror(e) : "-", (int)got);
	printf("read set still holds the socket: %s\n", FD_ISSET(sv[0], &r) ? "yes" : "no");
	int tries = 1;
	while (n < 0 && e == EINTR && tries < 5) { /* CPython's retry: the same sets */
		tv.tv_sec = 5;
		tv.tv_usec = 0;
		n = select(sv[0] + 1, &r, &w, NULL, &tv);
		e = errno;
		tries++;
	}
	printf("after retrying: %d, socket readable: %s\n", n, n > 0 && FD_ISSET(sv[0], &r) ? "yes" : "no");
	pthread_join(t, NULL);
	return 0;
}
