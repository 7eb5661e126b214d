/*
 * Asynchronous preemption, after Go's preempt.go and signal_unix.go, with
 * the changes ../shared/notes/preemption-findings.md measured as needed:
 *
 *  - sysmon asks (preempt_req + preempt_tick) and sends SIGURG only to an
 *    M it just saw on CPU running a G's user code for over 10 ms while
 *    other work waits for its P;
 *  - the handler never writes to the G's stack (the kernel's xstate magic
 *    can sit exactly where a pushed return address would go, and AVX state
 *    is then silently lost): it parks the interrupted pc in the M and
 *    points the context's pc at the trampoline (shim/preempt_x86_64.S),
 *    which saves everything, including xsave state, and yields;
 *  - it injects only at a safe point: the P is in P_USER (the G runs user
 *    code, not the runtime or a wrapped call), the pc is in the program's
 *    code (shim/ranges.c), the G's stack has room, no injection is pending
 *    on this M, and the request is not stale;
 *  - the handler runs on a per-M alternate signal stack (SA_ONSTACK), so
 *    the kernel's 3 KB frame never lands on a small G stack.
 * SIGURG is also how a cancelled G blocked in a system call is
 * interrupted; the handler is installed without SA_RESTART for that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "sched/internal.h"

#define PREEMPT_SIGNAL SIGURG
#define ALTSTACK_SIZE (64 * 1024)

/* glibc's own entry, past preload/sigaction.c's wrapper of sigaction. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);

static bool preempt_on;
static bool urg_owned;
static void (*urg_chain)(int, void *, void *);

bool gmp_owns_sigurg(void) { return urg_owned; }
void gmp_set_urg_chain(void (*chain)(int, void *, void *)) { urg_chain = chain; }
static void (*async_hook)(void);

void gmp_set_async_hook(void (*hook)(void)) { async_hook = hook; }
void gmp_run_async_hook(void)
{
  if (async_hook)
    async_hook();
}

/* The runtime's SIGURGs carry a mark, so that the handler tells them from
 * the program's own (pthread_kill, out-of-band data, another process). */
#define URG_MARK 0x676d7075 /* "gmpu" */

void gmp_interrupt_ostid(int ostid)
{
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = PREEMPT_SIGNAL;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = URG_MARK;
  gmp_sys4(SYS_rt_tgsigqueueinfo, si.si_pid, ostid, PREEMPT_SIGNAL, &si);
}

bool gmp_urg_is_runtime(const void *infop)
{
  const siginfo_t *si = infop;
  return si->si_code == SI_QUEUE && si->si_pid == getpid() && si->si_value.sival_int == URG_MARK;
}

/* g->urg_eintr: 0 none; 1 a program's handler with SA_RESTART ran; 2 one
 * without it ran; 3 only the runtime's SIGURG (nothing of the program's). */
bool gmp_eintr_was_ours(void)
{
  struct g *g = gmp_curg_raw();
  int f = g ? atomic_exchange_explicit(&g->urg_eintr, 0, memory_order_relaxed) : 0;
  return f == 1 || f == 3;
}

bool gmp_eintr_only_ours(void)
{
  struct g *g = gmp_curg_raw();
  return g && atomic_exchange_explicit(&g->urg_eintr, 0, memory_order_relaxed) == 3;
}

/* Did this signal interrupt a system call, making it fail with EINTR? The
 * handler runs without SA_RESTART, so the kernel left -EINTR in rax and
 * the pc right after the 2-byte syscall instruction. Checked so that a
 * SIGURG that caught the G in user code leaves no flag behind for a later
 * EINTR of the program's own. */
static bool interrupted_syscall(const ucontext_t *uc)
{
  if (uc->uc_mcontext.gregs[REG_RAX] != -EINTR)
    return false;
  const unsigned char *pc = (const unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
  /* At the very start of a page the bytes before may be unmapped: do not
   * read them; -EINTR in rax there is taken as a system call's. */
  if (((uintptr_t)pc & 4095) < 2)
    return true;
  return pc[-2] == 0x0f && pc[-1] == 0x05;
}

uintptr_t gmp_preempt_enter(void)
{
  struct g *g = gmp_curg_raw();
  return g->m->preempt_rip;
}

void gmp_preempt_yield(void)
{
  struct g *g = gmp_curg_raw();
  struct m *m = g->m;
  m->n_preempt++;
  g->preempted = true;
  atomic_store(&m->in_preempt, 0);
  gmp_yield();
}

void gmp_preempt_point(void)
{
  struct g *g = gmp_curg();
  if (!g || !atomic_load_explicit(&g->preempt_coop, memory_order_relaxed))
    return;
  atomic_store_explicit(&g->preempt_coop, false, memory_order_relaxed);
  /* Not from inside a handler of the program's (a wrapper called by it):
   * a switch would leave its signal mask or alternate stack to whichever
   * G this M runs next. Either shows: the OS thread's mask is not the
   * G's, or the stack is not the G's own. */
  char here;
  uintptr_t sp = (uintptr_t)&here;
  if (!g->is_main && (sp < (uintptr_t)g->stack.lo || sp > (uintptr_t)g->stack.hi))
    return;
  uint64_t cur = 0;
  if (gmp_sys4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &cur, 8) != 0 || cur != g->sigmask_eff)
    return;
  g->m->n_preempt++;
  g->preempted = true;
  gmp_yield();
}

static void handler(int sig, siginfo_t *si, void *ucv)
{
  ucontext_t *uc = ucv;
  int saved_errno = errno;
  /* Only the runtime's own SIGURGs (gmp_interrupt_ostid) are acted on;
   * anything else (out-of-band TCP data, another process, the program's
   * pthread_kill) is the program's. */
  /* gmp-schedtrace asking for the control socket (ctl.c): a sigqueue from
   * another process of the same user, with its own mark. */
  if (si->si_code == SI_QUEUE && si->si_value.sival_int == GMP_CTL_MARK &&
      si->si_uid == getuid()) {
    gmp_ctl_request();
    /* A system call it interrupted is restarted, as after our own. */
    struct g *cg = gmp_curg();
    if (cg && interrupted_syscall(uc))
      atomic_store_explicit(&cg->urg_eintr, 3, memory_order_relaxed);
    errno = saved_errno;
    return;
  }
  if (si->si_code != SI_QUEUE || si->si_pid != getpid() || si->si_value.sival_int != URG_MARK) {
    if (urg_chain)
      urg_chain(sig, si, ucv);
    errno = saved_errno;
    return;
  }
  struct g *g = gmp_curg();
  if (!g) {
    errno = saved_errno;
    return;
  }
  struct m *m = g->m;
  /* Signals queued for this G (signal.c): re-sent to this OS thread, they
   * are delivered as soon as this handler returns (its mask blocks them
   * meanwhile), in the G, on its own stack. A system call this SIGURG
   * interrupted is then restarted only if their handlers all want it. */
  bool restart = true;
  int delivered = gmp_sig_flush(g, &restart);
  if (interrupted_syscall(uc))
    atomic_store_explicit(&g->urg_eintr, !delivered ? 3 : restart ? 1 : 2,
                          memory_order_relaxed);
  if (async_hook)
    async_hook(); /* may not return (asynchronous cancellation) */
  if (!preempt_on || !atomic_exchange(&m->preempt_req, 0))
    goto out;
  struct p *p = m->p;
  if (!p || p->m != m || atomic_load(&p->status) != P_USER ||
      p->schedtick != m->preempt_tick || atomic_load(&m->in_preempt))
    goto out;
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  /* The program's own signal handler is running (its mask differs): a
   * switch now would carry that mask to other Gs on this M. */
  /* The kernel's frame holds a 64-bit mask: compare only that much (the
   * rest of glibc's 1024-bit sigset_t in ucontext_t is not the mask). */
  if (memcmp(&uc->uc_sigmask, &g->sigmask_eff, 8) != 0)
    goto out;
  /* Not at a safe pc (libc, libgmp: locks may be held), or too deep in
   * its stack for the trampoline's frame: leave the request to the G's
   * next wrapper return. A loop of short system calls and libc work
   * spends nearly all its time there, and would otherwise keep its P
   * for good (a thread waiting for a P after waitpid starved so). */
  if (!gmp_pc_safe(pc) ||
      (!g->is_main &&
       (sp < (uintptr_t)g->stack.lo + 16384 + 1024 || sp > (uintptr_t)g->stack.hi))) {
    atomic_store_explicit(&g->preempt_coop, true, memory_order_relaxed);
    goto out;
  }
  m->preempt_rip = pc;
  atomic_store(&m->in_preempt, 1);
  uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)gmp_preempt_tramp;
out:
  errno = saved_errno;
}

/* Per OS thread: an alternate signal stack for the handler. */
void gmp_preempt_thread_init(void)
{
  stack_t ss;
  ss.ss_sp = malloc(ALTSTACK_SIZE);
  if (!ss.ss_sp)
    return;
  ss.ss_size = ALTSTACK_SIZE;
  ss.ss_flags = 0;
  sigaltstack(&ss, NULL);
}

void gmp_preempt_thread_fini(void)
{
  stack_t ss, old;
  memset(&ss, 0, sizeof ss);
  ss.ss_flags = SS_DISABLE;
  if (sigaltstack(&ss, &old) == 0 && old.ss_sp && !(old.ss_flags & SS_DISABLE))
    free(old.ss_sp);
}

void gmp_preempt_init(bool enable)
{
  struct sigaction old;
  if (__sigaction(PREEMPT_SIGNAL, NULL, &old) != 0)
    return;
  if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
    /* The program handles SIGURG itself: leave it alone, no preemption. */
    return;
  }
  preempt_on = enable && gmp_xsave_init() && gmp_ranges_build();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  /* No SA_RESTART: a cancelled G's blocked call must fail with EINTR.
   * Preemption signals only go to Ms seen running user code. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  /* Everything else blocked while it runs: a program handler re-sent from
   * here must not run nested on this alternate stack. */
  sigfillset(&sa.sa_mask);
  sigdelset(&sa.sa_mask, SIGSEGV);
  sigdelset(&sa.sa_mask, SIGBUS);
  sigdelset(&sa.sa_mask, SIGILL);
  sigdelset(&sa.sa_mask, SIGFPE);
  if (__sigaction(PREEMPT_SIGNAL, &sa, NULL) == 0)
    urg_owned = true;
  gmp_preempt_thread_init();
}

/* The handler runs on the per-M alternate stack so that its frame never
 * lands on a small G stack; but a program's SIGURG handler, called from
 * it, must run on its thread's own stack: one that yields or waits
 * switches Gs, and the frame would be left on an alternate stack that the
 * M's next SIGURG overwrites. While the program has a SIGURG handler, the
 * runtime's handler runs on whatever stack was interrupted, as the
 * program's own would natively. */
void gmp_preempt_urg_onstack(bool program_handler)
{
  if (!urg_owned)
    return;
  struct sigaction sa;
  if (__sigaction(PREEMPT_SIGNAL, NULL, &sa) != 0)
    return;
  bool onstack = !program_handler;
  if (((sa.sa_flags & SA_ONSTACK) != 0) == onstack)
    return;
  if (onstack)
    sa.sa_flags |= SA_ONSTACK;
  else
    sa.sa_flags &= ~SA_ONSTACK;
  __sigaction(PREEMPT_SIGNAL, &sa, NULL);
}

bool gmp_preempt_enabled(void) { return preempt_on; }

/* sysmon: the G on p has run for 10 ms without a scheduling point while
 * work waits, and its M is on CPU: ask it to yield. */
void gmp_preempt_request(struct p *p, struct m *m, uint64_t tick)
{
  atomic_store_explicit(&p->slice_end, 1, memory_order_relaxed);
  if (!preempt_on) {
    /* No signal (GMP_DEBUG=asyncpreemptoff=1, or the program owns
     * SIGURG): the G gives way at its next wrapper return, as the
     * handler would have arranged for one in libc. m->curg may have moved
     * on meanwhile: a G is never freed, and a spurious request costs one
     * yield. */
    struct g *g = m->curg;
    if (g && !g->is_g0)
      atomic_store_explicit(&g->preempt_coop, true, memory_order_relaxed);
    return;
  }
  if (atomic_load(&m->in_preempt))
    return;
  m->preempt_tick = tick;
  atomic_store(&m->preempt_req, 1);
  gmp_interrupt_ostid(m->ostid);
}
