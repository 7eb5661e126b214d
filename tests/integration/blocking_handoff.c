/* blocking_handoff: a thread blocked in the kernel must not stall the others.
 * gmp-test: mode=selfcheck timeout=90
 *
 * A "ticker" thread increments a counter after every 100 us nanosleep. For
 * each case below the ticker's rate is first measured with nothing blocked
 * (baseline, 0.5 s), then during a window in which another thread is blocked
 * in the kernel for about 1 s:
 *   (a) read() of a FIFO; a helper thread writes one byte after 1 s (the
 *       writer side is held open O_RDWR by the main thread);
 *   (b) waitpid() on a child that sleeps 1 s, then exits 0;
 *   (c) fsync() of a file into which 64 MiB was just written (in a mkdtemp
 *       directory under /tmp; its length here depends on the disk);
 *   (d) a raw syscall(SYS_futex, FUTEX_WAIT_PRIVATE) with a 1 s timeout
 *       that times out (no libc wrapper a runtime could hook by name);
 *   (e) fwrite() + fflush() of 256 KiB through stdio to a 64 KiB pipe whose
 *       reader only starts draining after 1 s (libc writes from inside
 *       itself, so only a monitor noticing the blocked OS thread helps).
 * Natively the kernel runs the ticker on its own OS thread. Under a
 * green-thread runtime with one P, a blocked OS thread that keeps its P
 * stops every other thread: the ticker then gets ~0 ticks (and in (a) and
 * (e) the helper that would unblock the call never runs at all: an alarm
 * turns that hang into a clear failure). A case passes if the rate during
 * the window is at least 50% of the baseline measured just before it AND
 * at least 200 ticks/s (the ticker's own rate depends on timer precision,
 * hence a bar relative to the same run). Cases (a), (b), (d), (e) must also
 * really have blocked for >= 0.8 s, or they tested nothing. Every temporary
 * file is removed, also on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 100000L              /* ticker period: 100 us */
#define BASELINE_S 0.5               /* baseline measurement window */
#define MIN_FRACTION 0.5             /* during >= 50% of baseline ... */
#define MIN_RATE 200.0               /* ... and >= 200 ticks/s */
#define MIN_BLOCK_S 0.8              /* a timed case must block this long */
#define FSYNC_BYTES (64L << 20)      /* (c): bytes written before fsync */
#define PIPE_BYTES (256L << 10)      /* (e): bytes fwritten to the pipe */
#define ALARM_S 60                   /* whole test; the runner allows 90 */
#define STR_(x) #x
#define STR(x) STR_(x)

#include "lib/check.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- temporary files, removed at exit whatever happens ----------------- */

static char tmpdir[64];
static char fifo_path[128];
static char data_path[128];
static pid_t parent_pid;

static void cleanup(void)
{
    if (getpid() != parent_pid)      /* a forked child must not clean up */
        return;
    if (fifo_path[0])
        unlink(fifo_path);
    if (data_path[0])
        unlink(data_path);
    if (tmpdir[0])
        rmdir(tmpdir);
}

/* ---- the alarm: a hang becomes a failure naming the case --------------- */

static const char *volatile current_case = "setup";

static void on_alarm(int sig)
{
    (void)sig;
    static const char pre[] = "FAIL: not finished after " STR(ALARM_S) " s, stuck in case ";
    static const char post[] =
        "\n(a blocked thread kept its P: the helper that would unblock it, "
        "or the ticker, never ran)\n";
    const char *c = current_case;
    ssize_t r = write(2, pre, sizeof pre - 1);
    r = write(2, c, strlen(c));
    r = write(2, post, sizeof post - 1);
    (void)r;
    cleanup();
    _exit(1);
}

/* ---- the ticker -------------------------------------------------------- */

static atomic_long ticks;
static atomic_int stop_ticker;

static void *ticker(void *arg)
{
    (void)arg;
    struct timespec ts = {0, TICK_NS};
    while (!atomic_load(&stop_ticker)) {
        nanosleep(&ts, NULL);
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

/* A measurement window: when it opened and closed, ticks at either end. */
struct window {
    double t0, t1;
    long k0, k1;
};

static void win_open(struct window *w)
{
    w->k0 = atomic_load(&ticks);
    w->t0 = now_s();
}

static void win_close(struct window *w)
{
    w->t1 = now_s();
    w->k1 = atomic_load(&ticks);
}

static double win_len(const struct window *w) { return w->t1 - w->t0; }

static double win_rate(const struct window *w)
{
    double d = win_len(w);
    return d > 0 ? (w->k1 - w->k0) / d : 0;
}

/* ---- (a) read() of a FIFO ---------------------------------------------- */

static int fifo_wfd;

static void *fifo_writer(void *arg)
{
    (void)arg;
    sleep_s(1.0);
    char c = 'x';
    CHECK(write(fifo_wfd, &c, 1) == 1, "write to FIFO: %s", strerror(errno));
    return NULL;
}

static void case_fifo(struct window *w)
{
    snprintf(fifo_path, sizeof fifo_path, "%s/fifo", tmpdir);
    CHECK(mkfifo(fifo_path, 0600) == 0, "mkfifo %s: %s", fifo_path, strerror(errno));
    /* O_RDWR on a FIFO never blocks on Linux, and keeps a writer present so
     * that the reader's open() does not block either. */
    fifo_wfd = open(fifo_path, O_RDWR);
    CHECK(fifo_wfd >= 0, "open FIFO O_RDWR: %s", strerror(errno));
    int rfd = open(fifo_path, O_RDONLY);
    CHECK(rfd >= 0, "open FIFO O_RDONLY: %s", strerror(errno));
    pthread_t h;
    win_open(w);
    CHECK(pthread_create(&h, NULL, fifo_writer, NULL) == 0, "pthread_create");
    char c = 0;
    ssize_t n;
    while ((n = read(rfd, &c, 1)) < 0 && errno == EINTR)
        ;
    win_close(w);
    CHECK(n == 1 && c == 'x', "read(FIFO) returned %zd (byte %d): %s", n, c,
          n < 0 ? strerror(errno) : "expected the helper's 'x'");
    pthread_join(h, NULL);
    close(rfd);
    close(fifo_wfd);
    unlink(fifo_path);
    fifo_path[0] = 0;
}

/* ---- (b) waitpid() on a child that sleeps 1 s -------------------------- */

static void case_waitpid(struct window *w)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        sleep_s(1.0);
        _exit(0);
    }
    int st = 0;
    pid_t r;
    win_open(w);
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    win_close(w);
    CHECK(r == pid, "waitpid returned %d: %s", (int)r, strerror(errno));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x, expected exit 0", st);
}

/* ---- (c) fsync() after writing 64 MiB ---------------------------------- */

static void case_fsync(struct window *w)
{
    snprintf(data_path, sizeof data_path, "%s/data", tmpdir);
    int fd = open(data_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s: %s", data_path, strerror(errno));
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    CHECK(buf != NULL, "malloc");
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (char)(i * 131 + 7);    /* not all zeros, not compressible */
    for (long done = 0; done < FSYNC_BYTES;) {
        buf[0] = (char)(done >> 20);
        ssize_t n = write(fd, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0, "write %s: %s", data_path, n < 0 ? strerror(errno) : "wrote 0");
        done += n;
    }
    free(buf);
    int r;
    win_open(w);
    while ((r = fsync(fd)) < 0 && errno == EINTR)
        ;
    win_close(w);
    CHECK(r == 0, "fsync: %s", strerror(errno));
    close(fd);
    unlink(data_path);
    data_path[0] = 0;
}

/* ---- (d) raw futex wait that times out after 1 s ----------------------- */

static void case_futex(struct window *w)
{
    static int word;    /* stays 0: nobody wakes it */
    struct timespec to;
    win_open(w);
    double deadline = w->t0 + 1.0;
    long r;
    int e;
    for (;;) {
        /* A signal handler (a runtime's, say) may interrupt the wait with
         * EINTR: wait again for what is left, as a careful program does. */
        double left = deadline - now_s();
        if (left <= 0) {
            r = -1;
            e = ETIMEDOUT;
            break;
        }
        to.tv_sec = (time_t)left;
        to.tv_nsec = (long)((left - (time_t)left) * 1e9);
        r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &to, NULL, 0);
        e = errno;
        if (!(r < 0 && e == EINTR))
            break;
    }
    win_close(w);
    CHECK(r < 0 && e == ETIMEDOUT, "futex wait returned %ld (%s), expected ETIMEDOUT", r,
          r < 0 ? strerror(e) : "no error");
}

/* ---- (e) fwrite() to a pipe drained only after 1 s --------------------- */

static int pipe_rfd;
static long pipe_got;
static int pipe_bad;

static unsigned char pattern(long i) { return (unsigned char)(i * 7 + (i >> 12)); }

static void *pipe_reader(void *arg)
{
    (void)arg;
    sleep_s(1.0);
    unsigned char buf[16384];
    for (;;) {
        ssize_t n = read(pipe_rfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0, "read(pipe): %s", strerror(errno));
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(pipe_got + i))
                pipe_bad = 1;
        pipe_got += n;
    }
    return NULL;
}

static void case_stdio_pipe(struct window *w)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    /* 64 KiB is the usual default; make sure (256 KiB cannot fit). */
    int sz = fcntl(p[1], F_SETPIPE_SZ, 65536);
    CHECK(sz >= 4096 && sz < PIPE_BYTES, "F_SETPIPE_SZ 64 KiB gave %d (%s)", sz,
          sz < 0 ? strerror(errno) : "too large to block");
    pipe_rfd = p[0];
    pipe_got = 0;
    pipe_bad = 0;
    FILE *f = fdopen(p[1], "w");
    CHECK(f != NULL, "fdopen: %s", strerror(errno));
    unsigned char *data = malloc(PIPE_BYTES);
    CHECK(data != NULL, "malloc");
    for (long i = 0; i < PIPE_BYTES; i++)
        data[i] = pattern(i);
    pthread_t h;
    win_open(w);
    CHECK(pthread_create(&h, NULL, pipe_reader, NULL) == 0, "pthread_create");
    size_t n = fwrite(data, 1, PIPE_BYTES, f);
    int fl = fflush(f);
    win_close(w);
    CHECK(n == (size_t)PIPE_BYTES && fl == 0, "fwrite wrote %zu of %ld, fflush %d: %s", n,
          PIPE_BYTES, fl, strerror(errno));
    CHECK(fclose(f) == 0, "fclose: %s", strerror(errno));    /* EOF for the reader */
    pthread_join(h, NULL);
    close(p[0]);
    free(data);
    CHECK(pipe_got == PIPE_BYTES && !pipe_bad, "reader got %ld of %ld bytes%s", pipe_got,
          PIPE_BYTES, pipe_bad ? ", corrupted" : "");
}

/* ---- driver ------------------------------------------------------------ */

struct blocking_case {
    const char *name;
    void (*run)(struct window *);
    int timed;                       /* must block >= MIN_BLOCK_S */
};

static const struct blocking_case cases[] = {
    {"(a) read(FIFO)", case_fifo, 1},
    {"(b) waitpid(child sleeping 1 s)", case_waitpid, 1},
    {"(c) fsync(64 MiB just written)", case_fsync, 0},
    {"(d) syscall(SYS_futex) 1 s timeout", case_futex, 1},
    {"(e) fwrite(256 KiB) to a full pipe", case_stdio_pipe, 1},
};

static void *run_case(void *arg)
{
    const struct blocking_case *c = arg;
    static struct window w;
    c->run(&w);
    return &w;
}

int main(void)
{
    parent_pid = getpid();
    signal(SIGALRM, on_alarm);
    alarm(ALARM_S);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gmp-blocking.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
    atexit(cleanup);

    pthread_t tk;
    CHECK(pthread_create(&tk, NULL, ticker, NULL) == 0, "pthread_create ticker");
    sleep_s(0.1);                    /* let the ticker get going */

    int ncases = (int)(sizeof cases / sizeof cases[0]), failed = 0;
    printf("%-38s %8s %12s %12s\n", "case", "blocked", "baseline/s", "during/s");
    for (int i = 0; i < ncases; i++) {
        const struct blocking_case *c = &cases[i];
        current_case = c->name;

        struct window base;
        win_open(&base);
        sleep_s(BASELINE_S);
        win_close(&base);

        /* The blocking call is made by a fresh thread, neither main nor the
         * ticker; main waits in pthread_join. */
        pthread_t b;
        void *res;
        CHECK(pthread_create(&b, NULL, run_case, (void *)c) == 0, "pthread_create");
        CHECK(pthread_join(b, &res) == 0, "pthread_join");
        const struct window *w = res;

        double rb = win_rate(&base), rd = win_rate(w), len = win_len(w);
        int ok_rate = rd >= MIN_FRACTION * rb && rd >= MIN_RATE;
        int ok_len = !c->timed || len >= MIN_BLOCK_S;
        printf("%-38s %6.3f s %12.0f %12.0f  %s\n", c->name, len, rb, rd,
               ok_rate && ok_len ? "PASS" : "FAIL");
        if (!ok_rate)
            printf("  -> ticker ran at %.0f ticks/s (%ld ticks in %.3f s) while the call "
                   "was blocked; needed >= %.0f%% of baseline %.0f/s and >= %.0f/s\n",
                   rd, w->k1 - w->k0, len, MIN_FRACTION * 100, rb, MIN_RATE);
        if (!ok_len)
            printf("  -> the call returned after %.3f s; it should have blocked >= %.1f s\n",
                   len, MIN_BLOCK_S);
        fflush(stdout);
        failed += !(ok_rate && ok_len);
    }
    current_case = "shutdown";
    atomic_store(&stop_ticker, 1);
    pthread_join(tk, NULL);
    alarm(0);
    printf("%d of %d cases passed\n", ncases - failed, ncases);
    return failed ? 1 : 0;
}
