/*
 * poller/ — the network poller: Gs that would block on a socket, pipe or
 * eventfd park here instead of holding an OS thread (Go's netpoll.go and
 * netpoll_epoll.go).
 *
 * Two halves:
 *  - the fd table (fdtab.c): per descriptor, the program's own view of it
 *    (blocking or not, SO_RCVTIMEO/SO_SNDTIMEO, its kind) and the
 *    readiness counters Gs park on;
 *  - the epoll instance (netpoll_epoll.c): one per process, every fd that
 *    ever made a G wait is registered once, edge-triggered; the scheduler
 *    polls it (findrunnable, sysmon) and readies the Gs whose fd moved.
 *
 * The protocol between a waiting G and the poller, which no lost wake-up
 * can slip through: the G reads the fd's readiness counter (rseq for
 * input, wseq for output) *before* its non-blocking attempt; on EAGAIN it
 * parks on the counter's address with a validate that checks the counter
 * is unchanged. The poller (or close, or a writer to the other end of a
 * pipe) first increments the counter, then wakes what is parked on its
 * address. Parking validates under the address's queue lock, waking
 * dequeues under it: either the G sees the new count and retries, or the
 * waker finds it queued.
 *
 * No fd is switched to O_NONBLOCK behind the program's back, except
 * listening sockets (accept has no per-call flag): reads and writes are
 * made non-blocking per call (MSG_DONTWAIT, RWF_NOWAIT), so descriptions
 * shared with other processes (a pipe handed to a child, stdin) keep
 * their mode.
 */
#ifndef GMP_POLLER_NETPOLL_H
#define GMP_POLLER_NETPOLL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched/lock.h"

struct g;

/* ---- the fd table (fdtab.c) --------------------------------------------- */

enum gmp_fdkind {
  FDK_UNKNOWN = 0, /* not looked at yet */
  FDK_NOPOLL,      /* regular file, tty, device, unknown: blocking-syscall path */
  FDK_SOCK,        /* socket: MSG_DONTWAIT per call */
  FDK_STREAM,      /* pipe, FIFO, eventfd, timerfd, signalfd: RWF_NOWAIT per call */
  FDK_EPOLL,       /* the program's own epoll instance: pollable, no data */
};

/* Flags of the program's view (struct gmp_fd.flags). */
#define FDF_NONBLOCK 1u /* the program set O_NONBLOCK: EAGAIN goes back to it */
#define FDF_FORCED 2u   /* libgmp set O_NONBLOCK in the kernel (listening socket) */
#define FDF_LISTEN 4u   /* listen() was called */

/* One per fd number, never freed: an fd number's descriptor is reused by
 * the next file that gets the number. gen changes on every close, so a G
 * that parked on the old file (and anything else holding a stale view)
 * can tell. */
struct gmp_fd {
  _Atomic uint32_t rseq;  /* input readiness events; Gs reading park on &rseq */
  _Atomic uint32_t wseq;  /* output readiness events; writers park on &wseq */
  _Atomic uint32_t gen;   /* incremented by close */
  _Atomic uint32_t epoch; /* netpoll epoch it is registered in; 0: never */
  _Atomic uint32_t outepoch; /* epoch in which output interest was added */
  _Atomic int32_t nwait;  /* Gs parked or about to park on it */
  _Atomic uint8_t kind;   /* enum gmp_fdkind */
  _Atomic uint8_t flags;  /* FDF_* */
  gmp_spin lock;          /* serialises classification and registration */
  int32_t peer;           /* pipe()/socketpair() other end, -1: none */
  uint32_t peer_gen;      /* its gen when recorded */
  int64_t rcvtimeo;       /* SO_RCVTIMEO in ns, 0: none */
  int64_t sndtimeo;       /* SO_SNDTIMEO in ns, 0: none */
  /* A signalfd made through the wrapper: the signals it reads (the
   * reading G's own queued ones included, preload/signalfd.c); 0: not a
   * signalfd. */
  _Atomic uint64_t sigfd_mask;
};

/* The descriptor of fd, or NULL when fd is negative or beyond what the
 * table can hold (then the caller takes the blocking-syscall path). */
struct gmp_fd *gmp_fd_get(int fd);
/* A new file got number fd (from socket, accept, pipe, dup, open, ...):
 * forget what the number meant before. */
void gmp_fd_new(int fd, int kind, unsigned flags);
/* fd is a signalfd reading mask (a new one, a dup, or a new mask). Always
 * pollable, whatever RWF_NOWAIT does on this kernel: its readers park on
 * the poller and read once it (or their own signal queue) has one. */
void gmp_fd_new_sigfd(int fd, unsigned flags, uint64_t mask);
/* The kind of fd, looked at (fstat, F_GETFL) the first time. */
int gmp_fd_kind(int fd, struct gmp_fd *d);
/* Were pipes, FIFOs and eventfds found to honour RWF_NOWAIT? */
bool gmp_fd_stream_ok(void);

/* Wait until fd may be ready for input (write=false) or output, given the
 * readiness count seen before the attempt that failed with EAGAIN.
 * Returns 0 (try again), ETIMEDOUT (deadline passed), EBADF (fd closed
 * meanwhile), ECANCELED (pthread_cancel), EINTR (a signal handler ran in
 * the thread), EPERM (the fd cannot be polled: use the blocking path). */
int gmp_fd_wait(int fd, struct gmp_fd *d, uint32_t gen, bool write, uint32_t seq,
                int64_t deadline);
/* Before close(fd): Gs parked on it wake and see EBADF. */
void gmp_fd_closing(int fd);
/* Wake every G parked on d (they re-check gen and the fd). */
void gmp_fd_wake_all(struct gmp_fd *d);
/* After data was written to fd: ready a G of this process parked on the
 * other end of the pipe or socketpair directly, without waiting for the
 * epoll round trip. */
void gmp_fd_kick_peer(struct gmp_fd *d);

/* ---- the epoll instance (netpoll_epoll.c) -------------------------------- */

/* Set once the first fd has been registered: until then nobody polls. */
extern _Atomic bool gmp_netpoll_active;
/* Gs parked in gmp_fd_wait: only worth blocking in epoll_wait when > 0. */
extern _Atomic int32_t gmp_netpoll_waiters;

/* The current registration epoch (changes in a fork child). */
uint32_t gmp_netpoll_epoch(void);
/* Register fd (edge-triggered, input) in the current epoch. 0, or an
 * errno (EPERM: the file does not support polling). */
int gmp_netpoll_register(int fd, struct gmp_fd *d);
/* Add output interest to a registered fd, the first time a G waits to
 * write on it. Lazily, because with edge triggering every read by the
 * peer that frees buffer space is an output event: an fd nobody ever
 * waits to write on would wake the blocked poller for nothing. */
int gmp_netpoll_want_output(int fd, struct gmp_fd *d);
/* Poll: timeout_ns < 0 blocks until an event or gmp_netpoll_break, 0
 * returns at once. Readied Gs are returned as a list linked through
 * their schedlink (their park ended; the caller makes them runnable). */
int gmp_netpoll(int64_t timeout_ns, struct g **list);
/* Make a blocked gmp_netpoll return (a timer earlier than its timeout). */
void gmp_netpoll_break(void);
/* Is fd the poller's own (epoll instance, break eventfd)? close() of it
 * answers EBADF, as for a number the program never opened. */
bool gmp_netpoll_owns(int fd);
/* The program is about to dup2 onto fd: if it is the poller's, move the
 * poller's file to another number first. */
void gmp_netpoll_evacuate(int fd);
/* fork child: the epoll instance is shared with the parent; make our own
 * and forget every registration. */
void gmp_netpoll_fork_child(void);
/* fork child: fd locks and waiter counts of threads that are gone. */
void gmp_fdtab_fork_child(void);

#endif
