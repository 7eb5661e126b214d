/*
 * Unit tests of G stacks (shim/stack.c).
 *
 * Invariants checked:
 *  - gmp_stack_alloc rounds size and guard up to pages; [lo, hi) is
 *    writable, hi - lo >= the size asked, lo == map + guard, and the
 *    mapping is exactly maplen bytes from map;
 *  - the guard below lo is PROT_NONE: touching lo-1 (or the bottom of a
 *    multi-page guard) kills the process with SIGSEGV (checked in a
 *    forked child);
 *  - guards come from a budget (gmp_stack_init(limit)): past it a stack
 *    has guard == 0 and a GMP_STACK_CANARY word at lo, which gmp_stack_ok
 *    checks; gmp_stack_free gives the budget back
 *    (gmp_stack_guarded_count), and a second free is harmless;
 *  - user stacks and empty stacks are always "ok" and never unmapped;
 *  - when the guard's mprotect fails (the process is at vm.max_map_count),
 *    the stack degrades to canary mode and gmp_stack_free still unmaps
 *    the whole mapping (see test_mprotect_failure_no_leak).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/shim.h"

static size_t ps;

static int setup(void **state)
{
  (void)state;
  gmp_stack_init(1000);
  ps = gmp_page_size();
  return 0;
}

/* Is [p, p+len) mapped at all? msync fails with ENOMEM on a hole. */
static bool mapped(const void *p, size_t len)
{
  return msync((void *)((uintptr_t)p & ~(uintptr_t)(ps - 1)), len, MS_ASYNC) == 0;
}

static void test_page_size(void **state)
{
  (void)state;
  assert_int_equal(gmp_page_size(), (size_t)sysconf(_SC_PAGESIZE));
}

static void test_alloc_guarded(void **state)
{
  (void)state;
  gmp_stack_init(1000);
  long c0 = gmp_stack_guarded_count();
  struct gmp_stack s;
  memset(&s, 0xa5, sizeof s);
  assert_int_equal(gmp_stack_alloc(&s, 64 * 1024 + 1, 1), 0);
  assert_false(s.user);
  assert_int_equal(s.guard, ps);
  assert_int_equal((size_t)(s.hi - s.lo), 64 * 1024 + ps); /* rounded up */
  assert_ptr_equal(s.lo, s.map + s.guard);
  assert_int_equal(s.maplen, (size_t)(s.hi - s.map));
  assert_int_equal((uintptr_t)s.hi % 16, 0);
  assert_int_equal(gmp_stack_guarded_count(), c0 + 1);
  assert_true(gmp_stack_ok(&s));
  assert_true(mapped(s.map, s.maplen));
  /* the whole usable range is writable and reads back */
  memset(s.lo, 0x5a, (size_t)(s.hi - s.lo));
  for (char *p = s.lo; p < s.hi; p += 509)
    assert_int_equal((unsigned char)*p, 0x5a);
  assert_int_equal((unsigned char)s.hi[-1], 0x5a);

  char *map = s.map;
  size_t len = s.maplen;
  gmp_stack_free(&s);
  assert_null(s.map);
  assert_null(s.lo);
  assert_null(s.hi);
  assert_int_equal(gmp_stack_guarded_count(), c0);
  assert_false(mapped(map, len));
  gmp_stack_free(&s); /* again: no-op, budget not returned twice */
  assert_int_equal(gmp_stack_guarded_count(), c0);
}

/* Touch addr in a forked child; return how the child ended. */
static int touch_in_child(volatile char *addr, bool write)
{
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* ASan/UBSan install a SEGV handler that exits with a report: the
     * guard page must be seen killing the process, so restore SIG_DFL. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    if (write)
      *addr = 1;
    else
      (void)*addr;
    _exit(0);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return st;
}

static void test_guard_faults(void **state)
{
  (void)state;
  gmp_stack_init(1000);
  struct gmp_stack s;
  assert_int_equal(gmp_stack_alloc(&s, 32 * 1024, 3 * ps), 0);
  assert_int_equal(s.guard, 3 * ps);

  int st = touch_in_child(s.lo - 1, true);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSEGV);
  st = touch_in_child(s.lo - 1, false);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSEGV);
  st = touch_in_child(s.map, true); /* bottom of the guard */
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGSEGV);
  /* control: lo itself is fine */
  st = touch_in_child(s.lo, true);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  st = touch_in_child(s.hi - 1, true);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  gmp_stack_free(&s);
}

/* Switch the allocator to guard regions, or skip the test where the
 * kernel has none. */
static void use_guard_regions_or_skip(void)
{
  gmp_stack_init(-1);
  if (!gmp_stack_guard_regions()) {
    print_message("kernel without MADV_GUARD_INSTALL: guard regions not tested\n");
    gmp_stack_init(1000);
    skip();
  }
}

/* Guard regions (madvise MADV_GUARD_INSTALL, Linux >= 6.13): stacks are
 * carved from shared mappings, each keeps a guard that faults, no budget
 * is consumed, and a freed stack leaves its neighbours intact. */
static void test_guard_regions(void **state)
{
  (void)state;
  use_guard_regions_or_skip();
  long c0 = gmp_stack_guarded_count();
  struct gmp_stack a, b, c;
  assert_int_equal(gmp_stack_alloc(&a, 64 * 1024, ps), 0);
  assert_int_equal(gmp_stack_alloc(&b, 64 * 1024, ps), 0);
  assert_int_equal(gmp_stack_alloc(&c, 64 * 1024, ps), 0);
  assert_true(a.region && b.region && c.region);
  assert_int_equal(a.guard, ps);
  assert_int_equal(gmp_stack_guarded_count(), c0); /* no VMA budget used */
  assert_ptr_equal(b.map, a.map + a.maplen);       /* carved side by side */
  memset(b.lo, 0x5a, (size_t)(b.hi - b.lo));
  assert_int_equal(touch_in_child(b.lo - 1, true), SIGSEGV); /* b's guard */
  assert_int_equal(touch_in_child(b.lo, true), 0);
  char *bmap = b.map;
  gmp_stack_free(&b);
  assert_false(mapped(bmap, 64 * 1024));
  /* neighbours still usable */
  a.hi[-1] = 1;
  c.lo[0] = 1;
  assert_int_equal(touch_in_child(c.lo - 1, true), SIGSEGV);
  gmp_stack_free(&a);
  gmp_stack_free(&c);

  /* Past several slabs (8, 16, 32, then 64 stacks a mapping, their guards
   * installed together where the kernel allows): every stack has its
   * guard. */
  enum { NS = 70 };
  struct gmp_stack v[NS];
  for (int i = 0; i < NS; i++)
    assert_int_equal(gmp_stack_alloc(&v[i], 32 * 1024, ps), 0);
  for (int i = 0; i < NS; i++) {
    assert_true(v[i].region);
    assert_int_equal(touch_in_child(v[i].lo - 1, true), SIGSEGV);
    assert_int_equal(touch_in_child(v[i].lo, true), 0);
  }
  /* Same slot size, bigger guard: its own slab, the whole guard faults. */
  struct gmp_stack w;
  assert_int_equal(gmp_stack_alloc(&w, 32 * 1024 - ps, 2 * ps), 0);
  assert_int_equal(w.guard, 2 * ps);
  assert_int_equal(touch_in_child(w.map, true), SIGSEGV);
  assert_int_equal(touch_in_child(w.lo - 1, true), SIGSEGV);
  assert_int_equal(touch_in_child(w.lo, true), 0);
  gmp_stack_free(&w);
  for (int i = 0; i < NS; i++)
    gmp_stack_free(&v[i]);
  gmp_stack_init(1000);
}

static long vm_size_kib(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  assert_non_null(f);
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* More stack sizes in turn than there are slab cursors: each take evicts
 * a cursor. The evicted slab's uncarved rest must be unmapped, or every
 * thread creation leaks a slab of address space (and the page tables of
 * its guards): 2,000 creations leaked some 12 GiB here before. */
static void test_guard_regions_many_sizes(void **state)
{
  (void)state;
  use_guard_regions_or_skip();
  struct gmp_stack s;
  long before = vm_size_kib();
  for (int i = 0; i < 2000; i++) {
    size_t size = (size_t)(64 + (i % 20) * 16) * 1024;
    assert_int_equal(gmp_stack_alloc(&s, size, ps), 0);
    assert_true(s.region);
    s.hi[-1] = 1;
    gmp_stack_free(&s);
  }
  long grown = vm_size_kib() - before;
  print_message("VmSize grew by %ld KiB over 2,000 stacks of 20 sizes\n", grown);
  assert_true(grown < 256 * 1024);
  /* The slabs left behind still carve working, guarded stacks. */
  assert_int_equal(gmp_stack_alloc(&s, 64 * 1024, ps), 0);
  assert_int_equal(touch_in_child(s.lo - 1, true), SIGSEGV);
  assert_int_equal(touch_in_child(s.lo, true), 0);
  gmp_stack_free(&s);
  gmp_stack_init(1000);
}

static void test_guard_budget(void **state)
{
  (void)state;
  gmp_stack_init(2);
  assert_int_equal(gmp_stack_guarded_count(), 0);
  struct gmp_stack s1, s2, s3, s4;
  assert_int_equal(gmp_stack_alloc(&s1, 16 * 1024, ps), 0);
  assert_int_equal(gmp_stack_alloc(&s2, 16 * 1024, ps), 0);
  assert_int_equal(gmp_stack_guarded_count(), 2);
  assert_int_equal(gmp_stack_alloc(&s3, 16 * 1024, ps), 0);
  assert_int_equal(s1.guard, ps);
  assert_int_equal(s2.guard, ps);
  assert_int_equal(gmp_stack_guarded_count(), 2);

  /* The third is past the budget: canary mode. */
  assert_int_equal(s3.guard, 0);
  assert_ptr_equal(s3.lo, s3.map);
  assert_true((size_t)(s3.hi - s3.lo) >= 16 * 1024);
  assert_int_equal(s3.maplen, (size_t)(s3.hi - s3.map));
  assert_true(*(uint64_t *)s3.lo == GMP_STACK_CANARY);
  assert_true(gmp_stack_ok(&s3));
  /* the rest is usable */
  memset(s3.lo + 8, 0x11, (size_t)(s3.hi - s3.lo) - 8);
  assert_true(gmp_stack_ok(&s3));
  /* an overflow that reaches lo is detected */
  s3.lo[0] ^= 1;
  assert_false(gmp_stack_ok(&s3));
  *(uint64_t *)s3.lo = 0;
  assert_false(gmp_stack_ok(&s3));
  *(uint64_t *)s3.lo = GMP_STACK_CANARY;
  assert_true(gmp_stack_ok(&s3));

  /* Guarded stacks do not need the canary. */
  memset(s1.lo, 0, 8);
  assert_true(gmp_stack_ok(&s1));

  /* Free a guarded one: its budget is available again. */
  gmp_stack_free(&s1);
  assert_int_equal(gmp_stack_guarded_count(), 1);
  assert_int_equal(gmp_stack_alloc(&s4, 16 * 1024, ps), 0);
  assert_int_equal(s4.guard, ps);
  assert_int_equal(gmp_stack_guarded_count(), 2);
  /* Freeing a canary stack does not touch the budget. */
  gmp_stack_free(&s3);
  assert_int_equal(gmp_stack_guarded_count(), 2);
  gmp_stack_free(&s2);
  gmp_stack_free(&s4);
  assert_int_equal(gmp_stack_guarded_count(), 0);

  /* A zero budget: never a guard. */
  gmp_stack_init(0);
  assert_int_equal(gmp_stack_alloc(&s1, 16 * 1024, ps), 0);
  assert_int_equal(s1.guard, 0);
  assert_int_equal(gmp_stack_guarded_count(), 0);
  assert_true(gmp_stack_ok(&s1));
  gmp_stack_free(&s1);
  gmp_stack_init(1000);
}

static void test_no_guard_requested(void **state)
{
  (void)state;
  gmp_stack_init(1000);
  long c0 = gmp_stack_guarded_count();
  struct gmp_stack s;
  assert_int_equal(gmp_stack_alloc(&s, 5000, 0), 0);
  assert_int_equal(s.guard, 0);
  assert_int_equal((size_t)(s.hi - s.lo), 2 * ps);
  assert_int_equal(s.maplen, 2 * ps);
  assert_true(*(uint64_t *)s.lo == GMP_STACK_CANARY);
  assert_true(gmp_stack_ok(&s));
  assert_int_equal(gmp_stack_guarded_count(), c0);
  char *map = s.map;
  gmp_stack_free(&s);
  assert_false(mapped(map, 2 * ps));
  assert_int_equal(gmp_stack_guarded_count(), c0);
}

static void test_user_and_empty(void **state)
{
  (void)state;
  static char buf[8192] __attribute__((aligned(64)));
  memset(buf, 0, sizeof buf);
  struct gmp_stack u = {.lo = buf, .hi = buf + sizeof buf, .user = true};
  assert_true(gmp_stack_ok(&u)); /* no canary in a user stack */
  gmp_stack_free(&u);             /* never unmapped */
  assert_ptr_equal(u.lo, buf);
  buf[0] = 1;
  struct gmp_stack e;
  memset(&e, 0, sizeof e);
  assert_true(gmp_stack_ok(&e));
  gmp_stack_free(&e);
}

/*
 * Former bug (shim/stack.c, gmp_stack_alloc, the `mprotect` failure path,
 * lines "s->maplen = size + (guard ? guard : 0);" ff.): when the guard's
 * mprotect fails (ENOMEM at vm.max_map_count, the very case the comment
 * "Out of map budget after all" handles), guard is set to 0 *before*
 * maplen is computed, so maplen = size although size + guard bytes were
 * mapped; the "use it all" branch below it (`!guard && s->maplen != size`)
 * can never be true. Result: hi is guard bytes below the mapping's end and
 * gmp_stack_free munmaps only `size` bytes, leaking the top `guard` bytes
 * of every stack made in that state. Scenario (reproduced here in a child
 * process): fill the map budget with mprotect splits, free two VMA slots,
 * gmp_stack_alloc(64 KiB, 1 page) -> returns 0 with guard == 0 and
 * maplen == 64 KiB; after gmp_stack_free the page at map + 64 KiB is still
 * mapped. (Found by this test; fixed in stack.c: maplen is computed from
 * the guard that was mapped, not from the one that could be protected.)
 */
enum { CHILD_OK = 0, CHILD_SETUP = 10, CHILD_NOT_REACHED, CHILD_ALLOC, CHILD_STATE,
       CHILD_LEAK, CHILD_SHAPE };

static int mprotect_failure_child(void)
{
  char buf[64];
  long maxmap = 65530;
  if (gmp_read_file("/proc/sys/vm/max_map_count", buf, sizeof buf) > 0)
    maxmap = strtol(buf, NULL, 10);
  size_t n = (size_t)maxmap / 2 + 64;
  /* n RW/RO page pairs: every mprotect splits off 2 more VMAs. */
  char *big = mmap(NULL, n * 2 * ps, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (big == MAP_FAILED)
    return CHILD_SETUP;
  size_t i;
  for (i = 0; i < n; i++)
    if (mprotect(big + (2 * i + 1) * ps, ps, PROT_READ) != 0)
      break;
  if (i == n || errno != ENOMEM)
    return CHILD_SETUP;
  /* Give back slots one merge (2 VMAs) at a time; at each step try with
   * and without one more VMA in use (a read-only page), until a stack can
   * be mapped but its guard cannot be split off. */
  gmp_stack_init(1000);
  const size_t size = 64 * 1024;
  for (int k = 0; k < 16 && i > 0; k++) {
    if (k % 2 == 0) {
      i--;
      if (mprotect(big + (2 * i + 1) * ps, ps, PROT_READ | PROT_WRITE) != 0)
        return CHILD_SETUP;
    } else if (mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) {
      continue;
    }
    struct gmp_stack s;
    if (gmp_stack_alloc(&s, size, ps) != 0)
      continue;
    if (s.guard != 0) {
      gmp_stack_free(&s);
      continue;
    }
    /* The degraded state. The mapping the kernel made is size + guard
     * bytes at s.map (nothing else runs in this process to map there). */
    char *m = s.map;
    if (gmp_stack_guarded_count() != 0 || !gmp_stack_ok(&s))
      return CHILD_STATE;
    bool shape_ok = s.map + s.maplen == s.hi && s.maplen == size + ps;
    munmap(big, n * 2 * ps); /* room for msync etc. */
    gmp_stack_free(&s);
    for (size_t off = 0; off < size + ps; off += ps)
      if (msync(m + off, ps, MS_ASYNC) == 0)
        return CHILD_LEAK;
    return shape_ok ? CHILD_OK : CHILD_SHAPE;
  }
  return CHILD_NOT_REACHED;
}

static void test_mprotect_failure_no_leak(void **state)
{
  (void)state;
  char buf[64];
  if (gmp_read_file("/proc/sys/vm/max_map_count", buf, sizeof buf) > 0 &&
      strtol(buf, NULL, 10) > 300000) {
    print_message("vm.max_map_count too large to exhaust quickly: skipped\n");
    skip();
  }
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(mprotect_failure_child());
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  if (WEXITSTATUS(st) == CHILD_SETUP || WEXITSTATUS(st) == CHILD_NOT_REACHED) {
    print_message("could not reach the mprotect-failure state (%d): skipped\n",
                  WEXITSTATUS(st));
    skip();
  }
  if (WEXITSTATUS(st) == CHILD_LEAK)
    fail_msg("gmp_stack_free left the top guard-sized part of a degraded stack mapped");
  if (WEXITSTATUS(st) == CHILD_SHAPE)
    fail_msg("degraded stack: maplen does not cover the whole mapping");
  assert_int_equal(WEXITSTATUS(st), CHILD_OK);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_page_size),
      cmocka_unit_test(test_alloc_guarded),
      cmocka_unit_test(test_guard_faults),
      cmocka_unit_test(test_guard_regions),
      cmocka_unit_test(test_guard_regions_many_sizes),
      cmocka_unit_test(test_guard_budget),
      cmocka_unit_test(test_no_guard_requested),
      cmocka_unit_test(test_user_and_empty),
      cmocka_unit_test(test_mprotect_failure_no_leak),
  };
  return cmocka_run_group_tests_name("stack", tests, setup, NULL);
}
