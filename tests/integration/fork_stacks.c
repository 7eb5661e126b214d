/* fork_stacks: fork while other threads are busy making threads.
 * gmp-test: mode=compare timeout=60
 *
 * Three threads create and join threads in a loop, each with one of 12
 * stack sizes, while main forks 300 times; every child exits at once and
 * main waits for it. A runtime that allocates thread stacks under a lock
 * must not let a child inherit that lock held by a thread that does not
 * exist in the child (the child's own start-up needs a stack too): the
 * child would spin forever and main's waitpid with it. Nor may cycling
 * through more stack sizes than the allocator keeps carving cursors for
 * leak address space: the page tables of the leaked guards grew by
 * hundreds of MiB a second, and fork, which copies them, crawled (8 forks
 * a second instead of 300 in 0.1 s). Checks that every child exited with
 * its status and every thread was joined. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 300

static atomic_int stop;
static atomic_long made;

static void *nothing(void *arg) { return arg; }

static void *creator(void *arg)
{
	long k = (long)arg;
	while (!atomic_load(&stop)) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, (size_t)(64 + (k % 12) * 16) * 1024);
		pthread_t t;
		if (pthread_create(&t, &a, nothing, NULL) == 0) {
			pthread_join(t, NULL);
			atomic_fetch_add(&made, 1);
		}
		pthread_attr_destroy(&a);
		k += 5;
	}
	return NULL;
}

int main(void)
{
	pthread_t c[3];
	for (long i = 0; i < 3; i++)
		if (pthread_create(&c[i], NULL, creator, (void *)i) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	int ok = 0;
	for (int i = 0; i < FORKS; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(i % 7);
		int st = 0;
		if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == i % 7)
			ok++;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i], NULL);
	printf("children that exited with their status: %d of %d\n", ok, FORKS);
	printf("threads made meanwhile: %s\n", atomic_load(&made) > 0 ? "some" : "none");
	return 0;
}
