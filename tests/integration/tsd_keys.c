/* tsd_keys: thread-specific data (pthread_key_*).
 * gmp-test: mode=compare
 *
 * Checks (compare mode, deterministic counts):
 *   - values set in 16 threads are per thread; a new thread's getspecific
 *     returns NULL for every key, even keys main has set;
 *   - destructors run at thread exit (return or pthread_exit) exactly once
 *     per non-NULL value, in the exiting thread (pthread_self() and the
 *     thread's __thread variables are still its own), and never for NULL
 *     values (including values reset to NULL);
 *   - a destructor that re-sets its value is called again: twice re-set ->
 *     3 calls; always re-set -> PTHREAD_DESTRUCTOR_ITERATIONS calls, then it
 *     stops; a destructor that sets another key's value gets that one
 *     destroyed too;
 *   - more than 32 keys: 100 keys with distinct values in each thread, all
 *     destroyed;
 *   - pthread_key_delete: no destructor afterwards for a live thread's value;
 *     a key created after the delete reads NULL in that (already running)
 *     thread; pthread_key_delete of all keys returns 0;
 *   - main's own values are untouched by the threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/check.h"

#define NTHREADS 16
#define NMANY 100

struct tinfo {
    int id;
    pthread_t self;
};

static __thread int my_id = -1;
static struct tinfo infos[NTHREADS];
static pthread_key_t k_plain, k_null, k_reset_null, k_resets2, k_forever, k_chain_a, k_chain_b, k_many[NMANY];
static atomic_int calls_plain[NTHREADS], calls_resets2[NTHREADS], calls_forever[NTHREADS], calls_chain_a[NTHREADS],
    calls_chain_b[NTHREADS], calls_many[NTHREADS], calls_null, wrong_thread;

static void check_thread(struct tinfo *ti)
{
    if (!pthread_equal(pthread_self(), ti->self) || my_id != ti->id)
        atomic_fetch_add(&wrong_thread, 1);
}

static void dtor_plain(void *v)
{
    struct tinfo *ti = v;
    check_thread(ti);
    atomic_fetch_add(&calls_plain[ti->id], 1);
}

static void dtor_null(void *v) { atomic_fetch_add(&calls_null, 1); }

/* The value encodes (id, calls still to come); starts at 3: re-set twice. */
static void dtor_resets2(void *v)
{
    uintptr_t x = (uintptr_t)v;
    int id = (int)(x >> 8), left = (int)(x & 0xff);
    if (my_id != id)
        atomic_fetch_add(&wrong_thread, 1);
    atomic_fetch_add(&calls_resets2[id], 1);
    if (left > 1)
        pthread_setspecific(k_resets2, (void *)(((uintptr_t)id << 8) | (uintptr_t)(left - 1)));
}

static void dtor_forever(void *v)
{
    struct tinfo *ti = v;
    check_thread(ti);
    atomic_fetch_add(&calls_forever[ti->id], 1);
    pthread_setspecific(k_forever, v);
}

static void dtor_chain_b(void *v)
{
    struct tinfo *ti = v;
    check_thread(ti);
    atomic_fetch_add(&calls_chain_b[ti->id], 1);
}

static void dtor_chain_a(void *v)
{
    struct tinfo *ti = v;
    check_thread(ti);
    atomic_fetch_add(&calls_chain_a[ti->id], 1);
    pthread_setspecific(k_chain_b, v);
}

static void dtor_many(void *v)
{
    int id = (int)(((uintptr_t)v >> 20) & 0xff);
    if (my_id != id)
        atomic_fetch_add(&wrong_thread, 1);
    atomic_fetch_add(&calls_many[id], 1);
}

static void *many_value(int id, int k) { return (void *)(((uintptr_t)(id + 1) << 32) | ((uintptr_t)id << 20) | (uintptr_t)(k + 1)); }

static atomic_int nonnull_at_start, bad_values;

static void *worker(void *arg)
{
    struct tinfo *ti = arg;
    my_id = ti->id;
    ti->self = pthread_self();

    /* Fresh thread: everything NULL, even what main has set. */
    if (pthread_getspecific(k_plain) || pthread_getspecific(k_null) || pthread_getspecific(k_forever))
        atomic_fetch_add(&nonnull_at_start, 1);
    for (int k = 0; k < NMANY; k++)
        if (pthread_getspecific(k_many[k]))
            atomic_fetch_add(&nonnull_at_start, 1);

    CHECK(pthread_setspecific(k_plain, ti) == 0, "setspecific");
    CHECK(pthread_setspecific(k_null, NULL) == 0, "setspecific");
    CHECK(pthread_setspecific(k_reset_null, ti) == 0, "setspecific");
    CHECK(pthread_setspecific(k_resets2, (void *)(((uintptr_t)ti->id << 8) | 3)) == 0, "setspecific");
    CHECK(pthread_setspecific(k_forever, ti) == 0, "setspecific");
    CHECK(pthread_setspecific(k_chain_a, ti) == 0, "setspecific");
    for (int k = 0; k < NMANY; k++)
        CHECK(pthread_setspecific(k_many[k], many_value(ti->id, k)) == 0, "setspecific many %d", k);

    for (int round = 0; round < 50; round++) {
        sched_yield();
        usleep(100);
        if (pthread_getspecific(k_plain) != ti || pthread_getspecific(k_forever) != ti ||
            pthread_getspecific(k_null) != NULL)
            atomic_fetch_add(&bad_values, 1);
        for (int k = 0; k < NMANY; k++)
            if (pthread_getspecific(k_many[k]) != many_value(ti->id, k))
                atomic_fetch_add(&bad_values, 1);
    }
    CHECK(pthread_setspecific(k_reset_null, NULL) == 0, "setspecific");
    if (ti->id % 2)
        pthread_exit(NULL);
    return NULL;
}

/* ---- key_delete ------------------------------------------------------------- */

static pthread_key_t k_deleted, k_new;
static atomic_int del_calls, new_calls, del_stage;
static void *del_seen;
static void dtor_deleted(void *v) { atomic_fetch_add(&del_calls, 1); }
static void dtor_new(void *v) { atomic_fetch_add(&new_calls, 1); }

static void *del_worker(void *arg)
{
    CHECK(pthread_setspecific(k_deleted, (void *)1) == 0, "setspecific");
    atomic_store(&del_stage, 1);
    while (atomic_load(&del_stage) != 2)
        usleep(1000);
    del_seen = pthread_getspecific(k_new);      /* must be NULL */
    CHECK(pthread_setspecific(k_new, (void *)2) == 0, "setspecific new");
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_t th[NTHREADS];
    my_id = 1000;

    CHECK(pthread_key_create(&k_plain, dtor_plain) == 0, "key_create");
    CHECK(pthread_key_create(&k_null, dtor_null) == 0, "key_create");
    CHECK(pthread_key_create(&k_reset_null, dtor_null) == 0, "key_create");
    CHECK(pthread_key_create(&k_resets2, dtor_resets2) == 0, "key_create");
    CHECK(pthread_key_create(&k_forever, dtor_forever) == 0, "key_create");
    CHECK(pthread_key_create(&k_chain_a, dtor_chain_a) == 0, "key_create");
    CHECK(pthread_key_create(&k_chain_b, dtor_chain_b) == 0, "key_create");
    for (int k = 0; k < NMANY; k++) {
        int r = pthread_key_create(&k_many[k], dtor_many);
        CHECK(r == 0, "key_create #%d: %s", k, strerror(r));
    }
    int distinct = 1;
    for (int i = 0; i < NMANY; i++)
        for (int j = i + 1; j < NMANY; j++)
            if (k_many[i] == k_many[j])
                distinct = 0;
    printf("created %d keys, all distinct: %s\n", NMANY + 7, distinct ? "yes" : "no");
    CHECK(distinct, "duplicate key");

    /* main's own values; they must survive and not leak into threads */
    static struct tinfo main_info = {1000, 0};
    main_info.self = pthread_self();
    CHECK(pthread_setspecific(k_plain, &main_info) == 0, "setspecific");
    CHECK(pthread_setspecific(k_forever, &main_info) == 0, "setspecific");
    for (int k = 0; k < NMANY; k++)
        CHECK(pthread_setspecific(k_many[k], (void *)(uintptr_t)(0x77000 + k)) == 0, "setspecific");

    for (int i = 0; i < NTHREADS; i++) {
        infos[i].id = i;
        CHECK(pthread_create(&th[i], NULL, worker, &infos[i]) == 0, "create");
    }
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "join");

    printf("non-NULL values seen by fresh threads: %d\n", atomic_load(&nonnull_at_start));
    printf("wrong values read back: %d\n", atomic_load(&bad_values));
    printf("destructors run in the wrong thread: %d\n", atomic_load(&wrong_thread));
    printf("destructor calls for NULL values: %d\n", atomic_load(&calls_null));
    CHECK(atomic_load(&nonnull_at_start) == 0 && atomic_load(&bad_values) == 0 && atomic_load(&wrong_thread) == 0 &&
              atomic_load(&calls_null) == 0,
          "see above");
    for (int i = 0; i < NTHREADS; i++) {
        printf("thread %2d: plain %d, re-set twice %d, re-set always %d, chain a %d b %d, %d keys %d\n", i,
               atomic_load(&calls_plain[i]), atomic_load(&calls_resets2[i]), atomic_load(&calls_forever[i]),
               atomic_load(&calls_chain_a[i]), atomic_load(&calls_chain_b[i]), NMANY, atomic_load(&calls_many[i]));
        CHECK(atomic_load(&calls_plain[i]) == 1, "plain destructor calls");
        CHECK(atomic_load(&calls_resets2[i]) == 3, "re-set-twice destructor calls");
        CHECK(atomic_load(&calls_forever[i]) >= 1 && atomic_load(&calls_forever[i]) <= PTHREAD_DESTRUCTOR_ITERATIONS,
              "re-set-always destructor calls %d", atomic_load(&calls_forever[i]));
        CHECK(atomic_load(&calls_chain_a[i]) == 1 && atomic_load(&calls_chain_b[i]) == 1, "chained destructor calls");
        CHECK(atomic_load(&calls_many[i]) == NMANY, "destructor calls for the %d keys", NMANY);
    }
    printf("PTHREAD_DESTRUCTOR_ITERATIONS: %d\n", PTHREAD_DESTRUCTOR_ITERATIONS);

    /* main's values intact */
    int main_ok = pthread_getspecific(k_plain) == &main_info && pthread_getspecific(k_forever) == &main_info;
    for (int k = 0; k < NMANY; k++)
        if (pthread_getspecific(k_many[k]) != (void *)(uintptr_t)(0x77000 + k))
            main_ok = 0;
    printf("main's values intact: %s\n", main_ok ? "yes" : "no");
    CHECK(main_ok, "main's TSD values changed");
    CHECK(pthread_setspecific(k_plain, NULL) == 0 && pthread_setspecific(k_forever, NULL) == 0, "setspecific");

    /* key_delete while a thread holds a value */
    pthread_t t;
    CHECK(pthread_key_create(&k_deleted, dtor_deleted) == 0, "key_create");
    CHECK(pthread_create(&t, NULL, del_worker, NULL) == 0, "create");
    while (atomic_load(&del_stage) != 1)
        usleep(1000);
    printf("key_delete with a live thread's value: %d\n", pthread_key_delete(k_deleted));
    CHECK(pthread_key_create(&k_new, dtor_new) == 0, "key_create");
    atomic_store(&del_stage, 2);
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("deleted key's destructor calls: %d\n", atomic_load(&del_calls));
    printf("new key reads NULL in the running thread: %s\n", del_seen == NULL ? "yes" : "no");
    printf("new key's destructor calls: %d\n", atomic_load(&new_calls));
    CHECK(atomic_load(&del_calls) == 0 && del_seen == NULL && atomic_load(&new_calls) == 1, "key_delete semantics");

    int del_fail = 0;
    del_fail |= pthread_key_delete(k_plain) | pthread_key_delete(k_null) | pthread_key_delete(k_reset_null);
    del_fail |= pthread_key_delete(k_resets2) | pthread_key_delete(k_forever) | pthread_key_delete(k_chain_a);
    del_fail |= pthread_key_delete(k_chain_b) | pthread_key_delete(k_new);
    for (int k = 0; k < NMANY; k++)
        del_fail |= pthread_key_delete(k_many[k]);
    printf("key_delete of all keys: %s\n", del_fail ? "error" : "0");
    CHECK(!del_fail, "key_delete failed");
    printf("done\n");
    return 0;
}
