/*
 * The goroutine dump: every thread of the program, Go's `goroutine N
 * [reason, time]:` format, with a backtrace of each switched-out thread.
 *
 *   goroutine 12 [cond, 523 ms, on 0x55d0c0a04060]:
 *     #0  0x00007f2c1d2e6f3a gmp_park_on+0x1aa (libgmp.so)
 *     #1  0x000055d0bf2011c5 waiter+0x25 (shape)
 *     started by waiter at 0x000055d0bf2011a0
 *
 * Printed by sysmon to the trace output: on the dump signal
 * (GMP_DEBUG=dumpsignal=SIG), and for gmp-schedtrace --goroutines through
 * the control socket, which re-symbolises the frames with the binary's
 * full symbol tables (tools/symbolize.c).
 *
 * Walking a G's stack needs the G to stay switched out meanwhile: if it
 * ran, its stack would change under the unwinder (and if it then exited,
 * the stack could be unmapped). The dumper announces the G in gmp_dump_g
 * and then reads its status; execute() publishes RUNNING and then reads
 * gmp_dump_g, each with a full barrier in between, so either the dumper
 * sees RUNNING (and prints no backtrace) or execute() sees the
 * announcement and waits for the walk to end (gmp_dump_wait). A parked G
 * has also left its M: m->curg is cleared on g0 after the switch, so a G
 * whose status already says WAITING but which is still switching out
 * (gmp_park_held sets the status first) is recognised and skipped.
 * Nothing else stops: the program runs on during the dump.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/syscall.h>

#include "sched/internal.h"

_Atomic(struct g *) gmp_dump_g;
_Atomic int gmp_dump_requested;

#define DUMP_FRAMES 32

void gmp_dump_wait(struct g *g)
{
  /* At most one stack walk (tens of microseconds). */
  for (int i = 0; atomic_load_explicit(&gmp_dump_g, memory_order_acquire) == g; i++) {
    if (i < 1000)
      __builtin_ia32_pause();
    else
      gmp_sys0(SYS_sched_yield);
  }
}

struct dump {
  int64_t now;
  int total, running, runnable, syscall, waiting;
  int reasons[WAIT__COUNT];
};

static const char *base(const char *path)
{
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void put_frames(const struct gmp_frame *f, int n)
{
  for (int i = 0; i < n; i++) {
    Dl_info di;
    const char *obj = dladdr((void *)f[i].pc, &di) && di.dli_fname ? base(di.dli_fname) : "?";
    if (f[i].name[0])
      gmp_out("\t#%-2d 0x%016lx %s+%#lx (%s)\n", i, (unsigned long)f[i].pc, f[i].name,
              (unsigned long)f[i].off, obj);
    else
      gmp_out("\t#%-2d 0x%016lx ? (%s)\n", i, (unsigned long)f[i].pc, obj);
  }
}

static void put_start(struct g *g, const struct gmp_frame *f, int n)
{
  if (g->is_main) {
    gmp_out("\tstarted by main\n");
    return;
  }
  /* The start function's own frame names it best (libunwind reads the
   * static symbols too); else the dynamic symbol table. */
  const char *fn = "?";
  for (int i = 0; i < n; i++)
    if (f[i].name[0] && f[i].pc - f[i].off == (uintptr_t)g->fn)
      fn = f[i].name;
  Dl_info di;
  if (*fn == '?' && dladdr((void *)g->fn, &di) && di.dli_sname &&
      di.dli_saddr == (void *)g->fn)
    fn = di.dli_sname;
  gmp_out("\tstarted by %s at 0x%016lx\n", fn, (unsigned long)(uintptr_t)g->fn);
}

static void dump_g(void *tcb, void *arg)
{
  struct dump *d = arg;
  struct g *g = gmp_live_g_of_tcb(tcb);
  if (!g)
    return;
  atomic_store(&gmp_dump_g, g); /* seq_cst: a full barrier before the reads below */
  int st = atomic_load(&g->status);
  struct m *m = g->m;
  bool switched_out = (st == G_WAITING || st == G_RUNNABLE) && !(m && m->curg == g);
  int reason = g->waitreason;
  int64_t since = g->wait_since;
  const void *obj = g->wait.addr;
  int fd = g->wait_fd;
  struct gmp_frame f[DUMP_FRAMES];
  int n = switched_out && g->ctx.rsp ? gmp_unwind_switched(g->ctx.rsp, f, DUMP_FRAMES) : 0;
  atomic_store(&gmp_dump_g, NULL);

  d->total++;
  unsigned long long id = (unsigned long long)g->goid;
  if (st == G_RUNNING || !switched_out) {
    bool insys = atomic_load_explicit(&g->insyscall, memory_order_relaxed);
    if (insys)
      d->syscall++;
    else
      d->running++;
    const char *sn = insys ? g->sysname : NULL;
    gmp_out("goroutine %llu [%s%s%s, M%d]:\n\t(no backtrace: running on its OS thread, tid %d)\n",
            id, insys ? "syscall" : "running", sn ? " " : "", sn ? sn : "", m ? m->id : -1,
            m ? m->ostid : -1);
  } else if (st == G_RUNNABLE) {
    d->runnable++;
    gmp_out("goroutine %llu [runnable]:\n", id);
  } else {
    d->waiting++;
    if (reason > 0 && reason < WAIT__COUNT)
      d->reasons[reason]++;
    long long ms = since && d->now > since ? (long long)((d->now - since) / 1000000) : 0;
    if (reason == WAIT_IOR || reason == WAIT_IOW)
      gmp_out("goroutine %llu [IO wait, %lld ms, %s fd %d]:\n", id, ms,
              reason == WAIT_IOR ? "read" : "write", fd);
    else if (reason == WAIT_SLEEP)
      gmp_out("goroutine %llu [sleep, %lld ms]:\n", id, ms);
    else
      gmp_out("goroutine %llu [%s, %lld ms, on %p]:\n", id, gmp_waitreason_name(reason), ms,
              obj);
  }
  if (n < 0)
    gmp_out("\t(no backtrace: libunwind is not installed)\n");
  else
    put_frames(f, n);
  put_start(g, f, n > 0 ? n : 0);
  gmp_out("\n");
}

void gmp_goroutines(void)
{
  struct dump d = {.now = atomic_load_explicit(&gmp_coarse_now, memory_order_relaxed)};
  if (!d.now)
    d.now = gmp_nanotime();
  gmp_out("libgmp: goroutine dump (pid %d)\n\n", (int)gmp_sys0(SYS_getpid));
  gmp_for_each_tcb(dump_g, &d);
  gmp_out("summary: %d threads: %d running, %d in system calls, %d runnable, %d waiting", d.total,
          d.running, d.syscall, d.runnable, d.waiting);
  const char *sep = " (";
  for (int r = 1; r < WAIT__COUNT; r++) {
    int c = d.reasons[r] + (r == WAIT_IOR ? d.reasons[WAIT_IOW] : 0);
    if (r == WAIT_IOW || !c)
      continue;
    gmp_out("%s%s %d", sep, gmp_waitreason_name(r), c);
    sep = ", ";
  }
  gmp_out("%s\n", *sep == ',' ? ")" : "");
  gmp_out_flush();
}

/* Async-signal-safe: the dump signal's handler (preload/init.c) only
 * raises this flag, and sysmon prints within one round (<= 10 ms). */
void gmp_dump_request(void)
{
  atomic_store(&gmp_dump_requested, 1);
}
