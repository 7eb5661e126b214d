/* c11_threads: ISO C11 <threads.h>, alone and mixed with pthreads.
 * gmp-test: mode=compare
 *
 * In glibc >= 2.34 the C11 thread functions live in libc and call the
 * pthread implementation internally (thrd_create -> __pthread_create_2_1,
 * mtx_lock -> __pthread_mutex_lock, ...), i.e. NOT through the interposable
 * pthread_* symbols. A preload runtime therefore sees threads it did not
 * create and locks it does not know of; this program checks that such a
 * program still works, including the mixes: C11 threads calling interposed
 * functions (pthread_mutex_lock on a shared pthread mutex, usleep,
 * sched_yield, pthread_self) and pthreads contending with C11 threads on the
 * same mtx_t and the same pthread_mutex_t.
 * Checks: thrd_create/join results, thrd_current/equal, thrd_detach,
 * call_once from 8 threads, mtx_plain/recursive/timed (mtx_timedlock times
 * out -> thrd_timedout), cnd producer/consumer and cnd_timedwait timeout,
 * tss with destructor (once per thread), thrd_sleep, thrd_yield; counters
 * exact. Deterministic output.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static const char *tname(int r)
{
    switch (r) {
    case thrd_success: return "thrd_success";
    case thrd_busy: return "thrd_busy";
    case thrd_error: return "thrd_error";
    case thrd_nomem: return "thrd_nomem";
    case thrd_timedout: return "thrd_timedout";
    default: return "?";
    }
}

static struct timespec ts_after(long ms)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- counters, once, tss ------------------------------------------------------ */

#define NC11 8
#define ITERS 50000
static mtx_t c11_mu;
static pthread_mutex_t px_mu = PTHREAD_MUTEX_INITIALIZER;
static long c11_counter, px_counter;
static once_flag once = ONCE_FLAG_INIT;
static atomic_int once_runs, tss_dtor_runs, tss_bad;
static tss_t tss_key;
static pthread_t selves[2 * NC11];

static void once_fn(void)
{
    atomic_fetch_add(&once_runs, 1);
    thrd_sleep(&(struct timespec){0, 10000000}, NULL);
}

static void tss_dtor(void *v)
{
    if ((uintptr_t)v < 1000 || (uintptr_t)v >= 1000 + 2 * NC11)
        atomic_fetch_add(&tss_bad, 1);
    atomic_fetch_add(&tss_dtor_runs, 1);
}

/* Body shared by C11 threads and pthreads. */
static int body(int id)
{
    call_once(&once, once_fn);
    CHECK(tss_get(tss_key) == NULL, "fresh thread has a tss value");
    CHECK(tss_set(tss_key, (void *)(uintptr_t)(1000 + id)) == thrd_success, "tss_set");
    selves[id] = pthread_self();
    for (int i = 0; i < ITERS; i++) {
        CHECK(mtx_lock(&c11_mu) == thrd_success, "mtx_lock");
        long c = c11_counter;
        if ((i & 255) == 0)
            thrd_yield();
        c11_counter = c + 1;
        CHECK(mtx_unlock(&c11_mu) == thrd_success, "mtx_unlock");

        pthread_mutex_lock(&px_mu);
        c = px_counter;
        if ((i & 1023) == 0)
            sched_yield();
        px_counter = c + 1;
        pthread_mutex_unlock(&px_mu);
        if ((i & 4095) == 0)
            usleep(100);
    }
    if ((uintptr_t)tss_get(tss_key) != (uintptr_t)(1000 + id))
        atomic_fetch_add(&tss_bad, 1);
    return 100 + id;
}

static int c11_main(void *arg) { return body((int)(intptr_t)arg); }
static void *px_main(void *arg) { return (void *)(intptr_t)body((int)(intptr_t)arg); }

static void test_mixed(void)
{
    thrd_t ct[NC11];
    pthread_t pt[NC11];
    printf("-- mixed C11 threads and pthreads\n");
    CHECK(mtx_init(&c11_mu, mtx_plain) == thrd_success, "mtx_init");
    CHECK(tss_create(&tss_key, tss_dtor) == thrd_success, "tss_create");
    for (int i = 0; i < NC11; i++) {
        CHECK(thrd_create(&ct[i], c11_main, (void *)(intptr_t)i) == thrd_success, "thrd_create");
        CHECK(pthread_create(&pt[i], NULL, px_main, (void *)(intptr_t)(NC11 + i)) == 0, "pthread_create");
    }
    int bad_ret = 0;
    for (int i = 0; i < NC11; i++) {
        int res = -1;
        void *pres;
        CHECK(thrd_join(ct[i], &res) == thrd_success, "thrd_join");
        CHECK(pthread_join(pt[i], &pres) == 0, "pthread_join");
        if (res != 100 + i || (intptr_t)pres != 100 + NC11 + i)
            bad_ret++;
    }
    int distinct = 1;
    for (int i = 0; i < 2 * NC11; i++)
        for (int j = i + 1; j < 2 * NC11; j++)
            if (pthread_equal(selves[i], selves[j]))
                distinct = 0;
    printf("thread results correct: %s\n", bad_ret ? "no" : "yes");
    printf("pthread_self distinct across all 16: %s\n", distinct ? "yes" : "no");
    printf("mtx_t counter: %ld (expected %d)\n", c11_counter, 2 * NC11 * ITERS);
    printf("pthread_mutex_t counter: %ld (expected %d)\n", px_counter, 2 * NC11 * ITERS);
    printf("call_once runs: %d\n", atomic_load(&once_runs));
    printf("tss destructor runs: %d, bad values: %d\n", atomic_load(&tss_dtor_runs), atomic_load(&tss_bad));
    CHECK(!bad_ret && distinct && c11_counter == 2 * NC11 * ITERS && px_counter == 2 * NC11 * ITERS, "mixed");
    CHECK(atomic_load(&once_runs) == 1 && atomic_load(&tss_dtor_runs) == 2 * NC11 && atomic_load(&tss_bad) == 0,
          "once/tss");
    tss_delete(tss_key);
    mtx_destroy(&c11_mu);
}

/* ---- mutex kinds, timeouts ------------------------------------------------------ */

static mtx_t tm;
static atomic_int holder_state;

static int timed_holder(void *arg)
{
    CHECK(mtx_lock(&tm) == thrd_success, "lock");
    atomic_store(&holder_state, 1);
    while (atomic_load(&holder_state) != 2)
        thrd_sleep(&(struct timespec){0, 1000000}, NULL);
    CHECK(mtx_unlock(&tm) == thrd_success, "unlock");
    return 0;
}

static void test_mutexes(void)
{
    mtx_t rm;
    thrd_t t;
    printf("-- mtx kinds\n");
    CHECK(mtx_init(&rm, mtx_plain | mtx_recursive) == thrd_success, "mtx_init recursive");
    printf("recursive lock x3: %s %s %s\n", tname(mtx_lock(&rm)), tname(mtx_lock(&rm)), tname(mtx_trylock(&rm)));
    printf("recursive unlock x3: %s %s %s\n", tname(mtx_unlock(&rm)), tname(mtx_unlock(&rm)), tname(mtx_unlock(&rm)));
    mtx_destroy(&rm);

    CHECK(mtx_init(&tm, mtx_timed) == thrd_success, "mtx_init timed");
    atomic_store(&holder_state, 0);
    CHECK(thrd_create(&t, timed_holder, NULL) == thrd_success, "thrd_create");
    while (atomic_load(&holder_state) != 1)
        thrd_sleep(&(struct timespec){0, 1000000}, NULL);
    printf("mtx_trylock while held: %s\n", tname(mtx_trylock(&tm)));
    struct timespec ts = ts_after(50);
    int r = mtx_timedlock(&tm, &ts);
    printf("mtx_timedlock +50ms while held: %s\n", tname(r));
    CHECK(r == thrd_timedout, "timedlock");
    atomic_store(&holder_state, 2);
    ts = ts_after(10000);
    r = mtx_timedlock(&tm, &ts);
    printf("mtx_timedlock +10s, holder releases: %s\n", tname(r));
    CHECK(r == thrd_success, "timedlock");
    CHECK(mtx_unlock(&tm) == thrd_success, "unlock");
    CHECK(thrd_join(t, NULL) == thrd_success, "join");
    mtx_destroy(&tm);
}

/* ---- condition variables --------------------------------------------------------- */

#define QN 20000
static mtx_t qm;
static cnd_t q_nonempty, q_nonfull;
static int q[16], q_head, q_len;
static long long q_sum;

static int q_producer(void *arg)
{
    for (int i = 1; i <= QN; i++) {
        mtx_lock(&qm);
        while (q_len == 16)
            cnd_wait(&q_nonfull, &qm);
        q[(q_head + q_len++) % 16] = i;
        cnd_signal(&q_nonempty);
        mtx_unlock(&qm);
    }
    return 0;
}

static int q_consumer(void *arg)
{
    for (int i = 0; i < QN; i++) {
        mtx_lock(&qm);
        while (q_len == 0)
            cnd_wait(&q_nonempty, &qm);
        q_sum += q[q_head];
        q_head = (q_head + 1) % 16;
        q_len--;
        cnd_signal(&q_nonfull);
        mtx_unlock(&qm);
    }
    return 0;
}

static void test_cnd(void)
{
    thrd_t a, b;
    printf("-- cnd\n");
    CHECK(mtx_init(&qm, mtx_plain) == thrd_success && cnd_init(&q_nonempty) == thrd_success &&
              cnd_init(&q_nonfull) == thrd_success,
          "init");
    CHECK(thrd_create(&a, q_consumer, NULL) == thrd_success && thrd_create(&b, q_producer, NULL) == thrd_success,
          "create");
    CHECK(thrd_join(a, NULL) == thrd_success && thrd_join(b, NULL) == thrd_success, "join");
    printf("producer/consumer sum: %lld (expected %lld)\n", q_sum, (long long)QN * (QN + 1) / 2);
    CHECK(q_sum == (long long)QN * (QN + 1) / 2, "sum");
    mtx_lock(&qm);
    struct timespec ts = ts_after(50);
    int r = cnd_timedwait(&q_nonempty, &qm, &ts);
    printf("cnd_timedwait +50ms: %s\n", tname(r));
    CHECK(r == thrd_timedout, "cnd_timedwait");
    mtx_unlock(&qm);
    cnd_destroy(&q_nonempty);
    cnd_destroy(&q_nonfull);
    mtx_destroy(&qm);
}

/* ---- misc ----------------------------------------------------------------------- */

static atomic_int detached_ran;
static thrd_t seen_current;
static int record_current(void *arg)
{
    seen_current = thrd_current();
    return 0;
}
static int detached_fn(void *arg)
{
    atomic_store(&detached_ran, 1);
    return 0;
}

static void test_misc(void)
{
    thrd_t t;
    printf("-- misc\n");
    CHECK(thrd_create(&t, record_current, NULL) == thrd_success, "create");
    CHECK(thrd_join(t, NULL) == thrd_success, "join");
    printf("thrd_equal(created, its thrd_current): %s\n", thrd_equal(t, seen_current) ? "true" : "false");
    printf("thrd_equal(main, created): %s\n", thrd_equal(thrd_current(), t) ? "true" : "false");
    CHECK(thrd_equal(t, seen_current) && !thrd_equal(thrd_current(), t), "thrd_equal");
    CHECK(thrd_create(&t, detached_fn, NULL) == thrd_success, "create");
    printf("thrd_detach: %s\n", tname(thrd_detach(t)));
    for (int i = 0; i < 10000 && !atomic_load(&detached_ran); i++)
        thrd_sleep(&(struct timespec){0, 1000000}, NULL);
    printf("detached thread ran: %s\n", atomic_load(&detached_ran) ? "yes" : "no");
    CHECK(atomic_load(&detached_ran), "detached thread never ran");
    struct timespec t0, t1;
    timespec_get(&t0, TIME_UTC);
    int r = thrd_sleep(&(struct timespec){0, 20000000}, NULL);
    timespec_get(&t1, TIME_UTC);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("thrd_sleep 20 ms: %d, not early: %s\n", r, ms >= 19.9 ? "yes" : "no");
    CHECK(r == 0 && ms >= 19.9, "thrd_sleep returned %d after %.3f ms", r, ms);
    thrd_yield();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_misc();
    test_mutexes();
    test_cnd();
    test_mixed();
    printf("done\n");
    return 0;
}
