/*
 * Raw system interface for the runtime: syscalls that bypass libc's
 * wrappers (and so our own interposed ones, errno and cancellation),
 * futexes, clocks, and allocation-free diagnostics.
 */
#define _GNU_SOURCE
#include "shim/shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

long gmp_sys(long nr, long a, long b, long c, long d, long e, long f)
{
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* clock_gettime goes through the vDSO (no syscall); it does not touch
 * errno for valid clocks, and the runtime passes only valid ones. */
int64_t gmp_nanotime(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t gmp_walltime(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t gmp_clock_ns(clockid_t clk)
{
  struct timespec ts;
  if (gmp_sys2(SYS_clock_gettime, clk, &ts) != 0 &&
      clock_gettime(clk, &ts) != 0)
    return -1;
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int gmp_futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
    tp = &ts;
  }
  long r = gmp_sys4(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tp);
  return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

void gmp_futex_wake(uint32_t *addr, int n)
{
  gmp_sys3(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n);
}

int gmp_gettid(void)
{
  return (int)gmp_sys0(SYS_gettid);
}

void gmp_write_err(const char *s)
{
  size_t n = strlen(s);
  while (n > 0) {
    long w = gmp_sys3(SYS_write, 2, s, n);
    if (w == -EINTR)
      continue;
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

/* vsnprintf neither allocates nor locks for the formats used here. */
void gmp_printf_err(const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  gmp_write_err(buf);
}

_Noreturn void gmp_fatal(const char *fmt, ...)
{
  char buf[512];
  int n = snprintf(buf, sizeof buf, "libgmp: fatal: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  gmp_write_err(buf);
  gmp_write_err("\n");
  abort();
}

long gmp_read_file(const char *path, char *buf, size_t len)
{
  long fd = gmp_sys3(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t got = 0;
  while (got + 1 < len) {
    long r = gmp_sys3(SYS_read, fd, buf + got, len - 1 - got);
    if (r == -EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  gmp_sys1(SYS_close, fd);
  buf[got] = 0;
  return (long)got;
}
