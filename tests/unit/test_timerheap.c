/*
 * Unit tests of the timer heap (sched/timerheap.c).
 *
 * Invariants checked, after every operation of long random sequences of
 * th_push / th_pop / th_remove (of arbitrary members, of non-members)
 * compared against a simple reference (an unordered array, min by scan):
 *  - the heap holds exactly the reference's timers;
 *  - heap order: a[parent]->when <= a[child]->when;
 *  - t->idx == its position for every timer in the heap, and -1 for every
 *    timer removed or popped (th_remove of a non-member is a no-op);
 *  - th_min / th_pop return a timer with the smallest `when` (ties: any
 *    of the equal ones), including with many equal `when`s and extreme
 *    values;
 *  - th_free releases the array and leaves an empty, reusable heap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sched/runtime.h"

static uint64_t rng;
static uint64_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Reference: the set of timers that should be in the heap, as an
 * unordered array, with each pool timer's position in it (-1: absent). */
struct ref {
  struct gtimer **a;
  int n;
  struct gtimer *pool;
  int *pos;
};

static int ref_find(struct ref *r, struct gtimer *t)
{
  return r->pos[t - r->pool];
}

static void ref_add(struct ref *r, struct gtimer *t)
{
  r->pos[t - r->pool] = r->n;
  r->a[r->n++] = t;
}

static void ref_del(struct ref *r, int i)
{
  r->pos[r->a[i] - r->pool] = -1;
  r->a[i] = r->a[--r->n];
  if (i < r->n)
    r->pos[r->a[i] - r->pool] = i;
}

static int64_t ref_min(struct ref *r)
{
  int64_t m = INT64_MAX;
  for (int i = 0; i < r->n; i++)
    if (r->a[i]->when < m)
      m = r->a[i]->when;
  return m;
}

/* Full invariant check; pool holds every timer, members or not. */
static void check(struct timerheap *h, struct ref *r, struct gtimer *pool, int npool)
{
  assert_int_equal(h->n, r->n);
  assert_true(h->n <= h->cap);
  for (int32_t i = 0; i < h->n; i++) {
    struct gtimer *t = h->a[i].t;
    assert_non_null(t);
    assert_int_equal(t->idx, i);
    /* the slot's copy of `when` is the timer's */
    assert_true(h->a[i].when == t->when);
    if (i > 0)
      assert_true(h->a[(i - 1) / TH_ARITY].when <= t->when);
  }
  for (int i = 0; i < npool; i++) {
    struct gtimer *t = &pool[i];
    if (ref_find(r, t) >= 0) {
      assert_true(t->idx >= 0 && t->idx < h->n);
      assert_ptr_equal(h->a[t->idx].t, t);
    } else {
      assert_int_equal(t->idx, -1);
    }
  }
  if (r->n == 0)
    assert_null(th_min(h));
  else
    assert_true(th_min(h)->when == ref_min(r));
}

static void test_empty(void **state)
{
  (void)state;
  struct timerheap h = {0};
  assert_null(th_min(&h));
  assert_null(th_pop(&h));
  struct gtimer t = {.when = 5, .idx = -1};
  th_remove(&h, &t); /* not a member: no-op */
  assert_int_equal(t.idx, -1);
  assert_int_equal(h.n, 0);
  th_free(&h);
  th_free(&h); /* twice is harmless */
  assert_null(h.a);
}

static void test_order(void **state)
{
  (void)state;
  struct timerheap h = {0};
  struct gtimer t[8];
  int64_t whens[8] = {50, 10, 40, 10, INT64_MAX, INT64_MIN, 0, -3};
  for (int i = 0; i < 8; i++) {
    t[i] = (struct gtimer){.when = whens[i], .idx = -1};
    assert_true(th_push(&h, &t[i]));
    assert_true(t[i].idx >= 0);
  }
  int64_t expect[8] = {INT64_MIN, -3, 0, 10, 10, 40, 50, INT64_MAX};
  for (int i = 0; i < 8; i++) {
    struct gtimer *m = th_min(&h);
    struct gtimer *p = th_pop(&h);
    assert_ptr_equal(m, p);
    assert_true(p->when == expect[i]);
    assert_int_equal(p->idx, -1);
  }
  assert_null(th_pop(&h));
  th_free(&h);
}

/* The stale-index guard: a timer whose idx points at another member is
 * not removed, and the member is not disturbed. */
static void test_remove_nonmember(void **state)
{
  (void)state;
  struct timerheap h = {0};
  struct gtimer a = {.when = 1, .idx = -1}, b = {.when = 2, .idx = -1};
  struct gtimer stranger = {.when = 0, .idx = 0};
  assert_true(th_push(&h, &a));
  assert_true(th_push(&h, &b));
  th_remove(&h, &stranger);
  assert_int_equal(h.n, 2);
  assert_ptr_equal(h.a[0].t, &a);
  stranger.idx = 7; /* out of range */
  th_remove(&h, &stranger);
  assert_int_equal(h.n, 2);
  th_remove(&h, &a);
  assert_int_equal(a.idx, -1);
  th_remove(&h, &a); /* again: no-op */
  assert_int_equal(h.n, 1);
  assert_ptr_equal(th_min(&h), &b);
  assert_int_equal(b.idx, 0);
  /* Removing the last element (i == n after the decrement). */
  th_remove(&h, &b);
  assert_int_equal(h.n, 0);
  assert_int_equal(b.idx, -1);
  th_free(&h);
}

static void run_random(uint64_t seed, int npool, int nops, int64_t when_range, bool check_each)
{
  rng = seed;
  struct gtimer *pool = calloc((size_t)npool, sizeof *pool);
  struct ref r = {.a = calloc((size_t)npool, sizeof(struct gtimer *)),
                  .pool = pool, .pos = calloc((size_t)npool, sizeof(int))};
  assert_non_null(pool);
  assert_non_null(r.a);
  assert_non_null(r.pos);
  for (int i = 0; i < npool; i++) {
    pool[i].idx = -1;
    r.pos[i] = -1;
  }
  struct timerheap h = {0};

  for (int op = 0; op < nops; op++) {
    uint64_t x = rnd();
    struct gtimer *t = &pool[(x >> 8) % (uint64_t)npool];
    int in = ref_find(&r, t);
    switch (x % 8) {
    case 0: case 1: case 2: /* push (if not a member) */
      if (in < 0) {
        t->when = (int64_t)((x >> 32) % (uint64_t)when_range) - when_range / 4;
        assert_true(th_push(&h, t));
        ref_add(&r, t);
      }
      break;
    case 3: case 4: { /* pop */
      int64_t m = ref_min(&r);
      struct gtimer *p = th_pop(&h);
      if (r.n == 0) {
        assert_null(p);
        break;
      }
      assert_non_null(p);
      assert_true(p->when == m);
      assert_int_equal(p->idx, -1);
      int j = ref_find(&r, p);
      assert_true(j >= 0);
      ref_del(&r, j);
      break;
    }
    default: /* remove an arbitrary timer, member or not */
      th_remove(&h, t);
      assert_int_equal(t->idx, -1);
      if (in >= 0)
        ref_del(&r, in);
      break;
    }
    if (check_each || op % 997 == 0)
      check(&h, &r, pool, npool);
  }
  check(&h, &r, pool, npool);

  /* Drain: non-decreasing whens, every idx -1 after. */
  int64_t last = INT64_MIN;
  struct gtimer *p;
  while ((p = th_pop(&h)) != NULL) {
    assert_true(p->when >= last);
    last = p->when;
    int j = ref_find(&r, p);
    assert_true(j >= 0);
    ref_del(&r, j);
  }
  assert_int_equal(r.n, 0);
  check(&h, &r, pool, npool);

  th_free(&h);
  assert_null(h.a);
  assert_int_equal(h.n, 0);
  assert_int_equal(h.cap, 0);
  /* Reusable after th_free. */
  assert_true(th_push(&h, &pool[0]));
  assert_ptr_equal(th_min(&h), &pool[0]);
  assert_int_equal(pool[0].idx, 0);
  th_free(&h);
  free(pool);
  free(r.a);
  free(r.pos);
}

static void test_random_distinct(void **state)
{
  (void)state;
  run_random(0x243F6A8885A308D3ULL, 64, 20000, 1000000000, true);
  run_random(0x13198A2E03707344ULL, 2000, 300000, INT64_C(1) << 40, false);
}

/* Many equal `when`s: only 4 distinct values among hundreds of timers. */
static void test_random_equal(void **state)
{
  (void)state;
  run_random(0xA4093822299F31D0ULL, 50, 20000, 4, true);
  run_random(0x082EFA98EC4E6C89ULL, 1500, 200000, 4, false);
  run_random(0x452821E638D01377ULL, 300, 50000, 1, true); /* all equal */
}

/* Growth beyond the initial capacity, then shrink to empty and regrow. */
static void test_grow(void **state)
{
  (void)state;
  enum { N = 5000 };
  struct gtimer *t = calloc(N, sizeof *t);
  assert_non_null(t);
  struct timerheap h = {0};
  for (int i = 0; i < N; i++) {
    t[i].when = N - i; /* descending: every push sifts to the root */
    t[i].idx = -1;
    assert_true(th_push(&h, &t[i]));
    assert_ptr_equal(th_min(&h), &t[i]);
    assert_int_equal(t[i].idx, 0);
  }
  assert_true(h.cap >= N);
  for (int i = N - 1; i >= 0; i--) {
    struct gtimer *p = th_pop(&h);
    assert_ptr_equal(p, &t[i]);
    assert_int_equal(p->idx, -1);
  }
  for (int i = 0; i < N; i++)
    assert_true(th_push(&h, &t[i]));
  assert_int_equal(h.n, N);
  th_free(&h);
  free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_remove_nonmember),
      cmocka_unit_test(test_random_distinct),
      cmocka_unit_test(test_random_equal),
      cmocka_unit_test(test_grow),
  };
  return cmocka_run_group_tests_name("timerheap", tests, NULL, NULL);
}
