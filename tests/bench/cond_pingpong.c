/* cond_pingpong: two threads hand a turn back and forth through one mutex
 * and two condition variables. An ordinary pthread program (never linked
 * with libgmp); run natively or under LD_PRELOAD=libgmp.so.
 *
 *   cond_pingpong [N]          N round trips (100000)
 *
 * Prints RESULT condpingpong roundtrip <us> us on stdout. Exit 1 on failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv[2] = { PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER };
static int turn;        /* whose move: 0 or 1; protected by mu */
static long rounds;
static long moves[2];   /* per player, written only by that player */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *player(void *arg)
{
	int me = (int)(intptr_t)arg;
	for (long i = 0; i < rounds; i++) {
		pthread_mutex_lock(&mu);
		while (turn != me)
			pthread_cond_wait(&cv[me], &mu);
		turn = 1 - me;
		moves[me]++;
		pthread_cond_signal(&cv[1 - me]);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	rounds = 100000;
	if (argc > 1) {
		char *end;
		rounds = strtol(argv[1], &end, 10);
		if (*argv[1] == '\0' || *end != '\0' || rounds < 1 || argc > 2) {
			fprintf(stderr, "usage: cond_pingpong [N>=1]\n");
			return 2;
		}
	}
	pthread_t t[2];
	double t0 = now_s();
	for (int i = 0; i < 2; i++) {
		int rc = pthread_create(&t[i], NULL, player, (void *)(intptr_t)i);
		if (rc != 0) {
			fprintf(stderr, "cond_pingpong: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	double el = now_s() - t0;
	if (turn != 0 || moves[0] != rounds || moves[1] != rounds) {
		fprintf(stderr, "cond_pingpong: FAIL: turn=%d moves=%ld/%ld, want 0 %ld/%ld\n",
			turn, moves[0], moves[1], rounds, rounds);
		return 1;
	}
	double us = el / (double)rounds * 1e6;
	fprintf(stderr, "cond_pingpong: %ld round trips in %.3f s: %.3f us per round trip\n",
		rounds, el, us);
	printf("RESULT condpingpong roundtrip %.3f us\n", us);
	return 0;
}
