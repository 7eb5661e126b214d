/*
 * A 4-ary min-heap of timers ordered by `when`, with each timer knowing
 * its index so that it can be removed in O(log n) when its wait ends early
 * (the common case for timed waits). One per P, guarded by p->timerlock.
 * The slots carry `when` beside the timer pointer (runtime.h): a sift
 * reads only the heap's own array.
 */
#include <stdlib.h>

#include "sched/runtime.h"

static void place(struct timerheap *h, int32_t i, struct theap_slot s)
{
  h->a[i] = s;
  s.t->idx = i;
}

static void sift_up(struct timerheap *h, int32_t i)
{
  struct theap_slot s = h->a[i];
  while (i > 0) {
    int32_t parent = (i - 1) / TH_ARITY;
    if (h->a[parent].when <= s.when)
      break;
    place(h, i, h->a[parent]);
    i = parent;
  }
  place(h, i, s);
}

static void sift_down(struct timerheap *h, int32_t i)
{
  struct theap_slot s = h->a[i];
  for (;;) {
    int32_t c = TH_ARITY * i + 1;
    if (c >= h->n)
      break;
    /* the smallest of up to TH_ARITY children */
    int32_t end = c + TH_ARITY < h->n ? c + TH_ARITY : h->n;
    int32_t m = c;
    for (int32_t k = c + 1; k < end; k++)
      if (h->a[k].when < h->a[m].when)
        m = k;
    if (s.when <= h->a[m].when)
      break;
    place(h, i, h->a[m]);
    i = m;
  }
  place(h, i, s);
}

bool th_push(struct timerheap *h, struct gtimer *t)
{
  if (h->n == h->cap) {
    int32_t cap = h->cap ? h->cap * 2 : 64;
    struct theap_slot *a = realloc(h->a, (size_t)cap * sizeof *a);
    if (!a)
      return false;
    h->a = a;
    h->cap = cap;
  }
  place(h, h->n++, (struct theap_slot){t->when, t});
  sift_up(h, h->n - 1);
  return true;
}

struct gtimer *th_min(struct timerheap *h)
{
  return h->n ? h->a[0].t : NULL;
}

void th_remove(struct timerheap *h, struct gtimer *t)
{
  int32_t i = t->idx;
  if (i < 0 || i >= h->n || h->a[i].t != t)
    return;
  t->idx = -1;
  h->n--;
  if (i == h->n)
    return;
  place(h, i, h->a[h->n]);
  if (i > 0 && h->a[(i - 1) / TH_ARITY].when > h->a[i].when)
    sift_up(h, i);
  else
    sift_down(h, i);
}

struct gtimer *th_pop(struct timerheap *h)
{
  struct gtimer *t = th_min(h);
  if (t)
    th_remove(h, t);
  return t;
}

void th_free(struct timerheap *h)
{
  free(h->a);
  h->a = NULL;
  h->n = h->cap = 0;
}
