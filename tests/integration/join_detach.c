/* join_detach: thread lifetime — join, detach, attributes, names.
 * gmp-test: mode=compare
 *
 * Checks (compare mode, each result code printed by name):
 *   - pthread_join returns the value given to pthread_exit (also from a
 *     nested call) and the value returned by the start routine;
 *   - joining oneself -> EDEADLK (in main and in a thread);
 *   - joining a detached thread that is still alive (it blocks on a
 *     semaphore) -> EINVAL; pthread_detach of a running thread -> 0, again
 *     -> EINVAL;
 *   - pthread_tryjoin_np EBUSY while the thread runs, then 0;
 *     pthread_timedjoin_np ETIMEDOUT (~50 ms, not early) then 0;
 *     pthread_clockjoin_np (MONOTONIC) ETIMEDOUT then 0, bad clock EINVAL;
 *   - 1,000 detached threads (half PTHREAD_CREATE_DETACHED, half
 *     pthread_detach(pthread_self())) each bump a counter and post a
 *     semaphore; main waits for all; pthread_getattr_np reports them detached;
 *   - pthread_equal;
 *   - pthread_attr_setstacksize(256 KiB): pthread_getattr_np(pthread_self())
 *     in the thread reports >= 256 KiB and a range containing a local
 *     variable (also for a default thread and for main);
 *   - pthread_attr_setstack with a caller buffer: a local variable lies in
 *     it and getattr_np reports exactly that buffer;
 *   - pthread_setname_np / pthread_getname_np on self and on another thread,
 *     a new thread's default name, ERANGE for a long name / short buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
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

static void sem_wait_nointr(sem_t *s)
{
    while (sem_wait(s) != 0)
        CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
}

/* ---- return values --------------------------------------------------------- */

static void *ret_direct(void *arg) { return (void *)(uintptr_t)43; }
static volatile int exit_depth;
static void nested_exit(int depth)
{
    if (depth >= exit_depth)
        pthread_exit((void *)(uintptr_t)42);
    if (depth < 100)
        nested_exit(depth + 1);
}
static void *ret_exit(void *arg)
{
    exit_depth = 5;
    nested_exit(0);
    fprintf(stderr, "pthread_exit returned\n");
    exit(1);
}
static void *self_join(void *arg) { return (void *)(intptr_t)pthread_join(pthread_self(), NULL); }

/* A thread that blocks on its own semaphore until released, then returns
 * its value. Static: detached blockers may outlive test_join's frame. */
struct blk {
    sem_t s;
    void *ret;
};
static struct blk blks[8];
static struct blk *new_blk(int i, long ret)
{
    CHECK(sem_init(&blks[i].s, 0, 0) == 0, "sem_init");
    blks[i].ret = (void *)ret;
    return &blks[i];
}
static void *blocker(void *arg)
{
    struct blk *b = arg;
    sem_wait_nointr(&b->s);
    return b->ret;
}

static void test_join(void)
{
    pthread_t t;
    void *ret;
    printf("-- join\n");
    CHECK(pthread_create(&t, NULL, ret_direct, NULL) == 0, "create");
    EXPECT("join (start routine returns 43)", pthread_join(t, &ret), 0);
    printf("  value: %ld\n", (long)(uintptr_t)ret);
    CHECK(ret == (void *)43, "value");
    CHECK(pthread_create(&t, NULL, ret_exit, NULL) == 0, "create");
    EXPECT("join (pthread_exit(42) from a nested call)", pthread_join(t, &ret), 0);
    printf("  value: %ld\n", (long)(uintptr_t)ret);
    CHECK(ret == (void *)42, "value");
    CHECK(pthread_create(&t, NULL, ret_direct, NULL) == 0, "create");
    EXPECT("join with NULL retval", pthread_join(t, NULL), 0);

    EXPECT("main joins itself", pthread_join(pthread_self(), NULL), EDEADLK);
    CHECK(pthread_create(&t, NULL, self_join, NULL) == 0, "create");
    CHECK(pthread_join(t, &ret) == 0, "join");
    EXPECT("thread joins itself", (int)(intptr_t)ret, EDEADLK);

    /* Detached and alive: join must say EINVAL. */
    struct blk *bk;
    pthread_attr_t a;
    int st = -1;
    CHECK(pthread_attr_init(&a) == 0, "attr_init");
    EXPECT("attr_setdetachstate(DETACHED)", pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED), 0);
    EXPECT("attr_getdetachstate", pthread_attr_getdetachstate(&a, &st), 0);
    printf("  is PTHREAD_CREATE_DETACHED: %s\n", st == PTHREAD_CREATE_DETACHED ? "yes" : "no");
    bk = new_blk(0, 7);
    CHECK(pthread_create(&t, &a, blocker, bk) == 0, "create");
    EXPECT("join of a live detached thread", pthread_join(t, NULL), EINVAL);
    CHECK(sem_post(&bk->s) == 0, "post");
    pthread_attr_destroy(&a);

    /* Detach a running joinable thread; a second detach is EINVAL. */
    bk = new_blk(1, 8);
    CHECK(pthread_create(&t, NULL, blocker, bk) == 0, "create");
    EXPECT("detach running thread", pthread_detach(t), 0);
    EXPECT("detach it again", pthread_detach(t), EINVAL);
    EXPECT("join it", pthread_join(t, NULL), EINVAL);
    CHECK(sem_post(&bk->s) == 0, "post");

    /* tryjoin */
    bk = new_blk(2, 11);
    CHECK(pthread_create(&t, NULL, blocker, bk) == 0, "create");
    EXPECT("tryjoin_np while running", pthread_tryjoin_np(t, &ret), EBUSY);
    CHECK(sem_post(&bk->s) == 0, "post");
    int r;
    double t0 = mono_ms();
    while ((r = pthread_tryjoin_np(t, &ret)) == EBUSY && mono_ms() - t0 < 10000)
        usleep(1000);
    EXPECT("tryjoin_np after it finished", r, 0);
    printf("  value: %ld\n", (long)(uintptr_t)ret);
    CHECK(ret == (void *)11, "value");

    /* timedjoin */
    bk = new_blk(3, 12);
    CHECK(pthread_create(&t, NULL, blocker, bk) == 0, "create");
    struct timespec ts = ts_after(CLOCK_REALTIME, 50);
    EXPECT("timedjoin_np +50ms while running", pthread_timedjoin_np(t, &ret, &ts), ETIMEDOUT);
    CHECK(ts_reached(CLOCK_REALTIME, &ts), "timedjoin returned before its deadline");
    CHECK(sem_post(&bk->s) == 0, "post");
    ts = ts_after(CLOCK_REALTIME, 10000);
    t0 = mono_ms();
    EXPECT("timedjoin_np +10s, thread released", pthread_timedjoin_np(t, &ret, &ts), 0);
    CHECK(mono_ms() - t0 < 5000, "timedjoin took %.0f ms", mono_ms() - t0);
    printf("  value: %ld\n", (long)(uintptr_t)ret);
    CHECK(ret == (void *)12, "value");

    /* clockjoin */
    bk = new_blk(4, 13);
    CHECK(pthread_create(&t, NULL, blocker, bk) == 0, "create");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockjoin_np MONOTONIC +50ms while running", pthread_clockjoin_np(t, &ret, CLOCK_MONOTONIC, &ts),
           ETIMEDOUT);
    CHECK(ts_reached(CLOCK_MONOTONIC, &ts), "clockjoin returned before its deadline");
    ts = ts_after(CLOCK_MONOTONIC, 50);
    EXPECT("clockjoin_np CLOCK_PROCESS_CPUTIME_ID", pthread_clockjoin_np(t, &ret, CLOCK_PROCESS_CPUTIME_ID, &ts),
           EINVAL);
    CHECK(sem_post(&bk->s) == 0, "post");
    ts = ts_after(CLOCK_MONOTONIC, 10000);
    EXPECT("clockjoin_np MONOTONIC +10s, thread released", pthread_clockjoin_np(t, &ret, CLOCK_MONOTONIC, &ts), 0);
    printf("  value: %ld\n", (long)(uintptr_t)ret);
    CHECK(ret == (void *)13, "value");
}

/* ---- detached threads ----------------------------------------------------------- */

#define NDETACHED 1000
static atomic_int det_count, det_not_detached;
static sem_t det_done;

static void *detached_worker(void *arg)
{
    if ((uintptr_t)arg & 1)
        CHECK(pthread_detach(pthread_self()) == 0, "self-detach");
    pthread_attr_t a;
    int st = -1;
    CHECK(pthread_getattr_np(pthread_self(), &a) == 0, "getattr_np");
    CHECK(pthread_attr_getdetachstate(&a, &st) == 0, "getdetachstate");
    pthread_attr_destroy(&a);
    if (st != PTHREAD_CREATE_DETACHED)
        atomic_fetch_add(&det_not_detached, 1);
    atomic_fetch_add(&det_count, 1);
    CHECK(sem_post(&det_done) == 0, "post");
    return NULL;
}

static void test_detached(void)
{
    pthread_attr_t a;
    pthread_t t;
    printf("-- detached\n");
    CHECK(sem_init(&det_done, 0, 0) == 0, "sem_init");
    CHECK(pthread_attr_init(&a) == 0, "attr_init");
    CHECK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0, "setdetachstate");
    for (uintptr_t i = 0; i < NDETACHED; i++) {
        int r = pthread_create(&t, (i & 1) ? NULL : &a, detached_worker, (void *)i);
        CHECK(r == 0, "create detached #%lu: %s", (unsigned long)i, strerror(r));
    }
    pthread_attr_destroy(&a);
    for (int i = 0; i < NDETACHED; i++)
        sem_wait_nointr(&det_done);
    printf("detached threads finished: %d of %d\n", atomic_load(&det_count), NDETACHED);
    printf("reported not detached by getattr_np: %d\n", atomic_load(&det_not_detached));
    CHECK(atomic_load(&det_count) == NDETACHED && atomic_load(&det_not_detached) == 0, "detached");
}

/* ---- pthread_equal ------------------------------------------------------------ */

static void *return_self(void *arg)
{
    pthread_t *out = arg;
    *out = pthread_self();
    return NULL;
}

static void test_equal(void)
{
    pthread_t t, seen;
    printf("-- equal\n");
    CHECK(pthread_create(&t, NULL, return_self, &seen) == 0, "create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("equal(self, self): %s\n", pthread_equal(pthread_self(), pthread_self()) ? "true" : "false");
    printf("equal(created id, its pthread_self): %s\n", pthread_equal(t, seen) ? "true" : "false");
    printf("equal(main, thread): %s\n", pthread_equal(pthread_self(), t) ? "true" : "false");
    CHECK(pthread_equal(pthread_self(), pthread_self()) && pthread_equal(t, seen) && !pthread_equal(pthread_self(), t),
          "pthread_equal");
}

/* ---- stacks ----------------------------------------------------------------- */

struct stackinfo {
    size_t reported_size;
    uintptr_t lo, hi, local;
    int getattr_rc;
};

static void fill_stackinfo(struct stackinfo *si)
{
    volatile int local = 1;
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    si->getattr_rc = pthread_getattr_np(pthread_self(), &a);
    if (si->getattr_rc)
        return;
    CHECK(pthread_attr_getstack(&a, &addr, &size) == 0, "getstack");
    CHECK(pthread_attr_getstacksize(&a, &si->reported_size) == 0, "getstacksize");
    pthread_attr_destroy(&a);
    si->lo = (uintptr_t)addr;
    si->hi = (uintptr_t)addr + size;
    si->local = (uintptr_t)&local;
}

static void *stack_thread(void *arg)
{
    fill_stackinfo(arg);
    return NULL;
}

static void print_inside(const char *what, struct stackinfo *si)
{
    int inside = si->local >= si->lo && si->local < si->hi;
    printf("%s: local variable inside reported stack: %s\n", what, inside ? "yes" : "no");
    CHECK(inside, "%s: local %#lx not in [%#lx, %#lx)", what, (unsigned long)si->local, (unsigned long)si->lo,
          (unsigned long)si->hi);
}

static void test_stacks(void)
{
    pthread_attr_t a;
    pthread_t t;
    struct stackinfo si;
    size_t sz = 0;
    printf("-- stacks\n");

    memset(&si, 0, sizeof si);
    fill_stackinfo(&si);
    EXPECT("getattr_np(main)", si.getattr_rc, 0);
    print_inside("main", &si);

    memset(&si, 0, sizeof si);
    CHECK(pthread_create(&t, NULL, stack_thread, &si) == 0, "create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    EXPECT("getattr_np(self) in default thread", si.getattr_rc, 0);
    print_inside("default thread", &si);

    CHECK(pthread_attr_init(&a) == 0, "attr_init");
    EXPECT("attr_setstacksize(256 KiB)", pthread_attr_setstacksize(&a, 256 * 1024), 0);
    EXPECT("attr_setstacksize(1 byte)", pthread_attr_setstacksize(&a, 1), EINVAL);
    EXPECT("attr_getstacksize", pthread_attr_getstacksize(&a, &sz), 0);
    printf("  size: %zu\n", sz);
    memset(&si, 0, sizeof si);
    CHECK(pthread_create(&t, &a, stack_thread, &si) == 0, "create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    pthread_attr_destroy(&a);
    EXPECT("getattr_np(self) in 256 KiB thread", si.getattr_rc, 0);
    printf("256 KiB thread: reported stack size >= 256 KiB: %s\n", si.reported_size >= 256 * 1024 ? "yes" : "no");
    CHECK(si.reported_size >= 256 * 1024, "reported %zu", si.reported_size);
    print_inside("256 KiB thread", &si);

    size_t bufsize = 512 * 1024;
    void *buf = NULL;
    CHECK(posix_memalign(&buf, 65536, bufsize) == 0, "posix_memalign");
    CHECK(pthread_attr_init(&a) == 0, "attr_init");
    EXPECT("attr_setstack(512 KiB buffer)", pthread_attr_setstack(&a, buf, bufsize), 0);
    memset(&si, 0, sizeof si);
    CHECK(pthread_create(&t, &a, stack_thread, &si) == 0, "create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    pthread_attr_destroy(&a);
    EXPECT("getattr_np(self) in user-stack thread", si.getattr_rc, 0);
    int in_buf = si.local >= (uintptr_t)buf && si.local < (uintptr_t)buf + bufsize;
    printf("user-stack thread: local variable inside the buffer: %s\n", in_buf ? "yes" : "no");
    printf("user-stack thread: getattr_np reports exactly the buffer: %s\n",
           si.lo == (uintptr_t)buf && si.hi == (uintptr_t)buf + bufsize ? "yes" : "no");
    CHECK(in_buf, "local %#lx not in buffer [%p, +%zu)", (unsigned long)si.local, buf, bufsize);
    CHECK(si.lo == (uintptr_t)buf && si.hi == (uintptr_t)buf + bufsize, "reported [%#lx, %#lx)",
          (unsigned long)si.lo, (unsigned long)si.hi);
    free(buf);
}

/* ---- names ------------------------------------------------------------------ */

static sem_t name_go, name_done;
static char name_seen_self[32], name_seen_default[32];
static int name_rc_self;

static void *named_thread(void *arg)
{
    CHECK(pthread_getname_np(pthread_self(), name_seen_default, sizeof name_seen_default) == 0, "getname");
    name_rc_self = pthread_setname_np(pthread_self(), "self-named");
    CHECK(sem_post(&name_done) == 0, "post");
    sem_wait_nointr(&name_go);         /* main inspects and renames us */
    CHECK(pthread_getname_np(pthread_self(), name_seen_self, sizeof name_seen_self) == 0, "getname");
    CHECK(sem_post(&name_done) == 0, "post");
    sem_wait_nointr(&name_go);
    return NULL;
}

static void test_names(void)
{
    pthread_t t;
    char buf[32];
    printf("-- names\n");
    CHECK(sem_init(&name_go, 0, 0) == 0 && sem_init(&name_done, 0, 0) == 0, "sem_init");
    CHECK(pthread_create(&t, NULL, named_thread, NULL) == 0, "create");
    sem_wait_nointr(&name_done);
    char self_name[32];
    CHECK(pthread_getname_np(pthread_self(), self_name, sizeof self_name) == 0, "getname main");
    printf("new thread's default name equals main's name: %s\n", strcmp(name_seen_default, self_name) == 0 ? "yes" : "no");
    CHECK(strcmp(name_seen_default, self_name) == 0, "default '%s', main '%s'", name_seen_default, self_name);
    EXPECT("thread: setname_np(self, \"self-named\")", name_rc_self, 0);
    EXPECT("main: getname_np(thread)", pthread_getname_np(t, buf, sizeof buf), 0);
    printf("  name: %s\n", buf);
    CHECK(strcmp(buf, "self-named") == 0, "name");
    EXPECT("main: setname_np(thread, \"main-named\")", pthread_setname_np(t, "main-named"), 0);
    EXPECT("main: setname_np(thread, 16-char name)", pthread_setname_np(t, "0123456789abcdef"), ERANGE);
    EXPECT("main: getname_np(thread, 4-byte buffer)", pthread_getname_np(t, buf, 4), ERANGE);
    CHECK(sem_post(&name_go) == 0, "post");
    sem_wait_nointr(&name_done);
    printf("thread: getname_np(self): %s\n", name_seen_self);
    CHECK(strcmp(name_seen_self, "main-named") == 0, "name");
    EXPECT("main: setname_np(self, \"main-self\")", pthread_setname_np(pthread_self(), "main-self"), 0);
    EXPECT("main: getname_np(self)", pthread_getname_np(pthread_self(), buf, sizeof buf), 0);
    printf("  name: %s\n", buf);
    CHECK(strcmp(buf, "main-self") == 0, "name");
    EXPECT("main: getname_np(thread)", pthread_getname_np(t, buf, sizeof buf), 0);
    printf("  name: %s\n", buf);
    CHECK(strcmp(buf, "main-named") == 0, "name");
    CHECK(sem_post(&name_go) == 0, "post");
    CHECK(pthread_join(t, NULL) == 0, "join");
    CHECK(pthread_setname_np(pthread_self(), self_name) == 0, "restore main's name");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_join();
    test_detached();
    test_equal();
    test_stacks();
    test_names();
    printf("done\n");
    return 0;
}
