/*
 * echo-threads: a legacy thread-per-connection TCP echo server.
 *
 *   echo-threads [PORT]        (PORT 0 or absent: an ephemeral port)
 *
 * Written the way servers were written before event loops: a blocking
 * accept() loop, one detached pthread per connection with the default
 * stack size, and blocking read()/write() in each thread.  It knows
 * nothing of libgmp; the C10K demo (tools/c10k.sh) runs it natively and
 * under LD_PRELOAD=libgmp.so to compare the two, with epoll-echo.c as the
 * hand-written event-loop reference.
 *
 * Listens on 127.0.0.1 only.  Prints "listening on PORT" on stdout (and
 * flushes, so a script reading a pipe or a file sees it at once).
 * SIGTERM or SIGINT: prints one line of statistics and exits 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Counters shared by every connection thread.  Each is touched once or
 * twice per connection (not per read), so a plain atomic is no hot spot. */
static atomic_ullong conns_accepted;    /* connections handed to a thread */
static atomic_ullong conns_closed;      /* connections whose thread ended */
static atomic_ullong bytes_echoed;      /* added when a connection ends */
static atomic_ullong create_failures;   /* pthread_create refused */
static atomic_llong conns_open;         /* accepted and not yet closed */
static atomic_llong conns_open_peak;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* One listening socket and a thread per connection: the process needs one
 * descriptor per connection, so the default soft limit (often 1024) would
 * cap the server far below C10K.  Raising the soft limit to the hard limit
 * needs no privilege. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit(RLIMIT_NOFILE)");
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit(RLIMIT_NOFILE)");   /* keep going with less */
    }
}

static int parse_port(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
                                   strcmp(argv[1], "--help") == 0))) {
        fprintf(stderr, "usage: %s [PORT]   (0 or absent: ephemeral port)\n",
                argv[0]);
        exit(2);
    }
    if (argc < 2)
        return 0;
    char *end;
    errno = 0;
    long p = strtol(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[1] || p < 0 || p > 65535) {
        fprintf(stderr, "%s: bad port '%s' (0..65535)\n", argv[0], argv[1]);
        exit(2);
    }
    return (int)p;
}

/* Bind 127.0.0.1:port and listen.  Returns the socket; *bound gets the
 * port actually bound (the kernel's choice when port is 0). */
static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    /* A restarted server must not wait for old connections in TIME_WAIT. */
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die("setsockopt(SO_REUSEADDR)");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("bind 127.0.0.1");
    /* SOMAXCONN: the largest backlog the kernel takes (it clamps to
     * net.core.somaxconn anyway).  Thousands of clients connecting at once
     * must find room in the accept queue. */
    if (listen(fd, SOMAXCONN) != 0)
        die("listen");
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("getsockname");
    *bound = ntohs(sa.sin_port);
    return fd;
}

/* write() until all n bytes are out: a blocking socket may still accept
 * only part of a buffer (a signal, or a send buffer smaller than n). */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The whole per-connection protocol: read what arrives, write it back,
 * until EOF or an error.  The buffer lives on the thread's stack, as in
 * the servers this imitates; 16 KiB is far below the default stack. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    unsigned long long echoed = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)                   /* EOF, or reset: either way, done */
            break;
        if (write_all(fd, buf, (size_t)n) != 0)
            break;
        echoed += (unsigned long long)n;
    }
    close(fd);
    atomic_fetch_add(&bytes_echoed, echoed);
    atomic_fetch_add(&conns_closed, 1);
    atomic_fetch_sub(&conns_open, 1);
    return NULL;
}

static void note_open(void)
{
    long long open = atomic_fetch_add(&conns_open, 1) + 1;
    long long peak = atomic_load(&conns_open_peak);
    while (open > peak &&
           !atomic_compare_exchange_weak(&conns_open_peak, &peak, open))
        ;
}

/* The accept loop runs in its own thread so that the main thread can wait
 * for SIGTERM/SIGINT in sigwait(): a blocking accept() would not return
 * for a signal whose handler merely sets a flag (SA_RESTART), and without
 * SA_RESTART it would still miss a signal arriving just before the call. */
static void *accept_loop(void *arg)
{
    int lfd = *(int *)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Detached: nobody joins a connection thread; its resources go back
     * as soon as it returns. */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int warned_fd = 0, warned_thread = 0;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of descriptors or memory: the connection stays in
                 * the accept queue; try again once some have closed. */
                if (!warned_fd++)
                    perror("accept (will retry)");
                nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
                continue;
            }
            die("accept");
        }
        note_open();
        int err = pthread_create(&(pthread_t){0}, &attr, serve,
                                 (void *)(intptr_t)fd);
        if (err != 0) {
            /* No thread, no service: drop this connection rather than
             * the whole server (the client sees EOF). */
            if (!warned_thread++)
                fprintf(stderr, "pthread_create: %s (dropping connections"
                        " while this lasts)\n", strerror(err));
            atomic_fetch_add(&create_failures, 1);
            atomic_fetch_sub(&conns_open, 1);
            close(fd);
            continue;
        }
        atomic_fetch_add(&conns_accepted, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int port = parse_port(argc, argv);
    raise_nofile();
    /* A client that resets its connection must not kill the server through
     * SIGPIPE on the next write; the write fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);

    /* Block SIGTERM and SIGINT before any thread exists: every thread
     * inherits the mask, so the signals stay pending until the main thread
     * takes them in sigwait() and no connection thread is interrupted. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int err = pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (err != 0) {
        fprintf(stderr, "pthread_sigmask: %s\n", strerror(err));
        return 1;
    }

    int bound;
    int lfd = listen_on(port, &bound);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    pthread_t acceptor;
    err = pthread_create(&acceptor, NULL, accept_loop, &lfd);
    if (err != 0) {
        fprintf(stderr, "pthread_create(acceptor): %s\n", strerror(err));
        return 1;
    }
    printf("listening on %d\n", bound);
    fflush(stdout);

    int sig = 0;
    do {
        err = sigwait(&stop, &sig);
    } while (err == EINTR);
    if (err != 0) {
        fprintf(stderr, "sigwait: %s\n", strerror(err));
        return 1;
    }

    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double up = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("echo-threads: %s after %.1f s: %llu connections served"
           " (%llu closed, %lld still open, peak %lld open at once),"
           " %llu bytes echoed on closed connections, %llu refused for"
           " lack of a thread\n",
           sig == SIGINT ? "SIGINT" : "SIGTERM", up,
           atomic_load(&conns_accepted), atomic_load(&conns_closed),
           atomic_load(&conns_open), atomic_load(&conns_open_peak),
           atomic_load(&bytes_echoed), atomic_load(&create_failures));
    fflush(stdout);
    /* exit(), not a return into thread teardown: connection threads are
     * still blocked in read(); exit() ends them all with the process. */
    exit(0);
}
