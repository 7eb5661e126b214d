/*
 * The epoll instance (Go's netpoll_epoll.go): one per process, created
 * when the first G has to wait for an fd. Registrations are edge-triggered
 * for input and output at once, made when an fd first makes a G wait and
 * kept until close: a readiness change costs one event, whichever side
 * waits.
 *
 * The instance and its break eventfd live at high fd numbers (>= 1000),
 * out of the way of programs that hand out low numbers or dup2 onto them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>

#include "poller/netpoll.h"
#include "sched/sched.h"

_Atomic bool gmp_netpoll_active;
_Atomic int32_t gmp_netpoll_waiters;

static gmp_lock init_lock;
static _Atomic int epfd = -1;
static int brkfd = -1;
static _Atomic uint32_t epoch = 1;
static _Atomic int break_pending;
static _Atomic int have_pwait2 = 1;

#define BREAK_KEY UINT64_MAX
#define HIGH_FD 1000

uint32_t gmp_netpoll_epoch(void) { return atomic_load_explicit(&epoch, memory_order_acquire); }

/* Move fd to a number >= HIGH_FD (close-on-exec). */
static int move_high(int fd)
{
  long h = gmp_sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, HIGH_FD);
  if (h < 0)
    return fd; /* RLIMIT_NOFILE below HIGH_FD: keep the low number */
  gmp_sys1(SYS_close, fd);
  return (int)h;
}

static int init_locked(void)
{
  long e = gmp_sys1(SYS_epoll_create1, EPOLL_CLOEXEC);
  if (e < 0)
    return (int)-e;
  long b = gmp_sys2(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b < 0) {
    gmp_sys1(SYS_close, e);
    return (int)-b;
  }
  int ep = move_high((int)e);
  brkfd = move_high((int)b);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = BREAK_KEY};
  long r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, brkfd, &ev);
  if (r < 0) {
    gmp_sys1(SYS_close, ep);
    gmp_sys1(SYS_close, brkfd);
    brkfd = -1;
    return (int)-r;
  }
  atomic_store(&epfd, ep);
  return 0;
}

bool gmp_netpoll_owns(int fd)
{
  return fd >= 0 && (fd == atomic_load_explicit(&epfd, memory_order_relaxed) || fd == brkfd);
}

void gmp_netpoll_evacuate(int fd)
{
  if (!gmp_netpoll_owns(fd))
    return;
  gmp_lock_acquire(&init_lock);
  long h = gmp_sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, HIGH_FD);
  if (h >= 0) {
    /* An M inside epoll_wait holds the file itself, not the number. */
    if (fd == brkfd)
      brkfd = (int)h;
    else
      atomic_store(&epfd, (int)h);
  }
  gmp_lock_release(&init_lock);
}

int gmp_netpoll_register(int fd, struct gmp_fd *d)
{
  if (atomic_load(&epfd) < 0) {
    gmp_lock_acquire(&init_lock);
    int e = atomic_load(&epfd) < 0 ? init_locked() : 0;
    gmp_lock_release(&init_lock);
    if (e)
      return e;
  }
  int ep = atomic_load(&epfd);
  uint32_t cur = gmp_netpoll_epoch();
  gmp_spin_lock(&d->lock);
  if (atomic_load(&d->epoch) == cur) {
    gmp_spin_unlock(&d->lock);
    return 0;
  }
  struct epoll_event ev = {
      .events = EPOLLIN | EPOLLRDHUP | EPOLLET,
      .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)atomic_load(&d->gen) << 32,
  };
  long r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fd, &ev);
  if (r == -EEXIST) /* same file, registered under an older gen */
    r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, fd, &ev);
  if (r == 0)
    atomic_store_explicit(&d->epoch, cur, memory_order_release);
  gmp_spin_unlock(&d->lock);
  if (r == 0 && !atomic_load_explicit(&gmp_netpoll_active, memory_order_relaxed))
    atomic_store(&gmp_netpoll_active, true);
  return (int)-r;
}

int gmp_netpoll_want_output(int fd, struct gmp_fd *d)
{
  uint32_t cur = gmp_netpoll_epoch();
  if (atomic_load_explicit(&d->outepoch, memory_order_acquire) == cur)
    return 0;
  int ep = atomic_load(&epfd);
  gmp_spin_lock(&d->lock);
  long r = 0;
  if (atomic_load(&d->outepoch) != cur) {
    /* The kernel checks readiness again on MOD: an fd writable already
     * reports it now, so the waiter's counter moves and it retries. */
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)atomic_load(&d->gen) << 32,
    };
    r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, fd, &ev);
    if (r == 0)
      atomic_store_explicit(&d->outepoch, cur, memory_order_release);
  }
  gmp_spin_unlock(&d->lock);
  return (int)-r;
}

static void ready(_Atomic uint32_t *seq, struct gmp_fd *d, struct g **list, int *n)
{
  atomic_fetch_add(seq, 1);
  if (atomic_load(&d->nwait) > 0)
    *n += gmp_unpark_collect(seq, list);
}

int gmp_netpoll(int64_t timeout_ns, struct g **list)
{
  int ep = atomic_load(&epfd);
  if (ep < 0)
    return 0;
  struct epoll_event ev[128];
  long n;
  if (timeout_ns == 0) {
    n = gmp_sys4(SYS_epoll_wait, ep, ev, 128, 0);
  } else {
    /* epoll_pwait2 takes nanoseconds: a sleeping M woken by the poller's
     * timeout is on time for the timer it sleeps for. */
    n = -ENOSYS;
    if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
      struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
      n = gmp_sys6(SYS_epoll_pwait2, ep, ev, 128, timeout_ns < 0 ? NULL : &ts, NULL, 8);
      if (n == -ENOSYS)
        atomic_store(&have_pwait2, 0);
    }
    if (n == -ENOSYS) {
      long ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
      if (ms > INT32_MAX)
        ms = INT32_MAX;
      n = gmp_sys4(SYS_epoll_wait, ep, ev, 128, ms);
    }
  }
  int count = 0;
  for (long i = 0; i < n; i++) {
    uint64_t key = ev[i].data.u64;
    if (key == BREAK_KEY) {
      uint64_t v;
      gmp_sys3(SYS_read, brkfd, &v, sizeof v);
      atomic_store(&break_pending, 0);
      continue;
    }
    struct gmp_fd *d = gmp_fd_get((int)(uint32_t)key);
    if (!d || atomic_load(&d->gen) != (uint32_t)(key >> 32))
      continue; /* the file was closed; the number may be in use again */
    uint32_t e = ev[i].events;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
      ready(&d->rseq, d, list, &count);
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
      ready(&d->wseq, d, list, &count);
  }
  return count;
}

void gmp_netpoll_break(void)
{
  if (brkfd < 0 || atomic_exchange(&break_pending, 1) != 0)
    return;
  uint64_t one = 1;
  gmp_sys3(SYS_write, brkfd, &one, sizeof one);
}

void gmp_netpoll_fork_child(void)
{
  atomic_store(&init_lock.v, 0);
  int ep = atomic_load(&epfd);
  if (ep >= 0) {
    gmp_sys1(SYS_close, ep);
    gmp_sys1(SYS_close, brkfd);
  }
  brkfd = -1;
  atomic_store(&epfd, -1);
  atomic_store(&break_pending, 0);
  atomic_store(&gmp_netpoll_waiters, 0);
  atomic_fetch_add(&epoch, 1);
}
