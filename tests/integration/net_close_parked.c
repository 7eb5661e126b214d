/* net_close_parked: a thread blocked on a descriptor that another thread
 * closes wakes up with EBADF, and the number's next file is not disturbed.
 * gmp-test: mode=selfcheck native=skip timeout=60
 *
 * Natively, Linux does not wake a read()/accept()/poll() blocked on an fd
 * that another thread closes (the call holds its own reference to the
 * file and keeps waiting), so this runs only under libgmp, whose network
 * poller documents that a G parked in read/recv/accept/poll on an fd that
 * another thread closes wakes, with EBADF (POLLNVAL for poll):
 *  (a) read() on one end of a socketpair: main sleeps 100 ms, closes the
 *      fd; the reader returns -1/EBADF within 2 s; the same for recv(),
 *      and for write() blocked on a full socketpair;
 *  (b) accept() on a listening socket on 127.0.0.1: the same;
 *  (c) poll(POLLIN) on the fd: returns 1 with revents POLLNVAL; several
 *      threads (read, recv, poll) parked on one fd all wake;
 *  (d) fd reuse: a new socketpair/listener gets the closed number and
 *      works normally: a byte written arrives, the old peer's write gets
 *      EPIPE and wakes nobody, a blocking read (accept) on the number
 *      blocks until data (a connection) arrives 50 ms later.
 * A watchdog (alarm(10)) turns a hang into a failure. Prints "ok" lines.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static const char *volatile current = "setup";

static void on_alarm(int sig)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "FAIL watchdog: still running after 10 s in case '%s' "
                     "(a thread parked on a closed fd never woke?)\n", current);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        _exit(3);
    _exit(2);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- one blocked call, run by a thread -------------------------------------- */

enum op { OP_READ, OP_RECV, OP_WRITE, OP_ACCEPT, OP_POLL };
static const char *op_name[] = {"read", "recv", "write", "accept", "poll"};

struct blocked {
    enum op op;
    int fd;
    long ret;
    int err;
    short revents;
    char byte;
    _Atomic int done;
    double t_done;
    pthread_t tid;
};

static void *blocked_main(void *arg)
{
    struct blocked *b = arg;
    char c = 0;
    long r;
    struct pollfd p = {b->fd, POLLIN, 0};
    errno = 0;
    switch (b->op) {
    case OP_READ:
        r = read(b->fd, &c, 1);
        break;
    case OP_RECV:
        r = recv(b->fd, &c, 1, 0);
        break;
    case OP_WRITE:
        c = 'w';
        r = write(b->fd, &c, 1);
        break;
    case OP_ACCEPT:
        r = accept(b->fd, NULL, NULL);
        break;
    default:
        r = poll(&p, 1, -1);
        break;
    }
    b->err = errno;
    b->ret = r;
    b->byte = c;
    b->revents = p.revents;
    b->t_done = mono_ms();
    atomic_store(&b->done, 1);
    return NULL;
}

static void start(struct blocked *b, enum op op, int fd)
{
    memset(b, 0, sizeof *b);
    b->op = op;
    b->fd = fd;
    CHECK(pthread_create(&b->tid, NULL, blocked_main, b) == 0, "pthread_create");
}

/* Let the threads block, close fd, and check that each woke with EBADF
 * (POLLNVAL for poll) within 2 s. */
static void close_under(const char *what, int fd, struct blocked *bs, int n)
{
    usleep(100 * 1000);
    for (int i = 0; i < n; i++)
        CHECK(!atomic_load(&bs[i].done), "%s: %s returned %ld (%s) before the close", what,
              op_name[bs[i].op], bs[i].ret, ename(bs[i].err));
    double t0 = mono_ms();
    CHECK(close(fd) == 0, "%s: close: %s", what, strerror(errno));
    for (int i = 0; i < n; i++) {
        CHECK(pthread_join(bs[i].tid, NULL) == 0, "join");
        struct blocked *b = &bs[i];
        double waited = b->t_done - t0;
        if (b->op == OP_POLL)
            CHECK(b->ret == 1 && b->revents == POLLNVAL,
                  "%s: poll on the closed fd returned %ld (%s), revents %#x; expected 1, POLLNVAL",
                  what, b->ret, ename(b->err), (unsigned)b->revents);
        else
            CHECK(b->ret == -1 && b->err == EBADF,
                  "%s: %s on the closed fd returned %ld, errno %s; expected -1, EBADF", what,
                  op_name[b->op], b->ret, ename(b->err));
        CHECK(waited < 2000.0, "%s: %s woke %.0f ms after the close", what, op_name[b->op],
              waited);
    }
}

/* ---- helpers ------------------------------------------------------------------- */

static int listener(unsigned short *port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    CHECK(listen(l, 16) == 0, "listen: %s", strerror(errno));
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0, "getsockname");
    *port = ntohs(a.sin_port);
    return l;
}

static int connect_to(unsigned short port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(s, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return s;
}

/* Fill the socket's send buffer (and the peer's receive buffer). */
static void fill(int fd)
{
    static char junk[65536];
    for (;;) {
        ssize_t r = send(fd, junk, sizeof junk, MSG_DONTWAIT);
        if (r < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "fill: %s", strerror(errno));
            return;
        }
    }
}

/* ---- cases ------------------------------------------------------------------- */

static void case_one(enum op op)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    if (op == OP_WRITE)
        fill(sv[0]);
    struct blocked b;
    start(&b, op, sv[0]);
    close_under(op_name[op], sv[0], &b, 1);
    close(sv[1]);
    if (op == OP_POLL)
        printf("ok poll(POLLIN) parked on a socketpair end that another thread closes: 1, POLLNVAL\n");
    else
        printf("ok %s parked on a socketpair end that another thread closes: -1, EBADF\n",
               op_name[op]);
}

static void case_accept(void)
{
    unsigned short port;
    int l = listener(&port);
    struct blocked b;
    start(&b, OP_ACCEPT, l);
    close_under("accept", l, &b, 1);
    printf("ok accept parked on a listening socket that another thread closes: -1, EBADF\n");
}

static void case_many(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    struct blocked bs[5];
    start(&bs[0], OP_READ, sv[0]);
    start(&bs[1], OP_READ, sv[0]);
    start(&bs[2], OP_RECV, sv[0]);
    start(&bs[3], OP_POLL, sv[0]);
    start(&bs[4], OP_POLL, sv[0]);
    close_under("five waiters", sv[0], bs, 5);
    close(sv[1]);
    printf("ok five threads (2 read, 1 recv, 2 poll) parked on one fd all wake on its close\n");
}

static void case_reuse_socketpair(void)
{
    int sv[2], nv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    int num = sv[0];
    struct blocked b;
    start(&b, OP_READ, sv[0]);
    close_under("reuse: first read", sv[0], &b, 1);

    /* The lowest free number is the one just closed. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, nv) == 0, "socketpair: %s", strerror(errno));
    CHECK(nv[0] == num, "the new socketpair got fds %d,%d, not the closed %d", nv[0], nv[1], num);

    /* A byte written arrives. */
    CHECK(write(nv[1], "A", 1) == 1, "write: %s", strerror(errno));
    char c = 0;
    CHECK(read(nv[0], &c, 1) == 1 && c == 'A', "read on the reused number: %s", strerror(errno));

    /* The old socket's peer now writes into nothing: EPIPE (SIGPIPE is
     * ignored), and must not disturb the new file on the number. */
    errno = 0;
    CHECK(write(sv[1], "X", 1) == -1 && errno == EPIPE, "write to the old peer: errno %s",
          ename(errno));

    /* A blocking read on the reused number blocks until data comes. */
    start(&b, OP_READ, nv[0]);
    usleep(50 * 1000);
    CHECK(!atomic_load(&b.done), "read on the reused number returned %ld (%s) with no data",
          b.ret, ename(b.err));
    CHECK(write(sv[1], "Y", 1) == -1 && errno == EPIPE, "write to the old peer again");
    usleep(20 * 1000);
    CHECK(!atomic_load(&b.done), "read on the reused number woke for the old peer's write: %ld (%s)",
          b.ret, ename(b.err));
    double t0 = mono_ms();
    CHECK(write(nv[1], "B", 1) == 1, "write: %s", strerror(errno));
    CHECK(pthread_join(b.tid, NULL) == 0, "join");
    CHECK(b.ret == 1 && b.byte == 'B', "read on the reused number: %ld (%s), byte %#x", b.ret,
          ename(b.err), (unsigned char)b.byte);
    CHECK(b.t_done - t0 < 2000.0, "read took %.0f ms to see the data", b.t_done - t0);

    /* And once more with the data already there before the read. */
    CHECK(write(nv[1], "C", 1) == 1, "write");
    CHECK(read(nv[0], &c, 1) == 1 && c == 'C', "read C");
    close(nv[0]);
    close(nv[1]);
    close(sv[1]);
    printf("ok a new socketpair on the closed number works: data arrives, a blocking read "
           "waits for it, the old peer gets EPIPE and wakes nobody\n");
}

static void case_reuse_listener(void)
{
    unsigned short port, port2;
    int l = listener(&port);
    int num = l;
    struct blocked b;
    start(&b, OP_ACCEPT, l);
    close_under("reuse: first accept", l, &b, 1);

    int l2 = listener(&port2);
    CHECK(l2 == num, "the new listener got fd %d, not the closed %d", l2, num);
    start(&b, OP_ACCEPT, l2);
    usleep(50 * 1000);
    CHECK(!atomic_load(&b.done), "accept on the reused number returned %ld (%s) with no client",
          b.ret, ename(b.err));
    double t0 = mono_ms();
    int s = connect_to(port2);
    CHECK(pthread_join(b.tid, NULL) == 0, "join");
    CHECK(b.ret >= 0, "accept on the reused number: %s", ename(b.err));
    CHECK(b.t_done - t0 < 2000.0, "accept took %.0f ms to see the connection", b.t_done - t0);
    int a = (int)b.ret;
    CHECK(write(s, "Z", 1) == 1, "write");
    char c = 0;
    CHECK(read(a, &c, 1) == 1 && c == 'Z', "read on the accepted connection");
    close(a);
    close(s);
    close(l2);
    printf("ok a new listener on the closed number works: accept waits for a client and gets it\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(10);

    current = "read";
    case_one(OP_READ);
    current = "recv";
    case_one(OP_RECV);
    current = "write";
    case_one(OP_WRITE);
    current = "poll";
    case_one(OP_POLL);
    current = "accept";
    case_accept();
    current = "five waiters";
    case_many();
    current = "reuse socketpair";
    case_reuse_socketpair();
    current = "reuse listener";
    case_reuse_listener();
    alarm(0);
    printf("done\n");
    return 0;
}
