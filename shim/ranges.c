/*
 * Where a G may be preempted: the executable code of the program and of
 * its libraries, but not libc, ld.so, the vDSO, libgcc_s (the unwinder
 * runs under ld.so's dl_iterate_phdr lock) or libgmp itself, which may
 * hold locks a switch would leave held. A whitelist: code in no known
 * object (JIT code, trampolines) is not a safe point.
 *
 * Objects are recognised by address, not by name where possible: libc
 * contains gnu_get_libc_version, ld.so sits at AT_BASE, the vDSO at
 * AT_SYSINFO_EHDR, libgmp contains this file's code.
 *
 * The set is rebuilt after each dlopen and published with one release
 * store; the signal handler reads it with an acquire load (both
 * async-signal-safe). An old set is never freed: a handler may still be
 * reading it, and dlopen is rare.
 */
#define _GNU_SOURCE
#include <gnu/libc-version.h>
#include <link.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "shim/shim.h"

struct range {
  uintptr_t lo, hi;
};

struct range_set {
  size_t n;
  struct range r[];
};

static _Atomic(struct range_set *) current;

struct build {
  struct range *r;
  size_t n, cap;
  uintptr_t libc, ldso, vdso, self;
};

static bool contains(const struct dl_phdr_info *info, uintptr_t addr)
{
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && addr >= info->dlpi_addr + ph->p_vaddr &&
        addr < info->dlpi_addr + ph->p_vaddr + ph->p_memsz)
      return true;
  }
  return false;
}

static int collect(struct dl_phdr_info *info, size_t sz, void *arg)
{
  struct build *b = arg;
  if (info->dlpi_addr == b->ldso || contains(info, b->libc) || contains(info, b->self) ||
      (b->vdso && contains(info, b->vdso)))
    return 0;
  if (info->dlpi_name && strstr(info->dlpi_name, "libgcc_s"))
    return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    if (b->n == b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 32;
      struct range *r = realloc(b->r, cap * sizeof *r);
      if (!r)
        return 1;
      b->r = r;
      b->cap = cap;
    }
    b->r[b->n++] = (struct range){info->dlpi_addr + ph->p_vaddr,
                                  info->dlpi_addr + ph->p_vaddr + ph->p_memsz};
  }
  return 0;
}

static int cmp_range(const void *a, const void *b)
{
  uintptr_t x = ((const struct range *)a)->lo, y = ((const struct range *)b)->lo;
  return x < y ? -1 : x > y;
}

bool gmp_ranges_build(void)
{
  struct build b = {
      .libc = (uintptr_t)gnu_get_libc_version,
      .ldso = getauxval(AT_BASE),
      .vdso = getauxval(AT_SYSINFO_EHDR),
      .self = (uintptr_t)gmp_ranges_build,
  };
  dl_iterate_phdr(collect, &b);
  struct range_set *set = malloc(sizeof *set + b.n * sizeof(struct range));
  if (!set) {
    free(b.r);
    return false;
  }
  qsort(b.r, b.n, sizeof *b.r, cmp_range);
  set->n = b.n;
  memcpy(set->r, b.r, b.n * sizeof *b.r);
  free(b.r);
  atomic_store_explicit(&current, set, memory_order_release);
  return true;
}

bool gmp_pc_safe(uintptr_t pc)
{
  struct range_set *set = atomic_load_explicit(&current, memory_order_acquire);
  if (!set)
    return false;
  size_t lo = 0, hi = set->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (pc < set->r[mid].lo)
      hi = mid;
    else if (pc >= set->r[mid].hi)
      lo = mid + 1;
    else
      return true;
  }
  return false;
}

/* ---- extended state for the preemption trampoline ------------------------ */

uint64_t gmp_xsave_size;
uint32_t gmp_xcr0_lo, gmp_xcr0_hi;

bool gmp_xsave_init(void)
{
  uint32_t a, b, c, d;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!(c & (1u << 27))) /* OSXSAVE: the OS enabled xsave/xgetbv */
    return false;
  __asm__("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
  gmp_xcr0_lo = a;
  gmp_xcr0_hi = d;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
  if (b < 576)
    return false;
  gmp_xsave_size = (uint64_t)b + 64; /* room to align down to 64 */
  return true;
}
