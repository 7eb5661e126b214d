/* fork_wait: fork (and friends) in a multi-threaded process.
 * gmp-test: mode=compare
 *
 * While 4 worker threads keep running (locking a mutex, sleeping), the
 * process:
 *   - fork()s from main: the child prints, creates and joins a thread of its
 *     own, allocates memory, and exits with status 7; the parent's waitpid
 *     sees 7;
 *   - fork()s from a non-main thread: the child (whose only thread is a copy
 *     of the forking one) prints and exits 5; that thread waitpid()s it;
 *   - popen("echo ...") and reads the line back;
 *   - posix_spawn("/bin/sh -c 'exit 3'") and waits for status 3.
 * Afterwards the workers are still making progress and all are joined.
 * (Children inherit LD_PRELOAD, so under libgmp they run under it too.)
 * Output is deterministic: stdout is flushed before every fork and the
 * parent prints a child's result only after reaping it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "lib/check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long work;
static atomic_int stop;

static void *worker(void *arg)
{
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&mu);
        work++;
        pthread_mutex_unlock(&mu);
        usleep(200);
    }
    return NULL;
}

static long work_now(void)
{
    pthread_mutex_lock(&mu);
    long w = work;
    pthread_mutex_unlock(&mu);
    return w;
}

static void *child_thread(void *arg)
{
    return (void *)(uintptr_t)((uintptr_t)arg * 2);
}

static const char *describe(int status)
{
    static char buf[64];
    if (WIFEXITED(status))
        snprintf(buf, sizeof buf, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, sizeof buf, "status %#x", status);
    return buf;
}

static int reap(pid_t pid)
{
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    CHECK(r == pid, "waitpid: %s", strerror(errno));
    return status;
}

static void *forking_thread(void *arg)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork in thread: %s", strerror(errno));
    if (pid == 0) {
        printf("child of thread: hello\n");
        fflush(stdout);
        _exit(5);
    }
    return (void *)(intptr_t)reap(pid);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    pthread_t w[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&w[i], NULL, worker, NULL) == 0, "create");
    usleep(20000);

    /* fork from main */
    printf("parent: forking from main\n");
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        printf("child: hello\n");
        pthread_t t;
        void *ret = NULL;
        int r = pthread_create(&t, NULL, child_thread, (void *)21);
        if (r == 0)
            r = pthread_join(t, &ret);
        printf("child: created and joined a thread: rc %d, value %ld\n", r, (long)(uintptr_t)ret);
        char *p = malloc(1 << 20);
        memset(p, 1, 1 << 20);
        printf("child: malloc works: %s\n", p[12345] == 1 ? "yes" : "no");
        free(p);
        fflush(stdout);
        exit(r == 0 && ret == (void *)42 ? 7 : 1);
    }
    int status = reap(pid);
    printf("parent: child %s\n", describe(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "child status");

    /* fork from another thread */
    printf("parent: forking from a thread\n");
    pthread_t ft;
    void *st;
    CHECK(pthread_create(&ft, NULL, forking_thread, NULL) == 0, "create");
    CHECK(pthread_join(ft, &st) == 0, "join");
    status = (int)(intptr_t)st;
    printf("parent: thread's child %s\n", describe(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5, "thread's child status");

    /* popen */
    fflush(stdout);
    FILE *f = popen("echo popen-says-hi", "r");
    CHECK(f != NULL, "popen: %s", strerror(errno));
    char line[64] = "";
    CHECK(fgets(line, sizeof line, f) != NULL, "fgets from popen");
    status = pclose(f);
    line[strcspn(line, "\n")] = 0;
    printf("parent: popen read '%s', pclose: %s\n", line, describe(status));
    CHECK(strcmp(line, "popen-says-hi") == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "popen");

    /* posix_spawn */
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    fflush(stdout);
    int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    CHECK(r == 0, "posix_spawn: %s", strerror(r));
    status = reap(pid);
    printf("parent: posix_spawn'ed sh %s\n", describe(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "spawn status");

    long w0 = work_now();
    usleep(50000);
    long w1 = work_now();
    printf("parent: workers still running after the forks: %s\n", w1 > w0 ? "yes" : "no");
    CHECK(w1 > w0, "workers stopped making progress");
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(w[i], NULL) == 0, "join");
    printf("parent: done\n");
    return 0;
}
