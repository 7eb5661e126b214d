/*
 * The library constructor: configuration from GMP_* variables, and the
 * decision to run the runtime or to pass everything through to glibc.
 *
 * Fail safe to native: any precondition that does not hold (unknown glibc
 * layout, loaded too late, a thread already running, out of memory)
 * prints one line on stderr and leaves gmp_running false, so every
 * wrapper calls straight through and the program runs on native threads.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload/preload.h"

#define GMP_VERSION "0.1.0"

void gmp_mutex_thread_exit(void); /* mutex.c */

/* At every G's exit, before its TLS goes: what the kernel does at a
 * thread's (robust mutexes, clear_child_tid). */
static void thread_exit(void)
{
  gmp_mutex_thread_exit();
  gmp_tid_thread_exit();
}
void gmp_cancel_init(void);       /* cancel.c */
void gmp_crash_init(void);        /* crash.c */
void gmp_tsd_init(void);          /* tsd.c */
void gmp_sigaction_init(void);    /* sigaction.c */
void gmp_sig_hide(int sig);       /* sigaction.c */

static bool truthy(const char *name, const char *v)
{
  if (!v || !*v || strcmp(v, "0") == 0)
    return false;
  if (strcmp(v, "1") != 0)
    gmp_printf_err("libgmp: %s='%s' is invalid (want 0 or 1); using 1\n", name, v);
  return true;
}

static int count_threads(void)
{
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* GMP_DEBUG=key=value,key=value (GODEBUG style). Unknown keys are
 * reported once each and ignored. */
static bool stats;

static void print_stats(void)
{
  gmp_stats_print();
}

/* glibc's own entry, past preload/sigaction.c's wrapper of sigaction. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
void gmp_sig_hide(int sig); /* sigaction.c */

/* GMP_DEBUG=dumpsignal=SIG: the signal prints a goroutine dump instead of
 * its default action. Installed like the crash report (the program sees
 * SIG_DFL; a handler it installs later replaces this one). */
static void on_dumpsignal(int sig)
{
  gmp_dump_request();
}

static void dumpsignal_init(int sig)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_dumpsignal;
  sa.sa_flags = SA_RESTART; /* an interrupted call goes on as if nothing happened */
  sigemptyset(&sa.sa_mask);
  if (__sigaction(sig, &sa, NULL) != 0) {
    gmp_printf_err("libgmp: GMP_DEBUG dumpsignal=%d: sigaction failed; off\n", sig);
    return;
  }
  gmp_sig_hide(sig);
  gmp_sig_own(sig);
}

static void parse_debug(const char *s, struct gmp_config *c)
{
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s);
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) {
      gmp_printf_err("libgmp: GMP_DEBUG: '%s' is not key=value; ignored\n", kv);
      continue;
    }
    *eq = 0;
    const char *v = eq + 1;
    long n;
    const char *why;
    if (strcmp(kv, "guardlimit") == 0) {
      if ((why = gmp_parse_int(v, 0, 1000000000L, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG guardlimit='%s' is invalid (want %s); using the default\n", v, why);
      else
        c->guard_limit = n;
    } else if (strcmp(kv, "schedtrace") == 0) {
      if ((why = gmp_parse_int(v, 0, 3600000, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG schedtrace='%s' is invalid (want %s milliseconds); off\n", v, why);
      else
        c->schedtrace_ms = (int)n;
    } else if (strcmp(kv, "scheddetail") == 0 || strcmp(kv, "stats") == 0) {
      if ((why = gmp_parse_int(v, 0, 1, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG %s='%s' is invalid (want 0 or 1); using 0\n", kv, v);
      else if (strcmp(kv, "scheddetail") == 0)
        c->scheddetail = n != 0;
      else
        stats = n != 0;
    } else if (strcmp(kv, "maxthreads") == 0) {
      if ((why = gmp_parse_int(v, 2, 1000000, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG maxthreads='%s' is invalid (want %s); using 10000\n", v, why);
      else
        c->maxthreads = (int)n;
    } else if (strcmp(kv, "asyncpreemptoff") == 0) {
      if ((why = gmp_parse_int(v, 0, 1, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG asyncpreemptoff='%s' is invalid (want 0 or 1); using 0\n", v);
      else
        c->asyncpreemptoff = n != 0;
    } else if (strcmp(kv, "dumpsignal") == 0) {
      int sig;
      if ((why = gmp_parse_signal(v, &sig)))
        gmp_printf_err("libgmp: GMP_DEBUG dumpsignal='%s' is invalid (want %s); off\n", v, why);
      else
        c->dumpsignal = sig;
    } else if (strcmp(kv, "verbose") == 0) {
      if ((why = gmp_parse_int(v, 0, 9, &n)))
        gmp_printf_err("libgmp: GMP_DEBUG verbose='%s' is invalid (want %s); using 0\n", v, why);
      else
        c->verbose = (int)n;
    } else {
      gmp_printf_err("libgmp: GMP_DEBUG: unknown key '%s' (known: asyncpreemptoff, dumpsignal, guardlimit, maxthreads, schedtrace, scheddetail, stats, verbose); ignored\n", kv);
    }
  }
}

__attribute__((constructor(101))) static void gmp_init(void)
{
  const char *missing = gmp_real_init();
  if (missing) {
    gmp_printf_err("libgmp: disabled, running on native threads: cannot resolve %s\n", missing);
    return;
  }
  if (truthy("GMP_DISABLE", getenv("GMP_DISABLE")))
    return;

  struct gmp_config c = {
      .maxprocs = gmp_default_procs(),
      .stack_size = gmp_default_stack(),
      .guard_limit = -1,
      .maxthreads = 10000,
      .verbose = 0,
  };
  const char *v, *why;
  if ((v = getenv("GMP_MAXPROCS")) && *v) {
    long n;
    if ((why = gmp_parse_int(v, 1, 1024, &n)))
      gmp_printf_err("libgmp: GMP_MAXPROCS='%s' is invalid (want %s); using %d\n", v, why,
                     c.maxprocs);
    else
      c.maxprocs = (int)n;
  }
  if ((v = getenv("GMP_STACK_SIZE")) && *v) {
    size_t n;
    if ((why = gmp_parse_size(v, 16384, (size_t)1 << 30, &n)))
      gmp_printf_err("libgmp: GMP_STACK_SIZE='%s' is invalid (want %s); using %zu\n", v, why,
                     c.stack_size);
    else
      c.stack_size = n;
  }
  if ((v = getenv("GMP_DEBUG")) && *v)
    parse_debug(v, &c);
  c.tracefile = getenv("GMP_TRACEFILE");
  if ((v = getenv("GMP_TRACE")) && *v)
    c.tracejson = v;
  if (truthy("GMP_VERBOSE", getenv("GMP_VERBOSE")) && c.verbose == 0)
    c.verbose = 1;

  /* The main thread becomes the main G: that is only sound while it is
   * the only thread (LD_PRELOAD at exec time, not a late dlopen). */
  int nthreads = count_threads();
  if (gmp_gettid() != getpid() || nthreads > 1) {
    gmp_printf_err("libgmp: disabled, running on native threads: it must be loaded with "
                   "LD_PRELOAD when the program starts (found %d threads)\n", nthreads);
    return;
  }

  gmp_tsd_init(); /* before the runtime makes any key of its own */
  struct gmp_native nat = {.create = real_pthread_create, .join = real_pthread_join};
  const char *fail = gmp_sched_init(&c, &nat);
  if (fail) {
    gmp_printf_err("libgmp: disabled, running on native threads: %s\n", fail);
    return;
  }
  if (stats)
    atexit(print_stats);
  gmp_set_exit_hook(thread_exit);
  gmp_cancel_init();
  gmp_crash_init();
  gmp_sigaction_init();
  if (gmp_owns_sigurg())
    gmp_sig_hide(SIGURG);
  if (c.dumpsignal)
    dumpsignal_init(c.dumpsignal);
  /* Registered first, so our prepare runs last and our child handler
   * first: the program's own child handlers may already create threads. */
  pthread_atfork(gmp_fork_prepare, gmp_fork_parent, gmp_fork_child);
  if (c.verbose)
    gmp_printf_err("libgmp %s: on; GMP_MAXPROCS=%d GMP_STACK_SIZE=%zu guards=%s "
                   "fs-switch=%s glibc=2.36 pid=%d\n", GMP_VERSION, c.maxprocs,
                   c.stack_size, gmp_stack_guard_regions() ? "regions" : "mprotect",
                   gmp_cpu_has_fsgsbase() ? "wrfsbase" : "arch_prctl", (int)getpid());
}
