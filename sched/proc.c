/*
 * The scheduler: Gs, Ms and Ps, after Go's runtime/proc.go.
 *
 * Each M runs a loop on its g0 context: findrunnable() gives it a G,
 * execute() switches to it, and when the G switches back (to park, yield
 * or exit; Go's mcall) the request it left in m->req is finished on g0,
 * where the G's stack is no longer in use. Finishing a park there is what
 * makes parking race-free: the lock that guards the G's wait queue is
 * released only after the G's context has been saved, so a waker on
 * another M can never resume a G that is still running.
 *
 * Work distribution follows Go:
 *  - a readied or new G goes to runnext of the current P (runs next,
 *    inheriting the slice: ping-pong pairs stay on one P);
 *  - a full local queue spills half of itself to the global queue;
 *  - findrunnable: local timers → local queue → global queue (every 61st
 *    schedule first, for fairness) → steal half of a random victim's
 *    queue (4 rounds, the last also takes runnext and runs the victim's
 *    expired timers) → give up the P and sleep;
 *  - at most half the busy Ps have a spinning M looking for work; when
 *    work appears and none spins, wakep() starts one (Go's rule, which
 *    keeps both wake-up latency and futile spinning low).
 * Idle Ms sleep on a futex. One of them sleeps with a timeout until the
 * earliest timer of any P (the "timer sleeper", the role Go's netpoll
 * blocker plays); arming an earlier timer wakes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "poller/netpoll.h"
#include "sched/internal.h"

struct sched gmp_sched;
_Atomic int64_t gmp_coarse_now;
struct p *gmp_allp;
int gmp_nprocs;
bool gmp_running;

static struct gmp_config cfg;
static struct gmp_native native;
static struct m m0;
static struct g g_main;
static size_t box_g_size, box_size;
/* Where the struct g and the TLS block sit inside a box. Dense layout:
 * g first, then the block. Paged layout (box_paged): the box is whole
 * pages, the block ends where the struct g begins and the g ends the box,
 * so everything a G writes (g, TCB, used static TLS) shares its last page
 * and the static TLS surplus below is left in pages nobody touches. */
static size_t box_g_off, box_tls_off;
static bool box_paged;
static sigset_t m_sigmask;

#define LD(x) atomic_load_explicit(&(x), memory_order_acquire)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_release)

/* ---- identity ---------------------------------------------------------- */


struct m *gmp_getm(void)
{
  struct g *g = gmp_curg_raw();
  return g ? g->m : NULL;
}

struct g *gmp_g_of(pthread_t t)
{
  if (!t)
    return NULL;
  uintptr_t s = (uintptr_t)gmp_tcb_slot_of((void *)t);
  struct g *g = (struct g *)s;
  if (!g || (s & GMP_SLOT_G0) || g->tcb != (void *)t)
    return NULL;
  return g;
}

pthread_t gmp_g_pthread(struct g *g) { return (pthread_t)g->tcb; }

struct tid_find { int tid; struct g *g; };

static void tid_match(void *tcb, void *ctx)
{
  struct tid_find *f = ctx;
  struct g *g = gmp_live_g_of_tcb(tcb);
  if (g && !f->g && g->tid == f->tid)
    f->g = g;
}

struct g *gmp_g_of_tid(int tid)
{
  /* Below the G range only a main G (or, in a fork child, the forking G)
   * can own the tid: spare the walk for the OS threads' ids. */
  if (tid <= 0 || (tid < GMP_TID_BASE && tid != (int)gmp_sys0(SYS_getpid)))
    return NULL;
  struct tid_find f = {tid, NULL};
  gmp_for_each_tcb(tid_match, &f);
  return f.g;
}

void gmp_g_info(struct g *g, struct gmp_ginfo *out)
{
  out->id = g->goid;
  out->start = g->fn;
  out->stack_lo = g->stack.lo;
  out->stack_hi = g->stack.hi;
  out->guard = g->stack.guard;
  out->is_main = g->is_main;
}
bool gmp_g_is_main(struct g *g) { return g->is_main; }
int gmp_g_tid(struct g *g) { return g->tid; }
int gmp_procs(void) { return gmp_nprocs; }
int gmp_current_ostid(void) { return gmp_curg_raw()->m->ostid; }

int gmp_g_ostid(struct g *g)
{
  struct m *m = g->m;
  if (atomic_load(&g->status) != G_RUNNING || !m || m->curg != g)
    return 0;
  return m->ostid;
}
uint64_t gmp_g_id(struct g *g) { return g->goid; }

/* ---- random victim order ------------------------------------------------ */

static uint32_t fastrand(struct m *m)
{
  /* xorshift64*: per M, no shared state. */
  uint64_t x = m->rand;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  m->rand = x;
  return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ---- global run queue (sched.lock held) -------------------------------- */

static void globrunqput(struct g *g)
{
  g->schedlink = NULL;
  if (gmp_sched.runqtail)
    gmp_sched.runqtail->schedlink = g;
  else
    gmp_sched.runqhead = g;
  gmp_sched.runqtail = g;
  atomic_fetch_add(&gmp_sched.runqsize, 1);
}

static void globrunqputhead(struct g *g)
{
  g->schedlink = gmp_sched.runqhead;
  gmp_sched.runqhead = g;
  if (!gmp_sched.runqtail)
    gmp_sched.runqtail = g;
  atomic_fetch_add(&gmp_sched.runqsize, 1);
  atomic_fetch_add(&gmp_sched.nurgent, 1);
}

static void globrunqputbatch(struct g *head, struct g *tail, int32_t n)
{
  tail->schedlink = NULL;
  if (gmp_sched.runqtail)
    gmp_sched.runqtail->schedlink = head;
  else
    gmp_sched.runqhead = head;
  gmp_sched.runqtail = tail;
  atomic_fetch_add(&gmp_sched.runqsize, n);
}

/* Take a fair share of the global queue: one G to run, and up to half a
 * local queue's worth more into p's ring. */
/* Free Gs: a P keeps up to GF_LOCAL_MAX - 1 and moves GF_BATCH at a time
 * to or from the global list. */
#define GF_LOCAL_MAX 64
#define GF_BATCH 32
/* G ids a P takes from the global counter at a time (Go: 16). */
#define GOID_BATCH 16

/* How far below execute()'s stack pointer a new G's first frame is built
 * on g0's stack: above it, the switch's own 64-byte frame; below it, room
 * for a signal frame (xsave state included) while the switch completes. */
#define BOOT_FRAME_GAP 1024
/* Stack a G must have left below its stack pointer to build a new G's
 * first frame there (a direct switch): the gap, the frame, and a signal
 * frame with the largest xsave area (AVX-512: ~2.7 KiB) to spare. */
#define BOOT_FRAME_ROOM (8 * 1024)

static struct g *globrunqget(struct p *p, int32_t max)
{
  int32_t size = LD(gmp_sched.runqsize);
  if (size == 0)
    return NULL;
  int32_t n = size / gmp_nprocs + 1;
  if (n > size)
    n = size;
  if (max > 0 && n > max)
    n = max;
  if (n > RUNQ_SIZE / 2)
    n = RUNQ_SIZE / 2;
  atomic_fetch_sub(&gmp_sched.runqsize, n);
  int32_t u = LD(gmp_sched.nurgent);
  if (u)
    atomic_store(&gmp_sched.nurgent, u > n ? u - n : 0);
  struct g *g = gmp_sched.runqhead;
  gmp_sched.runqhead = g->schedlink;
  n--;
  while (n-- > 0) {
    struct g *g1 = gmp_sched.runqhead;
    gmp_sched.runqhead = g1->schedlink;
    runq_put(&p->runq, g1);
  }
  if (!gmp_sched.runqhead)
    gmp_sched.runqtail = NULL;
  return g;
}

/* ---- local run queue ------------------------------------------------- */

void gmp_runqput(struct p *p, struct g *g, bool next)
{
  if (next) {
    g = runq_put_next(&p->runq, g);
    if (!g)
      return;
  }
  for (;;) {
    if (runq_put(&p->runq, g))
      return;
    /* Full: move half of it and g to the global queue, so that other Ps
     * can find them without stealing from us one by one. */
    struct g *batch[RUNQ_SIZE / 2 + 1];
    uint32_t h = atomic_load_explicit(&p->runq.head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runq.tail, memory_order_relaxed);
    uint32_t n = runq_take_half(&p->runq, h, t, batch);
    if (n == 0)
      continue; /* a thief made room */
    batch[n] = g;
    for (uint32_t i = 0; i < n; i++)
      batch[i]->schedlink = batch[i + 1];
    gmp_lock_acquire(&gmp_sched.lock);
    globrunqputbatch(batch[0], g, (int32_t)n + 1);
    gmp_lock_release(&gmp_sched.lock);
    PSTAT_ADD(p->st.spills, 1);
    return;
  }
}

/* ---- idle P and M lists (sched.lock held) ------------------------------ */

static void pidleput(struct p *p)
{
  atomic_store(&p->status, P_IDLE);
  p->m = NULL;
  p->link = gmp_sched.pidle;
  gmp_sched.pidle = p;
  atomic_fetch_add(&gmp_sched.npidle, 1);
}

static struct p *pidleget(void)
{
  struct p *p = gmp_sched.pidle;
  if (p) {
    gmp_sched.pidle = p->link;
    atomic_fetch_sub(&gmp_sched.npidle, 1);
  }
  return p;
}

static void mput(struct m *m)
{
  m->schedlink = gmp_sched.midle;
  gmp_sched.midle = m;
  gmp_sched.nmidle++;
}

static struct m *mget(void)
{
  struct m *m = gmp_sched.midle;
  if (m) {
    gmp_sched.midle = m->schedlink;
    gmp_sched.nmidle--;
  }
  return m;
}

static void acquirep(struct m *m, struct p *p)
{
  m->p = p;
  p->m = m;
  atomic_store(&p->status, P_RUNNING);
}

static struct p *releasep(struct m *m)
{
  struct p *p = m->p;
  m->p = NULL;
  p->m = NULL;
  return p;
}

/* ---- M sleep / wake ----------------------------------------------------- */

static void notesleep(struct m *m)
{
  while (atomic_exchange(&m->note, 0) == 0)
    gmp_futex_wait((uint32_t *)&m->note, 0, -1);
}

/* notesleep for at most ns: false if no wake-up came. */
static bool notesleep_for(struct m *m, int64_t ns)
{
  int64_t deadline = gmp_nanotime() + ns;
  while (atomic_exchange(&m->note, 0) == 0) {
    int64_t left = deadline - gmp_nanotime();
    if (left <= 0)
      return false;
    gmp_futex_wait((uint32_t *)&m->note, 0, left);
  }
  return true;
}

static void notewakeup(struct m *m)
{
  atomic_store(&m->note, 1);
  gmp_futex_wake((uint32_t *)&m->note, 1);
}

static void mstart_loop(struct m *m) __attribute__((noreturn));
static int newm(struct p *p, bool spinning);

/* Start an M to run p (or any idle P when p is NULL). */
static void startm(struct p *p, bool spinning)
{
  gmp_lock_acquire(&gmp_sched.lock);
  if (!p) {
    p = pidleget();
    if (!p) {
      gmp_lock_release(&gmp_sched.lock);
      if (spinning)
        atomic_fetch_sub(&gmp_sched.nmspinning, 1);
      return;
    }
  }
  struct m *nm = mget();
  gmp_lock_release(&gmp_sched.lock);
  if (!nm) {
    if (newm(p, spinning) != 0) {
      gmp_lock_acquire(&gmp_sched.lock);
      pidleput(p);
      gmp_lock_release(&gmp_sched.lock);
      if (spinning)
        atomic_fetch_sub(&gmp_sched.nmspinning, 1);
    }
    return;
  }
  nm->spinning = spinning;
  nm->nextp = p;
  notewakeup(nm);
}

/* Work appeared: make sure some M is looking for it, unless one already
 * spins (it will find the work and, on finding it, wake another). */
void gmp_wakep(void)
{
  if (LD(gmp_sched.npidle) == 0)
    return;
  int32_t zero = 0;
  if (LD(gmp_sched.nmspinning) != 0 ||
      !atomic_compare_exchange_strong(&gmp_sched.nmspinning, &zero, 1))
    return;
  startm(NULL, true);
}

static void resetspinning(struct m *m)
{
  m->spinning = false;
  if (atomic_fetch_sub(&gmp_sched.nmspinning, 1) == 1)
    gmp_wakep();
}

/* Park the M with no P until startm hands it one. */
static void apply_mask(struct m *m, uint64_t mask);

/* An M about to sleep blocks every asynchronous signal (signal.c, rule
 * 1), so the kernel never picks an OS thread that runs no G. */
static void idle_mask(struct m *m)
{
  uint64_t mask = gmp_idle_sigmask();
  if (m->cur_mask != mask)
    apply_mask(m, mask);
}

/* An M idle this long ends its OS thread (if another idle one remains):
 * OS threads pile up while threads block in system calls (a burst of
 * them at start-up, a stall on the address-space lock) and would stay
 * for the life of the process, counted against it by every tool that
 * counts threads. 5 s: much longer than any burst, and making an M again
 * costs ~100 us. (Go's Ms never end; its programs do not count them.) */
#define IDLE_M_NS 5000000000LL

/* m has no OS thread (any more): keep its struct for newm (lock held). */
static void mdead_put(struct m *m)
{
  m->ended = true;
  m->schedlink = gmp_sched.mdead;
  gmp_sched.mdead = m;
  gmp_sched.nmdead++;
}

/* Take m off the idle list if it is still there (lock held). */
static bool midle_remove(struct m *m)
{
  for (struct m **pp = &gmp_sched.midle; *pp; pp = &(*pp)->schedlink) {
    if (*pp == m) {
      *pp = m->schedlink;
      gmp_sched.nmidle--;
      return true;
    }
  }
  return false;
}

static void stopm(struct m *m)
{
  gmp_lock_acquire(&gmp_sched.lock);
  mput(m);
  gmp_lock_release(&gmp_sched.lock);
  /* After mput, so that startm finds this M at once instead of making a
   * new one while the mask syscall runs (a wake-up that comes first is
   * kept in the note). */
  idle_mask(m);
  if (m->can_end) {
    while (!notesleep_for(m, IDLE_M_NS)) {
      gmp_lock_acquire(&gmp_sched.lock);
      /* Not on the list any more: startm took it and its wake-up is on
       * the way (wait for it). The last idle M stays. */
      if (gmp_sched.nmidle > 1 && midle_remove(m)) {
        mdead_put(m);
        gmp_lock_release(&gmp_sched.lock);
        atomic_fetch_add(&gmp_sched.n_mended, 1);
        longjmp(m->end_jb, 1); /* to mstart_thread, on this same stack */
      }
      gmp_lock_release(&gmp_sched.lock);
    }
  } else {
    notesleep(m);
  }
  acquirep(m, m->nextp);
  m->nextp = NULL;
}

/* ---- ready ---------------------------------------------------------------- */

/* Every transition to G_RUNNABLE goes through here. One readying in 8
 * (per G) is timed, for the scheduling-latency histogram: two clock reads
 * on every switch would cost more than the histogram is worth. */
static inline void mark_runnable(struct g *g)
{
  g->runnable_since = (g->nready++ & 7) == 0 ? gmp_nanotime() : 0;
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_release);
}

void gmp_ready_p(struct p *p, struct g *g)
{
  mark_runnable(g);
  if (gmp_tev_on && p)
    gmp_tev_unpark(gmp_getm(), p->id, g->goid);
  if (p) {
    gmp_runqput(p, g, true);
  } else {
    gmp_lock_acquire(&gmp_sched.lock);
    globrunqput(g);
    gmp_lock_release(&gmp_sched.lock);
  }
  gmp_wakep();
}

/* The poller's direct hand-off (a write readying the reader on the other
 * end of a pipe or socketpair): g goes to runnext of the writer's P and no
 * other M is woken. A request/response pair then alternates on one P, as
 * Go's pair does through netpoll(0), without a futex wake-up per message;
 * if the writer keeps running instead, the epoll event of the same write
 * wakes the M blocked in the poller, which finds nothing to ready and
 * steals g from runnext within microseconds (findrunnable's last round). */
void gmp_ready_handoff(struct g *g)
{
  struct g *cur = gmp_curg_raw();
  if (!cur || cur->is_g0) {
    gmp_ready(g);
    return;
  }
  struct p *p = gmp_enter_runtime(cur);
  mark_runnable(g);
  if (gmp_tev_on)
    gmp_tev_unpark(cur->m, p->id, g->goid);
  gmp_runqput(p, g, true);
  gmp_leave_runtime(p);
}

/* Make g runnable, from any context: g0 (timers), a G, or a thread that
 * is neither (then via the global queue). */
void gmp_ready(struct g *g)
{
  struct g *cur = gmp_curg_raw();
  if (!cur) {
    gmp_ready_p(NULL, g);
  } else if (cur->is_g0 || cur->m->finishing) {
    gmp_ready_p(cur->m->p, g);
  } else {
    struct p *p = gmp_enter_runtime(cur);
    gmp_ready_p(p, g);
    gmp_leave_runtime(p);
  }
}

/* Make a list of Gs readied by the poller runnable (Go's injectglist).
 * With a P (p != NULL): as many as there are idle Ps go to the global
 * queue, each with an M started to run it, the rest to p's own queue.
 * Without one (sysmon, an M that found no idle P): all go to the global
 * queue. The list is linked by schedlink. */
static void inject(struct p *p, struct g *list, int n)
{
  if (!list)
    return;
  atomic_fetch_add_explicit(&gmp_sched.n_netpoll, (uint64_t)n, memory_order_relaxed);
  for (struct g *g = list; g; g = g->schedlink) {
    mark_runnable(g);
    if (gmp_tev_on && p)
      gmp_tev_unpark(gmp_getm(), p->id, g->goid);
  }
  int npidle = LD(gmp_sched.npidle);
  int k = p ? (n < npidle ? n : npidle) : n;
  if (k > 0) {
    struct g *head = list, *tail = list;
    for (int i = 1; i < k; i++)
      tail = tail->schedlink;
    list = tail->schedlink;
    gmp_lock_acquire(&gmp_sched.lock);
    globrunqputbatch(head, tail, k);
    gmp_lock_release(&gmp_sched.lock);
    for (int i = 0; i < k && i < npidle; i++)
      startm(NULL, false);
  }
  while (list) {
    struct g *next = list->schedlink;
    gmp_runqput(p, list, false);
    list = next;
  }
}

bool gmp_netpoll_unwatched(void)
{
  return LD(gmp_sched.lastpoll) != 0 && LD(gmp_sched.npidle) > 0;
}

void gmp_netpoll_want_poller(void)
{
  struct g *g = gmp_curg_raw();
  struct p *p = gmp_enter_runtime(g);
  gmp_wakep();
  gmp_leave_runtime(p);
}

/* ---- finding work ------------------------------------------------------- */

static struct g *steal_work(struct m *m, int64_t now)
{
  struct p *p = m->p;
  for (int round = 0; round < 4; round++) {
    bool last = round == 3;
    uint32_t start = fastrand(m) % (uint32_t)gmp_nprocs;
    for (int i = 0; i < gmp_nprocs; i++) {
      struct p *p2 = &gmp_allp[(start + (uint32_t)i) % (uint32_t)gmp_nprocs];
      if (p2 == p)
        continue;
      if (last) {
        int64_t w = LD(p2->timer0);
        if (w && w <= now && gmp_timers_run(p2, now) > 0) {
          struct g *g = runq_get(&p->runq, NULL);
          if (g)
            return g;
        }
      }
      if (!runq_empty(&p2->runq)) {
        uint32_t had = runq_size(&p->runq);
        struct g *g = runq_steal(&p->runq, &p2->runq, last);
        if (g) {
          PSTAT_ADD(p->st.steals, 1);
          PSTAT_ADD(p->st.stolen, runq_size(&p->runq) - had + 1);
          if (gmp_tev_on)
            gmp_tev_instant(m, TEV_STEAL, p->id, g->goid, 0, p2->id);
          return g;
        }
      }
    }
  }
  return NULL;
}

static int64_t earliest_timer(void)
{
  int64_t until = 0;
  for (int i = 0; i < gmp_nprocs; i++) {
    int64_t w = LD(gmp_allp[i].timer0);
    if (w && (!until || w < until))
      until = w;
  }
  return until;
}

static bool any_runq_nonempty(void)
{
  for (int i = 0; i < gmp_nprocs; i++)
    if (!runq_empty(&gmp_allp[i].runq))
      return true;
  return false;
}

static void run_all_timers(int64_t now)
{
  for (int i = 0; i < gmp_nprocs; i++) {
    int64_t w = LD(gmp_allp[i].timer0);
    if (w && w <= now)
      gmp_timers_run(&gmp_allp[i], now);
  }
}

void gmp_wake_timer_sleeper(int64_t when)
{
  int64_t s = LD(gmp_sched.sleep_until);
  if (s != 0 && when < s) {
    atomic_fetch_add(&gmp_sched.sleep_note, 1);
    gmp_futex_wake((uint32_t *)&gmp_sched.sleep_note, 1);
  }
  int64_t pu = LD(gmp_sched.poll_until);
  if (pu != 0 && when < pu)
    gmp_netpoll_break();
}

static bool netpoll_worth(void)
{
  return LD(gmp_netpoll_active) && LD(gmp_netpoll_waiters) > 0;
}

/* The first G of a list from the poller, made runnable. */
static struct g *netpoll_first(struct g **list)
{
  atomic_fetch_add_explicit(&gmp_sched.n_pollwake, 1, memory_order_relaxed);
  struct g *g = *list;
  *list = g->schedlink;
  g->runnable_since = 0;
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_release);
  atomic_fetch_add_explicit(&gmp_sched.n_netpoll, 1, memory_order_relaxed);
  return g;
}

/* Returns a runnable G; m holds a P on return. May sleep. */
static struct g *findrunnable(struct m *m)
{
  bool all_timers = false;
  struct g *g;
  int pass = 0;
top:;
  pass++;
  struct p *p = m->p;
  int64_t now = 0;
  int64_t t0 = LD(p->timer0);
  if (t0 || all_timers) {
    now = gmp_nanotime();
    if (t0 && t0 <= now)
      gmp_timers_run(p, now);
    if (all_timers)
      run_all_timers(now);
    all_timers = false;
  }
  if (__builtin_expect(LD(p->slice_end), 0)) {
    /* The slice is over (sysmon): whoever readied the G in runnext does
     * not pass the slice on to it. It goes where a preempted G goes, to
     * the back of the global queue (Go's gopreempt_m), behind every G
     * already waiting there. */
    atomic_store_explicit(&p->slice_end, 0, memory_order_relaxed);
    struct g *nx = runq_put_next(&p->runq, NULL);
    if (nx) {
      gmp_lock_acquire(&gmp_sched.lock);
      globrunqput(nx);
      gmp_lock_release(&gmp_sched.lock);
    }
  }
  /* Threads back from the kernel first (nurgent), but on every other
   * tick at most: a stream of them must not starve the local queue. */
  if ((p->schedtick % 61 == 0 || ((p->schedtick & 1) && LD(gmp_sched.nurgent) > 0)) &&
      LD(gmp_sched.runqsize) > 0) {
    gmp_lock_acquire(&gmp_sched.lock);
    g = globrunqget(p, 1);
    gmp_lock_release(&gmp_sched.lock);
    if (g)
      goto found;
  }
  if ((g = runq_get(&p->runq, &m->inherit))) {
    /* The next slice starts where this M's last one on this P ended
     * (no clock read) only if the M has held the P ever since. */
    m->tev_quick = pass == 1 && m->tev_last_p == p->id;
    goto found;
  }
  if (LD(gmp_sched.runqsize) > 0) {
    gmp_lock_acquire(&gmp_sched.lock);
    g = globrunqget(p, 0);
    gmp_lock_release(&gmp_sched.lock);
    if (g)
      goto found;
  }

  /* The poller, without blocking, before stealing: Gs whose fds became
   * ready are as runnable as the ones in queues (Go does the same). */
  if (netpoll_worth() && LD(gmp_sched.lastpoll) != 0) {
    struct g *list = NULL;
    int n = gmp_netpoll(0, &list);
    if (n > 0) {
      atomic_store(&gmp_sched.lastpoll, gmp_nanotime());
      g = netpoll_first(&list);
      inject(p, list, n - 1);
      goto found;
    }
  }

  /* Steal, if not too many Ms already spin (Go: 2*nmspinning < busy Ps). */
  if (!m->spinning &&
      2 * LD(gmp_sched.nmspinning) < gmp_nprocs - LD(gmp_sched.npidle)) {
    m->spinning = true;
    atomic_fetch_add(&gmp_sched.nmspinning, 1);
  }
  if (m->spinning) {
    if (!now)
      now = gmp_nanotime();
    if ((g = steal_work(m, now)))
      goto found;
  }

  /* Nothing: give up the P. Check the global queue once more under the
   * lock that a putter takes, so that a G queued meanwhile is not lost. */
  gmp_lock_acquire(&gmp_sched.lock);
  if (LD(gmp_sched.runqsize) > 0) {
    g = globrunqget(p, 0);
    gmp_lock_release(&gmp_sched.lock);
    goto found;
  }
  releasep(m);
  pidleput(p);
  gmp_lock_release(&gmp_sched.lock);

  /* A spinning M that stops spinning must look once more at every queue:
   * a G readied just before nmspinning dropped saw a spinner and did not
   * call wakep (Go's "delicate dance" in findrunnable). */
  if (m->spinning) {
    m->spinning = false;
    atomic_fetch_sub(&gmp_sched.nmspinning, 1);
    if (any_runq_nonempty()) {
      gmp_lock_acquire(&gmp_sched.lock);
      struct p *p2 = pidleget();
      gmp_lock_release(&gmp_sched.lock);
      if (p2) {
        acquirep(m, p2);
        m->spinning = true;
        atomic_fetch_add(&gmp_sched.nmspinning, 1);
        goto top;
      }
    }
  }

  /* Gs wait for fds: block in the poller (one M at a time) until an fd
   * is ready, the earliest timer is due, or gmp_netpoll_break. */
  int64_t lp = LD(gmp_sched.lastpoll);
  if (netpoll_worth() && lp != 0 &&
      atomic_compare_exchange_strong(&gmp_sched.lastpoll, &lp, 0)) {
    int64_t until = earliest_timer();
    atomic_store(&gmp_sched.poll_until, until ? until : INT64_MAX);
    /* A timer armed before the store above did not see poll_until and
     * did not break us: look again. */
    int64_t until2 = earliest_timer();
    if (until2 && (!until || until2 < until))
      until = until2;
    int64_t wait = -1;
    if (until) {
      wait = until - gmp_nanotime();
      if (wait < 0)
        wait = 0;
    }
    struct g *list = NULL;
    if (wait != 0)
      idle_mask(m);
    int n = gmp_netpoll(wait, &list);
    atomic_store(&gmp_sched.poll_until, 0);
    atomic_store(&gmp_sched.lastpoll, gmp_nanotime());
    gmp_lock_acquire(&gmp_sched.lock);
    struct p *p2 = pidleget();
    gmp_lock_release(&gmp_sched.lock);
    if (p2) {
      acquirep(m, p2);
      if (n > 0) {
        g = netpoll_first(&list);
        inject(p2, list, n - 1);
        goto found;
      }
      all_timers = true;
      goto top;
    }
    if (n > 0)
      atomic_fetch_add_explicit(&gmp_sched.n_pollwake, 1, memory_order_relaxed);
    inject(NULL, list, n);
    stopm(m);
    goto top;
  }

  /* Sleep until the earliest timer, if we can be the one timer sleeper. */
  uint32_t note = LD(gmp_sched.sleep_note);
  int64_t until = earliest_timer();
  if (until) {
    int64_t zero = 0;
    if (atomic_compare_exchange_strong(&gmp_sched.sleep_until, &zero, until)) {
      int64_t wait = until - gmp_nanotime();
      if (wait > 0)
      {
        idle_mask(m);
        gmp_futex_wait((uint32_t *)&gmp_sched.sleep_note, note, wait);
      }
      int64_t mine = until;
      atomic_compare_exchange_strong(&gmp_sched.sleep_until, &mine, 0);
      gmp_lock_acquire(&gmp_sched.lock);
      struct p *p2 = pidleget();
      gmp_lock_release(&gmp_sched.lock);
      if (p2) {
        acquirep(m, p2);
        all_timers = true;
        goto top;
      }
    } else {
      gmp_wake_timer_sleeper(until);
    }
  }
  stopm(m);
  goto top;

found:
  if (m->spinning)
    resetspinning(m);
  return g;
}

/* ---- G allocation --------------------------------------------------------- */

static gmp_lock box_lock;
static char *box_cur, *box_end;
/* Every chunk ever carved, for gmp_for_each_tcb. Append-only. */
static char **box_chunks;
static size_t nbox_chunks, box_chunk_len;

static struct g *galloc(void)
{
  gmp_lock_acquire(&box_lock);
  if (box_cur + box_size > box_end) {
    /* Boxes come from 2 MiB-aligned chunks marked for transparent huge
     * pages: one page fault then backs ~350 Gs, where 4 KiB pages cost
     * two faults per G (~5 us each on a VM). */
    size_t chunk = 2u << 20;
    if (chunk < 16 * box_size)
      chunk = (16 * box_size + chunk - 1) & ~(chunk - 1);
    long r = gmp_sys6(SYS_mmap, 0, chunk * 2, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r < 0 && r > -4096) {
      gmp_lock_release(&box_lock);
      return NULL;
    }
    uintptr_t base = (uintptr_t)r, al = (base + chunk - 1) & ~(uintptr_t)(chunk - 1);
    if (al > base)
      gmp_sys2(SYS_munmap, base, al - base);
    if (base + chunk * 2 > al + chunk)
      gmp_sys2(SYS_munmap, al + chunk, base + chunk * 2 - (al + chunk));
    gmp_sys3(SYS_madvise, al, chunk, box_paged ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
    if (nbox_chunks % 64 == 0) {
      char **n = realloc(box_chunks, (nbox_chunks + 64) * sizeof *n);
      if (!n) {
        gmp_lock_release(&box_lock);
        return NULL;
      }
      box_chunks = n;
    }
    box_chunks[nbox_chunks++] = (char *)al;
    box_chunk_len = chunk;
    box_cur = (char *)al;
    box_end = box_cur + chunk;
  }
  struct g *g = (struct g *)(box_cur + box_g_off);
  g->tls_block = box_cur + box_tls_off;
  g->tcb = gmp_tls_create(g->tls_block);
  if (!g->tcb) {
    gmp_lock_release(&box_lock);
    return NULL; /* malloc of the DTV failed: the box stays unused */
  }
  gmp_tcb_slot_set(g->tcb, g);
  box_cur += box_size; /* published only once its TCB exists */
  gmp_lock_release(&box_lock);
  g->timer.idx = -1;
  return g;
}

/* A dead G goes to the P's free list with its TCB (recycled: see
 * shim/tls.c for why TCBs are never freed) and its stack, which the next
 * G of the same stack size reuses: a fresh stack costs two system calls
 * and a page fault, ~15 us on this VM, a reused one nothing. The local
 * list spills half to the global one past 64. */
static void gfput(struct p *p, struct g *g)
{
  gmp_tls_recycle(g->tcb);
  gmp_tsd_clear(g);
  if (g->stack.user)
    memset(&g->stack, 0, sizeof g->stack);
  atomic_store_explicit(&g->status, G_IDLE, memory_order_release);
  if (!p) {
    g->schedlink = NULL;
    g->gfn = 1;
    gmp_lock_acquire(&gmp_sched.gflock);
    g->gfnext = gmp_sched.gfree;
    gmp_sched.gfree = g;
    gmp_sched.ngfree++;
    gmp_lock_release(&gmp_sched.gflock);
    return;
  }
  g->schedlink = p->gfree;
  p->gfree = g;
  if (++p->gfreecnt >= GF_LOCAL_MAX) {
    /* Spill a batch of the least recently freed half: walking the local
     * list touches Gs this P freed, warm in its cache. */
    struct g *keep = p->gfree, *last = keep;
    for (int i = 1; i < GF_LOCAL_MAX - GF_BATCH; i++)
      last = last->schedlink;
    struct g *batch = last->schedlink;
    last->schedlink = NULL;
    p->gfreecnt -= GF_BATCH;
    batch->gfn = GF_BATCH;
    gmp_lock_acquire(&gmp_sched.gflock);
    batch->gfnext = gmp_sched.gfree;
    gmp_sched.gfree = batch;
    gmp_sched.ngfree += GF_BATCH;
    gmp_lock_release(&gmp_sched.gflock);
  }
}

static struct g *gfget(struct p *p)
{
  if (!p->gfree && gmp_sched.gfree) {
    gmp_lock_acquire(&gmp_sched.gflock);
    struct g *b = gmp_sched.gfree;
    if (b) {
      gmp_sched.gfree = b->gfnext;
      gmp_sched.ngfree -= b->gfn;
      p->gfree = b;
      p->gfreecnt = b->gfn;
    }
    gmp_lock_release(&gmp_sched.gflock);
  }
  struct g *g = p->gfree;
  if (g) {
    p->gfree = g->schedlink;
    p->gfreecnt--;
  }
  return g;
}

void gmp_gfree(struct g *g)
{
  struct g *cur = gmp_curg_raw();
  if (cur->is_g0) {
    gfput(cur->m->p, g);
    return;
  }
  struct p *p = gmp_enter_runtime(cur);
  gfput(p, g);
  gmp_leave_runtime(p);
}

void gmp_for_each_tcb(void (*fn)(void *tcb, void *ctx), void *ctx)
{
  fn(g_main.tcb, ctx);
  fn(m0.g0.fs, ctx);
  gmp_lock_acquire(&box_lock);
  for (size_t i = 0; i < nbox_chunks; i++) {
    char *c = box_chunks[i];
    char *end = c + box_chunk_len;
    if (box_cur >= c && box_cur <= end)
      end = box_cur;
    for (char *b = c; b + box_size <= end; b += box_size)
      fn(((struct g *)(b + box_g_off))->tcb, ctx);
  }
  gmp_lock_release(&box_lock);
}

/* ---- G start and exit ------------------------------------------------------ */

static void resumed(struct g *g);

static void gstart(void *arg)
{
  struct g *g = arg;
  resumed(g); /* switched to directly: finish the switcher's park */
  gmp_tls_enter();
  gmp_sig_check(g);
  void *ret = g->fn(g->arg);
  gmp_goexit(ret);
}

static int go_held(struct p *p, pthread_t *out, void *(*fn)(void *), void *arg,
                   const struct gmp_gattr *a);

int gmp_go(pthread_t *out, void *(*fn)(void *), void *arg, const struct gmp_gattr *a)
{
  struct p *p = gmp_enter_runtime(gmp_curg_raw());
  int rc = go_held(p, out, fn, arg, a);
  gmp_leave_runtime(p);
  return rc;
}

static int go_held(struct p *p, pthread_t *out, void *(*fn)(void *), void *arg,
                   const struct gmp_gattr *a)
{
  struct g *g = gfget(p);
  if (!g && !(g = galloc()))
    return EAGAIN;

  size_t want = a->stacksize ? a->stacksize : cfg.stack_size;
  size_t guard = a->guardsize;
  if (a->stackaddr) {
    gmp_stack_free(&g->stack);
    g->stack = (struct gmp_stack){.lo = a->stackaddr, .hi = (char *)a->stackaddr + want,
                                  .user = true};
  } else {
    size_t have = g->stack.map ? (size_t)(g->stack.hi - g->stack.lo) : 0;
    bool reuse = g->stack.map && !g->stack.user && have >= want &&
                 have - want < gmp_page_size() * 2;
    if (!reuse) {
      if (g->stack.map && !g->stack.user)
        gmp_stack_free(&g->stack);
      int rc = gmp_stack_alloc(&g->stack, want, guard);
      if (rc != 0) {
        memset(&g->stack, 0, sizeof g->stack);
        gfput(p, g);
        return rc;
      }
    }
  }

  if (p->goidcache == p->goidcacheend) {
    p->goidcache = atomic_fetch_add(&gmp_sched.goidgen, GOID_BATCH) + 1;
    p->goidcacheend = p->goidcache + GOID_BATCH;
  }
  g->goid = p->goidcache++;
  /* Unique among live Gs as long as fewer than GMP_TID_END - GMP_TID_BASE
   * (~10^9) ids have been handed out since the oldest live G's. */
  g->tid = GMP_TID_BASE + (int)((g->goid - 2) % (uint64_t)(GMP_TID_END - GMP_TID_BASE));
  g->fn = fn;
  g->arg = arg;
  g->retval = NULL;
  g->is_main = false;
  g->is_g0 = false;
  g->name[0] = 0;
  g->waitreason = 0;
  g->sched_policy = a->sched_policy;
  g->sched_priority = a->sched_priority;
  g->inheritsched = a->inheritsched;
  g->scope = a->scope;
  g->guardsize = guard;
  g->wait.queued = false;
  g->timer.p = NULL;
  g->timer.idx = -1;
  struct g *creator = gmp_curg_raw();
  g->sigmask = creator->sigmask; /* POSIX: a new thread inherits its creator's mask */
  g->sigmask_eff = creator->sigmask_eff;
  /* ... and starts with no signal pending (a G from the free list may
   * have died with some queued: they were its own). Those the process
   * sent, given to it by sysmon as it died, go back to the process. */
  if (atomic_load(&g->sigpend_proc))
    gmp_sig_dead(g);
  atomic_store_explicit(&g->sigpend, 0, memory_order_relaxed);
  atomic_store_explicit(&g->sigpend_proc, 0, memory_order_relaxed);
  atomic_store_explicit(&g->sigwait_set, 0, memory_order_relaxed);
  atomic_store_explicit(&g->urg_eintr, 0, memory_order_relaxed);
  g->last_sig = 0;
  g->cpu_ns = 0;
  g->run_start = 0;
  memset((void *)g->rt_count, 0, sizeof g->rt_count);
  /* Plain (not seq_cst) stores: nobody else sees this G until it is
   * published by gmp_ready_p's release store into a run queue (or the
   * program passes the pthread_t on through its own synchronisation);
   * a seq_cst store is an xchg, a third of the cost of this function. */
  atomic_store_explicit(&g->cancel_pending, 0, memory_order_relaxed);
  g->cancel_disabled = false;
  g->cancel_async = false;
  g->park_cancelpt = false;
  atomic_store_explicit(&g->joinstate, a->detached ? JOIN_DETACHED : JOIN_JOINABLE,
                        memory_order_relaxed);
  gmp_tls_setup(g->tcb, g->tid, g->stack.lo, (size_t)(g->stack.hi - g->stack.lo));
  /* No frame on the new stack yet: its first page is faulted in by the
   * G itself, on whichever P runs it, not here (~2 us a fresh page on a VM,
   * half the cost of creating a G). execute() makes the frame. */
  g->ctx.rsp = NULL;
  g->ctx.fs = g->tcb;
  gmp_fpctl_get(&g->start_mxcsr, &g->start_fcw);
  atomic_fetch_add(&gmp_sched.ngoroutines, 1);
  PSTAT_ADD(p->st.created, 1);
  if (gmp_tev_on)
    gmp_tev_instant(gmp_getm(), TEV_CREATE, p->id, g->goid, 0, (int)gmp_curg_raw()->goid);
  /* Publish the pthread_t before the G can run (another P may steal it at
   * once): the new thread may read the variable its creator passed. */
  if (out)
    *out = (pthread_t)g->tcb;
  gmp_ready_p(p, g);
  return 0;
}

static void resumed(struct g *g);

/* GMP_TRACE: g's M lost its P to sysmon while blocked (m->p_lost_tev),
 * and now runs again, on p (NULL: none yet). Its run slice on the old P
 * ended when the P was taken; a new one starts now on p. The M may even
 * have taken the same P back (a P in P_USER or P_SYSCALL can be claimed
 * by whoever holds it in m->p), meanwhile used by another M. */
static void tev_p_lost(struct m *m, struct g *g, struct p *p)
{
  int64_t lost = atomic_exchange(&m->p_lost_tev, 0);
  if (!lost && p)
    return;
  m->tev_last_p = -1;
  if (g->run_since) {
    int64_t now = gmp_tev_now();
    gmp_tev_span_at(m, TEV_RUN, g->run_p, TEV_END_SYSCALL, g->goid, g->run_since,
                    lost && lost > g->run_since && lost < now ? lost : now);
    g->run_since = p ? now : 0;
    if (p)
      g->run_p = p->id;
  }
}

/* GMP_TRACE: m has just claimed p (CAS from P_USER or P_SYSCALL). If
 * another M was using it (sysmon had handed it on while m was blocked),
 * that M's run slice on p ends now; and if m itself had lost p, its own
 * slice restarts. */
static void tev_p_claimed(struct m *m, struct g *g, struct p *p)
{
  struct m *other = p->m;
  if (other && other != m)
    atomic_store(&other->p_lost_tev, gmp_tev_now());
  if (atomic_load_explicit(&m->p_lost_tev, memory_order_relaxed))
    tev_p_lost(m, g, p);
}

struct p *gmp_enter_runtime(struct g *g)
{
  for (;;) {
    struct m *m = g->m;
    struct p *p = m->p;
    int s = P_USER;
    if (p && atomic_compare_exchange_strong_explicit(&p->status, &s, P_RUNNING,
                                                     memory_order_acquire,
                                                     memory_order_relaxed)) {
      if (__builtin_expect(gmp_tev_on, 0))
        tev_p_claimed(m, g, p);
      p->m = m;
      return p;
    }
    /* sysmon gave our P away while this M was blocked in the kernel. */
    m->p = NULL;
    if (gmp_tev_on)
      tev_p_lost(m, g, NULL);
    gmp_lock_acquire(&gmp_sched.lock);
    p = pidleget();
    gmp_lock_release(&gmp_sched.lock);
    if (p) {
      acquirep(m, p);
      if (gmp_tev_on && !g->run_since) {
        g->run_since = gmp_tev_now(); /* a new slice, on this P */
        g->run_p = p->id;
      }
      return p;
    }
    /* No P anywhere: queue the G and let g0 park the M. The G resumes
     * through execute(), its P in P_USER again; retry. */
    m->req = MREQ_SYSCALL_EXIT;
    gmp_ctx_switch(&g->ctx, &m->g0);
    resumed(g);
  }
}

/* ---- direct switches -----------------------------------------------------
 * A G that parks while its P has another G ready switches straight to it,
 * as Go's runtime cannot (its g0 hop costs little; here every switch also
 * loads the fs base, ~14 ns, and g0 has a TCB of its own). The parked G's
 * request (its unlock function, which may make it runnable again at once
 * on another P) must only run once its stack is left: the G switched to
 * runs it first thing (resumed), on its own stack, with the P still held,
 * then leaves the runtime as execute() would have. What findrunnable
 * would have done first (run due timers, take from the global queue on
 * the 61st tick or for a G back from a system call) sends the park
 * through g0 instead. */
static void finish_switch_out(struct m *m, struct g *g);
static void exec_prepare(struct m *m, struct p *p, struct g *g);

/* g's run slice ends now, for request req (GMP_TRACE); the next slice on
 * this M may start where it ends (tev_last). */
static void tev_run_end(struct m *m, struct g *g, int req)
{
  int end = req == MREQ_PARK    ? g->waitreason
            : req == MREQ_YIELD ? (g->preempted ? TEV_END_PREEMPT : TEV_END_YIELD)
            : req == MREQ_EXIT  ? TEV_END_EXIT
                                : TEV_END_SYSCALL;
  m->tev_last = gmp_tev_span(m, TEV_RUN, g->run_p, end, g->goid, g->run_since);
  m->tev_last_p = g->run_p;
  g->run_since = 0;
}

/* The first frame of g, which has never run, built on the switching
 * context's free stack BOOT_FRAME_GAP below sp (see gmp_ctx_make_boot). */
static void first_frame(struct g *g, uintptr_t sp)
{
  gmp_ctx_make_boot(&g->ctx, (uint64_t *)((sp - BOOT_FRAME_GAP) & ~(uintptr_t)15), g->stack.hi,
                    gstart, g, g->start_mxcsr, g->start_fcw);
}

static struct g *direct_next(struct m *m)
{
  struct p *p = m->p;
  if (m->nextg || LD(p->slice_end))
    return NULL;
  int64_t t0 = LD(p->timer0);
  if (t0 && t0 <= gmp_nanotime())
    return NULL;
  if ((p->schedtick % 61 == 0 || ((p->schedtick & 1) && LD(gmp_sched.nurgent) > 0)) &&
      LD(gmp_sched.runqsize) > 0)
    return NULL;
  return runq_get(&p->runq, &m->inherit);
}

/* Would g0 find nothing to run but the yielding G itself? */
static bool yield_noop(struct m *m)
{
  struct p *p = m->p;
  if (m->nextg || LD(p->slice_end) || LD(gmp_sched.runqsize) || !runq_empty(&p->runq))
    return false;
  int64_t t0 = LD(p->timer0);
  return !t0 || t0 > gmp_nanotime();
}

/* ---- per-thread CPU-time clocks ----------------------------------------
 * The kernel's per-thread clocks measure an M, which runs many Gs. A G's
 * CPU time is the time it runs on one: counted from each switch in (or
 * return from a blocking system call, where it sleeps) to the switch out
 * (or the system call), once the program has asked for such a clock
 * (pthread_getcpuclockid, CLOCK_THREAD_CPUTIME_ID in a G): two clock
 * reads a switch are not paid by programs that never look. Time an M
 * spends descheduled by the kernel while running a G is counted; time in
 * blocking system calls is not (CPU or not). */
bool gmp_cpuclock_on;

static inline void cpu_stop(struct g *g)
{
  if (__builtin_expect(gmp_cpuclock_on, 0) && g->run_start) {
    g->cpu_ns += gmp_nanotime() - g->run_start;
    g->run_start = 0;
  }
}

static inline void cpu_start(struct g *g)
{
  if (__builtin_expect(gmp_cpuclock_on, 0))
    g->run_start = gmp_nanotime();
}

void gmp_cpuclock_enable(void)
{
  if (__atomic_load_n(&gmp_cpuclock_on, __ATOMIC_RELAXED))
    return;
  __atomic_store_n(&gmp_cpuclock_on, true, __ATOMIC_RELAXED);
  struct g *g = gmp_curg();
  if (g && !g->run_start)
    g->run_start = gmp_nanotime(); /* the caller runs now */
}

int64_t gmp_g_cputime(struct g *g)
{
  int64_t t = __atomic_load_n(&g->cpu_ns, __ATOMIC_RELAXED);
  int64_t s = __atomic_load_n(&g->run_start, __ATOMIC_RELAXED);
  if (s) {
    int64_t d = gmp_nanotime() - s;
    if (d > 0)
      t += d;
  }
  return t;
}

/* A G back on an M after a switch out of mcall_held or gmp_enter_runtime:
 * if it was switched to directly, finish the switcher's request. */
static void resumed(struct g *g)
{
  struct m *m = g->m;
  cpu_start(g);
  struct g *prev = m->prevg;
  if (prev) {
    m->prevg = NULL;
    /* What runs here is g0's work, done with the P held (P_RUNNING):
     * gmp_ready, called by it (a joiner woken by gdestroy, an unlock
     * function waking a waiter), must use that P, not enter the
     * runtime again as a G would. */
    m->finishing = true;
    finish_switch_out(m, prev);
    m->finishing = false;
    gmp_leave_runtime(m->p);
  }
}

/* Switch to g0 with a request (Go's mcall); the P is held (P_RUNNING).
 * Returns when the G resumes. */
static void mcall_held(struct g *g, int req)
{
  struct m *m = g->m;
  cpu_stop(g);
  m->req = req;
  bool yield = req == MREQ_YIELD && !g->preempted;
  if (req == MREQ_PARK || yield || (req == MREQ_EXIT && !g->is_main)) {
    struct g *next = NULL;
    /* An exiting G's joiner, if one waits, is the G to run next: it is
     * claimed here (no one else can ready it) and finishes our exit
     * (gdestroy, which marks us exited) before its join looks again.
     * Readying it from here instead would let it free our stack while
     * we still run on it. */
    if (req == MREQ_EXIT && !m->nextg &&
        atomic_load_explicit(&g->joinstate, memory_order_relaxed) == JOIN_JOINABLE &&
        (next = gmp_unpark_take(&g->joinstate)) != NULL) {
      mark_runnable(next);
      if (gmp_tev_on)
        gmp_tev_unpark(m, m->p->id, next->goid);
    }
    if (!next)
      next = direct_next(m);
    if (!next && yield && yield_noop(m)) {
      /* A yield with nothing else to run (nothing queued here or
       * globally, no timer due here): go on, as sched_yield does
       * natively. */
      m->req = MREQ_NONE;
      gmp_leave_runtime(m->p);
      return;
    }
    if (next) {
      /* Not if its signal mask must be applied: a signal it unblocks
       * is delivered on the way out of rt_sigprocmask, and must find this
       * OS thread between two threads (on g0), not still in this one. */
      uintptr_t sp;
      __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
      bool fresh = !next->ctx.rsp;
      /* A G that never ran starts from a frame built below this G's
       * stack pointer (as execute() does on g0's), if there is room
       * there for it and a signal frame: this G's stack stays ours until
       * the new G has finished our park. */
      if (next->sigmask_eff == m->cur_mask &&
          (!fresh || g->is_main || sp - (uintptr_t)g->stack.lo > BOOT_FRAME_ROOM)) {
        /* Straight to the next G: its first act when it resumes is to
         * finish our park (resumed, or gstart for a new G), as g0 would
         * have. */
        m->prevg = g;
        if (gmp_tev_on && g->run_since) {
          /* Our run span ends now, and the next G's begins at its end
           * (finish_switch_out sees run_since 0 and records nothing). */
          tev_run_end(m, g, req);
          m->tev_quick = true;
        }
        exec_prepare(m, m->p, next);
        if (fresh)
          first_frame(next, sp);
        gmp_ctx_switch(&g->ctx, &next->ctx);
        resumed(g);
        return;
      }
      /* Else through g0 (execute() builds a new G's frame there). */
      m->nextg = next;
    }
  }
  gmp_ctx_switch(&g->ctx, &m->g0);
  resumed(g);
}

static void mcall(struct g *g, int req)
{
  gmp_enter_runtime(g);
  mcall_held(g, req);
}

void gmp_park_held(bool (*unlockf)(struct g *, void *), void *arg, int reason)
{
  struct g *g = gmp_curg_raw();
  struct m *m = g->m;
  g->waitreason = reason;
  g->wait_since = atomic_load_explicit(&gmp_coarse_now, memory_order_relaxed);
  PSTAT_ADD(m->p->st.parks[reason < WAIT__COUNT ? reason : WAIT_OTHER], 1);
  m->unlockf = unlockf;
  m->unlockarg = arg;
  atomic_store_explicit(&g->status, G_WAITING, memory_order_relaxed);
  mcall_held(g, MREQ_PARK);
}

void gmp_park(bool (*unlockf)(struct g *, void *), void *arg, int reason)
{
  gmp_enter_runtime(gmp_curg_raw());
  gmp_park_held(unlockf, arg, reason);
}

void gmp_yield(void)
{
  struct g *g = gmp_curg_raw();
  if (!g || g->is_g0)
    return;
  mcall(g, MREQ_YIELD);
  gmp_sig_check(g);
}

static void (*exit_hook)(void);

void gmp_set_exit_hook(void (*hook)(void)) { exit_hook = hook; }

_Noreturn void gmp_goexit(void *retval)
{
  struct g *g = gmp_curg_raw();
  g->retval = retval;
  gmp_tsd_run_destructors(g);
  if (exit_hook)
    exit_hook();
  gmp_tls_leave();
  /* The last thread to end ends the process with status 0, as NPTL does,
   * and from a thread context, so atexit handlers run in one. */
  if (atomic_fetch_sub(&gmp_sched.ngoroutines, 1) == 1)
    exit(0);
  /* From here on the thread accepts no signal, as a dying native thread
   * accepts none: a process-directed one that lands on this OS thread
   * after the switch out (gmp_sig_on_g0: until gdestroy the G is still
   * RUNNING, and the M still has its mask), or that sysmon hands out,
   * must go to a thread that will run its handler, not be queued in one
   * that vanishes with it (a kill was lost so under load). Only the
   * recorded mask: a system call on every exit would cost more than the
   * rest of it, and a signal the kernel still delivers to this OS thread
   * before the switch runs its handler here, in a thread still alive. */
  gmp_sig_check(g);
  g->sigmask = gmp_idle_sigmask();
  __atomic_signal_fence(__ATOMIC_SEQ_CST); /* before the switch, for the handler on g0 */
  mcall(g, MREQ_EXIT);
  gmp_fatal("a dead G was resumed");
}

/* On g0: the G has switched out for good. */
static void gdestroy(struct m *m, struct g *g)
{
  /* seq_cst: a full barrier between this store and the load of
   * sigpend_proc below, against sysmon's rescue, which marks sigpend_proc
   * and then loads the status: one of the two sees the other (without it
   * the load could pass the store, both miss, and a signal is lost). */
  atomic_store_explicit(&g->status, G_DEAD, memory_order_seq_cst);
  /* Signals the process sent that were given to this thread and that it
   * did not take go back (gmp_sig_dead). One sysmon gives it between its
   * look at our mask (still accepting) and this load is handed back by
   * sysmon itself, which looks at the status after queueing. */
  if (__builtin_expect(atomic_load_explicit(&g->sigpend_proc, memory_order_relaxed) != 0, 0))
    gmp_sig_dead(g);
  PSTAT_ADD(m->p->st.exited, 1);
  int js = JOIN_JOINABLE;
  if (atomic_compare_exchange_strong(&g->joinstate, &js, JOIN_EXITED)) {
    gmp_unpark_all(&g->joinstate);
    return;
  }
  /* detached: nobody will join it */
  if (!g->is_main)
    gfput(m->p, g);
}

/* ---- execute -------------------------------------------------------------- */

/* ---- system calls ---------------------------------------------------------- */

void gmp_entersyscall(void)
{
  gmp_entersyscall_as(NULL);
}

void gmp_entersyscall_as(const char *name)
{
  struct g *g = gmp_curg_raw();
  g->sysname = name;
  cpu_stop(g);
  atomic_store_explicit(&g->insyscall, true, memory_order_relaxed);
  struct p *p = g->m->p;
  int s = P_USER;
  if (!p || !atomic_compare_exchange_strong_explicit(&p->status, &s, P_SYSCALL,
                                                     memory_order_release,
                                                     memory_order_relaxed)) {
    p = gmp_enter_runtime(g); /* our P was taken meanwhile: get one */
    atomic_store_explicit(&p->status, P_SYSCALL, memory_order_release);
  }
  if (gmp_tev_on)
    g->sys_since = gmp_tev_now();
  /* Only this M writes it while the P is in P_SYSCALL; sysmon reads. */
  atomic_store_explicit(&p->syscalltick,
                        atomic_load_explicit(&p->syscalltick, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* On g0: the G came back from a system call and its P was taken. Run it
 * on an idle P if there is one; else queue it globally and park the M. */
static void exitsyscall_g0(struct m *m, struct g *g)
{
  mark_runnable(g);
  gmp_lock_acquire(&gmp_sched.lock);
  struct p *p = pidleget();
  if (p) {
    gmp_lock_release(&gmp_sched.lock);
    acquirep(m, p);
    gmp_runqput(p, g, true);
    return;
  }
  globrunqputhead(g);
  gmp_lock_release(&gmp_sched.lock);
  stopm(m);
}

void gmp_exitsyscall(void)
{
  struct g *g = gmp_curg_raw();
  struct m *m = g->m;
  struct p *p = m->p;
  atomic_store_explicit(&g->insyscall, false, memory_order_relaxed);
  if (gmp_tev_on && g->sys_since) {
    gmp_tev_span(m, TEV_SYSCALL, 0, 0, g->goid, g->sys_since);
    g->sys_since = 0;
  }
  int s = P_SYSCALL;
  /* Fast path: nobody took the P. A P in P_SYSCALL is never used by its
   * M, so even if this P was retaken and is now in another M's system
   * call (ABA), taking it is safe: that M will find it gone and go slow. */
  if (atomic_compare_exchange_strong_explicit(&p->status, &s, P_USER,
                                              memory_order_acquire,
                                              memory_order_relaxed)) {
    if (__builtin_expect(gmp_tev_on, 0))
      tev_p_claimed(m, g, p);
    p->m = m;
    /* Leaving a system call with the P kept is a safe point: a G that
     * makes short calls in a loop spends its time where the preemption
     * signal cannot switch it (preempt.c). */
    cpu_start(g);
    if (__builtin_expect(atomic_load_explicit(&g->preempt_coop, memory_order_relaxed), 0))
      gmp_preempt_point();
    return;
  }
  m->p = NULL;
  gmp_leave_runtime(gmp_enter_runtime(g));
  if (!g->run_start)
    cpu_start(g); /* got a P without a switch */
}

/* ---- sysmon ------------------------------------------------------------------
 * Its own OS thread, outside the P accounting (Go's sysmon). It sleeps
 * 20 us while it finds work to do, doubling to 10 ms after 50 idle
 * rounds, and retakes Ps from Ms blocked in system calls. */

struct sysmon_p {
  uint64_t syscalltick;
  int64_t syscallwhen;
  uint64_t schedtick;  /* P_USER: the schedtick last seen */
  int64_t schedwhen;   /* when it was first seen */
  int64_t cpu;         /* the M's CPU time then */
};

/* CPU time of an OS thread of this process: its thread CPU clock
 * (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) in the kernel), one cheap
 * syscall (0.44 us measured here), and no /proc parsing. */
static int64_t thread_cpu_ns(int tid)
{
  struct timespec ts;
  clockid_t clk = (clockid_t)((~(unsigned)tid << 3) | 6);
  if (gmp_sys2(SYS_clock_gettime, clk, &ts) != 0)
    return -1;
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Is there anything the P could run if it had an M? */
/* Is an OS thread of this process runnable (running, or waiting for a
 * CPU), per the kernel's /proc/self/task/TID/stat? Asked only when its
 * CPU time says it may be blocked: a thread that got little CPU because
 * the machine is busy is still 'R', and must not lose its P. */
static bool thread_runnable(int tid)
{
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  long n = gmp_read_file(path, buf, sizeof buf);
  if (n <= 0)
    return false; /* cannot tell: judge by CPU time alone */
  /* "tid (comm) S ...": comm may hold spaces and parentheses; the state
   * follows the last ')'. */
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] == 'R';
}

static bool p_has_work(struct p *p)
{
  return !runq_empty(&p->runq) || LD(gmp_sched.runqsize) > 0 ||
         (LD(p->timer0) && LD(p->timer0) <= gmp_nanotime() + 1000000);
}

static void handoffp(struct p *p)
{
  /* Work for it: start an M on it now. */
  if (!runq_empty(&p->runq) || LD(gmp_sched.runqsize) > 0 || LD(p->timer0)) {
    startm(p, false);
    return;
  }
  /* No work, but nobody looks for work either: let a spinning M take it. */
  int32_t zero = 0;
  if (LD(gmp_sched.nmspinning) + LD(gmp_sched.npidle) == 0 &&
      atomic_compare_exchange_strong(&gmp_sched.nmspinning, &zero, 1)) {
    startm(p, true);
    return;
  }
  gmp_lock_acquire(&gmp_sched.lock);
  if (LD(gmp_sched.runqsize) > 0) {
    gmp_lock_release(&gmp_sched.lock);
    startm(p, false);
    return;
  }
  pidleput(p);
  gmp_lock_release(&gmp_sched.lock);
}

static void (*cancel_kick)(int ostid);

void gmp_set_cancel_kick(void (*kick)(int ostid)) { cancel_kick = kick; }

static int retake(struct sysmon_p *pd, int64_t now, bool *contended)
{
  int n = 0;
  for (int i = 0; i < gmp_nprocs; i++) {
    struct p *p = &gmp_allp[i];
    int st = atomic_load(&p->status);
    if (st == P_USER) {
      /* An M running user code that has not been through the scheduler
       * for a while and used almost no CPU meanwhile is blocked in the
       * kernel outside any wrapper (stdio's internal write, a libc lock,
       * a raw futex). If work waits for its P, hand the P over. */
      uint64_t tick = p->schedtick;
      struct m *pm = p->m;
      /* A G with an asynchronous cancel pending acts on it in the
       * SIGURG handler: make sure one arrives even if the canceller
       * found it not running (preempted, then resumed). */
      struct g *cg = pm ? pm->curg : NULL;
      if (cancel_kick && cg && cg->cancel_async && !cg->cancel_disabled &&
          atomic_load(&cg->cancel_pending))
        cancel_kick(pm->ostid);
      bool work = pm && p_has_work(p);
      if (work)
        *contended = true;
      if (pd[i].schedtick != tick || !pm) {
        pd[i].schedtick = tick;
        pd[i].schedwhen = now;
        pd[i].cpu = pm ? thread_cpu_ns(pm->ostid) : -1;
        continue;
      }
      if (now - pd[i].schedwhen < 1000000 || !work)
        continue;
      int64_t cpu = thread_cpu_ns(pm->ostid);
      if (cpu < 0 || pd[i].cpu < 0 || cpu - pd[i].cpu > (now - pd[i].schedwhen) / 8 ||
          thread_runnable(pm->ostid)) {
        /* On CPU, not blocked: a G hogging its P. After 10 ms, ask it to
         * yield (it is re-asked every 10 ms while it keeps the P). */
        if (now - pd[i].schedwhen >= 10000000) {
          gmp_preempt_request(p, pm, tick);
          pd[i].schedwhen = now;
          pd[i].cpu = cpu;
          n++;
        }
        continue;
      }
      int64_t lt = gmp_tev_on ? gmp_tev_now() : 0;
      if (lt)
        atomic_store(&pm->p_lost_tev, lt);
      int s = P_USER;
      if (!atomic_compare_exchange_strong(&p->status, &s, P_IDLE)) {
        if (lt)
          atomic_compare_exchange_strong(&pm->p_lost_tev, &lt, 0);
      } else {
        atomic_fetch_add(&gmp_sched.n_handoff, 1);
        atomic_fetch_add(&gmp_sched.n_handoff_user, 1);
        pd[i].schedtick = ~(uint64_t)0;
        handoffp(p);
        n++;
      }
      continue;
    }
    if (st != P_SYSCALL)
      continue;
    /* A cancelled G blocked in a system call is interrupted again every
     * sysmon round: the canceller's signal may have landed just before
     * the call started. */
    struct m *sm = p->m;
    struct g *sg = sm ? sm->curg : NULL;
    if (cancel_kick && sg && !sg->cancel_disabled && atomic_load(&sg->cancel_pending))
      cancel_kick(sm->ostid);
    uint64_t t = atomic_load(&p->syscalltick);
    if (pd[i].syscalltick != t) {
      pd[i].syscalltick = t;
      pd[i].syscallwhen = now;
      continue;
    }
    /* In the same system call for a whole sysmon tick. Leave it if
     * nothing waits for it and another M could pick up new work, for up
     * to 10 ms (Go's rule: a hand-off costs an M wake-up). */
    if (runq_empty(&p->runq) && LD(p->timer0) == 0 &&
        LD(gmp_sched.nmspinning) + LD(gmp_sched.npidle) > 0 &&
        pd[i].syscallwhen + 10000000 > now)
      continue;
    int64_t lt = gmp_tev_on && sm ? gmp_tev_now() : 0;
    if (lt)
      atomic_store(&sm->p_lost_tev, lt);
    int s = P_SYSCALL;
    if (!atomic_compare_exchange_strong(&p->status, &s, P_IDLE)) {
      if (lt)
        atomic_compare_exchange_strong(&sm->p_lost_tev, &lt, 0);
    } else {
      atomic_fetch_add(&gmp_sched.n_handoff, 1);
      handoffp(p);
      n++;
    }
  }
  return n;
}

static void *sysmon_main(void *arg)
{
  struct sysmon_p *pd = calloc((size_t)gmp_nprocs, sizeof *pd);
  if (!pd)
    gmp_fatal("out of memory starting sysmon");
  /* sysmon is not an M: its own TCB slot stays 0. It never takes a
   * signal meant for the program (signal.c, rule 1). */
  uint64_t all = gmp_sysmon_sigmask();
  gmp_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
  int64_t delay = 20000;
  int idle = 0;
  int64_t start = gmp_nanotime(), last_trace = start, last_ctl = start;
  int64_t trace_ns = (int64_t)cfg.schedtrace_ms * 1000000;
  for (;;) {
    struct timespec ts = {0, delay};
    gmp_sys2(SYS_nanosleep, &ts, NULL);
    int64_t now = gmp_nanotime();
    atomic_store_explicit(&gmp_coarse_now, now, memory_order_relaxed);
    if (atomic_load_explicit(&gmp_dump_requested, memory_order_relaxed)) {
      atomic_store(&gmp_dump_requested, 0);
      gmp_goroutines();
    }
    if (trace_ns && now - last_trace >= trace_ns) {
      gmp_schedtrace((now - start) / 1000000, cfg.scheddetail);
      last_trace = now;
    }
    if (now - last_ctl >= 100000000) {
      gmp_ctl_poll();
      last_ctl = now;
    }
    /* Nobody polled the network for 10 ms (every M busy): do it here,
     * so that Gs waiting for fds are not starved by CPU-bound ones. */
    int64_t lp = LD(gmp_sched.lastpoll);
    if (LD(gmp_netpoll_active) && lp != 0 && now - lp > 10000000 &&
        atomic_compare_exchange_strong(&gmp_sched.lastpoll, &lp, now)) {
      struct g *list = NULL;
      int n = gmp_netpoll(0, &list);
      if (n > 0) {
        atomic_fetch_add_explicit(&gmp_sched.n_pollwake, 1, memory_order_relaxed);
        /* Not a reason to look again in 20 us (Go's sysmon does not
         * either): under a steady load this poll is how readied Gs get
         * in every 10 ms, and treating it as news kept sysmon waking
         * every few tens of us, ~6,000 wake-ups/s serving apache. */
        inject(NULL, list, n);
      }
    }
    gmp_sig_rescue();
    bool contended = false;
    if (retake(pd, now, &contended) > 0)
      idle = 0;
    else
      idle++;
    if (idle <= 50)
      delay = 20000;
    else if (delay < 10000000)
      delay *= 2;
    if (delay > 10000000)
      delay = 10000000;
    /* Threads wait for a P that a running one holds: look every 1 ms, so
     * that a slice ends 10-11 ms after it began, not 10-20 ms (a run is
     * timed from when sysmon first saw it). Costs a wake-up per ms only
     * while the Ps are oversubscribed. */
    if (contended && delay > 1000000)
      delay = 1000000;
    if (trace_ns && delay > trace_ns / 2)
      delay = trace_ns / 2;
  }
  return NULL;
}

/* On g0, right after a G switched out: finish its request. */
static void finish_switch_out(struct m *m, struct g *g);

static void post_switch(struct m *m)
{
  struct g *g = m->curg;
  m->curg = NULL;
  finish_switch_out(m, g);
}

/* The request of g, which just left its stack (m->req): run on g0, or,
 * after a direct switch, by the G that g switched to. */
static void finish_switch_out(struct m *m, struct g *g)
{
  if (!gmp_stack_ok(&g->stack))
    gmp_fatal("stack overflow in thread %lu (G%lu): the stack canary at %p was "
              "overwritten (this stack has no guard page: vm.max_map_count budget "
              "exhausted)", (unsigned long)g->tcb, (unsigned long)g->goid,
              (void *)g->stack.lo);
  int req = m->req;
  m->req = MREQ_NONE;
  if (gmp_tev_on && g->run_since) {
    tev_run_end(m, g, req);
  } else {
    m->tev_last_p = -1; /* no slice ended here: the next one reads the clock */
  }
  bool preempted = g->preempted;
  g->preempted = false;
  switch (req) {
  case MREQ_PARK: {
    bool (*f)(struct g *, void *) = m->unlockf;
    m->unlockf = NULL;
    if (f && !f(g, m->unlockarg)) {
      mark_runnable(g);
      gmp_runqput(m->p, g, true);
    }
    break;
  }
  case MREQ_YIELD:
    mark_runnable(g);
    if (preempted) {
      /* The slice ended as sysmon asked: what is in runnext (a timer's
       * sleeper, say) is not part of it and keeps its place. */
      atomic_store_explicit(&m->p->slice_end, 0, memory_order_relaxed);
      /* A preempted G goes behind everything already waiting, the global
       * queue included (Go's gopreempt_m): on the local queue it would
       * take turns with the other hogs there, and a thread waiting on
       * the global queue (back from a system call without a P) would get
       * one turn in 61, a second per turn at 10 ms slices. At most one
       * per P per 10 ms: the lock costs nothing. */
      gmp_lock_acquire(&gmp_sched.lock);
      globrunqput(g);
      gmp_lock_release(&gmp_sched.lock);
    } else {
      gmp_runqput(m->p, g, false);
    }
    break;
  case MREQ_EXIT:
    gdestroy(m, g);
    break;
  case MREQ_SYSCALL_EXIT:
    exitsyscall_g0(m, g);
    break;
  default:
    gmp_fatal("G%lu switched to g0 without a request", (unsigned long)g->goid);
  }
}

/* rt_sigprocmask of the calling OS thread, raw (no wrapper, no errno). */
static void apply_mask(struct m *m, uint64_t mask)
{
  gmp_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, 8);
  m->cur_mask = mask;
}

#define URG_BIT (1ULL << (SIGURG - 1))

uint64_t gmp_sigmask_get(void)
{
  return gmp_curg_raw()->sigmask;
}

void gmp_sig_blocked_on_m(void)
{
  struct g *g0 = gmp_curg_raw();
  if (g0 && g0->is_g0)
    g0->m->cur_mask = ~0ULL; /* no G's mask: the next switch-in applies its own */
}

void gmp_sigmask_set(uint64_t mask)
{
  struct g *g = gmp_curg_raw();
  g->sigmask = mask;
  g->sigmask_eff = mask & ~URG_BIT;
  struct m *m = g->m;
  /* No scheduling point between reading m and the syscall: the G stays
   * on this OS thread meanwhile. */
  if (g->sigmask_eff != m->cur_mask)
    apply_mask(m, g->sigmask_eff);
  gmp_sig_check(g); /* signals sent while it was blocked */
}

int gmp_sigsuspend_prepare(uint64_t mask)
{
  struct g *g = gmp_curg_raw();
  g->sigmask = mask;
  g->sigmask_eff = mask & ~URG_BIT;
  gmp_sigwait_mask(true);
  bool restart;
  return gmp_sig_flush(g, &restart);
}

/* The program's handler runs with the kernel's handler mask (the
 * thread's, plus sa_mask and the signal). While it runs that is the G's
 * mask, recorded as such: a handler that yields or waits switches this
 * OS thread to other Gs, which must get their own masks back (with the
 * handler's left in place, the next G ran with the signal blocked, and
 * a signal re-sent for it went to whichever G unblocked it first), and
 * resumes, maybe on another OS thread, with the handler's. */
void gmp_handler_enter(struct gmp_handler_save *s)
{
  struct g *g = gmp_curg_raw();
  uint64_t cur = 0;
  gmp_sys4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &cur, 8);
  s->sigmask = g->sigmask;
  s->sigmask_eff = g->sigmask_eff;
  g->sigmask |= cur;
  g->sigmask_eff = cur;
  g->m->cur_mask = cur;
}

/* On the OS thread the G ends its handler on, just before sigreturn
 * installs back (the frame's mask, which the handler may have changed):
 * that is this M's mask, and the G's, from then on. Signals queued for
 * the G that back unblocks are re-sent to this OS thread: delivered as
 * soon as the sigreturn unblocks them, as natively. */
void gmp_handler_leave(const struct gmp_handler_save *s, uint64_t back)
{
  struct g *g = gmp_curg_raw();
  if ((back & ~URG_BIT) == s->sigmask_eff) {
    g->sigmask = s->sigmask;
    g->sigmask_eff = s->sigmask_eff;
  } else {
    g->sigmask = (back & ~URG_BIT) | (s->sigmask & URG_BIT);
    g->sigmask_eff = back & ~URG_BIT;
  }
  g->m->cur_mask = back;
  gmp_sig_check(g);
}

void gmp_sigwait_mask(bool urg_blocked)
{
  struct g *g = gmp_curg_raw();
  struct m *m = g->m;
  uint64_t want = g->sigmask_eff | (urg_blocked ? URG_BIT : 0);
  /* cur_mask records it: the next G switched in on this M gets its own
   * mask back even if this G leaves the M with SIGURG still blocked. */
  if (m->cur_mask != want)
    apply_mask(m, want);
}

/* Everything execute() does to make g m's current G, short of leaving
 * the runtime and switching to it. */
static void exec_prepare(struct m *m, struct p *p, struct g *g)
{
  /* A G taken from runnext inherits the time slice of the G that readied
   * it (Go's inheritTime): schedtick stays, so a pair that keeps readying
   * each other through runnext is one slice for sysmon, preempted after
   * 10 ms like a single G, and cannot starve the rest of the queue. */
  if (!m->inherit) {
    p->schedtick++;
    /* a new slice: a request to end the last one is moot */
    if (__builtin_expect(LD(p->slice_end), 0))
      atomic_store_explicit(&p->slice_end, 0, memory_order_relaxed);
  }
  m->inherit = false;
  PSTAT_ADD(p->st.switches, 1);
  if (g->runnable_since) {
    int64_t d = gmp_nanotime() - g->runnable_since;
    int b = d < (2 << LAT_SHIFT) ? 0 : 63 - __builtin_clzll((uint64_t)d) - LAT_SHIFT;
    PSTAT_ADD(p->st.lat[b < LAT_BUCKETS ? b : LAT_BUCKETS - 1], 1);
    g->runnable_since = 0;
  }
  g->m = m;
  m->curg = g;
  atomic_store_explicit(&g->preempt_coop, false, memory_order_relaxed);
  if (gmp_tev_on) {
    g->run_since = m->tev_quick && m->tev_last ? m->tev_last : gmp_tev_now();
    g->run_p = p->id;
  }
  m->tev_quick = false;
  /* A full barrier (xchg) between publishing RUNNING and reading
   * gmp_dump_g; the dumper stores gmp_dump_g, then reads the status: one
   * of the two sees the other, so a G is never resumed while its stack
   * is being walked (dump.c). */
  atomic_exchange(&g->status, G_RUNNING);
  if (__builtin_expect(atomic_load_explicit(&gmp_dump_g, memory_order_relaxed) == g, 0))
    gmp_dump_wait(g);
  if (g->sigmask_eff != m->cur_mask)
    apply_mask(m, g->sigmask_eff);
}

static void execute(struct m *m, struct g *g)
{
  struct p *p = m->p;
  exec_prepare(m, p, g);
  gmp_leave_runtime(p);
  if (__builtin_expect(!g->ctx.rsp, 0)) {
    /* A G's first run. Its first frame goes on this g0 stack, well below
     * the frame the switch is about to push, not in struct g: between the
     * switch loading rsp and gmp_ctx_entry_boot moving to the G's stack a
     * signal may be delivered, and its frame must land on free stack. */
    uintptr_t sp;
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
    first_frame(g, sp);
  }
  gmp_ctx_switch(&m->g0, &g->ctx);
  post_switch(m);
}

static void schedule(struct m *m) __attribute__((noreturn));
static void schedule(struct m *m)
{
  for (;;) {
    struct g *g = m->nextg;
    if (g)
      m->nextg = NULL;
    else
      g = findrunnable(m);
    execute(m, g);
  }
}

static void mstart_loop(struct m *m)
{
  schedule(m);
}

/* M0's g0 is first entered when the main G first switches out. */
static void m0_g0_main(void *arg)
{
  struct m *m = arg;
  post_switch(m);
  schedule(m);
}

/* ---- Ms ------------------------------------------------------------------ */

static struct g *make_g0(struct m *m)
{
  struct g *g0 = calloc(1, sizeof *g0);
  if (!g0)
    return NULL;
  g0->is_g0 = true;
  g0->m = m;
  g0->goid = 0;
  return g0;
}

/* glibc knows the main thread by its original TCB, which the main G
 * took; any other M by the TCB pthread_create gave it (its g0's). */
void *gmp_m_glibc_tcb(struct m *m)
{
  if (m->listed_tcb)
    return m->listed_tcb;
  return m == &m0 ? g_main.tcb : m->g0.fs;
}

/* Run a glibc call as the OS thread rather than as the G: fs set to the
 * M's g0 TCB, which only this OS thread ever uses. glibc's set*id
 * broadcast skips the caller's THREAD_SELF in its list of threads; with
 * the main G's TCB there (glibc lists M0 by it) M0 would be skipped when
 * the main G runs on another M, and keep the old credentials. No
 * scheduling point may come before gmp_m_fs_leave: a SIGURG finds a g0
 * in the slot and leaves the thread alone. Returns the fs to restore. */
void *gmp_m_fs_enter(void)
{
  struct g *g = gmp_curg();
  if (!g || !g->m)
    return NULL;
  /* In a fork child, glibc lists only the TCB that forked: if that is
   * this G's own, the call is already made as the listed thread. */
  void *own = g->m->listed_tcb == g->tcb ? g->tcb : g->m->g0.fs, *cur = gmp_thread_self();
  if (own == cur)
    return NULL;
  gmp_sys2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, (long)own);
  return cur;
}

void gmp_m_fs_leave(void *prev)
{
  if (prev)
    gmp_sys2(SYS_arch_prctl, 0x1002, (long)prev);
}

static void *mstart_thread(void *arg)
{
  struct m *m = arg;
  m->ostid = gmp_gettid();
  m->g0.fs = gmp_thread_self();
  struct g *g0 = m->g0g ? m->g0g : make_g0(m);
  if (!g0)
    gmp_fatal("out of memory starting M%d", m->id);
  m->g0g = g0;
  g0->tcb = m->g0.fs;
  /* The g0 runs on this thread's own stack from here on; stopm comes
   * back here (longjmp) when the M has been idle too long, and the
   * thread ends by returning. */
  if (setjmp(m->end_jb)) {
    gmp_preempt_thread_fini();
    gmp_tcb_slot_set(m->g0.fs, NULL);
    m->ostid = 0;
    return NULL;
  }
  m->can_end = true;
  gmp_tcb_slot_set(m->g0.fs, (void *)((uintptr_t)m->g0g | GMP_SLOT_G0));
  pthread_sigmask(SIG_SETMASK, &m_sigmask, NULL);
  memcpy(&m->cur_mask, &m_sigmask, 8);
  gmp_preempt_thread_init();
  if (m->nextp) {
    acquirep(m, m->nextp);
    m->nextp = NULL;
  } else {
    stopm(m);
  }
  mstart_loop(m);
}

static int newm(struct p *p, bool spinning)
{
  /* Ms pile up only while threads block in system calls. Past the limit,
   * say so once and let the P wait for an M to come back, instead of
   * letting the process run into pid_max or memory limits. */
  static _Atomic int warned;
  if (cfg.maxthreads > 0 && gmp_sched.mcount - gmp_sched.nmdead >= cfg.maxthreads) {
    if (!atomic_exchange(&warned, 1))
      gmp_printf_err("libgmp: reached the limit of %d OS threads (GMP_DEBUG=maxthreads=%d): "
                     "threads blocked in system calls hold them; the others wait until one "
                     "returns (raise the limit if the program stalls)\n",
                     cfg.maxthreads, cfg.maxthreads);
    return EAGAIN;
  }
  gmp_lock_acquire(&gmp_sched.lock);
  struct m *m = gmp_sched.mdead;
  if (m) {
    /* An ended M's struct, with its id, its place on allm, its g0 and
     * its trace cursor (the trace's buffers are per M id); the rest as
     * new. */
    gmp_sched.mdead = m->schedlink;
    gmp_sched.nmdead--;
    gmp_lock_release(&gmp_sched.lock);
    struct m keep = *m;
    memset(m, 0, sizeof *m);
    m->id = keep.id;
    m->alllink = keep.alllink;
    m->g0g = keep.g0g;
    m->n_preempt = keep.n_preempt;
    m->tev_pos = keep.tev_pos;
    m->tev_end = keep.tev_end;
    m->tev_base = keep.tev_base;
  } else {
    gmp_lock_release(&gmp_sched.lock);
    m = calloc(1, sizeof *m);
    if (!m)
      return ENOMEM;
    gmp_lock_acquire(&gmp_sched.lock);
    m->id = gmp_sched.mcount++;
    m->alllink = gmp_sched.allm;
    gmp_sched.allm = m;
    gmp_lock_release(&gmp_sched.lock);
  }
  atomic_fetch_add(&gmp_sched.n_mstarted, 1);
  m->rand = 0x9E3779B97F4A7C15ULL * (uint64_t)(m->id + 1);
  m->nextp = p;
  m->spinning = spinning;
  pthread_attr_t a;
  pthread_attr_init(&a);
  /* g0 runs only the scheduler: it needs little stack. */
  pthread_attr_setstacksize(&a, 256 * 1024);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int rc = native.create(&th, &a, mstart_thread, m);
  pthread_attr_destroy(&a);
  if (rc != 0) {
    gmp_printf_err("libgmp: cannot start an OS thread (M%d): %s\n", m->id, strerror(rc));
    /* the struct stays on allm: keep it for the next try */
    gmp_lock_acquire(&gmp_sched.lock);
    mdead_put(m);
    gmp_lock_release(&gmp_sched.lock);
    atomic_fetch_sub(&gmp_sched.n_mstarted, 1);
    return rc;
  }
  return 0;
}

/* ---- init ------------------------------------------------------------------ */

/* Give m a scheduler context of the runtime's own: a stack and a TCB
 * allocated here (not an NPTL thread's), entered first through
 * m0_g0_main. Used for M0, whose thread's TCB belongs to the main G, and
 * for the forking M in a child, whose NPTL stack glibc reclaims. */
static int own_g0(struct m *m)
{
  struct g *g0 = make_g0(m);
  void *blk = aligned_alloc(64, (gmp_tls_block_size() + 63) & ~(size_t)63);
  struct gmp_stack st;
  if (!g0 || !blk || gmp_stack_alloc(&st, 256 * 1024, gmp_page_size()) != 0) {
    free(g0);
    free(blk);
    return ENOMEM;
  }
  memset(blk, 0, gmp_tls_block_size());
  void *tcb = gmp_tls_create(blk);
  if (!tcb)
    return ENOMEM;
  gmp_tls_setup(tcb, 0x3fffffff, st.lo, (size_t)(st.hi - st.lo));
  g0->tcb = tcb;
  gmp_tcb_slot_set(tcb, (void *)((uintptr_t)g0 | GMP_SLOT_G0));
  gmp_ctx_make(&m->g0, st.hi, m0_g0_main, m, tcb);
  return 0;
}

static void start_sysmon(void)
{
  atomic_store(&gmp_coarse_now, gmp_nanotime());
  pthread_attr_t sa;
  pthread_t sysmon;
  pthread_attr_init(&sa);
  pthread_attr_setstacksize(&sa, 128 * 1024);
  pthread_attr_setdetachstate(&sa, PTHREAD_CREATE_DETACHED);
  int rc = native.create(&sysmon, &sa, sysmon_main, NULL);
  pthread_attr_destroy(&sa);
  if (rc != 0)
    gmp_printf_err("libgmp: cannot start sysmon (%s): blocking system calls will "
                   "stall other threads\n", strerror(rc));
}

/* ---- fork ----------------------------------------------------------------
 * POSIX: the child has one thread, the one that called fork. Here that is
 * the forking G, on the forking M; every other G, M, sysmon and timer is
 * gone. The prepare handler takes the locks that guard state the child
 * keeps (free Gs, the G arena) so that it is consistent; the child
 * handler rebuilds the rest from scratch. */

void gmp_fork_prepare(void)
{
  gmp_lock_acquire(&gmp_sched.lock);
  gmp_lock_acquire(&gmp_sched.gflock);
  gmp_lock_acquire(&box_lock);
}

void gmp_fork_parent(void)
{
  gmp_lock_release(&box_lock);
  gmp_lock_release(&gmp_sched.gflock);
  gmp_lock_release(&gmp_sched.lock);
}

void gmp_fork_child(void)
{
  gmp_stack_fork_child();
  atomic_store(&box_lock.v, 0);
  atomic_store(&gmp_sched.gflock.v, 0);
  atomic_store(&gmp_sched.lock.v, 0);
  struct g *g = gmp_curg_raw();
  if (!g || g->is_g0) {
    /* a thread the runtime did not make forked: nothing of ours runs */
    gmp_running = false;
    return;
  }
  struct m *m = g->m;
  struct p *mine = m->p ? m->p : &gmp_allp[0];
  m->ostid = gmp_gettid();
  /* fork's CLONE_CHILD_SETTID wrote the child's pid into this G's TCB:
   * the one thread of the child has the process's id, as natively. */
  g->tid = gmp_tls_tid(g->tcb);
  /* glibc's child keeps one thread in its list: the TCB that was current
   * at fork, the forking G's (set*id in the child signals it). */
  m->listed_tcb = g->tcb;
  m->alllink = NULL;
  m->spinning = false;
  m->nextp = NULL;
  gmp_sched.allm = m;
  gmp_sched.mcount = 1;
  gmp_sched.mdead = NULL;
  gmp_sched.nmdead = 0;
  gmp_sched.midle = NULL;
  gmp_sched.nmidle = 0;
  atomic_store(&gmp_sched.nmspinning, 0);
  gmp_sched.runqhead = gmp_sched.runqtail = NULL;
  atomic_store(&gmp_sched.runqsize, 0);
  atomic_store(&gmp_sched.nurgent, 0);
  gmp_sched.pidle = NULL;
  atomic_store(&gmp_sched.npidle, 0);
  atomic_store(&gmp_sched.sleep_until, 0);
  atomic_store(&gmp_sched.ngoroutines, 1);
  atomic_store(&gmp_sched.poll_until, 0);
  atomic_store(&gmp_sched.lastpoll, gmp_nanotime());
  gmp_netpoll_fork_child();
  gmp_fdtab_fork_child();
  pl_reset_all();
  for (int i = gmp_nprocs - 1; i >= 0; i--) {
    struct p *p = &gmp_allp[i];
    runq_init(&p->runq);
    atomic_store(&p->timerlock.v, 0);
    for (int32_t k = 0; k < p->timers.n; k++)
      __atomic_store_n(&p->timers.a[k].t->p, NULL, __ATOMIC_RELAXED);
    p->timers.n = 0;
    atomic_store(&p->timer0, 0);
    if (p == mine)
      continue;
    /* another M may have been updating this list when we forked */
    p->gfree = NULL;
    p->gfreecnt = 0;
    pidleput(p);
  }
  m->p = mine;
  mine->m = m;
  atomic_store(&mine->status, P_USER);
  /* The M's own NPTL stack (its g0) is reclaimed by glibc in the child. */
  if (own_g0(m) != 0)
    gmp_fatal("out of memory rebuilding the scheduler after fork");
  gmp_ctl_child();
  gmp_tev_fork_child();
  start_sysmon();
}

const char *gmp_sched_init(const struct gmp_config *c, const struct gmp_native *nat)
{
  cfg = *c;
  native = *nat;
  const char *why = gmp_tls_init(nat->create, nat->join);
  if (why)
    return why;
  gmp_ctx_switch_init();
  gmp_stack_init(cfg.guard_limit);

  box_g_size = (sizeof(struct g) + 63) & ~(size_t)63;
  box_size = (box_g_size + gmp_tls_block_size() + 63) & ~(size_t)63;
  box_g_off = 0;
  box_tls_off = box_g_size;
  {
    /* Paged only if it saves memory: the pages a G writes must come to
     * less than a packed box (all of which ends up resident, the boxes
     * being back to back). 10,000 apache threads: 5.5 -> 4 KiB each. */
    size_t ps = gmp_page_size();
    size_t paged = (box_g_size + gmp_tls_block_size() + ps - 1) & ~(ps - 1);
    size_t hot = box_g_size + gmp_tls_hot_bytes();
    size_t hot_pages = (hot + ps - 1) / ps;
    if (hot_pages * ps < box_size) {
      box_paged = true;
      box_size = paged;
      box_g_off = paged - box_g_size;
      box_tls_off = box_g_off - gmp_tls_block_size();
    }
  }

  gmp_nprocs = cfg.maxprocs;
  gmp_allp = aligned_alloc(64, sizeof(struct p) * (size_t)gmp_nprocs);
  if (!gmp_allp)
    return "out of memory";
  memset(gmp_allp, 0, sizeof(struct p) * (size_t)gmp_nprocs);
  for (int i = 0; i < gmp_nprocs; i++) {
    gmp_allp[i].id = i;
    runq_init(&gmp_allp[i].runq);
  }

  /* M0 is this (main) thread. Its g0 needs a TCB and stack of its own,
   * because the main thread's TCB now belongs to the main G. */
  if (own_g0(&m0) != 0)
    return "out of memory";
  m0.id = 0;
  m0.ostid = gmp_gettid();
  m0.rand = 0x9E3779B97F4A7C15ULL;
  gmp_sched.mcount = 1;
  gmp_sched.allm = &m0;
  pthread_sigmask(SIG_SETMASK, NULL, &m_sigmask);
  memcpy(&m0.cur_mask, &m_sigmask, 8);
  memcpy(&g_main.sigmask, &m_sigmask, 8);
  g_main.sigmask_eff = g_main.sigmask & ~URG_BIT;

  /* The main G: the main thread's own stack and TCB. */
  g_main.tcb = gmp_thread_self();
  g_main.ctx.fs = g_main.tcb;
  g_main.is_main = true;
  g_main.goid = 1;
  g_main.tid = gmp_tls_tid(g_main.tcb);
  g_main.stack.user = true;
  g_main.timer.idx = -1;
  g_main.m = &m0;
  atomic_store(&g_main.status, G_RUNNING);
  atomic_store(&g_main.joinstate, JOIN_JOINABLE);
  atomic_store(&gmp_sched.goidgen, 1);
  atomic_store(&gmp_sched.ngoroutines, 1);
  atomic_store(&gmp_sched.lastpoll, gmp_nanotime());
  m0.curg = &g_main;
  acquirep(&m0, &gmp_allp[0]);
  for (int i = gmp_nprocs - 1; i >= 1; i--)
    pidleput(&gmp_allp[i]);

  /* The SIGURG handler and M0's signal stack, before any other M exists. */
  gmp_preempt_init(!cfg.asyncpreemptoff);
  gmp_trace_open(cfg.tracefile);
  gmp_ctl_init();
  if (cfg.tracejson)
    gmp_tev_open(cfg.tracejson);

  /* One idle M per other P, started now from the main thread's genuine
   * NPTL context rather than later from a G. */
  for (int i = 1; i < gmp_nprocs; i++) {
    gmp_lock_acquire(&gmp_sched.lock);
    struct p *p = pidleget();
    gmp_lock_release(&gmp_sched.lock);
    if (newm(NULL, false) != 0) {
      gmp_lock_acquire(&gmp_sched.lock);
      pidleput(p);
      gmp_lock_release(&gmp_sched.lock);
      break;
    }
    gmp_lock_acquire(&gmp_sched.lock);
    pidleput(p);
    gmp_lock_release(&gmp_sched.lock);
  }
  start_sysmon();
  gmp_setxid_init();
  gmp_tcb_slot_set(g_main.tcb, &g_main);
  gmp_leave_runtime(&gmp_allp[0]); /* the main G goes back to user code */
  gmp_running = true;
  return NULL;
}
