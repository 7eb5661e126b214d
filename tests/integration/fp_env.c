/* fp_env: the floating-point environment of threads.
 * gmp-test: mode=compare
 *
 * POSIX: a new thread inherits its creator's floating-point environment;
 * afterwards each thread's rounding mode and exception masks are its own.
 * Under libgmp a thread's first frame is built only when it first runs,
 * possibly on another OS thread whose mode is different, and every switch
 * must carry MXCSR and the x87 control word with the thread. Checks:
 *   - threads created while main runs with FE_DOWNWARD / FE_UPWARD /
 *     FE_TOWARDZERO start in that mode (SSE and x87 arithmetic both);
 *   - 16 threads, each in its own mode, keep it across thousands of
 *     yields, sleeps and mutex waits (each a chance to change OS thread)
 *     and compute rounding-dependent results that match the mode;
 *   - main's own mode is untouched by all of this. */
#define _GNU_SOURCE
#include <fenv.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const int modes[4] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
static const char *names[4] = {"nearest", "downward", "upward", "towardzero"};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long shared_count;

/* 1/3 rounded in the current mode, through SSE (double) and x87 (long
 * double); volatile keeps the compiler from folding it at build time. */
static int probe(void)
{
	volatile double one = 1.0, three = 3.0;
	volatile long double lone = 1.0L, lthree = 3.0L;
	double d = one / three;
	long double ld = lone / lthree;
	/* -1/3 too: towardzero and downward differ only there */
	double nd = -one / three;
	int r = 0;
	r |= (d * 3.0 < 1.0) << 0; /* rounded down or toward zero */
	r |= (ld * 3.0L < 1.0L) << 1;
	r |= (nd * 3.0 < -1.0) << 2; /* -1/3 rounded down (away from zero) */
	return r;
}

static int mode_index(void)
{
	int m = fegetround();
	for (int i = 0; i < 4; i++)
		if (modes[i] == m)
			return i;
	return -1;
}

struct inherit { int expect; int got; int probe; };

static void *inherit_fn(void *arg)
{
	struct inherit *in = arg;
	in->got = mode_index();
	in->probe = probe();
	return NULL;
}

struct worker { int mode; int bad; int probe0; };

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	fesetround(modes[w->mode]);
	w->probe0 = probe();
	for (int i = 0; i < 3000; i++) {
		switch (i % 3) {
		case 0: sched_yield(); break;
		case 1: if (i % 300 == 1) usleep(100); break;
		case 2:
			pthread_mutex_lock(&mu);
			shared_count++;
			pthread_mutex_unlock(&mu);
			break;
		}
		if (mode_index() != w->mode || probe() != w->probe0)
			w->bad++;
	}
	return NULL;
}

int main(void)
{
	int base_probe = probe();
	/* inheritance, once per non-default mode */
	for (int k = 1; k < 4; k++) {
		fesetround(modes[k]);
		int want_probe = probe();
		struct inherit in[8];
		pthread_t t[8];
		for (int i = 0; i < 8; i++) {
			in[i].expect = k;
			if (pthread_create(&t[i], NULL, inherit_fn, &in[i]) != 0) {
				fprintf(stderr, "pthread_create failed\n");
				return 1;
			}
		}
		fesetround(FE_TONEAREST); /* changing it after create must not matter */
		int ok = 1;
		for (int i = 0; i < 8; i++) {
			pthread_join(t[i], NULL);
			if (in[i].got != k || in[i].probe != want_probe)
				ok = 0;
		}
		printf("inherit %-10s: %s\n", names[k], ok ? "ok" : "WRONG");
	}

	/* isolation */
	struct worker w[16];
	pthread_t t[16];
	for (int i = 0; i < 16; i++) {
		w[i].mode = i % 4;
		w[i].bad = 0;
		if (pthread_create(&t[i], NULL, worker_fn, &w[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	int bad = 0;
	int probes[4] = {-1, -1, -1, -1};
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
		if (probes[w[i].mode] < 0)
			probes[w[i].mode] = w[i].probe0;
		else if (probes[w[i].mode] != w[i].probe0)
			bad++;
	}
	printf("isolation: %d mismatches, count %ld\n", bad, shared_count);
	for (int k = 0; k < 4; k++)
		printf("probe %-10s: %d\n", names[k], probes[k]);
	printf("main: %s, probe %s\n", names[mode_index() < 0 ? 0 : mode_index()],
	       probe() == base_probe ? "unchanged" : "CHANGED");
	return 0;
}
