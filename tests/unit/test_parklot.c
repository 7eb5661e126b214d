/*
 * Unit tests of the parking lot's lists (sched/parklot.c).
 *
 * Invariants checked:
 *  - pl_bucket_of is a pure function of the address, into a fixed table;
 *  - per address, waiters are dequeued in FIFO order, and addresses that
 *    share a bucket are dequeued independently of each other;
 *  - pl_remove unlinks a waiter anywhere in the list (head, middle, tail),
 *    returns false for one not queued, and leaves the list well formed;
 *  - the bucket's head/tail/prev/next links and count agree at every step,
 *    `queued` says whether the waiter is linked, pl_has_waiters agrees
 *    with the contents;
 *  - under the bucket's gmp_spin lock, concurrent enqueue/dequeue/remove
 *    by several threads lose nothing, take nothing twice, and still
 *    dequeue each address in enqueue order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sched/runtime.h"

/* Addresses to park on. Each test uses its own, so a failed test cannot
 * leave waiters that confuse the next one. */
static char arena[8 * PL_BUCKETS * 4] __attribute__((aligned(64)));

/* Two distinct addresses in one bucket, found by search. */
static const void *same_bucket(const void *a)
{
  struct pl_bucket *ba = pl_bucket_of(a);
  for (char *p = (char *)a + 8; p < arena + sizeof arena; p += 8)
    if (pl_bucket_of(p) == ba)
      return p;
  fail_msg("no address shares a bucket with %p", a);
  return NULL;
}

/* Walk the list both ways: links, tail, count and `queued` consistent. */
static void check_bucket(struct pl_bucket *b)
{
  uint32_t n = 0;
  struct pl_waiter *prev = NULL;
  for (struct pl_waiter *w = b->head; w; w = w->next) {
    assert_ptr_equal(w->prev, prev);
    assert_true(w->queued);
    prev = w;
    n++;
    assert_true(n <= b->count);
  }
  assert_ptr_equal(b->tail, prev);
  assert_int_equal(n, b->count);
  if (n == 0)
    assert_null(b->head);
}

static void test_bucket_of(void **state)
{
  (void)state;
  const void *a = arena + 64;
  struct pl_bucket *b = pl_bucket_of(a);
  assert_non_null(b);
  assert_ptr_equal(pl_bucket_of(a), b);
  /* Buckets are cache-line separated, and 1021 of them. */
  assert_int_equal((uintptr_t)b % 64, 0);
  struct pl_bucket *lo = b, *hi = b;
  for (size_t i = 0; i < sizeof arena; i += 8) {
    struct pl_bucket *x = pl_bucket_of(arena + i);
    if (x < lo)
      lo = x;
    if (x > hi)
      hi = x;
  }
  assert_int_equal(hi - lo, PL_BUCKETS - 1);
  const void *c = same_bucket(a);
  assert_ptr_not_equal(a, c);
  assert_ptr_equal(pl_bucket_of(c), b);
}

static void test_fifo(void **state)
{
  (void)state;
  const void *a = arena + 8 * 10;
  struct pl_bucket *b = pl_bucket_of(a);
  struct pl_waiter w[5];
  memset(w, 0, sizeof w);
  assert_false(pl_has_waiters(b, a));
  assert_null(pl_dequeue(b, a));
  uint32_t c0 = b->count;
  for (int i = 0; i < 5; i++) {
    pl_enqueue(b, &w[i], a);
    assert_true(w[i].queued);
    assert_ptr_equal(w[i].addr, a);
    assert_int_equal(b->count, c0 + (uint32_t)i + 1);
    check_bucket(b);
  }
  assert_true(pl_has_waiters(b, a));
  for (int i = 0; i < 5; i++) {
    struct pl_waiter *x = pl_dequeue(b, a);
    assert_ptr_equal(x, &w[i]);
    assert_false(x->queued);
    assert_null(x->next);
    assert_null(x->prev);
    assert_int_equal(b->count, c0 + 4 - (uint32_t)i);
    check_bucket(b);
  }
  assert_null(pl_dequeue(b, a));
  assert_false(pl_has_waiters(b, a));
  assert_int_equal(b->count, 0);
  assert_null(b->head);
  assert_null(b->tail);

  /* A dequeued waiter can be queued again (a G parks many times). */
  pl_enqueue(b, &w[0], a);
  pl_enqueue(b, &w[1], a);
  assert_ptr_equal(pl_dequeue(b, a), &w[0]);
  pl_enqueue(b, &w[0], a);
  assert_ptr_equal(pl_dequeue(b, a), &w[1]);
  assert_ptr_equal(pl_dequeue(b, a), &w[0]);
  assert_int_equal(b->count, 0);
  check_bucket(b);
}

static void test_shared_bucket(void **state)
{
  (void)state;
  const void *a = arena + 8 * 20, *c = same_bucket(a);
  struct pl_bucket *b = pl_bucket_of(a);
  struct pl_waiter wa[3], wc[3];
  memset(wa, 0, sizeof wa);
  memset(wc, 0, sizeof wc);
  /* interleaved: a0 c0 a1 c1 a2 c2 */
  for (int i = 0; i < 3; i++) {
    pl_enqueue(b, &wa[i], a);
    pl_enqueue(b, &wc[i], c);
  }
  assert_int_equal(b->count, 6);
  check_bucket(b);
  assert_true(pl_has_waiters(b, a));
  assert_true(pl_has_waiters(b, c));
  /* Another address of the same bucket with no waiters. */
  const void *d = same_bucket(c);
  assert_false(pl_has_waiters(b, d));
  assert_null(pl_dequeue(b, d));

  /* Drain c first: a's waiters are untouched and keep their order. */
  for (int i = 0; i < 3; i++) {
    assert_ptr_equal(pl_dequeue(b, c), &wc[i]);
    check_bucket(b);
  }
  assert_null(pl_dequeue(b, c));
  assert_false(pl_has_waiters(b, c));
  assert_true(pl_has_waiters(b, a));
  assert_int_equal(b->count, 3);
  for (int i = 0; i < 3; i++)
    assert_true(wa[i].queued);
  for (int i = 0; i < 3; i++)
    assert_ptr_equal(pl_dequeue(b, a), &wa[i]);
  assert_int_equal(b->count, 0);
  check_bucket(b);
}

static void test_remove(void **state)
{
  (void)state;
  const void *a = arena + 8 * 30, *c = same_bucket(a);
  struct pl_bucket *b = pl_bucket_of(a);
  struct pl_waiter w[5], other;
  memset(w, 0, sizeof w);
  memset(&other, 0, sizeof other);

  /* Never queued: nothing to remove. */
  assert_false(pl_remove(b, &w[0]));
  assert_int_equal(b->count, 0);

  for (int i = 0; i < 5; i++)
    pl_enqueue(b, &w[i], a);
  pl_enqueue(b, &other, c);

  /* middle */
  assert_true(pl_remove(b, &w[2]));
  assert_false(w[2].queued);
  assert_int_equal(b->count, 5);
  check_bucket(b);
  assert_false(pl_remove(b, &w[2])); /* twice: false, count unchanged */
  assert_int_equal(b->count, 5);
  /* head */
  assert_true(pl_remove(b, &w[0]));
  assert_ptr_equal(b->head, &w[1]);
  check_bucket(b);
  /* tail (the other address's waiter) */
  assert_ptr_equal(b->tail, &other);
  assert_true(pl_remove(b, &other));
  assert_ptr_equal(b->tail, &w[4]);
  assert_false(pl_has_waiters(b, c));
  check_bucket(b);

  assert_ptr_equal(pl_dequeue(b, a), &w[1]);
  assert_ptr_equal(pl_dequeue(b, a), &w[3]);
  /* A dequeued waiter is no longer removable (the timeout lost the race). */
  assert_false(pl_remove(b, &w[3]));
  assert_true(pl_remove(b, &w[4])); /* the only one: head and tail */
  assert_null(b->head);
  assert_null(b->tail);
  assert_int_equal(b->count, 0);
  assert_false(pl_has_waiters(b, a));
  check_bucket(b);
}

/* ---- concurrent --------------------------------------------------------- */

#define NTHREADS 4
#define PER_THREAD 50000
#define NADDR 3

struct cw {
  struct pl_waiter w;     /* first member: container_of is a cast */
  uint64_t seq;           /* per-address enqueue order, set under the lock */
  int addr_ix;
  _Atomic int taken;      /* dequeued or removed: exactly once */
};

static const void *caddr[NADDR];
static struct pl_bucket *cbucket;
static uint64_t enq_seq[NADDR];      /* under the lock */
static uint64_t last_deq[NADDR];     /* under the lock: last seq dequeued + 1 */
static _Atomic uint32_t order_errors, foreign_errors;
static struct cw *pool;

static struct cw *CW(struct pl_waiter *w) { return (struct cw *)w; }

static void take(struct cw *x, int addr_ix)
{
  if (x->addr_ix != addr_ix || x->w.queued)
    atomic_fetch_add(&foreign_errors, 1);
  atomic_fetch_add(&x->taken, 1);
}

static void *pl_worker(void *arg)
{
  int me = (int)(intptr_t)arg;
  uint64_t r = 0x2545F4914F6CDD1DULL * (uint64_t)(me + 1);
  struct cw *mine = pool + (size_t)me * PER_THREAD;
  for (int i = 0; i < PER_THREAD; i++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    struct cw *x = &mine[i];
    int ai = (int)(r % NADDR);
    x->addr_ix = ai;
    gmp_spin_lock(&cbucket->lock);
    x->seq = enq_seq[ai]++;
    pl_enqueue(cbucket, &x->w, caddr[ai]);
    gmp_spin_unlock(&cbucket->lock);

    if ((r >> 8) % 4 == 0 && i > 0) {
      /* a timed-out waiter removes itself (maybe already woken) */
      struct cw *y = &mine[(r >> 12) % (uint64_t)i];
      gmp_spin_lock(&cbucket->lock);
      if (pl_remove(cbucket, &y->w))
        take(y, y->addr_ix);
      gmp_spin_unlock(&cbucket->lock);
    }
    int di = (int)((r >> 20) % NADDR);
    gmp_spin_lock(&cbucket->lock);
    struct pl_waiter *w = pl_dequeue(cbucket, caddr[di]);
    if (w) {
      struct cw *d = CW(w);
      /* FIFO per address: seqs dequeued from one address only increase
       * (removes may skip some). */
      if (d->seq + 1 <= last_deq[di])
        atomic_fetch_add(&order_errors, 1);
      last_deq[di] = d->seq + 1;
      take(d, di);
    }
    gmp_spin_unlock(&cbucket->lock);
  }
  return NULL;
}

static void test_concurrent(void **state)
{
  (void)state;
  pool = calloc((size_t)NTHREADS * PER_THREAD, sizeof *pool);
  assert_non_null(pool);
  caddr[0] = arena + 8 * 40;
  caddr[1] = same_bucket(caddr[0]);
  caddr[2] = same_bucket(caddr[1]);
  cbucket = pl_bucket_of(caddr[0]);
  assert_int_equal(cbucket->count, 0);

  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, pl_worker, (void *)(intptr_t)i), 0);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);

  check_bucket(cbucket);
  uint32_t left = cbucket->count;
  /* Drain what is left, still in order. */
  for (int ai = 0; ai < NADDR; ai++) {
    struct pl_waiter *w;
    while ((w = pl_dequeue(cbucket, caddr[ai])) != NULL) {
      struct cw *d = CW(w);
      if (d->seq + 1 <= last_deq[ai])
        atomic_fetch_add(&order_errors, 1);
      last_deq[ai] = d->seq + 1;
      take(d, ai);
      left--;
    }
  }
  assert_int_equal(left, 0);
  assert_int_equal(cbucket->count, 0);
  assert_null(cbucket->head);
  assert_null(cbucket->tail);
  assert_int_equal(atomic_load(&order_errors), 0);
  assert_int_equal(atomic_load(&foreign_errors), 0);
  uint32_t bad = 0;
  for (size_t i = 0; i < (size_t)NTHREADS * PER_THREAD; i++)
    bad += atomic_load(&pool[i].taken) != 1 || pool[i].w.queued;
  assert_int_equal(bad, 0);
  free(pool);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_of),
      cmocka_unit_test(test_fifo),
      cmocka_unit_test(test_shared_bucket),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_concurrent),
  };
  return cmocka_run_group_tests_name("parklot", tests, NULL, NULL);
}
