/* mutex_semantics: pthread mutex types, return codes and mutual exclusion.
 * gmp-test: mode=compare
 *
 * Checks, printing each result code by name (compare mode, so libgmp must
 * return exactly what glibc returns):
 *   - statically initialised normal, recursive, errorcheck and adaptive
 *     mutexes (PTHREAD_*_INITIALIZER[_NP]) and dynamically initialised ones
 *     (pthread_mutexattr_settype / gettype);
 *   - trylock EBUSY from another thread and from the owner; errorcheck
 *     relock EDEADLK, unlock by a non-owner EPERM, unlock when unlocked EPERM;
 *     recursive lock count (N locks need N unlocks), non-owner unlock EPERM;
 *   - pthread_mutex_timedlock: ETIMEDOUT ~50 ms in the future while another
 *     thread holds the lock (and not before the deadline), EINVAL for a bad
 *     timespec when it would block, success on a free mutex and success when
 *     the holder unlocks before the deadline; errorcheck timedlock EDEADLK;
 *   - pthread_mutex_clocklock with CLOCK_MONOTONIC and CLOCK_REALTIME
 *     (ETIMEDOUT, success) and an unsupported clock (EINVAL);
 *   - ownership survives blocking calls (under libgmp: migration to another
 *     OS thread): lock, then sleep/yield repeatedly, then relock (recursive:
 *     0, errorcheck: EDEADLK) and unlock (0, not EPERM);
 *   - a counter incremented 200,000 times by each of 8 threads under a normal
 *     mutex ends exact; same for recursive (nested) and adaptive mutexes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

/* Print "label: CODE" and insist on the expected code. */
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

/* ---- helpers --------------------------------------------------------------- */

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

/* Run fn(m) in a fresh thread and return its result. */
struct call {
    int (*fn)(pthread_mutex_t *);
    pthread_mutex_t *m;
    int result;
};

static void *call_thread(void *arg)
{
    struct call *c = arg;
    c->result = c->fn(c->m);
    return NULL;
}

static int in_other_thread(int (*fn)(pthread_mutex_t *), pthread_mutex_t *m)
{
    struct call c = {fn, m, -1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, call_thread, &c) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    return c.result;
}

static int trylock_then_unlock(pthread_mutex_t *m)
{
    int r = pthread_mutex_trylock(m);
    if (r == 0)
        CHECK(pthread_mutex_unlock(m) == 0, "unlock after successful trylock");
    return r;
}

/* A thread that locks m, reports it holds it, and unlocks either when told
 * to (hold_ms < 0) or after hold_ms milliseconds. */
struct holder {
    pthread_mutex_t *m;
    long hold_ms;
    atomic_int state;           /* 0 starting, 1 holding, 2 release requested, 3 released */
    pthread_t t;
};

static void *holder_thread(void *arg)
{
    struct holder *h = arg;
    CHECK(pthread_mutex_lock(h->m) == 0, "holder lock");
    atomic_store(&h->state, 1);
    if (h->hold_ms >= 0)
        usleep((useconds_t)h->hold_ms * 1000);
    else
        while (atomic_load(&h->state) != 2)
            usleep(1000);
    CHECK(pthread_mutex_unlock(h->m) == 0, "holder unlock");
    atomic_store(&h->state, 3);
    return NULL;
}

static void holder_start(struct holder *h, pthread_mutex_t *m, long hold_ms)
{
    h->m = m;
    h->hold_ms = hold_ms;
    atomic_store(&h->state, 0);
    CHECK(pthread_create(&h->t, NULL, holder_thread, h) == 0, "create holder");
    while (atomic_load(&h->state) == 0)
        usleep(1000);
}

static void holder_finish(struct holder *h)
{
    if (h->hold_ms < 0)
        atomic_store(&h->state, 2);
    CHECK(pthread_join(h->t, NULL) == 0, "join holder");
    CHECK(atomic_load(&h->state) == 3, "holder did not release");
}

/* ---- counters --------------------------------------------------------------- */

#define NCOUNT 8
#define COUNT_ITERS 200000

static long counter;
static pthread_mutex_t *count_mu;
static int count_nested;

static void *count_thread(void *arg)
{
    int iters = (int)(long)arg;
    for (int i = 0; i < iters; i++) {
        pthread_mutex_lock(count_mu);
        if (count_nested)
            pthread_mutex_lock(count_mu);
        long c = counter;       /* read-modify-write that races without the lock */
        if ((i & 1023) == 0)
            sched_yield();
        counter = c + 1;
        if (count_nested)
            pthread_mutex_unlock(count_mu);
        pthread_mutex_unlock(count_mu);
    }
    return NULL;
}

static void count_test(const char *name, pthread_mutex_t *m, int nested, int iters)
{
    pthread_t t[NCOUNT];
    counter = 0;
    count_mu = m;
    count_nested = nested;
    for (long i = 0; i < NCOUNT; i++)
        CHECK(pthread_create(&t[i], NULL, count_thread, (void *)(long)iters) == 0, "create");
    for (int i = 0; i < NCOUNT; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("%s counter: %ld (expected %ld)\n", name, counter, (long)NCOUNT * iters);
    CHECK(counter == (long)NCOUNT * iters, "%s counter %ld", name, counter);
}

/* ---- tests ------------------------------------------------------------------ */

static pthread_mutex_t s_normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;

static void test_normal(pthread_mutex_t *m, const char *what)
{
    char l[128];
    printf("-- %s\n", what);
    snprintf(l, sizeof l, "%s lock", what);
    EXPECT(l, pthread_mutex_lock(m), 0);
    snprintf(l, sizeof l, "%s trylock by owner", what);
    EXPECT(l, pthread_mutex_trylock(m), EBUSY);
    snprintf(l, sizeof l, "%s trylock by other thread", what);
    EXPECT(l, in_other_thread(pthread_mutex_trylock, m), EBUSY);
    snprintf(l, sizeof l, "%s unlock", what);
    EXPECT(l, pthread_mutex_unlock(m), 0);
    snprintf(l, sizeof l, "%s trylock+unlock by other thread", what);
    EXPECT(l, in_other_thread(trylock_then_unlock, m), 0);
    snprintf(l, sizeof l, "%s trylock by owner, now free", what);
    EXPECT(l, pthread_mutex_trylock(m), 0);
    EXPECT("  unlock", pthread_mutex_unlock(m), 0);
}

static void test_recursive(pthread_mutex_t *m, const char *what)
{
    char l[128];
    printf("-- %s\n", what);
    for (int i = 1; i <= 3; i++) {
        snprintf(l, sizeof l, "%s lock #%d", what, i);
        EXPECT(l, pthread_mutex_lock(m), 0);
    }
    snprintf(l, sizeof l, "%s trylock by owner (#4)", what);
    EXPECT(l, pthread_mutex_trylock(m), 0);
    snprintf(l, sizeof l, "%s trylock by other thread", what);
    EXPECT(l, in_other_thread(pthread_mutex_trylock, m), EBUSY);
    snprintf(l, sizeof l, "%s unlock by other thread", what);
    EXPECT(l, in_other_thread(pthread_mutex_unlock, m), EPERM);
    for (int i = 4; i >= 2; i--) {
        snprintf(l, sizeof l, "%s unlock (count %d -> %d)", what, i, i - 1);
        EXPECT(l, pthread_mutex_unlock(m), 0);
        snprintf(l, sizeof l, "%s   still held: trylock by other", what);
        EXPECT(l, in_other_thread(pthread_mutex_trylock, m), EBUSY);
    }
    snprintf(l, sizeof l, "%s last unlock", what);
    EXPECT(l, pthread_mutex_unlock(m), 0);
    snprintf(l, sizeof l, "%s trylock+unlock by other thread", what);
    EXPECT(l, in_other_thread(trylock_then_unlock, m), 0);
    snprintf(l, sizeof l, "%s unlock when unlocked", what);
    EXPECT(l, pthread_mutex_unlock(m), EPERM);
}

static void test_errorcheck(pthread_mutex_t *m, const char *what)
{
    char l[128];
    printf("-- %s\n", what);
    snprintf(l, sizeof l, "%s lock", what);
    EXPECT(l, pthread_mutex_lock(m), 0);
    snprintf(l, sizeof l, "%s relock by owner", what);
    EXPECT(l, pthread_mutex_lock(m), EDEADLK);
    snprintf(l, sizeof l, "%s trylock by owner", what);
    EXPECT(l, pthread_mutex_trylock(m), EBUSY);
    struct timespec ts = ts_after(CLOCK_REALTIME, 50);
    snprintf(l, sizeof l, "%s timedlock by owner", what);
    EXPECT(l, pthread_mutex_timedlock(m, &ts), EDEADLK);
    snprintf(l, sizeof l, "%s trylock by other thread", what);
    EXPECT(l, in_other_thread(pthread_mutex_trylock, m), EBUSY);
    snprintf(l, sizeof l, "%s unlock by non-owner", what);
    EXPECT(l, in_other_thread(pthread_mutex_unlock, m), EPERM);
    snprintf(l, sizeof l, "%s unlock by owner", what);
    EXPECT(l, pthread_mutex_unlock(m), 0);
    snprintf(l, sizeof l, "%s unlock when unlocked", what);
    EXPECT(l, pthread_mutex_unlock(m), EPERM);
    snprintf(l, sizeof l, "%s trylock+unlock by other thread", what);
    EXPECT(l, in_other_thread(trylock_then_unlock, m), 0);
}

/* Ownership must follow the thread, not the OS thread it happens to run on. */
static void migrate_a_bit(void)
{
    for (int i = 0; i < 20; i++) {
        usleep(500);
        sched_yield();
    }
}

static void *ownership_thread(void *arg)
{
    pthread_mutex_t *rec = ((pthread_mutex_t **)arg)[0], *ec = ((pthread_mutex_t **)arg)[1];
    struct timespec ts;
    EXPECT("thread: recursive lock", pthread_mutex_lock(rec), 0);
    migrate_a_bit();
    ts = ts_after(CLOCK_REALTIME, 2000);
    EXPECT("thread: recursive relock (timedlock) after sleeping", pthread_mutex_timedlock(rec, &ts), 0);
    migrate_a_bit();
    EXPECT("thread: recursive unlock after sleeping", pthread_mutex_unlock(rec), 0);
    migrate_a_bit();
    EXPECT("thread: recursive unlock after sleeping", pthread_mutex_unlock(rec), 0);
    EXPECT("thread: errorcheck lock", pthread_mutex_lock(ec), 0);
    migrate_a_bit();
    EXPECT("thread: errorcheck relock after sleeping", pthread_mutex_lock(ec), EDEADLK);
    migrate_a_bit();
    EXPECT("thread: errorcheck unlock after sleeping", pthread_mutex_unlock(ec), 0);
    return NULL;
}

/* Background load so that, under libgmp, Gs get shuffled between OS threads. */
static atomic_int bg_stop;
static void *bg_sleeper(void *arg)
{
    while (!atomic_load(&bg_stop)) {
        usleep(300);
        sched_yield();
    }
    return NULL;
}

static void test_ownership(pthread_mutex_t *rec, pthread_mutex_t *ec)
{
    pthread_t t, bg[3];
    pthread_mutex_t *args[2] = {rec, ec};
    printf("-- ownership across blocking calls\n");
    atomic_store(&bg_stop, 0);
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&bg[i], NULL, bg_sleeper, NULL) == 0, "create");
    printf("(in main)\n");
    ownership_thread(args);
    printf("(in a thread)\n");
    CHECK(pthread_create(&t, NULL, ownership_thread, args) == 0, "create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    atomic_store(&bg_stop, 1);
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(bg[i], NULL) == 0, "join");
}

static void test_timed(void)
{
    pthread_mutex_t m;
    struct holder h;
    struct timespec ts;
    printf("-- timedlock / clocklock\n");
    CHECK(pthread_mutex_init(&m, NULL) == 0, "init");

    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedlock on free mutex", pthread_mutex_timedlock(&m, &ts), 0);
    EXPECT("  unlock", pthread_mutex_unlock(&m), 0);

    holder_start(&h, &m, -1);
    ts = ts_after(CLOCK_REALTIME, 50);
    double t0 = mono_ms();
    EXPECT("timedlock (realtime +50ms) while other thread holds", pthread_mutex_timedlock(&m, &ts), ETIMEDOUT);
    double waited = mono_ms() - t0;
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedlock returned ETIMEDOUT before its deadline");
    CHECK(waited < 5000, "timedlock waited %.0f ms for a 50 ms timeout", waited);
    struct timespec bad = {ts.tv_sec, 1000000000L};
    EXPECT("timedlock with tv_nsec=1e9 while held", pthread_mutex_timedlock(&m, &bad), EINVAL);
    bad.tv_nsec = -1;
    EXPECT("timedlock with tv_nsec=-1 while held", pthread_mutex_timedlock(&m, &bad), EINVAL);
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clocklock (MONOTONIC +50ms) while held", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "clocklock returned ETIMEDOUT before its deadline");
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("clocklock (REALTIME +50ms) while held", pthread_mutex_clocklock(&m, CLOCK_REALTIME, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "clocklock returned ETIMEDOUT before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clocklock with CLOCK_PROCESS_CPUTIME_ID",
           pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
    holder_finish(&h);

    /* The holder unlocks after 50 ms; we must be woken well before 10 s. */
    holder_start(&h, &m, 50);
    ts = ts_after(CLOCK_REALTIME, 10000);
    t0 = mono_ms();
    EXPECT("timedlock (+10s), holder unlocks after 50ms", pthread_mutex_timedlock(&m, &ts), 0);
    waited = mono_ms() - t0;
    CHECK(waited < 5000, "timedlock took %.0f ms to notice the unlock", waited);
    EXPECT("  unlock", pthread_mutex_unlock(&m), 0);
    holder_finish(&h);

    holder_start(&h, &m, 50);
    ts = ts_after(CLOCK_MONOTONIC, 10000);
    EXPECT("clocklock (MONOTONIC +10s), holder unlocks after 50ms",
           pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts), 0);
    EXPECT("  unlock", pthread_mutex_unlock(&m), 0);
    holder_finish(&h);

    /* Plain lock blocking until the holder lets go. */
    holder_start(&h, &m, 30);
    EXPECT("lock, holder unlocks after 30ms", pthread_mutex_lock(&m), 0);
    CHECK(atomic_load(&h.state) >= 1, "state");
    EXPECT("  unlock", pthread_mutex_unlock(&m), 0);
    holder_finish(&h);

    EXPECT("destroy", pthread_mutex_destroy(&m), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_mutexattr_t a;
    int type = -1;

    printf("-- mutexattr\n");
    EXPECT("mutexattr_init", pthread_mutexattr_init(&a), 0);
    EXPECT("mutexattr_gettype (default)", pthread_mutexattr_gettype(&a, &type), 0);
    printf("default type is PTHREAD_MUTEX_DEFAULT: %s\n", type == PTHREAD_MUTEX_DEFAULT ? "yes" : "no");
    EXPECT("mutexattr_settype(9999)", pthread_mutexattr_settype(&a, 9999), EINVAL);
    EXPECT("mutexattr_settype(RECURSIVE)", pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE), 0);
    EXPECT("mutexattr_gettype", pthread_mutexattr_gettype(&a, &type), 0);
    printf("type is PTHREAD_MUTEX_RECURSIVE: %s\n", type == PTHREAD_MUTEX_RECURSIVE ? "yes" : "no");
    CHECK(type == PTHREAD_MUTEX_RECURSIVE, "gettype");

    test_normal(&s_normal, "static normal");
    test_normal(&s_adaptive, "static adaptive");
    test_recursive(&s_recursive, "static recursive");
    test_errorcheck(&s_errorcheck, "static errorcheck");

    pthread_mutex_t d_normal, d_recursive, d_errorcheck;
    CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL) == 0, "settype");
    EXPECT("mutex_init NORMAL", pthread_mutex_init(&d_normal, &a), 0);
    CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) == 0, "settype");
    EXPECT("mutex_init RECURSIVE", pthread_mutex_init(&d_recursive, &a), 0);
    CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0, "settype");
    EXPECT("mutex_init ERRORCHECK", pthread_mutex_init(&d_errorcheck, &a), 0);
    EXPECT("mutexattr_destroy", pthread_mutexattr_destroy(&a), 0);
    test_normal(&d_normal, "dynamic normal");
    test_recursive(&d_recursive, "dynamic recursive");
    test_errorcheck(&d_errorcheck, "dynamic errorcheck");

    test_ownership(&d_recursive, &d_errorcheck);
    test_timed();

    printf("-- counters\n");
    count_test("normal mutex", &d_normal, 0, COUNT_ITERS);
    count_test("static normal mutex", &s_normal, 0, COUNT_ITERS / 4);
    count_test("adaptive mutex", &s_adaptive, 0, COUNT_ITERS / 4);
    count_test("recursive mutex (nested)", &d_recursive, 1, COUNT_ITERS / 4);
    count_test("errorcheck mutex", &d_errorcheck, 0, COUNT_ITERS / 4);

    EXPECT("destroy normal", pthread_mutex_destroy(&d_normal), 0);
    EXPECT("destroy recursive", pthread_mutex_destroy(&d_recursive), 0);
    EXPECT("destroy errorcheck", pthread_mutex_destroy(&d_errorcheck), 0);
    printf("done\n");
    return 0;
}
