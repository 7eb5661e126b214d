/* create_join: thread creation + join cost. An ordinary pthread program
 * (never linked with libgmp); run natively or under LD_PRELOAD=libgmp.so.
 *
 *   create_join [seq [N]]            N sequential create+join pairs (20000)
 *   create_join burst [K [R]]        create K threads, then join all; R rounds
 *                                    (K=1000, R=20)
 *   create_join                      both, with the defaults
 *
 * Threads use default attributes and return immediately. Prints
 *   RESULT createjoin_seq per_op <us> us
 *   RESULT createjoin_burst per_thread <us> us
 * on stdout, human text on stderr. Exit 1 on any failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long arg_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "create_join: bad %s '%s' (want %ld..%ld)\n", what, s, min, max);
		exit(2);
	}
	return v;
}

static void *ret_arg(void *arg)
{
	return arg;
}

static void create_or_die(pthread_t *t, long i)
{
	int rc = pthread_create(t, NULL, ret_arg, (void *)(intptr_t)i);
	if (rc != 0) {
		fprintf(stderr, "create_join: pthread_create #%ld: %s\n", i, strerror(rc));
		exit(1);
	}
}

static void join_or_die(pthread_t t, long i)
{
	void *ret = NULL;
	int rc = pthread_join(t, &ret);
	if (rc != 0) {
		fprintf(stderr, "create_join: pthread_join #%ld: %s\n", i, strerror(rc));
		exit(1);
	}
	if ((intptr_t)ret != (intptr_t)i) {
		fprintf(stderr, "create_join: thread #%ld returned %ld\n", i, (long)(intptr_t)ret);
		exit(1);
	}
}

static void bench_seq(long n)
{
	pthread_t t;
	long warm = n / 10 < 1000 ? n / 10 : 1000;
	for (long i = 0; i < warm; i++) {
		create_or_die(&t, i);
		join_or_die(t, i);
	}
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		create_or_die(&t, i);
		join_or_die(t, i);
	}
	double el = now_s() - t0;
	double us = el / (double)n * 1e6;
	fprintf(stderr, "create_join seq: %ld create+join in %.3f s: %.3f us each\n", n, el, us);
	printf("RESULT createjoin_seq per_op %.3f us\n", us);
	fflush(stdout);
}

static void bench_burst(long k, long rounds)
{
	pthread_t *ts = calloc((size_t)k, sizeof *ts);
	if (!ts) {
		fprintf(stderr, "create_join: out of memory\n");
		exit(1);
	}
	/* one untimed warm-up round */
	for (long i = 0; i < k; i++)
		create_or_die(&ts[i], i);
	for (long i = 0; i < k; i++)
		join_or_die(ts[i], i);
	double t0 = now_s();
	for (long r = 0; r < rounds; r++) {
		for (long i = 0; i < k; i++)
			create_or_die(&ts[i], i);
		for (long i = 0; i < k; i++)
			join_or_die(ts[i], i);
	}
	double el = now_s() - t0;
	double us = el / (double)(k * rounds) * 1e6;
	fprintf(stderr, "create_join burst: %ld rounds x %ld threads in %.3f s: %.3f us per thread\n",
		rounds, k, el, us);
	printf("RESULT createjoin_burst per_thread %.3f us\n", us);
	fflush(stdout);
	free(ts);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "all";
	if (strcmp(mode, "seq") == 0) {
		bench_seq(argc > 2 ? arg_long(argv[2], "N", 1, 100000000) : 20000);
	} else if (strcmp(mode, "burst") == 0) {
		long k = argc > 2 ? arg_long(argv[2], "K", 1, 1000000) : 1000;
		long r = argc > 3 ? arg_long(argv[3], "R", 1, 1000000) : 20;
		bench_burst(k, r);
	} else if (strcmp(mode, "all") == 0 && argc <= 2) {
		bench_seq(20000);
		bench_burst(1000, 20);
	} else {
		fprintf(stderr, "usage: create_join [seq [N] | burst [K [R]] | all]\n");
		return 2;
	}
	return 0;
}
