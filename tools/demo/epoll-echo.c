/*
 * epoll-echo: the reference C10K echo server -- one thread, non-blocking
 * sockets, edge-triggered epoll.
 *
 *   epoll-echo [PORT]          (PORT 0 or absent: an ephemeral port)
 *
 * What a thread-per-connection server gets from the scheduler (a stack to
 * remember where each connection is, and being woken when its socket is
 * ready), this one does by hand: per-connection state in a small struct,
 * and a per-connection output buffer for what the kernel would not take
 * yet.  It is what libgmp's network poller is compared with in the demo
 * (tools/c10k.sh).
 *
 * Same interface as echo-threads: listens on 127.0.0.1, prints
 * "listening on PORT" on stdout and flushes; SIGTERM/SIGINT print one line
 * of statistics and exit 0 (taken from a signalfd in the same epoll set,
 * so a signal is just one more event for the single thread).
 */
#define _GNU_SOURCE                 /* accept4, epoll, signalfd */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How much one connection may do per turn before the others get theirs:
 * with edge triggering a connection that always has input would otherwise
 * keep the loop to itself. */
#define TURN_READS  16
#define READ_CHUNK  65536

/* Per connection: only what must survive between events.  The output
 * buffer exists only while the kernel refuses part of an echo, so an idle
 * connection costs this struct and nothing else. */
struct conn {
    int fd;
    bool eof;                   /* the peer has finished sending */
    bool queued;                /* on the ready list (turn budget spent) */
    char *out;                  /* bytes read but not yet written back */
    size_t out_len, out_off;
    struct conn *next_ready;
};

static struct conn *ready_head, *ready_tail;
static char rbuf[READ_CHUNK];   /* one read buffer, shared: one thread */
static unsigned long long conns_accepted, conns_closed, bytes_echoed;
static long long conns_open, conns_open_peak;
#include "demo.h"

static int spare_fd = -1;       /* see accept_all() */

static void close_conn(struct conn *c)
{
    /* close() also removes the descriptor from the epoll set (it is the
     * only reference to the open file). */
    close(c->fd);
    free(c->out);
    free(c);
    conns_closed++;
    conns_open--;
}

/* Write the pending output.  Returns 1 if all of it is out, 0 if the
 * kernel's send buffer is full (EPOLLOUT will say when to go on), -1 on
 * error. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 1;
}

static void make_ready(struct conn *c)
{
    if (c->queued)
        return;
    c->queued = true;
    c->next_ready = NULL;
    if (ready_tail)
        ready_tail->next_ready = c;
    else
        ready_head = c;
    ready_tail = c;
}

/* Do everything the connection can do now without blocking, within one
 * turn.  With edge triggering an event is a promise of nothing more: the
 * only safe place to stop is EAGAIN (the next edge will come), or a spent
 * budget with the connection put on the ready list (no edge will come for
 * input that is already there). */
static void service(struct conn *c)
{
    for (int reads = 0;; reads++) {
        /* Backpressure: while an earlier echo is not fully out, read no
         * more; what the peer sends waits in the kernel, and TCP flow
         * control slows the peer down instead of this buffer growing. */
        if (c->out) {
            int r = flush_out(c);
            if (r < 0)
                goto dead;
            if (r == 0)
                return;                 /* EPOLLOUT comes when there is room */
        }
        if (c->eof)
            goto dead;                  /* all echoed: done */
        if (reads == TURN_READS) {
            make_ready(c);
            return;
        }
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;                 /* EPOLLIN comes with more input */
            goto dead;
        }
        if (n == 0) {
            c->eof = true;              /* echo what is left, then close */
            continue;
        }
        bytes_echoed += (unsigned long long)n;
        /* Try to echo straight from the shared buffer; keep a copy of
         * only what the kernel refused. */
        size_t done = 0;
        while (done < (size_t)n) {
            ssize_t w = send(c->fd, rbuf + done, (size_t)n - done,
                             MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                goto dead;
            }
            done += (size_t)w;
        }
        if (done < (size_t)n) {
            c->out = malloc((size_t)n - done);
            if (!c->out)
                goto dead;
            memcpy(c->out, rbuf + done, (size_t)n - done);
            c->out_len = (size_t)n - done;
            c->out_off = 0;
        }
    }
dead:
    close_conn(c);
}

/* Accept every pending connection (edge-triggered: until EAGAIN).
 * Out of descriptors, the usual answer is to give back a spare one,
 * accept and close at once: the client sees its connection closed, but
 * the queue drains and, unlike stopping at EMFILE, the listener's edge is
 * not lost (nothing would wake us for connections already queued). */
static void accept_all(int epfd, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                static bool warned;
                if (!warned) {
                    warned = true;
                    perror("accept (closing connections while it lasts)");
                }
                close(spare_fd);
                fd = accept(lfd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                    return;
                continue;
            }
            perror("accept");
            return;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        /* Registered once for both directions, edge-triggered: no
         * epoll_ctl per state change, the cost of ET being that the
         * loop must always run to EAGAIN. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
                                           EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("epoll_ctl(ADD)");
            close(fd);
            free(c);
            continue;
        }
        conns_accepted++;
        if (++conns_open > conns_open_peak)
            conns_open_peak = conns_open;
        /* Data may have arrived before registration; ET reports a socket
         * that is already readable on ADD, but serving now costs nothing. */
        service(c);
    }
}

int main(int argc, char **argv)
{
    int port = parse_port(argc, argv);
    raise_nofile();

    /* The stop signals become readable events of a signalfd; blocked, they
     * never interrupt a system call or run a handler. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd");
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    int bound;
    int lfd = listen_on(port, SOCK_NONBLOCK | SOCK_CLOEXEC, &bound);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    /* The listener and the signalfd are told apart from connections by
     * their data.ptr: the addresses of these two ints. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0)
        die("epoll_ctl(listener)");
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &sfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) != 0)
        die("epoll_ctl(signalfd)");

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("listening on %d\n", bound);
    fflush(stdout);

    struct epoll_event evs[512];
    for (;;) {
        /* Connections that spent their turn still have work: do not sleep
         * while they wait. */
        int n = epoll_wait(epfd, evs, 512, ready_head ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &lfd) {
                accept_all(epfd, lfd);
            } else if (p == &sfd) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
                    continue;
                struct timespec t1;
                clock_gettime(CLOCK_MONOTONIC, &t1);
                double up = (double)(t1.tv_sec - t0.tv_sec) +
                            (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
                printf("epoll-echo: %s after %.1f s: %llu connections served"
                       " (%llu closed, %lld still open, peak %lld open at"
                       " once), %llu bytes echoed\n",
                       si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", up,
                       conns_accepted, conns_closed, conns_open,
                       conns_open_peak, bytes_echoed);
                fflush(stdout);
                exit(0);
            } else {
                struct conn *c = p;
                /* Already waiting on the ready list: its turn comes there
                 * (serving it twice is harmless, but unfair). */
                if (!c->queued)
                    service(c);
            }
        }
        /* One turn for each connection that was on the ready list when
         * this round began; those that spend it again go to the back. */
        struct conn *list = ready_head;
        ready_head = ready_tail = NULL;
        while (list) {
            struct conn *c = list;
            list = c->next_ready;
            c->queued = false;
            service(c);
        }
    }
}
