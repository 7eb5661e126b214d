/*
 * schedtrace: what the scheduler is doing, printed by sysmon every
 * GMP_DEBUG=schedtrace=MS milliseconds in the format of Go's schedtrace
 * (runtime/proc.go), so that people who read Go's can read this one:
 *
 *   SCHED 1001ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0
 *     needspinning=0 idlethreads=1 runqueue=847 [12 3]
 *
 * (one line), and with scheddetail=1 one line per P, M and G as Go prints
 * them, with wait reasons meaningful for C programs. Fields are read
 * racily, without stopping anything: a line is a snapshot, not an atomic
 * one. GMP_DEBUG=stats=1 prints counters at exit.
 *
 * Output goes to GMP_TRACEFILE if set, else stderr, with write(2) from a
 * static buffer: sysmon is one thread, and the exit report runs once.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "sched/internal.h"

static char buf[1 << 16];
static size_t len;
static int out_fd = 2;

void gmp_out_flush(void)
{
  size_t off = 0;
  while (off < len) {
    long w = gmp_sys3(SYS_write, out_fd, buf + off, len - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  len = 0;
}

void gmp_out(const char *fmt, ...)
{
  if (len > sizeof buf - 512)
    gmp_out_flush();
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
  va_end(ap);
  if (n > 0)
    len += (size_t)n < sizeof buf - len ? (size_t)n : sizeof buf - len - 1;
}

int gmp_out_to(int fd)
{
  gmp_out_flush();
  int old = out_fd;
  out_fd = fd;
  return old;
}

#define put gmp_out
#define flush gmp_out_flush

void gmp_trace_open(const char *path)
{
  if (!path || !*path)
    return;
  long fd = gmp_sys4(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0600);
  if (fd < 0)
    gmp_printf_err("libgmp: GMP_TRACEFILE=%s cannot be opened (errno %ld); tracing to stderr\n",
                   path, -fd);
  else
    out_fd = (int)fd;
}

const char *gmp_waitreason_name(int r)
{
  static const char *names[] = {"", "mutex", "cond", "rwlock", "semaphore", "barrier",
                                "join", "sleep", "once", "wait", "IO wait", "IO wait", "futex"};
  _Static_assert(sizeof names / sizeof names[0] == WAIT__COUNT, "a name per wait reason");
  return r > 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "wait";
}

struct gwalk {
  int64_t now;
};

/* Go's status numbers: 0 idle, 1 runnable, 2 running, 3 syscall,
 * 4 waiting, 6 dead. */
static void put_g(void *tcb, void *arg)
{
  struct g *g = gmp_prog_g_of_tcb(tcb);
  if (!g)
    return;
  int st = atomic_load_explicit(&g->status, memory_order_relaxed);
  if (st == G_IDLE)
    return;
  int gost;
  const char *why = "";
  struct m *m = g->m;
  bool insys = false;
  switch (st) {
  case G_RUNNABLE: gost = 1; break;
  case G_RUNNING:
    insys = atomic_load_explicit(&g->insyscall, memory_order_relaxed);
    gost = insys ? 3 : 2;
    break;
  case G_WAITING: gost = 4; why = gmp_waitreason_name(g->waitreason); break;
  default: gost = 6; break;
  }
  int mid = (st == G_RUNNING && m) ? m->id : -1;
  if (gost == 4 && (g->waitreason == WAIT_IOR || g->waitreason == WAIT_IOW))
    put("  G%llu: status=4(IO wait on fd %d, %s) m=-1 lockedm=-1\n",
        (unsigned long long)g->goid, g->wait_fd, g->waitreason == WAIT_IOR ? "read" : "write");
  else if (gost == 4)
    put("  G%llu: status=4(%s) m=-1 lockedm=-1\n", (unsigned long long)g->goid, why);
  else if (gost == 3)
    put("  G%llu: status=3(syscall%s%s) m=%d lockedm=-1\n", (unsigned long long)g->goid,
        g->sysname ? " " : "", g->sysname ? g->sysname : "", mid);
  else
    put("  G%llu: status=%d() m=%d lockedm=-1\n", (unsigned long long)g->goid, gost, mid);
}

void gmp_schedtrace_to(int fd, int64_t since_start_ms, bool detail)
{
  int saved = gmp_out_to(fd);
  gmp_schedtrace(since_start_ms, detail);
  gmp_out_to(saved);
}

void gmp_schedtrace(int64_t since_start_ms, bool detail)
{
  int idle = atomic_load(&gmp_sched.npidle);
  put("SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
      "needspinning=0 idlethreads=%d runqueue=%d [",
      (long long)since_start_ms, gmp_nprocs, idle, gmp_sched.mcount - gmp_sched.nmdead,
      atomic_load(&gmp_sched.nmspinning), gmp_sched.nmidle, atomic_load(&gmp_sched.runqsize));
  for (int i = 0; i < gmp_nprocs; i++)
    put("%s%u", i ? " " : "", runq_size(&gmp_allp[i].runq));
  put("]\n");
  if (detail) {
    static const char *pst[] = {"0", "1", "1", "2"}; /* idle, running, user, syscall */
    for (int i = 0; i < gmp_nprocs; i++) {
      struct p *p = &gmp_allp[i];
      int s = atomic_load_explicit(&p->status, memory_order_relaxed);
      struct m *pm = p->m;
      put("  P%d: status=%s schedtick=%llu syscalltick=%llu m=%d runqsize=%u gfreecnt=%d "
          "timerslen=%d\n",
          i, pst[s & 3], (unsigned long long)p->schedtick,
          (unsigned long long)atomic_load(&p->syscalltick), s == P_IDLE || !pm ? -1 : pm->id,
          runq_size(&p->runq), p->gfreecnt, p->timers.n);
    }
    for (struct m *m = gmp_sched.allm; m; m = m->alllink) {
      if (m->ended)
        continue;
      struct p *p = m->p;
      struct g *cg = m->curg;
      bool blocked = p && atomic_load_explicit(&p->status, memory_order_relaxed) == P_SYSCALL;
      put("  M%d: p=%d curg=%lld mallocing=0 throwing=0 preemptoff= locks=0 dying=0 "
          "spinning=%s blocked=%s lockedg=-1\n",
          m->id, p ? p->id : -1, cg ? (long long)cg->goid : -1LL,
          m->spinning ? "true" : "false", blocked || !p ? "true" : "false");
    }
    struct gwalk w = {gmp_nanotime()};
    gmp_for_each_tcb(put_g, &w);
  }
  flush();
}

/* Sums of the per-P counters, and the latency percentiles of the
 * merged histogram. */
struct totals {
  uint64_t switches, steals, stolen, spills, created, exited, preempts;
  uint64_t parks[WAIT__COUNT];
  uint64_t lat[LAT_BUCKETS], nlat;
};

static void sum(struct totals *t)
{
  memset(t, 0, sizeof *t);
  for (int i = 0; i < gmp_nprocs; i++) {
    struct pstats *s = &gmp_allp[i].st;
    t->switches += atomic_load_explicit(&s->switches, memory_order_relaxed);
    t->steals += atomic_load_explicit(&s->steals, memory_order_relaxed);
    t->stolen += atomic_load_explicit(&s->stolen, memory_order_relaxed);
    t->spills += atomic_load_explicit(&s->spills, memory_order_relaxed);
    t->created += atomic_load_explicit(&s->created, memory_order_relaxed);
    t->exited += atomic_load_explicit(&s->exited, memory_order_relaxed);
    for (int r = 0; r < WAIT__COUNT; r++)
      t->parks[r] += atomic_load_explicit(&s->parks[r], memory_order_relaxed);
    for (int b = 0; b < LAT_BUCKETS; b++) {
      uint64_t v = atomic_load_explicit(&s->lat[b], memory_order_relaxed);
      t->lat[b] += v;
      t->nlat += v;
    }
  }
  for (struct m *m = gmp_sched.allm; m; m = m->alllink)
    t->preempts += m->n_preempt;
}

/* The upper bound (ns) of the bucket holding quantile q: a histogram of
 * powers of two knows no better than that. */
static uint64_t lat_quantile(const struct totals *t, double q)
{
  if (!t->nlat)
    return 0;
  uint64_t want = (uint64_t)(q * (double)t->nlat), seen = 0;
  for (int b = 0; b < LAT_BUCKETS; b++) {
    seen += t->lat[b];
    if (seen > want || b == LAT_BUCKETS - 1)
      return 1ULL << (b + LAT_SHIFT + 1);
  }
  return 0;
}

static uint64_t lat_max(const struct totals *t)
{
  for (int b = LAT_BUCKETS - 1; b >= 0; b--)
    if (t->lat[b])
      return 1ULL << (b + LAT_SHIFT + 1);
  return 0;
}

static void put_ns(const char *label, uint64_t ns)
{
  if (ns >= 1000000)
    put("  %-28s %9.1f ms\n", label, (double)ns / 1e6);
  else
    put("  %-28s %9.1f us\n", label, (double)ns / 1e3);
}

void gmp_stats_print(void)
{
  struct totals t;
  sum(&t);
  put("libgmp stats (pid %d):\n", (int)gmp_sys0(SYS_getpid));
  put("  %-28s %12d\n", "Ps (GMP_MAXPROCS)", gmp_nprocs);
  /* M0 (the main thread's) plus those newm started; ended: idle 5 s */
  put("  %-28s %12llu\n", "OS threads started (Ms)",
      1 + (unsigned long long)atomic_load(&gmp_sched.n_mstarted));
  put("  %-28s %12llu\n", "OS threads ended (idle)",
      (unsigned long long)atomic_load(&gmp_sched.n_mended));
  /* the main thread, and those pthread_create made */
  put("  %-28s %12llu\n", "threads created (Gs)", 1 + (unsigned long long)t.created);
  put("  %-28s %12lld\n", "threads alive at exit", (long long)atomic_load(&gmp_sched.ngoroutines));
  put("  %-28s %12llu\n", "context switches", (unsigned long long)t.switches);
  put("  %-28s %12llu\n", "steals", (unsigned long long)t.steals);
  put("  %-28s %12llu\n", "threads stolen", (unsigned long long)t.stolen);
  put("  %-28s %12llu\n", "threads exited", (unsigned long long)t.exited);
  put("  %-28s %12llu\n", "global queue spills", (unsigned long long)t.spills);
  put("  %-28s %12llu\n", "P hand-offs (blocked Ms)",
      (unsigned long long)atomic_load(&gmp_sched.n_handoff));
  put("  %-28s %12llu\n", "  of which outside a wrapper",
      (unsigned long long)atomic_load(&gmp_sched.n_handoff_user));
  put("  %-28s %12llu\n", "asynchronous preemptions", (unsigned long long)t.preempts);
  put("  %-28s %12llu\n", "timers fired", (unsigned long long)atomic_load(&gmp_sched.n_timer));
  put("  %-28s %12llu\n", "netpoll wake-ups",
      (unsigned long long)atomic_load(&gmp_sched.n_pollwake));
  put("  %-28s %12llu\n", "threads readied by netpoll",
      (unsigned long long)atomic_load(&gmp_sched.n_netpoll));
  for (int r = 1; r < WAIT__COUNT; r++) {
    if (!t.parks[r])
      continue;
    char label[48];
    snprintf(label, sizeof label, "parks: %s%s", gmp_waitreason_name(r),
             r == WAIT_IOR ? " (read)" : r == WAIT_IOW ? " (write)" : "");
    put("  %-28s %12llu\n", label, (unsigned long long)t.parks[r]);
  }
  put("  %-28s %12llu\n", "latency samples (1 in 8)", (unsigned long long)t.nlat);
  if (t.nlat) {
    put_ns("latency p50 (runnable->run) <", lat_quantile(&t, 0.50));
    put_ns("latency p99 <", lat_quantile(&t, 0.99));
    put_ns("latency max <", lat_max(&t));
  }
  flush();
}

/* One "key value" line per counter, for gmp-schedtrace --top: totals,
 * then "p<N>.<key> value" per P. Values are monotonic counters except
 * those marked as gauges by the tool (runq, idleprocs, threads...). */
void gmp_stats_kv(int64_t since_start_ms)
{
  struct totals t;
  sum(&t);
  put("uptime_ms %lld\n", (long long)since_start_ms);
  put("gomaxprocs %d\nidleprocs %d\nthreads %d\ngoroutines %lld\nrunqueue %d\n", gmp_nprocs,
      atomic_load(&gmp_sched.npidle), gmp_sched.mcount - gmp_sched.nmdead,
      (long long)atomic_load(&gmp_sched.ngoroutines), atomic_load(&gmp_sched.runqsize));
  put("created %llu\nexited %llu\nswitches %llu\nsteals %llu\nstolen %llu\nspills %llu\n"
      "handoffs %llu\npreempts %llu\n",
      (unsigned long long)t.created, (unsigned long long)t.exited,
      (unsigned long long)t.switches, (unsigned long long)t.steals,
      (unsigned long long)t.stolen, (unsigned long long)t.spills,
      (unsigned long long)atomic_load(&gmp_sched.n_handoff), (unsigned long long)t.preempts);
  uint64_t parks = 0, syscalls = 0;
  for (int r = 1; r < WAIT__COUNT; r++)
    parks += t.parks[r];
  for (int i = 0; i < gmp_nprocs; i++)
    syscalls += atomic_load(&gmp_allp[i].syscalltick);
  put("parks %llu\nsyscalls %llu\ntimers %llu\npollwakes %llu\nnetpoll_ready %llu\n",
      (unsigned long long)parks, (unsigned long long)syscalls,
      (unsigned long long)atomic_load(&gmp_sched.n_timer),
      (unsigned long long)atomic_load(&gmp_sched.n_pollwake),
      (unsigned long long)atomic_load(&gmp_sched.n_netpoll));
  put("lat_p50_ns %llu\nlat_p99_ns %llu\nlat_max_ns %llu\n",
      (unsigned long long)lat_quantile(&t, 0.50), (unsigned long long)lat_quantile(&t, 0.99),
      (unsigned long long)lat_max(&t));
  for (int i = 0; i < gmp_nprocs; i++) {
    struct p *p = &gmp_allp[i];
    int s = atomic_load_explicit(&p->status, memory_order_relaxed);
    put("p%d.status %s\np%d.runq %u\np%d.switches %llu\np%d.steals %llu\np%d.syscalls %llu\n", i,
        s == P_IDLE ? "idle" : s == P_SYSCALL ? "syscall" : "running", i, runq_size(&p->runq),
        i, (unsigned long long)atomic_load(&p->st.switches), i,
        (unsigned long long)atomic_load(&p->st.steals), i,
        (unsigned long long)atomic_load(&p->syscalltick));
  }
  flush();
}
