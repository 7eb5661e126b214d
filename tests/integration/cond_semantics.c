/* cond_semantics: pthread condition variables.
 * gmp-test: mode=compare
 *
 * Checks (each result code printed by name, compare mode):
 *   - producer/consumer over a bounded queue (capacity 8): 4 producers, 4
 *     consumers, 100,000 items; every item consumed exactly once (bitmap),
 *     checksum exact; uses the static PTHREAD_COND_INITIALIZER;
 *   - pthread_cond_timedwait with the default (REALTIME) clock: ETIMEDOUT
 *     ~50 ms later, not before the deadline, and the mutex is re-acquired on
 *     return (an errorcheck mutex's unlock then succeeds);
 *   - pthread_condattr_setclock(CLOCK_MONOTONIC) / getclock, then timedwait
 *     against a monotonic deadline -> ETIMEDOUT; EINVAL for a bad tv_nsec;
 *   - pthread_cond_clockwait with CLOCK_MONOTONIC and CLOCK_REALTIME
 *     (ETIMEDOUT) and with an unsupported clock (EINVAL);
 *   - a timed wait that is signalled long before its deadline returns 0;
 *   - pthread_cond_broadcast wakes all of 50 waiters (a single broadcast,
 *     waiters wait on a generation counter, so a lost wake-up would hang:
 *     main gives up after 10 s and reports how many woke);
 *   - pthread_cond_signal wakes a single waiter;
 *   - signal/broadcast with no waiters return 0 and are not remembered (a
 *     later timedwait still times out).
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

/* ---- producer / consumer ----------------------------------------------------- */

#define NPROD 4
#define NCONS 4
#define NITEMS 100000
#define QCAP 8

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static long q_buf[QCAP];
static int q_head, q_count;
static unsigned char seen[NITEMS + 1];
static long long consumed_sum;
static long consumed_n, duplicates;

static void q_put(long v)
{
    pthread_mutex_lock(&q_mu);
    while (q_count == QCAP)
        pthread_cond_wait(&q_not_full, &q_mu);
    q_buf[(q_head + q_count) % QCAP] = v;
    q_count++;
    pthread_cond_signal(&q_not_empty);
    pthread_mutex_unlock(&q_mu);
}

static long q_get(void)
{
    pthread_mutex_lock(&q_mu);
    while (q_count == 0)
        pthread_cond_wait(&q_not_empty, &q_mu);
    long v = q_buf[q_head];
    q_head = (q_head + 1) % QCAP;
    q_count--;
    pthread_cond_signal(&q_not_full);
    pthread_mutex_unlock(&q_mu);
    return v;
}

static void *producer(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < NITEMS / NPROD; i++)
        q_put(id * (NITEMS / NPROD) + i + 1);   /* items 1..NITEMS */
    return NULL;
}

static void *consumer(void *arg)
{
    long n = 0;
    long long sum = 0;
    for (;;) {
        long v = q_get();
        if (v == 0)             /* poison pill */
            break;
        CHECK(v >= 1 && v <= NITEMS, "consumer got out-of-range item %ld", v);
        pthread_mutex_lock(&q_mu);      /* bookkeeping under the same mutex */
        if (seen[v]++)
            duplicates++;
        pthread_mutex_unlock(&q_mu);
        sum += v;
        n++;
    }
    pthread_mutex_lock(&q_mu);
    consumed_sum += sum;
    consumed_n += n;
    pthread_mutex_unlock(&q_mu);
    return NULL;
}

static void test_prodcons(void)
{
    pthread_t p[NPROD], c[NCONS];
    printf("-- producer/consumer\n");
    for (long i = 0; i < NCONS; i++)
        CHECK(pthread_create(&c[i], NULL, consumer, (void *)i) == 0, "create consumer");
    for (long i = 0; i < NPROD; i++)
        CHECK(pthread_create(&p[i], NULL, producer, (void *)i) == 0, "create producer");
    for (int i = 0; i < NPROD; i++)
        CHECK(pthread_join(p[i], NULL) == 0, "join producer");
    for (int i = 0; i < NCONS; i++)
        q_put(0);
    for (int i = 0; i < NCONS; i++)
        CHECK(pthread_join(c[i], NULL) == 0, "join consumer");
    long missing = 0;
    for (long v = 1; v <= NITEMS; v++)
        if (!seen[v])
            missing++;
    long long want = (long long)NITEMS * (NITEMS + 1) / 2;
    printf("items consumed: %ld, missing: %ld, duplicated: %ld\n", consumed_n, missing, duplicates);
    printf("checksum: %lld (expected %lld)\n", consumed_sum, want);
    CHECK(consumed_n == NITEMS && missing == 0 && duplicates == 0 && consumed_sum == want, "producer/consumer");
}

/* ---- timed waits ------------------------------------------------------------- */

static void test_timed(void)
{
    pthread_mutex_t m;
    pthread_mutexattr_t ma;
    pthread_cond_t c;
    pthread_condattr_t ca;
    struct timespec ts;
    clockid_t clk = -1;

    printf("-- timed waits\n");
    CHECK(pthread_mutexattr_init(&ma) == 0 && pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK) == 0,
          "mutexattr");
    CHECK(pthread_mutex_init(&m, &ma) == 0, "mutex_init");
    EXPECT("cond_init (default attr)", pthread_cond_init(&c, NULL), 0);

    CHECK(pthread_mutex_lock(&m) == 0, "lock");
    ts = ts_after(CLOCK_REALTIME, 50);
    double t0 = mono_ms();
    EXPECT("timedwait REALTIME +50ms", pthread_cond_timedwait(&c, &m, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedwait returned before its deadline");
    CHECK(mono_ms() - t0 < 5000, "timedwait took %.0f ms", mono_ms() - t0);
    /* The mutex must be held again: relock of an errorcheck mutex says so. */
    EXPECT("  mutex re-acquired (errorcheck relock)", pthread_mutex_lock(&m), EDEADLK);
    ts.tv_nsec = 1000000000L;
    EXPECT("timedwait with tv_nsec=1e9", pthread_cond_timedwait(&c, &m, &ts), EINVAL);
    ts = ts_after(CLOCK_REALTIME, -1000);
    EXPECT("timedwait with a deadline in the past", pthread_cond_timedwait(&c, &m, &ts), ETIMEDOUT);

    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockwait MONOTONIC +50ms", pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "clockwait returned before its deadline");
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("clockwait REALTIME +50ms", pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "clockwait returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockwait CLOCK_PROCESS_CPUTIME_ID", pthread_cond_clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &ts),
           EINVAL);
    EXPECT("  mutex still held (errorcheck relock)", pthread_mutex_lock(&m), EDEADLK);
    CHECK(pthread_mutex_unlock(&m) == 0, "unlock");
    EXPECT("cond_destroy", pthread_cond_destroy(&c), 0);

    EXPECT("condattr_init", pthread_condattr_init(&ca), 0);
    EXPECT("condattr_getclock (default)", pthread_condattr_getclock(&ca, &clk), 0);
    printf("default clock is CLOCK_REALTIME: %s\n", clk == CLOCK_REALTIME ? "yes" : "no");
    EXPECT("condattr_setclock(MONOTONIC)", pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    EXPECT("condattr_setclock(PROCESS_CPUTIME)", pthread_condattr_setclock(&ca, CLOCK_PROCESS_CPUTIME_ID), EINVAL);
    EXPECT("condattr_getclock", pthread_condattr_getclock(&ca, &clk), 0);
    printf("clock is CLOCK_MONOTONIC: %s\n", clk == CLOCK_MONOTONIC ? "yes" : "no");
    EXPECT("cond_init (MONOTONIC attr)", pthread_cond_init(&c, &ca), 0);
    CHECK(pthread_mutex_lock(&m) == 0, "lock");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("timedwait MONOTONIC-clock cond +50ms", pthread_cond_timedwait(&c, &m, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "monotonic timedwait returned before its deadline");
    EXPECT("  mutex re-acquired (errorcheck relock)", pthread_mutex_lock(&m), EDEADLK);
    CHECK(pthread_mutex_unlock(&m) == 0, "unlock");
    EXPECT("cond_destroy", pthread_cond_destroy(&c), 0);
    EXPECT("condattr_destroy", pthread_condattr_destroy(&ca), 0);
    CHECK(pthread_mutex_destroy(&m) == 0, "mutex destroy");
    pthread_mutexattr_destroy(&ma);
}

/* ---- signalled before the deadline ------------------------------------------- */

static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cv = PTHREAD_COND_INITIALIZER;
static int w_flag;

static void *late_signaller(void *arg)
{
    usleep(30000);
    pthread_mutex_lock(&w_mu);
    w_flag = 1;
    pthread_cond_signal(&w_cv);
    pthread_mutex_unlock(&w_mu);
    return NULL;
}

static void test_signalled_timedwait(void)
{
    pthread_t t;
    printf("-- timedwait signalled before deadline\n");
    pthread_mutex_lock(&w_mu);
    w_flag = 0;
    CHECK(pthread_create(&t, NULL, late_signaller, NULL) == 0, "create");
    struct timespec ts = ts_after(CLOCK_REALTIME, 10000);
    int r = 0;
    double t0 = mono_ms();
    while (!w_flag && r == 0)
        r = pthread_cond_timedwait(&w_cv, &w_mu, &ts);
    double waited = mono_ms() - t0;
    EXPECT("timedwait +10s, signalled after ~30ms", r, 0);
    printf("  predicate set: %s\n", w_flag ? "yes" : "no");
    CHECK(w_flag, "predicate");
    CHECK(waited < 5000, "woke only after %.0f ms", waited);
    pthread_mutex_unlock(&w_mu);
    CHECK(pthread_join(t, NULL) == 0, "join");

    /* clockwait, same thing */
    pthread_mutex_lock(&w_mu);
    w_flag = 0;
    CHECK(pthread_create(&t, NULL, late_signaller, NULL) == 0, "create");
    ts = ts_after(CLOCK_MONOTONIC, 10000);
    r = 0;
    while (!w_flag && r == 0)
        r = pthread_cond_clockwait(&w_cv, &w_mu, CLOCK_MONOTONIC, &ts);
    EXPECT("clockwait MONOTONIC +10s, signalled after ~30ms", r, 0);
    CHECK(w_flag, "predicate");
    pthread_mutex_unlock(&w_mu);
    CHECK(pthread_join(t, NULL) == 0, "join");
}

/* ---- broadcast and signal ------------------------------------------------------- */

#define NWAITERS 50
static pthread_mutex_t b_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t b_cv = PTHREAD_COND_INITIALIZER;
static long b_gen;
static int b_waiting;
static atomic_int b_woken;

static void *gen_waiter(void *arg)
{
    pthread_mutex_lock(&b_mu);
    long my = b_gen;
    b_waiting++;
    while (b_gen == my)
        pthread_cond_wait(&b_cv, &b_mu);
    b_waiting--;
    pthread_mutex_unlock(&b_mu);
    atomic_fetch_add(&b_woken, 1);
    return NULL;
}

/* Wait (polling, without holding b_mu while asleep) until cond() or 10 s. */
static int wait_until(int (*cond)(void))
{
    double t0 = mono_ms();
    while (!cond()) {
        if (mono_ms() - t0 > 10000)
            return 0;
        usleep(1000);
    }
    return 1;
}

static int n_waiting_is_all(void)
{
    pthread_mutex_lock(&b_mu);
    int r = b_waiting == NWAITERS;
    pthread_mutex_unlock(&b_mu);
    return r;
}
static int all_woken(void) { return atomic_load(&b_woken) == NWAITERS; }
static int one_waiting(void)
{
    pthread_mutex_lock(&b_mu);
    int r = b_waiting == 1;
    pthread_mutex_unlock(&b_mu);
    return r;
}
static int one_woken(void) { return atomic_load(&b_woken) == 1; }

static void test_broadcast_signal(void)
{
    pthread_t t[NWAITERS];
    printf("-- broadcast / signal\n");
    EXPECT("signal with no waiters", pthread_cond_signal(&b_cv), 0);
    EXPECT("broadcast with no waiters", pthread_cond_broadcast(&b_cv), 0);
    /* Not remembered: a wait now still times out. */
    pthread_mutex_lock(&b_mu);
    struct timespec ts = ts_after(CLOCK_REALTIME, 30);
    EXPECT("timedwait after unmatched signal/broadcast", pthread_cond_timedwait(&b_cv, &b_mu, &ts), ETIMEDOUT);
    pthread_mutex_unlock(&b_mu);

    atomic_store(&b_woken, 0);
    for (int i = 0; i < NWAITERS; i++)
        CHECK(pthread_create(&t[i], NULL, gen_waiter, NULL) == 0, "create waiter");
    CHECK(wait_until(n_waiting_is_all), "only %d of %d waiters arrived", b_waiting, NWAITERS);
    pthread_mutex_lock(&b_mu);
    b_gen++;
    EXPECT("broadcast to 50 waiters", pthread_cond_broadcast(&b_cv), 0);
    pthread_mutex_unlock(&b_mu);
    int ok = wait_until(all_woken);
    printf("waiters woken by one broadcast: %d of %d\n", atomic_load(&b_woken), NWAITERS);
    CHECK(ok, "broadcast lost wake-ups");
    for (int i = 0; i < NWAITERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join waiter");

    atomic_store(&b_woken, 0);
    CHECK(pthread_create(&t[0], NULL, gen_waiter, NULL) == 0, "create waiter");
    CHECK(wait_until(one_waiting), "the waiter did not arrive");
    pthread_mutex_lock(&b_mu);
    b_gen++;
    EXPECT("signal to 1 waiter", pthread_cond_signal(&b_cv), 0);
    pthread_mutex_unlock(&b_mu);
    ok = wait_until(one_woken);
    printf("waiter woken by signal: %s\n", ok ? "yes" : "no");
    CHECK(ok, "signal lost its wake-up");
    CHECK(pthread_join(t[0], NULL) == 0, "join waiter");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_timed();
    test_signalled_timedwait();
    test_broadcast_signal();
    test_prodcons();
    printf("done\n");
    return 0;
}
