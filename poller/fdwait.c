/*
 * Parking a G until its fd may be ready, and the three ways a parked G is
 * woken besides the poller: close, a new file on the number, and a write
 * to the other end of a pipe/socketpair of the same process.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "poller/netpoll.h"
#include "sched/sched.h"

struct fdwait {
  struct gmp_fd *d;
  _Atomic uint32_t *seqp;
  uint32_t seq, gen;
};

/* Runs under the wait queue's lock (see netpoll.h for the protocol). */
static bool still_waiting(void *arg)
{
  struct fdwait *w = arg;
  return atomic_load(w->seqp) == w->seq && atomic_load(&w->d->gen) == w->gen;
}

int gmp_fd_wait(int fd, struct gmp_fd *d, uint32_t gen, bool write, uint32_t seq,
                int64_t deadline)
{
  if (atomic_load(&d->gen) != gen)
    return EBADF;
  if (atomic_load_explicit(&d->epoch, memory_order_acquire) != gmp_netpoll_epoch()) {
    int e = gmp_netpoll_register(fd, d);
    if (e)
      return e;
  }
  if (write) {
    int e = gmp_netpoll_want_output(fd, d);
    if (e)
      return e;
  }
  struct fdwait w = {d, write ? &d->wseq : &d->rseq, seq, gen};
  /* nwait before the validate's read of the counter (both seq_cst): a
   * waker that bumps the counter and then finds nwait == 0 cannot have
   * been missed, because we would then see its bump. */
  atomic_fetch_add(&d->nwait, 1);
  if (atomic_fetch_add(&gmp_netpoll_waiters, 1) == 0 || gmp_netpoll_unwatched())
    gmp_netpoll_want_poller();
  int r = gmp_park_on_fd(w.seqp, still_waiting, &w, deadline,
                         (write ? GMP_WAIT_IOW : GMP_WAIT_IOR) | GMP_WAIT_CANCELPOINT, fd);
  atomic_fetch_sub(&gmp_netpoll_waiters, 1);
  atomic_fetch_sub(&d->nwait, 1);
  if (atomic_load(&d->gen) != gen)
    return EBADF;
  switch (r) {
  case GMP_PARK_TIMEDOUT:
    return ETIMEDOUT;
  case GMP_PARK_CANCELED:
    return ECANCELED;
  case GMP_PARK_INTERRUPTED:
    return EINTR;
  default:
    return 0;
  }
}

static void ready_list(struct g *list)
{
  while (list) {
    struct g *next = gmp_g_next(list);
    gmp_ready_g(list);
    list = next;
  }
}

void gmp_fd_wake_all(struct gmp_fd *d)
{
  atomic_fetch_add(&d->rseq, 1);
  atomic_fetch_add(&d->wseq, 1);
  if (atomic_load(&d->nwait) == 0)
    return;
  struct g *list = NULL;
  gmp_unpark_collect(&d->rseq, &list);
  gmp_unpark_collect(&d->wseq, &list);
  ready_list(list);
}

void gmp_fd_closing(int fd)
{
  struct gmp_fd *d = gmp_fd_get(fd);
  if (!d)
    return;
  gmp_spin_lock(&d->lock);
  atomic_fetch_add(&d->gen, 1);
  /* The number is free: whatever gets it next (perhaps opened by glibc
   * itself, behind the wrappers) is looked at afresh. */
  atomic_store(&d->kind, FDK_UNKNOWN);
  atomic_store(&d->sigfd_mask, 0);
  atomic_store(&d->epoch, 0);
  atomic_store(&d->outepoch, 0);
  d->peer = -1;
  gmp_spin_unlock(&d->lock);
  gmp_fd_wake_all(d);
}

void gmp_fd_kick_peer(struct gmp_fd *d)
{
  int peer = d->peer;
  if (peer < 0)
    return;
  struct gmp_fd *pd = gmp_fd_get(peer);
  /* Only a hint: if nobody waits now, a reader about to park will see the
   * data or the epoll edge our write caused. */
  if (!pd || atomic_load(&pd->nwait) == 0 || atomic_load(&pd->gen) != d->peer_gen)
    return;
  atomic_fetch_add(&pd->rseq, 1);
  struct g *list = NULL;
  gmp_unpark_collect(&pd->rseq, &list);
  while (list) {
    struct g *next = gmp_g_next(list);
    gmp_ready_handoff(list);
    list = next;
  }
}
