/* printf_many: concurrent printf on the shared stdout FILE.
 * gmp-test: mode=compare
 *
 * 16 threads each printf 2,000 lines "thread %02d line %05d <payload>\n" to
 * stdout. stdio locks the FILE (a glibc lock owned by the calling thread's
 * identity, recursive, held across a whole printf) so every line must come
 * out intact. The program redirects its fd 1 to a pipe that a dedicated
 * reader thread drains with blocking read() calls (so writers block in
 * write() when the pipe is full and the reader blocks when it is empty);
 * after the writers are joined it restores fd 1, lets the reader see EOF,
 * and verifies: every line well-formed, none missing, none duplicated, each
 * thread's lines in order. It prints a deterministic summary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 16
#define NLINES 2000
#define PAYLOAD "the quick brown fox jumps over the lazy dog 0123456789"

#include "lib/check.h"

static char *buf;
static size_t buf_len, buf_cap;
static int pipe_rd;
static long reads_done;

static void *reader(void *arg)
{
    for (;;) {
        if (buf_cap - buf_len < 65536) {
            buf_cap = buf_cap ? buf_cap * 2 : 1 << 20;
            buf = realloc(buf, buf_cap);
            CHECK(buf != NULL, "out of memory");
        }
        ssize_t n = read(pipe_rd, buf + buf_len, buf_cap - buf_len);
        if (n == 0)
            return NULL;
        if (n < 0) {
            CHECK(errno == EINTR, "read: %s", strerror(errno));
            continue;
        }
        buf_len += (size_t)n;
        reads_done++;
    }
}

static void *writer(void *arg)
{
    int id = (int)(long)arg;
    for (int i = 0; i < NLINES; i++) {
        int r = printf("thread %02d line %05d %s\n", id, i, PAYLOAD);
        CHECK(r > 0, "printf returned %d", r);
        if (i % 250 == 249)
            fflush(stdout);             /* explicit flushes race with implicit ones */
    }
    return NULL;
}

int main(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
    int saved_stdout = dup(1);
    CHECK(saved_stdout >= 0, "dup: %s", strerror(errno));
    CHECK(dup2(fds[1], 1) == 1, "dup2: %s", strerror(errno));
    close(fds[1]);
    pipe_rd = fds[0];

    /* stdout has not been used yet, so it picks full buffering for a pipe. */
    pthread_t rd, th[NTHREADS];
    CHECK(pthread_create(&rd, NULL, reader, NULL) == 0, "create reader");
    for (long i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, writer, (void *)i) == 0, "create writer %ld", i);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "join writer %d", i);
    CHECK(fflush(stdout) == 0, "fflush: %s", strerror(errno));
    /* Closing the last write end: the reader sees EOF. */
    CHECK(dup2(saved_stdout, 1) == 1, "dup2 back: %s", strerror(errno));
    close(saved_stdout);
    CHECK(pthread_join(rd, NULL) == 0, "join reader");

    int next[NTHREADS] = {0};
    long lines = 0, malformed = 0, out_of_order = 0;
    char expect[128];
    size_t pos = 0;
    while (pos < buf_len) {
        char *nl = memchr(buf + pos, '\n', buf_len - pos);
        if (!nl) {
            fprintf(stderr, "unterminated trailing data: '%.*s'\n", (int)(buf_len - pos), buf + pos);
            malformed++;
            break;
        }
        size_t len = (size_t)(nl - (buf + pos)) + 1;
        int t = -1, l = -1;
        lines++;
        if (sscanf(buf + pos, "thread %2d line %5d ", &t, &l) != 2 || t < 0 || t >= NTHREADS || l < 0 ||
            l >= NLINES) {
            if (malformed++ < 5)
                fprintf(stderr, "malformed line: '%.*s'\n", (int)len - 1, buf + pos);
        } else {
            int n = snprintf(expect, sizeof expect, "thread %02d line %05d %s\n", t, l, PAYLOAD);
            if ((size_t)n != len || memcmp(expect, buf + pos, len) != 0) {
                if (malformed++ < 5)
                    fprintf(stderr, "malformed line: '%.*s'\n", (int)len - 1, buf + pos);
            } else if (l != next[t]) {
                if (out_of_order++ < 5)
                    fprintf(stderr, "thread %d: line %d where %d was expected\n", t, l, next[t]);
                if (l > next[t])
                    next[t] = l + 1;
            } else {
                next[t]++;
            }
        }
        pos += len;
    }
    long missing = 0;
    for (int t = 0; t < NTHREADS; t++)
        if (next[t] != NLINES) {
            fprintf(stderr, "thread %d: only %d lines in order\n", t, next[t]);
            missing += NLINES - next[t];
        }
    fprintf(stderr, "reader did %ld read() calls for %zu bytes\n", reads_done, buf_len);

    printf("lines read: %ld (expected %d)\n", lines, NTHREADS * NLINES);
    printf("malformed: %ld\n", malformed);
    printf("out of order or duplicated: %ld\n", out_of_order);
    printf("missing: %ld\n", missing);
    int ok = lines == NTHREADS * NLINES && malformed == 0 && out_of_order == 0 && missing == 0;
    printf("%s\n", ok ? "all lines intact and in per-thread order" : "ERRORS");
    free(buf);
    return ok ? 0 : 1;
}
