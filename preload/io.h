/*
 * Shared by preload/io.c (data transfer, descriptors) and
 * preload/iowait.c (poll, select, epoll_wait).
 */
#ifndef GMP_PRELOAD_IO_H
#define GMP_PRELOAD_IO_H

#include <dlfcn.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/types.h>

#include "poller/netpoll.h"
#include "preload/preload.h"

/* The next definition of the function being defined, resolved on first
 * use (two Gs racing here store the same value). */
#define NEXT(name)                                                          \
  ({                                                                        \
    static __typeof__(name) *next_;                                         \
    __typeof__(name) *p_ = __atomic_load_n(&next_, __ATOMIC_RELAXED);       \
    if (!p_) {                                                              \
      p_ = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                     \
      if (!p_)                                                              \
        gmp_fatal("cannot resolve %s", #name);                              \
      __atomic_store_n(&next_, p_, __ATOMIC_RELAXED);                       \
    }                                                                       \
    p_;                                                                     \
  })

/* A raw result (>= 0 or -errno) as the C library returns it. */
static inline long io_ret(long r)
{
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

/* After EINTR from a call made in entersyscall/exitsyscall: act on a
 * cancel, or tell whether the runtime's own SIGURG caused it (then the
 * call is restarted, as SA_RESTART would). */
static inline bool io_retry_eintr(void)
{
  gmp_testcancel();
  return gmp_eintr_was_ours();
}

/* The same for calls never restarted after a handler (signal(7)). */
static inline bool io_retry_eintr_nr(void)
{
  gmp_testcancel();
  return gmp_eintr_only_ours();
}

/* Run call(ctx) (returning a raw result) as a blocking system call: the
 * G's P is handed to another M if it blocks. */
long io_blocking(long (*call)(void *ctx), void *ctx);

/* fn(ctx, kind) makes one attempt at a call (kind: enum gmp_fdkind),
 * returning a raw result; -EAGAIN: it would block. */
typedef long (*io_fn)(void *ctx, int kind);

/* A read-like call on fd through the poller (io.c's core loop): fn is
 * tried, and while it would block and the program's view of fd is
 * blocking, the G parks until fd may have moved. */
long io_read_with(int fd, io_fn fn, void *ctx);

/* signalfd.c: a read of a signalfd made through the wrapper (d's
 * sigfd_mask set), the G's own queued signals included. */
long gmp_sigfd_read(int fd, struct gmp_fd *d, void *buf, size_t n);
/* The signals that signalfds among these fds read (0: none). */
uint64_t gmp_sigfd_poll_mask(const struct pollfd *fds, nfds_t n);
uint64_t gmp_sigfd_select_mask(int n, const fd_set *r);
/* After the kernel's look (ready: its result): signalfds the G has queued
 * signals for are readable too. Returns the new count. */
long gmp_sigfd_poll_fix(struct pollfd *fds, nfds_t n, long ready);
long gmp_sigfd_select_fix(int n, fd_set *r, const fd_set *asked, long ready);

/* Deadline from a relative timeout in ns (< 0: none). */
static inline int64_t io_deadline_after(int64_t ns)
{
  return ns < 0 ? GMP_NO_DEADLINE : gmp_nanotime() + ns;
}

#endif
