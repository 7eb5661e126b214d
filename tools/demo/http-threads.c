/*
 * http-threads: a small thread-per-connection HTTP/1.1 server.
 *
 *   http-threads [PORT]        (PORT 0 or absent: an ephemeral port)
 *
 * Same style as echo-threads.c: a blocking accept() loop, one detached
 * pthread per connection, blocking reads.  It knows nothing of libgmp.
 *
 *   GET /          a short text body
 *   GET /bytes/N   N bytes (0 <= N <= 1 MiB) of a deterministic body:
 *                  byte i is 'a' + i % 26, so a client can check it
 *   HEAD           the same, without the body
 *   anything else  404 (unknown path), 405 (method other than GET/HEAD),
 *                  400 (malformed request, which also closes the connection)
 *
 * Keep-alive: HTTP/1.1 keeps the connection open unless the request says
 * "Connection: close"; HTTP/1.0 closes it unless it says
 * "Connection: keep-alive".  Pipelined requests are answered in order.
 * A request may carry a body only with Content-Length (it is read and
 * ignored); Transfer-Encoding is answered 501 and the connection closed,
 * because without decoding it the next request cannot be found.
 *
 * Listens on 127.0.0.1 only, prints "listening on PORT" on stdout and
 * flushes; SIGTERM/SIGINT print one line of statistics and exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD    8192            /* request line + headers, bytes */
#define MAX_BODY    (1 << 20)       /* largest /bytes/N */

/* The body of every /bytes/N is a prefix of this one buffer, filled once
 * at start: answering then costs no per-request generation or allocation. */
static char pattern[MAX_BODY];

#include "threaded.h"

static atomic_ullong requests_served;   /* added when a connection ends */

/* writev() until both pieces are out.  Head and body go in one call:
 * written separately, the small head would be sent alone and Nagle's
 * algorithm would then hold the body until the client's delayed ACK
 * (up to 40 ms on Linux) -- the classic keep-alive latency trap. */
static int writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 501: return "Not Implemented";
    default:  return "Error";
    }
}

/* Send one response.  Error bodies are a short line of text. */
static int respond(int fd, int status, bool keep, bool head_only,
                   const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: %s\r\n"
                     "\r\n",
                     status, reason(status), len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     keep ? "keep-alive" : "close");
    struct iovec iov[2] = {
        {.iov_base = head, .iov_len = (size_t)n},
        {.iov_base = (void *)body, .iov_len = head_only ? 0 : len},
    };
    return writev_all(fd, iov, iov[1].iov_len ? 2 : 1);
}

/* Does a comma-separated header value contain token tok (any case)? */
static bool has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *s = v;
        while (*v && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

/* A decimal number of at most max, nothing else: "/bytes/12" yes,
 * "/bytes/+1", "/bytes/1x", "/bytes/" no. */
static bool parse_count(const char *s, long max, long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

struct request {
    char *method, *target;
    int minor;                  /* HTTP/1.<minor> */
    bool keep_alive;
    long content_length;
    bool chunked;               /* any Transfer-Encoding at all */
};

/* Parse the head in buf (NUL-terminated in place of its final CRLFCRLF).
 * Returns 0, or 400 if it is malformed. */
static int parse_head(char *buf, struct request *rq)
{
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    if (!line)
        return 400;
    size_t ll = strlen(line);
    if (ll == 0 || line[ll - 1] != '\r')
        return 400;
    line[ll - 1] = '\0';
    /* request-line = method SP request-target SP HTTP-version */
    char *sp1 = strchr(line, ' ');
    if (!sp1 || sp1 == line)
        return 400;
    *sp1 = '\0';
    char *sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    *sp2 = '\0';
    rq->method = line;
    rq->target = sp1 + 1;
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/1.", 7) != 0 || ver[7] < '0' || ver[7] > '9' ||
        ver[8] != '\0')
        return 400;
    rq->minor = ver[7] - '0';
    for (const char *m = rq->method; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return 400;
    if (rq->target[0] != '/')         /* origin-form only */
        return 400;

    bool ka_token = false, close_token = false;
    rq->content_length = 0;
    rq->chunked = false;
    bool have_length = false;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        ll = strlen(line);
        if (line[ll - 1] != '\r')
            return 400;
        line[ll - 1] = '\0';
        /* obs-fold (a continuation line) is obsolete; RFC 9112 lets a
         * server reject it, which is simpler and safer than unfolding. */
        if (line[0] == ' ' || line[0] == '\t')
            return 400;
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return 400;
        for (char *c = line; c < colon; c++)
            if (*c == ' ' || *c == '\t')      /* no space before the colon */
                return 400;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (strcasecmp(line, "Connection") == 0) {
            close_token |= has_token(v, "close");
            ka_token |= has_token(v, "keep-alive");
        } else if (strcasecmp(line, "Content-Length") == 0) {
            long cl;
            /* Two different lengths would leave the body's end ambiguous. */
            if (!parse_count(v, 1L << 40, &cl) ||
                (have_length && cl != rq->content_length))
                return 400;
            rq->content_length = cl;
            have_length = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            rq->chunked = true;
        }
    }
    if (rq->minor >= 1)
        rq->keep_alive = !close_token;
    else
        rq->keep_alive = ka_token && !close_token;
    return 0;
}

/* The connection's input: requests arrive in buf; bytes past the current
 * request (pipelining) stay there for the next one. */
struct conn {
    int fd;
    char buf[MAX_HEAD + 1];
    size_t len;
};

/* Read until buf holds a complete head; return its length including the
 * CRLFCRLF, 0 on EOF/error before any byte of a new request, -1 on EOF or
 * error in the middle of one, -2 if the head does not fit in MAX_HEAD. */
static long read_head(struct conn *c)
{
    size_t scanned = 0;
    for (;;) {
        /* Look for the blank line only in bytes not scanned yet (minus 3,
         * in case the terminator straddles two reads). */
        for (size_t i = scanned; i + 4 <= c->len; i++)
            if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0)
                return (long)(i + 4);
        scanned = c->len >= 3 ? c->len - 3 : 0;
        if (c->len == MAX_HEAD)
            return -2;
        ssize_t n = read(c->fd, c->buf + c->len, MAX_HEAD - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return c->len == 0 ? 0 : -1;
        c->len += (size_t)n;
    }
}

/* Drop n bytes of request body: some are already buffered, the rest are
 * read and discarded. */
static int skip_body(struct conn *c, long n)
{
    size_t have = c->len < (size_t)n ? c->len : (size_t)n;
    memmove(c->buf, c->buf + have, c->len - have);
    c->len -= have;
    n -= (long)have;
    char sink[4096];
    while (n > 0) {
        ssize_t r = read(c->fd, sink, n < (long)sizeof sink ? (size_t)n
                                                            : sizeof sink);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n -= r;
    }
    return 0;
}

/* Close a connection the server chose to end (Connection: close, or an
 * error answer).  Closing a socket with unread input makes the kernel
 * send a reset, which can destroy the response before the client has read
 * it; so first half-close, then drain what the client still sends until
 * it closes too -- for at most 1 s and 1 MiB, or a client that never
 * closes would keep this thread forever. */
static void lingering_close(int fd)
{
    shutdown(fd, SHUT_WR);
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char sink[4096];
    for (size_t total = 0; total < (1u << 20);) {
        ssize_t n = read(fd, sink, sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    close(fd);
}

static void *serve(void *arg)
{
    /* The connection's buffer lives on the thread's stack, as in the
     * servers this imitates: 8 KiB is small beside a default stack. */
    struct conn c = {.fd = (int)(intptr_t)arg, .len = 0};
    unsigned long long served = 0;
    bool linger = false;        /* the server ends the connection */
    for (;;) {
        long hl = read_head(&c);
        if (hl == 0 || hl == -1)
            break;
        if (hl == -2) {
            static const char msg[] = "request head too large\n";
            respond(c.fd, 400, false, false, msg, sizeof msg - 1);
            linger = true;
            break;
        }
        /* Parse in place: the head is NUL-terminated over the CRLF of its
         * blank line.  A NUL byte inside it would hide the rest from the
         * string functions below, so it is malformed by definition here. */
        struct request rq;
        c.buf[hl - 2] = '\0';
        if (memchr(c.buf, '\0', (size_t)hl - 2) != NULL ||
            parse_head(c.buf, &rq) != 0) {
            static const char msg[] = "malformed request\n";
            respond(c.fd, 400, false, false, msg, sizeof msg - 1);
            linger = true;
            break;
        }
        if (rq.chunked) {
            static const char msg[] = "Transfer-Encoding not supported\n";
            respond(c.fd, 501, false, false, msg, sizeof msg - 1);
            linger = true;
            break;
        }

        /* Decide the answer while rq still points into the buffer. */
        bool keep = rq.keep_alive;
        bool head_only = strcmp(rq.method, "HEAD") == 0;
        int status;
        const char *body;
        size_t blen;
        char text[128];
        char *q = strchr(rq.target, '?');     /* the query is ignored */
        if (q)
            *q = '\0';
        long n;
        if (!head_only && strcmp(rq.method, "GET") != 0) {
            status = 405;
            body = "method not allowed\n";
            blen = strlen(body);
        } else if (strcmp(rq.target, "/") == 0) {
            status = 200;
            blen = (size_t)snprintf(text, sizeof text,
                                    "http-threads: hello (connection %llu)\n",
                                    (unsigned long long)atomic_load(
                                        &conns_accepted));
            body = text;
        } else if (strncmp(rq.target, "/bytes/", 7) == 0 &&
                   parse_count(rq.target + 7, MAX_BODY, &n)) {
            status = 200;
            body = pattern;
            blen = (size_t)n;
        } else {
            status = 404;
            body = "not found\n";
            blen = strlen(body);
        }

        /* Consume the head (pipelined bytes after it move to the front),
         * then any request body, then answer. */
        memmove(c.buf, c.buf + hl, c.len - (size_t)hl);
        c.len -= (size_t)hl;
        if (rq.content_length > 0 && skip_body(&c, rq.content_length) != 0)
            break;
        if (respond(c.fd, status, keep, head_only, body, blen) != 0)
            break;
        served++;
        if (!keep) {
            linger = true;
            break;
        }
    }
    if (linger)
        lingering_close(c.fd);
    else
        close(c.fd);
    atomic_fetch_add(&requests_served, served);
    conn_done();
    return NULL;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)('a' + i % 26);
    return run_threaded_server(argc, argv, "http-threads", serve,
                               "requests answered", &requests_served);
}
