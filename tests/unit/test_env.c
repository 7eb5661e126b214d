/*
 * Unit tests of the GMP_* value parsers and machine defaults (sched/env.c).
 *
 * Invariants checked:
 *  - gmp_parse_int accepts exactly a base-10 integer (optional sign, no
 *    surrounding space, no suffix) within [lo, hi], bounds inclusive;
 *    it rejects empty/NULL, spaces, junk, out-of-range and overflow with a
 *    non-NULL message naming the range, and leaves *out untouched then;
 *  - gmp_parse_size accepts digits with an optional K/M/G suffix (any
 *    case), optionally followed by B or iB (any case of the B), scaled by
 *    powers of 1024, within [lo, hi]; it rejects signs, spaces, unknown
 *    suffixes, trailing junk, overflow of the digits or of the scaling,
 *    with a non-NULL message and *out untouched;
 *  - gmp_default_procs() is between 1 and the CPUs of the affinity mask,
 *    and follows a narrowed mask;
 *  - gmp_default_stack() is what NPTL uses: RLIMIT_STACK's soft limit
 *    rounded up to a page, 2 MiB when unlimited, 16 KiB at least; read at
 *    each call.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "sched/sched.h"

#define SENTINEL_L (-123456789L)
#define SENTINEL_Z ((size_t)0xdeadbeef)

static void int_ok(const char *s, long lo, long hi, long want)
{
  long out = SENTINEL_L;
  const char *why = gmp_parse_int(s, lo, hi, &out);
  if (why)
    fail_msg("gmp_parse_int(\"%s\", %ld, %ld) rejected: %s", s, lo, hi, why);
  if (out != want)
    fail_msg("gmp_parse_int(\"%s\") = %ld, want %ld", s, out, want);
}

static void int_bad(const char *s, long lo, long hi)
{
  long out = SENTINEL_L;
  const char *why = gmp_parse_int(s, lo, hi, &out);
  if (!why)
    fail_msg("gmp_parse_int(\"%s\", %ld, %ld) accepted (%ld)", s ? s : "(null)", lo, hi, out);
  assert_true(strlen(why) > 0);
  assert_int_equal(out, SENTINEL_L);
}

static void size_ok(const char *s, size_t lo, size_t hi, size_t want)
{
  size_t out = SENTINEL_Z;
  const char *why = gmp_parse_size(s, lo, hi, &out);
  if (why)
    fail_msg("gmp_parse_size(\"%s\") rejected: %s", s, why);
  if (out != want)
    fail_msg("gmp_parse_size(\"%s\") = %zu, want %zu", s, out, want);
}

static void size_bad(const char *s, size_t lo, size_t hi)
{
  size_t out = SENTINEL_Z;
  const char *why = gmp_parse_size(s, lo, hi, &out);
  if (!why)
    fail_msg("gmp_parse_size(\"%s\", %zu, %zu) accepted (%zu)", s ? s : "(null)", lo, hi,
             out);
  assert_true(strlen(why) > 0);
  assert_int_equal(out, SENTINEL_Z);
}

static void test_parse_int_accept(void **state)
{
  (void)state;
  int_ok("0", 0, 10, 0);
  int_ok("1", 1, 256, 1);
  int_ok("256", 1, 256, 256); /* hi inclusive */
  int_ok("42", 1, 256, 42);
  int_ok("007", 0, 10, 7);
  int_ok("+7", 0, 10, 7);
  int_ok("-5", -10, 10, -5);
  int_ok("-10", -10, 10, -10); /* lo inclusive */
  int_ok("-0", 0, 0, 0);
  int_ok("9223372036854775807", 0, LONG_MAX, LONG_MAX);
  int_ok("-9223372036854775808", LONG_MIN, 0, LONG_MIN);
}

static void test_parse_int_reject(void **state)
{
  (void)state;
  int_bad(NULL, 0, 10);
  int_bad("", 0, 10);
  int_bad(" 5", 0, 10);
  int_bad("\t5", 0, 10);
  int_bad("5 ", 0, 10);
  int_bad("5\n", 0, 10);
  int_bad("5x", 0, 10);
  int_bad("x5", 0, 10);
  int_bad("0x5", 0, 10); /* base 10 only */
  int_bad("1.5", 0, 10);
  int_bad("-", 0, 10);
  int_bad("+", 0, 10);
  int_bad("--1", -10, 10);
  int_bad("5K", 0, 1000000); /* no suffixes for integers */
  int_bad("11", 0, 10);
  int_bad("0", 1, 10);
  int_bad("-1", 0, 10);
  int_bad("9223372036854775808", 0, LONG_MAX);  /* overflow */
  int_bad("-9223372036854775809", LONG_MIN, 0); /* underflow */
  int_bad("99999999999999999999999", LONG_MIN, LONG_MAX);

  /* The message names the range. */
  long out;
  const char *why = gmp_parse_int("0", 1, 256, &out);
  assert_non_null(why);
  assert_non_null(strstr(why, "1..256"));
}

static void test_parse_size_accept(void **state)
{
  (void)state;
  const size_t K = 1024, M = K * K, G = M * K;
  size_ok("0", 0, SIZE_MAX, 0);
  size_ok("4096", 0, SIZE_MAX, 4096);
  size_ok("007", 0, SIZE_MAX, 7);
  size_ok("64K", 0, SIZE_MAX, 64 * K);
  size_ok("64k", 0, SIZE_MAX, 64 * K);
  size_ok("1M", 0, SIZE_MAX, M);
  size_ok("8m", 0, SIZE_MAX, 8 * M);
  size_ok("2G", 0, SIZE_MAX, 2 * G);
  size_ok("3g", 0, SIZE_MAX, 3 * G);
  size_ok("8KB", 0, SIZE_MAX, 8 * K);
  size_ok("8Kb", 0, SIZE_MAX, 8 * K);
  size_ok("8kb", 0, SIZE_MAX, 8 * K);
  size_ok("8KiB", 0, SIZE_MAX, 8 * K);
  size_ok("8Kib", 0, SIZE_MAX, 8 * K);
  size_ok("8MiB", 0, SIZE_MAX, 8 * M);
  size_ok("1GiB", 0, SIZE_MAX, G);
  size_ok("8Ki", 0, SIZE_MAX, 8 * K); /* "i" without the B is taken too */
  size_ok("0K", 0, SIZE_MAX, 0);
  /* bounds inclusive, after scaling */
  size_ok("16K", 16384, 16384, 16384);
  size_ok("16384", 16384, 16384, 16384);
  /* largest value whose scaling does not overflow 64 bits */
  size_ok("17179869183G", 0, SIZE_MAX, (size_t)17179869183ULL * G);
  size_ok("18446744073709551615", 0, SIZE_MAX, SIZE_MAX);
}

static void test_parse_size_reject(void **state)
{
  (void)state;
  size_bad(NULL, 0, SIZE_MAX);
  size_bad("", 0, SIZE_MAX);
  size_bad(" 1", 0, SIZE_MAX);
  size_bad("1 ", 0, SIZE_MAX);
  size_bad("1K ", 0, SIZE_MAX);
  size_bad("1 K", 0, SIZE_MAX);
  size_bad("-1", 0, SIZE_MAX); /* strtoull would wrap it */
  size_bad("+1", 0, SIZE_MAX);
  size_bad("K", 0, SIZE_MAX);
  size_bad("1X", 0, SIZE_MAX);
  size_bad("1T", 0, SIZE_MAX);
  size_bad("1B", 0, SIZE_MAX); /* B alone is not a suffix */
  size_bad("1KK", 0, SIZE_MAX);
  size_bad("1KBB", 0, SIZE_MAX);
  size_bad("1KiBx", 0, SIZE_MAX);
  size_bad("1KIB", 0, SIZE_MAX); /* only a lower-case i */
  size_bad("1Kix", 0, SIZE_MAX);
  size_bad("1.5M", 0, SIZE_MAX);
  size_bad("0x10", 0, SIZE_MAX);
  size_bad("18446744073709551616", 0, SIZE_MAX);       /* digits overflow */
  size_bad("17179869184G", 0, SIZE_MAX);               /* scaling overflows */
  size_bad("18014398509481984K", 0, SIZE_MAX);         /* 2^54 K = 2^64 */
  size_bad("16383", 16384, SIZE_MAX);
  size_bad("15K", 16384, SIZE_MAX);
  size_bad("2G", 0, (size_t)1 << 30);
  size_bad("1025M", 0, (size_t)1 << 30);

  size_t out;
  const char *why = gmp_parse_size("1", 16384, 65536, &out);
  assert_non_null(why);
  assert_non_null(strstr(why, "16384"));
  assert_non_null(strstr(why, "65536"));
}

/* GMP_DEBUG=dumpsignal: names with or without SIG, any case, numbers;
 * refused: uncatchable signals, the runtime's SIGURG, faults, junk. */
static void test_parse_signal(void **state)
{
  (void)state;
  int sig = 0;
  assert_null(gmp_parse_signal("SIGQUIT", &sig));
  assert_int_equal(sig, SIGQUIT);
  assert_null(gmp_parse_signal("usr2", &sig));
  assert_int_equal(sig, SIGUSR2);
  assert_null(gmp_parse_signal("SigHup", &sig));
  assert_int_equal(sig, SIGHUP);
  assert_null(gmp_parse_signal("10", &sig));
  assert_int_equal(sig, 10);
  sig = -1;
  const char *bad[] = {"", "SIGKILL", "STOP", "9", "SIGURG", "SIGSEGV", "0", "65", "QUITX",
                       "SIG", " 3", "3 ", "-3", "SIGQUIT,"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *why = gmp_parse_signal(bad[i], &sig);
    assert_non_null(why);
    assert_non_null(strstr(why, "signal"));
    assert_int_equal(sig, -1);
  }
  assert_non_null(gmp_parse_signal(NULL, &sig));
}

static void test_default_procs(void **state)
{
  (void)state;
  cpu_set_t set;
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  int ncpu = CPU_COUNT(&set);
  assert_true(ncpu >= 1);
  int n = gmp_default_procs();
  assert_true(n >= 1);
  assert_true(n <= ncpu);

  /* Narrow the mask to one CPU: exactly 1 P. */
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) {
      first = c;
      break;
    }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
  int n1 = gmp_default_procs();
  assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
  assert_int_equal(n1, 1);

  if (ncpu >= 2) {
    int second = -1;
    for (int c = first + 1; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &set)) {
        second = c;
        break;
      }
    cpu_set_t two = one;
    CPU_SET(second, &two);
    assert_int_equal(sched_setaffinity(0, sizeof two, &two), 0);
    int n2 = gmp_default_procs();
    assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
    assert_true(n2 >= 1 && n2 <= 2);
  }
}

/* Set the soft RLIMIT_STACK, call gmp_default_stack, restore. Returns
 * false if the limit could not be set (the check is then skipped). */
static bool stack_with_limit(rlim_t soft, size_t *out)
{
  struct rlimit old, rl;
  assert_int_equal(getrlimit(RLIMIT_STACK, &old), 0);
  rl = old;
  rl.rlim_cur = soft;
  if (old.rlim_max != RLIM_INFINITY && soft > old.rlim_max)
    return false;
  if (setrlimit(RLIMIT_STACK, &rl) != 0)
    return false;
  *out = gmp_default_stack();
  assert_int_equal(setrlimit(RLIMIT_STACK, &old), 0);
  return true;
}

static void test_default_stack(void **state)
{
  (void)state;
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_STACK, &rl), 0);
  size_t now = gmp_default_stack();
  if (rl.rlim_cur == RLIM_INFINITY)
    assert_int_equal(now, 2u << 20);
  else if (rl.rlim_cur >= 16384 && rl.rlim_cur % 4096 == 0)
    assert_int_equal(now, (size_t)rl.rlim_cur);

  size_t v;
  assert_true(stack_with_limit(1u << 20, &v));
  assert_int_equal(v, 1u << 20);
  assert_true(stack_with_limit(3u << 20, &v));
  assert_int_equal(v, 3u << 20);
  /* not a page multiple: rounded up to a page, as NPTL does */
  assert_true(stack_with_limit(100000, &v));
  assert_int_equal(v, 102400);
  assert_true(stack_with_limit(16384, &v));
  assert_int_equal(v, 16384);
  /* below 16 KiB: PTHREAD_STACK_MIN (16 KiB), as NPTL */
  assert_true(stack_with_limit(12288, &v));
  assert_int_equal(v, 16384);
  /* unlimited: NPTL's ARCH_STACK_DEFAULT_SIZE, 2 MiB */
  if (stack_with_limit(RLIM_INFINITY, &v))
    assert_int_equal(v, 2u << 20);
  else
    print_message("RLIMIT_STACK hard limit is finite: unlimited case not checked\n");

  /* restored */
  assert_int_equal(gmp_default_stack(), now);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_int_accept),
      cmocka_unit_test(test_parse_int_reject),
      cmocka_unit_test(test_parse_size_accept),
      cmocka_unit_test(test_parse_size_reject),
      cmocka_unit_test(test_parse_signal),
      cmocka_unit_test(test_default_procs),
      cmocka_unit_test(test_default_stack),
  };
  return cmocka_run_group_tests_name("env", tests, NULL, NULL);
}
