/* net_echo_many: a thread-per-connection TCP echo server and 1,000 client
 * threads in one process, all 1,000 connections open at once.
 * gmp-test: mode=compare timeout=180
 *
 * The server: a listening socket on 127.0.0.1 (ephemeral port), an accept
 * thread, one thread per connection doing blocking read() + write-all of
 * what it read, with a 16 KiB buffer (so reads and writes are partial).
 * The clients: 1,000 threads, each with a blocking connect(); once every
 * client is connected and the accept thread has accepted all 1,000 (main
 * waits for both), so that 1,000 server threads sit blocked in read() at
 * the same time, the clients are released. Each then exchanges NMSG
 * messages of pseudo-random size (1 B .. 256 KiB, a PRNG seeded from the
 * client number) whose bytes are a function of (client, message, offset),
 * so nothing big is stored. A client sends with send(MSG_DONTWAIT) and
 * reads with a blocking read() only when poll(POLLIN|POLLOUT) says POLLIN:
 * a client that wrote everything before reading would deadlock against
 * the echo once both directions' socket buffers are full. Every echoed
 * byte is verified; then the client shuts down its write side and expects
 * EOF (the server thread closes on EOF).
 *
 * Needs about 2,010 descriptors: the soft RLIMIT_NOFILE is raised to the
 * hard limit; a hard limit below 2,100 fails the test with a message.
 * Output (totals only) is deterministic.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/check.h"

#define NCLIENTS 1000
#define NMSG 2
#define MAXMSG (256 * 1024)
#define BUF (16 * 1024)
#define STACK (256 * 1024)

static unsigned short port;
static int lfd;

/* ---- data ---------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Size of message m of client c: 1 .. MAXMSG. */
static size_t msg_size(uint64_t *rng) { return 1 + (size_t)(splitmix(rng) % MAXMSG); }

/* Byte at offset off of message m of client c. Cheap, and offsets that
 * differ by a multiple of 256 (a lost or repeated 16 KiB chunk) differ. */
static inline unsigned char byte_at(unsigned c, unsigned m, size_t off)
{
    uint32_t x = (uint32_t)off * 2654435761u + c * 40503u + m * 977u;
    return (unsigned char)(x >> 24 ^ x >> 11 ^ (uint32_t)off);
}

/* ---- server ---------------------------------------------------------------- */

static _Atomic long long echoed_bytes;
static _Atomic int server_eofs;

static void *conn_main(void *arg)
{
    int c = (int)(long)arg;
    char buf[BUF];
    long long total = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0, "server read: %s", strerror(errno));
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(c, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            CHECK(w > 0, "server write: %s", w < 0 ? strerror(errno) : "0");
            done += w;
        }
        total += n;
    }
    CHECK(close(c) == 0, "server close: %s", strerror(errno));
    atomic_fetch_add(&echoed_bytes, total);
    atomic_fetch_add(&server_eofs, 1);
    return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static pthread_cond_t go_cv = PTHREAD_COND_INITIALIZER;
static int nconnected, naccepted, go;
static pthread_t conn_tid[NCLIENTS];
static pthread_attr_t attr;

static void *accept_main(void *arg)
{
    for (int i = 0; i < NCLIENTS; i++) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0 && errno == EINTR) {
            i--;
            continue;
        }
        CHECK(c >= 0, "accept #%d: %s", i, strerror(errno));
        int e = pthread_create(&conn_tid[i], &attr, conn_main, (void *)(long)c);
        CHECK(e == 0, "create server thread #%d: %s", i, strerror(e));
        pthread_mutex_lock(&mu);
        if (++naccepted == NCLIENTS)
            pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

/* ---- clients ----------------------------------------------------------------- */

struct result {
    long long bytes;
    int msgs;
};
static struct result results[NCLIENTS];

static void exchange(int s, unsigned c, unsigned m, size_t size)
{
    unsigned char out[BUF], in[BUF];
    size_t sent = 0, rcvd = 0;
    /* out[0 .. out_len) holds bytes from offset out_off not yet sent. */
    size_t out_off = 0, out_len = 0;
    while (rcvd < size) {
        struct pollfd p = {s, POLLIN | (sent < size ? POLLOUT : 0), 0};
        int r = poll(&p, 1, 30000);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r == 1, "client %u msg %u: poll = %d (%s), sent %zu rcvd %zu of %zu", c, m, r,
              r < 0 ? strerror(errno) : "timeout", sent, rcvd, size);
        CHECK(!(p.revents & (POLLERR | POLLNVAL)), "client %u: revents %#x", c, p.revents);
        if ((p.revents & POLLOUT) && sent < size) {
            if (out_len == 0) {
                out_off = sent;
                out_len = size - sent < BUF ? size - sent : BUF;
                for (size_t i = 0; i < out_len; i++)
                    out[i] = byte_at(c, m, out_off + i);
            }
            ssize_t w = send(s, out + (sent - out_off), out_len - (sent - out_off), MSG_DONTWAIT);
            if (w < 0) {
                CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR,
                      "client %u send: %s", c, strerror(errno));
            } else {
                CHECK(w > 0, "client %u: send returned 0", c);
                sent += (size_t)w;
                if (sent == out_off + out_len)
                    out_len = 0;
            }
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            size_t want = size - rcvd < sizeof in ? size - rcvd : sizeof in;
            ssize_t n = read(s, in, want);
            if (n < 0 && errno == EINTR)
                continue;
            CHECK(n > 0, "client %u msg %u: read = %zd (%s) at %zu of %zu", c, m, n,
                  n < 0 ? strerror(errno) : "EOF", rcvd, size);
            CHECK(rcvd + (size_t)n <= sent, "client %u: echo ahead of what was sent", c);
            for (ssize_t i = 0; i < n; i++)
                CHECK(in[i] == byte_at(c, m, rcvd + (size_t)i),
                      "client %u msg %u: byte %zu is %u, expected %u", c, m, rcvd + (size_t)i,
                      in[i], byte_at(c, m, rcvd + (size_t)i));
            rcvd += (size_t)n;
        }
    }
}

static void *client_main(void *arg)
{
    unsigned c = (unsigned)(long)arg;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0, "client %u socket: %s", c, strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r;
    while ((r = connect(s, (struct sockaddr *)&a, sizeof a)) != 0 && errno == EINTR)
        ;
    CHECK(r == 0, "client %u connect: %s", c, strerror(errno));

    pthread_mutex_lock(&mu);
    if (++nconnected == NCLIENTS)
        pthread_cond_broadcast(&changed);
    while (!go)
        pthread_cond_wait(&go_cv, &mu);
    pthread_mutex_unlock(&mu);

    uint64_t rng = 0x1234567ull + c * 0x10001ull;
    for (unsigned m = 0; m < NMSG; m++) {
        size_t size = msg_size(&rng);
        exchange(s, c, m, size);
        results[c].bytes += (long long)size;
        results[c].msgs++;
    }
    CHECK(shutdown(s, SHUT_WR) == 0, "client %u shutdown: %s", c, strerror(errno));
    char b;
    ssize_t n;
    while ((n = read(s, &b, 1)) < 0 && errno == EINTR)
        ;
    CHECK(n == 0, "client %u: expected EOF after shutdown, read = %zd (%s)", c, n,
          n < 0 ? strerror(errno) : "data");
    CHECK(close(s) == 0, "client %u close: %s", c, strerror(errno));
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit: %s", strerror(errno));
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2100) {
        printf("net_echo_many: needs 2,100 open files (2 per connection); the hard "
               "RLIMIT_NOFILE is %llu: raise it (ulimit -Hn)\n",
               (unsigned long long)rl.rlim_max);
        return 1;
    }
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));

    CHECK(pthread_attr_init(&attr) == 0, "attr_init");
    CHECK(pthread_attr_setstacksize(&attr, STACK) == 0, "setstacksize");

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(lfd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    CHECK(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "SO_REUSEADDR");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    CHECK(listen(lfd, 4096) == 0, "listen: %s", strerror(errno));
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0, "getsockname");
    port = ntohs(a.sin_port);

    pthread_t acc, cl[NCLIENTS];
    CHECK(pthread_create(&acc, &attr, accept_main, NULL) == 0, "create accept thread");
    for (long i = 0; i < NCLIENTS; i++) {
        int e = pthread_create(&cl[i], &attr, client_main, (void *)i);
        CHECK(e == 0, "create client %ld: %s", i, strerror(e));
    }

    /* Every connection open, every server thread started (and, with nothing
     * sent yet, blocked in read), every client waiting: release them. */
    pthread_mutex_lock(&mu);
    while (nconnected < NCLIENTS || naccepted < NCLIENTS)
        pthread_cond_wait(&changed, &mu);
    int open_at_once = nconnected == NCLIENTS && naccepted == NCLIENTS;
    go = 1;
    pthread_cond_broadcast(&go_cv);
    pthread_mutex_unlock(&mu);
    printf("connections open at once: %d client + %d server ends: %s\n", nconnected, naccepted,
           open_at_once ? "yes" : "no");

    for (int i = 0; i < NCLIENTS; i++)
        CHECK(pthread_join(cl[i], NULL) == 0, "join client %d", i);
    CHECK(pthread_join(acc, NULL) == 0, "join accept thread");
    for (int i = 0; i < NCLIENTS; i++)
        CHECK(pthread_join(conn_tid[i], NULL) == 0, "join server thread %d", i);
    CHECK(close(lfd) == 0, "close listener");

    long long bytes = 0;
    int msgs = 0, clients_done = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        bytes += results[i].bytes;
        msgs += results[i].msgs;
        clients_done += results[i].msgs == NMSG;
    }
    printf("clients: %d done of %d\n", clients_done, NCLIENTS);
    printf("messages: %d echoed and verified\n", msgs);
    printf("bytes verified by clients: %lld\n", bytes);
    printf("bytes echoed by server: %lld, connections closed on EOF: %d\n",
           (long long)atomic_load(&echoed_bytes), atomic_load(&server_eofs));
    CHECK(clients_done == NCLIENTS && msgs == NCLIENTS * NMSG, "not every client finished");
    CHECK(atomic_load(&echoed_bytes) == bytes, "server echoed %lld, clients verified %lld",
          (long long)atomic_load(&echoed_bytes), bytes);
    printf("done\n");
    return 0;
}
