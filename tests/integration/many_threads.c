/* many_threads: 100,000 threads with default attributes, all alive at once.
 * gmp-test: mode=selfcheck native=skip timeout=240 maxprocs=default,2
 *
 * Impossible natively (pid_max is 32768 and 100,000 8 MiB stacks would not
 * fit in vm.max_map_count), so it runs only under libgmp, where a thread is
 * a G with a small, lazily committed stack. Each thread increments a counter
 * under a mutex and then waits on a condition variable until main has seen
 * all 100,000 arrive (proof that they were alive simultaneously); main then
 * broadcasts once and joins every thread, checking each one's return value.
 * The condition variable thus has 100,000 waiters at the broadcast.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTHREADS 100000

#include "lib/check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_arrived = PTHREAD_COND_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static long arrived, departed;
static int released;

static void *worker(void *arg)
{
    volatile char stack_use[512];       /* touch a little stack */
    for (unsigned i = 0; i < sizeof stack_use; i += 64)
        stack_use[i] = (char)i;
    pthread_mutex_lock(&mu);
    if (++arrived == NTHREADS)
        pthread_cond_signal(&all_arrived);
    while (!released)
        pthread_cond_wait(&go, &mu);
    departed++;
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < sizeof stack_use; i += 64)
        CHECK(stack_use[i] == (char)i, "thread %lu: stack content changed while parked", (unsigned long)(uintptr_t)arg);
    return (void *)((uintptr_t)arg ^ 0x5a5a);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_t *th = calloc(NTHREADS, sizeof *th);
    CHECK(th != NULL, "calloc");
    double t0 = now();
    for (uintptr_t i = 0; i < NTHREADS; i++) {
        int r = pthread_create(&th[i], NULL, worker, (void *)i);
        CHECK(r == 0, "pthread_create #%lu failed: %s", (unsigned long)i, strerror(r));
    }
    double t1 = now();
    pthread_mutex_lock(&mu);
    while (arrived < NTHREADS)
        pthread_cond_wait(&all_arrived, &mu);
    CHECK(departed == 0, "a thread departed before the release");
    released = 1;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&mu);
    double t2 = now();
    for (uintptr_t i = 0; i < NTHREADS; i++) {
        void *ret;
        int r = pthread_join(th[i], &ret);
        CHECK(r == 0, "pthread_join #%lu: %s", (unsigned long)i, strerror(r));
        CHECK((uintptr_t)ret == (i ^ 0x5a5a), "thread #%lu returned %p", (unsigned long)i, ret);
    }
    double t3 = now();
    CHECK(departed == NTHREADS, "departed %ld", departed);
    printf("threads alive at once: %ld\n", arrived);
    printf("joined: %d\n", NTHREADS);
    printf("create %.2f s, all arrived %.2f s, release+join %.2f s\n", t1 - t0, t2 - t1, t3 - t2);
    free(th);
    return 0;
}
