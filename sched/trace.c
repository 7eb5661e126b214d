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

static void flush(void)
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

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...)
{
  if (len > sizeof buf - 512)
    flush();
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
  va_end(ap);
  if (n > 0)
    len += (size_t)n < sizeof buf - len ? (size_t)n : sizeof buf - len - 1;
}

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

static const char *reason_name(int r)
{
  static const char *names[] = {"", "mutex", "cond", "rwlock", "semaphore", "barrier",
                                "join", "sleep", "once", "wait", "IO wait", "IO wait"};
  return r > 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "wait";
}

struct gwalk {
  int64_t now;
};

/* Go's status numbers: 0 idle, 1 runnable, 2 running, 3 syscall,
 * 4 waiting, 6 dead. */
static void put_g(void *tcb, void *arg)
{
  uintptr_t slot = (uintptr_t)gmp_tcb_slot_of(tcb);
  struct g *g = (struct g *)(slot & ~GMP_SLOT_G0);
  if (!g || (slot & GMP_SLOT_G0))
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
    insys = m && m->p && m->curg == g &&
            atomic_load_explicit(&m->p->status, memory_order_relaxed) == P_SYSCALL;
    gost = insys ? 3 : 2;
    break;
  case G_WAITING: gost = 4; why = reason_name(g->waitreason); break;
  default: gost = 6; break;
  }
  int mid = (st == G_RUNNING && m) ? m->id : -1;
  if (gost == 4 && (g->waitreason == WAIT_IOR || g->waitreason == WAIT_IOW))
    put("  G%llu: status=4(IO wait on fd %d, %s) m=-1 lockedm=-1\n",
        (unsigned long long)g->goid, g->wait_fd, g->waitreason == WAIT_IOR ? "read" : "write");
  else if (gost == 4)
    put("  G%llu: status=4(%s) m=-1 lockedm=-1\n", (unsigned long long)g->goid, why);
  else if (gost == 3)
    put("  G%llu: status=3(syscall) m=%d lockedm=-1\n", (unsigned long long)g->goid, mid);
  else
    put("  G%llu: status=%d() m=%d lockedm=-1\n", (unsigned long long)g->goid, gost, mid);
}

void gmp_schedtrace_to(int fd, int64_t since_start_ms, bool detail)
{
  int saved = out_fd;
  flush();
  out_fd = fd;
  gmp_schedtrace(since_start_ms, detail);
  out_fd = saved;
}

void gmp_schedtrace(int64_t since_start_ms, bool detail)
{
  int idle = atomic_load(&gmp_sched.npidle);
  put("SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
      "needspinning=0 idlethreads=%d runqueue=%d [",
      (long long)since_start_ms, gmp_nprocs, idle, gmp_sched.mcount,
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

void gmp_stats_print(void)
{
  uint64_t sw = 0, steal = 0;
  for (int i = 0; i < gmp_nprocs; i++) {
    sw += atomic_load(&gmp_allp[i].n_switch);
    steal += atomic_load(&gmp_allp[i].n_steal);
  }
  uint64_t preempt = 0;
  for (struct m *m = gmp_sched.allm; m; m = m->alllink)
    preempt += m->n_preempt;
  put("libgmp stats (pid %d):\n", (int)gmp_sys0(SYS_getpid));
  put("  %-28s %12d\n", "Ps (GMP_MAXPROCS)", gmp_nprocs);
  put("  %-28s %12d\n", "OS threads started (Ms)", gmp_sched.mcount);
  put("  %-28s %12llu\n", "threads created (Gs)",
      (unsigned long long)atomic_load(&gmp_sched.goidgen));
  put("  %-28s %12lld\n", "threads alive at exit", (long long)atomic_load(&gmp_sched.ngoroutines));
  put("  %-28s %12llu\n", "context switches", (unsigned long long)sw);
  put("  %-28s %12llu\n", "steals", (unsigned long long)steal);
  put("  %-28s %12llu\n", "P hand-offs (blocked Ms)",
      (unsigned long long)atomic_load(&gmp_sched.n_handoff));
  put("  %-28s %12llu\n", "asynchronous preemptions", (unsigned long long)preempt);
  flush();
}
