/* exit_from_main: pthread_exit from main keeps the process alive.
 * gmp-test: mode=compare
 *
 * main creates 4 threads (2 joinable, 2 detached) and calls
 * pthread_exit(NULL). POSIX: the process lives on until the last thread
 * ends, then exits with status 0 as if exit(0) were called, so atexit
 * handlers run (exactly once) and stdio is flushed. Also checked: main's
 * pthread_cleanup_push handler and its TSD destructor run at its
 * pthread_exit; a thread can join main (value NULL) and joinable siblings
 * after main is gone. The threads run in a semaphore chain, so the output
 * order is deterministic; each also sleeps, so they outlive main by far.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/check.h"

#define N 4
static sem_t turn[N];
static pthread_t th[N], main_thread;
static int atexit_runs;

static void at_exit_handler(void)
{
    atexit_runs++;
    printf("atexit handler ran (run #%d)\n", atexit_runs);
    /* stdout is flushed by exit() after this returns. */
}

static void sem_wait_nointr(sem_t *s)
{
    while (sem_wait(s) != 0)
        CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    sem_wait_nointr(&turn[id]);
    usleep(50000);
    printf("thread %d: running after main's pthread_exit (%s)\n", id, id < 2 ? "joinable" : "detached");
    if (id == N - 1) {
        void *v = (void *)1;
        int r = pthread_join(main_thread, &v);
        printf("thread %d: join(main) = %d, value %s\n", id, r, v == NULL ? "NULL" : "non-NULL");
        for (int j = 0; j < 2; j++) {
            r = pthread_join(th[j], &v);
            printf("thread %d: join(thread %d) = %d, value %ld\n", id, j, r, (long)(intptr_t)v);
        }
        printf("thread %d: last thread returning\n", id);
    } else {
        CHECK(sem_post(&turn[id + 1]) == 0, "post");
    }
    return (void *)(intptr_t)(100 + id);
}

static void main_cleanup(void *arg) { printf("main: cleanup handler (%s)\n", (const char *)arg); }

static void main_tsd_dtor(void *v)
{
    printf("main: TSD destructor (%s)\n", (const char *)v);
    fflush(stdout);
    /* Only now let the chain start: all of main's output precedes it. */
    CHECK(sem_post(&turn[0]) == 0, "post");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_attr_t det;
    pthread_key_t key;

    CHECK(atexit(at_exit_handler) == 0, "atexit");
    main_thread = pthread_self();
    for (int i = 0; i < N; i++)
        CHECK(sem_init(&turn[i], 0, 0) == 0, "sem_init");
    CHECK(pthread_key_create(&key, main_tsd_dtor) == 0, "key_create");
    CHECK(pthread_setspecific(key, "main's value") == 0, "setspecific");
    CHECK(pthread_attr_init(&det) == 0, "attr_init");
    CHECK(pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED) == 0, "setdetachstate");
    printf("main: starting %d threads\n", N);
    for (intptr_t i = 0; i < N; i++)
        CHECK(pthread_create(&th[i], i < 2 ? NULL : &det, worker, (void *)i) == 0, "create");
    pthread_attr_destroy(&det);
    pthread_cleanup_push(main_cleanup, "runs at pthread_exit");
    printf("main: calling pthread_exit(NULL)\n");
    fflush(stdout);
    pthread_exit(NULL);
    pthread_cleanup_pop(0);
    printf("main: pthread_exit returned!\n");
    return 3;
}
