/*
 * What the demo servers share: argument and limit handling, and the
 * listening socket on 127.0.0.1 (threaded.h adds the skeleton of the two
 * thread-per-connection servers). Header-only (static inline): each
 * server is one ordinary program, built from its .c file alone plus this.
 */
#ifndef DEMO_H
#define DEMO_H

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

static inline void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Thousands of connections need thousands of descriptors: the soft limit
 * up to the hard one (only root could go further). */
static inline void raise_nofile(void)
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

static inline int parse_port(int argc, char **argv)
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

/* Bind 127.0.0.1:port and listen; type_flags are or'ed into SOCK_STREAM
 * (SOCK_NONBLOCK for the epoll server). Returns the socket; *bound gets
 * the port actually bound (the kernel's choice when port is 0). */
static inline int listen_on(int port, int type_flags, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
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

#endif
