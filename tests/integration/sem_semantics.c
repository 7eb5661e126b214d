/* sem_semantics: unnamed POSIX semaphores.
 * gmp-test: mode=compare
 *
 * Checks (compare mode; results printed as "rc errno-name"):
 *   - sem_init / sem_getvalue / sem_post / sem_wait / sem_trywait (EAGAIN
 *     when zero) / sem_timedwait (ETIMEDOUT ~50 ms later, not early; EINVAL
 *     for tv_nsec=1e9 when it would block; 0 at once when the value is > 0) /
 *     sem_clockwait (MONOTONIC and REALTIME ETIMEDOUT, unsupported clock
 *     EINVAL) / sem_destroy;
 *   - sem_init with value SEM_VALUE_MAX+1 -> EINVAL; sem_post at
 *     SEM_VALUE_MAX -> EOVERFLOW;
 *   - a sem_wait blocked in another thread is woken by sem_post; a timed
 *     wait is woken by a post long before its deadline;
 *   - 4 pairs of threads ping-pong 50,000 times over two semaphores each
 *     (8 threads x 50,000 post/wait pairs); 4 posters and 4 waiters share one
 *     semaphore for 50,000 operations each and it ends at 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

/* For the sem_* calls: -1 with errno, or 0. Prints "label: rc ERRNO". */
static void expect_sys_(const char *label, int rc, int err, int want_err, int line)
{
    int got = rc == 0 ? 0 : err;
    if (rc == 0)
        printf("%s: 0\n", label);
    else
        printf("%s: %d %s\n", label, rc, ename(err));
    if (!((want_err == 0 && rc == 0) || (want_err != 0 && rc == -1 && err == want_err))) {
        fflush(stdout);
        fprintf(stderr, "FAIL line %d: %s: got rc %d %s, expected %s\n", line, label, rc, ename(got),
                ename(want_err));
        exit(1);
    }
}
#define EXPECT_SYS(label, expr, want_err)                                    \
    do {                                                                     \
        errno = 0;                                                           \
        int rc_ = (expr);                                                    \
        int e_ = errno;                                                      \
        expect_sys_((label), rc_, e_, (want_err), __LINE__);                 \
    } while (0)

static int value(sem_t *s)
{
    int v = -12345;
    CHECK(sem_getvalue(s, &v) == 0, "sem_getvalue: %s", strerror(errno));
    return v;
}

static struct timespec ts_after(clockid_t clk, long ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int ts_reached(clockid_t clk, const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(clk, &now);
    return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- basic ------------------------------------------------------------------- */

static void test_basic(void)
{
    sem_t s;
    struct timespec ts;
    printf("-- basic\n");
    EXPECT_SYS("sem_init value 0", sem_init(&s, 0, 0), 0);
    printf("value: %d\n", value(&s));
    EXPECT_SYS("sem_trywait at 0", sem_trywait(&s), EAGAIN);
    EXPECT_SYS("sem_post", sem_post(&s), 0);
    EXPECT_SYS("sem_post", sem_post(&s), 0);
    printf("value: %d\n", value(&s));
    EXPECT_SYS("sem_trywait at 2", sem_trywait(&s), 0);
    EXPECT_SYS("sem_wait at 1", sem_wait(&s), 0);
    printf("value: %d\n", value(&s));
    EXPECT_SYS("sem_trywait at 0", sem_trywait(&s), EAGAIN);

    ts = ts_after(CLOCK_REALTIME, 50);
    double t0 = mono_ms();
    EXPECT_SYS("sem_timedwait +50ms at 0", sem_timedwait(&s, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "sem_timedwait returned before its deadline");
    CHECK(mono_ms() - t0 < 5000, "sem_timedwait took %.0f ms", mono_ms() - t0);
    ts.tv_nsec = 1000000000L;
    EXPECT_SYS("sem_timedwait tv_nsec=1e9 at 0", sem_timedwait(&s, &ts), EINVAL);
    ts = ts_after(CLOCK_REALTIME, -1000);
    EXPECT_SYS("sem_timedwait past deadline at 0", sem_timedwait(&s, &ts), ETIMEDOUT);
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT_SYS("sem_clockwait MONOTONIC +50ms at 0", sem_clockwait(&s, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "sem_clockwait returned before its deadline");
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT_SYS("sem_clockwait REALTIME +50ms at 0", sem_clockwait(&s, CLOCK_REALTIME, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "sem_clockwait returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT_SYS("sem_clockwait CLOCK_PROCESS_CPUTIME_ID", sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);

    EXPECT_SYS("sem_post", sem_post(&s), 0);
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT_SYS("sem_timedwait at 1", sem_timedwait(&s, &ts), 0);
    EXPECT_SYS("sem_post", sem_post(&s), 0);
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT_SYS("sem_clockwait MONOTONIC at 1", sem_clockwait(&s, CLOCK_MONOTONIC, &ts), 0);
    printf("value: %d\n", value(&s));
    EXPECT_SYS("sem_destroy", sem_destroy(&s), 0);

    EXPECT_SYS("sem_init value 5", sem_init(&s, 0, 5), 0);
    printf("value: %d\n", value(&s));
    EXPECT_SYS("sem_destroy", sem_destroy(&s), 0);

    EXPECT_SYS("sem_init value SEM_VALUE_MAX+1", sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1u), EINVAL);
    EXPECT_SYS("sem_init value SEM_VALUE_MAX", sem_init(&s, 0, SEM_VALUE_MAX), 0);
    printf("value is SEM_VALUE_MAX: %s\n", value(&s) == SEM_VALUE_MAX ? "yes" : "no");
    EXPECT_SYS("sem_post at SEM_VALUE_MAX", sem_post(&s), EOVERFLOW);
    EXPECT_SYS("sem_trywait at SEM_VALUE_MAX", sem_trywait(&s), 0);
    printf("value is SEM_VALUE_MAX-1: %s\n", value(&s) == SEM_VALUE_MAX - 1 ? "yes" : "no");
    EXPECT_SYS("sem_destroy", sem_destroy(&s), 0);
}

/* ---- wake-ups ---------------------------------------------------------------- */

static sem_t w_sem;
static atomic_int w_done;
static int w_rc, w_err;

static void *blocking_waiter(void *arg)
{
    int timed = (int)(long)arg;
    if (timed) {
        struct timespec ts = ts_after(CLOCK_REALTIME, 10000);
        w_rc = sem_timedwait(&w_sem, &ts);
    } else {
        w_rc = sem_wait(&w_sem);
    }
    w_err = errno;
    atomic_store(&w_done, 1);
    return NULL;
}

static void test_wakeups(void)
{
    pthread_t t;
    printf("-- wake-ups\n");
    for (long timed = 0; timed <= 1; timed++) {
        CHECK(sem_init(&w_sem, 0, 0) == 0, "sem_init");
        atomic_store(&w_done, 0);
        CHECK(pthread_create(&t, NULL, blocking_waiter, (void *)timed) == 0, "create");
        usleep(50000);
        printf("%s waiter still blocked after 50 ms: %s\n", timed ? "sem_timedwait(+10s)" : "sem_wait",
               atomic_load(&w_done) ? "no" : "yes");
        CHECK(!atomic_load(&w_done), "waiter did not block on a zero semaphore");
        double t0 = mono_ms();
        EXPECT_SYS("sem_post", sem_post(&w_sem), 0);
        CHECK(pthread_join(t, NULL) == 0, "join");
        CHECK(mono_ms() - t0 < 5000, "waiter took %.0f ms to wake", mono_ms() - t0);
        expect_sys_(timed ? "woken sem_timedwait" : "woken sem_wait", w_rc, w_err, 0, __LINE__);
        printf("value: %d\n", value(&w_sem));
        CHECK(sem_destroy(&w_sem) == 0, "destroy");
    }
}

/* ---- ping-pong and shared -------------------------------------------------------- */

#define PAIRS 4
#define PINGS 50000
static sem_t ping[PAIRS], pong[PAIRS];
static long pong_count[PAIRS];

static void *pinger(void *arg)
{
    long p = (long)arg;
    for (int i = 0; i < PINGS; i++) {
        CHECK(sem_post(&ping[p]) == 0, "post");
        while (sem_wait(&pong[p]) != 0)
            CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
    }
    return NULL;
}

static void *ponger(void *arg)
{
    long p = (long)arg;
    for (int i = 0; i < PINGS; i++) {
        while (sem_wait(&ping[p]) != 0)
            CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
        pong_count[p]++;
        CHECK(sem_post(&pong[p]) == 0, "post");
    }
    return NULL;
}

#define SHARED_OPS 50000
static sem_t shared;
static void *poster(void *arg)
{
    for (int i = 0; i < SHARED_OPS; i++)
        CHECK(sem_post(&shared) == 0, "post");
    return NULL;
}
static void *waiter(void *arg)
{
    for (int i = 0; i < SHARED_OPS; i++)
        while (sem_wait(&shared) != 0)
            CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
    return NULL;
}

static void test_stress(void)
{
    pthread_t a[PAIRS], b[PAIRS];
    printf("-- ping-pong\n");
    for (long p = 0; p < PAIRS; p++) {
        CHECK(sem_init(&ping[p], 0, 0) == 0 && sem_init(&pong[p], 0, 0) == 0, "sem_init");
        CHECK(pthread_create(&b[p], NULL, ponger, (void *)p) == 0, "create");
        CHECK(pthread_create(&a[p], NULL, pinger, (void *)p) == 0, "create");
    }
    for (int p = 0; p < PAIRS; p++) {
        CHECK(pthread_join(a[p], NULL) == 0 && pthread_join(b[p], NULL) == 0, "join");
        printf("pair %d: %ld round trips, final values %d %d\n", p, pong_count[p], value(&ping[p]),
               value(&pong[p]));
        CHECK(pong_count[p] == PINGS && value(&ping[p]) == 0 && value(&pong[p]) == 0, "ping-pong pair %d", p);
        CHECK(sem_destroy(&ping[p]) == 0 && sem_destroy(&pong[p]) == 0, "destroy");
    }

    printf("-- shared semaphore\n");
    CHECK(sem_init(&shared, 0, 0) == 0, "sem_init");
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_create(&b[i], NULL, waiter, NULL) == 0, "create");
        CHECK(pthread_create(&a[i], NULL, poster, NULL) == 0, "create");
    }
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(a[i], NULL) == 0 && pthread_join(b[i], NULL) == 0, "join");
    printf("4 posters x %d, 4 waiters x %d: final value %d\n", SHARED_OPS, SHARED_OPS, value(&shared));
    CHECK(value(&shared) == 0, "shared semaphore value");
    CHECK(sem_destroy(&shared) == 0, "destroy");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_basic();
    test_wakeups();
    test_stress();
    printf("done\n");
    return 0;
}
