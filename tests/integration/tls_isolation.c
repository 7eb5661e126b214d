/* tls_isolation: errno and __thread isolation across migrations.
 * gmp-test: mode=compare
 *
 * Under libgmp every pthread is a G with its own glibc TLS block, and a G may
 * resume on a different OS thread (M) after any blocking call. This program
 * checks that, for 8 threads alive at once:
 *   - errno, a __thread variable of the program (initial-exec access), a
 *     static __thread variable of the shared library libittls.so (reached via
 *     __tls_get_addr) and an exported __thread of that library accessed from
 *     the program keep per-thread values, and that their addresses do not
 *     change, across thousands of sched_yield / usleep / mutex lock-unlock /
 *     cond timed waits (each a chance to migrate), checked both through the
 *     cached pointers and by fresh access;
 *   - errno written by libc itself (close(-1) -> EBADF) lands in the caller's
 *     errno;
 *   - TLS addresses are distinct across threads, pthread_self() is stable per
 *     thread and distinct across threads;
 *   - __thread variables with a non-zero initializer start with that
 *     initializer, and zero-initialised ones start zeroed, in every thread;
 *   - the main thread's values are untouched by all of this.
 * Output is a deterministic summary (compare mode).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/tlslib.h"

#define NTHREADS 8
#define ITERS 8000

#include "lib/check.h"

static __thread int prog_tls;                       /* .tbss */
static __thread long prog_init = 0x5eed1234L;        /* .tdata, non-zero init */
static __thread char prog_buf[200] = "initial-buffer-contents";
static __thread unsigned prog_zero_arr[32];          /* .tbss array */

struct info {
    int id;
    pthread_t self;
    int *errno_addr, *prog_addr, *lib_addr, *exp_addr;
    long iterations;
};

static struct info infos[NTHREADS];
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cv = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t start_barrier;
static long shared_counter;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void check_all(struct info *in, const char *after, int iter, int ev,
                      int pv, int lv, int xv)
{
    int id = in->id;
    CHECK(&errno == in->errno_addr, "thread %d iter %d after %s: &errno moved %p -> %p",
          id, iter, after, (void *)in->errno_addr, (void *)&errno);
    CHECK(&prog_tls == in->prog_addr, "thread %d iter %d after %s: &prog_tls moved", id, iter, after);
    CHECK(tlslib_addr() == in->lib_addr, "thread %d iter %d after %s: lib TLS address moved", id, iter, after);
    CHECK(&tlslib_exported == in->exp_addr, "thread %d iter %d after %s: &tlslib_exported moved", id, iter, after);
    CHECK(tlslib_exported_addr() == in->exp_addr,
          "thread %d iter %d after %s: lib and program disagree on &tlslib_exported", id, iter, after);
    CHECK(*in->errno_addr == ev && errno == ev,
          "thread %d iter %d after %s: errno is %d (cached ptr: %d), expected %d", id, iter, after,
          errno, *in->errno_addr, ev);
    CHECK(*in->prog_addr == pv && prog_tls == pv,
          "thread %d iter %d after %s: prog_tls is %d (cached ptr: %d), expected %d", id, iter, after,
          prog_tls, *in->prog_addr, pv);
    CHECK(*in->lib_addr == lv && tlslib_get() == lv,
          "thread %d iter %d after %s: lib TLS is %d (cached ptr: %d), expected %d", id, iter, after,
          tlslib_get(), *in->lib_addr, lv);
    CHECK(*in->exp_addr == xv && tlslib_exported == xv && tlslib_initial() == xv,
          "thread %d iter %d after %s: tlslib_exported is %d, expected %d", id, iter, after,
          tlslib_exported, xv);
    CHECK(pthread_equal(pthread_self(), in->self),
          "thread %d iter %d after %s: pthread_self() changed", id, iter, after);
}

static void *worker(void *arg)
{
    struct info *in = arg;
    int id = in->id;

    /* Initial values, before this thread touched anything. */
    CHECK(prog_init == 0x5eed1234L, "thread %d: prog_init starts at %#lx", id, prog_init);
    CHECK(strcmp(prog_buf, "initial-buffer-contents") == 0, "thread %d: prog_buf starts as '%.20s'", id, prog_buf);
    CHECK(prog_tls == 0, "thread %d: prog_tls starts at %d", id, prog_tls);
    for (int i = 0; i < 32; i++)
        CHECK(prog_zero_arr[i] == 0, "thread %d: prog_zero_arr[%d] starts at %u", id, i, prog_zero_arr[i]);
    CHECK(tlslib_exported == TLSLIB_INIT_VALUE && tlslib_initial() == TLSLIB_INIT_VALUE,
          "thread %d: tlslib_exported starts at %d", id, tlslib_exported);
    CHECK(tlslib_get() == 0, "thread %d: lib TLS starts at %d", id, tlslib_get());
    CHECK(tlslib_array_is_zero(), "thread %d: lib TLS array does not start zeroed", id);

    in->self = pthread_self();
    in->errno_addr = &errno;
    in->prog_addr = &prog_tls;
    in->lib_addr = tlslib_addr();
    in->exp_addr = &tlslib_exported;

    /* Modify the initialised ones too: other threads must still see the
     * initializer (checked above, after the barrier all have done this). */
    prog_init = id;
    snprintf(prog_buf, sizeof prog_buf, "thread-%d", id);

    /* All threads alive at once: addresses must be distinct. */
    pthread_barrier_wait(&start_barrier);

    unsigned seed = 77u + (unsigned)id;
    struct timespec ts;
    for (int iter = 0; iter < ITERS; iter++) {
        int ev = 1000000 * (id + 1) + iter;
        int pv = 2000000 * (id + 1) + iter;
        int lv = 3000000 * (id + 1) + iter;
        int xv = 4000000 * (id + 1) + iter;
        errno = ev;
        prog_tls = pv;
        tlslib_set(lv);
        tlslib_exported = xv;
        const char *what = "?";
        switch (iter % 6) {
        case 0:
            sched_yield();
            what = "sched_yield";
            break;
        case 1:
            usleep(rnd(&seed) % 101);
            what = "usleep";
            break;
        case 2:
            pthread_mutex_lock(&shared_mu);
            shared_counter++;
            check_all(in, "mutex_lock", iter, ev, pv, lv, xv);
            pthread_mutex_unlock(&shared_mu);
            what = "mutex_unlock";
            break;
        case 3: {
            /* errno written by libc must land in our own errno. */
            int r = close(-1);
            CHECK(r == -1 && errno == EBADF && *in->errno_addr == EBADF,
                  "thread %d iter %d: close(-1) gave %d errno %d (cached %d)", id, iter, r, errno,
                  *in->errno_addr);
            sched_yield();
            CHECK(errno == EBADF, "thread %d iter %d: errno EBADF lost across sched_yield (now %d)", id,
                  iter, errno);
            errno = ev;
            what = "close(-1)+sched_yield";
            break;
        }
        case 4:
            if (iter % 60 == 4) {       /* a short timed wait: parks on a timer */
                pthread_mutex_lock(&shared_mu);
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200000;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                int r = pthread_cond_timedwait(&never_cv, &shared_mu, &ts);
                CHECK(r == ETIMEDOUT, "thread %d: cond_timedwait returned %d", id, r);
                pthread_mutex_unlock(&shared_mu);
                errno = ev;            /* errno after timedwait is unspecified */
                what = "cond_timedwait";
            } else {
                usleep(0);
                what = "usleep(0)";
            }
            break;
        case 5:
            CHECK(tlslib_array_fill_check(id * 100000 + iter),
                  "thread %d iter %d: lib TLS array readback failed", id, iter);
            sched_yield();
            what = "lib array+sched_yield";
            break;
        }
        check_all(in, what, iter, ev, pv, lv, xv);
        CHECK(prog_init == id, "thread %d iter %d: prog_init is %ld", id, iter, prog_init);
        char want[32];
        snprintf(want, sizeof want, "thread-%d", id);
        CHECK(strcmp(prog_buf, want) == 0, "thread %d iter %d: prog_buf is '%.20s'", id, iter, prog_buf);
        in->iterations++;
    }
    return (void *)(intptr_t)(id + 100);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    /* The main thread's own values must survive everything below. */
    errno = 4711;
    prog_tls = -1;
    tlslib_set(-2);
    tlslib_exported = -3;
    int *main_errno = &errno;

    CHECK(pthread_barrier_init(&start_barrier, NULL, NTHREADS) == 0, "barrier_init");
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        infos[i].id = i;
        int r = pthread_create(&th[i], NULL, worker, &infos[i]);
        CHECK(r == 0, "pthread_create %d: %s", i, strerror(r));
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        int r = pthread_join(th[i], &ret);
        CHECK(r == 0, "pthread_join %d: %s", i, strerror(r));
        CHECK((intptr_t)ret == i + 100, "thread %d returned %ld", i, (long)(intptr_t)ret);
        CHECK(pthread_equal(th[i], infos[i].self), "thread %d: pthread_self() differs from pthread_create's id", i);
    }

    int distinct_self = 1, distinct_addr = 1;
    for (int i = 0; i < NTHREADS; i++) {
        for (int j = i + 1; j < NTHREADS; j++) {
            if (pthread_equal(infos[i].self, infos[j].self))
                distinct_self = 0;
            if (infos[i].errno_addr == infos[j].errno_addr || infos[i].prog_addr == infos[j].prog_addr ||
                infos[i].lib_addr == infos[j].lib_addr || infos[i].exp_addr == infos[j].exp_addr)
                distinct_addr = 0;
        }
        if (infos[i].errno_addr == main_errno)
            distinct_addr = 0;
    }
    CHECK(distinct_self, "two live threads share a pthread_self() value");
    CHECK(distinct_addr, "two live threads share a TLS address");

    CHECK(errno == 4711 && &errno == main_errno, "main: errno is %d", errno);
    CHECK(prog_tls == -1, "main: prog_tls is %d", prog_tls);
    CHECK(tlslib_get() == -2, "main: lib TLS is %d", tlslib_get());
    CHECK(tlslib_exported == -3, "main: tlslib_exported is %d", tlslib_exported);
    CHECK(prog_init == 0x5eed1234L, "main: prog_init is %#lx", prog_init);
    CHECK(strcmp(prog_buf, "initial-buffer-contents") == 0, "main: prog_buf is '%.20s'", prog_buf);

    for (int i = 0; i < NTHREADS; i++)
        printf("thread %d: %ld iterations, TLS values and addresses stable\n", i, infos[i].iterations);
    printf("shared counter: %ld\n", shared_counter);
    printf("pthread_self distinct across threads: yes\n");
    printf("TLS addresses distinct across threads: yes\n");
    printf("initializers seen in every thread: yes\n");
    printf("main thread values intact: yes\n");
    return 0;
}
