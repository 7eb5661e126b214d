/*
 * Raw futex system calls made through syscall(2), on the parking lot.
 *
 * Libraries with their own locks (InnoDB's srw_lock, folly, abseil, Rust's
 * std) wait with syscall(SYS_futex, FUTEX_WAIT...) directly. In the
 * kernel that blocks the OS thread, and with it a P until sysmon hands
 * the P over and starts another OS thread: MariaDB under sysbench ran
 * on 57 OS threads, 52 of them idle. Here a G waits on the parking lot
 * instead, keyed by the futex word's address, with the futex contract:
 * the wait begins only if the word still holds the expected value,
 * checked under the queue's lock that every waker takes.
 *
 * Only process-private futexes (FUTEX_PRIVATE_FLAG) are taken over: a
 * shared one may be woken from another process, which only the kernel
 * can see. The operations: WAIT, WAIT_BITSET (the match-any bitset only,
 * as every lock in practice uses; others go to the kernel), WAKE,
 * WAKE_BITSET, REQUEUE, CMP_REQUEUE and WAKE_OP. A wake that finds fewer
 * Gs parked than it may wake also asks the kernel, for waiters that are
 * not Gs (threads made behind the runtime's back). PI futexes and
 * everything else go to the kernel as before (an OS thread blocks, its P
 * is handed over).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#include "preload/preload.h"

struct fwait {
  const uint32_t *word;
  uint32_t val;
};

/* Under the queue lock: the futex contract's check. */
static bool still(void *arg)
{
  struct fwait *w = arg;
  return __atomic_load_n(w->word, __ATOMIC_SEQ_CST) == w->val;
}

static long wait_on(uint32_t *uaddr, uint32_t val, int64_t deadline)
{
  struct fwait w = {uaddr, val};
  switch (gmp_park_on(uaddr, still, &w, deadline, GMP_WAIT_FUTEX)) {
  case GMP_PARK_WOKEN: return 0;
  case GMP_PARK_INVALID: return -EAGAIN;
  case GMP_PARK_TIMEDOUT: return -ETIMEDOUT;
  default: return -EINTR; /* a signal: the kernel's answer too */
  }
}

/* Wake up to n: Gs first, then (if fewer) the kernel's own waiters. */
static long wake(uint32_t *uaddr, int n)
{
  if (n <= 0)
    return 0;
  int woken = gmp_unpark_n(uaddr, n);
  if (woken < n) {
    long k = gmp_sys6(SYS_futex, uaddr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n - woken, 0, 0, 0);
    if (k > 0)
      woken += (int)k;
  }
  return woken;
}

struct fcmp {
  const uint32_t *word;
  uint32_t val;
  bool check;
};

static bool cmp_ok(void *arg)
{
  struct fcmp *c = arg;
  return !c->check || __atomic_load_n(c->word, __ATOMIC_SEQ_CST) == c->val;
}

static long requeue(uint32_t *uaddr, uint32_t *uaddr2, int nwake, int nmove, bool check,
                    uint32_t val3)
{
  if (nwake < 0 || nmove < 0)
    return -EINVAL;
  struct fcmp c = {uaddr, val3, check};
  int r = gmp_requeue(uaddr, uaddr2, nwake, nmove, cmp_ok, &c);
  if (r < 0)
    return -EAGAIN;
  /* The kernel's own waiters on uaddr, with what is left of each count. */
  int woken_and_moved = r;
  int kwake = nwake > r ? nwake - r : 0;
  int kmove = nmove - (r > nwake ? r - nwake : 0);
  if (kwake > 0 || kmove > 0) {
    long k = gmp_sys6(SYS_futex, uaddr, (check ? FUTEX_CMP_REQUEUE : FUTEX_REQUEUE) |
                      FUTEX_PRIVATE_FLAG, kwake, (long)kmove, uaddr2, val3);
    if (k > 0)
      woken_and_moved += (int)k;
  }
  return woken_and_moved;
}

/* FUTEX_WAKE_OP: *uaddr2 = oldval OP oparg atomically, wake nwake on
 * uaddr, and if (oldval CMP cmparg) wake nwake2 on uaddr2. */
static long wake_op(uint32_t *uaddr, uint32_t *uaddr2, int nwake, int nwake2, uint32_t val3)
{
  int op = (int)((val3 >> 28) & 7), cmp = (int)((val3 >> 24) & 15);
  int oparg = (int)((val3 >> 12) & 0xfff), cmparg = (int)(val3 & 0xfff);
  oparg = (oparg << 20) >> 20; /* 12-bit signed fields */
  cmparg = (cmparg << 20) >> 20;
  if ((val3 >> 28) & 8) {
    if (oparg < 0 || oparg > 31)
      return -EINVAL;
    oparg = 1 << oparg;
  }
  if (op > FUTEX_OP_XOR || cmp > FUTEX_OP_CMP_GE)
    return -ENOSYS;
  uint32_t old = __atomic_load_n(uaddr2, __ATOMIC_RELAXED), nv;
  do {
    switch (op) {
    case FUTEX_OP_SET: nv = (uint32_t)oparg; break;
    case FUTEX_OP_ADD: nv = old + (uint32_t)oparg; break;
    case FUTEX_OP_OR: nv = old | (uint32_t)oparg; break;
    case FUTEX_OP_ANDN: nv = old & ~(uint32_t)oparg; break;
    default: nv = old ^ (uint32_t)oparg; break;
    }
  } while (!__atomic_compare_exchange_n(uaddr2, &old, nv, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
  int o = (int)old;
  bool hit = cmp == FUTEX_OP_CMP_EQ   ? o == cmparg
             : cmp == FUTEX_OP_CMP_NE ? o != cmparg
             : cmp == FUTEX_OP_CMP_LT ? o < cmparg
             : cmp == FUTEX_OP_CMP_LE ? o <= cmparg
             : cmp == FUTEX_OP_CMP_GT ? o > cmparg
                                      : o >= cmparg;
  long r = wake(uaddr, nwake);
  if (hit)
    r += wake(uaddr2, nwake2);
  return r;
}

long gmp_futex(long a1, long a2, long a3, long a4, long a5, long a6)
{
  uint32_t *uaddr = (uint32_t *)a1;
  int op = (int)a2;
  if (!(op & FUTEX_PRIVATE_FLAG))
    return GMP_FUTEX_KERNEL;
  bool realtime = (op & FUTEX_CLOCK_REALTIME) != 0;
  int cmd = op & FUTEX_CMD_MASK;
  uint32_t val = (uint32_t)a3, val3 = (uint32_t)a6;
  const struct timespec *ts = (const struct timespec *)a4;
  if ((uintptr_t)uaddr & 3)
    return -EINVAL;
  switch (cmd) {
  case FUTEX_WAIT: {
    if (realtime)
      return -ENOSYS; /* the kernel refuses it for FUTEX_WAIT too */
    int64_t dl = GMP_NO_DEADLINE;
    if (ts) {
      if (!ts_valid(ts) || ts->tv_sec < 0)
        return -EINVAL;
      dl = gmp_nanotime() + ts_ns(ts);
    }
    return wait_on(uaddr, val, dl);
  }
  case FUTEX_WAIT_BITSET: {
    if (val3 == 0)
      return -EINVAL;
    if (val3 != FUTEX_BITSET_MATCH_ANY)
      return GMP_FUTEX_KERNEL;
    int64_t dl = GMP_NO_DEADLINE;
    if (ts) {
      if (!ts_valid(ts) || ts->tv_sec < 0)
        return -EINVAL;
      abs_to_deadline(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, ts, &dl);
    }
    return wait_on(uaddr, val, dl);
  }
  case FUTEX_WAKE:
    return wake(uaddr, (int)val);
  case FUTEX_WAKE_BITSET:
    /* Every G parked here waits with the match-any bitset. */
    if (val3 == 0)
      return -EINVAL;
    return wake(uaddr, (int)val);
  case FUTEX_REQUEUE:
    return requeue(uaddr, (uint32_t *)a5, (int)val, (int)a4, false, 0);
  case FUTEX_CMP_REQUEUE:
    return requeue(uaddr, (uint32_t *)a5, (int)val, (int)a4, true, val3);
  case FUTEX_WAKE_OP:
    if ((uintptr_t)a5 & 3)
      return -EINVAL;
    return wake_op(uaddr, (uint32_t *)a5, (int)val, (int)a4, val3);
  default:
    return GMP_FUTEX_KERNEL;
  }
}
