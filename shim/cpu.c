/*
 * CPU facts and the choice of context switch.
 */
#define _GNU_SOURCE
#include "shim/shim.h"

#include <string.h>
#include <sys/auxv.h>

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

void gmp_ctx_switch_wrfs(struct gmp_ctx *from, struct gmp_ctx *to);
void gmp_ctx_switch_prctl(struct gmp_ctx *from, struct gmp_ctx *to);
void gmp_ctx_entry(void);
void gmp_ctx_entry_boot(void);

gmp_ctx_switch_fn gmp_ctx_switch = gmp_ctx_switch_prctl;

/* The kernel sets HWCAP2_FSGSBASE only when it enabled CR4.FSGSBASE
 * (Linux >= 5.9 on a CPU that has it): then wrfsbase cannot fault. */
bool gmp_cpu_has_fsgsbase(void)
{
  return (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
}

void gmp_ctx_switch_init(void)
{
  gmp_ctx_switch = gmp_cpu_has_fsgsbase() ? gmp_ctx_switch_wrfs
                                          : gmp_ctx_switch_prctl;
}

void gmp_ctx_make(struct gmp_ctx *c, void *stack_top, void (*fn)(void *),
                  void *arg, void *tcb)
{
  /* top is 16-aligned and the return slot is the word just below it: after
   * the switch's `ret`, rsp == top (16-aligned), and gmp_ctx_entry's `call`
   * gives fn the ABI's entry alignment ((rsp + 8) % 16 == 0). */
  uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
  uint64_t *ret = (uint64_t *)(top - 8);
  uint64_t *sp = ret - 7;
  uint32_t mxcsr;
  uint16_t fcw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  memset(sp, 0, 8 * 8);
  memcpy((char *)sp, &mxcsr, 4);
  memcpy((char *)sp + 4, &fcw, 2);
  sp[1 + 2] = (uint64_t)(uintptr_t)arg; /* r13 */
  sp[1 + 3] = (uint64_t)(uintptr_t)fn;  /* r12 */
  *ret = (uint64_t)(uintptr_t)gmp_ctx_entry;
  c->rsp = sp;
  c->fs = tcb;
}

void gmp_fpctl_get(uint32_t *mxcsr, uint16_t *fcw)
{
  __asm__ volatile("stmxcsr %0" : "=m"(*mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(*fcw));
}

void gmp_ctx_make_boot(struct gmp_ctx *c, uint64_t boot[8], void *stack_top,
                       void (*fn)(void *), void *arg, uint32_t mxcsr, uint16_t fcw)
{
  memset(boot, 0, 8 * 8);
  memcpy((char *)boot, &mxcsr, 4);
  memcpy((char *)boot + 4, &fcw, 2);
  boot[1 + 2] = (uint64_t)(uintptr_t)arg; /* r13 */
  boot[1 + 3] = (uint64_t)(uintptr_t)fn;  /* r12 */
  /* rbx: the 16-aligned top; gmp_ctx_entry_boot's call then gives fn the
   * ABI's entry alignment, as gmp_ctx_make's frame does. */
  boot[1 + 4] = (uint64_t)((uintptr_t)stack_top & ~(uintptr_t)15);
  boot[7] = (uint64_t)(uintptr_t)gmp_ctx_entry_boot;
  c->rsp = boot;
}
