/*
 * A binary min-heap of timers ordered by `when`, with each timer knowing
 * its index so that it can be removed in O(log n) when its wait ends early
 * (the common case for timed waits). One per P, guarded by p->timerlock.
 */
#include <stdlib.h>

#include "sched/runtime.h"

static void place(struct timerheap *h, int32_t i, struct gtimer *t)
{
  h->a[i] = t;
  t->idx = i;
}

static void sift_up(struct timerheap *h, int32_t i)
{
  struct gtimer *t = h->a[i];
  while (i > 0) {
    int32_t parent = (i - 1) / 2;
    if (h->a[parent]->when <= t->when)
      break;
    place(h, i, h->a[parent]);
    i = parent;
  }
  place(h, i, t);
}

static void sift_down(struct timerheap *h, int32_t i)
{
  struct gtimer *t = h->a[i];
  for (;;) {
    int32_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && h->a[c + 1]->when < h->a[c]->when)
      c++;
    if (t->when <= h->a[c]->when)
      break;
    place(h, i, h->a[c]);
    i = c;
  }
  place(h, i, t);
}

bool th_push(struct timerheap *h, struct gtimer *t)
{
  if (h->n == h->cap) {
    int32_t cap = h->cap ? h->cap * 2 : 64;
    struct gtimer **a = realloc(h->a, (size_t)cap * sizeof *a);
    if (!a)
      return false;
    h->a = a;
    h->cap = cap;
  }
  place(h, h->n++, t);
  sift_up(h, h->n - 1);
  return true;
}

struct gtimer *th_min(struct timerheap *h)
{
  return h->n ? h->a[0] : NULL;
}

void th_remove(struct timerheap *h, struct gtimer *t)
{
  int32_t i = t->idx;
  if (i < 0 || i >= h->n || h->a[i] != t)
    return;
  t->idx = -1;
  h->n--;
  if (i == h->n)
    return;
  place(h, i, h->a[h->n]);
  if (i > 0 && h->a[(i - 1) / 2]->when > h->a[i]->when)
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
