/*
 * The parking lot's data structure: a fixed hash table of buckets, each a
 * spinlock and a FIFO list of waiters keyed by address. The blocking
 * logic (park, ready, timeouts) is in park.c; this file only keeps lists.
 *
 * FIFO per address gives the fairness POSIX programs expect from a
 * condvar or semaphore queue; barging by a running G (mutex fast path) is
 * still allowed, as in glibc.
 */
#include "sched/runtime.h"

static struct pl_bucket buckets[PL_BUCKETS];

struct pl_bucket *pl_bucket_of(const void *addr)
{
  uintptr_t a = (uintptr_t)addr;
  return &buckets[(a >> 3) % PL_BUCKETS];
}

void pl_enqueue(struct pl_bucket *b, struct pl_waiter *w, const void *addr)
{
  w->addr = addr;
  w->next = NULL;
  w->prev = b->tail;
  if (b->tail)
    b->tail->next = w;
  else
    b->head = w;
  b->tail = w;
  w->queued = true;
  b->count++;
}

static void unlink_waiter(struct pl_bucket *b, struct pl_waiter *w)
{
  if (w->prev)
    w->prev->next = w->next;
  else
    b->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    b->tail = w->prev;
  w->next = w->prev = NULL;
  w->queued = false;
  b->count--;
}

struct pl_waiter *pl_dequeue(struct pl_bucket *b, const void *addr)
{
  for (struct pl_waiter *w = b->head; w; w = w->next) {
    if (w->addr == addr) {
      unlink_waiter(b, w);
      return w;
    }
  }
  return NULL;
}

bool pl_remove(struct pl_bucket *b, struct pl_waiter *w)
{
  if (!w->queued)
    return false;
  unlink_waiter(b, w);
  return true;
}

bool pl_has_waiters(struct pl_bucket *b, const void *addr)
{
  for (struct pl_waiter *w = b->head; w; w = w->next)
    if (w->addr == addr)
      return true;
  return false;
}

void pl_reset_all(void)
{
  for (int i = 0; i < PL_BUCKETS; i++) {
    buckets[i].head = buckets[i].tail = NULL;
    buckets[i].count = 0;
    atomic_store(&buckets[i].lock.v, 0);
  }
}
