/* signalfd_thread: signals sent to one thread (pthread_kill,
 * pthread_sigqueue, raise) that the thread blocks and reads from a
 * signalfd, with read, poll and select; and sigpending.
 * gmp-test: mode=compare timeout=60
 *
 * A signalfd read returns the signals pending for the thread that reads
 * and for the process. Checks: a pthread_kill while the thread is blocked
 * in read ends the read with that signal (under a runtime that queues a
 * thread's signals itself, the kernel's signalfd never sees them and the
 * read waited forever); pthread_sigqueue's value arrives; poll and select
 * report the signalfd readable and are woken by the signal; raise() from
 * the thread shows in sigpending and is read back, after which sigpending
 * is empty; one read takes a thread-directed and a process-directed
 * signal together, the thread's first; and a non-blocking read of an
 * empty signalfd gives EAGAIN. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static sigset_t set;
static atomic_int stage;
static int sfd;

static void pause_ms(int ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

static void wait_stage(int s)
{
	while (atomic_load(&stage) != s)
		pause_ms(1);
}

static void show(const char *what, const struct signalfd_siginfo *si)
{
	printf("%s: %s code=%s pid=%s", what, strsignal((int)si->ssi_signo),
	       si->ssi_code == SI_TKILL ? "SI_TKILL" :
	       si->ssi_code == SI_QUEUE ? "SI_QUEUE" :
	       si->ssi_code == SI_USER ? "SI_USER" : "other",
	       si->ssi_pid == (uint32_t)getpid() ? "self" : "other");
	if (si->ssi_code == SI_QUEUE)
		printf(" value=%d", si->ssi_int);
	printf("\n");
}

static void read_one(const char *what)
{
	struct signalfd_siginfo si;
	ssize_t n = read(sfd, &si, sizeof si);
	if (n != (ssize_t)sizeof si) {
		printf("%s: read %zd (%s)\n", what, n, n < 0 ? strerror(errno) : "short");
		return;
	}
	show(what, &si);
}

static int pending_has(int sig)
{
	sigset_t p;
	sigemptyset(&p);
	if (sigpending(&p) != 0)
		return -1;
	return sigismember(&p, sig);
}

static void *reader(void *arg)
{
	(void)arg;
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("signalfd");
		return NULL;
	}
	/* 1: pthread_kill while blocked in read */
	atomic_store(&stage, 1);
	read_one("read");

	/* 2: pthread_sigqueue with a value, while blocked in poll */
	atomic_store(&stage, 2);
	struct pollfd p = {sfd, POLLIN, 0};
	int r = poll(&p, 1, 10000);
	printf("poll: %d revents=%s\n", r, p.revents == POLLIN ? "POLLIN" : "other");
	read_one("read after poll");

	/* 3: woken in select, two fds waited for */
	int pp[2];
	if (pipe(pp) != 0)
		return NULL;
	atomic_store(&stage, 3);
	fd_set rs;
	FD_ZERO(&rs);
	FD_SET(sfd, &rs);
	FD_SET(pp[0], &rs);
	struct timeval tv = {10, 0};
	r = select((sfd > pp[0] ? sfd : pp[0]) + 1, &rs, NULL, NULL, &tv);
	printf("select: %d signalfd=%d pipe=%d\n", r, FD_ISSET(sfd, &rs) != 0,
	       FD_ISSET(pp[0], &rs) != 0);
	read_one("read after select");
	close(pp[0]);
	close(pp[1]);

	/* 4: raise() to itself: pending, then read, then not pending */
	raise(SIGUSR1);
	printf("pending after raise: %d\n", pending_has(SIGUSR1));
	p.revents = 0;
	r = poll(&p, 1, 0);
	printf("poll(0): %d revents=%s\n", r, p.revents == POLLIN ? "POLLIN" : "none");
	read_one("read after raise");
	printf("pending after read: %d\n", pending_has(SIGUSR1));

	/* 5: a thread-directed and a process-directed signal, one read */
	atomic_store(&stage, 5);
	wait_stage(6);
	struct signalfd_siginfo two[4];
	ssize_t n = read(sfd, two, sizeof two);
	printf("read of 4 slots: %zd bytes\n", n);
	for (ssize_t i = 0; i < n / (ssize_t)sizeof two[0]; i++)
		show("  slot", &two[i]);

	/* 6: non-blocking read of an empty signalfd */
	int nb = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	struct signalfd_siginfo si;
	n = read(nb, &si, sizeof si);
	printf("non-blocking empty read: %zd %s\n", n, n < 0 ? strerror(errno) : "");
	/* a buffer smaller than one record */
	n = read(sfd, &si, 16);
	printf("short buffer read: %zd %s\n", n, n < 0 ? strerror(errno) : "");
	close(nb);
	close(sfd);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t t;
	pthread_create(&t, NULL, reader, NULL);

	wait_stage(1);
	pause_ms(50); /* let it block in read */
	pthread_kill(t, SIGUSR1);

	wait_stage(2);
	pause_ms(50);
	union sigval v = {.sival_int = 42};
	pthread_sigqueue(t, SIGUSR2, v);

	wait_stage(3);
	pause_ms(50);
	pthread_kill(t, SIGUSR2);

	wait_stage(5);
	kill(getpid(), SIGUSR2);
	pthread_kill(t, SIGUSR1);
	atomic_store(&stage, 6);

	pthread_join(t, NULL);
	printf("main pending: USR1=%d USR2=%d\n", pending_has(SIGUSR1), pending_has(SIGUSR2));
	return 0;
}
