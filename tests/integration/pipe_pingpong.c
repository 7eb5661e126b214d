/* pipe_pingpong: threads talking through blocking pipes and sockets.
 * gmp-test: mode=compare
 *
 * Blocking read()/write() on fds is an ordinary thing for a threaded program
 * to do; under libgmp a G blocked in such a syscall occupies its M (unless
 * the runtime parks Gs on fds), and with GMP_MAXPROCS=1 the partner thread
 * must still get to run (syscall hand-off), or this deadlocks (timeout).
 *   - ping-pong: two threads bounce a counter 20,000 times over two pipes;
 *   - bulk: 8 MiB through one pipe, written in varying chunk sizes, read in
 *     other sizes, verified byte by byte (the writer blocks on a full pipe);
 *   - a socketpair ping-pong with 4-byte messages, 5,000 round trips;
 *   - poll() with a 100 ms timeout on an empty pipe returns 0, not early;
 *     poll() on a pipe that another thread writes to after 50 ms returns 1.
 * Output is deterministic.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static void read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r > 0, "read: %zd (%s)", r, r < 0 ? strerror(errno) : "EOF");
        p += r;
        n -= (size_t)r;
    }
}

static void write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r > 0, "write: %s", strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- ping-pong ---------------------------------------------------------------- */

#define ROUNDS 20000
static int to_b[2], to_a[2];

static void *pong_side(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t v;
        read_full(to_b[0], &v, sizeof v);
        v++;
        write_full(to_a[1], &v, sizeof v);
    }
    return NULL;
}

static void test_pingpong(void)
{
    pthread_t t;
    CHECK(pipe(to_b) == 0 && pipe(to_a) == 0, "pipe");
    CHECK(pthread_create(&t, NULL, pong_side, NULL) == 0, "create");
    uint32_t v = 0;
    long bad = 0;
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t sent = v;
        write_full(to_b[1], &v, sizeof v);
        read_full(to_a[0], &v, sizeof v);
        if (v != sent + 1)
            bad++;
    }
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("pipe ping-pong: %d round trips, final value %u, bad replies %ld\n", ROUNDS, v, bad);
    CHECK(v == ROUNDS && bad == 0, "ping-pong");
    close(to_b[0]);
    close(to_b[1]);
    close(to_a[0]);
    close(to_a[1]);
}

/* ---- bulk ------------------------------------------------------------------- */

#define BULK (8u << 20)
static int bulk[2];

static unsigned char pat(size_t i) { return (unsigned char)(i * 131u + (i >> 12)); }

static void *bulk_writer(void *arg)
{
    static unsigned char chunk[70000];
    size_t off = 0, k = 0;
    while (off < BULK) {
        size_t n = 1 + (k * 7919u) % sizeof chunk;
        if (n > BULK - off)
            n = BULK - off;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pat(off + i);
        write_full(bulk[1], chunk, n);
        off += n;
        k++;
    }
    close(bulk[1]);
    return NULL;
}

static void test_bulk(void)
{
    pthread_t t;
    static unsigned char buf[50000];
    CHECK(pipe(bulk) == 0, "pipe");
    CHECK(pthread_create(&t, NULL, bulk_writer, NULL) == 0, "create");
    size_t off = 0, k = 0, bad = 0;
    for (;;) {
        size_t want = 1 + (k * 104729u) % sizeof buf;
        ssize_t r = read(bulk[0], buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r >= 0, "read: %s", strerror(errno));
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pat(off + (size_t)i))
                bad++;
        off += (size_t)r;
        k++;
    }
    CHECK(pthread_join(t, NULL) == 0, "join");
    close(bulk[0]);
    printf("pipe bulk: %zu bytes received (expected %u), corrupted %zu\n", off, BULK, bad);
    CHECK(off == BULK && bad == 0, "bulk");
}

/* ---- socketpair --------------------------------------------------------------- */

#define SROUNDS 5000
static int sv[2];

static void *sock_echo(void *arg)
{
    for (int i = 0; i < SROUNDS; i++) {
        uint32_t v;
        read_full(sv[1], &v, sizeof v);
        v = v * 3 + 1;
        write_full(sv[1], &v, sizeof v);
    }
    return NULL;
}

static void test_socketpair(void)
{
    pthread_t t;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    CHECK(pthread_create(&t, NULL, sock_echo, NULL) == 0, "create");
    long bad = 0;
    uint32_t acc = 0;
    for (uint32_t i = 0; i < SROUNDS; i++) {
        uint32_t v = i, r;
        write_full(sv[0], &v, sizeof v);
        read_full(sv[0], &r, sizeof r);
        if (r != i * 3 + 1)
            bad++;
        acc ^= r;
    }
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("socketpair echo: %d round trips, xor %u, bad replies %ld\n", SROUNDS, acc, bad);
    CHECK(bad == 0, "socketpair");
    close(sv[0]);
    close(sv[1]);
}

/* ---- poll ----------------------------------------------------------------------- */

static int pp[2];
static void *late_writer(void *arg)
{
    usleep(50000);
    write_full(pp[1], "x", 1);
    return NULL;
}

static void test_poll(void)
{
    pthread_t t;
    CHECK(pipe(pp) == 0, "pipe");
    struct pollfd pfd = {pp[0], POLLIN, 0};
    double t0 = mono_ms();
    int r = poll(&pfd, 1, 100);
    double el = mono_ms() - t0;
    printf("poll(empty pipe, 100 ms) = %d\n", r);
    CHECK(r == 0, "poll returned %d", r);
    CHECK(el >= 99.0, "poll returned after only %.1f ms", el);   /* ms granularity */
    CHECK(el < 5000.0, "poll took %.0f ms", el);

    CHECK(pthread_create(&t, NULL, late_writer, NULL) == 0, "create");
    pfd.revents = 0;
    t0 = mono_ms();
    r = poll(&pfd, 1, 10000);
    el = mono_ms() - t0;
    printf("poll(pipe written after 50 ms, 10 s) = %d, revents POLLIN: %s\n", r, (pfd.revents & POLLIN) ? "yes" : "no");
    CHECK(r == 1 && (pfd.revents & POLLIN), "poll");
    CHECK(el < 5000.0, "poll took %.0f ms to see the data", el);
    CHECK(pthread_join(t, NULL) == 0, "join");
    close(pp[0]);
    close(pp[1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress survives a crash or timeout */
    test_pingpong();
    test_bulk();
    test_socketpair();
    test_poll();
    printf("done\n");
    return 0;
}
