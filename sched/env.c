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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* cgroup v2: "max 100000" or "<quota> <period>"; v1: two files. The
 * quota rounds up: 1.5 CPUs of quota still get 2 Ps (automaxprocs rounds
 * down; Go 1.25 rounds up: a P is cheap, starving a half CPU is not). */
static int cgroup_limit(void)
{
  char buf[256], path[512];
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return 0;
  char rel[256] = "";
  bool v2 = false;
  while (fgets(buf, sizeof buf, f)) {
    if (strncmp(buf, "0::", 3) == 0) {
      v2 = true;
      snprintf(rel, sizeof rel, "%s", buf + 3);
    }
  }
  fclose(f);
  rel[strcspn(rel, "\n")] = 0;
  long long quota = -1, period = 0;
  if (v2) {
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", rel);
    f = fopen(path, "re");
    if (!f) {
      f = fopen("/sys/fs/cgroup/cpu.max", "re");
    }
    if (f) {
      char q[32];
      if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
        quota = atoll(q);
      fclose(f);
    }
  } else {
    f = fopen("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "re");
    if (!f)
      f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "re");
    if (f) {
      if (fscanf(f, "%lld", &quota) != 1)
        quota = -1;
      fclose(f);
    }
    f = fopen("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "re");
    if (!f)
      f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "re");
    if (f) {
      if (fscanf(f, "%lld", &period) != 1)
        period = 0;
      fclose(f);
    }
  }
  if (quota <= 0 || period <= 0)
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

size_t gmp_default_stack(void)
{
  struct rlimit rl;
  size_t sz = 8u << 20;
  if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur >= 16384)
    sz = (size_t)rl.rlim_cur;
  return sz;
}
