/* rwlock_semantics: pthread read-write locks.
 * gmp-test: mode=compare
 *
 * Checks (each result code printed by name, compare mode):
 *   - read concurrency: 4 reader threads each take the read lock and wait,
 *     while holding it, until all 4 are inside (an exclusive implementation
 *     would deadlock; the readers give up after 10 s and report);
 *   - writer exclusion: 2 writers bump a counter twice per write section
 *     (odd while inside) and 4 readers never see it odd or changing under a
 *     read lock; final value exact;
 *   - tryrdlock / trywrlock EBUSY against another thread's write lock,
 *     trywrlock EBUSY against another thread's read lock;
 *   - timedrdlock / timedwrlock ETIMEDOUT (~50 ms, not early), clockrdlock /
 *     clockwrlock with CLOCK_MONOTONIC and CLOCK_REALTIME (ETIMEDOUT and
 *     success), unsupported clock EINVAL;
 *   - wrlock twice by the same thread -> EDEADLK, rdlock while holding the
 *     write lock -> EDEADLK;
 *   - rwlockattr_setkind_np / getkind_np; with
 *     PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP a waiting writer blocks
 *     new readers (tryrdlock EBUSY, timedrdlock ETIMEDOUT) and gets the lock
 *     before them; with the default kind (prefer reader) a thread that
 *     already holds a read lock can take it again while a writer waits;
 *   - the static PTHREAD_RWLOCK_INITIALIZER.
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

/* ---- a helper thread that performs one lock operation on request ---------------- */

enum op { OP_NONE, OP_RDLOCK, OP_WRLOCK, OP_UNLOCK, OP_TRYRD, OP_TRYWR, OP_TIMEDRD50, OP_EXIT };

struct helper {
    pthread_t t;
    pthread_rwlock_t *l;
    int op;                     /* written before req_seq is bumped */
    atomic_int req_seq;         /* number of requests made */
    atomic_int started_seq;     /* number of requests started */
    atomic_int done_seq;        /* number of requests completed */
    int pending;                /* sequence number of the last request */
    int result;                 /* written before done_seq is bumped */
};

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    for (int handled = 0;; handled++) {
        while (atomic_load(&h->req_seq) == handled)
            usleep(500);
        int op = h->op;
        atomic_store(&h->started_seq, handled + 1);
        struct timespec ts;
        int r = -1;
        switch (op) {
        case OP_RDLOCK: r = pthread_rwlock_rdlock(h->l); break;
        case OP_WRLOCK: r = pthread_rwlock_wrlock(h->l); break;
        case OP_UNLOCK: r = pthread_rwlock_unlock(h->l); break;
        case OP_TRYRD: r = pthread_rwlock_tryrdlock(h->l); break;
        case OP_TRYWR: r = pthread_rwlock_trywrlock(h->l); break;
        case OP_TIMEDRD50:
            ts = ts_after(CLOCK_REALTIME, 50);
            r = pthread_rwlock_timedrdlock(h->l, &ts);
            if (r == ETIMEDOUT)
                CHECK(ts_reached(CLOCK_REALTIME, &ts), "helper timedrdlock returned before its deadline");
            break;
        case OP_EXIT: return NULL;
        }
        h->result = r;
        atomic_store(&h->done_seq, handled + 1);
    }
}

static void helper_start(struct helper *h, pthread_rwlock_t *l)
{
    memset(h, 0, sizeof *h);
    h->l = l;
    CHECK(pthread_create(&h->t, NULL, helper_main, h) == 0, "create helper");
}

static void helper_submit(struct helper *h, int op)
{
    CHECK(atomic_load(&h->done_seq) == atomic_load(&h->req_seq), "helper still busy");
    h->op = op;
    h->pending = atomic_fetch_add(&h->req_seq, 1) + 1;
}

static int helper_done(struct helper *h) { return atomic_load(&h->done_seq) >= h->pending; }

/* Wait up to 10 s for the last request to complete; return its result. */
static int helper_wait(struct helper *h)
{
    double t0 = mono_ms();
    while (!helper_done(h)) {
        CHECK(mono_ms() - t0 < 10000, "helper operation %d did not complete in 10 s", h->op);
        usleep(500);
    }
    return h->result;
}

static int helper_do(struct helper *h, int op)
{
    helper_submit(h, op);
    return helper_wait(h);
}

/* Request an operation that is expected to block; return once it has started
 * and had 100 ms to block. */
static void helper_begin(struct helper *h, int op)
{
    helper_submit(h, op);
    while (atomic_load(&h->started_seq) < h->pending)
        usleep(500);
    usleep(100000);
}

static void helper_stop(struct helper *h)
{
    helper_submit(h, OP_EXIT);
    CHECK(pthread_join(h->t, NULL) == 0, "join helper");
}

/* ---- read concurrency ---------------------------------------------------------- */

static pthread_rwlock_t s_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int inside, max_inside;

static void *conc_reader(void *arg)
{
    CHECK(pthread_rwlock_rdlock(&s_lock) == 0, "rdlock");
    int n = atomic_fetch_add(&inside, 1) + 1;
    int m = atomic_load(&max_inside);
    while (n > m && !atomic_compare_exchange_weak(&max_inside, &m, n))
        ;
    double t0 = mono_ms();
    while (atomic_load(&max_inside) < 4 && mono_ms() - t0 < 10000)
        usleep(1000);
    atomic_fetch_sub(&inside, 1);
    CHECK(pthread_rwlock_unlock(&s_lock) == 0, "unlock");
    return NULL;
}

static void test_read_concurrency(void)
{
    pthread_t t[4];
    printf("-- read concurrency\n");
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, conc_reader, NULL) == 0, "create");
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("readers inside at once: %d of 4\n", atomic_load(&max_inside));
    CHECK(atomic_load(&max_inside) == 4, "read lock is not shared");
}

/* ---- writer exclusion ---------------------------------------------------------- */

#define NWRITERS 2
#define NREADERS 4
#define WRITES 20000
#define READS 40000
static pthread_rwlock_t x_lock;
static volatile long x_value;
static atomic_long odd_seen, changed_seen;

static void *x_writer(void *arg)
{
    for (int i = 0; i < WRITES; i++) {
        pthread_rwlock_wrlock(&x_lock);
        x_value++;
        if ((i & 63) == 0)
            sched_yield();
        x_value++;
        pthread_rwlock_unlock(&x_lock);
    }
    return NULL;
}

static void *x_reader(void *arg)
{
    for (int i = 0; i < READS; i++) {
        pthread_rwlock_rdlock(&x_lock);
        long v = x_value;
        if (v & 1)
            atomic_fetch_add(&odd_seen, 1);
        if ((i & 63) == 0)
            sched_yield();
        if (x_value != v)
            atomic_fetch_add(&changed_seen, 1);
        pthread_rwlock_unlock(&x_lock);
    }
    return NULL;
}

static void test_exclusion(void)
{
    pthread_t w[NWRITERS], r[NREADERS];
    printf("-- writer exclusion\n");
    CHECK(pthread_rwlock_init(&x_lock, NULL) == 0, "init");
    for (int i = 0; i < NREADERS; i++)
        CHECK(pthread_create(&r[i], NULL, x_reader, NULL) == 0, "create");
    for (int i = 0; i < NWRITERS; i++)
        CHECK(pthread_create(&w[i], NULL, x_writer, NULL) == 0, "create");
    for (int i = 0; i < NWRITERS; i++)
        CHECK(pthread_join(w[i], NULL) == 0, "join");
    for (int i = 0; i < NREADERS; i++)
        CHECK(pthread_join(r[i], NULL) == 0, "join");
    printf("final value: %ld (expected %d)\n", x_value, 2 * NWRITERS * WRITES);
    printf("readers saw an odd value: %ld times; saw it change under the read lock: %ld times\n",
           atomic_load(&odd_seen), atomic_load(&changed_seen));
    CHECK(x_value == 2 * NWRITERS * WRITES && atomic_load(&odd_seen) == 0 && atomic_load(&changed_seen) == 0,
          "writer exclusion violated");
    CHECK(pthread_rwlock_destroy(&x_lock) == 0, "destroy");
}

/* ---- error codes -------------------------------------------------------------- */

static void test_codes(void)
{
    pthread_rwlock_t l;
    struct helper h;
    struct timespec ts;
    printf("-- try / timed / clock\n");
    EXPECT("rwlock_init", pthread_rwlock_init(&l, NULL), 0);
    helper_start(&h, &l);

    EXPECT("other thread: wrlock", helper_do(&h, OP_WRLOCK), 0);
    EXPECT("tryrdlock vs writer", pthread_rwlock_tryrdlock(&l), EBUSY);
    EXPECT("trywrlock vs writer", pthread_rwlock_trywrlock(&l), EBUSY);
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedrdlock +50ms vs writer", pthread_rwlock_timedrdlock(&l, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedrdlock returned before its deadline");
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedwrlock +50ms vs writer", pthread_rwlock_timedwrlock(&l, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedwrlock returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockrdlock MONOTONIC +50ms vs writer", pthread_rwlock_clockrdlock(&l, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "clockrdlock returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockwrlock MONOTONIC +50ms vs writer", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "clockwrlock returned before its deadline");
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("clockwrlock REALTIME +50ms vs writer", pthread_rwlock_clockwrlock(&l, CLOCK_REALTIME, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "clockwrlock returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockrdlock CLOCK_PROCESS_CPUTIME_ID", pthread_rwlock_clockrdlock(&l, CLOCK_PROCESS_CPUTIME_ID, &ts),
           EINVAL);
    EXPECT("clockwrlock CLOCK_PROCESS_CPUTIME_ID", pthread_rwlock_clockwrlock(&l, CLOCK_PROCESS_CPUTIME_ID, &ts),
           EINVAL);
    ts.tv_nsec = 1000000000L;
    EXPECT("timedwrlock tv_nsec=1e9 vs writer", pthread_rwlock_timedwrlock(&l, &ts), EINVAL);
    EXPECT("other thread: unlock", helper_do(&h, OP_UNLOCK), 0);

    EXPECT("other thread: rdlock", helper_do(&h, OP_RDLOCK), 0);
    EXPECT("tryrdlock vs reader", pthread_rwlock_tryrdlock(&l), 0);
    EXPECT("  unlock", pthread_rwlock_unlock(&l), 0);
    EXPECT("trywrlock vs reader", pthread_rwlock_trywrlock(&l), EBUSY);
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedwrlock +50ms vs reader", pthread_rwlock_timedwrlock(&l, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedwrlock returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockwrlock MONOTONIC +50ms vs reader", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedrdlock +50ms vs reader", pthread_rwlock_timedrdlock(&l, &ts), 0);
    EXPECT("  unlock", pthread_rwlock_unlock(&l), 0);
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockrdlock MONOTONIC vs reader", pthread_rwlock_clockrdlock(&l, CLOCK_MONOTONIC, &ts), 0);
    EXPECT("  unlock", pthread_rwlock_unlock(&l), 0);
    EXPECT("other thread: unlock", helper_do(&h, OP_UNLOCK), 0);

    /* A blocked writer is woken when the reader leaves. */
    EXPECT("rdlock", pthread_rwlock_rdlock(&l), 0);
    helper_begin(&h, OP_WRLOCK);
    printf("other thread's wrlock blocked while we read: %s\n", helper_done(&h) ? "no" : "yes");
    CHECK(!helper_done(&h), "writer got in while a reader held the lock");
    EXPECT("unlock (writer waiting)", pthread_rwlock_unlock(&l), 0);
    EXPECT("other thread's wrlock after reader left", helper_wait(&h), 0);
    EXPECT("other thread: unlock", helper_do(&h, OP_UNLOCK), 0);

    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockwrlock MONOTONIC on free lock", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts), 0);
    EXPECT("wrlock again by the writer", pthread_rwlock_wrlock(&l), EDEADLK);
    EXPECT("rdlock by the writer", pthread_rwlock_rdlock(&l), EDEADLK);
    EXPECT("trywrlock by the writer", pthread_rwlock_trywrlock(&l), EBUSY);
    EXPECT("unlock", pthread_rwlock_unlock(&l), 0);
    ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedwrlock on free lock", pthread_rwlock_timedwrlock(&l, &ts), 0);
    EXPECT("unlock", pthread_rwlock_unlock(&l), 0);

    helper_stop(&h);
    EXPECT("rwlock_destroy", pthread_rwlock_destroy(&l), 0);
}

/* ---- kinds ------------------------------------------------------------------------- */

static void test_kinds(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlock_t l;
    struct helper writer, reader2;
    int kind = -1;
    struct timespec ts;

    printf("-- kinds\n");
    EXPECT("rwlockattr_init", pthread_rwlockattr_init(&a), 0);
    EXPECT("rwlockattr_getkind_np (default)", pthread_rwlockattr_getkind_np(&a, &kind), 0);
    printf("default kind is PREFER_READER_NP: %s\n", kind == PTHREAD_RWLOCK_PREFER_READER_NP ? "yes" : "no");
    EXPECT("rwlockattr_setkind_np(12345)", pthread_rwlockattr_setkind_np(&a, 12345), EINVAL);

    /* Default kind: a reader may re-enter while a writer waits. */
    EXPECT("rwlock_init (default kind)", pthread_rwlock_init(&l, &a), 0);
    helper_start(&writer, &l);
    EXPECT("rdlock", pthread_rwlock_rdlock(&l), 0);
    helper_begin(&writer, OP_WRLOCK);
    CHECK(!helper_done(&writer), "writer got in while a reader held the lock");
    ts = ts_after(CLOCK_REALTIME, 2000);
    EXPECT("prefer-reader: recursive timedrdlock while writer waits", pthread_rwlock_timedrdlock(&l, &ts), 0);
    EXPECT("unlock", pthread_rwlock_unlock(&l), 0);
    EXPECT("unlock", pthread_rwlock_unlock(&l), 0);
    EXPECT("writer acquires", helper_wait(&writer), 0);
    EXPECT("writer unlocks", helper_do(&writer, OP_UNLOCK), 0);
    helper_stop(&writer);
    EXPECT("rwlock_destroy", pthread_rwlock_destroy(&l), 0);

    /* Writer-preferring kind: a waiting writer blocks new readers. */
    EXPECT("rwlockattr_setkind_np(PREFER_WRITER_NONRECURSIVE_NP)",
           pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), 0);
    EXPECT("rwlockattr_getkind_np", pthread_rwlockattr_getkind_np(&a, &kind), 0);
    printf("kind is PREFER_WRITER_NONRECURSIVE_NP: %s\n",
           kind == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP ? "yes" : "no");
    EXPECT("rwlock_init (prefer writer)", pthread_rwlock_init(&l, &a), 0);
    helper_start(&writer, &l);
    helper_start(&reader2, &l);
    EXPECT("rdlock", pthread_rwlock_rdlock(&l), 0);
    EXPECT("second reader tryrdlock, no writer waiting", helper_do(&reader2, OP_TRYRD), 0);
    EXPECT("second reader unlock", helper_do(&reader2, OP_UNLOCK), 0);
    helper_begin(&writer, OP_WRLOCK);
    CHECK(!helper_done(&writer), "writer got in while a reader held the lock");
    EXPECT("prefer-writer: new reader tryrdlock while writer waits", helper_do(&reader2, OP_TRYRD), EBUSY);
    EXPECT("prefer-writer: new reader timedrdlock +50ms while writer waits", helper_do(&reader2, OP_TIMEDRD50),
           ETIMEDOUT);
    helper_begin(&reader2, OP_RDLOCK);      /* queues behind the writer */
    CHECK(!helper_done(&reader2), "new reader got in while a writer waited");
    EXPECT("first reader unlocks", pthread_rwlock_unlock(&l), 0);
    EXPECT("waiting writer acquires", helper_wait(&writer), 0);
    usleep(50000);
    printf("new reader still blocked while writer holds: %s\n", helper_done(&reader2) ? "no" : "yes");
    CHECK(!helper_done(&reader2), "reader got in while the writer held the lock");
    EXPECT("writer unlocks", helper_do(&writer, OP_UNLOCK), 0);
    EXPECT("new reader acquires after the writer", helper_wait(&reader2), 0);
    EXPECT("new reader unlocks", helper_do(&reader2, OP_UNLOCK), 0);
    helper_stop(&writer);
    helper_stop(&reader2);
    EXPECT("rwlock_destroy", pthread_rwlock_destroy(&l), 0);
    EXPECT("rwlockattr_destroy", pthread_rwlockattr_destroy(&a), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_read_concurrency();
    test_exclusion();
    test_codes();
    test_kinds();
    printf("done\n");
    return 0;
}
