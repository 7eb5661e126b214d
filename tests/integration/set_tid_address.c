/* set_tid_address: a thread's raw set_tid_address call, as thread
 * libraries and test suites (stress-ng) make it.
 * gmp-test: mode=compare timeout=60
 *
 * The call returns the caller's thread id, the one gettid() gives; when
 * the thread ends, the word it named is set to 0 and a futex waiter on it
 * is woken (how NPTL's join waits). Checks both, for 20 threads in turn,
 * the waits bounded by a timeout. The threads are detached: natively the
 * call replaces NPTL's own clear-on-exit word, so a join would never
 * return. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int words[20];
static int same_id[20];

static void *thread(void *arg)
{
	long i = (long)arg;
	long r = syscall(SYS_set_tid_address, &words[i]);
	same_id[i] = r == gettid();
	return NULL;
}

int main(void)
{
	int cleared = 0, same = 0;
	for (long i = 0; i < 20; i++) {
		words[i] = 12345;
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, thread, (void *)i) != 0)
			return 1;
		pthread_attr_destroy(&a);
		/* Wait as NPTL's join does: until the word is 0. */
		for (int tries = 0; tries < 100 && __atomic_load_n(&words[i], __ATOMIC_ACQUIRE); tries++) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			syscall(SYS_futex, &words[i], FUTEX_WAIT, 12345, &ts, NULL, 0);
		}
		if (__atomic_load_n(&words[i], __ATOMIC_ACQUIRE) == 0)
			cleared++;
		same += __atomic_load_n(&same_id[i], __ATOMIC_ACQUIRE);
	}
	printf("set_tid_address returned the thread id: %d of 20\n", same);
	printf("word cleared at thread exit: %d of 20\n", cleared);
	return 0;
}
