/* sock_pingpong: two threads bounce one byte over a socketpair with
 * blocking read/write. An ordinary pthread program (never linked with
 * libgmp); run natively or under LD_PRELOAD=libgmp.so. Under libgmp each
 * read parks its G on the network poller; the write readies the G parked
 * on the other end directly (no epoll round trip).
 *
 *   sock_pingpong [N]          N round trips (100000)
 *
 * Prints RESULT sockpingpong roundtrip <us> us on stdout. Exit 1 on failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sv[2];
static long rounds;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The echoing side: read one byte, send it back incremented. */
static void *ponger(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds; i++) {
		unsigned char b;
		if (read(sv[1], &b, 1) != 1 || (b = (unsigned char)(b + 1), write(sv[1], &b, 1) != 1)) {
			fprintf(stderr, "sock_pingpong: ponger: %s\n", strerror(errno));
			exit(1);
		}
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
			fprintf(stderr, "usage: sock_pingpong [N>=1]\n");
			return 2;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		fprintf(stderr, "sock_pingpong: socketpair: %s\n", strerror(errno));
		return 1;
	}
	pthread_t t;
	int rc = pthread_create(&t, NULL, ponger, NULL);
	if (rc != 0) {
		fprintf(stderr, "sock_pingpong: pthread_create: %s\n", strerror(rc));
		return 1;
	}
	double t0 = now_s();
	unsigned char b = 0;
	for (long i = 0; i < rounds; i++) {
		unsigned char want = (unsigned char)(b + 1);
		if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1) {
			fprintf(stderr, "sock_pingpong: %s\n", strerror(errno));
			return 1;
		}
		if (b != want) {
			fprintf(stderr, "sock_pingpong: FAIL: got %u, want %u\n", b, want);
			return 1;
		}
	}
	double el = now_s() - t0;
	pthread_join(t, NULL);
	double us = el / (double)rounds * 1e6;
	fprintf(stderr, "sock_pingpong: %ld round trips in %.3f s: %.3f us per round trip\n",
		rounds, el, us);
	printf("RESULT sockpingpong roundtrip %.3f us\n", us);
	return 0;
}
