/*
 * Unit tests of the per-P run queue (sched/runq.c).
 *
 * Invariants checked:
 *  - the ring is FIFO, holds exactly RUNQ_SIZE (256) Gs, and runq_put
 *    refuses the 257th without changing the queue;
 *  - runnext is taken before the ring (with *inherit set), and
 *    runq_put_next returns the G it displaced;
 *  - runq_size / runq_empty count ring + runnext, across index wrap-around
 *    (also around 2^32);
 *  - runq_take_half moves the oldest half and fails (0, queue untouched)
 *    when given a stale head;
 *  - runq_steal takes ceil(n/2) from the head of the victim, returns the
 *    last of them and queues the rest in the thief's ring in order, and
 *    takes runnext only when asked to and the ring is empty;
 *  - under concurrency (one owner putting/getting/put_next-ing 1,000,000
 *    distinct Gs while thieves steal from it and from each other) every G
 *    is consumed exactly once: no loss, no duplicate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/runtime.h"

/* The ring stores pointers only: fake Gs are distinct non-NULL addresses. */
static struct g *G(uint32_t i) { return (struct g *)(uintptr_t)(((uintptr_t)i + 1) << 4); }
static uint32_t IDX(struct g *g) { return (uint32_t)(((uintptr_t)g >> 4) - 1); }

static struct runq *newq(void)
{
  struct runq *q = aligned_alloc(64, (sizeof *q + 63) & ~(size_t)63);
  assert_non_null(q);
  runq_init(q);
  return q;
}

static void test_init_empty(void **state)
{
  (void)state;
  struct runq *q = newq();
  assert_int_equal(runq_size(q), 0);
  assert_true(runq_empty(q));
  bool inherit = true;
  assert_null(runq_get(q, &inherit));
  assert_false(inherit);
  assert_null(runq_get(q, NULL));
  free(q);
}

static void test_fifo(void **state)
{
  (void)state;
  struct runq *q = newq();
  for (uint32_t i = 0; i < 100; i++) {
    assert_true(runq_put(q, G(i)));
    assert_int_equal(runq_size(q), i + 1);
    assert_false(runq_empty(q));
  }
  for (uint32_t i = 0; i < 100; i++) {
    bool inherit = true;
    struct g *g = runq_get(q, &inherit);
    assert_ptr_equal(g, G(i));
    assert_false(inherit);
    assert_int_equal(runq_size(q), 99 - i);
  }
  assert_true(runq_empty(q));
  assert_null(runq_get(q, NULL));
  free(q);
}

static void test_runnext(void **state)
{
  (void)state;
  struct runq *q = newq();
  assert_true(runq_put(q, G(1)));
  assert_true(runq_put(q, G(2)));
  assert_null(runq_put_next(q, G(3)));
  assert_int_equal(runq_size(q), 3);

  /* A second put_next displaces the first: the caller gets it back. */
  assert_ptr_equal(runq_put_next(q, G(4)), G(3));
  assert_int_equal(runq_size(q), 3);

  bool inherit = false;
  assert_ptr_equal(runq_get(q, &inherit), G(4));
  assert_true(inherit);
  assert_ptr_equal(runq_get(q, &inherit), G(1));
  assert_false(inherit);
  assert_ptr_equal(runq_get(q, &inherit), G(2));
  assert_false(inherit);
  assert_null(runq_get(q, &inherit));
  assert_true(runq_empty(q));

  /* runnext alone: not empty, size 1. */
  assert_null(runq_put_next(q, G(5)));
  assert_false(runq_empty(q));
  assert_int_equal(runq_size(q), 1);
  assert_ptr_equal(runq_get(q, &inherit), G(5));
  assert_true(inherit);
  assert_true(runq_empty(q));
  free(q);
}

static void test_full(void **state)
{
  (void)state;
  struct runq *q = newq();
  for (uint32_t i = 0; i < RUNQ_SIZE; i++)
    assert_true(runq_put(q, G(i)));
  assert_int_equal(runq_size(q), RUNQ_SIZE);
  assert_false(runq_put(q, G(9999)));
  assert_false(runq_put(q, G(9999)));
  assert_int_equal(runq_size(q), RUNQ_SIZE);
  /* runnext is separate from the ring. */
  assert_null(runq_put_next(q, G(777)));
  assert_int_equal(runq_size(q), RUNQ_SIZE + 1);
  assert_ptr_equal(runq_get(q, NULL), G(777));
  /* One slot freed: one put fits, at the tail. */
  assert_ptr_equal(runq_get(q, NULL), G(0));
  assert_true(runq_put(q, G(RUNQ_SIZE)));
  assert_false(runq_put(q, G(9999)));
  for (uint32_t i = 1; i <= RUNQ_SIZE; i++)
    assert_ptr_equal(runq_get(q, NULL), G(i));
  assert_true(runq_empty(q));
  free(q);
}

/* Indices wrap modulo RUNQ_SIZE, and head/tail themselves wrap at 2^32. */
static void test_wraparound(void **state)
{
  (void)state;
  struct runq *q = newq();
  uint32_t next_in = 0, next_out = 0;
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 200; i++)
      assert_true(runq_put(q, G(next_in++)));
    for (int i = 0; i < 150; i++)
      assert_ptr_equal(runq_get(q, NULL), G(next_out++));
    assert_int_equal(runq_size(q), next_in - next_out);
    while (runq_size(q) > 0)
      assert_ptr_equal(runq_get(q, NULL), G(next_out++));
  }

  runq_init(q);
  atomic_store(&q->head, UINT32_MAX - 100);
  atomic_store(&q->tail, UINT32_MAX - 100);
  assert_true(runq_empty(q));
  for (uint32_t i = 0; i < RUNQ_SIZE; i++)
    assert_true(runq_put(q, G(i)));
  assert_false(runq_put(q, G(9999)));
  assert_int_equal(runq_size(q), RUNQ_SIZE);
  for (uint32_t i = 0; i < RUNQ_SIZE; i++)
    assert_ptr_equal(runq_get(q, NULL), G(i));
  assert_true(runq_empty(q));
  assert_int_equal(atomic_load(&q->head), (uint32_t)(UINT32_MAX - 100 + RUNQ_SIZE));
  free(q);
}

static void test_take_half(void **state)
{
  (void)state;
  struct runq *q = newq();
  struct g *batch[RUNQ_SIZE];

  for (uint32_t i = 0; i < RUNQ_SIZE; i++)
    assert_true(runq_put(q, G(i)));
  assert_false(runq_put(q, G(9999)));
  uint32_t h = atomic_load(&q->head), t = atomic_load(&q->tail);
  uint32_t n = runq_take_half(q, h, t, batch);
  assert_int_equal(n, RUNQ_SIZE / 2);
  for (uint32_t i = 0; i < n; i++)
    assert_ptr_equal(batch[i], G(i));
  assert_int_equal(runq_size(q), RUNQ_SIZE / 2);
  assert_true(runq_put(q, G(RUNQ_SIZE))); /* room again */

  /* A stale head (as after a concurrent steal) fails, queue untouched. */
  h = atomic_load(&q->head);
  t = atomic_load(&q->tail);
  assert_ptr_equal(runq_get(q, NULL), G(RUNQ_SIZE / 2));
  uint32_t before = runq_size(q);
  assert_int_equal(runq_take_half(q, h, t, batch), 0);
  assert_int_equal(runq_size(q), before);
  for (uint32_t i = RUNQ_SIZE / 2 + 1; i <= RUNQ_SIZE; i++)
    assert_ptr_equal(runq_get(q, NULL), G(i));
  assert_true(runq_empty(q));

  /* Odd count: floor(n/2). */
  for (uint32_t i = 0; i < 5; i++)
    assert_true(runq_put(q, G(i)));
  h = atomic_load(&q->head);
  t = atomic_load(&q->tail);
  assert_int_equal(runq_take_half(q, h, t, batch), 2);
  assert_ptr_equal(batch[0], G(0));
  assert_ptr_equal(batch[1], G(1));
  assert_int_equal(runq_size(q), 3);
  /* One left after two gets: nothing to take. */
  runq_get(q, NULL);
  runq_get(q, NULL);
  h = atomic_load(&q->head);
  t = atomic_load(&q->tail);
  assert_int_equal(runq_take_half(q, h, t, batch), 0);
  assert_ptr_equal(runq_get(q, NULL), G(4));
  assert_true(runq_empty(q));
  free(q);
}

static void test_steal_single(void **state)
{
  (void)state;
  struct runq *src = newq(), *dst = newq();

  /* 10 in src: the thief takes 5 (0..4), runs 4, queues 0..3. */
  for (uint32_t i = 0; i < 10; i++)
    assert_true(runq_put(src, G(i)));
  assert_ptr_equal(runq_steal(dst, src, false), G(4));
  assert_int_equal(runq_size(src), 5);
  assert_int_equal(runq_size(dst), 4);
  for (uint32_t i = 0; i < 4; i++)
    assert_ptr_equal(runq_get(dst, NULL), G(i));
  assert_true(runq_empty(dst));

  /* 5 left: ceil(5/2) = 3 taken (5,6,7); 7 returned. */
  assert_ptr_equal(runq_steal(dst, src, false), G(7));
  assert_int_equal(runq_size(dst), 2);
  assert_int_equal(runq_size(src), 2);
  assert_ptr_equal(runq_get(dst, NULL), G(5));
  assert_ptr_equal(runq_get(dst, NULL), G(6));
  assert_ptr_equal(runq_get(src, NULL), G(8));

  /* A single G is stolen whole, dst's ring stays empty. */
  assert_ptr_equal(runq_steal(dst, src, false), G(9));
  assert_true(runq_empty(dst));
  assert_true(runq_empty(src));
  assert_null(runq_steal(dst, src, true));

  /* runnext: only with steal_next, and only when the ring is empty. */
  assert_null(runq_put_next(src, G(50)));
  assert_null(runq_steal(dst, src, false));
  assert_int_equal(runq_size(src), 1);
  assert_true(runq_put(src, G(51)));
  assert_ptr_equal(runq_steal(dst, src, true), G(51));
  assert_ptr_equal(runq_steal(dst, src, true), G(50));
  assert_true(runq_empty(src));
  assert_true(runq_empty(dst));

  /* Stolen Gs are appended after what dst already holds. */
  assert_true(runq_put(dst, G(100)));
  for (uint32_t i = 0; i < 4; i++)
    assert_true(runq_put(src, G(200 + i)));
  assert_ptr_equal(runq_steal(dst, src, false), G(201));
  assert_ptr_equal(runq_get(dst, NULL), G(100));
  assert_ptr_equal(runq_get(dst, NULL), G(200));
  assert_true(runq_empty(dst));
  assert_ptr_equal(runq_get(src, NULL), G(202));
  assert_ptr_equal(runq_get(src, NULL), G(203));

  /* Stealing from a full ring takes 128, queues 127 in dst. */
  for (uint32_t i = 0; i < RUNQ_SIZE; i++)
    assert_true(runq_put(src, G(i)));
  assert_ptr_equal(runq_steal(dst, src, false), G(RUNQ_SIZE / 2 - 1));
  assert_int_equal(runq_size(dst), RUNQ_SIZE / 2 - 1);
  assert_int_equal(runq_size(src), RUNQ_SIZE / 2);
  free(src);
  free(dst);
}

/* ---- concurrent stress ------------------------------------------------ */

#define STRESS_N 1000000u
#define NTHIEVES 3
#define STRESS_DEADLINE_S 30

static _Atomic uint8_t *seen;           /* per item: times consumed */
static _Atomic uint32_t consumed;       /* total consumptions */
static _Atomic uint32_t dup_or_bad;     /* consumed twice, or not an item */
static _Atomic bool timed_out;
static _Atomic uint32_t stolen;         /* Gs returned by runq_steal */
/* Now and then the owner pauses the thieves and fills its ring, so the
 * full-ring/spill path runs at least that often whatever the timing. */
static _Atomic bool pause_thieves;
static _Atomic int thieves_paused;
static struct runq *ownerq;
static struct runq *thiefq[NTHIEVES];
static struct timespec t_start;

static bool past_deadline(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec - t_start.tv_sec > STRESS_DEADLINE_S) {
    atomic_store(&timed_out, true);
    return true;
  }
  return atomic_load(&timed_out);
}

static void consume(struct g *g)
{
  uint32_t i = IDX(g);
  if (g == NULL || i >= STRESS_N || atomic_fetch_add(&seen[i], 1) != 0)
    atomic_fetch_add(&dup_or_bad, 1);
  atomic_fetch_add(&consumed, 1);
}

static uint64_t xorshift(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

struct owner_stats {
  uint32_t spilled, put_next, displaced;
};

/* The ring is full: move half out (to "the global queue": consumed here),
 * as runq_put_slow does. 0 when a steal raced: the caller retries. */
static void spill(struct owner_stats *st)
{
  struct g *batch[RUNQ_SIZE];
  uint32_t h = atomic_load_explicit(&ownerq->head, memory_order_acquire);
  uint32_t t = atomic_load_explicit(&ownerq->tail, memory_order_relaxed);
  uint32_t n = runq_take_half(ownerq, h, t, batch);
  for (uint32_t k = 0; k < n; k++)
    consume(batch[k]);
  st->spilled += n;
}

static void *owner_main(void *arg)
{
  struct owner_stats *st = arg;
  uint64_t rnd = 0x9e3779b97f4a7c15ULL;
  for (uint32_t i = 0; i < STRESS_N; i++) {
    struct g *g = G(i);
    uint64_t r = xorshift(&rnd);
    if (r % 8 == 0) {
      st->put_next++;
      g = runq_put_next(ownerq, g);
      if (!g)
        goto get;
      st->displaced++;
    }
    while (!runq_put(ownerq, g))
      spill(st);
  get:
    /* Consume a bit less than produced so the ring fills up at times. */
    if ((r >> 8) % 16 < 13) {
      struct g *x = runq_get(ownerq, NULL);
      if (x)
        consume(x);
    }
    if ((i & 0xffff) == 0 && past_deadline())
      return NULL;
    if (i % 200000 == 100000) {
      atomic_store(&pause_thieves, true);
      while (atomic_load(&thieves_paused) < NTHIEVES && !past_deadline())
        sched_yield();
      uint32_t before = st->spilled;
      while (st->spilled == before && i + 1 < STRESS_N && !past_deadline()) {
        if (runq_put(ownerq, G(i + 1))) {
          i++;
          continue;
        }
        spill(st);
      }
      atomic_store(&pause_thieves, false);
    }
  }
  struct g *x;
  while ((x = runq_get(ownerq, NULL)) != NULL)
    consume(x);
  return NULL;
}

static void *thief_main(void *arg)
{
  int me = (int)(intptr_t)arg;
  struct runq *mine = thiefq[me];
  uint64_t rnd = 0x1234567ULL + (uint64_t)me * 7919;
  unsigned iter = 0;
  while (atomic_load(&consumed) < STRESS_N) {
    /* Only steal into an empty queue, as a P does (else dst may overflow). */
    struct g *g;
    while ((g = runq_get(mine, NULL)) != NULL)
      consume(g);
    uint64_t r = xorshift(&rnd);
    struct runq *victim = ownerq;
    if (r % 4 == 0) {
      int v = (int)((r >> 8) % NTHIEVES);
      if (v != me)
        victim = thiefq[v];
    }
    g = runq_steal(mine, victim, (r >> 16) & 1);
    if (g) {
      atomic_fetch_add(&stolen, 1);
      consume(g);
    }
    if ((++iter & 0x3ff) == 0 && past_deadline())
      break;
    if (atomic_load(&pause_thieves)) {
      atomic_fetch_add(&thieves_paused, 1);
      while (atomic_load(&pause_thieves) && !past_deadline())
        sched_yield();
      atomic_fetch_sub(&thieves_paused, 1);
    }
  }
  struct g *g;
  while ((g = runq_get(mine, NULL)) != NULL)
    consume(g);
  return NULL;
}

static void test_concurrent_steal(void **state)
{
  (void)state;
  seen = calloc(STRESS_N, sizeof *seen);
  assert_non_null(seen);
  atomic_store(&consumed, 0);
  atomic_store(&dup_or_bad, 0);
  atomic_store(&timed_out, false);
  atomic_store(&stolen, 0);
  atomic_store(&pause_thieves, false);
  atomic_store(&thieves_paused, 0);
  ownerq = newq();
  for (int i = 0; i < NTHIEVES; i++)
    thiefq[i] = newq();
  clock_gettime(CLOCK_MONOTONIC, &t_start);

  struct owner_stats st = {0};
  pthread_t owner, thieves[NTHIEVES];
  assert_int_equal(pthread_create(&owner, NULL, owner_main, &st), 0);
  for (int i = 0; i < NTHIEVES; i++)
    assert_int_equal(pthread_create(&thieves[i], NULL, thief_main, (void *)(intptr_t)i), 0);
  pthread_join(owner, NULL);
  for (int i = 0; i < NTHIEVES; i++)
    pthread_join(thieves[i], NULL);

  assert_false(atomic_load(&timed_out));
  assert_int_equal(atomic_load(&dup_or_bad), 0);
  assert_int_equal(atomic_load(&consumed), STRESS_N);
  uint32_t missing = 0;
  for (uint32_t i = 0; i < STRESS_N; i++)
    missing += atomic_load(&seen[i]) != 1;
  assert_int_equal(missing, 0);
  assert_true(runq_empty(ownerq));
  for (int i = 0; i < NTHIEVES; i++)
    assert_true(runq_empty(thiefq[i]));
  /* The stress exercised the paths it is meant to. */
  assert_true(st.put_next > 0);
  assert_true(st.displaced > 0);
  assert_true(st.spilled > 0);
  assert_true(atomic_load(&stolen) > 0);

  free(ownerq);
  for (int i = 0; i < NTHIEVES; i++)
    free(thiefq[i]);
  free((void *)seen);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_empty),
      cmocka_unit_test(test_fifo),
      cmocka_unit_test(test_runnext),
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_wraparound),
      cmocka_unit_test(test_take_half),
      cmocka_unit_test(test_steal_single),
      cmocka_unit_test(test_concurrent_steal),
  };
  return cmocka_run_group_tests_name("runq", tests, NULL, NULL);
}
