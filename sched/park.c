/*
 * Parking and waking Gs on addresses, with optional deadlines: the one
 * blocking primitive under every synchronisation object (Go's sema.go and
 * the futex contract: "sleep on addr if *addr still says so").
 *
 * A park can end in two ways, a waker or the deadline, and they race. The
 * rule: both dequeue the G from its bucket under the bucket lock, so only
 * one can succeed; the winner also clears the low bit of g->park_state
 * (CAS from (seq << 1) | 1), writes the result, then readies the G. A
 * timer armed for an earlier park carries that park's seq and fails the
 * CAS, so it can never end a later one.
 */
#include <errno.h>
#include <limits.h>

#include "sched/internal.h"

#define CLAIMABLE(seq) (((seq) << 1) | 1)

static bool unlock_bucket(struct g *g, void *arg)
{
  gmp_spin_unlock(&((struct pl_bucket *)arg)->lock);
  return true;
}

static bool claim(struct g *g, uint64_t seq, int result)
{
  uint64_t want = CLAIMABLE(seq);
  if (!atomic_compare_exchange_strong(&g->park_state, &want, seq << 1))
    return false;
  g->park_result = result;
  return true;
}

/* A signal queued for g ends its park: one it does not block (its handler
 * runs as the park returns), or one it waits for although it blocks it
 * (sigwait_set: a signalfd read or poll). */
static inline bool sig_ends_park(struct g *g)
{
  return (atomic_load(&g->sigpend) & (~g->sigmask | atomic_load(&g->sigwait_set))) != 0;
}

int gmp_park_on(const void *addr, bool (*validate)(void *), void *arg,
                int64_t deadline, int reason)
{
  struct g *g = gmp_curg_raw();
  struct pl_bucket *b = pl_bucket_of(addr);
  /* Own the P first: getting it back may switch the G out, which must
   * not happen with the bucket locked. */
  struct p *p = gmp_enter_runtime(g);
  gmp_spin_lock(&b->lock);
  if (validate && !validate(arg)) {
    gmp_spin_unlock(&b->lock);
    gmp_leave_runtime(p);
    return GMP_PARK_INVALID;
  }
  uint64_t seq = ++g->park_seq;
  bool cancelpt = (reason & GMP_WAIT_CANCELPOINT) != 0;
  reason &= ~GMP_WAIT_CANCELPOINT;
  g->park_cancelpt = cancelpt;
  pl_enqueue(b, &g->wait, addr);
  /* seq_cst store, then the load of cancel_pending: gmp_cancel does the
   * mirror image, so either it sees us parked or we see its cancel. */
  atomic_store(&g->park_state, CLAIMABLE(seq));
  if (cancelpt && !g->cancel_disabled && atomic_load(&g->cancel_pending)) {
    pl_remove(b, &g->wait);
    atomic_store(&g->park_state, seq << 1);
    gmp_spin_unlock(&b->lock);
    gmp_leave_runtime(p);
    return GMP_PARK_CANCELED;
  }
  /* The same pairing with gmp_signal_g: a signal queued for us before we
   * published the park state is seen here. */
  if (sig_ends_park(g)) {
    pl_remove(b, &g->wait);
    atomic_store(&g->park_state, seq << 1);
    gmp_spin_unlock(&b->lock);
    gmp_leave_runtime(p);
    gmp_sig_check(g);
    return GMP_PARK_INTERRUPTED;
  }
  bool timed = deadline != GMP_NO_DEADLINE;
  if (timed) {
    gmp_spin_lock(&p->timerlock);
    gmp_timer_push_locked(p, g, deadline);
    gmp_spin_unlock(&p->timerlock);
    gmp_wake_timer_sleeper(deadline);
  }
  gmp_park_held(unlock_bucket, b, reason);
  int r = g->park_result;
  if (timed && r != GMP_PARK_TIMEDOUT)
    gmp_timer_del(g);
  /* Only now, with the park fully undone (the handler may park again). */
  gmp_sig_check(g);
  /* Ended by an asynchronous cancel in a wait that is no cancellation
   * point (a mutex): act on it here, as the SIGURG handler would have
   * had the thread been running. */
  if (r == GMP_PARK_CANCELED && !cancelpt)
    gmp_run_async_hook();
  return r;
}

int gmp_park_on_fd(const void *addr, bool (*validate)(void *), void *arg,
                   int64_t deadline, int reason, int fd)
{
  gmp_curg_raw()->wait_fd = fd;
  return gmp_park_on(addr, validate, arg, deadline, reason);
}

/* End park seq of g (parked on a bucket) with result, if still possible. */
static bool bucket_interrupt(struct g *g, uint64_t seq, int result)
{
  uint64_t want = CLAIMABLE(seq);
  for (;;) {
    const void *addr = g->wait.addr;
    if (!addr || atomic_load(&g->park_state) != want)
      return false;
    struct pl_bucket *b = pl_bucket_of(addr);
    gmp_spin_lock(&b->lock);
    if (g->wait.addr != addr) { /* requeued meanwhile: again */
      gmp_spin_unlock(&b->lock);
      continue;
    }
    bool won = atomic_load(&g->park_state) == want && pl_remove(b, &g->wait) &&
               claim(g, seq, result);
    gmp_spin_unlock(&b->lock);
    return won;
  }
}

bool gmp_park_interrupt(struct g *g, int result)
{
  uint64_t st = atomic_load(&g->park_state);
  if (!(st & 1))
    return false;
  uint64_t seq = st >> 1;
  bool won = g->wait.addr ? bucket_interrupt(g, seq, result)
                          : gmp_sleep_interrupt(g, seq, result);
  if (won)
    gmp_ready(g); /* a timed wait's timer is removed by the G itself */
  return won;
}

int gmp_cancel(struct g *g)
{
  atomic_store(&g->cancel_pending, 1);
  if (g->cancel_disabled)
    return 0;
  uint64_t st = atomic_load(&g->park_state);
  /* A wait that is a cancellation point ends; with asynchronous
   * cancellation, any wait does (NPTL's SIGCANCEL unwinds a thread
   * blocked in a mutex too: redis cancels its I/O threads so). */
  if ((st & 1) && (g->park_cancelpt || g->cancel_async)) {
    uint64_t seq = st >> 1;
    bool won = g->wait.addr ? bucket_interrupt(g, seq, GMP_PARK_CANCELED)
                            : gmp_sleep_interrupt(g, seq, GMP_PARK_CANCELED);
    if (won)
      gmp_ready(g); /* a timed wait's timer is removed by the G itself */
    return 0;
  }
  return gmp_g_ostid(g);
}

bool gmp_cancel_pending(void)
{
  struct g *g = gmp_curg_raw();
  return !g->cancel_disabled && atomic_load_explicit(&g->cancel_pending, memory_order_relaxed);
}

void gmp_cancel_state(int *disabled, bool set)
{
  struct g *g = gmp_curg_raw();
  int old = g->cancel_disabled;
  if (set)
    g->cancel_disabled = *disabled != 0;
  *disabled = old;
}

void gmp_cancel_type(int *async, bool set)
{
  struct g *g = gmp_curg_raw();
  int old = g->cancel_async;
  if (set)
    g->cancel_async = *async != 0;
  *async = old;
}

static struct g *waiter_g(struct pl_waiter *w)
{
  return (struct g *)((char *)w - offsetof(struct g, wait));
}

int gmp_unpark_one(const void *addr)
{
  struct pl_bucket *b = pl_bucket_of(addr);
  struct g *g = NULL;
  gmp_spin_lock(&b->lock);
  struct pl_waiter *w;
  while ((w = pl_dequeue(b, addr))) {
    struct g *c = waiter_g(w);
    if (claim(c, c->park_seq, GMP_PARK_WOKEN)) {
      g = c;
      break;
    }
  }
  gmp_spin_unlock(&b->lock);
  if (!g)
    return 0;
  gmp_ready(g);
  return 1;
}

int gmp_unpark_collect(const void *addr, struct g **list)
{
  struct pl_bucket *b = pl_bucket_of(addr);
  int n = 0;
  gmp_spin_lock(&b->lock);
  struct pl_waiter *w;
  while ((w = pl_dequeue(b, addr))) {
    struct g *c = waiter_g(w);
    if (claim(c, c->park_seq, GMP_PARK_WOKEN)) {
      c->schedlink = *list;
      *list = c;
      n++;
    }
  }
  gmp_spin_unlock(&b->lock);
  return n;
}

struct g *gmp_g_next(struct g *g) { return g->schedlink; }
void gmp_ready_g(struct g *g) { gmp_ready(g); }

int gmp_unpark_all(const void *addr)
{
  return gmp_unpark_n(addr, INT_MAX);
}

/* Dequeue and claim up to max waiters of addr (bucket b locked) onto
 * *tail, in queue order. Returns how many. */
static int take(struct pl_bucket *b, const void *addr, int max, struct g ***tail)
{
  int n = 0;
  struct pl_waiter *w;
  while (n < max && (w = pl_dequeue(b, addr))) {
    struct g *c = waiter_g(w);
    if (claim(c, c->park_seq, GMP_PARK_WOKEN)) {
      **tail = c;
      *tail = &c->schedlink;
      n++;
    }
  }
  return n;
}

static void ready_list(struct g *list)
{
  while (list) {
    struct g *next = list->schedlink;
    gmp_ready(list);
    list = next;
  }
}

int gmp_requeue(const void *from, const void *to, int nwake, int nmove,
                bool (*validate)(void *), void *arg)
{
  struct pl_bucket *bf = pl_bucket_of(from), *bt = pl_bucket_of(to);
  /* Both queues locked, in address order (a requeue the other way round
   * cannot deadlock with this one). */
  struct pl_bucket *first = bf < bt ? bf : bt, *second = bf < bt ? bt : bf;
  gmp_spin_lock(&first->lock);
  if (second != first)
    gmp_spin_lock(&second->lock);
  int r = -1;
  struct g *list = NULL, **tail = &list;
  if (!validate || validate(arg)) {
    r = take(bf, from, nwake, &tail);
    int moved = 0;
    struct pl_waiter *w;
    while (moved < nmove && (w = pl_dequeue(bf, from))) {
      /* Still parked (queued waiters are unclaimed): it now waits on
       * to, and a wake of to is what ends its park. */
      pl_enqueue(bt, w, to);
      moved++;
    }
    r += moved;
  }
  *tail = NULL;
  if (second != first)
    gmp_spin_unlock(&second->lock);
  gmp_spin_unlock(&first->lock);
  ready_list(list);
  return r;
}

struct g *gmp_unpark_take(const void *addr)
{
  struct pl_bucket *b = pl_bucket_of(addr);
  struct g *list = NULL, **tail = &list;
  gmp_spin_lock(&b->lock);
  int n = take(b, addr, 1, &tail);
  gmp_spin_unlock(&b->lock);
  return n ? list : NULL;
}

int gmp_unpark_n(const void *addr, int max)
{
  struct pl_bucket *b = pl_bucket_of(addr);
  struct g *list = NULL, **tail = &list;
  int n = 0;
  gmp_spin_lock(&b->lock);
  n = take(b, addr, max, &tail);
  *tail = NULL;
  gmp_spin_unlock(&b->lock);
  ready_list(list);
  return n;
}

/* A timer fired for park number seq of g (called without locks held). */
void gmp_timer_fire(struct g *g, uint64_t seq)
{
  uint64_t want = CLAIMABLE(seq);
  for (;;) {
    if (atomic_load_explicit(&g->park_state, memory_order_acquire) != want)
      return;
    const void *addr = g->wait.addr;
    if (!addr) {
      if (claim(g, seq, GMP_PARK_TIMEDOUT))
        gmp_ready(g);
      return;
    }
    struct pl_bucket *b = pl_bucket_of(addr);
    gmp_spin_lock(&b->lock);
    if (g->wait.addr != addr) {
      /* Requeued to another address meanwhile (gmp_requeue): again. */
      gmp_spin_unlock(&b->lock);
      continue;
    }
    bool won = atomic_load(&g->park_state) == want && pl_remove(b, &g->wait) &&
               claim(g, seq, GMP_PARK_TIMEDOUT);
    gmp_spin_unlock(&b->lock);
    if (won)
      gmp_ready(g);
    return;
  }
}

static bool unlock_timers(struct g *g, void *arg)
{
  struct p *p = arg;
  gmp_spin_unlock(&p->timerlock);
  gmp_wake_timer_sleeper(g->timer.when);
  return true;
}

int gmp_sleep_until(int64_t deadline)
{
  struct g *g = gmp_curg_raw();
  if (deadline <= gmp_nanotime()) {
    gmp_yield();
    return GMP_PARK_TIMEDOUT;
  }
  struct p *p = gmp_enter_runtime(g);
  uint64_t seq = ++g->park_seq;
  g->wait.addr = NULL;
  g->park_cancelpt = true;
  atomic_store(&g->park_state, CLAIMABLE(seq));
  if (!g->cancel_disabled && atomic_load(&g->cancel_pending)) {
    atomic_store(&g->park_state, seq << 1);
    gmp_leave_runtime(p);
    return GMP_PARK_CANCELED;
  }
  if (sig_ends_park(g)) {
    atomic_store(&g->park_state, seq << 1);
    gmp_leave_runtime(p);
    gmp_sig_check(g);
    return GMP_PARK_INTERRUPTED;
  }
  /* The timer lock is held until the G has switched out, so the timer
   * cannot fire (and ready the G) while the G is still running. */
  gmp_spin_lock(&p->timerlock);
  gmp_timer_push_locked(p, g, deadline);
  gmp_park_held(unlock_timers, p, GMP_WAIT_SLEEP);
  int r = g->park_result;
  gmp_sig_check(g);
  return r;
}

/* ---- join / detach ----------------------------------------------------- */

static bool still_joinable(void *arg)
{
  struct g *g = arg;
  return atomic_load(&g->joinstate) == JOIN_JOINABLE;
}

int gmp_join(struct g *g, void **retval, int64_t deadline)
{
  if (g == gmp_curg_raw())
    return EDEADLK;
  for (;;) {
    int js = atomic_load(&g->joinstate);
    if (js == JOIN_DETACHED || js == JOIN_JOINING)
      return EINVAL;
    if (js == JOIN_EXITED) {
      if (!atomic_compare_exchange_strong(&g->joinstate, &js, JOIN_JOINING))
        continue;
      if (retval)
        *retval = g->retval;
      if (!g->is_main)
        gmp_gfree(g);
      return 0;
    }
    if (deadline == GMP_TRY)
      return EBUSY;
    int r = gmp_park_on(&g->joinstate, still_joinable, g, deadline,
                        GMP_WAIT_JOIN | GMP_WAIT_CANCELPOINT);
    if (r == GMP_PARK_CANCELED)
      return ECANCELED;
    if (r == GMP_PARK_TIMEDOUT && atomic_load(&g->joinstate) == JOIN_JOINABLE)
      return ETIMEDOUT;
  }
}

int gmp_detach(struct g *g)
{
  int js = JOIN_JOINABLE;
  if (atomic_compare_exchange_strong(&g->joinstate, &js, JOIN_DETACHED))
    return 0;
  if (js == JOIN_EXITED &&
      atomic_compare_exchange_strong(&g->joinstate, &js, JOIN_JOINING)) {
    if (!g->is_main)
      gmp_gfree(g);
    return 0;
  }
  return EINVAL;
}

bool gmp_g_alive(struct g *g)
{
  int s = atomic_load(&g->status);
  return s != G_DEAD && s != G_IDLE;
}

bool gmp_g_detached(struct g *g)
{
  return atomic_load(&g->joinstate) == JOIN_DETACHED;
}

void gmp_g_stack(struct g *g, void **lo, size_t *size, size_t *guard)
{
  *lo = g->stack.lo;
  *size = (size_t)(g->stack.hi - g->stack.lo);
  *guard = g->stack.guard ? g->stack.guard : g->guardsize;
}

void gmp_g_sched(struct g *g, int *policy, int *priority, bool set)
{
  if (set) {
    g->sched_policy = *policy;
    g->sched_priority = *priority;
  } else {
    *policy = g->sched_policy;
    *priority = g->sched_priority;
  }
}

char *gmp_g_name(struct g *g) { return g->name; }
