/*
 * gmp-test: mode=compare
 *
 * Raw futex system calls through syscall(2), as InnoDB, folly or Rust's
 * std make them: a three-state futex mutex (Drepper's "Futexes are
 * tricky") under 8 threads, the value check (EAGAIN), relative and
 * absolute timeouts, FUTEX_WAKE's count, CMP_REQUEUE from one word to
 * another, WAKE_OP, and the errors of bad arguments. Output is the same
 * natively and under any runtime.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static long fx(_Atomic uint32_t *a, int op, uint32_t val, const struct timespec *ts,
               _Atomic uint32_t *a2, uint32_t val3)
{
  return syscall(SYS_futex, a, op, val, ts, a2, val3);
}

static double now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ---- a futex mutex: 0 free, 1 locked, 2 locked with waiters ---------- */
static _Atomic uint32_t mu;
static long counter;

static void lock(void)
{
  uint32_t c = 0;
  if (atomic_compare_exchange_strong(&mu, &c, 1))
    return;
  if (c != 2)
    c = atomic_exchange(&mu, 2);
  while (c != 0) {
    fx(&mu, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    c = atomic_exchange(&mu, 2);
  }
}

static void unlock(void)
{
  if (atomic_fetch_sub(&mu, 1) != 1) {
    atomic_store(&mu, 0);
    fx(&mu, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
}

static void *incr(void *arg)
{
  for (int i = 0; i < 50000; i++) {
    lock();
    counter++;
    if (i % 1000 == 0)
      sched_yield(); /* hold the lock across a switch now and then */
    unlock();
  }
  return arg;
}

/* ---- waiters on a word, released when it changes --------------------- */
static _Atomic uint32_t gate, gate2;
static atomic_int ready, released;

static void *gate_waiter(void *arg)
{
  atomic_fetch_add(&ready, 1);
  while (atomic_load(&gate) == 0)
    fx(&gate, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  atomic_fetch_add(&released, 1);
  return arg;
}

static void wait_ready(int n)
{
  while (atomic_load(&ready) < n)
    usleep(1000);
  usleep(100000); /* and let them reach the kernel (or the parking lot) */
}

int main(void)
{
  /* 1. mutual exclusion */
  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    CHECK(pthread_create(&t[i], NULL, incr, NULL) == 0, "create");
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  printf("futex mutex: counter %ld (want 400000)\n", counter);

  /* 2. the value check */
  _Atomic uint32_t w = 7;
  long r = fx(&w, FUTEX_WAIT_PRIVATE, 8, NULL, NULL, 0);
  printf("wait on a changed value: %ld %s\n", r, ename(errno));

  /* 3. relative timeout */
  struct timespec rel = {0, 50 * 1000000};
  double t0 = now_ms();
  r = fx(&w, FUTEX_WAIT_PRIVATE, 7, &rel, NULL, 0);
  int e = errno;
  double el = now_ms() - t0;
  printf("relative 50 ms timeout: %ld %s, on time: %s\n", r, e == ETIMEDOUT ? "ETIMEDOUT" : ename(e),
         el >= 49 && el < 1000 ? "yes" : "no");

  /* 4. absolute timeouts, monotonic and realtime */
  struct timespec abs;
  clock_gettime(CLOCK_MONOTONIC, &abs);
  abs.tv_nsec += 30 * 1000000;
  if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
  t0 = now_ms();
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 7, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
  e = errno;
  el = now_ms() - t0;
  printf("absolute monotonic 30 ms: %ld %s, on time: %s\n", r, e == ETIMEDOUT ? "ETIMEDOUT" : ename(e),
         el >= 29 && el < 1000 ? "yes" : "no");
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_nsec += 30 * 1000000;
  if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 7, &abs, NULL,
         FUTEX_BITSET_MATCH_ANY);
  e = errno;
  printf("absolute realtime 30 ms: %ld %s\n", r, e == ETIMEDOUT ? "ETIMEDOUT" : ename(e));
  struct timespec bad = {0, 2000000000L};
  r = fx(&w, FUTEX_WAIT_PRIVATE, 7, &bad, NULL, 0);
  printf("bad timeout: %ld %s\n", r, ename(errno));
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 7, NULL, NULL, 0);
  printf("zero bitset: %ld %s\n", r, ename(errno));
  r = fx(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  printf("wake with no waiter: %ld\n", r);

  /* 5. FUTEX_WAKE counts: 5 waiters, woken 2 then the rest */
  pthread_t g[5];
  for (int i = 0; i < 5; i++)
    pthread_create(&g[i], NULL, gate_waiter, NULL);
  wait_ready(5);
  atomic_store(&gate, 1);
  long w1 = fx(&gate, FUTEX_WAKE_PRIVATE, 2, NULL, NULL, 0);
  while (atomic_load(&released) < 2)
    usleep(1000);
  long w2 = fx(&gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  for (int i = 0; i < 5; i++)
    pthread_join(g[i], NULL);
  printf("wake 2 of 5: %ld, then the rest: %ld, released %d\n", w1, w2, atomic_load(&released));

  /* 6. CMP_REQUEUE: 4 waiters moved from gate to gate2, woken there */
  atomic_store(&gate, 0);
  atomic_store(&ready, 0);
  atomic_store(&released, 0);
  for (int i = 0; i < 4; i++)
    pthread_create(&g[i], NULL, gate_waiter, NULL);
  wait_ready(4);
  r = fx(&gate, FUTEX_CMP_REQUEUE_PRIVATE, 0, (const struct timespec *)(long)INT_MAX, &gate2, 5);
  printf("cmp_requeue with a stale value: %ld %s\n", r, ename(errno));
  r = fx(&gate, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)(long)INT_MAX, &gate2, 0);
  /* The one woken sees gate == 0 and waits on gate again; the three
   * moved wait on gate2 and a wake of gate alone would not reach them. */
  usleep(50000);
  atomic_store(&gate, 1);
  long on_gate = fx(&gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  usleep(50000);
  int after_gate = atomic_load(&released);
  long on_gate2 = fx(&gate2, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  for (int i = 0; i < 4; i++)
    pthread_join(g[i], NULL);
  printf("cmp_requeue: woke and moved %ld; a wake of gate woke %ld (released %d), of gate2 %ld; "
         "all released: %s\n", r, on_gate, after_gate, on_gate2,
         atomic_load(&released) == 4 ? "yes" : "no");

  /* 7. WAKE_OP: gate2 = 1 (SET), wake one on gate, and one on gate2 if
   * gate2 was 0 (CMP_EQ 0) */
  atomic_store(&gate, 1);
  atomic_store(&gate2, 0);
  r = fx(&gate, FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1L, &gate2,
         FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0));
  printf("wake_op: %ld, gate2 now %u\n", r, atomic_load(&gate2));
  r = fx(&gate, FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1L, &gate2,
         FUTEX_OP((FUTEX_OP_ADD | FUTEX_OP_OPARG_SHIFT), 3, FUTEX_OP_CMP_GT, 100));
  printf("wake_op add 1<<3: %ld, gate2 now %u\n", r, atomic_load(&gate2));
  return 0;
}
