/* sleep_accuracy: the sleep family returns at the right time and codes.
 * gmp-test: mode=selfcheck
 *
 * The same suite runs at once in main and in 2 other threads (so several
 * sleepers are parked together):
 *   - nanosleep (with a remaining-time pointer; 0 on success), zero-length
 *     nanosleep, usleep, sleep(1) (returns 0 after >= 1 s);
 *   - clock_nanosleep relative on CLOCK_MONOTONIC, CLOCK_REALTIME and
 *     CLOCK_BOOTTIME; TIMER_ABSTIME on CLOCK_MONOTONIC and CLOCK_REALTIME
 *     (the clock has reached the deadline on return); an absolute deadline
 *     in the past returns 0 at once;
 *   - errors: nanosleep with tv_nsec = 1e9, tv_nsec = -1, tv_sec = -1 ->
 *     -1/EINVAL; clock_nanosleep with an invalid clock id or
 *     CLOCK_THREAD_CPUTIME_ID or tv_nsec = 1e9 returns EINVAL as its return
 *     value (clock_nanosleep does not use errno).
 * Every sleep must not return early and must not be more than 200 ms late
 * (generous, for a loaded CI machine).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLACK_NS 200000000LL

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

#define FAIL(who, ...)                                                         \
    do {                                                                       \
        pthread_mutex_lock(&out_mu);                                           \
        fflush(stdout);                                                        \
        fprintf(stderr, "FAIL %s:%d [%s]: ", __FILE__, __LINE__, who);         \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

static int64_t clk_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    return ts;
}

static void report(const char *who, const char *what, int64_t req_ns, int64_t el_ns)
{
    pthread_mutex_lock(&out_mu);
    printf("[%s] %-44s requested %7.3f ms, took %8.3f ms\n", who, what, req_ns / 1e6, el_ns / 1e6);
    pthread_mutex_unlock(&out_mu);
    if (el_ns < req_ns)
        FAIL(who, "%s returned early: %.3f ms < %.3f ms", what, el_ns / 1e6, req_ns / 1e6);
    if (el_ns > req_ns + SLACK_NS)
        FAIL(who, "%s too late: %.3f ms for %.3f ms", what, el_ns / 1e6, req_ns / 1e6);
}

static void suite(const char *who)
{
    struct timespec req, rem;
    int64_t t0, el;
    int r;

    /* nanosleep */
    req = ns_to_ts(50000000);
    rem.tv_sec = 99;
    rem.tv_nsec = 0;
    t0 = clk_ns(CLOCK_MONOTONIC);
    r = nanosleep(&req, &rem);
    el = clk_ns(CLOCK_MONOTONIC) - t0;
    if (r != 0)
        FAIL(who, "nanosleep(50 ms) = %d errno %s", r, strerror(errno));
    report(who, "nanosleep 50 ms (with rem)", 50000000, el);

    req = ns_to_ts(0);
    if ((r = nanosleep(&req, NULL)) != 0)
        FAIL(who, "nanosleep(0) = %d errno %s", r, strerror(errno));

    struct {
        const char *what;
        time_t sec;
        long nsec;
    } bad[] = {{"tv_nsec=1e9", 0, 1000000000L}, {"tv_nsec=-1", 0, -1}, {"tv_sec=-1", -1, 0}};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req.tv_sec = bad[i].sec;
        req.tv_nsec = bad[i].nsec;
        errno = 0;
        t0 = clk_ns(CLOCK_MONOTONIC);
        r = nanosleep(&req, NULL);
        int e = errno;
        el = clk_ns(CLOCK_MONOTONIC) - t0;
        if (r != -1 || e != EINVAL)
            FAIL(who, "nanosleep(%s) = %d errno %d (%s), expected -1 EINVAL", bad[i].what, r, e, strerror(e));
        if (el > SLACK_NS)
            FAIL(who, "nanosleep(%s) slept %.3f ms before failing", bad[i].what, el / 1e6);
    }

    /* usleep */
    t0 = clk_ns(CLOCK_MONOTONIC);
    r = usleep(20000);
    el = clk_ns(CLOCK_MONOTONIC) - t0;
    if (r != 0)
        FAIL(who, "usleep(20000) = %d errno %s", r, strerror(errno));
    report(who, "usleep 20 ms", 20000000, el);
    if ((r = usleep(0)) != 0)
        FAIL(who, "usleep(0) = %d", r);

    /* clock_nanosleep, relative */
    const struct {
        clockid_t c;
        const char *name;
    } rel[] = {{CLOCK_MONOTONIC, "MONOTONIC"}, {CLOCK_REALTIME, "REALTIME"}, {CLOCK_BOOTTIME, "BOOTTIME"}};
    for (unsigned i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "clock_nanosleep %s relative 30 ms", rel[i].name);
        req = ns_to_ts(30000000);
        t0 = clk_ns(CLOCK_MONOTONIC);
        r = clock_nanosleep(rel[i].c, 0, &req, &rem);
        el = clk_ns(CLOCK_MONOTONIC) - t0;
        if (r != 0)
            FAIL(who, "%s returned %d", what, r);
        report(who, what, 30000000, el);
    }

    /* clock_nanosleep, absolute */
    const struct {
        clockid_t c;
        const char *name;
    } abs_[] = {{CLOCK_MONOTONIC, "MONOTONIC"}, {CLOCK_REALTIME, "REALTIME"}};
    for (unsigned i = 0; i < sizeof abs_ / sizeof abs_[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "clock_nanosleep %s TIMER_ABSTIME +40 ms", abs_[i].name);
        int64_t start = clk_ns(abs_[i].c);
        int64_t deadline = start + 40000000;
        req = ns_to_ts(deadline);
        r = clock_nanosleep(abs_[i].c, TIMER_ABSTIME, &req, NULL);
        int64_t end = clk_ns(abs_[i].c);
        if (r != 0)
            FAIL(who, "%s returned %d", what, r);
        if (end < deadline)
            FAIL(who, "%s: returned %.3f ms before the deadline", what, (deadline - end) / 1e6);
        report(who, what, 40000000, end - start);

        snprintf(what, sizeof what, "clock_nanosleep %s TIMER_ABSTIME in the past", abs_[i].name);
        req = ns_to_ts(clk_ns(abs_[i].c) - 1000000000LL);
        t0 = clk_ns(CLOCK_MONOTONIC);
        r = clock_nanosleep(abs_[i].c, TIMER_ABSTIME, &req, NULL);
        el = clk_ns(CLOCK_MONOTONIC) - t0;
        if (r != 0)
            FAIL(who, "%s returned %d", what, r);
        report(who, what, 0, el);
    }

    /* clock_nanosleep errors: returned, not in errno */
    req = ns_to_ts(10000000);
    errno = 0;
    r = clock_nanosleep((clockid_t)1234, 0, &req, NULL);
    if (r != EINVAL)
        FAIL(who, "clock_nanosleep(clock 1234) returned %d (errno %d), expected EINVAL", r, errno);
    r = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &req, NULL);
    if (r != EINVAL)
        FAIL(who, "clock_nanosleep(CLOCK_THREAD_CPUTIME_ID) returned %d, expected EINVAL", r);
    req.tv_sec = 0;
    req.tv_nsec = 1000000000L;
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    if (r != EINVAL)
        FAIL(who, "clock_nanosleep(tv_nsec=1e9) returned %d, expected EINVAL", r);
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &req, NULL);
    if (r != EINVAL)
        FAIL(who, "clock_nanosleep(TIMER_ABSTIME, tv_nsec=1e9) returned %d, expected EINVAL", r);

    /* sleep(1) */
    t0 = clk_ns(CLOCK_MONOTONIC);
    unsigned left = sleep(1);
    el = clk_ns(CLOCK_MONOTONIC) - t0;
    if (left != 0)
        FAIL(who, "sleep(1) returned %u", left);
    report(who, "sleep(1)", 1000000000LL, el);
}

static void *thread_suite(void *arg)
{
    suite(arg);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_t t[2];
    static char names[2][16];
    for (int i = 0; i < 2; i++) {
        snprintf(names[i], sizeof names[i], "thread %d", i);
        int r = pthread_create(&t[i], NULL, thread_suite, names[i]);
        if (r)
            FAIL("main", "pthread_create: %s", strerror(r));
    }
    suite("main");
    for (int i = 0; i < 2; i++)
        if (pthread_join(t[i], NULL) != 0)
            FAIL("main", "pthread_join");
    printf("all sleeps on time, all error codes right\n");
    return 0;
}
