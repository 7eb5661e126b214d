/* barrier_once_spin: pthread barriers, pthread_once and spin locks.
 * gmp-test: mode=compare
 *
 * Checks (compare mode, deterministic output):
 *   - pthread_barrier with 8 threads x 1,000 rounds: nobody leaves a round
 *     before all 8 arrived (per-round arrival counters), exactly one
 *     PTHREAD_BARRIER_SERIAL_THREAD per round, all others get 0; a barrier
 *     of count 1 returns SERIAL immediately; count 0 -> EINVAL;
 *   - pthread_once from 32 threads: the init routine runs exactly once, and
 *     every caller returns only after it has completed (it sleeps 20 ms);
 *     two different once controls are independent; a once routine may call
 *     pthread_once on another control;
 *   - pthread_spin_lock: 8 threads x 100,000 increments exact; spin_trylock
 *     EBUSY while another thread holds the lock, 0 when free.
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

/* ename, plus the barrier's serial-thread return value */
static const char *rname(int e)
{
    return e == PTHREAD_BARRIER_SERIAL_THREAD ? "PTHREAD_BARRIER_SERIAL_THREAD" : ename(e);
}

static void expect_(const char *label, int got, int want, int line)
{
    printf("%s: %s\n", label, rname(got));
    if (got != want) {
        fflush(stdout);
        fprintf(stderr, "FAIL line %d: %s: got %s, expected %s\n", line, label, rname(got), rname(want));
        exit(1);
    }
}
#define EXPECT(label, expr, want) expect_((label), (expr), (want), __LINE__)

/* ---- barrier ---------------------------------------------------------------- */

#define BTHREADS 8
#define ROUNDS 1000
static pthread_barrier_t bar;
static atomic_int arrivals[ROUNDS], serials[ROUNDS], early_leavers[ROUNDS];
static atomic_int bad_returns;

static void *bar_thread(void *arg)
{
    for (int r = 0; r < ROUNDS; r++) {
        atomic_fetch_add(&arrivals[r], 1);
        if ((r + (int)(long)arg) % 7 == 0)
            sched_yield();
        int rc = pthread_barrier_wait(&bar);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&serials[r], 1);
        else if (rc != 0)
            atomic_fetch_add(&bad_returns, 1);
        if (atomic_load(&arrivals[r]) != BTHREADS)
            atomic_fetch_add(&early_leavers[r], 1);
    }
    return NULL;
}

static void test_barrier(void)
{
    pthread_barrier_t b1;
    pthread_barrierattr_t ba;
    pthread_t t[BTHREADS];
    printf("-- barrier\n");
    EXPECT("barrier_init count 0", pthread_barrier_init(&b1, NULL, 0), EINVAL);
    EXPECT("barrierattr_init", pthread_barrierattr_init(&ba), 0);
    EXPECT("barrier_init count 1", pthread_barrier_init(&b1, &ba, 1), 0);
    EXPECT("barrier_wait count 1", pthread_barrier_wait(&b1), PTHREAD_BARRIER_SERIAL_THREAD);
    EXPECT("barrier_wait count 1 again", pthread_barrier_wait(&b1), PTHREAD_BARRIER_SERIAL_THREAD);
    EXPECT("barrier_destroy", pthread_barrier_destroy(&b1), 0);
    EXPECT("barrierattr_destroy", pthread_barrierattr_destroy(&ba), 0);

    EXPECT("barrier_init count 8", pthread_barrier_init(&bar, NULL, BTHREADS), 0);
    for (long i = 0; i < BTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, bar_thread, (void *)i) == 0, "create");
    for (int i = 0; i < BTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    int rounds_one_serial = 0, early = 0;
    for (int r = 0; r < ROUNDS; r++) {
        if (atomic_load(&serials[r]) == 1)
            rounds_one_serial++;
        else
            fprintf(stderr, "round %d had %d serial threads\n", r, atomic_load(&serials[r]));
        early += atomic_load(&early_leavers[r]);
    }
    printf("rounds: %d, rounds with exactly one SERIAL_THREAD: %d\n", ROUNDS, rounds_one_serial);
    printf("threads that left a round before all arrived: %d\n", early);
    printf("unexpected return codes: %d\n", atomic_load(&bad_returns));
    CHECK(rounds_one_serial == ROUNDS && early == 0 && atomic_load(&bad_returns) == 0, "barrier");
    EXPECT("barrier_destroy", pthread_barrier_destroy(&bar), 0);
}

/* ---- once ----------------------------------------------------------------- */

#define OTHREADS 32
static pthread_once_t once_a = PTHREAD_ONCE_INIT, once_b = PTHREAD_ONCE_INIT, once_inner = PTHREAD_ONCE_INIT;
static atomic_int runs_a, runs_b, runs_inner, done_a;
static atomic_int saw_incomplete;

static void init_inner(void) { atomic_fetch_add(&runs_inner, 1); }

static void init_a(void)
{
    atomic_fetch_add(&runs_a, 1);
    usleep(20000);              /* others must wait for this to finish */
    pthread_once(&once_inner, init_inner);
    atomic_store(&done_a, 1);
}

static void init_b(void) { atomic_fetch_add(&runs_b, 1); }

static void *once_thread(void *arg)
{
    CHECK(pthread_once(&once_a, init_a) == 0, "pthread_once");
    if (!atomic_load(&done_a))
        atomic_fetch_add(&saw_incomplete, 1);
    CHECK(pthread_once(&once_b, init_b) == 0, "pthread_once");
    return NULL;
}

static void test_once(void)
{
    pthread_t t[OTHREADS];
    printf("-- once\n");
    for (int i = 0; i < OTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, once_thread, NULL) == 0, "create");
    for (int i = 0; i < OTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    EXPECT("pthread_once again from main", pthread_once(&once_a, init_a), 0);
    printf("init routine runs: a=%d b=%d inner=%d\n", atomic_load(&runs_a), atomic_load(&runs_b),
           atomic_load(&runs_inner));
    printf("callers that returned before init completed: %d\n", atomic_load(&saw_incomplete));
    CHECK(atomic_load(&runs_a) == 1 && atomic_load(&runs_b) == 1 && atomic_load(&runs_inner) == 1, "once ran != 1");
    CHECK(atomic_load(&saw_incomplete) == 0, "pthread_once returned before the init routine completed");
}

/* ---- spin lock --------------------------------------------------------------- */

#define STHREADS 8
#define SITERS 100000
static pthread_spinlock_t spin;
static long spin_counter;

static void *spin_thread(void *arg)
{
    for (int i = 0; i < SITERS; i++) {
        pthread_spin_lock(&spin);
        long c = spin_counter;
        __asm__ volatile("" ::: "memory");
        spin_counter = c + 1;
        pthread_spin_unlock(&spin);
    }
    return NULL;
}

static void *spin_try_thread(void *arg) { return (void *)(long)pthread_spin_trylock(&spin); }

static int spin_trylock_in_other_thread(void)
{
    pthread_t t;
    void *r;
    CHECK(pthread_create(&t, NULL, spin_try_thread, NULL) == 0, "create");
    CHECK(pthread_join(t, &r) == 0, "join");
    return (int)(long)r;
}

static void test_spin(void)
{
    pthread_t t[STHREADS];
    printf("-- spin lock\n");
    EXPECT("spin_init", pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE), 0);
    EXPECT("spin_lock", pthread_spin_lock(&spin), 0);
    EXPECT("spin_trylock by other thread while held", spin_trylock_in_other_thread(), EBUSY);
    EXPECT("spin_unlock", pthread_spin_unlock(&spin), 0);
    EXPECT("spin_trylock by other thread when free", spin_trylock_in_other_thread(), 0);
    /* That thread exited holding it; spin locks have no owner, so unlock here. */
    EXPECT("spin_trylock by main (held by dead thread)", pthread_spin_trylock(&spin), EBUSY);
    EXPECT("spin_unlock", pthread_spin_unlock(&spin), 0);
    EXPECT("spin_trylock when free", pthread_spin_trylock(&spin), 0);
    EXPECT("spin_unlock", pthread_spin_unlock(&spin), 0);
    for (int i = 0; i < STHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, spin_thread, NULL) == 0, "create");
    for (int i = 0; i < STHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("spin counter: %ld (expected %d)\n", spin_counter, STHREADS * SITERS);
    CHECK(spin_counter == STHREADS * SITERS, "spin counter");
    EXPECT("spin_destroy", pthread_spin_destroy(&spin), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_barrier();
    test_once();
    test_spin();
    printf("done\n");
    return 0;
}
