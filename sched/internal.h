/* Declarations shared by the files of sched/ (not by preload/). */
#ifndef GMP_SCHED_INTERNAL_H
#define GMP_SCHED_INTERNAL_H

#include "sched/runtime.h"
#include "sched/sched.h"

struct m *gmp_getm(void);
/* The program thread (G) a TCB of gmp_for_each_tcb belongs to; NULL for
 * an M's g0 or a TCB not in use. */
static inline struct g *gmp_prog_g_of_tcb(void *tcb)
{
  uintptr_t slot = (uintptr_t)gmp_tcb_slot_of(tcb);
  struct g *g = (struct g *)(slot & ~GMP_SLOT_G0);
  return !g || (slot & GMP_SLOT_G0) || g->is_g0 ? NULL : g;
}
/* The same, only for a thread that exists now (not free, not exited). */
static inline struct g *gmp_live_g_of_tcb(void *tcb)
{
  struct g *g = gmp_prog_g_of_tcb(tcb);
  if (!g)
    return NULL;
  int st = atomic_load_explicit(&g->status, memory_order_relaxed);
  return st == G_IDLE || st == G_DEAD ? NULL : g;
}
void gmp_ready(struct g *g);
void gmp_runqput(struct p *p, struct g *g, bool next);
void gmp_wakep(void);
void gmp_gfree(struct g *g);
/* Take ownership of the current M's P for runtime work from a G (see
 * P_USER in runtime.h); may move the G to another M. Pair with
 * gmp_leave_runtime before returning to user code. */
struct p *gmp_enter_runtime(struct g *g);
static inline void gmp_leave_runtime(struct p *p)
{
  atomic_store_explicit(&p->status, P_USER, memory_order_release);
}
/* The P to use for runtime work on the current context: g0's own P, or
 * the G's after gmp_enter_runtime. */
void gmp_ready_p(struct p *p, struct g *g);
/* Park the current G; unlockf(g, arg) runs on g0 after the switch and may
 * refuse the park by returning false (the G then runs again). */
void gmp_park(bool (*unlockf)(struct g *, void *), void *arg, int reason);
/* Same, for a caller that already holds its P (gmp_enter_runtime). */
void gmp_park_held(bool (*unlockf)(struct g *, void *), void *arg, int reason);

/* timers (timer.c) */
int gmp_timers_run(struct p *p, int64_t now);
void gmp_timer_push_locked(struct p *p, struct g *g, int64_t when);
void gmp_timer_del(struct g *g);
void gmp_wake_timer_sleeper(int64_t when);
void gmp_timer_fire(struct g *g, uint64_t seq); /* park.c */
/* End a timer-only park (sleep) of g early, with result; false if the
 * park already ended. Serialised with the G's switch-out by the timer lock. */
bool gmp_sleep_interrupt(struct g *g, uint64_t seq, int result);

/* preemption (preempt.c) */
void gmp_preempt_init(bool enable);
void gmp_preempt_thread_init(void);
void gmp_preempt_thread_fini(void); /* an M's OS thread ends */
bool gmp_preempt_enabled(void);
void gmp_preempt_request(struct p *p, struct m *m, uint64_t tick);
/* Act on a pending asynchronous cancel of the current G (preload's hook). */
void gmp_run_async_hook(void);

/* A counter of struct pstats, written only by its P's owner. */
#define PSTAT_ADD(field, n)                                                      \
  atomic_store_explicit(&(field),                                                \
                        atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                        memory_order_relaxed)

/* sysmon's clock, updated every round (20 us to 10 ms): timestamps that
 * only a human reads (how long a thread has waited) cost no clock read. */
extern _Atomic int64_t gmp_coarse_now;

/* The goroutine dump (dump.c). While the dumper walks g's stack it holds
 * gmp_dump_g == g, and execute() will not switch g in (gmp_dump_wait). */
extern _Atomic(struct g *) gmp_dump_g;
void gmp_dump_wait(struct g *g);
/* Print every G (id, state, wait reason and duration, object, start
 * function, backtrace) to the trace output. */
void gmp_goroutines(void);
/* Set by gmp_dump_request (sched.h); sysmon dumps. */
extern _Atomic int gmp_dump_requested;

/* The trace output (trace.c): a buffer flushed with write(2) to
 * GMP_TRACEFILE or stderr; gmp_out_to redirects it for one report. Used by
 * sysmon and the exit report only. */
void gmp_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gmp_out_flush(void);
int gmp_out_to(int fd); /* returns the previous fd */
const char *gmp_waitreason_name(int reason);
/* Machine-readable counters for gmp-schedtrace --top (ctl.c's "stats"). */
void gmp_stats_kv(int64_t since_start_ms);

/* GMP_TRACE (traceev.c). gmp_tev_on is set once at start, before any
 * other thread exists, and cleared at exit and in a forked child. */
extern bool gmp_tev_on;
extern bool gmp_tev_tsc; /* the clock is the TSC (else gmp_nanotime) */
/* Record types: the low 4 bits of a record's first 64-bit word. */
enum {
  TEV_RUN = 1, TEV_SYSCALL, TEV_CREATE, TEV_UNPARK, TEV_STEAL,
  TEV_UNPARK1, /* an unpark packed in one word (the common case) */
  TEV_TIME,    /* two words: the time later deltas count from */
  TEV_HDR,     /* in the spill file only: a buffer's M and length */
};
/* why a run ended, beyond the wait reasons (enum waitreason) */
enum { TEV_END_YIELD = 100, TEV_END_PREEMPT, TEV_END_EXIT, TEV_END_SYSCALL };
#define TEV_TID_M 1000 /* M tracks: TEV_TID_M + M id; P tracks: P id */
#define TEV_DUR_SHIFT 4 /* durations are stored in ticks >> 4, 32 bits */
#define TEV_MAXREC 4    /* words the longest record takes, with a TEV_TIME */
#define TEV_NOBASE ((uint64_t)1 << 63) /* m->tev_base of a fresh buffer */

/* The trace's clock: TSC ticks (rdtsc: ~11 ns back to back on the
 * development VM; the one clock read a switch pays), or ns. Inline: it
 * is on every switch. */
static inline int64_t gmp_tev_now(void)
{
  if (__builtin_expect(gmp_tev_tsc, 1)) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (int64_t)(((uint64_t)hi << 32) | lo);
  }
  return gmp_nanotime();
}

/* Events are appended to the calling M's own buffer (no lock, no shared
 * cache line) through m->tev_pos/tev_end; the helpers below are the fast
 * path, inlined at each call site, and gmp_tev_refill the slow one (a
 * new buffer; NULL if this M records nothing). Records are 1 or 2 words
 * of 64 bits, times stored as deltas from m->tev_base (see traceev.c for
 * the layout): a condvar round trip (two runs, two wake-ups) takes 48
 * bytes instead of 96, half the fresh memory for the kernel to zero
 * (clear_page was ~40 ns of the ~130 ns a round trip that 96 cost). */
uint64_t *gmp_tev_refill(struct m *m);
static inline uint64_t *gmp_tev_room(struct m *m)
{
  uint64_t *w = m->tev_pos;
  if (__builtin_expect((uintptr_t)m->tev_end - (uintptr_t)w >= TEV_MAXREC * sizeof *w, 1))
    return w;
  return gmp_tev_refill(m);
}
/* ts as a delta from the M's base, below lim; if it does not fit, a
 * TEV_TIME record at w rebases it. Returns where the record goes. */
static inline uint64_t *gmp_tev_delta(struct m *m, uint64_t *w, int64_t ts, uint64_t lim,
                                      uint64_t *d)
{
  uint64_t x = (uint64_t)ts - m->tev_base;
  if (__builtin_expect(x >= lim, 0)) {
    w[0] = TEV_TIME;
    w[1] = (uint64_t)ts;
    m->tev_base = (uint64_t)ts;
    w += 2;
    x = 0;
  }
  *d = x;
  return w;
}
/* A complete event (TEV_RUN on P track tid, or TEV_SYSCALL on the M's
 * track) from start to now. Returns now, read once: the caller's next run
 * starts there. */
/* A span [start, now): returns now. */
static inline int64_t gmp_tev_span_at(struct m *m, int type, int tid, int end, uint64_t goid,
                                      int64_t start, int64_t now)
{
  uint64_t *w = gmp_tev_room(m), d;
  if (!w)
    return now;
  w = gmp_tev_delta(m, w, start, (uint64_t)1 << 32, &d);
  /* A TSC read on another CPU can be a few ticks behind: no negative
   * (saturated) duration. */
  uint64_t dur = now > start ? (uint64_t)(now - start) >> TEV_DUR_SHIFT : 0;
  if (dur > UINT32_MAX)
    dur = UINT32_MAX;
  w[0] = (uint64_t)type | (uint64_t)(end & 0xff) << 8 | (uint64_t)(tid & 0xffff) << 16 |
         (uint64_t)(uint32_t)goid << 32;
  w[1] = d | dur << 32;
  m->tev_pos = w + 2;
  return now;
}
/* A span [start, the current time). */
static inline int64_t gmp_tev_span(struct m *m, int type, int tid, int end, uint64_t goid,
                                   int64_t start)
{
  return gmp_tev_span_at(m, type, tid, end, goid, start, gmp_tev_now());
}
/* An instant (TEV_CREATE, TEV_STEAL, TEV_UNPARK) at ts (0: now). */
void gmp_tev_instant(struct m *m, int type, int tid, uint64_t goid, int64_t ts, int a);
/* g readied onto P pid. One made by a running G is stamped with the start
 * of that G's run (no clock read: a condvar ping-pong makes two a round
 * trip, and the instant still falls in the waker's slice on its track). */
static inline void gmp_tev_unpark(struct m *m, int pid, uint64_t goid)
{
  struct g *cur = gmp_curg_raw();
  int64_t ts = cur && !cur->is_g0 && cur->run_since ? cur->run_since : 0;
  uint64_t *w;
  if (__builtin_expect(m && ts && pid < 0x1000 && goid < (1u << 24), 1) &&
      (w = gmp_tev_room(m))) {
    uint64_t d;
    w = gmp_tev_delta(m, w, ts, (uint64_t)1 << 24, &d);
    w[0] = TEV_UNPARK1 | (uint64_t)pid << 4 | goid << 16 | d << 40;
    m->tev_pos = w + 1;
    return;
  }
  gmp_tev_instant(m, TEV_UNPARK, pid, goid, ts, 0);
}
int gmp_tev_open(const char *path);
void gmp_tev_fork_child(void);

/* schedtrace and stats (trace.c) */
void gmp_schedtrace(int64_t since_start_ms, bool detail);
void gmp_trace_open(const char *path);
void gmp_schedtrace_to(int fd, int64_t since_start_ms, bool detail);
/* the control socket (ctl.c) */
#define GMP_CTL_MARK 0x676d7063 /* "gmpc": a SIGURG asking for the socket */
void gmp_ctl_request(void);    /* async-signal-safe */
void gmp_ctl_open(void);
void gmp_ctl_init(void);       /* at start: open it now only if it must */
void gmp_ctl_child(void);
void gmp_ctl_poll(void);

/* signals (signal.c) */
uint64_t gmp_idle_sigmask(void);
/* signal.c: the signals the process sent that were given to g and that
 * it had not taken when it died go back to the process (gdestroy). */
void gmp_sig_dead(struct g *g);
uint64_t gmp_sysmon_sigmask(void);
/* Deliver the current G's queued, unblocked signals in its context.
 * Returns how many; *restart_all: all of their handlers have SA_RESTART. */
int gmp_sig_flush(struct g *g, bool *restart_all);
/* Block (or unblock again) the runtime's SIGURG on the calling G's OS
 * thread, for the length of a sigtimedwait that takes it (signal.c). */
void gmp_sigwait_mask(bool urg_blocked);
/* Is this SIGURG one of the runtime's own (gmp_interrupt_ostid)? */
bool gmp_urg_is_runtime(const void *siginfo);
void gmp_sig_check(struct g *g); /* the same, cheap when nothing is queued */
void gmp_sig_rescue(void);       /* sysmon, every round */
void gmp_setxid_init(void);      /* wrap glibc's SIGSETXID handler */
void *gmp_m_glibc_tcb(struct m *m); /* the TCB glibc lists for this M's OS thread */
/* End g's current wait, whatever it is, with result (park.c). */
bool gmp_park_interrupt(struct g *g, int result);

/* thread-specific data (tsd.c) */
void gmp_tsd_run_destructors(struct g *g);
void gmp_tsd_clear(struct g *g);

#endif
