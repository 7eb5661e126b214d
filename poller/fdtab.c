/*
 * The fd table: for every fd number, what the program believes about it
 * and what Gs wait on it for.
 *
 * Two levels, so that a process with a few fds pays for one chunk and a
 * C10K server pays for what it uses: FD_CHUNK descriptors per chunk,
 * allocated on first use with a CAS (a loser frees its copy). Descriptors
 * are never freed: a G may still hold a pointer to one after close (it
 * then sees gen move), and fd numbers are reused densely.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "poller/netpoll.h"
#include "sched/sched.h"

#define FD_CHUNK_SHIFT 12
#define FD_CHUNK (1u << FD_CHUNK_SHIFT)
/* 256 chunks of 4096: fds up to 1,048,576, Linux's default nr_open. An fd
 * beyond that takes the blocking-syscall path. */
#define FD_NCHUNKS 256

static _Atomic(struct gmp_fd *) chunks[FD_NCHUNKS];

/* fork child: the threads that held an fd's lock or waited on it are
 * gone (only the forking one lives on). A lock left held would make the
 * child's first close() of that fd spin forever (CPython's test_thread
 * forking while another thread read a pipe). */
void gmp_fdtab_fork_child(void)
{
  for (unsigned ci = 0; ci < FD_NCHUNKS; ci++) {
    struct gmp_fd *c = atomic_load_explicit(&chunks[ci], memory_order_relaxed);
    if (!c)
      continue;
    for (unsigned i = 0; i < FD_CHUNK; i++) {
      if (atomic_load_explicit(&c[i].lock.v, memory_order_relaxed))
        atomic_store_explicit(&c[i].lock.v, 0, memory_order_relaxed);
      if (atomic_load_explicit(&c[i].nwait, memory_order_relaxed))
        atomic_store_explicit(&c[i].nwait, 0, memory_order_relaxed);
    }
  }
}

struct gmp_fd *gmp_fd_get(int fd)
{
  if (fd < 0 || (unsigned)fd >= FD_CHUNK * FD_NCHUNKS)
    return NULL;
  unsigned ci = (unsigned)fd >> FD_CHUNK_SHIFT;
  struct gmp_fd *c = atomic_load_explicit(&chunks[ci], memory_order_acquire);
  if (!c) {
    /* Raw mmap: this runs inside read() & co, where malloc may not be
     * safe to call (a signal handler doing I/O). Zeroed pages are valid
     * descriptors: kind unknown, no peer recorded as fd 0 is avoided by
     * peer_gen 0 never matching a live gen (gens start at 1). */
    long r = gmp_sys6(SYS_mmap, 0, sizeof(struct gmp_fd) * FD_CHUNK, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r < 0 && r > -4096)
      return NULL;
    struct gmp_fd *fresh = (struct gmp_fd *)r;
    for (unsigned i = 0; i < FD_CHUNK; i++) {
      fresh[i].peer = -1;
      atomic_store_explicit(&fresh[i].gen, 1, memory_order_relaxed);
    }
    struct gmp_fd *none = NULL;
    if (atomic_compare_exchange_strong(&chunks[ci], &none, fresh)) {
      c = fresh;
    } else {
      gmp_sys2(SYS_munmap, fresh, sizeof(struct gmp_fd) * FD_CHUNK);
      c = none;
    }
  }
  return &c[(unsigned)fd & (FD_CHUNK - 1)];
}

/* ---- RWF_NOWAIT on pipes ---------------------------------------------- */

/* Pipes and eventfds have no MSG_DONTWAIT; preadv2/pwritev2 with
 * RWF_NOWAIT make one call non-blocking without touching the shared
 * O_NONBLOCK flag. Kernels before ~5.x answer EOPNOTSUPP for pipes: then
 * they stay on the blocking-syscall path (correct, one OS thread per
 * blocked call). Probed once on an empty pipe: EAGAIN means supported. */
static _Atomic int stream_ok; /* 0 unknown, 1 yes, 2 no */

static bool nowait_read_is_eagain(int fd)
{
  char b[8];
  struct iovec v = {b, sizeof b};
  return gmp_sys6(SYS_preadv2, fd, &v, 1, -1, -1, RWF_NOWAIT) == -EAGAIN;
}

bool gmp_fd_stream_ok(void)
{
  int s = atomic_load_explicit(&stream_ok, memory_order_relaxed);
  if (s)
    return s == 1;
  /* Pipes and eventfds, both: a kernel that honours RWF_NOWAIT on one
   * and not the other is treated as honouring neither. */
  int p[2];
  bool ok = false;
  if (gmp_sys2(SYS_pipe2, p, O_CLOEXEC) == 0) {
    ok = nowait_read_is_eagain(p[0]);
    gmp_sys1(SYS_close, p[0]);
    gmp_sys1(SYS_close, p[1]);
  }
  long e = gmp_sys2(SYS_eventfd2, 0, EFD_CLOEXEC);
  if (e >= 0) {
    ok = ok && nowait_read_is_eagain((int)e);
    gmp_sys1(SYS_close, e);
  } else {
    ok = false;
  }
  atomic_store(&stream_ok, ok ? 1 : 2);
  return ok;
}

/* ---- classification ------------------------------------------------------ */

void gmp_fd_new(int fd, int kind, unsigned flags)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  if (!d)
    return;
  if (kind == FDK_STREAM && !gmp_fd_stream_ok())
    kind = FDK_NOPOLL;
  gmp_spin_lock(&d->lock);
  /* A new file on this number: whoever still waits on the old one (it was
   * closed behind our back, by glibc itself) must not be confused. */
  atomic_fetch_add(&d->gen, 1);
  atomic_store(&d->epoch, 0);
  atomic_store(&d->outepoch, 0);
  d->peer = -1;
  d->peer_gen = 0;
  d->rcvtimeo = d->sndtimeo = 0;
  atomic_store(&d->sigfd_mask, 0);
  atomic_store(&d->flags, (uint8_t)flags);
  atomic_store(&d->kind, (uint8_t)kind);
  gmp_spin_unlock(&d->lock);
  gmp_fd_wake_all(d);
}

void gmp_fd_new_sigfd(int fd, unsigned flags, uint64_t mask)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  if (!d)
    return;
  if (atomic_load(&d->sigfd_mask) && atomic_load(&d->kind) == FDK_STREAM) {
    atomic_store(&d->sigfd_mask, mask); /* signalfd(fd, new mask): same file */
    return;
  }
  gmp_fd_new(fd, FDK_UNKNOWN, flags);
  gmp_spin_lock(&d->lock);
  atomic_store(&d->sigfd_mask, mask);
  atomic_store(&d->kind, FDK_STREAM);
  gmp_spin_unlock(&d->lock);
}

/* What an fd the runtime did not see being made is: a socket, a pipe or
 * FIFO, or something polling cannot help with. Anonymous inodes
 * (eventfd, timerfd, epoll, ...) report no file type; the ones the
 * program made through the wrappers are already classified, the others
 * stay on the blocking path. */
static int classify(int fd, unsigned *flags)
{
  struct stat st;
  if (gmp_sys2(SYS_fstat, fd, &st) != 0)
    return FDK_UNKNOWN; /* EBADF: let the call itself report it */
  long fl = gmp_sys2(SYS_fcntl, fd, F_GETFL);
  *flags = fl >= 0 && (fl & O_NONBLOCK) ? FDF_NONBLOCK : 0;
  if (S_ISSOCK(st.st_mode)) {
    /* A listening socket inherited (systemd, a parent that forked us)
     * is still a socket; accept() decides about O_NONBLOCK. */
    return FDK_SOCK;
  }
  if (S_ISFIFO(st.st_mode))
    return gmp_fd_stream_ok() ? FDK_STREAM : FDK_NOPOLL;
  return FDK_NOPOLL;
}

int gmp_fd_kind(int fd, struct gmp_fd *d)
{
  int k = atomic_load_explicit(&d->kind, memory_order_acquire);
  if (k != FDK_UNKNOWN)
    return k;
  unsigned flags = 0;
  int nk = classify(fd, &flags);
  if (nk == FDK_UNKNOWN)
    return FDK_NOPOLL; /* not open: the call will say EBADF */
  gmp_spin_lock(&d->lock);
  if (atomic_load(&d->kind) == FDK_UNKNOWN) {
    atomic_store(&d->flags, (uint8_t)flags);
    atomic_store(&d->kind, (uint8_t)nk);
  }
  k = atomic_load(&d->kind);
  gmp_spin_unlock(&d->lock);
  return k;
}
