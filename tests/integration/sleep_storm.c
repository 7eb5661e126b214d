/* sleep_storm: 10,000 threads sleeping 1 ms at a time, all at once.
 * gmp-test: mode=selfcheck timeout=120
 *
 * Under libgmp a sleeping thread is a parked G on a timer, so this hammers
 * the timer machinery with ~10,000 concurrent timers. Each thread (64 KiB
 * stack, so that it also runs natively) waits at a start gate, then sleeps
 * 5 times for 1 ms, alternating usleep(1000), nanosleep(1 ms) and
 * clock_nanosleep(CLOCK_MONOTONIC, 1 ms), measuring each with
 * CLOCK_MONOTONIC. Fails if any sleep returned early (elapsed < requested),
 * returned an error, or if the whole storm takes longer than 30 s. Reports
 * the wall time and lateness statistics (informational).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 10000
#define SLEEPS 5
#define REQ_NS 1000000L
#define WALL_LIMIT_S 30.0

#include "lib/check.h"

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
static atomic_long early, errors, done_sleeps, late_max_ns, late_sum_us;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *sleeper(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);

    for (int i = 0; i < SLEEPS; i++) {
        struct timespec req = {0, REQ_NS};
        int64_t t0 = now_ns();
        int r;
        switch ((id + i) % 3) {
        case 0:
            r = usleep(REQ_NS / 1000);
            break;
        case 1:
            r = nanosleep(&req, NULL);
            break;
        default:
            r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
            break;
        }
        int64_t el = now_ns() - t0;
        if (r != 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        if (el < REQ_NS) {
            if (atomic_fetch_add(&early, 1) < 5)
                fprintf(stderr, "thread %d sleep %d (kind %d) returned after %lld ns < %ld ns\n", id, i,
                        (id + i) % 3, (long long)el, REQ_NS);
            continue;
        }
        long late = (long)(el - REQ_NS);
        long m = atomic_load(&late_max_ns);
        while (late > m && !atomic_compare_exchange_weak(&late_max_ns, &m, late))
            ;
        atomic_fetch_add(&late_sum_us, late / 1000);
        atomic_fetch_add(&done_sleeps, 1);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    static pthread_t th[NTHREADS];
    pthread_attr_t a;
    CHECK(pthread_attr_init(&a) == 0, "attr_init");
    CHECK(pthread_attr_setstacksize(&a, 64 * 1024) == 0, "setstacksize");
    int64_t t0 = now_ns();
    for (intptr_t i = 0; i < NTHREADS; i++) {
        int r = pthread_create(&th[i], &a, sleeper, (void *)i);
        CHECK(r == 0, "pthread_create #%ld: %s", (long)i, strerror(r));
    }
    pthread_attr_destroy(&a);
    int64_t t1 = now_ns();
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "join");
    int64_t t2 = now_ns();

    double wall = (t2 - t0) / 1e9;
    long n = atomic_load(&done_sleeps);
    printf("threads: %d, sleeps of 1 ms each: %d\n", NTHREADS, NTHREADS * SLEEPS);
    printf("create %.2f s, sleep phase %.2f s, total %.2f s (limit %.0f s)\n", (t1 - t0) / 1e9, (t2 - t1) / 1e9,
           wall, WALL_LIMIT_S);
    printf("returned early: %ld, errors: %ld\n", atomic_load(&early), atomic_load(&errors));
    printf("lateness: mean %.3f ms, max %.3f ms\n", n ? atomic_load(&late_sum_us) / 1000.0 / n : 0.0,
           atomic_load(&late_max_ns) / 1e6);
    CHECK(atomic_load(&early) == 0, "%ld sleeps returned early", atomic_load(&early));
    CHECK(atomic_load(&errors) == 0, "%ld sleeps failed", atomic_load(&errors));
    CHECK(n == (long)NTHREADS * SLEEPS, "only %ld sleeps completed", n);
    CHECK(wall <= WALL_LIMIT_S, "took %.1f s", wall);
    printf("ok\n");
    return 0;
}
