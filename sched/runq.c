/*
 * Per-P run queue: a lock-free single-producer / multi-consumer ring plus
 * the runnext slot. A port of the algorithm of Go's runqput/runqget/
 * runqgrab/runqsteal (runtime/proc.go); see struct runq for the rules.
 */
#include <sys/syscall.h>
#include <time.h>

#include "sched/runtime.h"

#define LD(x, mo) atomic_load_explicit(&(x), memory_order_##mo)
#define ST(x, v, mo) atomic_store_explicit(&(x), (v), memory_order_##mo)

void runq_init(struct runq *q)
{
  ST(q->head, 0, relaxed);
  ST(q->tail, 0, relaxed);
  ST(q->next, NULL, relaxed);
  for (int i = 0; i < RUNQ_SIZE; i++)
    ST(q->slot[i], NULL, relaxed);
}

uint32_t runq_size(struct runq *q)
{
  for (;;) {
    uint32_t h = LD(q->head, acquire);
    uint32_t t = LD(q->tail, acquire);
    if (h == LD(q->head, acquire))
      return t - h + (LD(q->next, relaxed) != NULL);
  }
}

bool runq_empty(struct runq *q)
{
  /* Go's runqempty: tail and runnext must be read consistently, else a
   * G moving from runnext to the ring could be missed by both reads. */
  for (;;) {
    uint32_t h = LD(q->head, acquire);
    uint32_t t = LD(q->tail, acquire);
    struct g *n = LD(q->next, acquire);
    if (t == LD(q->tail, acquire))
      return h == t && n == NULL;
  }
}

bool runq_put(struct runq *q, struct g *g)
{
  uint32_t h = LD(q->head, acquire);
  uint32_t t = LD(q->tail, relaxed);
  if (t - h < RUNQ_SIZE) {
    ST(q->slot[t % RUNQ_SIZE], g, relaxed);
    ST(q->tail, t + 1, release); /* publishes the slot to consumers */
    return true;
  }
  return false;
}

struct g *runq_put_next(struct runq *q, struct g *g)
{
  return atomic_exchange_explicit(&q->next, g, memory_order_acq_rel);
}

struct g *runq_get(struct runq *q, bool *inherit)
{
  struct g *n = LD(q->next, relaxed);
  /* A stealer may take runnext too, hence the CAS even for the owner. */
  if (n && atomic_compare_exchange_strong_explicit(&q->next, &n, NULL,
                                                   memory_order_acq_rel,
                                                   memory_order_relaxed)) {
    if (inherit)
      *inherit = true;
    return n;
  }
  if (inherit)
    *inherit = false;
  for (;;) {
    uint32_t h = LD(q->head, acquire);
    uint32_t t = LD(q->tail, relaxed);
    if (t == h)
      return NULL;
    struct g *g = LD(q->slot[h % RUNQ_SIZE], relaxed);
    if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1,
                                              memory_order_release,
                                              memory_order_relaxed))
      return g;
  }
}

uint32_t runq_take_half(struct runq *q, uint32_t h, uint32_t t, struct g **batch)
{
  uint32_t n = (t - h) / 2;
  if (n == 0)
    return 0;
  for (uint32_t i = 0; i < n; i++)
    batch[i] = LD(q->slot[(h + i) % RUNQ_SIZE], relaxed);
  if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n,
                                               memory_order_release,
                                               memory_order_relaxed))
    return 0;
  return n;
}

/* Grab half of src's ring into dst's slots starting at index dst_tail.
 * Returns how many. Called by the thief, who owns dst. */
static uint32_t runq_grab(struct runq *src, struct runq *dst, uint32_t dst_tail,
                          bool steal_next)
{
  for (;;) {
    uint32_t h = LD(src->head, acquire);
    uint32_t t = LD(src->tail, acquire);
    uint32_t n = t - h;
    n = n - n / 2;
    if (n == 0) {
      if (steal_next) {
        struct g *nx = LD(src->next, relaxed);
        if (nx) {
          /* The owner is probably about to run it (it just readied it and
           * is switching out): give it a moment before taking it, or a
           * create+join or ping-pong pair is split across CPUs and pays a
           * cross-CPU wake-up per round trip. Like Go's runqgrab, the thief
           * sleeps a few microseconds (timer slack makes it ~50 us) while
           * still counted as spinning, which also spares the owner a
           * futex wake-up of another M for every G it readies. */
          for (int i = 0; i < 50 && LD(src->next, relaxed) == nx; i++)
            __builtin_ia32_pause();
          if (LD(src->next, relaxed) == nx) {
            struct timespec ts = {0, 3000};
            gmp_sys2(SYS_nanosleep, &ts, NULL);
          }
          nx = LD(src->next, relaxed);
        }
        if (nx && atomic_compare_exchange_strong_explicit(
                      &src->next, &nx, NULL, memory_order_acq_rel,
                      memory_order_relaxed)) {
          ST(dst->slot[dst_tail % RUNQ_SIZE], nx, relaxed);
          return 1;
        }
      }
      return 0;
    }
    if (n > RUNQ_SIZE / 2) /* h and t read inconsistently: retry */
      continue;
    for (uint32_t i = 0; i < n; i++) {
      struct g *g = LD(src->slot[(h + i) % RUNQ_SIZE], relaxed);
      ST(dst->slot[(dst_tail + i) % RUNQ_SIZE], g, relaxed);
    }
    if (atomic_compare_exchange_strong_explicit(&src->head, &h, h + n,
                                                memory_order_release,
                                                memory_order_relaxed))
      return n;
  }
}

struct g *runq_steal(struct runq *dst, struct runq *src, bool steal_next)
{
  uint32_t t = LD(dst->tail, relaxed);
  uint32_t n = runq_grab(src, dst, t, steal_next);
  if (n == 0)
    return NULL;
  n--;
  struct g *g = LD(dst->slot[(t + n) % RUNQ_SIZE], relaxed);
  if (n == 0)
    return g;
  uint32_t h = LD(dst->head, acquire);
  if (t - h + n >= RUNQ_SIZE)
    gmp_fatal("runq_steal: local run queue overflow");
  ST(dst->tail, t + n, release);
  return g;
}
