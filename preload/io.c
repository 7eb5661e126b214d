/*
 * Socket and pipe I/O through the network poller: try the call without
 * blocking; if it would block and the program's view of the fd is
 * blocking, park the G until the poller sees the fd move, and try again.
 * The program still sees blocking calls block, with their partial-transfer,
 * timeout (SO_RCVTIMEO/SO_SNDTIMEO) and error semantics.
 *
 * A call is made non-blocking for this one call only: MSG_DONTWAIT on
 * sockets, RWF_NOWAIT (preadv2/pwritev2) on pipes and eventfds. Regular
 * files, ttys and anything the poller cannot help with take the
 * blocking-syscall path (entersyscall/exitsyscall), as before.
 *
 * Also here: the calls that make, duplicate and close descriptors, and
 * those that change the program's view of one (fcntl F_SETFL, ioctl
 * FIONBIO, setsockopt SO_*TIMEO), so the fd table stays true.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload/io.h"

struct blk {
  io_fn fn;
  void *ctx;
};

static long blk_call(void *arg)
{
  struct blk *b = arg;
  return b->fn(b->ctx, FDK_NOPOLL);
}

long io_blocking(long (*call)(void *ctx), void *ctx)
{
  long r;
  do {
    gmp_entersyscall();
    r = call(ctx);
    gmp_exitsyscall();
  } while (r == -EINTR && io_retry_eintr());
  return r;
}

/* A caller that is not a G (libgmp disabled or not started, a thread made
 * behind its back) gets glibc's own function: its cancellation points
 * and semantics stay native. Everything below the exported wrappers
 * therefore runs in a G. */

/* The core loop (see netpoll.h for why the readiness count is read before
 * the attempt). fn(ctx, kind) makes the call: non-blocking for FDK_SOCK
 * and FDK_STREAM, as the program asked for FDK_NOPOLL. nb_call: the
 * program asked for this one call not to block (MSG_DONTWAIT). */
static long io_loop(int fd, bool write, bool nb_call, io_fn fn, void *ctx);

/* A call that did not block is a safe point for preemption (a G echoing
 * on sockets that always have data would otherwise never give way). */
static long io_run(int fd, bool write, bool nb_call, io_fn fn, void *ctx)
{
  long r = io_loop(fd, write, nb_call, fn, ctx);
  gmp_preempt_point();
  return r;
}

long io_read_with(int fd, io_fn fn, void *ctx)
{
  return io_run(fd, false, false, fn, ctx);
}

static long io_loop(int fd, bool write, bool nb_call, io_fn fn, void *ctx)
{
  struct blk b = {fn, ctx};
  gmp_testcancel();
  struct gmp_fd *d = gmp_fd_get(fd);
  int kind = d ? gmp_fd_kind(fd, d) : FDK_NOPOLL;
  int64_t deadline = 0;
  for (;;) {
    if (kind != FDK_SOCK && kind != FDK_STREAM)
      return io_blocking(blk_call, &b);
    uint32_t gen = atomic_load(&d->gen);
    uint32_t seq = atomic_load(write ? &d->wseq : &d->rseq);
    long r = fn(ctx, kind);
    if (r != -EAGAIN) {
      if (r == -ENOTSOCK && kind == FDK_SOCK) {
        /* The number was reused behind the wrappers (fclose of an
         * fdopen'ed socket, then an fopen): look at it again. */
        atomic_store(&d->kind, FDK_UNKNOWN);
        kind = gmp_fd_kind(fd, d);
        if (kind == FDK_SOCK)
          kind = FDK_NOPOLL;
        continue;
      }
      if ((r == -EOPNOTSUPP || r == -EINVAL) && kind == FDK_STREAM) {
        atomic_store(&d->kind, FDK_NOPOLL); /* RWF_NOWAIT refused here */
        kind = FDK_NOPOLL;
        continue;
      }
      return r;
    }
    if (nb_call || (atomic_load_explicit(&d->flags, memory_order_relaxed) & FDF_NONBLOCK))
      return r;
    if (!deadline) {
      int64_t t = write ? d->sndtimeo : d->rcvtimeo;
      deadline = t > 0 ? gmp_nanotime() + t : GMP_NO_DEADLINE;
    }
    switch (gmp_fd_wait(fd, d, gen, write, seq, deadline)) {
    case 0:
      continue;
    case ETIMEDOUT:
      return -EAGAIN; /* what SO_RCVTIMEO/SO_SNDTIMEO give natively */
    case EBADF:
      return -EBADF;
    case ECANCELED:
      gmp_testcancel();
      continue;
    case EINTR:
      if (gmp_sigwake_pending())
        continue; /* a signal a signalfd read takes, queued for the G */
      /* SA_RESTART restarts reads, writes, accept: unless the socket has
       * a timeout (signal(7)). */
      if (gmp_sig_restart() && !(write ? d->sndtimeo : d->rcvtimeo))
        continue;
      return -EINTR;
    default: /* not pollable (EPERM), or the poller could not start */
      atomic_store(&d->kind, FDK_NOPOLL);
      kind = FDK_NOPOLL;
      continue;
    }
  }
}

static void kick_peer(int fd)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  if (d && d->peer >= 0)
    gmp_fd_kick_peer(d);
}

/* ---- read / write ------------------------------------------------------- */

struct rw {
  int fd;
  void *buf;
  size_t len;
  int flags;                 /* recv/send flags */
  struct sockaddr *addr;     /* recvfrom/sendto */
  socklen_t *alen;
  socklen_t slen;
};

static long read_fn(void *arg, int kind)
{
  struct rw *c = arg;
  if (kind == FDK_SOCK)
    return gmp_sys6(SYS_recvfrom, c->fd, c->buf, c->len, MSG_DONTWAIT, 0, 0);
  if (kind == FDK_STREAM) {
    struct iovec v = {c->buf, c->len};
    return gmp_sys6(SYS_preadv2, c->fd, &v, 1, -1, -1, RWF_NOWAIT);
  }
  return gmp_sys3(SYS_read, c->fd, c->buf, c->len);
}

static long write_fn(void *arg, int kind)
{
  struct rw *c = arg;
  if (kind == FDK_SOCK)
    return gmp_sys6(SYS_sendto, c->fd, c->buf, c->len, MSG_DONTWAIT, 0, 0);
  if (kind == FDK_STREAM) {
    struct iovec v = {c->buf, c->len};
    return gmp_sys6(SYS_pwritev2, c->fd, &v, 1, -1, -1, RWF_NOWAIT);
  }
  return gmp_sys3(SYS_write, c->fd, c->buf, c->len);
}

static long recv_fn(void *arg, int kind)
{
  struct rw *c = arg;
  int f = c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT);
  return gmp_sys6(SYS_recvfrom, c->fd, c->buf, c->len, f, c->addr, c->alen);
}

static long send_fn(void *arg, int kind)
{
  struct rw *c = arg;
  int f = c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT);
  return gmp_sys6(SYS_sendto, c->fd, c->buf, c->len, f, c->addr, c->slen);
}

/* A blocking write transfers everything (or fails, or is cut short by a
 * signal): partial non-blocking writes are continued after a park. A
 * program with a non-blocking view gets the partial count, because the
 * next attempt returns EAGAIN at once. */
static long write_all(struct rw *c, io_fn fn, bool nb_call)
{
  long done = 0;
  for (;;) {
    long r = io_run(c->fd, true, nb_call, fn, c);
    if (r < 0) {
      if (done > 0)
        break;
      return r;
    }
    done += r;
    if (r == 0 || (size_t)r >= c->len)
      break;
    c->buf = (char *)c->buf + r;
    c->len -= (size_t)r;
  }
  kick_peer(c->fd);
  return done;
}

/* A file the poller does not handle (regular file, tty, /dev/zero, or a
 * number the table has no room for): the call itself, bracketed as a
 * blocking system call, with the kernel's result as it is. The common
 * case of file I/O, kept out of io_loop's indirect calls; leaving the
 * system call with the P kept is already a preemption point
 * (gmp_exitsyscall). */
static long io_plain3(long nr, long a, long b, long c)
{
  gmp_testcancel();
  long r;
  do {
    gmp_entersyscall();
    r = gmp_sys3(nr, a, b, c);
    gmp_exitsyscall();
  } while (r == -EINTR && io_retry_eintr());
  return r;
}

static bool io_is_plain(int fd, struct gmp_fd **dp)
{
  struct gmp_fd *d = *dp = gmp_fd_get(fd);
  return !d || gmp_fd_kind(fd, d) == FDK_NOPOLL;
}

GMP_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
  if (!gmp_self())
    return NEXT(read)(fd, buf, n);
  struct gmp_fd *d;
  if (io_is_plain(fd, &d))
    return io_ret(io_plain3(SYS_read, fd, (long)buf, (long)n));
  if (atomic_load_explicit(&d->sigfd_mask, memory_order_relaxed))
    return io_ret(gmp_sigfd_read(fd, d, buf, n));
  struct rw c = {.fd = fd, .buf = buf, .len = n};
  return io_ret(io_run(fd, false, false, read_fn, &c));
}

GMP_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
  if (!gmp_self())
    return NEXT(write)(fd, buf, n);
  struct gmp_fd *d;
  if (io_is_plain(fd, &d)) {
    long r = io_plain3(SYS_write, fd, (long)buf, (long)n);
    if (d && d->peer >= 0)
      gmp_fd_kick_peer(d);
    return io_ret(r);
  }
  struct rw c = {.fd = fd, .buf = (void *)buf, .len = n};
  return io_ret(write_all(&c, write_fn, false));
}

GMP_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a,
                            socklen_t *alen)
{
  if (!gmp_self())
    return NEXT(recvfrom)(fd, buf, n, flags, a, alen);
  struct rw c = {.fd = fd, .buf = buf, .len = n, .flags = flags, .addr = a, .alen = alen};
  bool nb = (flags & MSG_DONTWAIT) != 0;
  if (!(flags & MSG_WAITALL) || nb)
    return io_ret(io_run(fd, false, nb, recv_fn, &c));
  /* MSG_WAITALL: the kernel would wait for all n bytes; our attempts do
   * not, so gather (a peek cannot be gathered: the blocking path). */
  if (flags & MSG_PEEK) {
    struct blk b = {recv_fn, &c};
    return io_ret(io_blocking(blk_call, &b));
  }
  c.flags &= ~MSG_WAITALL;
  long done = 0;
  while ((size_t)done < n) {
    long r = io_run(fd, false, false, recv_fn, &c);
    if (r <= 0) {
      if (done > 0)
        break;
      return io_ret(r);
    }
    done += r;
    c.buf = (char *)c.buf + r;
    c.len -= (size_t)r;
    c.addr = NULL;
    c.alen = NULL;
  }
  return done;
}

GMP_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
  if (!gmp_self())
    return NEXT(recv)(fd, buf, n, flags);
  return recvfrom(fd, buf, n, flags, NULL, NULL);
}

GMP_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                          const struct sockaddr *a, socklen_t alen)
{
  if (!gmp_self())
    return NEXT(sendto)(fd, buf, n, flags, a, alen);
  struct rw c = {.fd = fd, .buf = (void *)buf, .len = n, .flags = flags,
                 .addr = (struct sockaddr *)a, .slen = alen};
  return io_ret(write_all(&c, send_fn, (flags & MSG_DONTWAIT) != 0));
}

GMP_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
  if (!gmp_self())
    return NEXT(send)(fd, buf, n, flags);
  return sendto(fd, buf, n, flags, NULL, 0);
}

/* ---- vectored --------------------------------------------------------- */

struct vec {
  int fd;
  struct msghdr *msg;
  int flags;
  const struct iovec *iov; /* readv/writev */
  int iovcnt;
};

static long readv_fn(void *arg, int kind)
{
  struct vec *c = arg;
  if (kind == FDK_SOCK) {
    struct msghdr m = {.msg_iov = (struct iovec *)c->iov, .msg_iovlen = (size_t)c->iovcnt};
    return gmp_sys3(SYS_recvmsg, c->fd, &m, MSG_DONTWAIT);
  }
  if (kind == FDK_STREAM)
    return gmp_sys6(SYS_preadv2, c->fd, c->iov, c->iovcnt, -1, -1, RWF_NOWAIT);
  return gmp_sys3(SYS_readv, c->fd, c->iov, c->iovcnt);
}

static long writev_fn(void *arg, int kind)
{
  struct vec *c = arg;
  if (kind == FDK_SOCK) {
    struct msghdr m = {.msg_iov = (struct iovec *)c->iov, .msg_iovlen = (size_t)c->iovcnt};
    return gmp_sys3(SYS_sendmsg, c->fd, &m, MSG_DONTWAIT);
  }
  if (kind == FDK_STREAM)
    return gmp_sys6(SYS_pwritev2, c->fd, c->iov, c->iovcnt, -1, -1, RWF_NOWAIT);
  return gmp_sys3(SYS_writev, c->fd, c->iov, c->iovcnt);
}

static long recvmsg_fn(void *arg, int kind)
{
  struct vec *c = arg;
  return gmp_sys3(SYS_recvmsg, c->fd, c->msg, c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT));
}

static long sendmsg_fn(void *arg, int kind)
{
  struct vec *c = arg;
  return gmp_sys3(SYS_sendmsg, c->fd, c->msg, c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT));
}

GMP_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
  if (!gmp_self())
    return NEXT(readv)(fd, iov, n);
  struct vec c = {.fd = fd, .iov = iov, .iovcnt = n};
  return io_ret(io_run(fd, false, false, readv_fn, &c));
}

GMP_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
  if (!gmp_self())
    return NEXT(recvmsg)(fd, msg, flags);
  struct vec c = {.fd = fd, .msg = msg, .flags = flags};
  if ((flags & MSG_WAITALL) && !(flags & MSG_DONTWAIT)) {
    struct blk b = {recvmsg_fn, &c};
    return io_ret(io_blocking(blk_call, &b)); /* gathering ancillary data: kernel's job */
  }
  return io_ret(io_run(fd, false, (flags & MSG_DONTWAIT) != 0, recvmsg_fn, &c));
}

/* Vectored writes continue after a partial transfer on a copy of the
 * iovec array advanced past what was sent; ancillary data (SCM_RIGHTS)
 * goes with the first part only, as the kernel would send it. */
#define IOV_STACK 64

static long vec_write(int fd, struct msghdr *m, int flags, bool is_msg)
{
  struct vec c = {.fd = fd, .msg = m, .flags = flags, .iov = m->msg_iov,
                  .iovcnt = (int)m->msg_iovlen};
  io_fn fn = is_msg ? sendmsg_fn : writev_fn;
  bool nb = (flags & MSG_DONTWAIT) != 0;
  long r = io_run(fd, true, nb, fn, &c);
  if (r <= 0)
    return r;
  size_t total = 0;
  for (size_t i = 0; i < m->msg_iovlen; i++)
    total += m->msg_iov[i].iov_len;
  if ((size_t)r >= total) {
    kick_peer(fd);
    return r;
  }
  struct iovec small[IOV_STACK], *v = small;
  if (m->msg_iovlen > IOV_STACK) {
    v = malloc(m->msg_iovlen * sizeof *v);
    if (!v) {
      kick_peer(fd);
      return r; /* a partial count is a valid answer */
    }
  }
  memcpy(v, m->msg_iov, m->msg_iovlen * sizeof *v);
  struct msghdr rest = *m;
  rest.msg_control = NULL;
  rest.msg_controllen = 0;
  rest.msg_iov = v;
  long done = r;
  size_t skip = (size_t)r;
  for (;;) {
    while (rest.msg_iovlen && skip >= rest.msg_iov->iov_len) {
      skip -= rest.msg_iov->iov_len;
      rest.msg_iov++;
      rest.msg_iovlen--;
    }
    if (!rest.msg_iovlen)
      break;
    rest.msg_iov->iov_base = (char *)rest.msg_iov->iov_base + skip;
    rest.msg_iov->iov_len -= skip;
    struct vec c2 = {.fd = fd, .msg = &rest, .flags = flags, .iov = rest.msg_iov,
                     .iovcnt = (int)rest.msg_iovlen};
    long k = io_run(fd, true, nb, fn, &c2);
    if (k <= 0)
      break;
    done += k;
    skip = (size_t)k;
  }
  if (v != small)
    free(v);
  kick_peer(fd);
  return done;
}

GMP_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
  if (!gmp_self())
    return NEXT(writev)(fd, iov, n);
  if (n < 0 || n > IOV_MAX) {
    struct vec c = {.fd = fd, .iov = iov, .iovcnt = n};
    return io_ret(writev_fn(&c, FDK_NOPOLL)); /* EINVAL from the kernel */
  }
  struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
  return io_ret(vec_write(fd, &m, 0, false));
}

GMP_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
  if (!gmp_self())
    return NEXT(sendmsg)(fd, msg, flags);
  if (msg->msg_iovlen > IOV_MAX) {
    struct vec c = {.fd = fd, .msg = (struct msghdr *)msg, .flags = flags};
    return io_ret(sendmsg_fn(&c, FDK_NOPOLL));
  }
  return io_ret(vec_write(fd, (struct msghdr *)msg, flags, true));
}

/* recvmmsg/sendmmsg: the first message is waited for; a blocking
 * recvmmsg without MSG_WAITFORONE waits for vlen messages, so the rest
 * are gathered the same way. A timeout argument (its semantics are odd:
 * checked only after each message) keeps the blocking path. */
struct mm {
  int fd;
  struct mmsghdr *v;
  unsigned n;
  int flags;
  struct timespec *t;
};

static long recvmmsg_fn(void *arg, int kind)
{
  struct mm *c = arg;
  return gmp_sys6(SYS_recvmmsg, c->fd, c->v, c->n,
                  c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT), c->t, 0);
}

static long sendmmsg_fn(void *arg, int kind)
{
  struct mm *c = arg;
  return gmp_sys4(SYS_sendmmsg, c->fd, c->v, c->n,
                  c->flags | (kind == FDK_NOPOLL ? 0 : MSG_DONTWAIT));
}

GMP_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
  if (!gmp_self())
    return NEXT(recvmmsg)(fd, v, n, flags, t);
  struct mm c = {fd, v, n, flags, t};
  bool nb = (flags & MSG_DONTWAIT) != 0;
  if (t && !nb) {
    struct blk b = {recvmmsg_fn, &c};
    return (int)io_ret(io_blocking(blk_call, &b));
  }
  long r = io_run(fd, false, nb, recvmmsg_fn, &c);
  if (r <= 0 || nb || (flags & MSG_WAITFORONE))
    return (int)io_ret(r);
  unsigned done = (unsigned)r;
  c.flags |= MSG_WAITFORONE;
  while (done < n) {
    struct mm c2 = {fd, v + done, n - done, c.flags, NULL};
    long k = io_run(fd, false, false, recvmmsg_fn, &c2);
    if (k <= 0)
      break;
    done += (unsigned)k;
  }
  return (int)done;
}

GMP_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
  if (!gmp_self())
    return NEXT(sendmmsg)(fd, v, n, flags);
  struct mm c = {fd, v, n, flags, NULL};
  long r = io_run(fd, true, (flags & MSG_DONTWAIT) != 0, sendmmsg_fn, &c);
  if (r > 0)
    kick_peer(fd);
  return (int)io_ret(r);
}

/* ---- accept / connect ------------------------------------------------------ */

struct acc {
  int fd;
  struct sockaddr *a;
  socklen_t *l;
  int flags;
};

static long accept_fn(void *arg, int kind)
{
  struct acc *c = arg;
  return gmp_sys4(SYS_accept4, c->fd, c->a, c->l, c->flags);
}

/* accept has no per-call non-blocking flag: a listening socket the
 * program wants blocking gets O_NONBLOCK in the kernel (FDF_FORCED),
 * hidden from F_GETFL. */
static void force_nonblock(int fd, struct gmp_fd *d)
{
  if (!d || (atomic_load(&d->flags) & (FDF_FORCED | FDF_NONBLOCK)))
    return;
  long fl = gmp_sys2(SYS_fcntl, fd, F_GETFL);
  if (fl < 0)
    return;
  gmp_spin_lock(&d->lock);
  if (!(fl & O_NONBLOCK) && gmp_sys3(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK) == 0)
    atomic_fetch_or(&d->flags, FDF_FORCED);
  gmp_spin_unlock(&d->lock);
}

GMP_EXPORT int accept4(int fd, struct sockaddr *a, socklen_t *l, int flags)
{
  if (!gmp_self()) {
    int r = NEXT(accept4)(fd, a, l, flags);
    if (r >= 0)
      gmp_fd_new(r, FDK_SOCK, (flags & SOCK_NONBLOCK) ? FDF_NONBLOCK : 0);
    return r;
  }
  struct acc c = {fd, a, l, flags};
  long r;
  struct gmp_fd *d = gmp_fd_get(fd);
  if (d && gmp_fd_kind(fd, d) == FDK_SOCK) {
    force_nonblock(fd, d);
    if (atomic_load(&d->flags) & (FDF_FORCED | FDF_NONBLOCK)) {
      r = io_run(fd, false, false, accept_fn, &c);
    } else { /* F_SETFL refused: wait in the kernel */
      struct blk b = {accept_fn, &c};
      gmp_testcancel();
      r = io_blocking(blk_call, &b);
    }
  } else {
    r = io_run(fd, false, false, accept_fn, &c);
  }
  if (r >= 0)
    gmp_fd_new((int)r, FDK_SOCK, (flags & SOCK_NONBLOCK) ? FDF_NONBLOCK : 0);
  return (int)io_ret(r);
}

GMP_EXPORT int accept(int fd, struct sockaddr *a, socklen_t *l)
{
  if (!gmp_self()) { /* glibc's accept is a cancellation point of its own */
    int r = NEXT(accept)(fd, a, l);
    if (r >= 0)
      gmp_fd_new(r, FDK_SOCK, 0);
    return r;
  }
  return accept4(fd, a, l, 0);
}

struct conn {
  int fd;
  const struct sockaddr *a;
  socklen_t l;
};

static long connect_call(void *arg)
{
  struct conn *c = arg;
  return gmp_sys3(SYS_connect, c->fd, c->a, c->l);
}

/* A blocking connect is a non-blocking one (O_NONBLOCK set for the call
 * only), a park until the socket is writable, and SO_ERROR. */
GMP_EXPORT int connect(int fd, const struct sockaddr *a, socklen_t l)
{
  if (!gmp_self())
    return NEXT(connect)(fd, a, l);
  struct conn c = {fd, a, l};
  gmp_testcancel();
  struct gmp_fd *d = gmp_fd_get(fd);
  if (!d || gmp_fd_kind(fd, d) != FDK_SOCK || (atomic_load(&d->flags) & FDF_NONBLOCK))
    return (int)io_ret(d && (atomic_load(&d->flags) & FDF_NONBLOCK) ? connect_call(&c)
                                                                  : io_blocking(connect_call, &c));
  long fl = gmp_sys2(SYS_fcntl, fd, F_GETFL);
  if (fl < 0)
    return (int)io_ret(fl);
  uint32_t gen = atomic_load(&d->gen);
  uint32_t seq = atomic_load(&d->wseq);
  long r;
  if (fl & O_NONBLOCK) {
    r = connect_call(&c);
  } else {
    gmp_sys3(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK);
    r = connect_call(&c);
    gmp_sys3(SYS_fcntl, fd, F_SETFL, fl);
  }
  if (r == -EAGAIN) /* AF_UNIX, listener's backlog full: no readiness to wait for */
    return (int)io_ret(io_blocking(connect_call, &c));
  if (r != -EINPROGRESS)
    return (int)io_ret(r);
  int64_t deadline = d->sndtimeo > 0 ? gmp_nanotime() + d->sndtimeo : GMP_NO_DEADLINE;
  for (;;) {
    int e = gmp_fd_wait(fd, d, gen, true, seq, deadline);
    if (e == ETIMEDOUT)
      return (int)io_ret(-EINPROGRESS); /* Linux: SO_SNDTIMEO expired */
    if (e == EBADF)
      return (int)io_ret(-EBADF);
    if (e == ECANCELED)
      gmp_testcancel();
    if (e == EINTR) /* the connection goes on; connect again says EALREADY */
      return (int)io_ret(-EINTR);
    if (e != 0 && e != ECANCELED) {
      /* cannot poll it: wait in the kernel */
      struct pollfd p = {fd, POLLOUT, 0};
      gmp_entersyscall();
      gmp_sys3(SYS_poll, &p, 1, -1);
      gmp_exitsyscall();
    }
    seq = atomic_load(&d->wseq);
    struct pollfd p = {fd, POLLOUT, 0};
    if (gmp_sys3(SYS_poll, &p, 1, 0) == 1)
      break;
  }
  int err = 0;
  socklen_t len = sizeof err;
  r = gmp_sys6(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR, &err, &len, 0);
  if (r < 0)
    return (int)io_ret(r);
  return err ? (int)io_ret(-err) : 0;
}

/* ---- making descriptors --------------------------------------------------- */

GMP_EXPORT int socket(int domain, int type, int proto)
{
  long r = gmp_sys3(SYS_socket, domain, type, proto);
  if (r >= 0)
    gmp_fd_new((int)r, FDK_SOCK, (type & SOCK_NONBLOCK) ? FDF_NONBLOCK : 0);
  return (int)io_ret(r);
}

static void set_peer(int fd, int peer)
{
  struct gmp_fd *d = gmp_fd_get(fd), *pd = gmp_fd_get(peer);
  if (!d || !pd)
    return;
  gmp_spin_lock(&d->lock);
  d->peer = peer;
  d->peer_gen = atomic_load(&pd->gen);
  gmp_spin_unlock(&d->lock);
}

GMP_EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
  long r = gmp_sys4(SYS_socketpair, domain, type, proto, sv);
  if (r == 0) {
    unsigned f = (type & SOCK_NONBLOCK) ? FDF_NONBLOCK : 0;
    gmp_fd_new(sv[0], FDK_SOCK, f);
    gmp_fd_new(sv[1], FDK_SOCK, f);
    set_peer(sv[0], sv[1]);
    set_peer(sv[1], sv[0]);
  }
  return (int)io_ret(r);
}

GMP_EXPORT int pipe2(int p[2], int flags)
{
  long r = gmp_sys2(SYS_pipe2, p, flags);
  if (r == 0) {
    unsigned f = (flags & O_NONBLOCK) ? FDF_NONBLOCK : 0;
    gmp_fd_new(p[0], FDK_STREAM, f);
    gmp_fd_new(p[1], FDK_STREAM, f);
    set_peer(p[1], p[0]); /* a write to p[1] readies p[0]'s reader */
  }
  return (int)io_ret(r);
}

GMP_EXPORT int pipe(int p[2]) { return pipe2(p, 0); }

GMP_EXPORT int eventfd(unsigned initval, int flags)
{
  long r = gmp_sys2(SYS_eventfd2, initval, flags);
  if (r >= 0)
    gmp_fd_new((int)r, FDK_STREAM, (flags & EFD_NONBLOCK) ? FDF_NONBLOCK : 0);
  return (int)io_ret(r);
}

GMP_EXPORT int timerfd_create(int clockid, int flags)
{
  long r = gmp_sys2(SYS_timerfd_create, clockid, flags);
  if (r >= 0)
    gmp_fd_new((int)r, FDK_STREAM, (flags & TFD_NONBLOCK) ? FDF_NONBLOCK : 0);
  return (int)io_ret(r);
}

GMP_EXPORT int epoll_create1(int flags)
{
  long r = gmp_sys1(SYS_epoll_create1, flags);
  if (r >= 0)
    gmp_fd_new((int)r, FDK_EPOLL, 0);
  return (int)io_ret(r);
}

GMP_EXPORT int epoll_create(int size)
{
  if (size <= 0)
    return (int)io_ret(-EINVAL);
  return epoll_create1(0);
}

/* ---- duplicating and closing ----------------------------------------------- */

/* newfd now refers to oldfd's file: same kind and view (O_NONBLOCK and
 * the socket timeouts belong to the file, not the number). */
static void dup_view(int oldfd, int newfd)
{
  struct gmp_fd *o = gmp_fd_get(oldfd);
  int kind = o ? gmp_fd_kind(oldfd, o) : FDK_UNKNOWN;
  unsigned flags = o ? atomic_load(&o->flags) : 0;
  uint64_t sigfd = o ? atomic_load(&o->sigfd_mask) : 0;
  if (sigfd) {
    gmp_fd_new_sigfd(newfd, flags & FDF_NONBLOCK, sigfd);
    return;
  }
  gmp_fd_new(newfd, kind == FDK_NOPOLL ? FDK_UNKNOWN : kind, flags & (FDF_NONBLOCK | FDF_FORCED));
  struct gmp_fd *n = gmp_fd_get(newfd);
  if (o && n) {
    n->rcvtimeo = o->rcvtimeo;
    n->sndtimeo = o->sndtimeo;
  }
}

GMP_EXPORT int close(int fd)
{
  if (gmp_netpoll_owns(fd))
    return (int)io_ret(-EBADF); /* not the program's: as if never opened */
  gmp_fd_closing(fd);
  long r = gmp_sys1(SYS_close, fd);
  /* A thread that entered read() between the mark and the close saw the
   * fd still open and may have parked: wake it once more, now that its
   * retry meets a closed fd (or, as natively, whatever reused the number). */
  struct gmp_fd *d = gmp_fd_get(fd);
  if (d && atomic_load(&d->nwait) > 0)
    gmp_fd_wake_all(d);
  return (int)io_ret(r);
}

GMP_EXPORT int dup(int fd)
{
  long r = gmp_sys1(SYS_dup, fd);
  if (r >= 0)
    dup_view(fd, (int)r);
  return (int)io_ret(r);
}

GMP_EXPORT int dup3(int fd, int newfd, int flags)
{
  if (fd == newfd)
    return (int)io_ret(-EINVAL);
  gmp_netpoll_evacuate(newfd);
  gmp_fd_closing(newfd);
  long r = gmp_sys3(SYS_dup3, fd, newfd, flags);
  if (r >= 0)
    dup_view(fd, (int)r);
  return (int)io_ret(r);
}

GMP_EXPORT int dup2(int fd, int newfd)
{
  if (fd == newfd) /* valid fd: returns it; invalid: EBADF */
    return (int)io_ret(gmp_sys2(SYS_fcntl, fd, F_GETFD) < 0 ? -EBADF : fd);
  gmp_netpoll_evacuate(newfd);
  gmp_fd_closing(newfd);
  long r = gmp_sys3(SYS_dup3, fd, newfd, 0);
  if (r >= 0)
    dup_view(fd, (int)r);
  return (int)io_ret(r);
}

GMP_EXPORT int shutdown(int fd, int how)
{
  long r = gmp_sys2(SYS_shutdown, fd, how);
  struct gmp_fd *d;
  if (r == 0 && (d = gmp_fd_get(fd)))
    gmp_fd_wake_all(d); /* blocked recv/send return 0 / EPIPE now */
  return (int)io_ret(r);
}

/* ---- the program's view: fcntl, ioctl, setsockopt ------------------------ */

static void set_user_nonblock(int fd, bool nb)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  if (!d)
    return;
  if (nb)
    atomic_fetch_or(&d->flags, FDF_NONBLOCK);
  else
    atomic_fetch_and(&d->flags, (uint8_t)~FDF_NONBLOCK);
}

static bool forced(int fd)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  return d && (atomic_load(&d->flags) & FDF_FORCED);
}

struct fc {
  int fd, cmd;
  long arg;
};

static long fcntl_call(void *arg)
{
  struct fc *c = arg;
  return gmp_sys3(SYS_fcntl, c->fd, c->cmd, c->arg);
}

/* The argument is an int or a pointer, both passed in a register as a
 * long. F_SETLKW / F_OFD_SETLKW may block: the blocking-syscall path. */
GMP_EXPORT int fcntl(int fd, int cmd, ...)
{
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  struct fc c = {fd, cmd, arg};
  long r;
  switch (cmd) {
  case F_SETLKW:
  case F_OFD_SETLKW:
    if (gmp_self()) {
      gmp_testcancel();
      r = io_blocking(fcntl_call, &c);
    } else {
      r = fcntl_call(&c);
    }
    return (int)io_ret(r);
  case F_GETFL: {
    r = fcntl_call(&c);
    struct gmp_fd *d = gmp_fd_get(fd);
    if (r >= 0 && d && (atomic_load(&d->flags) & (FDF_FORCED | FDF_NONBLOCK)) == FDF_FORCED)
      r &= ~(long)O_NONBLOCK; /* the program's view, not libgmp's */
    return (int)io_ret(r);
  }
  case F_SETFL:
    if (forced(fd))
      c.arg |= O_NONBLOCK;
    r = fcntl_call(&c);
    if (r == 0)
      set_user_nonblock(fd, (arg & O_NONBLOCK) != 0);
    return (int)io_ret(r);
  case F_DUPFD:
  case F_DUPFD_CLOEXEC:
    r = fcntl_call(&c);
    if (r >= 0)
      dup_view(fd, (int)r);
    return (int)io_ret(r);
  default:
    return (int)io_ret(fcntl_call(&c));
  }
}

GMP_EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

GMP_EXPORT int ioctl(int fd, unsigned long req, ...)
{
  va_list ap;
  va_start(ap, req);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (req == FIONBIO && arg) {
    bool nb = *(int *)arg != 0;
    long r = 0;
    if (nb || !forced(fd)) /* a forced socket stays non-blocking inside */
      r = gmp_sys3(SYS_ioctl, fd, req, arg);
    else
      r = gmp_sys2(SYS_fcntl, fd, F_GETFL) < 0 ? -EBADF : 0;
    if (r == 0)
      set_user_nonblock(fd, nb);
    return (int)io_ret(r);
  }
  return (int)io_ret(gmp_sys3(SYS_ioctl, fd, req, arg));
}

GMP_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
  long r = gmp_sys6(SYS_setsockopt, fd, level, name, val, len, 0);
  if (r == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
      val && len >= sizeof(struct timeval)) {
    struct gmp_fd *d = gmp_fd_get(fd);
    const struct timeval *tv = val;
    int64_t ns = (int64_t)tv->tv_sec * 1000000000LL + (int64_t)tv->tv_usec * 1000;
    if (d) {
      if (name == SO_RCVTIMEO)
        d->rcvtimeo = ns;
      else
        d->sndtimeo = ns;
    }
  }
  return (int)io_ret(r);
}

/* ---- fortified variants ------------------------------------------------------ */

extern void __chk_fail(void) __attribute__((noreturn));

GMP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
  if (n > buflen)
    __chk_fail();
  return read(fd, buf, n);
}

GMP_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
  if (n > buflen)
    __chk_fail();
  return recvfrom(fd, buf, n, flags, NULL, NULL);
}

GMP_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                  struct sockaddr *a, socklen_t *l)
{
  if (n > buflen)
    __chk_fail();
  return recvfrom(fd, buf, n, flags, a, l);
}
