/* signals: thread-directed signals, per-thread masks, interrupted sleeps.
 * gmp-test: mode=compare
 *
 * Under libgmp a "thread" is a G that may run on any OS thread, yet signal
 * semantics are per thread. Checks:
 *   - pthread_kill(t, SIGUSR1) runs the handler in thread t (the handler sees
 *     t's pthread_self() and t's __thread variables), and in no other thread;
 *   - raise() in a thread runs the handler in that thread before returning;
 *   - a new thread inherits its creator's signal mask;
 *   - a process-directed kill(getpid(), SIGUSR2) is handled by the one thread
 *     that does not block SIGUSR2;
 *   - sigwait() in a dedicated thread receives a process-directed signal
 *     blocked everywhere;
 *   - nanosleep interrupted by pthread_kill returns -1/EINTR with a
 *     plausible remaining time (even with SA_RESTART); sem_wait interrupted
 *     by a handler installed without SA_RESTART returns -1/EINTR;
 *   - pthread_kill(t, 0) = 0 for a live thread, pthread_kill with an invalid
 *     signal number = EINVAL.
 * Deterministic output.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static __thread volatile sig_atomic_t usr1_hits;
static __thread int my_id = -1;
static pthread_t ids[8];
static atomic_int wrong_thread_in_handler, usr2_handled_by = -100;

static void on_usr1(int sig)
{
    int saved = errno;
    usr1_hits++;
    if (my_id >= 0 && !pthread_equal(pthread_self(), ids[my_id]))
        atomic_fetch_add(&wrong_thread_in_handler, 1);
    errno = saved;
}

static void on_usr2(int sig) { atomic_store(&usr2_handled_by, my_id); }

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- pthread_kill targets ----------------------------------------------------- */

#define NT 4
static atomic_int stage[NT], hits_seen[NT], raise_ok[NT];

static void *target(void *arg)
{
    int id = (int)(intptr_t)arg;
    my_id = id;
    ids[id] = pthread_self();
    /* raise() is synchronous for the calling thread */
    int before = usr1_hits;
    CHECK(raise(SIGUSR1) == 0, "raise");
    atomic_store(&raise_ok[id], usr1_hits == before + 1);
    atomic_store(&stage[id], 1);
    double t0 = mono_ms();
    while (usr1_hits < 2 && mono_ms() - t0 < 5000 * (id + 1))
        usleep(1000);
    atomic_store(&hits_seen[id], usr1_hits);
    while (atomic_load(&stage[id]) != 2)       /* stay alive until all are done */
        usleep(1000);
    atomic_store(&hits_seen[id], usr1_hits);    /* nobody else's signal came here */
    return NULL;
}

static void test_pthread_kill(void)
{
    pthread_t t[NT];
    printf("-- pthread_kill\n");
    for (intptr_t i = 0; i < NT; i++)
        CHECK(pthread_create(&t[i], NULL, target, (void *)i) == 0, "create");
    for (int i = 0; i < NT; i++)
        while (atomic_load(&stage[i]) != 1)
            usleep(1000);
    for (int i = 0; i < NT; i++) {
        CHECK(pthread_kill(t[i], SIGUSR1) == 0, "pthread_kill");
        double t0 = mono_ms();
        while (atomic_load(&hits_seen[i]) < 2 && mono_ms() - t0 < 5000)
            usleep(1000);
    }
    printf("pthread_kill(t, 0) on a live thread: %d\n", pthread_kill(t[0], 0));
    printf("pthread_kill(t, 12345): %s\n", pthread_kill(t[0], 12345) == EINVAL ? "EINVAL" : "other");
    for (int i = 0; i < NT; i++)
        atomic_store(&stage[i], 2);
    for (int i = 0; i < NT; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    for (int i = 0; i < NT; i++) {
        printf("thread %d: raise handled synchronously: %s; SIGUSR1 handler runs in it: %d (expected 2)\n", i,
               atomic_load(&raise_ok[i]) ? "yes" : "no", atomic_load(&hits_seen[i]));
        CHECK(atomic_load(&raise_ok[i]) && atomic_load(&hits_seen[i]) == 2, "thread %d", i);
    }
    printf("handler saw a foreign pthread_self: %d\n", atomic_load(&wrong_thread_in_handler));
    CHECK(atomic_load(&wrong_thread_in_handler) == 0, "handler ran with another thread's identity");
}

/* ---- masks ---------------------------------------------------------------------- */

static atomic_int mask_stage;
static atomic_int inherited;

static void *mask_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    my_id = id;
    sigset_t cur;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0, "sigmask");
    if (sigismember(&cur, SIGUSR2))
        atomic_fetch_add(&inherited, 1);
    if (id == 1) {              /* thread 1 unblocks SIGUSR2 */
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR2);
        CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0, "unblock");
    }
    atomic_fetch_add(&mask_stage, 1);
    while (atomic_load(&mask_stage) < 100)
        usleep(1000);
    return NULL;
}

static void test_masks(void)
{
    pthread_t t[3];
    sigset_t s, old;
    printf("-- masks\n");
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, &old) == 0, "block");
    for (intptr_t i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, mask_thread, (void *)i) == 0, "create");
    while (atomic_load(&mask_stage) < 3)
        usleep(1000);
    printf("threads that inherited the blocked SIGUSR2: %d of 3\n", atomic_load(&inherited));
    CHECK(atomic_load(&inherited) == 3, "mask not inherited");
    CHECK(kill(getpid(), SIGUSR2) == 0, "kill");
    double t0 = mono_ms();
    while (atomic_load(&usr2_handled_by) == -100 && mono_ms() - t0 < 10000)
        usleep(1000);
    printf("process-directed SIGUSR2 handled by thread: %d (the only one not blocking it: 1)\n",
           atomic_load(&usr2_handled_by));
    CHECK(atomic_load(&usr2_handled_by) == 1, "wrong thread handled SIGUSR2");
    atomic_store(&mask_stage, 100);
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "join");
    /* SIGUSR2 stays blocked in main for the sigwait test */
}

/* ---- sigwait ----------------------------------------------------------------------- */

static void *waiter(void *arg)
{
    sigset_t s;
    int sig = 0;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    int r = sigwait(&s, &sig);
    return (void *)(intptr_t)(r == 0 ? sig : -r);
}

static void test_sigwait(void)
{
    pthread_t t;
    void *ret;
    printf("-- sigwait\n");
    CHECK(pthread_create(&t, NULL, waiter, NULL) == 0, "create");     /* inherits SIGUSR2 blocked */
    usleep(30000);
    CHECK(kill(getpid(), SIGUSR2) == 0, "kill");
    CHECK(pthread_join(t, &ret) == 0, "join");
    printf("sigwait returned signal: %s\n", (intptr_t)ret == SIGUSR2 ? "SIGUSR2" : "other");
    CHECK((intptr_t)ret == SIGUSR2, "sigwait got %ld", (long)(intptr_t)ret);
}

/* ---- EINTR ------------------------------------------------------------------------- */

static atomic_int intr_ready, intr_done;
static int intr_rc, intr_errno;
static struct timespec intr_rem;
static sem_t intr_sem;

static void *sleeper(void *arg)
{
    my_id = 7;
    ids[7] = pthread_self();
    struct timespec req = {2, 0};
    atomic_store(&intr_ready, 1);
    intr_rc = nanosleep(&req, &intr_rem);
    intr_errno = errno;
    atomic_store(&intr_done, 1);
    return NULL;
}

static void *sem_sleeper(void *arg)
{
    my_id = 7;
    ids[7] = pthread_self();
    atomic_store(&intr_ready, 1);
    intr_rc = sem_wait(&intr_sem);
    intr_errno = errno;
    atomic_store(&intr_done, 1);
    return NULL;
}

/* Send SIGUSR1 to t every 100 ms (the first one may land before t is
 * blocked) until t has finished; give up after 5 s. Returns 1 if finished. */
static int kill_until_done(pthread_t t)
{
    double t0 = mono_ms();
    do {
        usleep(100000);
        if (atomic_load(&intr_done))
            return 1;
        CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    } while (mono_ms() - t0 < 5000);
    return atomic_load(&intr_done);
}

static void test_eintr(void)
{
    pthread_t t;
    printf("-- EINTR\n");
    atomic_store(&intr_ready, 0);
    atomic_store(&intr_done, 0);
    CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0, "create");
    while (!atomic_load(&intr_ready))
        usleep(1000);
    kill_until_done(t);
    CHECK(pthread_join(t, NULL) == 0, "join");
    double rem = intr_rem.tv_sec + intr_rem.tv_nsec / 1e9;
    printf("interrupted nanosleep(2 s): rc %d errno %s, remaining time plausible: %s\n", intr_rc,
           intr_errno == EINTR ? "EINTR" : "other", rem > 0.5 && rem < 1.99 ? "yes" : "no");
    CHECK(intr_rc == -1 && intr_errno == EINTR, "nanosleep");
    CHECK(rem > 0.5 && rem < 1.99, "rem %.3f s", rem);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0;            /* no SA_RESTART: the futex wait is not restarted */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    atomic_store(&intr_ready, 0);
    atomic_store(&intr_done, 0);
    CHECK(sem_init(&intr_sem, 0, 0) == 0, "sem_init");
    CHECK(pthread_create(&t, NULL, sem_sleeper, NULL) == 0, "create");
    while (!atomic_load(&intr_ready))
        usleep(1000);
    /* If sem_wait were restarted, the thread would hang: post after 5 s. */
    if (!kill_until_done(t))
        sem_post(&intr_sem);
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("interrupted sem_wait: rc %d errno %s\n", intr_rc, intr_rc == -1 && intr_errno == EINTR ? "EINTR" : "none");
    CHECK(intr_rc == -1 && intr_errno == EINTR, "sem_wait not interrupted");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    sa.sa_handler = on_usr2;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction");
    my_id = -1;

    test_pthread_kill();
    test_masks();
    test_sigwait();
    test_eintr();
    printf("done\n");
    return 0;
}
