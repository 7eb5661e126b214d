/*
 * The skeleton of the two thread-per-connection servers (echo-threads,
 * http-threads): accept a connection, start a detached thread for it,
 * count, and stop cleanly on SIGTERM/SIGINT with one line of statistics.
 */
#ifndef DEMO_THREADED_H
#define DEMO_THREADED_H

#include "demo.h"

/* Counters shared by every connection thread.  Each is touched once or
 * twice per connection (not per read), so a plain atomic is no hot spot. */
static atomic_ullong conns_accepted;    /* connections handed to a thread */
static atomic_ullong conns_closed;      /* connections whose thread ended */
static atomic_ullong create_failures;   /* pthread_create refused */
static atomic_llong conns_open;         /* accepted and not yet closed */
static atomic_llong conns_open_peak;

/* A connection thread calls this as it ends. */
static inline void conn_done(void)
{
    atomic_fetch_add(&conns_closed, 1);
    atomic_fetch_sub(&conns_open, 1);
}

static inline void note_open(void)
{
    long long open = atomic_fetch_add(&conns_open, 1) + 1;
    long long peak = atomic_load(&conns_open_peak);
    while (open > peak &&
           !atomic_compare_exchange_weak(&conns_open_peak, &peak, open))
        ;
}

struct acceptor {
    int lfd;
    void *(*serve)(void *);    /* gets the connection's fd as (intptr_t) */
};

/* The accept loop runs in its own thread so that the main thread can wait
 * for SIGTERM/SIGINT in sigwait(): a blocking accept() would not return
 * for a signal whose handler merely sets a flag (SA_RESTART), and without
 * SA_RESTART it would still miss a signal arriving just before the call. */
static inline void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Detached: nobody joins a connection thread; its resources go back
     * as soon as it returns. */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int warned_fd = 0, warned_thread = 0;
    for (;;) {
        int fd = accept(a->lfd, NULL, NULL);
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
        int err = pthread_create(&(pthread_t){0}, &attr, a->serve,
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

/* main() of a thread-per-connection server: listen, accept in a thread,
 * wait for SIGTERM/SIGINT, print one line of statistics ("what" names the
 * server's own counter, *work), exit 0. */
static inline int run_threaded_server(int argc, char **argv, const char *name,
                                      void *(*serve)(void *), const char *what,
                                      atomic_ullong *work)
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

    struct acceptor a = {.serve = serve};
    int bound;
    a.lfd = listen_on(port, 0, &bound);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    pthread_t acceptor;
    err = pthread_create(&acceptor, NULL, accept_loop, &a);
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
    printf("%s: %s after %.1f s: %llu connections served"
           " (%llu closed, %lld still open, peak %lld open at once),"
           " %llu %s on closed connections, %llu refused for"
           " lack of a thread\n",
           name, sig == SIGINT ? "SIGINT" : "SIGTERM", up,
           atomic_load(&conns_accepted), atomic_load(&conns_closed),
           atomic_load(&conns_open), atomic_load(&conns_open_peak),
           atomic_load(work), what, atomic_load(&create_failures));
    fflush(stdout);
    /* exit(), not a return into thread teardown: connection threads are
     * still blocked in read(); exit() ends them all with the process. */
    exit(0);
}

#endif
