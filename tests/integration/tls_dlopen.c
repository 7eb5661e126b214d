/* tls_dlopen: __thread variables of a dlopen()ed library, per thread.
 * gmp-test: mode=compare
 *
 * A library loaded with dlopen gets dynamic TLS: each thread's block for it
 * is allocated lazily by __tls_get_addr on first access, through the
 * thread's DTV, which may have to grow. Under libgmp each G has its own TLS
 * block and DTV, so this must work per G, including for Gs that already
 * existed before the dlopen. The program loads libittls.so (built from
 * lib/tlslib.c, found next to this executable) while 4 threads are already
 * running, then starts 4 more; all 8 check that the library's TLS starts at
 * its initializer / zero, keep per-thread values and stable addresses across
 * sched_yield / usleep / mutex operations, and have distinct addresses.
 * Deterministic output.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/tlslib.h"

#include "lib/check.h"

#define NTHREADS 8
#define ITERS 2000

static void (*p_set)(int);
static int (*p_get)(void);
static int *(*p_addr)(void);
static int (*p_initial)(void);
static int *(*p_exported_addr)(void);
static int (*p_array_is_zero)(void);
static int (*p_array_fill_check)(int);

static atomic_int loaded;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int *addrs[NTHREADS], *exp_addrs[NTHREADS];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!atomic_load(&loaded))       /* early threads wait for the dlopen */
        usleep(1000);
    CHECK(p_initial() == TLSLIB_INIT_VALUE, "thread %d: tlslib_exported starts at %d", id, p_initial());
    CHECK(p_get() == 0, "thread %d: lib value starts at %d", id, p_get());
    CHECK(p_array_is_zero(), "thread %d: lib array not zero", id);
    int *a = p_addr(), *x = p_exported_addr();
    addrs[id] = a;
    exp_addrs[id] = x;
    *x = -id;
    for (int i = 0; i < ITERS; i++) {
        int v = id * 100000 + i;
        p_set(v);
        switch (i % 3) {
        case 0: sched_yield(); break;
        case 1: usleep(i % 50); break;
        case 2:
            pthread_mutex_lock(&mu);
            sched_yield();
            pthread_mutex_unlock(&mu);
            break;
        }
        CHECK(p_get() == v && *a == v, "thread %d iter %d: lib value %d (cached %d), want %d", id, i, p_get(), *a, v);
        CHECK(p_addr() == a && p_exported_addr() == x, "thread %d iter %d: lib TLS address moved", id, i);
        CHECK(p_initial() == -id, "thread %d iter %d: tlslib_exported is %d", id, i, p_initial());
        if (i % 100 == 0)
            CHECK(p_array_fill_check(v), "thread %d: array readback", id);
    }
    return NULL;
}

static void *must_sym(void *h, const char *name)
{
    dlerror();
    void *p = dlsym(h, name);
    CHECK(p != NULL, "dlsym(%s): %s", name, dlerror());
    return p;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    char exe[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    CHECK(slash != NULL, "exe path %s", exe);
    *slash = 0;
    snprintf(path, sizeof path, "%s/libittls.so", exe);

    pthread_t th[NTHREADS];
    for (intptr_t i = 0; i < NTHREADS / 2; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "create");
    usleep(20000);

    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen(%s): %s (is the ittls target built?)", path, dlerror());
    *(void **)&p_set = must_sym(h, "tlslib_set");
    *(void **)&p_get = must_sym(h, "tlslib_get");
    *(void **)&p_addr = must_sym(h, "tlslib_addr");
    *(void **)&p_initial = must_sym(h, "tlslib_initial");
    *(void **)&p_exported_addr = must_sym(h, "tlslib_exported_addr");
    *(void **)&p_array_is_zero = must_sym(h, "tlslib_array_is_zero");
    *(void **)&p_array_fill_check = must_sym(h, "tlslib_array_fill_check");
    printf("dlopen libittls.so: ok\n");

    /* main touches it first */
    CHECK(p_initial() == TLSLIB_INIT_VALUE && p_get() == 0, "main: initial values");
    p_set(-999);
    atomic_store(&loaded, 1);
    for (intptr_t i = NTHREADS / 2; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "create");
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "join");

    int distinct = 1;
    for (int i = 0; i < NTHREADS; i++)
        for (int j = i + 1; j < NTHREADS; j++)
            if (addrs[i] == addrs[j] || exp_addrs[i] == exp_addrs[j])
                distinct = 0;
    printf("threads created before dlopen: %d, after: %d\n", NTHREADS / 2, NTHREADS - NTHREADS / 2);
    printf("each thread: initial values right, %d iterations with stable values and addresses\n", ITERS);
    printf("addresses distinct across threads: %s\n", distinct ? "yes" : "no");
    printf("main's value intact: %s\n", p_get() == -999 ? "yes" : "no");
    CHECK(distinct && p_get() == -999, "see above");
    return 0;
}
