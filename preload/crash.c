/*
 * Crash reports. A fatal signal raised by a thread's own fault (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL) is reported before the default action, naming
 * the green thread: its id, pthread_t, start function, and, for a fault
 * in the guard page below its stack, that it was a stack overflow. Then
 * the default action is restored and the faulting instruction re-runs, so
 * the process dies of the same signal as natively (core dump included).
 *
 * Installed only for signals the program left at their default at start;
 * a handler the program installs later replaces this one. The handler
 * runs on the OS thread's alternate stack (a stack overflow leaves no
 * room on the G's own).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

/* glibc's own entry, past preload/sigaction.c's wrapper of sigaction. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
void gmp_sig_hide(int sig); /* sigaction.c */

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};

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
    gmp_printf_err("libgmp: fatal signal SIG%s in thread G%llu (pthread_t %#lx, start function "
                   "%s at %p)%s, fault address %p\n",
                   sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", (unsigned long long)gi.id,
                   (unsigned long)gmp_g_pthread(g), fn, (void *)gi.start,
                   overflow ? ": stack overflow (the guard page below its stack was hit)" : "",
                   si->si_addr);
    if (overflow)
      gmp_printf_err("libgmp: that thread's stack is %zu bytes; give it more with "
                     "pthread_attr_setstacksize or GMP_STACK_SIZE\n",
                     (size_t)((char *)gi.stack_hi - (char *)gi.stack_lo));
  }
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
