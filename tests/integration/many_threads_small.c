/* many_threads_small: 20,000 threads with 64 KiB stacks, all alive at once.
 * gmp-test: mode=compare timeout=120
 *
 * The natively runnable sibling of many_threads: 20,000 threads fit within
 * pid_max (32768) and, with pthread_attr_setstacksize(64 KiB), within memory
 * and vm.max_map_count. Each thread increments a counter under a mutex, then
 * waits on a condition variable until main has seen all of them arrive
 * (proof that all were alive simultaneously); main broadcasts once and joins
 * every thread, checking its return value and that its local variable lay
 * on a distinct stack. Deterministic output (timings go to stderr).
 * Note: the native run needs ~20,000 free pids; do not run it in parallel
 * with the other thread-heavy tests on a machine with pid_max 32768.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTHREADS 20000
#define STACK (64 * 1024)

#include "lib/check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_arrived = PTHREAD_COND_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static long arrived, departed;
static int released;
static uintptr_t local_addr[NTHREADS];

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    volatile char stack_use[2048];      /* use some of the small stack */
    for (unsigned i = 0; i < sizeof stack_use; i += 64)
        stack_use[i] = (char)i;
    local_addr[id] = (uintptr_t)&stack_use[0];
    pthread_mutex_lock(&mu);
    if (++arrived == NTHREADS)
        pthread_cond_signal(&all_arrived);
    while (!released)
        pthread_cond_wait(&go, &mu);
    departed++;
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < sizeof stack_use; i += 64)
        CHECK(stack_use[i] == (char)i, "thread %lu: stack content changed while parked", (unsigned long)id);
    return (void *)(id ^ 0x5a5a);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    static pthread_t th[NTHREADS];
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr) == 0, "attr_init");
    CHECK(pthread_attr_setstacksize(&attr, STACK) == 0, "setstacksize");
    double t0 = now();
    for (uintptr_t i = 0; i < NTHREADS; i++) {
        int r = pthread_create(&th[i], &attr, worker, (void *)i);
        CHECK(r == 0, "pthread_create #%lu failed: %s", (unsigned long)i, strerror(r));
    }
    pthread_attr_destroy(&attr);
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
    /* All stacks were live at once, so the locals must be >= 2 KiB apart. */
    qsort(local_addr, NTHREADS, sizeof local_addr[0], cmp_uptr);
    for (int i = 1; i < NTHREADS; i++)
        CHECK(local_addr[i] - local_addr[i - 1] >= 2048, "two threads' stacks overlap (%#lx, %#lx)",
              (unsigned long)local_addr[i - 1], (unsigned long)local_addr[i]);
    fprintf(stderr, "create %.2f s, all arrived %.2f s, release+join %.2f s\n", t1 - t0, t2 - t1, t3 - t2);
    printf("threads alive at once: %ld\n", arrived);
    printf("joined: %d, return values correct\n", NTHREADS);
    printf("stacks distinct: yes\n");
    return 0;
}
