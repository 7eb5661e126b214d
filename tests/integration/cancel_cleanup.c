/* cancel_cleanup: pthread_cancel, cancellation points, cleanup handlers.
 * gmp-test: mode=compare
 *
 * (With GMP_MAXPROCS=1, the last case, cancelling a thread spinning in a
 * pure compute loop, relies on asynchronous preemption: the canceller only
 * runs once the spinner has been preempted.)
 *
 * Deferred cancellation of threads blocked in: pthread_cond_wait (the mutex
 * is re-acquired before the cleanup handlers run, and a handler unlocks it),
 * nanosleep, sleep, sem_wait, pthread_join, read() on an empty pipe,
 * accept() on a listening socket, recv() on a socket, poll(), and
 * pthread_testcancel. Checks that pthread_join returns PTHREAD_CANCELED,
 * that cleanup handlers run in LIFO order before TSD destructors,
 * pthread_cleanup_pop(1) runs a handler and pop(0) does not,
 * PTHREAD_CANCEL_DISABLE defers a cancel until re-enabled, pthread_cancel of
 * a finished (unjoined) thread returns 0, and finally asynchronous
 * cancellation of a thread spinning in a pure compute loop. Each thread
 * records what ran in its own log, printed by main after the join, so the
 * output is deterministic.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/check.h"

struct ctx {
    const char *kind;
    char log[256];
    atomic_int ready;
};

static pthread_key_t key;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t never_sem;
static int never_pipe[2];
static int never_listener = -1, never_sock[2];
static pthread_t never_ending;

static void logf_(struct ctx *c, const char *s)
{
    size_t l = strlen(c->log);
    snprintf(c->log + l, sizeof c->log - l, "%s%s", l ? " " : "", s);
}

static void cleanup_outer(void *arg) { logf_(arg, "cleanup-outer"); }
static void cleanup_inner(void *arg) { logf_(arg, "cleanup-inner"); }
static void cleanup_unlock(void *arg)
{
    struct ctx *c = arg;
    /* pthread_cond_wait re-acquires the mutex before the cleanup handlers
     * run; main checks afterwards that this unlock really freed it. */
    int r = pthread_mutex_unlock(&mu);
    logf_(c, r == 0 ? "cleanup-unlock-ok" : "cleanup-unlock-FAILED");
}
static void tsd_dtor(void *arg) { logf_(arg, "tsd-destructor"); }

static void *victim(void *arg)
{
    struct ctx *c = arg;
    CHECK(pthread_setspecific(key, c) == 0, "setspecific");
    pthread_cleanup_push(cleanup_outer, c);
    pthread_cleanup_push(cleanup_inner, c);
    if (strcmp(c->kind, "cond_wait") == 0) {
        pthread_mutex_lock(&mu);
        pthread_cleanup_push(cleanup_unlock, c);
        atomic_store(&c->ready, 1);
        for (;;)
            pthread_cond_wait(&cv, &mu);
        pthread_cleanup_pop(0);
    } else {
        atomic_store(&c->ready, 1);
        if (strcmp(c->kind, "nanosleep") == 0) {
            struct timespec ts = {100, 0};
            nanosleep(&ts, NULL);
        } else if (strcmp(c->kind, "sleep") == 0) {
            sleep(100);
        } else if (strcmp(c->kind, "sem_wait") == 0) {
            sem_wait(&never_sem);
        } else if (strcmp(c->kind, "join") == 0) {
            pthread_join(never_ending, NULL);
        } else if (strcmp(c->kind, "read") == 0) {
            char b;
            ssize_t r = read(never_pipe[0], &b, 1);
            (void)r;
        } else if (strcmp(c->kind, "accept") == 0) {
            int r = accept(never_listener, NULL, NULL);
            (void)r;
        } else if (strcmp(c->kind, "recv") == 0) {
            char b;
            ssize_t r = recv(never_sock[0], &b, 1, 0);
            (void)r;
        } else if (strcmp(c->kind, "poll") == 0) {
            struct pollfd p = {never_sock[0], POLLIN, 0};
            int r = poll(&p, 1, -1);
            (void)r;
        } else if (strcmp(c->kind, "testcancel") == 0) {
            for (;;) {
                pthread_testcancel();
                sched_yield();
            }
        }
        logf_(c, "NOT-CANCELLED");
    }
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

static sem_t forever_sem;
static void *forever(void *arg)
{
    for (;;)
        sem_wait(&forever_sem);     /* never posted */
    return NULL;
}

static void run_case(const char *kind)
{
    struct ctx *c = calloc(1, sizeof *c);
    pthread_t t;
    void *ret = NULL;
    c->kind = kind;
    CHECK(pthread_create(&t, NULL, victim, c) == 0, "create");
    while (!atomic_load(&c->ready))
        usleep(1000);
    usleep(30000);              /* let it block in the cancellation point */
    printf("-- cancelling a thread blocked in %s\n", kind);
    int r = pthread_cancel(t);
    CHECK(pthread_join(t, &ret) == 0, "join");
    printf("%-12s cancel=%d joined=%s log: %s\n", kind, r, ret == PTHREAD_CANCELED ? "CANCELED" : "not-canceled",
           c->log);
    CHECK(r == 0 && ret == PTHREAD_CANCELED, "%s", kind);
    free(c);
}

/* cleanup_pop(1) runs the handler, pop(0) does not; DISABLE defers. */
static atomic_int disabled_stage;
static void *disabled_victim(void *arg)
{
    struct ctx *c = arg;
    int old;
    pthread_cleanup_push(cleanup_outer, c);
    pthread_cleanup_pop(1);
    pthread_cleanup_push(cleanup_inner, c);
    pthread_cleanup_pop(0);
    CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0, "setcancelstate");
    logf_(c, old == PTHREAD_CANCEL_ENABLE ? "was-enabled" : "was-not-enabled");
    atomic_store(&disabled_stage, 1);
    while (atomic_load(&disabled_stage) != 2)
        usleep(1000);
    usleep(20000);              /* a cancellation point while disabled */
    logf_(c, "survived-while-disabled");
    CHECK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old) == 0, "setcancelstate");
    pthread_cleanup_push(cleanup_outer, c);
    pthread_testcancel();
    logf_(c, "NOT-CANCELLED");
    pthread_cleanup_pop(0);
    return NULL;
}

static void *quick(void *arg) { return (void *)5; }

static atomic_long spins;
static void *async_victim(void *arg)
{
    struct ctx *c = arg;
    int old;
    CHECK(pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old) == 0, "setcanceltype");
    pthread_cleanup_push(cleanup_outer, c);
    atomic_store(&c->ready, 1);
    for (;;)
        atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed);
    pthread_cleanup_pop(0);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    CHECK(pthread_key_create(&key, tsd_dtor) == 0, "key_create");
    CHECK(sem_init(&never_sem, 0, 0) == 0 && sem_init(&forever_sem, 0, 0) == 0, "sem_init");
    CHECK(pipe(never_pipe) == 0, "pipe");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, never_sock) == 0, "socketpair");
    never_listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(never_listener, (struct sockaddr *)&la, sizeof la) == 0, "bind");
    CHECK(listen(never_listener, 4) == 0, "listen");
    CHECK(pthread_create(&never_ending, NULL, forever, NULL) == 0, "create");

    const char *kinds[] = {"cond_wait", "nanosleep", "sleep", "sem_wait", "join", "read", "accept", "recv", "poll", "testcancel"};
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        run_case(kinds[i]);
    /* The mutex the cond_wait victim held must have been released. */
    int r = pthread_mutex_trylock(&mu);
    printf("mutex free after cond_wait cancellation: %s\n", r == 0 ? "yes" : "no");
    CHECK(r == 0, "mutex still locked");
    pthread_mutex_unlock(&mu);

    struct ctx dc = {.kind = "disabled"};
    pthread_t t;
    void *ret;
    CHECK(pthread_create(&t, NULL, disabled_victim, &dc) == 0, "create");
    while (atomic_load(&disabled_stage) != 1)
        usleep(1000);
    r = pthread_cancel(t);
    atomic_store(&disabled_stage, 2);
    CHECK(pthread_join(t, &ret) == 0, "join");
    printf("%-12s cancel=%d joined=%s log: %s\n", "disabled", r, ret == PTHREAD_CANCELED ? "CANCELED" : "not-canceled",
           dc.log);
    CHECK(ret == PTHREAD_CANCELED, "disabled case");

    CHECK(pthread_create(&t, NULL, quick, NULL) == 0, "create");
    usleep(20000);
    r = pthread_cancel(t);
    CHECK(pthread_join(t, &ret) == 0, "join");
    printf("cancel of a finished thread: %d, join value %ld\n", r, (long)(intptr_t)ret);

    struct ctx ac = {.kind = "async"};
    CHECK(pthread_create(&t, NULL, async_victim, &ac) == 0, "create");
    while (!atomic_load(&ac.ready))
        usleep(1000);
    usleep(30000);
    r = pthread_cancel(t);
    CHECK(pthread_join(t, &ret) == 0, "join");
    printf("%-12s cancel=%d joined=%s log: %s\n", "async", r, ret == PTHREAD_CANCELED ? "CANCELED" : "not-canceled",
           ac.log);
    CHECK(ret == PTHREAD_CANCELED, "async case");
    printf("done\n");
    return 0;
}
