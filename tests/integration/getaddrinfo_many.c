/* getaddrinfo_many: name resolution from many threads at once.
 * gmp-test: mode=compare timeout=60
 *
 * 50 threads, released together by a barrier, each call 20 times
 * getaddrinfo("localhost", "80") (AF_UNSPEC, SOCK_STREAM) and check that
 * the list holds a loopback address (127.0.0.1 or ::1) with port 80, then
 * freeaddrinfo it; after each lookup they also call getnameinfo on
 * 127.0.0.1:80 with NI_NUMERICHOST | NI_NUMERICSERV and check it gives back
 * "127.0.0.1" and "80". Resolution goes through glibc's NSS machinery
 * (nsswitch.conf, /etc/hosts, internal locks, per-thread resolver state in
 * TLS), all of which must work when threads are green threads sharing OS
 * threads. localhost resolves from /etc/hosts: no network beyond loopback
 * is used. Output is deterministic; details of any failure go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NTHREADS 50
#define ITERS 20

static pthread_barrier_t start;
static atomic_int failures;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

#define REPORT(id, it, ...)                                                  \
    do {                                                                     \
        if (atomic_fetch_add(&failures, 1) < 10) {                           \
            pthread_mutex_lock(&err_mu);                                     \
            fprintf(stderr, "FAIL thread %d iteration %d: ", id, it);        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            pthread_mutex_unlock(&err_mu);                                   \
        }                                                                    \
    } while (0)

/* 1 if ai is 127.0.0.1:80 or [::1]:80. */
static int is_loopback_80(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ai->ai_addr;
        return s->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && s->sin_port == htons(80);
    }
    if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ai->ai_addr;
        return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr) && s->sin6_port == htons(80);
    }
    return 0;
}

static void *resolver(void *arg)
{
    int id = (int)(long)arg;
    pthread_barrier_wait(&start);
    for (int it = 0; it < ITERS; it++) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int r = getaddrinfo("localhost", "80", &hints, &res);
        if (r != 0) {
            REPORT(id, it, "getaddrinfo(localhost, 80): %s", gai_strerror(r));
            continue;
        }
        int found = 0, count = 0;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next, count++)
            found |= is_loopback_80(ai);
        if (!found)
            REPORT(id, it, "getaddrinfo(localhost, 80) gave %d entries, none of them "
                           "127.0.0.1:80 or [::1]:80", count);
        freeaddrinfo(res);

        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_port = htons(80);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "";
        r = getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
                        sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
        if (r != 0)
            REPORT(id, it, "getnameinfo(127.0.0.1:80, NI_NUMERICHOST): %s", gai_strerror(r));
        else if (strcmp(host, "127.0.0.1") != 0 || strcmp(serv, "80") != 0)
            REPORT(id, it, "getnameinfo(127.0.0.1:80, NI_NUMERICHOST) gave host \"%s\" "
                           "serv \"%s\"", host, serv);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[NTHREADS];
    if (pthread_barrier_init(&start, NULL, NTHREADS) != 0) {
        fprintf(stderr, "FAIL: pthread_barrier_init\n");
        return 1;
    }
    for (long i = 0; i < NTHREADS; i++) {
        int r = pthread_create(&t[i], NULL, resolver, (void *)i);
        if (r != 0) {
            fprintf(stderr, "FAIL: pthread_create %ld: %s\n", i, strerror(r));
            return 1;
        }
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    int f = atomic_load(&failures);
    if (f > 10)
        fprintf(stderr, "(%d failures in all, first 10 shown)\n", f);
    printf("%d threads x %d getaddrinfo(localhost): all resolved to loopback: %s\n",
           NTHREADS, ITERS, f == 0 ? "yes" : "NO");
    return f == 0 ? 0 : 1;
}
