/*
 * Thread-specific data (pthread_key_*), kept per G.
 *
 * glibc keeps it in struct pthread and runs the destructors from its
 * thread-exit path, which a G never takes; so the runtime keeps its own,
 * with glibc's design: a global key table whose sequence numbers are odd
 * while a key is in use, and per-thread slots remembering the sequence
 * they were set under. Deleting a key bumps its sequence, which makes
 * every stale slot read as NULL without visiting any thread.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

#define NKEYS (GMP_TSD_L1 * GMP_TSD_L1)
#define DESTRUCTOR_ITERATIONS 4 /* PTHREAD_DESTRUCTOR_ITERATIONS */

static struct {
  _Atomic uint64_t seq;
  void (*_Atomic destr)(void *);
} keys[NKEYS];

void gmp_key_reserve(unsigned n)
{
  for (unsigned k = 0; k < n && k < NKEYS; k++)
    atomic_store(&keys[k].seq, 1); /* in use, forever: glibc's */
}

int gmp_key_create(unsigned *key, void (*destr)(void *))
{
  for (unsigned k = 0; k < NKEYS; k++) {
    uint64_t s = atomic_load(&keys[k].seq);
    if ((s & 1) == 0 && s + 1 > s &&
        atomic_compare_exchange_strong(&keys[k].seq, &s, s + 1)) {
      atomic_store(&keys[k].destr, destr);
      *key = k;
      return 0;
    }
  }
  return EAGAIN;
}

int gmp_key_delete(unsigned key)
{
  if (key >= NKEYS)
    return EINVAL;
  uint64_t s = atomic_load(&keys[key].seq);
  if ((s & 1) == 0 || !atomic_compare_exchange_strong(&keys[key].seq, &s, s + 1))
    return EINVAL;
  return 0;
}

static struct tsd_slot *slot(struct g *g, unsigned key, bool alloc)
{
  if (key < GMP_TSD_L1)
    return &g->tsd0[key];
  struct tsd_slot **l2 = &g->tsd[key / GMP_TSD_L1];
  if (!*l2) {
    if (!alloc)
      return NULL;
    *l2 = calloc(GMP_TSD_L1, sizeof(struct tsd_slot));
    if (!*l2)
      return NULL;
  }
  return &(*l2)[key % GMP_TSD_L1];
}

void *gmp_getspecific(unsigned key)
{
  struct g *g = gmp_curg_raw();
  if (key >= NKEYS)
    return NULL;
  struct tsd_slot *s = slot(g, key, false);
  if (!s || s->seq != atomic_load_explicit(&keys[key].seq, memory_order_relaxed))
    return NULL;
  return s->data;
}

int gmp_setspecific(unsigned key, const void *v)
{
  struct g *g = gmp_curg_raw();
  if (key >= NKEYS)
    return EINVAL;
  uint64_t seq = atomic_load(&keys[key].seq);
  if ((seq & 1) == 0)
    return EINVAL;
  struct tsd_slot *s = slot(g, key, true);
  if (!s)
    return ENOMEM;
  s->seq = seq;
  s->data = (void *)v;
  g->tsd_used = true;
  g->tsd_dirty = true;
  return 0;
}

void gmp_tsd_run_destructors(struct g *g)
{
  for (int round = 0; round < DESTRUCTOR_ITERATIONS && g->tsd_used; round++) {
    g->tsd_used = false;
    for (unsigned k = 0; k < NKEYS; k++) {
      if (k % GMP_TSD_L1 == 0 && k && !g->tsd[k / GMP_TSD_L1]) {
        k += GMP_TSD_L1 - 1;
        continue;
      }
      struct tsd_slot *s = slot(g, k, false);
      if (!s || !s->data)
        continue;
      void *data = s->data;
      s->data = NULL;
      uint64_t seq = atomic_load(&keys[k].seq);
      void (*d)(void *) = atomic_load(&keys[k].destr);
      if (s->seq == seq && (seq & 1) && d)
        d(data);
    }
  }
}

void gmp_tsd_clear(struct g *g)
{
  /* tsd_dirty: set by the first setspecific of the G's life; most
   * threads never use TSD, and this runs at every thread exit. */
  if (!g->tsd_dirty)
    return;
  g->tsd_dirty = false;
  memset(g->tsd0, 0, sizeof g->tsd0);
  for (int i = 0; i < GMP_TSD_L1; i++) {
    if (g->tsd[i]) {
      free(g->tsd[i]);
      g->tsd[i] = NULL;
    }
  }
  g->tsd_used = false;
}
