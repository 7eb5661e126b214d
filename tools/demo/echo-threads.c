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

#include "threaded.h"

static atomic_ullong bytes_echoed;      /* added when a connection ends */

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
    conn_done();
    return NULL;
}

int main(int argc, char **argv)
{
    return run_threaded_server(argc, argv, "echo-threads", serve,
                               "bytes echoed", &bytes_echoed);
}
