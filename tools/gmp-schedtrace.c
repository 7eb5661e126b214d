/*
 * gmp-schedtrace: live scheduler state of a running program that has
 * libgmp loaded, read through its control socket (sched/ctl.c), with no
 * restart and no ptrace stop.
 *
 *   gmp-schedtrace [--detail | --goroutines | --top] [--interval MS] [--count N] PID
 *
 * Prints the SCHED line (Go's schedtrace format) every interval; with
 * --detail also a line per P, M and thread, with its wait reason;
 * --goroutines dumps every thread with its backtrace, whose frames are
 * named here from the ELF symbol tables of the files the process maps
 * (symbolize.c: static functions included); --top shows rates of the
 * scheduler's counters, refreshed every interval.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tools/symbolize.h"

/* sched/internal.h: the mark of a SIGURG asking for the control socket. */
#define GMP_CTL_MARK 0x676d7063

static void usage(FILE *f)
{
  fprintf(f,
          "usage: gmp-schedtrace [--detail | --goroutines | --top] [--interval MS] [--count N] PID\n"
          "\n"
          "Print the scheduler state of process PID, which must run with libgmp\n"
          "(LD_PRELOAD=libgmp.so or gmp-run) as the same user, every MS\n"
          "milliseconds (default 1000), N times (default: until interrupted or\n"
          "the process ends). The first line of each report is in the format of\n"
          "Go's GODEBUG=schedtrace:\n"
          "  SCHED 1001ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0\n"
          "    needspinning=0 idlethreads=1 runqueue=847 [12 3]\n"
          "(gomaxprocs: Ps; idleprocs: idle Ps; threads: OS threads running\n"
          "threads; runqueue: global queue; [..]: each P's local queue).\n"
          "--detail adds P lines (status, schedtick, syscalltick, m, runqsize,\n"
          "gfreecnt, timerslen), M lines (p, curg, spinning, blocked) and a line\n"
          "per thread: G<id>: status=N(reason) with Go's status numbers (1\n"
          "runnable, 2 running, 3 in a system call, 4 waiting: mutex, cond,\n"
          "rwlock, semaphore, barrier, join, sleep, once; 6 dead).\n"
          "--goroutines prints every thread once, in the manner of Go's goroutine\n"
          "dump: id, state, wait reason, how long it has waited, the object (the\n"
          "mutex/cond address, or the fd) it waits on, its backtrace (libunwind,\n"
          "in the process) and start function, symbolised here from the ELF\n"
          "symbol tables (static functions included), then a summary line.\n"
          "--top refreshes a view of the Ps, run queues and per-second rates of\n"
          "switches, steals, syscalls, parks, netpoll wake-ups, and the\n"
          "scheduling latency percentiles (runnable -> running, sampled).\n");
}

/* Send cmd, read the whole answer into *out (malloc'ed, NUL-terminated)
 * or, with out NULL, copy it to stdout. */
static int query_buf(const char *path, const char *cmd, char **out)
{
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (write(fd, cmd, strlen(cmd)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  char buf[65536];
  ssize_t n;
  size_t len = 0, cap = 0;
  char *all = NULL;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (!out) {
      fwrite(buf, 1, (size_t)n, stdout);
      continue;
    }
    if (len + (size_t)n + 1 > cap) {
      size_t ncap = cap ? cap * 2 : 1 << 16;
      while (ncap < len + (size_t)n + 1)
        ncap *= 2;
      char *na = realloc(all, ncap);
      if (!na) {
        free(all);
        close(fd);
        return -ENOMEM;
      }
      all = na;
      cap = ncap;
    }
    memcpy(all + len, buf, (size_t)n);
    len += (size_t)n;
  }
  int e = n < 0 ? errno : 0;
  close(fd);
  if (out) {
    if (!all && !(all = calloc(1, 1)))
      return -ENOMEM;
    all[len] = 0;
    *out = all;
  } else {
    fflush(stdout);
  }
  return -e;
}

static int query(const char *path, const char *cmd)
{
  return query_buf(path, cmd, NULL);
}

/* ---- --goroutines ---------------------------------------------------------- */

/* The runtime names frames with what it can see in-process; names from
 * the files' full symbol tables are better (and the start function of a
 * thread is often a static function). Frame lines are
 *   "\t#N 0xADDR name+0xOFF (file)"   and   "\tstarted by NAME at 0xADDR". */
static void print_goroutines(char *text, long pid)
{
  struct gmp_symtab *st = gmp_sym_open((pid_t)pid);
  if (!st)
    fprintf(stderr, "gmp-schedtrace: cannot read the symbols of process %ld (%s); "
                    "frames keep the names the runtime gave\n", pid, strerror(errno));
  char name[512];
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    int idx;
    unsigned long addr;
    int used = 0;
    if (st && sscanf(line, "\t#%d 0x%lx %n", &idx, &addr, &used) == 2 && used > 0 &&
        gmp_sym_name(st, (uintptr_t)addr, name, sizeof name)) {
      printf("\t#%-2d 0x%016lx %s\n", idx, addr, name);
      continue;
    }
    char *at = strstr(line, " at 0x");
    if (st && strncmp(line, "\tstarted by ", 12) == 0 && at &&
        sscanf(at, " at 0x%lx", &addr) == 1 &&
        gmp_sym_func(st, (uintptr_t)addr, name, sizeof name)) {
      printf("\tstarted by %s at 0x%016lx\n", name, addr);
      continue;
    }
    puts(line);
  }
  if (st)
    gmp_sym_close(st);
  fflush(stdout);
}

/* ---- --top ----------------------------------------------------------------- */

#define KV_MAX 256

struct kv {
  int n;
  char key[KV_MAX][32];
  char val[KV_MAX][32];
};

static void kv_parse(char *text, struct kv *kv)
{
  kv->n = 0;
  for (char *line = strtok(text, "\n"); line && kv->n < KV_MAX; line = strtok(NULL, "\n"))
    if (sscanf(line, "%31s %31s", kv->key[kv->n], kv->val[kv->n]) == 2)
      kv->n++;
}

static const char *kv_str(const struct kv *kv, const char *key)
{
  for (int i = 0; i < kv->n; i++)
    if (!strcmp(kv->key[i], key))
      return kv->val[i];
  return "";
}

static double kv_num(const struct kv *kv, const char *key)
{
  return strtod(kv_str(kv, key), NULL);
}

/* Per second, between two snapshots dt seconds apart. */
static double rate(const struct kv *a, const struct kv *b, const char *key, double dt)
{
  return dt > 0 ? (kv_num(b, key) - kv_num(a, key)) / dt : 0;
}

static void fmt_ns(char *buf, size_t len, double ns)
{
  if (ns >= 1e6)
    snprintf(buf, len, "%.1fms", ns / 1e6);
  else
    snprintf(buf, len, "%.1fus", ns / 1e3);
}

static void print_top(const struct kv *a, const struct kv *b, long pid, bool tty)
{
  double dt = (kv_num(b, "uptime_ms") - kv_num(a, "uptime_ms")) / 1000.0;
  if (tty)
    fputs("\033[H\033[2J", stdout);
  else
    puts("----");
  printf("pid %ld  uptime %.1fs  gomaxprocs %s  idleprocs %s  threads %s  goroutines %s  "
         "global runq %s\n",
         pid, kv_num(b, "uptime_ms") / 1000.0, kv_str(b, "gomaxprocs"), kv_str(b, "idleprocs"),
         kv_str(b, "threads"), kv_str(b, "goroutines"), kv_str(b, "runqueue"));
  static const char *cols[] = {"switches", "steals", "spills", "syscalls", "parks", "created",
                               "preempts", "handoffs", "timers", "pollwakes"};
  static const char *hdr[] = {"switch/s", "steal/s", "spill/s", "syscall/s", "park/s",
                              "create/s", "preempt/s", "handoff/s", "timer/s", "netpoll/s"};
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
    printf("%10s", hdr[i]);
  putchar('\n');
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
    printf("%10.0f", rate(a, b, cols[i], dt));
  putchar('\n');
  char p50[32], p99[32], mx[32];
  fmt_ns(p50, sizeof p50, kv_num(b, "lat_p50_ns"));
  fmt_ns(p99, sizeof p99, kv_num(b, "lat_p99_ns"));
  fmt_ns(mx, sizeof mx, kv_num(b, "lat_max_ns"));
  printf("scheduling latency (runnable -> running, since start): p50 < %s  p99 < %s  "
         "max < %s\n", p50, p99, mx);
  printf("%4s %-8s %6s %10s %10s %10s\n", "P", "status", "runq", "switch/s", "steal/s",
         "syscall/s");
  int np = (int)kv_num(b, "gomaxprocs");
  for (int i = 0; i < np; i++) {
    char k[4][32];
    snprintf(k[0], sizeof k[0], "p%d.status", i);
    snprintf(k[1], sizeof k[1], "p%d.runq", i);
    snprintf(k[2], sizeof k[2], "p%d.switches", i);
    snprintf(k[3], sizeof k[3], "p%d.steals", i);
    char ks[32];
    snprintf(ks, sizeof ks, "p%d.syscalls", i);
    printf("%4d %-8s %6s %10.0f %10.0f %10.0f\n", i, kv_str(b, k[0]), kv_str(b, k[1]),
           rate(a, b, k[2], dt), rate(a, b, k[3], dt), rate(a, b, ks, dt));
  }
  fflush(stdout);
}

int main(int argc, char **argv)
{
  bool detail = false, goroutines = false, top = false;
  long interval = 1000, count = -1;
  const char *pidarg = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--detail")) {
      detail = true;
    } else if (!strcmp(argv[i], "--goroutines")) {
      goroutines = true;
    } else if (!strcmp(argv[i], "--top")) {
      top = true;
    } else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
      char *e;
      interval = strtol(argv[++i], &e, 10);
      if (*e || interval < 1 || interval > 3600000) {
        fprintf(stderr, "gmp-schedtrace: --interval: '%s' is not a number of milliseconds in 1..3600000\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
      char *e;
      count = strtol(argv[++i], &e, 10);
      if (*e || count < 1) {
        fprintf(stderr, "gmp-schedtrace: --count: '%s' is not a positive number\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] != '-' && !pidarg) {
      pidarg = argv[i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  char *e;
  long pid = pidarg ? strtol(pidarg, &e, 10) : 0;
  if (!pidarg || *e || pid <= 0) {
    usage(stderr);
    return 2;
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/%ld", pid);
  struct stat st;
  if (stat(proc, &st) != 0) {
    fprintf(stderr, "gmp-schedtrace: no process %ld\n", pid);
    return 1;
  }
  if (detail + goroutines + top > 1) {
    fprintf(stderr, "gmp-schedtrace: --detail, --goroutines and --top go one at a time\n");
    return 2;
  }
  if (goroutines && count < 0)
    count = 1;
  char path[108];
  snprintf(path, sizeof path, "/tmp/gmp-%u/%ld.sock", (unsigned)getuid(), pid);
  struct kv *prev = NULL, *cur = NULL;
  if (top && (!(prev = calloc(1, sizeof *prev)) || !(cur = calloc(1, sizeof *cur)))) {
    fprintf(stderr, "gmp-schedtrace: out of memory\n");
    return 1;
  }
  bool tty = isatty(1);
  for (long k = 0; count < 0 || k < count + (top ? 1 : 0); k++) {
    if (k) {
      struct timespec ts = {interval / 1000, (interval % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    char *text = NULL;
    int r;
    for (int attempt = 0;; attempt++) {
      r = goroutines ? query_buf(path, "goroutines", &text)
          : top      ? query_buf(path, "stats", &text)
                     : query(path, detail ? "detail" : "sched");
      if ((r != -ENOENT && r != -ECONNREFUSED) || attempt >= 40 || st.st_uid != getuid())
        break;
      /* The runtime makes its control socket when asked (sched/ctl.c):
       * a SIGURG with libgmp's mark; a process without libgmp ignores
       * SIGURG. Then it appears within a sysmon poll (100 ms). */
      if (attempt == 0) {
        union sigval v = {.sival_int = GMP_CTL_MARK};
        sigqueue((pid_t)pid, SIGURG, v);
      }
      struct timespec w = {0, 50 * 1000000};
      nanosleep(&w, NULL);
    }
    if (r == 0 && goroutines) {
      print_goroutines(text, pid);
    } else if (r == 0 && top) {
      struct kv *t = prev;
      prev = cur;
      cur = t;
      kv_parse(text, cur);
      if (k > 0)
        print_top(prev, cur, pid, tty);
    }
    free(text);
    if (r == -ENOENT || r == -ECONNREFUSED) {
      if (k && stat(proc, &st) != 0)
        return 0; /* the process ended */
      if (st.st_uid != getuid())
        fprintf(stderr, "gmp-schedtrace: process %ld belongs to user %u; run this as that user\n",
                pid, (unsigned)st.st_uid);
      else
        fprintf(stderr, "gmp-schedtrace: process %ld does not run libgmp (no control socket at %s)\n",
                pid, path);
      return 1;
    }
    if (r < 0) {
      fprintf(stderr, "gmp-schedtrace: %s: %s\n", path, strerror(-r));
      return 1;
    }
  }
  return 0;
}
