/*
 * Per-P timers for sleeps and timed waits. Each G has one embedded timer
 * (a G waits for at most one thing at a time). A timer lives in the heap
 * of the P that armed it; any M may run a P's expired timers (its own in
 * findrunnable, a victim's while stealing, all of them after a timed
 * sleep), always under that P's timerlock.
 */
#include "sched/internal.h"

static void update_timer0(struct p *p)
{
  struct gtimer *t = th_min(&p->timers);
  atomic_store_explicit(&p->timer0, t ? t->when : 0, memory_order_release);
}

void gmp_timer_push_locked(struct p *p, struct g *g, int64_t when)
{
  struct gtimer *t = &g->timer;
  if (when <= 0)
    when = 1; /* 0 means "no timer" in timer0 */
  t->when = when;
  t->g = g;
  t->seq = g->park_seq;
  if (!th_push(&p->timers, t))
    gmp_fatal("out of memory growing the timer heap");
  t->p = p;
  update_timer0(p);
}

void gmp_timer_del(struct g *g)
{
  struct gtimer *t = &g->timer;
  struct p *p = __atomic_load_n(&t->p, __ATOMIC_ACQUIRE);
  if (!p)
    return;
  gmp_spin_lock(&p->timerlock);
  /* A timer never moves between heaps: if it is still ours, remove it. */
  if (t->p == p) {
    th_remove(&p->timers, t);
    __atomic_store_n(&t->p, NULL, __ATOMIC_RELEASE);
    update_timer0(p);
  }
  gmp_spin_unlock(&p->timerlock);
}

int gmp_timers_run(struct p *p, int64_t now)
{
  struct { struct g *g; uint64_t seq; } fire[64];
  int total = 0;
  for (;;) {
    int n = 0;
    gmp_spin_lock(&p->timerlock);
    struct gtimer *t;
    while (n < 64 && (t = th_min(&p->timers)) && t->when <= now) {
      th_remove(&p->timers, t);
      fire[n].g = t->g;
      fire[n].seq = t->seq;
      __atomic_store_n(&t->p, NULL, __ATOMIC_RELEASE);
      n++;
    }
    update_timer0(p);
    gmp_spin_unlock(&p->timerlock);
    /* Fire outside the lock: firing takes bucket locks, and a parking G
     * takes a bucket lock and then a timer lock. */
    for (int i = 0; i < n; i++)
      gmp_timer_fire(fire[i].g, fire[i].seq);
    total += n;
    if (n < 64) {
      if (total)
        atomic_fetch_add_explicit(&gmp_sched.n_timer, (uint64_t)total, memory_order_relaxed);
      return total;
    }
  }
}

bool gmp_sleep_interrupt(struct g *g, uint64_t seq, int result)
{
  struct gtimer *t = &g->timer;
  struct p *p = __atomic_load_n(&t->p, __ATOMIC_ACQUIRE);
  if (!p)
    return false; /* fired (or never armed): the park is ending anyway */
  gmp_spin_lock(&p->timerlock);
  bool won = false;
  uint64_t want = (seq << 1) | 1;
  if (t->p == p && t->seq == seq &&
      atomic_compare_exchange_strong(&g->park_state, &want, seq << 1)) {
    th_remove(&p->timers, t);
    __atomic_store_n(&t->p, NULL, __ATOMIC_RELEASE);
    update_timer0(p);
    g->park_result = result;
    won = true;
  }
  gmp_spin_unlock(&p->timerlock);
  return won;
}
