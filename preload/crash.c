/*
 * Crash reports. A fatal signal raised by a thread's own fault (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL) is reported before the default action, naming
 * the green thread: its id, pthread_t, start function, and, for a fault
 * in the guard page below its stack, that it was a stack overflow. Then
 * the default action is restored and the faulting instruction re-runs, so
 * the process dies of the same signal as natively (core dump included).
 *
 * A backtrace follows, from the faulting instruction up, by libunwind
 * (loaded only now, RTLD_LOCAL: linked into libgmp.so its _Unwind_*
 * symbols would stand in for libgcc's in every C++ program), or by
 * glibc's backtrace() when libunwind is not installed.
 *
 * Installed only for signals the program left at their default at start;
 * a handler the program installs later replaces this one. The handler
 * runs on the OS thread's alternate stack (a stack overflow leaves no
 * room on the G's own).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

/* glibc's own entry, past preload/sigaction.c's wrapper of sigaction. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
void gmp_sig_hide(int sig); /* sigaction.c */

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};

#define BT_MAX 48

static void frame(int i, uintptr_t pc, const char *name, uintptr_t off)
{
  Dl_info di;
  const char *obj = dladdr((void *)pc, &di) && di.dli_fname ? di.dli_fname : "?";
  const char *slash = strrchr(obj, '/');
  if (name && *name)
    gmp_printf_err("libgmp:   #%-2d %#014lx %s+%#lx (%s)\n", i, (unsigned long)pc, name,
                   (unsigned long)off, slash ? slash + 1 : obj);
  else
    gmp_printf_err("libgmp:   #%-2d %#014lx ? (%s)\n", i, (unsigned long)pc,
                   slash ? slash + 1 : obj);
}

static void backtrace_of(void *uc)
{
  /* From the faulting frame itself (shim/unwind.c). */
  struct gmp_frame f[BT_MAX];
  int n = gmp_unwind_signal(uc, f, BT_MAX);
  if (n >= 0) {
    gmp_printf_err("libgmp: backtrace (libunwind):\n");
    for (int i = 0; i < n; i++)
      frame(i, f[i].pc, f[i].name, f[i].off);
    return;
  }
  /* glibc's unwinder (libgcc), from this handler's own frame. */
  void *pcs[BT_MAX];
  n = backtrace(pcs, BT_MAX);
  gmp_printf_err("libgmp: backtrace (libunwind not installed; from the signal handler):\n");
  for (int i = 0; i < n; i++) {
    Dl_info di;
    const char *name = dladdr(pcs[i], &di) ? di.dli_sname : NULL;
    frame(i, (uintptr_t)pcs[i], name,
          name ? (uintptr_t)pcs[i] - (uintptr_t)di.dli_saddr : 0);
  }
}

static void report(int sig, siginfo_t *si, void *uc)
{
  struct g *g = gmp_curg();
  if (g) {
    struct gmp_ginfo gi;
    gmp_g_info(g, &gi);
    uintptr_t a = (uintptr_t)si->si_addr;
    bool overflow = sig == SIGSEGV && gi.guard && a < (uintptr_t)gi.stack_lo &&
                    a >= (uintptr_t)gi.stack_lo - gi.guard;
    Dl_info di;
    const char *fn = "?";
    if (gi.is_main)
      fn = "main";
    else if (gi.start && dladdr((void *)gi.start, &di) && di.dli_sname)
      fn = di.dli_sname;
    /* A signal sent by kill/raise/tgkill (si_code <= 0) has no fault
     * address: where si_addr would be, siginfo holds the sender's pid. */
    bool sent = si->si_code <= 0;
    char cause[64];
    if (sent)
      snprintf(cause, sizeof cause, "sent by process %d", (int)si->si_pid);
    else
      snprintf(cause, sizeof cause, "fault address %p", si->si_addr);
    gmp_printf_err("libgmp: fatal signal SIG%s in thread G%llu (pthread_t %#lx, start function "
                   "%s at %p)%s, %s\n",
                   sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", (unsigned long long)gi.id,
                   (unsigned long)gmp_g_pthread(g), fn, (void *)gi.start,
                   overflow && !sent ? ": stack overflow (the guard page below its stack was hit)"
                                     : "",
                   cause);
    if (overflow && !sent)
      gmp_printf_err("libgmp: that thread's stack is %zu bytes; give it more with "
                     "pthread_attr_setstacksize or GMP_STACK_SIZE\n",
                     (size_t)((char *)gi.stack_hi - (char *)gi.stack_lo));
    backtrace_of(uc);
  }
  /* The trace up to the crash is worth having: best effort, from a
   * handler (tev_finish turns tracing off first, so a fault inside it
   * comes back here and goes on to the default action). */
  gmp_tev_finish();
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  __sigaction(sig, &dfl, NULL);
  /* A fault re-runs the instruction and dies of it; a signal sent by
   * kill/raise must be sent again. */
  if (si->si_code == SI_USER || si->si_code == SI_TKILL || si->si_code == SI_QUEUE)
    gmp_sys3(SYS_tgkill, getpid(), gmp_gettid(), sig);
}


void gmp_crash_init(void)
{
  for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
    struct sigaction old, sa;
    if (__sigaction(fatal[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL)
      continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = report;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (__sigaction(fatal[i], &sa, NULL) == 0)
      gmp_sig_hide(fatal[i]); /* the program still sees SIG_DFL */
  }
}
