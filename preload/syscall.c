/*
 * Calls that may block in the kernel, bracketed by entersyscall /
 * exitsyscall so that sysmon hands the P to another M while the calling
 * M is blocked (DESIGN.md non-negotiable 1). This covers regular files,
 * child processes, file locks, signal waits and SysV IPC. Sockets, pipes
 * and eventfds go through the network poller instead (io.c, iowait.c),
 * which parks the G and keeps the M; read/write & co on other files come
 * back here through io_blocking.
 *
 * glibc's fortified variants (__read_chk, __open_2, ...) are separate
 * exported symbols that -D_FORTIFY_SOURCE programs call instead of the
 * plain ones, so they are wrapped as well.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <unistd.h>

#include <dlfcn.h>

#include "preload/io.h"

#define COMMA_ ,

/* Define name(params) as: real call inside entersyscall/exitsyscall when
 * called from a G, straight through otherwise. errno is the call's. */
/* After EINTR: act on a cancel, or, if the runtime's own SIGURG (a
 * preemption request that found the G in the kernel) caused it, restart
 * the call as SA_RESTART would; the program's signals still interrupt. */
#define retry_eintr io_retry_eintr

#define BLOCKING_RETRY(retry, ret, name, params, args)                      \
  GMP_EXPORT ret name params                                                \
  {                                                                         \
    if (!gmp_self())                                                        \
      return NEXT(name) args;                                               \
    gmp_testcancel();                                                       \
    ret r_;                                                                 \
    int e_;                                                                 \
    do {                                                                    \
      gmp_entersyscall_as(#name);                                           \
      r_ = NEXT(name) args;                                                 \
      e_ = errno;                                                           \
      gmp_exitsyscall();                                                    \
    } while (r_ == (ret)-1 && e_ == EINTR && retry());                      \
    errno = e_;                                                             \
    return r_;                                                              \
  }
#define BLOCKING(ret, name, params, args) BLOCKING_RETRY(retry_eintr, ret, name, params, args)
/* Calls that fail with EINTR after any handler, SA_RESTART or not
 * (signal(7)): restarted only after the runtime's own SIGURG. */
#define BLOCKING_NR(ret, name, params, args)                                 \
  BLOCKING_RETRY(io_retry_eintr_nr, ret, name, params, args)

/* The hot calls go straight to the kernel. glibc's wrappers of these are
 * cancellation points, and in a multi-threaded process (every G TCB says
 * so) they bracket the syscall with two atomic updates of the thread's
 * cancelhandling word: ~100 ns per call, more than the runtime's own
 * bookkeeping. Cancellation of Gs is the runtime's business, not glibc's,
 * so nothing is lost by skipping them. */
#define RAW(ret, name, params, nr, ...)                                      \
  GMP_EXPORT ret name params                                                \
  {                                                                         \
    long r_;                                                                \
    if (!gmp_self()) {                                                      \
      r_ = gmp_sys6(nr, __VA_ARGS__);                                       \
    } else {                                                                \
      gmp_testcancel();                                                     \
      do {                                                                  \
        gmp_entersyscall();                                                 \
        r_ = gmp_sys6(nr, __VA_ARGS__);                                     \
        gmp_exitsyscall();                                                  \
      } while (r_ == -EINTR && retry_eintr());                              \
    }                                                                       \
    if (r_ < 0 && r_ > -4096) {                                             \
      errno = (int)-r_;                                                     \
      return (ret)-1;                                                       \
    }                                                                       \
    return (ret)r_;                                                         \
  }

RAW(ssize_t, pread, (int fd, void *b, size_t n, off_t o), SYS_pread64, fd, b, n, o, 0, 0)
RAW(ssize_t, pwrite, (int fd, const void *b, size_t n, off_t o), SYS_pwrite64, fd, b, n, o, 0, 0)
RAW(ssize_t, pread64, (int fd, void *b, size_t n, off64_t o), SYS_pread64, fd, b, n, o, 0, 0)
RAW(ssize_t, pwrite64, (int fd, const void *b, size_t n, off64_t o), SYS_pwrite64, fd, b, n, o,
    0, 0)
BLOCKING(int, fsync, (int fd), (fd))
BLOCKING(int, fdatasync, (int fd), (fd))
BLOCKING(int, flock, (int fd, int op), (fd, op))
BLOCKING(pid_t, waitpid, (pid_t p, int *s, int o), (p, s, o))
BLOCKING(pid_t, wait, (int *s), (s))
BLOCKING(pid_t, wait4, (pid_t p, int *s, int o, struct rusage *r), (p, s, o, r))
BLOCKING(int, waitid, (idtype_t t, id_t i, siginfo_t *s, int o), (t, i, s, o))
BLOCKING(int, creat, (const char *p, mode_t m), (p, m))
BLOCKING(int, tcdrain, (int fd), (fd))
/* Zero-copy transfers have no per-call non-blocking flag: a socket or
 * pipe end that is full blocks the call in the kernel, with the P handed
 * off. */
BLOCKING(ssize_t, sendfile, (int o, int i, off_t *off, size_t n), (o, i, off, n))
BLOCKING(ssize_t, sendfile64, (int o, int i, off64_t *off, size_t n), (o, i, off, n))
BLOCKING(ssize_t, splice, (int i, off64_t *oi, int o, off64_t *oo, size_t n, unsigned f),
         (i, oi, o, oo, n, f))
BLOCKING(ssize_t, tee, (int i, int o, size_t n, unsigned f), (i, o, n, f))
BLOCKING(int, sync_file_range, (int fd, off64_t o, off64_t n, unsigned f), (fd, o, n, f))
BLOCKING_NR(ssize_t, msgrcv, (int id, void *p, size_t n, long t, int f), (id, p, n, t, f))
BLOCKING_NR(int, msgsnd, (int id, const void *p, size_t n, int f), (id, p, n, f))
BLOCKING_NR(int, semop, (int id, struct sembuf *o, size_t n), (id, o, n))
BLOCKING_NR(int, semtimedop, (int id, struct sembuf *o, size_t n, const struct timespec *t),
         (id, o, n, t))
/* fortified variants */
BLOCKING(ssize_t, __pread_chk, (int fd, void *b, size_t n, off_t o, size_t bl),
         (fd, b, n, o, bl))
BLOCKING(ssize_t, __pread64_chk, (int fd, void *b, size_t n, off64_t o, size_t bl),
         (fd, b, n, o, bl))
BLOCKING(int, __open_2, (const char *p, int f), (p, f))
BLOCKING(int, __open64_2, (const char *p, int f), (p, f))
BLOCKING(int, __openat_2, (int d, const char *p, int f), (d, p, f))
BLOCKING(int, __openat64_2, (int d, const char *p, int f), (d, p, f))

/* open(2) of a FIFO blocks until the other end opens: the mode argument
 * exists only with O_CREAT or O_TMPFILE. */
static mode_t open_mode(int flags, va_list ap)
{
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

#define OPEN_LIKE(name, pre, prearg)                                        \
  GMP_EXPORT int name(pre const char *path, int flags, ...)                 \
  {                                                                         \
    va_list ap;                                                             \
    va_start(ap, flags);                                                    \
    mode_t mode = open_mode(flags, ap);                                     \
    va_end(ap);                                                             \
    if (!gmp_self())                                                        \
      return NEXT(name)(prearg path, flags, mode);                          \
    gmp_testcancel();                                                       \
    gmp_entersyscall_as(#name);                                             \
    int r = NEXT(name)(prearg path, flags, mode);                           \
    int e = errno;                                                          \
    gmp_exitsyscall();                                                      \
    if (r >= 0)                                                             \
      gmp_fd_new(r, FDK_UNKNOWN, 0); /* looked at on first use */           \
    errno = e;                                                              \
    return r;                                                               \
  }

#define NOTHING
OPEN_LIKE(open, NOTHING, NOTHING)
OPEN_LIKE(open64, NOTHING, NOTHING)
OPEN_LIKE(openat, int dirfd COMMA_, dirfd COMMA_)
OPEN_LIKE(openat64, int dirfd COMMA_, dirfd COMMA_)

/* syscall(2) itself: programs (and libraries such as InnoDB) make raw
 * futex waits and the like with it. The numbers that can block for long
 * run inside entersyscall/exitsyscall; any other passes straight through.
 * All six argument registers are forwarded, as glibc's syscall() does. */
static bool may_block(long nr, long arg)
{
  switch (nr) {
  case SYS_futex: {
    int op = (int)arg & 0x7f; /* futex's op, without PRIVATE_FLAG / CLOCK_REALTIME */
    return op == 0 /* WAIT */ || op == 9 /* WAIT_BITSET */ || op == 6 /* LOCK_PI */ ||
           op == 11 /* WAIT_REQUEUE_PI */ || op == 13 /* LOCK_PI2 */;
  }
  case SYS_read: case SYS_write: case SYS_readv: case SYS_writev:
  case SYS_pread64: case SYS_pwrite64: case SYS_recvfrom: case SYS_sendto:
  case SYS_recvmsg: case SYS_sendmsg: case SYS_accept: case SYS_accept4:
  case SYS_connect: case SYS_poll: case SYS_ppoll: case SYS_select:
  case SYS_pselect6: case SYS_epoll_wait: case SYS_epoll_pwait:
  case SYS_wait4: case SYS_waitid: case SYS_nanosleep: case SYS_clock_nanosleep:
  case SYS_fsync: case SYS_fdatasync: case SYS_flock: case SYS_msgrcv:
  case SYS_msgsnd: case SYS_semop: case SYS_semtimedop: case SYS_io_getevents:
  case SYS_rt_sigtimedwait: case SYS_pause: case SYS_openat: case SYS_open:
    return true;
  default:
    return false;
  }
}

GMP_EXPORT long syscall(long nr, ...)
{
  va_list ap;
  va_start(ap, nr);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (!gmp_self())
    return NEXT(syscall)(nr, a1, a2, a3, a4, a5, a6);
  long tr;
  if (gmp_tid_syscall(nr, a1, a2, a3, a4, &tr)) /* a G's own thread id (tid.c) */
    return tr;
  if (nr == SYS_futex) {
    /* Private futexes wait on the parking lot (futex.c). */
    long fr = gmp_futex(a1, a2, a3, a4, a5, a6);
    if (fr != GMP_FUTEX_KERNEL) {
      if (fr < 0) {
        errno = (int)-fr;
        return -1;
      }
      return fr;
    }
  }
  if (!may_block(nr, nr == SYS_futex ? a2 : a1))
    return NEXT(syscall)(nr, a1, a2, a3, a4, a5, a6);
  gmp_entersyscall_as("syscall");
  long r = NEXT(syscall)(nr, a1, a2, a3, a4, a5, a6);
  int e = errno;
  gmp_exitsyscall();
  errno = e;
  return r;
}
