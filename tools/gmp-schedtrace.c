/*
 * gmp-schedtrace: live scheduler state of a running program that has
 * libgmp loaded, read through its control socket (sched/ctl.c), with no
 * restart and no ptrace stop.
 *
 *   gmp-schedtrace [--detail] [--interval MS] [--count N] PID
 *
 * Prints the SCHED line (Go's schedtrace format) every interval; with
 * --detail also a line per P, M and thread, with its wait reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
  fprintf(f,
          "usage: gmp-schedtrace [--detail] [--interval MS] [--count N] PID\n"
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
          "rwlock, semaphore, barrier, join, sleep, once; 6 dead).\n");
}

static int query(const char *path, const char *cmd)
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
  while ((n = read(fd, buf, sizeof buf)) > 0)
    fwrite(buf, 1, (size_t)n, stdout);
  fflush(stdout);
  close(fd);
  return 0;
}

int main(int argc, char **argv)
{
  bool detail = false;
  long interval = 1000, count = -1;
  const char *pidarg = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--detail")) {
      detail = true;
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
  char path[108];
  snprintf(path, sizeof path, "/tmp/gmp-%u/%ld.sock", (unsigned)getuid(), pid);
  for (long k = 0; count < 0 || k < count; k++) {
    if (k) {
      struct timespec ts = {interval / 1000, (interval % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    int r = query(path, detail ? "detail" : "sched");
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
