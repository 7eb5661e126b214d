/*
 * loadgen: a closed-loop load generator for echo servers, for the C10K
 * demo (tools/c10k.sh).
 *
 *   loadgen --port P --conns N --size BYTES --duration SECS
 *           [--warmup SECS] [--host 127.0.0.1] [--connect-rate R]
 *           [--timeout SECS]
 *
 * One process, one thread, non-blocking sockets and edge-triggered epoll:
 * the generator must not need the thousands of threads it is measuring.
 *
 * 1. Ramp: open N connections, at most MAX_INFLIGHT at a time "in flight"
 *    and, with --connect-rate, at most R new attempts a second.  A
 *    connection stays in flight until its first echo has come back, not
 *    merely until connect() completes: the kernel completes the handshake
 *    for the server, which may not have accept()ed yet, and counting only
 *    handshakes would let thousands pile up in a listen backlog that
 *    drops SYNs when full (each drop costs the client a 1 s retransmit).
 *    Refused or timed-out attempts are retried with exponential backoff,
 *    at most MAX_RETRIES times; the whole ramp is cut off after 30 s.
 *    During the ramp a connection does that one confirming request and
 *    then waits: the connections already up would otherwise keep the
 *    server busy and slow every later connection's first echo (and so the
 *    ramp) to their latency.
 * 2. After the ramp, every connection runs request/response cycles: send
 *    BYTES bytes of a pattern that depends on (connection id, sequence number,
 *    offset), wait for exactly BYTES to come back, compare every byte,
 *    record the round trip, start the next.  Sending and receiving overlap
 *    (a large request is echoed while it is still being sent).
 * 3. After the ramp, --warmup seconds are not counted; then --duration
 *    seconds are.  Latencies go into a log-linear histogram (1/64
 *    resolution, under 1.6% error) from which the percentiles are read.
 *
 * Output: ONE line on stdout,
 *   conns=N connected=C requests=R req_per_s=X p50_us=.. p99_us=..
 *   p999_us=.. max_us=.. errors=E verify_errors=V
 * and details (progress, the kinds of error) on stderr.  errors counts
 * connections lost after connecting (reset, early EOF, I/O error, a
 * request outstanding longer than --timeout); connect failures show as
 * connected < conns.  Exit status 0 only if connected == N, errors == 0,
 * verify_errors == 0 and at least one request was measured.
 */
#define _GNU_SOURCE                 /* epoll, SOCK_NONBLOCK */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT     200    /* connects not yet confirmed by an echo */
#define MAX_RETRIES      8      /* per connection, for refused/timed out */
#define BACKOFF_FIRST_NS (10 * 1000 * 1000LL)      /* 10 ms, doubling */
#define BACKOFF_MAX_NS   (1000 * 1000 * 1000LL)    /* 1 s */
#define ATTEMPT_NS       (3 * 1000 * 1000 * 1000LL)/* one connect attempt */
#define RAMP_LIMIT_NS    (30 * 1000 * 1000 * 1000LL) /* the whole ramp */
#define TURN_OPS         16     /* I/O calls per connection per turn */
#define IO_CHUNK         65536
#define FD_MARGIN        32     /* stdio, epoll, slack */

enum state {
    S_WAIT,         /* not started, or waiting for a retry */
    S_CONNECTING,   /* non-blocking connect() in progress */
    S_ACTIVE,       /* connected, running request/response cycles */
    S_DONE,         /* closed on purpose, or failed for good */
};

struct conn {
    int fd;
    uint32_t id;
    enum state st;
    bool confirmed;         /* first echo came back: no longer in flight */
    bool idle;              /* ramp: first echo done, waiting for the rest */
    bool queued;            /* on the ready list */
    int retries;
    int64_t retry_at;       /* S_WAIT: earliest next attempt */
    int64_t attempt_start;  /* S_CONNECTING: when connect() was called */
    uint32_t seq;           /* request number on this connection */
    uint64_t pat;           /* pattern seed of the current request */
    size_t sent, recvd;     /* of the current request */
    int64_t req_start;      /* when its first byte was sent */
    struct conn *next_ready;
};

/* ---- options and global state ------------------------------------------ */

static struct {
    int port;
    long conns;
    size_t size;
    double duration, warmup, rate, timeout;
    const char *host;
} opt = {.port = -1, .conns = -1, .size = 0, .duration = -1,
         .warmup = 0, .rate = 0, .timeout = 5, .host = "127.0.0.1"};

static struct conn *conns;
static int epfd;
static struct sockaddr_in target;
static struct conn *ready_head, *ready_tail;
static unsigned char iobuf[IO_CHUNK];

static long n_connected, n_connect_failed, n_inflight, n_retry_waiting;
static long n_errors, n_verify_errors;
static long err_reset, err_eof, err_io, err_timeout;
static long connect_retries;
/* The measurement window; a request counts if it completes inside it.
 * Unknown until the ramp ends, hence "never" until then. */
static int64_t measure_start = INT64_MAX, measure_end = INT64_MAX;
static bool ramping = true;

/* ---- time ---------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- latency histogram --------------------------------------------------
 * Log-linear, as HdrHistogram: values below 2^SUB_BITS ns get a bucket
 * each; above, every power of two is split into 2^SUB_BITS/2 buckets, so
 * a bucket is at most 1/64 of its value wide.  Fixed size, O(1) insert,
 * no per-request allocation however long the run. */
#define SUB_BITS  7
#define SUB_COUNT (1 << SUB_BITS)
#define HALF      (SUB_COUNT / 2)
#define MAX_EXP   40                /* 2^40 ns = 18 minutes, plenty */
#define NBUCKETS  (SUB_COUNT + (MAX_EXP - SUB_BITS) * HALF)

static uint64_t hist[NBUCKETS];
static uint64_t hist_count;
static int64_t hist_max;

static int bucket_of(int64_t v)
{
    if (v < SUB_COUNT)
        return (int)v;
    int e = 63 - __builtin_clzll((unsigned long long)v);   /* >= SUB_BITS */
    if (e >= MAX_EXP)
        return NBUCKETS - 1;
    int sub = (int)(v >> (e - SUB_BITS + 1)) - HALF;        /* 0..HALF-1 */
    return SUB_COUNT + (e - SUB_BITS) * HALF + sub;
}

/* The midpoint of a bucket: the value a percentile falling in it reports. */
static double bucket_mid(int b)
{
    if (b < SUB_COUNT)
        return b;
    int e = (b - SUB_COUNT) / HALF + SUB_BITS;
    int sub = (b - SUB_COUNT) % HALF + HALF;
    double width = ldexp(1.0, e - SUB_BITS + 1);
    return (double)sub * width + width / 2;
}

static void hist_add(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    hist[bucket_of(ns)]++;
    hist_count++;
    if (ns > hist_max)
        hist_max = ns;
}

static double hist_pct(double p)
{
    if (hist_count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)hist_count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) {
            double v = bucket_mid(b);
            return v > (double)hist_max ? (double)hist_max : v;
        }
    }
    return (double)hist_max;
}

/* ---- the byte pattern ---------------------------------------------------
 * Byte i of request seq on connection id.  It depends on all three, so an
 * echo that is shifted, stale (an earlier request's bytes), or crossed
 * with another connection's shows up as a mismatch. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;     /* splitmix64 */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline unsigned char pat_byte(uint64_t seed, size_t i)
{
    return (unsigned char)((seed >> (8 * (i & 7))) + (i >> 3) * 0x3b);
}

/* ---- connections ---------------------------------------------------------- */

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

static void leave_inflight(struct conn *c)
{
    if (!c->confirmed) {
        c->confirmed = true;
        n_inflight--;
    }
}

/* Close an established connection for good. */
static void drop(struct conn *c)
{
    leave_inflight(c);
    close(c->fd);
    c->fd = -1;
    c->st = S_DONE;
}

/* An established connection failed: count it (kind says how) and drop it. */
static void lose(struct conn *c, long *kind)
{
    (*kind)++;
    n_errors++;
    drop(c);
}

/* The echo is not what was sent: the stream is out of step and nothing
 * after this point can be trusted, so the connection goes too. */
static void mismatch(struct conn *c)
{
    n_verify_errors++;
    drop(c);
}

static void start_request(struct conn *c, int64_t t)
{
    c->pat = mix64(((uint64_t)c->id << 32) | c->seq);
    c->sent = c->recvd = 0;
    c->req_start = t;
}

/* A connect attempt failed in a way worth retrying later (refused: the
 * backlog was full or the server not up yet; no ports or buffers; timed
 * out). */
static void retry_later(struct conn *c, int err)
{
    close(c->fd);
    c->fd = -1;
    n_inflight--;
    if (++c->retries > MAX_RETRIES) {
        c->st = S_DONE;
        if (n_connect_failed++ < 5)     /* the summary at the end counts all */
            fprintf(stderr, "loadgen: connection %u: giving up after %d "
                    "attempts: %s\n", c->id, MAX_RETRIES + 1, strerror(err));
        return;
    }
    connect_retries++;
    n_retry_waiting++;
    int64_t back = BACKOFF_FIRST_NS << (c->retries - 1);
    if (back > BACKOFF_MAX_NS)
        back = BACKOFF_MAX_NS;
    c->st = S_WAIT;
    c->retry_at = now_ns() + back;
}

/* A connect attempt failed in a way a retry would not fix. */
static void connect_failed(struct conn *c, const char *call, int err)
{
    if (n_connect_failed++ < 5)     /* the summary at the end counts all */
        fprintf(stderr, "loadgen: connection %u: %s: %s\n", c->id, call,
                strerror(err));
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    n_inflight--;
    c->st = S_DONE;
}

static bool retryable(int err)
{
    return err == ECONNREFUSED || err == EAGAIN || err == ETIMEDOUT ||
           err == ENOBUFS || err == EADDRNOTAVAIL || err == ECONNRESET ||
           err == EINTR;
}

static void connected(struct conn *c, int64_t t)
{
    c->st = S_ACTIVE;
    n_connected++;
    c->seq = 0;
    start_request(c, t);
}

static void begin_connect(struct conn *c)
{
    n_inflight++;
    c->confirmed = false;
    c->attempt_start = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        /* Out of descriptors or memory: nothing a retry would fix soon. */
        c->fd = -1;
        connect_failed(c, "socket", errno);
        return;
    }
    c->fd = fd;
    /* Small requests must go out at once, not wait for the previous
     * segment's ACK (Nagle): latency is what is being measured. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
                                       EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        connect_failed(c, "epoll_ctl", errno);
        return;
    }
    c->st = S_CONNECTING;
    if (connect(fd, (struct sockaddr *)&target, sizeof target) == 0) {
        connected(c, now_ns());         /* loopback may complete at once */
        make_ready(c);
        return;
    }
    if (errno == EINPROGRESS)
        return;                         /* EPOLLOUT reports the outcome */
    int err = errno;
    if (retryable(err)) {
        retry_later(c, err);
    } else {
        connect_failed(c, "connect", err);
    }
}

/* Everything a connection can do now, within one turn (TURN_OPS calls):
 * finish connecting, send what the kernel takes, receive and verify what
 * has arrived, complete requests and start the next ones.  Edge-triggered:
 * stop only at EAGAIN in both directions, or with the connection on the
 * ready list. */
static void service(struct conn *c)
{
    int64_t t = now_ns();
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == 0) {
            /* EPOLLOUT without error means connected; an event with
             * neither (spurious) is told apart by getpeername. */
            struct sockaddr_in peer;
            socklen_t pl = sizeof peer;
            if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) != 0)
                return;                 /* still in progress */
            connected(c, t);
        } else if (retryable(err)) {
            retry_later(c, err);
            return;
        } else {
            connect_failed(c, "connect", err);
            return;
        }
    }
    if (c->st != S_ACTIVE)
        return;

    bool want_send = true, want_recv = true;
    for (int ops = 0; want_send || want_recv; ops++) {
        if (ops == TURN_OPS) {
            make_ready(c);
            return;
        }
        /* Send: generate the next chunk of the pattern and offer it. */
        if (want_send && c->sent < opt.size) {
            size_t n = opt.size - c->sent;
            if (n > sizeof iobuf)
                n = sizeof iobuf;
            for (size_t i = 0; i < n; i++)
                iobuf[i] = pat_byte(c->pat, c->sent + i);
            ssize_t w = send(c->fd, iobuf, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    want_send = false;
                else if (errno != EINTR) {
                    lose(c, errno == ECONNRESET || errno == EPIPE
                                ? &err_reset : &err_io);
                    return;
                }
            } else {
                c->sent += (size_t)w;
            }
        } else {
            want_send = false;
        }
        /* Receive: never more than the current request still owes, so a
         * byte past it (which the protocol forbids) is seen as such. */
        if (want_recv) {
            size_t owed = opt.size - c->recvd;
            size_t ask = owed == 0 ? 1 : owed;
            if (ask > sizeof iobuf)
                ask = sizeof iobuf;
            ssize_t r = recv(c->fd, iobuf, ask, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    want_recv = false;
                else if (errno != EINTR) {
                    lose(c, errno == ECONNRESET ? &err_reset : &err_io);
                    return;
                }
                continue;
            }
            if (r == 0) {
                lose(c, &err_eof);      /* the server closed on us */
                return;
            }
            if (owed == 0) {
                /* Bytes arrived that nobody sent: the server is broken. */
                fprintf(stderr, "loadgen: connection %u request %u: bytes"
                        " beyond the %zu sent\n", c->id, c->seq, opt.size);
                mismatch(c);
                return;
            }
            for (ssize_t i = 0; i < r; i++)
                if (iobuf[i] != pat_byte(c->pat, c->recvd + (size_t)i)) {
                    if (n_verify_errors < 5)
                        fprintf(stderr, "loadgen: connection %u request %u:"
                                " byte %zu is 0x%02x, expected 0x%02x\n",
                                c->id, c->seq, c->recvd + (size_t)i,
                                iobuf[i],
                                pat_byte(c->pat, c->recvd + (size_t)i));
                    mismatch(c);
                    return;
                }
            c->recvd += (size_t)r;
            if (c->recvd == opt.size && c->sent == opt.size) {
                t = now_ns();
                leave_inflight(c);
                if (t >= measure_start && t <= measure_end)
                    hist_add(t - c->req_start);
                c->seq++;
                if (ramping) {
                    /* Wait for the other connections; main() starts the
                     * next request when the ramp is over.  An EOF or stray
                     * bytes meanwhile still wake this connection up, and
                     * are caught above (nothing is owed). */
                    c->idle = true;
                    return;
                }
                start_request(c, t);
                want_send = want_recv = true;   /* a new request: both */
            }
        }
    }
}

/* ---- setup --------------------------------------------------------------- */

static void usage(const char *prog, int code)
{
    fprintf(code ? stderr : stdout,
            "usage: %s --port P --conns N --size BYTES --duration SECS\n"
            "          [--warmup SECS] [--host 127.0.0.1] [--connect-rate R]"
            " [--timeout SECS]\n"
            "  Opens N connections to an echo server (at most %d connecting"
            " at once,\n  at most R new attempts a second if given), then"
            " runs request/response\n  cycles of BYTES bytes on each, verified"
            " byte by byte, for SECS seconds\n  after a warm-up.  A request"
            " outstanding longer than --timeout (default 5)\n  is an error."
            "  One result line on stdout.\n",
            prog, MAX_INFLIGHT);
    exit(code);
}

static double parse_num(const char *prog, const char *name, const char *s,
                        double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "%s: bad %s '%s' (%g..%g)\n", prog, name, s, min, max);
        exit(2);
    }
    return v;
}

/* Each connection is a descriptor in this process (and one more in the
 * server's).  Raise the soft limit as far as the hard limit allows; if N
 * still does not fit, say so plainly rather than fail at connection 1021. */
static void fit_nofile(const char *prog)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit(RLIMIT_NOFILE)");
        exit(2);
    }
    rlim_t need = (rlim_t)opt.conns + FD_MARGIN;
    if (rl.rlim_cur < need) {
        struct rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
            /* Only a privileged process may raise the hard limit; try. */
            want.rlim_cur = want.rlim_max = need;
        }
        if (setrlimit(RLIMIT_NOFILE, &want) != 0 &&
            (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need)) {
            perror("setrlimit(RLIMIT_NOFILE)");
            exit(2);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr,
                "%s: %ld connections need %lu open files in this process"
                " (one per connection + %d), but RLIMIT_NOFILE allows %lu"
                " (hard limit %lu, which only root can raise: see `ulimit"
                " -Hn`, /etc/security/limits.conf, LimitNOFILE= for systemd)."
                " Use --conns %lu or fewer.\n",
                prog, opt.conns, (unsigned long)need, FD_MARGIN,
                (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max,
                rl.rlim_cur > FD_MARGIN ? (unsigned long)(rl.rlim_cur -
                                                          FD_MARGIN) : 0UL);
        exit(2);
    }
}

/* All N connections go to one server address, so each needs its own
 * local port: more than the ephemeral range holds cannot work. */
static void check_ports(const char *prog)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    long lo, hi;
    if (!f)
        return;
    if (fscanf(f, "%ld %ld", &lo, &hi) == 2 && hi >= lo &&
        opt.conns > hi - lo + 1)
        fprintf(stderr, "%s: warning: %ld connections to one address need as"
                " many local ports, but net.ipv4.ip_local_port_range has"
                " only %ld (%ld-%ld)\n",
                prog, opt.conns, hi - lo + 1, lo, hi);
    fclose(f);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"host", required_argument, NULL, 'H'},
        {"connect-rate", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = argv[0];
    int ch;
    while ((ch = getopt_long(argc, argv, "p:c:s:d:w:H:r:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': opt.port = (int)parse_num(prog, "--port", optarg, 1, 65535);
                  break;
        case 'c': opt.conns = (long)parse_num(prog, "--conns", optarg, 1,
                                              1000000);
                  break;
        case 's': opt.size = (size_t)parse_num(prog, "--size", optarg, 1,
                                               1 << 30);
                  break;
        case 'd': opt.duration = parse_num(prog, "--duration", optarg, 0.001,
                                           86400);
                  break;
        case 'w': opt.warmup = parse_num(prog, "--warmup", optarg, 0, 86400);
                  break;
        case 'H': opt.host = optarg; break;
        case 'r': opt.rate = parse_num(prog, "--connect-rate", optarg, 0,
                                       1e9);
                  break;
        case 't': opt.timeout = parse_num(prog, "--timeout", optarg, 0.001,
                                          86400);
                  break;
        case 'h': usage(prog, 0); break;
        default:  usage(prog, 2);
        }
    }
    if (optind != argc || opt.port < 0 || opt.conns < 0 || opt.size == 0 ||
        opt.duration < 0) {
        fprintf(stderr, "%s: --port, --conns, --size and --duration are"
                " required\n", prog);
        usage(prog, 2);
    }
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &target.sin_addr) != 1) {
        fprintf(stderr, "%s: --host must be an IPv4 address, not '%s'\n",
                prog, opt.host);
        exit(2);
    }
}

/* ---- main loop ------------------------------------------------------------ */

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    fit_nofile(argv[0]);
    check_ports(argv[0]);
    signal(SIGPIPE, SIG_IGN);       /* belt and braces with MSG_NOSIGNAL */

    conns = calloc((size_t)opt.conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("loadgen: setup");
        return 2;
    }
    for (long i = 0; i < opt.conns; i++) {
        conns[i].fd = -1;
        conns[i].id = (uint32_t)i;
        conns[i].st = S_WAIT;
    }

    const int64_t timeout_ns = (int64_t)(opt.timeout * 1e9);
    const int64_t t_begin = now_ns();
    int64_t ramp_end = 0;           /* 0 while ramping */
    int64_t last_progress = t_begin;
    double tokens = 1;              /* --connect-rate token bucket */
    int64_t tokens_at = t_begin;
    long next_new = 0;              /* next connection never attempted */
    int64_t next_retry_scan = t_begin;
    int64_t next_check = t_begin;   /* stuck connects and requests */
    struct epoll_event evs[1024];

    for (;;) {
        int64_t t = now_ns();

        /* -- ramp: start new attempts and due retries, within limits -- */
        if (!ramp_end) {
            if (opt.rate > 0) {
                tokens += (double)(t - tokens_at) / 1e9 * opt.rate;
                if (tokens > 1 + opt.rate / 100)    /* burst: 10 ms' worth */
                    tokens = 1 + opt.rate / 100;
                tokens_at = t;
            }
            /* Retries waiting for their backoff: found by a scan over all
             * N, at most every 10 ms.  New connections go first, in order. */
            bool scan = n_retry_waiting > 0 && t >= next_retry_scan;
            if (scan)
                next_retry_scan = t + 10 * 1000 * 1000;
            long i = 0;
            while (n_inflight < MAX_INFLIGHT &&
                   (opt.rate <= 0 || tokens >= 1)) {
                struct conn *c;
                if (next_new < opt.conns) {
                    c = &conns[next_new++];
                } else if (scan) {
                    while (i < opt.conns && !(conns[i].st == S_WAIT &&
                                              conns[i].retry_at <= t))
                        i++;
                    if (i == opt.conns)
                        break;
                    c = &conns[i++];
                    n_retry_waiting--;
                } else {
                    break;
                }
                tokens -= 1;
                begin_connect(c);
            }

            if (t - last_progress >= 1000000000LL) {
                fprintf(stderr, "loadgen: ramp: %ld/%ld connected, %ld"
                        " failed, %ld in flight, %.1f s\n", n_connected,
                        opt.conns, n_connect_failed, n_inflight,
                        (double)(t - t_begin) / 1e9);
                last_progress = t;
            }

            /* The ramp ends when every connection has connected and been
             * answered once, or failed for good -- or at the time limit. */
            bool settled = next_new == opt.conns && n_inflight == 0 &&
                           n_retry_waiting == 0;
            bool limit = t - t_begin > RAMP_LIMIT_NS;
            if (settled || limit) {
                if (!settled)
                    fprintf(stderr, "loadgen: ramp limit (%lld s) reached;"
                            " going on with what connected\n",
                            RAMP_LIMIT_NS / 1000000000LL);
                /* Whatever has not connected by now never will. */
                for (long k = 0; k < opt.conns; k++) {
                    struct conn *c = &conns[k];
                    if (c->st == S_WAIT || c->st == S_CONNECTING) {
                        if (c->fd >= 0)
                            close(c->fd);
                        c->fd = -1;
                        c->st = S_DONE;
                        n_connect_failed++;
                    }
                }
                n_retry_waiting = 0;
                ramp_end = t;
                ramping = false;
                /* Go: every connection that is up starts its cycles. */
                for (long k = 0; k < opt.conns; k++) {
                    struct conn *c = &conns[k];
                    if (c->st == S_ACTIVE && c->idle) {
                        c->idle = false;
                        start_request(c, t);
                        make_ready(c);
                    }
                }
                measure_start = t + (int64_t)(opt.warmup * 1e9);
                measure_end = measure_start + (int64_t)(opt.duration * 1e9);
                fprintf(stderr, "loadgen: %ld/%ld connected in %.2f s (%ld"
                        " retries); warm-up %.1f s, measuring %.1f s\n",
                        n_connected, opt.conns, (double)(t - t_begin) / 1e9,
                        connect_retries, opt.warmup, opt.duration);
            }
        }

        if (t >= measure_end)
            break;

        /* -- stuck connects and requests, every 10 ms while ramping (a
         * timed-out connect frees a slot) and every 100 ms after -- */
        if (t >= next_check) {
            next_check = t + (ramp_end ? 100 : 10) * 1000 * 1000;
            for (long k = 0; k < opt.conns; k++) {
                struct conn *c = &conns[k];
                if (c->st == S_CONNECTING && t - c->attempt_start > ATTEMPT_NS)
                    retry_later(c, ETIMEDOUT);
                else if (c->st == S_ACTIVE && !c->idle &&
                         t - c->req_start > timeout_ns) {
                    if (err_timeout < 5)
                        fprintf(stderr, "loadgen: connection %u request %u:"
                                " no complete echo after %.1f s (%zu/%zu"
                                " bytes sent, %zu received)\n", c->id,
                                c->seq, (double)(t - c->req_start) / 1e9,
                                c->sent, opt.size, c->recvd);
                    lose(c, &err_timeout);
                }
            }
        }
        if (ramp_end && n_errors + n_verify_errors >= n_connected) {
            fprintf(stderr, "loadgen: no connection left\n");
            break;
        }

        /* -- wait, but not past the next thing the clock must do -- */
        int64_t wake = next_check;
        if (!ramp_end && n_retry_waiting > 0 && next_retry_scan < wake)
            wake = next_retry_scan;
        if (measure_start > t && measure_start < wake)
            wake = measure_start;
        if (measure_end < wake)
            wake = measure_end;
        int ms = ready_head ? 0 : (int)((wake - t + 999999) / 1000000);
        if (ms < 0)
            ms = 0;
        if (!ramp_end && opt.rate > 0 && ms > 1)
            ms = 1;                 /* the token bucket refills by the ms */
        int n = epoll_wait(epfd, evs, 1024, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("loadgen: epoll_wait");
            return 2;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (!c->queued && c->st != S_DONE)
                service(c);
        }
        struct conn *list = ready_head;
        ready_head = ready_tail = NULL;
        while (list) {
            struct conn *c = list;
            list = c->next_ready;
            c->queued = false;
            if (c->st != S_DONE)
                service(c);
        }
    }

    /* Requests still outstanding at the end are not errors: they were cut
     * off by the clock (stuck ones were caught by --timeout above). */
    int64_t t_end = now_ns();
    double window = 0;
    if (measure_start != INT64_MAX && t_end > measure_start)
        window = (double)((t_end < measure_end ? t_end : measure_end) -
                          measure_start) / 1e9;
    for (long i = 0; i < opt.conns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);

    if (n_errors || n_verify_errors || n_connect_failed)
        fprintf(stderr, "loadgen: %ld connect failures; errors: %ld reset,"
                " %ld early EOF, %ld I/O, %ld timed out; %ld verify errors\n",
                n_connect_failed, err_reset, err_eof, err_io, err_timeout,
                n_verify_errors);
    if (hist_count == 0)
        fprintf(stderr, "loadgen: no request completed in the measurement"
                " window\n");
    printf("conns=%ld connected=%ld requests=%llu req_per_s=%.0f p50_us=%.1f"
           " p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%ld"
           " verify_errors=%ld\n",
           opt.conns, n_connected, (unsigned long long)hist_count,
           window > 0 ? (double)hist_count / window : 0.0,
           hist_pct(50) / 1e3, hist_pct(99) / 1e3, hist_pct(99.9) / 1e3,
           (double)hist_max / 1e3, n_errors, n_verify_errors);
    fflush(stdout);
    return n_connected == opt.conns && n_errors == 0 &&
           n_verify_errors == 0 && hist_count > 0 ? 0 : 1;
}
