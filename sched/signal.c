/*
 * Signals to threads that are green threads.
 *
 * The kernel delivers a signal to an OS thread (an M), but the program
 * sent it to a thread (a G), or to the process, to be handled by "a
 * thread that does not block it". Three rules make the difference
 * invisible:
 *
 *  1. An M that runs a G has the G's mask (proc.c, at switch-in). An M
 *     with nothing to run sleeps with every asynchronous signal blocked,
 *     and sysmon blocks them all, so the kernel only ever picks an OS
 *     thread that is running, on the program's behalf, a G that accepts
 *     the signal — or a G waiting in sigwait/sigsuspend in the kernel.
 *
 *  2. A process-directed signal that no running G accepts stays pending.
 *     sysmon looks at the process's pending set; a signal still pending
 *     on its next round while some parked G accepts it is rescued: with no
 *     handler (default action or ignore), sysmon unblocks it in itself
 *     and the kernel applies the action there (Ctrl-C ends a process whose
 *     threads are all waiting); with a handler, sysmon takes it from the
 *     pending set (sigtimedwait) and sends it to that G, rule 3.
 *
 *  3. A signal for a G (pthread_kill, pthread_sigqueue, a rescue) is
 *     queued in the G with its siginfo. If the G waits, the wait ends
 *     (GMP_PARK_INTERRUPTED); if it runs, its M gets a SIGURG. Either way
 *     the G, running again, re-sends the signal to its own OS thread with
 *     rt_tgsigqueueinfo — the handler then runs in the G, with the G's
 *     TLS, errno and pthread_self, on the G's stack — and only then does
 *     its interrupted call return EINTR (or restart, per SA_RESTART).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sched/internal.h"

#define SIGBIT(s) (1ULL << ((s) - 1))

/* Synchronous signals are never blocked by the runtime: a fault in a
 * runtime thread must still reach the crash report. */
#define SYNC_SIGS (SIGBIT(SIGSEGV) | SIGBIT(SIGBUS) | SIGBIT(SIGFPE) | SIGBIT(SIGILL) | \
                   SIGBIT(SIGTRAP) | SIGBIT(SIGSYS))

/* glibc's SIGSETXID (__SIGRTMIN + 1): setuid, setgid, setgroups, ... in
 * a process with more than one OS thread send it to every thread glibc
 * knows -- the Ms and sysmon, made with pthread_create -- and wait until
 * each has made the same call: Linux credentials are per OS thread.
 * Blocked here, the caller waits forever (memcached -u, any daemon that
 * drops privileges after its threads start). */
#define SETXID_SIG 33

uint64_t gmp_idle_sigmask(void) { return ~(SIGBIT(SIGURG) | SIGBIT(SETXID_SIG) | SYNC_SIGS); }
uint64_t gmp_sysmon_sigmask(void) { return ~(SIGBIT(SETXID_SIG) | SYNC_SIGS); }

/* The kernel's struct sigaction (rt_sigaction with a 64-bit mask). */
struct ksigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  uint64_t mask;
};

static bool action_of(int sig, struct ksigaction *ka)
{
  return gmp_sys4(SYS_rt_sigaction, sig, NULL, ka, 8) == 0;
}

/* ---- SIGSETXID --------------------------------------------------------
 * glibc's handler (nptl_setxid.c) makes the set*id call on the OS thread
 * it lands on, then clears the SETXID bit in THREAD_SELF -- the TCB in fs
 * -- and __nptl_setxid signals again every listed thread whose bit is
 * still set. An M running a G has the G's TCB in fs: the bit of the M's
 * own TCB (the one glibc listed, with this M's tid) would never clear and
 * the caller would signal that M again and again while it runs Gs. Run
 * glibc's handler with fs set to the TCB glibc knows this OS thread by. */
static void (*glibc_setxid)(int, siginfo_t *, void *);

static void setxid_handler(int sig, siginfo_t *si, void *uc)
{
  struct g *g = gmp_curg_raw();
  void *own = g && g->m ? gmp_m_glibc_tcb(g->m) : NULL;
  void *cur = gmp_thread_self();
  if (!own || own == cur) {
    glibc_setxid(sig, si, uc);
    return;
  }
  gmp_sys2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, (long)own);
  glibc_setxid(sig, si, uc);
  gmp_sys2(SYS_arch_prctl, 0x1002, (long)cur);
}

/* After the first pthread_create (glibc installs its handler then). */
void gmp_setxid_init(void)
{
  struct ksigaction ka;
  if (!action_of(SETXID_SIG, &ka) || !(ka.flags & SA_SIGINFO) ||
      ka.handler == (void *)setxid_handler)
    return;
  glibc_setxid = (void (*)(int, siginfo_t *, void *))ka.handler;
  ka.handler = (void *)setxid_handler;
  /* Nothing else -- SIGURG above all, whose handler reads the TCB slot --
   * may run while fs is not the running G's. */
  ka.mask = ~SYNC_SIGS;
  gmp_sys4(SYS_rt_sigaction, SETXID_SIG, &ka, NULL, 8);
}

/* ---- rule 3: per-G queue ----------------------------------------------- */

/* Queue one instance of sig in g: a real-time one is counted (they
 * queue), a standard one is a bit (they merge, as in the kernel). The bit
 * last, seq_cst: the pairing with a parking G (gmp_signal_g). */
static void queue_one(struct g *g, int sig)
{
  if (sig >= 32 && atomic_load(&g->rt_count[sig - 32]) < UINT16_MAX)
    atomic_fetch_add(&g->rt_count[sig - 32], 1);
  atomic_fetch_or(&g->sigpend, SIGBIT(sig));
}

/* How many instances of sig to deliver now that its bit was cleared. */
static int instances(struct g *g, int sig)
{
  return sig >= 32 ? atomic_exchange(&g->rt_count[sig - 32], 0) : 1;
}

/* A G's siginfo table (one slot per signal, 8 KiB), made on its first
 * signal and kept with the G. Carved from shared 512 KiB chunks with raw
 * mmap and atomics: async-signal-safe, so that a signal handler
 * (gmp_sig_on_g0) can make one too, and one mapping per 64 threads, not
 * per thread. A table lost to a racing maker is never reused: rare. */
#define TABLES_PER_CHUNK 64
#define TABLE_BYTES (64 * sizeof(siginfo_t))

static _Atomic(char *) chunk_cur;
static _Atomic(uintptr_t) chunk_used; /* tables handed out of chunk_cur */

static siginfo_t *table_alloc(void)
{
  for (;;) {
    char *c = atomic_load(&chunk_cur);
    if (c) {
      uintptr_t i = atomic_fetch_add(&chunk_used, 1);
      if (i < TABLES_PER_CHUNK && atomic_load(&chunk_cur) == c)
        return (siginfo_t *)(c + i * TABLE_BYTES);
    }
    long r = gmp_sys6(SYS_mmap, 0, TABLE_BYTES * TABLES_PER_CHUNK, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r < 0 && r > -4096)
      return NULL;
    /* Install it unless someone else did meanwhile; its first table is
     * ours. */
    char *fresh = (char *)r;
    if (atomic_compare_exchange_strong(&chunk_cur, &c, fresh)) {
      atomic_store(&chunk_used, 1);
      return (siginfo_t *)fresh;
    }
    gmp_sys2(SYS_munmap, fresh, TABLE_BYTES * TABLES_PER_CHUNK);
  }
}

static siginfo_t *infos(struct g *g)
{
  siginfo_t *si = atomic_load(&g->siginfo);
  if (si)
    return si;
  siginfo_t *fresh = table_alloc();
  if (!fresh)
    return NULL; /* the signal is still delivered, with a plain siginfo */
  void *none = NULL;
  if (atomic_compare_exchange_strong(&g->siginfo, &none, fresh))
    return fresh;
  return none;
}

/* A signal the kernel delivered to an M on its scheduler context (g0):
 * an M applies a G's mask just before switching to it (execute), and a
 * signal pending for the process is delivered right there. If that G
 * accepts it, it is the G's: queued in it, so the G runs the handler as
 * it resumes (a parked G checks its queue when its park returns), before
 * the code after its wait -- a thread woken by poll sees a signal sent
 * before the data it waited for. Async-signal-safe: no allocation.
 * Returns false when it does not give it to a G (the caller re-queues it
 * to the process). */
bool gmp_sig_on_g0(const void *infop)
{
  const siginfo_t *info = infop;
  int sig = info->si_signo;
  struct g *g0 = gmp_curg_raw();
  struct m *m = g0 ? g0->m : NULL;
  struct g *g = m ? m->curg : NULL;
  /* RUNNING: execute() has made it the M's G (a G that just switched out
   * is WAITING or RUNNABLE, and its own checks are behind it). */
  if (!g || g->is_g0 || sig < 1 || sig > 64 || (g->sigmask & SIGBIT(sig)) ||
      atomic_load(&g->status) != G_RUNNING)
    return false;
  /* Its siginfo comes along (a timer's SI_TIMER and value, a sigqueue's
   * value: haproxy's watchdog killed the process when its timer's signal
   * arrived looking like a tkill). Never refused once the G accepts it:
   * a refusal (blocked on this OS thread, back to the process) would let
   * the G run with the signal blocked. A second real-time instance (the
   * unblocking that delivered one delivers the next right after) is
   * counted; a standard one already pending merges, as in the kernel. */
  siginfo_t *si = infos(g);
  if (!si)
    return false;
  si[sig - 1] = *info;
  atomic_fetch_or(&g->sigpend_proc, SIGBIT(sig));
  queue_one(g, sig);
  return true;
}

/* Give a signal back to the process, for a thread that accepts it
 * (async-signal-safe). The kernel lets only the sender itself use the
 * sender's codes (SI_USER, SI_TKILL, kernel ones): then as a sigqueue. */
void gmp_sig_to_process(const void *infop)
{
  const siginfo_t *info = infop;
  long pid = gmp_sys0(SYS_getpid);
  if (gmp_sys3(SYS_rt_sigqueueinfo, pid, info->si_signo, info) == -EPERM) {
    siginfo_t q = *info;
    q.si_code = SI_QUEUE;
    gmp_sys3(SYS_rt_sigqueueinfo, pid, info->si_signo, &q);
  }
}

static void queued_info(struct g *g, int sig, siginfo_t *info, long pid);

void gmp_sig_dead(struct g *g)
{
  uint64_t proc = atomic_exchange(&g->sigpend_proc, 0);
  uint64_t back = atomic_exchange(&g->sigpend, 0) & proc;
  while (back) {
    int sig = __builtin_ctzll(back) + 1;
    back &= back - 1;
    siginfo_t info;
    queued_info(g, sig, &info, gmp_sys0(SYS_getpid));
    for (int k = instances(g, sig); k > 0; k--)
      gmp_sig_to_process(&info);
  }
}

void gmp_signal_g(struct g *g, const void *infop)
{
  const siginfo_t *info = infop;
  int sig = info->si_signo;
  if (sig < 1 || sig > 64)
    return;
  siginfo_t *si = infos(g);
  if (si)
    si[sig - 1] = *info;
  /* The queue before the look at the park state (both seq_cst): a G
   * about to park checks the queue after publishing its park state
   * (park.c), so one of the two sees the other. */
  queue_one(g, sig);
  if (g->sigmask & SIGBIT(sig)) {
    /* Blocked: delivered when the G unblocks it, or taken by a sigwait.
     * One in progress publishes its set before it looks at the queue
     * (both seq_cst): it finds the signal there, or its M gets a SIGURG,
     * which its wait takes and which sends it back to the queue. */
    if (atomic_load(&g->sigwait_set) & SIGBIT(sig)) {
      /* Parked (reading a signalfd): the park ends. Else in sigwait's
       * system call, or about to wait: a kick. */
      if (gmp_park_interrupt(g, GMP_PARK_INTERRUPTED))
        return;
      int ostid = gmp_g_ostid(g);
      if (ostid)
        gmp_interrupt_ostid(ostid);
    }
    return;
  }
  if (gmp_park_interrupt(g, GMP_PARK_INTERRUPTED))
    return;
  int ostid = gmp_g_ostid(g);
  if (ostid)
    gmp_interrupt_ostid(ostid); /* running, or in a system call */
  /* else runnable: it delivers when it next runs (gmp_sig_flush) */
}

/* ---- sigwait ------------------------------------------------------------- */

#define URG_SIGBIT SIGBIT(SIGURG)

/* The siginfo a queued signal was sent with (a plain tkill one if the
 * G's table could not be allocated). */
static void queued_info(struct g *g, int sig, siginfo_t *info, long pid)
{
  siginfo_t *si = atomic_load(&g->siginfo);
  if (si) {
    *info = si[sig - 1];
    return;
  }
  memset(info, 0, sizeof *info);
  info->si_signo = sig;
  info->si_code = SI_TKILL;
  info->si_pid = (pid_t)pid;
}

/* Take the lowest signal of set queued for g (only g itself takes from
 * its queue; senders only add). */
static int take_queued(struct g *g, uint64_t set, siginfo_t *info)
{
  uint64_t have = atomic_load(&g->sigpend) & set;
  if (!have)
    return 0;
  int sig = __builtin_ctzll(have) + 1;
  if (sig >= 32) {
    /* One instance; the bit stays while others do. */
    uint16_t c = atomic_load(&g->rt_count[sig - 32]);
    while (c && !atomic_compare_exchange_weak(&g->rt_count[sig - 32], &c, c - 1))
      ;
    if (c <= 1) {
      atomic_fetch_and(&g->sigpend, ~SIGBIT(sig));
      /* A sender that counted one in between has set the bit, or will. */
      if (atomic_load(&g->rt_count[sig - 32]))
        atomic_fetch_or(&g->sigpend, SIGBIT(sig));
    }
    if (!c)
      return take_queued(g, set & ~SIGBIT(sig), info); /* a stale bit */
  } else {
    atomic_fetch_and(&g->sigpend, ~SIGBIT(sig));
    atomic_fetch_and(&g->sigpend_proc, ~SIGBIT(sig));
  }
  queued_info(g, sig, info, gmp_sys0(SYS_getpid));
  return sig;
}

int gmp_sig_take(uint64_t set, void *infop)
{
  return take_queued(gmp_curg_raw(), set, infop);
}

uint64_t gmp_sig_queued_blocked(void)
{
  struct g *g = gmp_curg_raw();
  return atomic_load(&g->sigpend) & g->sigmask;
}

uint64_t gmp_sigwake_swap(uint64_t set)
{
  return atomic_exchange(&gmp_curg_raw()->sigwait_set, set);
}

bool gmp_sigwake_pending(void)
{
  struct g *g = gmp_curg_raw();
  return (atomic_load(&g->sigpend) & atomic_load(&g->sigwait_set)) != 0;
}

int gmp_sigwait_once(uint64_t set, void *infop, int64_t deadline)
{
  struct g *g = gmp_curg_raw();
  siginfo_t *info = infop;
  /* The kernel's wait takes the runtime's SIGURG as well, blocked on this
   * OS thread meanwhile: a kick sent before the wait began stays pending
   * and ends it at once, so no kick is lost between the look at the
   * queue and the system call. */
  uint64_t kset = set | URG_SIGBIT;
  uint64_t outer = atomic_exchange(&g->sigwait_set, set);
  gmp_sigwait_mask(true);
  long r = take_queued(g, set, info);
  if (!r) {
    struct timespec left, *lp = NULL;
    if (deadline) {
      int64_t ns = deadline - gmp_nanotime();
      if (ns < 0)
        ns = 0;
      left.tv_sec = ns / 1000000000;
      left.tv_nsec = ns % 1000000000;
      lp = &left;
    }
    gmp_entersyscall_as("sigtimedwait");
    r = gmp_sys4(SYS_rt_sigtimedwait, &kset, info, lp, 8);
    gmp_exitsyscall();
  }
  atomic_store(&g->sigwait_set, outer); /* a handler's sigwait in a wait */
  /* On whichever M the G is now (the system call may have cost it its P
   * and its M): its own mask again. */
  gmp_sigwait_mask(false);
  if (r != SIGURG)
    return (int)r;
  if (gmp_urg_is_runtime(info)) {
    /* A kick: a signal queued for the G, or a cancel. One the G does not
     * block (so not one it waits for) has its handler run now, and the
     * wait ends with EINTR as natively; else look again. */
    bool restart;
    return gmp_sig_flush(g, &restart) > 0 ? -EINTR : 0;
  }
  if (info->si_code == SI_QUEUE && info->si_value.sival_int == GMP_CTL_MARK &&
      info->si_uid == getuid()) {
    gmp_ctl_request();
    return 0;
  }
  if (set & URG_SIGBIT)
    return SIGURG; /* the program's own, and it waits for it */
  /* The program's SIGURG, not waited for: give it back to this OS thread,
   * where its handler (or the default action) takes it. */
  gmp_sys4(SYS_rt_tgsigqueueinfo, gmp_sys0(SYS_getpid), gmp_sys0(SYS_gettid), SIGURG, info);
  return 0;
}

int gmp_sig_flush(struct g *g, bool *restart_all)
{
  *restart_all = true;
  uint64_t want = atomic_load_explicit(&g->sigpend, memory_order_relaxed) & ~g->sigmask;
  if (!want)
    return 0;
  uint64_t got = atomic_fetch_and(&g->sigpend, ~want) & want;
  atomic_fetch_and(&g->sigpend_proc, ~got);
  long pid = gmp_sys0(SYS_getpid);
  int n = 0;
  /* Not while the handlers run: a park of theirs (a mutex) would end at
   * once, again and again, for a signal only the outer wait takes. */
  uint64_t waking = atomic_exchange(&g->sigwait_set, 0);
  while (got) {
    int sig = __builtin_ctzll(got) + 1;
    got &= got - 1;
    siginfo_t info;
    queued_info(g, sig, &info, pid);
    struct ksigaction ka;
    if (!action_of(sig, &ka) || !(ka.flags & SA_RESTART))
      *restart_all = false;
    g->last_sig = sig;
    /* To this OS thread, which runs g and has the signal unblocked: the
     * handler runs before the syscall returns (or, from the SIGURG
     * handler, right after it returns). No scheduling point in between,
     * so g is still on this M. */
    int copies = instances(g, sig);
    if (!copies)
      continue; /* a stale bit: taken already */
    while (copies--)
      gmp_sys4(SYS_rt_tgsigqueueinfo, pid, g->m->ostid, sig, &info);
    n++;
  }
  atomic_store(&g->sigwait_set, waking);
  return n;
}

void gmp_sig_check(struct g *g)
{
  if (__builtin_expect(atomic_load_explicit(&g->sigpend, memory_order_relaxed) != 0, 0)) {
    bool restart;
    gmp_sig_flush(g, &restart);
  }
}

bool gmp_sig_restart(void)
{
  struct g *g = gmp_curg_raw();
  struct ksigaction ka;
  return g->last_sig && action_of(g->last_sig, &ka) && (ka.flags & SA_RESTART);
}

/* ---- rule 2: sysmon's rescue ---------------------------------------------- */

struct accept_scan {
  uint64_t bit;
  struct g *found;
};

static void scan_tcb(void *tcb, void *arg)
{
  struct accept_scan *a = arg;
  if (a->found)
    return;
  /* Only a parked thread: one that is runnable takes the signal itself
   * when it next runs (its mask applied at the switch, the kernel delivers
   * there), and one that runs may be on its way out, to die and be reused
   * with the signal queued in it before sysmon could tell. */
  struct g *g = gmp_live_g_of_tcb(tcb);
  if (g && !(g->sigmask & a->bit) && atomic_load(&g->status) == G_WAITING)
    a->found = g;
}

static uint64_t prev_pending;
static uint64_t runtime_sigs; /* set before any other thread exists */

/* sig is the runtime's own (GMP_DEBUG=dumpsignal): one that nobody
 * running accepts is taken by sysmon itself, not bounced through a
 * parked thread (whose wait it would interrupt). */
void gmp_sig_own(int sig)
{
  runtime_sigs |= SIGBIT(sig);
}

void gmp_sig_rescue(void)
{
  uint64_t pend = 0;
  if (gmp_sys2(SYS_rt_sigpending, &pend, 8) != 0)
    return;
  pend &= ~(SIGBIT(SIGURG) | SYNC_SIGS);
  /* Pending for a whole sysmon round: no G that accepts it ran since. */
  uint64_t act = pend & prev_pending;
  prev_pending = pend;
  while (act) {
    int sig = __builtin_ctzll(act) + 1;
    act &= act - 1;
    if (runtime_sigs & SIGBIT(sig)) {
      uint64_t one = SIGBIT(sig);
      siginfo_t info;
      struct timespec zero = {0, 0};
      if (gmp_sys4(SYS_rt_sigtimedwait, &one, &info, &zero, 8) == sig)
        gmp_dump_request();
      continue;
    }
    struct accept_scan a = {SIGBIT(sig), NULL};
    gmp_for_each_tcb(scan_tcb, &a);
    if (!a.found)
      continue; /* every thread blocks it: it stays pending, as natively */
    struct ksigaction ka;
    if (!action_of(sig, &ka))
      continue;
    uint64_t one = SIGBIT(sig);
    if (ka.handler == SIG_DFL || ka.handler == SIG_IGN) {
      /* The action is the process's, not a thread's: let the kernel
       * apply it here (terminate, stop, or discard). */
      gmp_sys4(SYS_rt_sigprocmask, SIG_UNBLOCK, &one, NULL, 8);
      gmp_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &one, NULL, 8);
      continue;
    }
    siginfo_t info;
    struct timespec zero = {0, 0};
    if (gmp_sys4(SYS_rt_sigtimedwait, &one, &info, &zero, 8) == sig) {
      /* Queued first, marked the process's then, the status looked at
       * last (all seq_cst): if the G died meanwhile, either gdestroy sees
       * the mark and finds the signal queued, or we see it dead (see
       * gdestroy) and hand back what it left. */
      gmp_signal_g(a.found, &info);
      atomic_fetch_or(&a.found->sigpend_proc, one);
      if (atomic_load(&a.found->status) == G_DEAD)
        gmp_sig_dead(a.found);
    }
  }
}
