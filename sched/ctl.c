/*
 * The control socket through which tools/gmp-schedtrace reads a running
 * program's scheduler state, without stopping or ptracing it:
 *
 *   /tmp/gmp-<uid>/<pid>.sock   (directory 0700, socket 0600)
 *
 * sysmon looks for a client every 100 ms (one non-blocking accept), reads
 * a one-word command and answers with text:
 *   sched       the SCHED line schedtrace prints
 *   detail      the same with the per-P, per-M and per-G lines
 *   goroutines  the goroutine dump (dump.c), backtraces included
 *   stats       "key value" counters (trace.c), for gmp-schedtrace --top
 * A client that stops reading cannot hold sysmon for more than the
 * send timeout. Only the process's own user (or root) can connect.
 * The socket is unlinked at exit; a forked child makes its own.
 *
 * It exists only once asked for: an fd of the runtime's is an fd the
 * program can see (CPython's subprocess tests list a child's open fds, and
 * the child, under libgmp too, had one more). gmp-schedtrace first finds
 * no socket, sends the process a SIGURG marked GMP_CTL_MARK (sigqueue;
 * same user only), and connects once sysmon has made it (<= 100 ms). A
 * program with its own SIGURG handler at start gets the socket at once,
 * since such a SIGURG would be its. A process without libgmp ignores
 * SIGURG by default: asking is harmless.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sched/internal.h"

static int ctl_fd = -1;
static _Atomic int ctl_wanted; /* asked for by a signal, not made yet */
static pid_t ctl_pid;
static char ctl_path[108];
static int64_t start_ns;

static void ctl_unlink(void)
{
  /* Only the process that made it: a forked child runs atexit too. */
  if (ctl_path[0] && getpid() == ctl_pid)
    unlink(ctl_path);
}

void gmp_ctl_request(void)
{
  atomic_store(&ctl_wanted, 1);
}

/* At start: only if the dumper could not ask for it later. */
void gmp_ctl_init(void)
{
  if (!start_ns)
    start_ns = gmp_nanotime();
  if (!gmp_owns_sigurg())
    gmp_ctl_open();
}

void gmp_ctl_open(void)
{
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/gmp-%u", (unsigned)getuid());
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return;
  struct stat st;
  /* Refuse a directory someone else made, or one others can enter. */
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
      (st.st_mode & 077))
    return;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s/%d.sock", dir, (int)getpid());
  unlink(a.sun_path); /* a stale socket of a dead process with our pid */
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(a.sun_path, 0600) != 0 ||
      listen(fd, 4) != 0) {
    close(fd);
    return;
  }
  /* Out of the way of the program's low fd numbers. */
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  ctl_fd = fd;
  ctl_pid = getpid();
  memcpy(ctl_path, a.sun_path, sizeof ctl_path);
  static bool registered;
  if (!registered) {
    registered = true;
    atexit(ctl_unlink);
  }
}

/* fork child: the inherited socket belongs to the parent. */
void gmp_ctl_child(void)
{
  if (ctl_fd >= 0)
    close(ctl_fd);
  ctl_fd = -1;
  ctl_path[0] = 0;
  gmp_ctl_init();
}

/* Sockets of processes that ended without their atexit (killed by a
 * signal, _exit, exec) stay behind: one sweep by each process, from
 * sysmon, removes those whose pid no longer exists. A pid reused by a
 * process without libgmp keeps its stale socket until that one ends
 * (connecting to it fails: the dumper reports no libgmp). */
static void sweep_stale(void)
{
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/gmp-%u", (unsigned)getuid());
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (pid <= 0 || strcmp(end, ".sock") != 0 || pid == (long)getpid())
      continue;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
      char path[sizeof dir + sizeof e->d_name + 2];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  }
  closedir(d);
}

/* sysmon, every 100 ms. */
void gmp_ctl_poll(void)
{
  if (ctl_fd < 0 && atomic_exchange(&ctl_wanted, 0))
    gmp_ctl_open();
  if (ctl_fd < 0)
    return;
  static pid_t swept;
  if (swept != ctl_pid) {
    swept = ctl_pid;
    sweep_stale();
  }
  int c = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
      ctl_fd = -1; /* the program closed or reused our fd (daemonizing): give up */
    return;
  }
  char cmd[32] = "";
  struct pollfd pf = {.fd = c, .events = POLLIN};
  /* The client writes its command right after connecting; wait for it
   * (a poll cut short by a signal is retried), else the command would be
   * left unread and the close would reset the client's connection. */
  for (int tries = 0; tries < 5; tries++) {
    int r = poll(&pf, 1, 200);
    if (r == 1) {
      ssize_t n = read(c, cmd, sizeof cmd - 1);
      cmd[n > 0 ? n : 0] = 0;
      break;
    }
    if (r == 0 || errno != EINTR)
      break;
  }
  struct timeval tmo = {2, 0};
  setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof tmo);
  int64_t ms = (gmp_nanotime() - start_ns) / 1000000;
  if (strncmp(cmd, "goroutines", 10) == 0 || strncmp(cmd, "stats", 5) == 0) {
    int old = gmp_out_to(c);
    if (cmd[0] == 'g')
      gmp_goroutines();
    else
      gmp_stats_kv(ms);
    gmp_out_to(old);
  } else {
    gmp_schedtrace_to(c, ms, strncmp(cmd, "detail", 6) == 0);
  }
  close(c);
}
