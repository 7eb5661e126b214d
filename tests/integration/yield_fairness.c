/* yield_fairness: sched_yield lets everybody run, and timers still fire.
 * gmp-test: mode=selfcheck
 *
 * 4 threads loop { sched_yield(); counter++ } until a shared stop flag is
 * set. main sleeps 300 ms (nanosleep), sets the flag and joins them. With
 * GMP_MAXPROCS=1 this needs (a) sched_yield to hand the single P to the
 * other runnable Gs, so that every thread makes progress, and (b) the
 * sleeping main to be woken by its timer even though 4 Gs are always
 * runnable (otherwise it never sets the flag: timeout). Checks every counter
 * is > 0, and that main's sleep was not absurdly late (< 5 s for 300 ms).
 * A second phase repeats it with threads that yield only every 64
 * iterations. (pthread_yield is deprecated and not used.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTHREADS 4

#include "lib/check.h"

static atomic_int stop;
static int yield_every;
static long counters[NTHREADS];

static void *spinner(void *arg)
{
    int id = (int)(intptr_t)arg;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (n % yield_every == 0)
            CHECK(sched_yield() == 0, "sched_yield failed");
        n++;
    }
    counters[id] = n;
    return NULL;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void phase(int every)
{
    pthread_t t[NTHREADS];
    atomic_store(&stop, 0);
    yield_every = every;
    memset(counters, 0, sizeof counters);
    for (intptr_t i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, spinner, (void *)i) == 0, "create");
    struct timespec req = {0, 300000000L};
    double t0 = mono_ms();
    CHECK(nanosleep(&req, NULL) == 0, "nanosleep");
    double slept = mono_ms() - t0;
    atomic_store(&stop, 1);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("yield every %d iteration(s): main slept %.1f ms for 300 ms; counters:", every, slept);
    for (int i = 0; i < NTHREADS; i++)
        printf(" %ld", counters[i]);
    printf("\n");
    CHECK(slept >= 300.0, "nanosleep returned early");
    CHECK(slept < 5000.0, "main's 300 ms sleep took %.0f ms with yielding threads around", slept);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(counters[i] > 0, "thread %d made no progress", i);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    phase(1);
    phase(64);
    printf("every thread made progress\n");
    return 0;
}
