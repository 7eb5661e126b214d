/*
 * poll, ppoll, select, pselect and the epoll_wait family: the program's
 * own readiness waits, made to park the G.
 *
 * Every one of them is the same loop: make the program's call with a zero
 * timeout (so results, revents, fd_sets and error codes are the kernel's
 * own), and if nothing is ready, park until one of the fds may have moved,
 * then look again. What to park on:
 *  - one fd, one direction, of a kind the poller knows: that fd's
 *    readiness counter, like read() does;
 *  - anything else (several fds, POLLPRI, a tty, an epoll instance made
 *    behind the wrappers): a temporary epoll instance holding the fds
 *    (level-triggered), itself registered in the poller, parked on like
 *    one fd.
 * A call that cannot be waited for this way (a signal mask to apply, an
 * fd_set beyond FD_SETSIZE, no memory for the temporary instance) is made
 * as a blocking system call, with the P handed off.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>

#include "preload/io.h"

/* check(ctx, timeout_ns): the program's call, with a zero timeout when
 * timeout_ns == 0, waiting up to timeout_ns (< 0: forever) otherwise.
 * Returns a raw result: > 0 ready, 0 nothing, < 0 -errno. */
typedef long (*check_fn)(void *ctx, int64_t timeout_ns);

struct blkcheck {
  check_fn check;
  void *ctx;
  int64_t deadline;
};

static long blkcheck_call(void *arg)
{
  struct blkcheck *b = arg;
  int64_t t = -1;
  if (b->deadline != GMP_NO_DEADLINE) {
    t = b->deadline - gmp_nanotime();
    if (t < 1)
      t = 1; /* 0 would mean "probe", and the time is up anyway */
  }
  return b->check(b->ctx, t);
}

static long wait_blocking(check_fn check, void *ctx, int64_t deadline)
{
  struct blkcheck b = {check, ctx, deadline};
  return io_blocking(blkcheck_call, &b);
}

#define IN_EVENTS (POLLIN | POLLRDNORM | POLLRDHUP)
#define OUT_EVENTS (POLLOUT | POLLWRNORM)

/* Park on one fd's counter until check() reports, the deadline passes or
 * the fd turns out not to be pollable (returns 1: use another way). */
static int wait_one(struct gmp_fd *d, int fd, bool write, int64_t deadline, check_fn check,
                    void *ctx, long *res)
{
  for (;;) {
    uint32_t gen = atomic_load(&d->gen);
    uint32_t seq = atomic_load(write ? &d->wseq : &d->rseq);
    long r = check(ctx, 0);
    if (r != 0 || (deadline != GMP_NO_DEADLINE && gmp_nanotime() >= deadline)) {
      *res = r;
      return 0;
    }
    switch (gmp_fd_wait(fd, d, gen, write, seq, deadline)) {
    case 0:
    case EBADF: /* closed: the next check reports POLLNVAL / EBADF */
      continue;
    case ETIMEDOUT:
      *res = check(ctx, 0);
      return 0;
    case ECANCELED:
      gmp_testcancel();
      continue;
    case EINTR: /* never restarted, whatever SA_RESTART says (signal(7)) */
      if (gmp_sigwake_pending())
        continue; /* queued for the G, for a signalfd waited on */
      *res = -EINTR;
      return 0;
    default:
      return 1;
    }
  }
}

static uint32_t epoll_events_of(short ev)
{
  uint32_t e = 0;
  if (ev & (POLLIN | POLLRDNORM))
    e |= EPOLLIN;
  if (ev & (POLLOUT | POLLWRNORM))
    e |= EPOLLOUT;
  if (ev & POLLRDBAND)
    e |= EPOLLRDBAND;
  if (ev & POLLWRBAND)
    e |= EPOLLWRBAND;
  if (ev & POLLPRI)
    e |= EPOLLPRI;
  if (ev & POLLRDHUP)
    e |= EPOLLRDHUP;
  return e;
}

static long wait_ready(struct pollfd *fds, nfds_t n, int64_t deadline, check_fn check,
                       void *ctx)
{
  long res;
  if (n == 1 && fds[0].fd >= 0) {
    short ev = fds[0].events;
    bool in = (ev & IN_EVENTS) != 0, out = (ev & OUT_EVENTS) != 0;
    bool other = (ev & ~(IN_EVENTS | OUT_EVENTS)) != 0;
    struct gmp_fd *d = gmp_fd_get(fds[0].fd);
    int kind = d ? gmp_fd_kind(fds[0].fd, d) : FDK_NOPOLL;
    if (in != out && !other && (kind == FDK_SOCK || kind == FDK_STREAM || kind == FDK_EPOLL) &&
        wait_one(d, fds[0].fd, out, deadline, check, ctx, &res) == 0)
      return res;
  }
  /* A temporary epoll instance holding all the fds. */
  long ep = gmp_sys1(SYS_epoll_create1, EPOLL_CLOEXEC);
  if (ep < 0)
    return wait_blocking(check, ctx, deadline);
  for (nfds_t i = 0; i < n; i++) {
    if (fds[i].fd < 0)
      continue;
    struct epoll_event e = {.events = epoll_events_of(fds[i].events), .data.u64 = i};
    long r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fds[i].fd, &e);
    if (r == -EEXIST) { /* the same fd twice: wait for the union */
      for (nfds_t j = 0; j < i; j++)
        if (fds[j].fd == fds[i].fd)
          e.events |= epoll_events_of(fds[j].events);
      r = gmp_sys4(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, fds[i].fd, &e);
    }
    /* EPERM: a regular file, always ready (the check says so);
     * EBADF: the check reports POLLNVAL. Anything else: no way to wait. */
    if (r < 0 && r != -EPERM && r != -EBADF) {
      gmp_sys1(SYS_close, ep);
      return wait_blocking(check, ctx, deadline);
    }
  }
  gmp_fd_new((int)ep, FDK_EPOLL, 0);
  struct gmp_fd *d = gmp_fd_get((int)ep);
  if (!d || wait_one(d, (int)ep, false, deadline, check, ctx, &res) != 0)
    res = wait_blocking(check, ctx, deadline);
  gmp_fd_closing((int)ep);
  gmp_sys1(SYS_close, ep);
  return res;
}

/* ---- poll / ppoll ----------------------------------------------------------- */

struct pctx {
  struct pollfd *fds;
  nfds_t n;
  uint64_t sigfd; /* what signalfds among fds read (signalfd.c) */
};

static long poll_check(void *arg, int64_t t)
{
  struct pctx *c = arg;
  struct timespec ts = {t / 1000000000, t % 1000000000};
  long r = gmp_sys6(SYS_ppoll, c->fds, c->n, t < 0 ? NULL : &ts, NULL, 8, 0);
  return c->sigfd ? gmp_sigfd_poll_fix(c->fds, c->n, r) : r;
}

/* A wait for fds among which signalfds read sigfd: a signal queued for
 * the G that one of them reads ends the wait (signalfd.c). */
static long wait_ready_sigfd(struct pollfd *fds, nfds_t n, int64_t deadline, check_fn check,
                             void *ctx, uint64_t sigfd)
{
  if (!sigfd)
    return wait_ready(fds, n, deadline, check, ctx);
  uint64_t outer = gmp_sigwake_swap(sigfd);
  long r = wait_ready(fds, n, deadline, check, ctx);
  gmp_sigwake_swap(outer);
  return r;
}

static long do_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns)
{
  struct pctx c = {fds, n, gmp_sigfd_poll_mask(fds, n)};
  gmp_testcancel();
  long r = poll_check(&c, 0);
  if (r != 0 || timeout_ns == 0) {
    gmp_preempt_point(); /* see do_epoll */
    return r;
  }
  int64_t deadline = io_deadline_after(timeout_ns);
  if (n == 0) { /* a sleep */
    while (gmp_sleep_until(deadline == GMP_NO_DEADLINE ? INT64_MAX / 2 : deadline) ==
           GMP_PARK_CANCELED)
      gmp_testcancel();
    return 0;
  }
  return wait_ready_sigfd(fds, n, deadline, poll_check, &c, c.sigfd);
}

GMP_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
  if (!gmp_self())
    return NEXT(poll)(fds, n, timeout);
  return (int)io_ret(do_poll(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000));
}

struct ppctx {
  struct pollfd *fds;
  nfds_t n;
  const sigset_t *mask;
};

static long ppoll_mask_check(void *arg, int64_t t)
{
  struct ppctx *c = arg;
  struct timespec ts = {t / 1000000000, t % 1000000000};
  return gmp_sys6(SYS_ppoll, c->fds, c->n, t < 0 ? NULL : &ts, c->mask, 8, 0);
}

GMP_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                     const sigset_t *mask)
{
  if (!gmp_self())
    return NEXT(ppoll)(fds, n, ts, mask);
  if (ts && !ts_valid(ts))
    return (int)io_ret(-EINVAL);
  int64_t t = ts ? ts_ns(ts) : -1;
  if (mask) {
    /* The mask must be in force while waiting: the kernel's job. */
    struct ppctx c = {fds, n, mask};
    gmp_testcancel();
    return (int)io_ret(wait_blocking(ppoll_mask_check, &c, io_deadline_after(t)));
  }
  return (int)io_ret(do_poll(fds, n, t));
}

extern void __chk_fail(void) __attribute__((noreturn));

GMP_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
  if (fdslen / sizeof *fds < n)
    __chk_fail();
  return poll(fds, n, timeout);
}

GMP_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                           const sigset_t *mask, size_t fdslen)
{
  if (fdslen / sizeof *fds < n)
    __chk_fail();
  return ppoll(fds, n, ts, mask);
}

/* ---- select / pselect --------------------------------------------------------- */

struct sctx {
  int n;
  fd_set *r, *w, *e;
  fd_set r0, w0, e0; /* the program's sets, restored before each look */
  const sigset_t *mask;
  uint64_t sigfd; /* what signalfds in the read set read (signalfd.c) */
};

static long select_check(void *arg, int64_t t)
{
  struct sctx *c = arg;
  if (c->r)
    *c->r = c->r0;
  if (c->w)
    *c->w = c->w0;
  if (c->e)
    *c->e = c->e0;
  struct timespec ts = {t / 1000000000, t % 1000000000};
  struct { const sigset_t *ss; size_t len; } sm = {c->mask, 8};
  long r = gmp_sys6(SYS_pselect6, c->n, c->r, c->w, c->e, t < 0 ? NULL : &ts,
                    c->mask ? &sm : NULL);
  if (r < 0) { /* the sets are left as they were */
    if (c->r)
      *c->r = c->r0;
    if (c->w)
      *c->w = c->w0;
    if (c->e)
      *c->e = c->e0;
  }
  return c->sigfd ? gmp_sigfd_select_fix(c->n, c->r, &c->r0, r) : r;
}

static long do_select(int n, fd_set *r, fd_set *w, fd_set *e, int64_t t, const sigset_t *mask)
{
  struct sctx c = {.n = n, .r = r, .w = w, .e = e, .mask = mask};
  if (n < 0 || n > FD_SETSIZE || mask) {
    /* A mask to keep in force while waiting, or sets larger than fd_set:
     * the program's own call, in the kernel, with the P handed off. */
    gmp_testcancel();
    struct timespec ts = {t / 1000000000, t % 1000000000};
    struct { const sigset_t *ss; size_t len; } sm = {mask, 8};
    long rr;
    do {
      gmp_entersyscall();
      rr = gmp_sys6(SYS_pselect6, n, r, w, e, t < 0 ? NULL : &ts, mask ? &sm : NULL);
      gmp_exitsyscall();
    } while (rr == -EINTR && io_retry_eintr());
    return rr;
  }
  if (r) c.r0 = *r;
  if (w) c.w0 = *w;
  if (e) c.e0 = *e;
  c.sigfd = gmp_sigfd_select_mask(n, r);
  gmp_testcancel();
  long res = select_check(&c, 0);
  if (res != 0 || t == 0) {
    gmp_preempt_point(); /* see do_epoll */
    return res;
  }
  int64_t deadline = io_deadline_after(t);
  struct pollfd fds[FD_SETSIZE];
  nfds_t k = 0;
  for (int fd = 0; fd < n; fd++) {
    short ev = 0;
    if (r && FD_ISSET(fd, &c.r0))
      ev |= POLLIN;
    if (w && FD_ISSET(fd, &c.w0))
      ev |= POLLOUT;
    if (e && FD_ISSET(fd, &c.e0))
      ev |= POLLPRI;
    if (ev)
      fds[k++] = (struct pollfd){fd, ev, 0};
  }
  if (k == 0) { /* no fds: a sleep */
    while (gmp_sleep_until(deadline == GMP_NO_DEADLINE ? INT64_MAX / 2 : deadline) ==
           GMP_PARK_CANCELED)
      gmp_testcancel();
    return select_check(&c, 0);
  }
  res = wait_ready_sigfd(fds, k, deadline, select_check, &c, c.sigfd);
  if (res < 0) {
    /* An error (EINTR above all) leaves the program's sets as they were,
     * as the kernel's select does: the first look, which found nothing,
     * cleared them. CPython retries an interrupted select with the same
     * sets and waited on nothing: asyncio's SelectSelector missed every
     * signal. */
    if (r)
      *r = c.r0;
    if (w)
      *w = c.w0;
    if (e)
      *e = c.e0;
  }
  return res;
}

GMP_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
  if (!gmp_self())
    return NEXT(select)(n, r, w, e, tv);
  if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000))
    return (int)io_ret(-EINVAL);
  int64_t t = tv ? (int64_t)tv->tv_sec * 1000000000LL + (int64_t)tv->tv_usec * 1000 : -1;
  int64_t start = gmp_nanotime();
  long res = do_select(n, r, w, e, t, NULL);
  if (tv) { /* Linux writes back the time not slept */
    int64_t left = t - (gmp_nanotime() - start);
    if (left < 0 || res == 0)
      left = 0;
    tv->tv_sec = left / 1000000000;
    tv->tv_usec = (left % 1000000000) / 1000;
  }
  return (int)io_ret(res);
}

GMP_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                       const sigset_t *mask)
{
  if (!gmp_self())
    return NEXT(pselect)(n, r, w, e, ts, mask);
  if (ts && !ts_valid(ts))
    return (int)io_ret(-EINVAL);
  return (int)io_ret(do_select(n, r, w, e, ts ? ts_ns(ts) : -1, mask));
}

/* ---- epoll_wait and friends ----------------------------------------------------- */

struct ectx {
  int epfd;
  struct epoll_event *ev;
  int max;
  const sigset_t *mask;
};

static long epoll_check(void *arg, int64_t t)
{
  struct ectx *c = arg;
  struct timespec ts = {t / 1000000000, t % 1000000000};
  long r = gmp_sys6(SYS_epoll_pwait2, c->epfd, c->ev, c->max, t < 0 ? NULL : &ts, c->mask, 8);
  if (r == -ENOSYS) {
    long ms = t < 0 ? -1 : (t + 999999) / 1000000;
    r = gmp_sys6(SYS_epoll_pwait, c->epfd, c->ev, c->max, ms > INT32_MAX ? INT32_MAX : ms,
                 c->mask, 8);
  }
  return r;
}

static long do_epoll(int epfd, struct epoll_event *ev, int max, int64_t t, const sigset_t *mask)
{
  struct ectx c = {epfd, ev, max, mask};
  gmp_testcancel();
  if (mask)
    return wait_blocking(epoll_check, &c, io_deadline_after(t));
  long r = epoll_check(&c, 0);
  if (r != 0 || t == 0) {
    /* A call that did not wait is a safe point for preemption: an event
     * loop polling with a zero timeout, or always finding events, spends
     * its time here and in libc, where no signal may switch it. */
    gmp_preempt_point();
    return r;
  }
  struct pollfd p = {epfd, POLLIN, 0};
  return wait_ready(&p, 1, io_deadline_after(t), epoll_check, &c);
}

GMP_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
  if (!gmp_self())
    return NEXT(epoll_wait)(epfd, ev, max, timeout);
  return (int)io_ret(do_epoll(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL));
}

GMP_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                           const sigset_t *mask)
{
  if (!gmp_self())
    return NEXT(epoll_pwait)(epfd, ev, max, timeout, mask);
  return (int)io_ret(do_epoll(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, mask));
}

GMP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
                            const struct timespec *ts, const sigset_t *mask)
{
  if (!gmp_self())
    return NEXT(epoll_pwait2)(epfd, ev, max, ts, mask);
  if (ts && !ts_valid(ts))
    return (int)io_ret(-EINVAL);
  return (int)io_ret(do_epoll(epfd, ev, max, ts ? ts_ns(ts) : -1, mask));
}
