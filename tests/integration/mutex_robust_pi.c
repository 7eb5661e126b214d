/* mutex_robust_pi: robust and priority-inheritance mutexes.
 * gmp-test: mode=compare
 *
 * glibc implements both with kernel help keyed on the owner's TID (the robust
 * list is registered per OS thread and walked by the kernel when that OS
 * thread exits; PI mutexes use FUTEX_LOCK_PI/UNLOCK_PI, which check the
 * caller's TID). A green-thread runtime must preserve the semantics even
 * though a thread may move between OS threads and its "exit" is not an OS
 * thread exit. Checks (compare mode):
 *   - robust: pthread_mutexattr_setrobust/getrobust; a thread that exits
 *     holding the mutex -> the next locker gets EOWNERDEAD (a 5 s timedlock
 *     is used, so a runtime that never reports it shows ETIMEDOUT instead of
 *     hanging); pthread_mutex_consistent -> 0; afterwards normal. If not made
 *     consistent, unlock leaves it ENOTRECOVERABLE. trylock by another thread
 *     of a dead owner's robust mutex -> EOWNERDEAD too;
 *   - PI: setprotocol(PTHREAD_PRIO_INHERIT)/getprotocol; lock, sleep/yield
 *     (migration under libgmp), unlock -> 0; trylock EBUSY from another
 *     thread; errorcheck-type PI relock EDEADLK; 4 threads x 20,000
 *     increments under a PI mutex, with sleeps while holding it, end exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static void expect_(const char *label, int got, int want, int line)
{
    printf("%s: %s\n", label, ename(got));
    if (got != want) {
        fflush(stdout);
        fprintf(stderr, "FAIL line %d: %s: got %s, expected %s\n", line, label, ename(got), ename(want));
        exit(1);
    }
}
#define EXPECT(label, expr, want) expect_((label), (expr), (want), __LINE__)

static struct timespec ts_after(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void migrate_a_bit(void)
{
    for (int i = 0; i < 10; i++) {
        usleep(300);
        sched_yield();
    }
}

static void *lock_and_die(void *arg)
{
    pthread_mutex_t *m = arg;
    int r = pthread_mutex_lock(m);
    migrate_a_bit();
    return (void *)(intptr_t)r;   /* exits holding the mutex */
}

static void *trylock_thread(void *arg) { return (void *)(intptr_t)pthread_mutex_trylock(arg); }

static int other_thread(void *(*fn)(void *), pthread_mutex_t *m)
{
    pthread_t t;
    void *r;
    CHECK(pthread_create(&t, NULL, fn, m) == 0, "create");
    CHECK(pthread_join(t, &r) == 0, "join");
    return (int)(intptr_t)r;
}

static void test_robust(void)
{
    pthread_mutexattr_t a;
    pthread_mutex_t m;
    struct timespec ts;
    int v = -1;
    printf("-- robust\n");
    CHECK(pthread_mutexattr_init(&a) == 0, "attr");
    EXPECT("mutexattr_getrobust (default)", pthread_mutexattr_getrobust(&a, &v), 0);
    printf("default is PTHREAD_MUTEX_STALLED: %s\n", v == PTHREAD_MUTEX_STALLED ? "yes" : "no");
    EXPECT("mutexattr_setrobust(ROBUST)", pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
    EXPECT("mutexattr_getrobust", pthread_mutexattr_getrobust(&a, &v), 0);
    printf("is PTHREAD_MUTEX_ROBUST: %s\n", v == PTHREAD_MUTEX_ROBUST ? "yes" : "no");
    EXPECT("mutex_init robust", pthread_mutex_init(&m, &a), 0);

    EXPECT("owner thread locks, then exits holding it", other_thread(lock_and_die, &m), 0);
    ts = ts_after(5000);
    EXPECT("timedlock after owner died", pthread_mutex_timedlock(&m, &ts), EOWNERDEAD);
    EXPECT("mutex_consistent", pthread_mutex_consistent(&m), 0);
    EXPECT("unlock", pthread_mutex_unlock(&m), 0);
    EXPECT("lock again", pthread_mutex_lock(&m), 0);
    EXPECT("trylock by other thread", other_thread(trylock_thread, &m), EBUSY);
    EXPECT("unlock", pthread_mutex_unlock(&m), 0);

    EXPECT("owner thread locks, then exits holding it", other_thread(lock_and_die, &m), 0);
    EXPECT("trylock by another thread after owner died", other_thread(trylock_thread, &m), EOWNERDEAD);
    /* that thread also exited holding it (inconsistent): we get EOWNERDEAD */
    ts = ts_after(5000);
    EXPECT("timedlock after second owner died", pthread_mutex_timedlock(&m, &ts), EOWNERDEAD);
    EXPECT("unlock without consistent", pthread_mutex_unlock(&m), 0);
    EXPECT("lock -> not recoverable", pthread_mutex_lock(&m), ENOTRECOVERABLE);
    EXPECT("mutex_destroy", pthread_mutex_destroy(&m), 0);

    /* robust + errorcheck-like behaviour of a live owner */
    EXPECT("mutex_init robust", pthread_mutex_init(&m, &a), 0);
    EXPECT("lock", pthread_mutex_lock(&m), 0);
    migrate_a_bit();
    EXPECT("unlock after sleeping", pthread_mutex_unlock(&m), 0);
    EXPECT("mutex_destroy", pthread_mutex_destroy(&m), 0);
    pthread_mutexattr_destroy(&a);
}

#define PI_THREADS 4
#define PI_ITERS 20000
static pthread_mutex_t pim;
static long pi_counter;

static void *pi_worker(void *arg)
{
    for (int i = 0; i < PI_ITERS; i++) {
        CHECK(pthread_mutex_lock(&pim) == 0, "PI lock");
        long c = pi_counter;
        if ((i & 1023) == 0)
            usleep(100);          /* block while holding a PI mutex */
        pi_counter = c + 1;
        int r = pthread_mutex_unlock(&pim);
        CHECK(r == 0, "PI unlock: %s", ename(r));
    }
    return NULL;
}

static void test_pi(void)
{
    pthread_mutexattr_t a;
    pthread_mutex_t m;
    int v = -1;
    printf("-- priority inheritance\n");
    CHECK(pthread_mutexattr_init(&a) == 0, "attr");
    EXPECT("mutexattr_getprotocol (default)", pthread_mutexattr_getprotocol(&a, &v), 0);
    printf("default is PTHREAD_PRIO_NONE: %s\n", v == PTHREAD_PRIO_NONE ? "yes" : "no");
    EXPECT("mutexattr_setprotocol(PRIO_INHERIT)", pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT), 0);
    EXPECT("mutexattr_getprotocol", pthread_mutexattr_getprotocol(&a, &v), 0);
    printf("is PTHREAD_PRIO_INHERIT: %s\n", v == PTHREAD_PRIO_INHERIT ? "yes" : "no");
    EXPECT("mutex_init PI", pthread_mutex_init(&m, &a), 0);
    EXPECT("lock", pthread_mutex_lock(&m), 0);
    EXPECT("trylock by other thread", other_thread(trylock_thread, &m), EBUSY);
    migrate_a_bit();
    EXPECT("unlock after sleeping", pthread_mutex_unlock(&m), 0);
    EXPECT("trylock", pthread_mutex_trylock(&m), 0);
    EXPECT("unlock", pthread_mutex_unlock(&m), 0);
    EXPECT("mutex_destroy", pthread_mutex_destroy(&m), 0);

    EXPECT("mutexattr_settype(ERRORCHECK)", pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK), 0);
    EXPECT("mutex_init PI errorcheck", pthread_mutex_init(&m, &a), 0);
    EXPECT("lock", pthread_mutex_lock(&m), 0);
    migrate_a_bit();
    EXPECT("relock after sleeping", pthread_mutex_lock(&m), EDEADLK);
    EXPECT("unlock", pthread_mutex_unlock(&m), 0);
    EXPECT("unlock again", pthread_mutex_unlock(&m), EPERM);
    EXPECT("mutex_destroy", pthread_mutex_destroy(&m), 0);

    EXPECT("mutexattr_settype(NORMAL)", pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL), 0);
    EXPECT("mutex_init PI normal", pthread_mutex_init(&pim, &a), 0);
    pthread_t t[PI_THREADS];
    for (int i = 0; i < PI_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, pi_worker, NULL) == 0, "create");
    for (int i = 0; i < PI_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("PI counter: %ld (expected %d)\n", pi_counter, PI_THREADS * PI_ITERS);
    CHECK(pi_counter == PI_THREADS * PI_ITERS, "PI counter");
    EXPECT("mutex_destroy", pthread_mutex_destroy(&pim), 0);
    pthread_mutexattr_destroy(&a);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_robust();
    test_pi();
    printf("done\n");
    return 0;
}
