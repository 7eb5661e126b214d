/*
 * Parsing of GMP_* values and the defaults derived from the machine.
 * Pure functions of their inputs (and of /proc, /sys for the defaults),
 * usable before the runtime starts and from unit tests.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sched/sched.h"

const char *gmp_parse_int(const char *s, long lo, long hi, long *out)
{
  static char why[96];
  snprintf(why, sizeof why, "an integer in %ld..%ld", lo, hi);
  if (!s || !*s || isspace((unsigned char)*s))
    return why;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return why;
  *out = v;
  return NULL;
}

const char *gmp_parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
  static char why[128];
  snprintf(why, sizeof why, "a size in bytes from %zu to %zu, with an optional K, M or G suffix",
           lo, hi);
  if (!s || !*s || !isdigit((unsigned char)*s))
    return why;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno)
    return why;
  unsigned long long mul = 1;
  if (*end) {
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1ULL << 10; break;
    case 'M': mul = 1ULL << 20; break;
    case 'G': mul = 1ULL << 30; break;
    default: return why;
    }
    end++;
    if (toupper((unsigned char)*end) == 'B' || *end == 'i')
      end += (*end == 'i' && toupper((unsigned char)end[1]) == 'B') ? 2 : 1;
    if (*end)
      return why;
  }
  if (v > ULLONG_MAX / mul)
    return why;
  v *= mul;
  if (v < lo || v > hi)
    return why;
  *out = (size_t)v;
  return NULL;
}

const char *gmp_parse_signal(const char *s, int *out)
{
  static const char why[] =
      "a signal name or number a program may catch (SIGQUIT, QUIT, USR2, 12, ...)";
  if (!s || !*s)
    return why;
  int sig = 0;
  if (isdigit((unsigned char)*s)) {
    long v;
    if (gmp_parse_int(s, 1, SIGRTMAX, &v))
      return why;
    sig = (int)v;
  } else {
    const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
    for (int i = 1; i < NSIG && !sig; i++) {
      const char *ab = sigabbrev_np(i);
      if (ab && strcasecmp(ab, name) == 0)
        sig = i;
    }
  }
  /* Not catchable, the runtime's own (SIGURG: preemption), or a fault
   * (a dump would hide the crash report). */
  if (sig <= 0 || sig == SIGKILL || sig == SIGSTOP || sig == SIGURG || sig == SIGSEGV ||
      sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig >= NSIG)
    return why;
  *out = sig;
  return NULL;
}

/* cgroup v2: "max 100000" or "<quota> <period>"; v1: two files. The
 * quota rounds up: 1.5 CPUs of quota still get 2 Ps (automaxprocs rounds
 * down; Go 1.25 rounds up: a P is cheap, starving a half CPU is not). */
static bool read_quota_v2(const char *path, long long *quota, long long *period)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  char q[32];
  bool ok = fscanf(f, "%31s %lld", q, period) == 2;
  fclose(f);
  *quota = ok && strcmp(q, "max") != 0 ? atoll(q) : -1;
  return ok;
}

static long long read_ll(const char *path)
{
  FILE *f = fopen(path, "re");
  long long v = -1;
  if (f) {
    if (fscanf(f, "%lld", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

/* The CPU quota of our cgroup, in CPUs rounded up, or 0 if none. v2
 * (unified: "0::/path", file cpu.max = "<quota|max> <period>") is tried
 * first; on v1 and hybrid hierarchies the cpu controller's own line
 * ("N:cpu,cpuacct:/path") gives the path of cpu.cfs_quota_us. The quota
 * rounds up: 1.5 CPUs of quota still get 2 Ps. */
static int cgroup_limit(void)
{
  char buf[512], path[768], v2rel[256] = "", v1rel[256] = "";
  bool has_v2 = false, has_v1 = false;
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return 0;
  while (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\n")] = 0;
    char *c1 = strchr(buf, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c2 = 0;
    const char *ctrls = c1 + 1, *rel = c2 + 1;
    if (strncmp(buf, "0", 1) == 0 && *ctrls == 0) {
      has_v2 = true;
      snprintf(v2rel, sizeof v2rel, "%s", rel);
    } else {
      char list[128];
      snprintf(list, sizeof list, ",%s,", ctrls);
      if (strstr(list, ",cpu,")) {
        has_v1 = true;
        snprintf(v1rel, sizeof v1rel, "%s", rel);
      }
    }
  }
  fclose(f);
  long long quota = -1, period = 0;
  bool found = false;
  if (has_v2) {
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", v2rel);
    found = read_quota_v2(path, &quota, &period);
  }
  if (!found && has_v1) {
    static const char *roots[] = {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"};
    for (size_t i = 0; i < 2 && !found; i++) {
      for (int pass = 0; pass < 2 && !found; pass++) {
        const char *rel = pass == 0 ? v1rel : "";
        snprintf(path, sizeof path, "%s%s/cpu.cfs_quota_us", roots[i], rel);
        quota = read_ll(path);
        if (quota == -1 && access(path, R_OK) != 0)
          continue;
        snprintf(path, sizeof path, "%s%s/cpu.cfs_period_us", roots[i], rel);
        period = read_ll(path);
        found = true;
      }
    }
  }
  if (!found || quota <= 0 || period <= 0)
    return 0;
  long long n = (quota + period - 1) / period;
  return n < 1 ? 1 : (int)(n > INT_MAX ? INT_MAX : n);
}

int gmp_default_procs(void)
{
  cpu_set_t set;
  int n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 0 ? (int)c : 1;
  }
  int q = cgroup_limit();
  if (q > 0 && q < n)
    n = q;
  return n < 1 ? 1 : n;
}

/* What NPTL's __pthread_initialize_minimal does: RLIMIT_STACK, 2 MiB
 * (ARCH_STACK_DEFAULT_SIZE) when unlimited, at least PTHREAD_STACK_MIN,
 * rounded up to a page. */
size_t gmp_default_stack(void)
{
  struct rlimit rl;
  size_t sz = 2u << 20;
  if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    sz = (size_t)rl.rlim_cur;
  if (sz < 16384)
    sz = 16384;
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0)
    sz = (sz + (size_t)ps - 1) & ~((size_t)ps - 1);
  return sz;
}
