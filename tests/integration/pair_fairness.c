/* pair_fairness: two threads that wake each other in turn do not starve a
 * third that only computes.
 * gmp-test: mode=compare timeout=60
 *
 * Under libgmp a thread woken by another runs next on the waker's CPU (the
 * scheduler's runnext slot), and inherits its time slice. A pair passing
 * a condition variable back and forth could then keep a CPU forever:
 * every switch happens inside the runtime, where the preemption signal
 * does not switch threads. The slice must still end after ~10 ms and the
 * thread waiting behind the pair get its turn. Checks, for 2 s: the pair
 * makes progress, and the computing thread gets at least 10% of one CPU's
 * worth of work (measured against its own rate alone beforehand). With
 * GMP_MAXPROCS=1 all three share one CPU. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn;
static atomic_int stop;
static long rounds;
static atomic_long spins;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *pair(void *arg)
{
	int me = (int)(long)arg;
	pthread_mutex_lock(&mu);
	while (!atomic_load(&stop)) {
		while (turn != me && !atomic_load(&stop))
			pthread_cond_wait(&cv, &mu);
		turn = !me;
		rounds++;
		pthread_cond_signal(&cv);
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *spin(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed);
	return NULL;
}

int main(void)
{
	/* the computing thread's rate on its own, over 100 ms */
	pthread_t c;
	pthread_create(&c, NULL, spin, NULL);
	double t0 = now_s();
	usleep(100000);
	atomic_store(&stop, 1);
	pthread_join(c, NULL);
	double alone_rate = (double)atomic_load(&spins) / (now_s() - t0);
	atomic_store(&spins, 0);
	atomic_store(&stop, 0);

	pthread_t a, b;
	pthread_create(&a, NULL, pair, (void *)0);
	pthread_create(&b, NULL, pair, (void *)1);
	usleep(50000); /* the pair is going */
	pthread_create(&c, NULL, spin, NULL);
	t0 = now_s();
	sleep(2);
	atomic_store(&stop, 1);
	double el = now_s() - t0;
	pthread_mutex_lock(&mu);
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_join(c, NULL);

	double share = (double)atomic_load(&spins) / (alone_rate * el);
	printf("pair made progress: %s\n", rounds >= 1000 ? "yes" : "NO");
	printf("computing thread got >= 10%% of a CPU: %s\n", share >= 0.10 ? "yes" : "NO");
	fprintf(stderr, "pair rounds %ld, computing thread share %.2f of a CPU\n", rounds, share);
	return 0;
}
