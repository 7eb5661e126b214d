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

static bool preempt_on;
static void (*async_hook)(void);

void gmp_set_async_hook(void (*hook)(void)) { async_hook = hook; }

void gmp_interrupt_ostid(int ostid)
{
  gmp_sys3(SYS_tgkill, getpid(), ostid, PREEMPT_SIGNAL);
}

bool gmp_eintr_was_ours(void)
{
  struct g *g = gmp_curg_raw();
  return g && g->m && atomic_exchange(&g->m->urg_seen, 0) != 0;
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
  atomic_store(&m->in_preempt, 0);
  gmp_yield();
}

static void handler(int sig, siginfo_t *si, void *ucv)
{
  ucontext_t *uc = ucv;
  int saved_errno = errno;
  struct g *g = gmp_curg();
  if (!g) {
    errno = saved_errno;
    return;
  }
  struct m *m = g->m;
  atomic_store(&m->urg_seen, 1);
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
  if (!gmp_pc_safe(pc))
    goto out;
  /* The program's own signal handler is running (its mask differs): a
   * switch now would carry that mask to other Gs on this M. */
  /* The kernel's frame holds a 64-bit mask: compare only that much (the
   * rest of glibc's 1024-bit sigset_t in ucontext_t is not the mask). */
  if (memcmp(&uc->uc_sigmask, &g->sigmask_eff, 8) != 0)
    goto out;
  if (!g->is_main) {
    if (sp < (uintptr_t)g->stack.lo + 16384 + 1024 || sp > (uintptr_t)g->stack.hi)
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

void gmp_preempt_init(bool enable)
{
  struct sigaction old;
  if (sigaction(PREEMPT_SIGNAL, NULL, &old) != 0)
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
  sigemptyset(&sa.sa_mask);
  sigaction(PREEMPT_SIGNAL, &sa, NULL);
  gmp_preempt_thread_init();
}

bool gmp_preempt_enabled(void) { return preempt_on; }

/* sysmon: the G on p has run for 10 ms without a scheduling point while
 * work waits, and its M is on CPU: ask it to yield. */
void gmp_preempt_request(struct p *p, struct m *m, uint64_t tick)
{
  if (!preempt_on || atomic_load(&m->in_preempt))
    return;
  m->preempt_tick = tick;
  atomic_store(&m->preempt_req, 1);
  gmp_interrupt_ostid(m->ostid);
}
