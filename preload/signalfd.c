/*
 * signalfd, and sigpending: a thread's own signals where the kernel
 * cannot see them.
 *
 * The kernel's signalfd read (and poll) returns the signals pending for
 * the OS thread that reads and for the process; sigpending reports the
 * same two sets. A signal sent to one thread (pthread_kill,
 * pthread_sigqueue, raise, tgkill with its id) that the thread blocks is
 * queued in its G (sched/signal.c, rule 3), never in the kernel: a
 * thread reading its signals from a signalfd would wait on, and
 * sigpending would not show them. So, for a signalfd made through the
 * wrapper (its mask is in the fd table):
 *
 *  - read takes the G's queued signals of the mask first (natively, too,
 *    a thread's own come before the process's), converted to the
 *    signalfd_siginfo records the kernel writes, then what the kernel has,
 *    without waiting;
 *  - poll, ppoll and select report it readable while the G has one;
 *  - a blocking read, poll or select publishes the mask as signals the G
 *    waits for (g->sigwait_set): a signal queued meanwhile ends its park
 *    and the call looks again, rather than fail with EINTR.
 *
 * Not covered: a signalfd inside the program's own epoll set (epoll_wait
 * reports the kernel's readiness only), and one made by a raw system call
 * (not in the table: its reads block the OS thread, as before).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "preload/io.h"

#define REC sizeof(struct signalfd_siginfo)
#define SIGBIT(s) (1ULL << ((s) - 1))

/* Set by the first signalfd: until then poll and select do not look. */
static _Atomic bool sigfd_made;

static uint64_t bits_of(const sigset_t *set)
{
  uint64_t b;
  memcpy(&b, set, sizeof b);
  return b & ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP)); /* what the kernel keeps */
}

GMP_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
  long r = gmp_sys4(SYS_signalfd4, fd, mask, 8, flags);
  if (r >= 0) {
    /* The file's O_NONBLOCK, not the flags: signalfd(fd, ...) on an
     * existing one ignores them. */
    long fl = gmp_sys2(SYS_fcntl, r, F_GETFL);
    atomic_store(&sigfd_made, true);
    gmp_fd_new_sigfd((int)r, fl >= 0 && (fl & O_NONBLOCK) ? FDF_NONBLOCK : 0, bits_of(mask));
  }
  return (int)io_ret(r);
}

/* The record the kernel's signalfd writes for info (fs/signalfd.c: the
 * fields of its siginfo layout, the rest zero). */
static void to_record(struct signalfd_siginfo *o, const siginfo_t *si)
{
  memset(o, 0, sizeof *o);
  o->ssi_signo = (uint32_t)si->si_signo;
  o->ssi_errno = si->si_errno;
  o->ssi_code = si->si_code;
  int sig = si->si_signo, code = si->si_code;
  if (code == SI_TIMER) {
    o->ssi_tid = (uint32_t)si->si_timerid;
    o->ssi_overrun = (uint32_t)si->si_overrun;
    o->ssi_ptr = (uint64_t)(uintptr_t)si->si_ptr;
    o->ssi_int = si->si_int;
  } else if (code == SI_SIGIO || (code > 0 && code < SI_KERNEL && sig == SIGPOLL)) {
    o->ssi_band = (uint32_t)si->si_band;
    o->ssi_fd = si->si_fd;
  } else if (code > 0 && code < SI_KERNEL && sig == SIGCHLD) {
    o->ssi_pid = (uint32_t)si->si_pid;
    o->ssi_uid = si->si_uid;
    o->ssi_status = si->si_status;
    o->ssi_utime = (uint64_t)si->si_utime;
    o->ssi_stime = (uint64_t)si->si_stime;
  } else if (code > 0 && code < SI_KERNEL &&
             (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
              sig == SIGTRAP)) {
    o->ssi_addr = (uint64_t)(uintptr_t)si->si_addr;
  } else {
    o->ssi_pid = (uint32_t)si->si_pid;
    o->ssi_uid = si->si_uid;
    if (code < 0) { /* sigqueue, tkill, mq_notify: a value may come along */
      o->ssi_ptr = (uint64_t)(uintptr_t)si->si_ptr;
      o->ssi_int = si->si_int;
    }
  }
}

/* 0 unknown, 1 RWF_NOWAIT works on signalfds, 2 it does not (before
 * Linux 6.x a signalfd had no read_iter). */
static _Atomic int nowait_ok;

/* What the kernel has for this OS thread and the process, without
 * waiting (-EAGAIN: nothing). */
static long kernel_read(int fd, void *buf, size_t len)
{
  if (atomic_load_explicit(&nowait_ok, memory_order_relaxed) != 2) {
    struct iovec v = {buf, len};
    long r = gmp_sys6(SYS_preadv2, fd, &v, 1, -1, -1, RWF_NOWAIT);
    if (r != -EOPNOTSUPP && r != -EINVAL) {
      atomic_store_explicit(&nowait_ok, 1, memory_order_relaxed);
      return r;
    }
    atomic_store_explicit(&nowait_ok, 2, memory_order_relaxed);
  }
  /* Look, then read: another thread may take the signal in between, and
   * the read then blocks, as two native readers of one signalfd would. */
  struct pollfd p = {fd, POLLIN, 0};
  struct timespec zero = {0, 0};
  long r = gmp_sys6(SYS_ppoll, &p, 1, &zero, NULL, 8, 0);
  if (r <= 0)
    return r == 0 ? -EAGAIN : r;
  gmp_entersyscall();
  r = gmp_sys3(SYS_read, fd, buf, len);
  gmp_exitsyscall();
  return r;
}

struct sfread {
  int fd;
  struct gmp_fd *d;
  struct signalfd_siginfo *buf;
  size_t slots;
};

static long sigfd_read_fn(void *arg, int kind)
{
  (void)kind;
  struct sfread *c = arg;
  uint64_t mask = atomic_load(&c->d->sigfd_mask);
  size_t k = 0;
  siginfo_t si;
  while (k < c->slots && gmp_sig_take(mask, &si))
    to_record(&c->buf[k++], &si);
  if (k == c->slots)
    return (long)(k * REC);
  long r = kernel_read(c->fd, &c->buf[k], (c->slots - k) * REC);
  if (r > 0)
    return (long)(k * REC) + r;
  return k ? (long)(k * REC) : r;
}

long gmp_sigfd_read(int fd, struct gmp_fd *d, void *buf, size_t n)
{
  if (n < REC)
    return -EINVAL;
  struct sfread c = {fd, d, buf, n / REC};
  uint64_t outer = gmp_sigwake_swap(atomic_load(&d->sigfd_mask));
  long r = io_read_with(fd, sigfd_read_fn, &c);
  gmp_sigwake_swap(outer);
  return r;
}

/* ---- poll, select ---------------------------------------------------------- */

static uint64_t sigfd_mask_of(int fd)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  return d ? atomic_load_explicit(&d->sigfd_mask, memory_order_relaxed) : 0;
}

uint64_t gmp_sigfd_poll_mask(const struct pollfd *fds, nfds_t n)
{
  if (!atomic_load_explicit(&sigfd_made, memory_order_relaxed))
    return 0;
  uint64_t m = 0;
  for (nfds_t i = 0; i < n; i++)
    if (fds[i].fd >= 0 && (fds[i].events & POLLIN))
      m |= sigfd_mask_of(fds[i].fd);
  return m;
}

uint64_t gmp_sigfd_select_mask(int n, const fd_set *r)
{
  if (!r || !atomic_load_explicit(&sigfd_made, memory_order_relaxed))
    return 0;
  uint64_t m = 0;
  for (int fd = 0; fd < n; fd++)
    if (FD_ISSET(fd, r))
      m |= sigfd_mask_of(fd);
  return m;
}

long gmp_sigfd_poll_fix(struct pollfd *fds, nfds_t n, long ready)
{
  uint64_t q = gmp_sig_queued_blocked();
  if (!q || ready < 0)
    return ready;
  for (nfds_t i = 0; i < n; i++) {
    if (fds[i].fd < 0 || !(fds[i].events & POLLIN) || !(sigfd_mask_of(fds[i].fd) & q))
      continue;
    if (!fds[i].revents)
      ready++;
    fds[i].revents |= POLLIN; /* all a signalfd ever reports */
  }
  return ready;
}

long gmp_sigfd_select_fix(int n, fd_set *r, const fd_set *asked, long ready)
{
  uint64_t q = gmp_sig_queued_blocked();
  if (!q || ready < 0)
    return ready;
  for (int fd = 0; fd < n; fd++) {
    if (!FD_ISSET(fd, asked) || FD_ISSET(fd, r) || !(sigfd_mask_of(fd) & q))
      continue;
    FD_SET(fd, r);
    ready++;
  }
  return ready;
}

/* ---- sigpending --------------------------------------------------------- */

GMP_EXPORT int sigpending(sigset_t *set)
{
  if (!gmp_self())
    return NEXT(sigpending)(set);
  long r = gmp_sys2(SYS_rt_sigpending, set, 8);
  if (r == 0) {
    uint64_t b;
    memcpy(&b, set, sizeof b);
    b |= gmp_sig_queued_blocked();
    memcpy(set, &b, sizeof b);
  }
  return (int)io_ret(r);
}
