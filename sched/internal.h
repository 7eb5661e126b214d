/* Declarations shared by the files of sched/ (not by preload/). */
#ifndef GMP_SCHED_INTERNAL_H
#define GMP_SCHED_INTERNAL_H

#include "sched/runtime.h"
#include "sched/sched.h"

struct m *gmp_getm(void);
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
bool gmp_preempt_enabled(void);
void gmp_preempt_request(struct p *p, struct m *m, uint64_t tick);

/* schedtrace and stats (trace.c) */
void gmp_schedtrace(int64_t since_start_ms, bool detail);
void gmp_trace_open(const char *path);
void gmp_schedtrace_to(int fd, int64_t since_start_ms, bool detail);
/* the control socket (ctl.c) */
void gmp_ctl_open(void);
void gmp_ctl_child(void);
void gmp_ctl_poll(void);

/* signals (signal.c) */
uint64_t gmp_idle_sigmask(void);
uint64_t gmp_sysmon_sigmask(void);
/* Deliver the current G's queued, unblocked signals in its context.
 * Returns how many; *restart_all: all of their handlers have SA_RESTART. */
int gmp_sig_flush(struct g *g, bool *restart_all);
void gmp_sig_check(struct g *g); /* the same, cheap when nothing is queued */
void gmp_sig_rescue(void);       /* sysmon, every round */
/* End g's current wait, whatever it is, with result (park.c). */
bool gmp_park_interrupt(struct g *g, int result);

/* thread-specific data (tsd.c) */
void gmp_tsd_run_destructors(struct g *g);
void gmp_tsd_clear(struct g *g);

#endif
