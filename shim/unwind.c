/*
 * Backtraces of green threads, by libunwind's local unwinder.
 *
 * libunwind is loaded on first use with dlopen(RTLD_LOCAL), never linked:
 * linked into libgmp.so its _Unwind_* symbols would stand in for libgcc's
 * in every C++ program. When it is not installed, callers get -1 and say
 * so (the crash report then falls back to glibc's backtrace()).
 *
 * Two starting points:
 *  - a signal frame (the crash report): the kernel's ucontext_t is
 *    libunwind's unw_context_t on x86_64;
 *  - a switched-out context (the goroutine dump): the frame that
 *    context_x86_64.S leaves at the saved rsp,
 *        [mxcsr,x87cw,pad] r15 r14 r13 r12 rbx rbp [ret]
 *    holds every callee-saved register and the return address into the
 *    code that switched, which is all a DWARF unwinder needs to start: the
 *    caller-saved registers are dead at a call. The caller must guarantee
 *    that the context stays switched out while this runs (dump.c).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libunwind.h>
#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>

#include "shim/shim.h"

struct unw_fns {
  int (*init2)(unw_cursor_t *, unw_context_t *, int);
  int (*step)(unw_cursor_t *);
  int (*get_reg)(unw_cursor_t *, int, unw_word_t *);
  int (*proc_name)(unw_cursor_t *, char *, size_t, unw_word_t *);
};

static struct unw_fns fns;
static _Atomic int loaded; /* 0 not tried, 1 usable, -1 unavailable */

static bool load(void)
{
  int l = atomic_load_explicit(&loaded, memory_order_acquire);
  if (l)
    return l > 0;
  /* Two first callers may both get here: dlopen is refcounted and both
   * resolve the same addresses, so the race is harmless. */
  void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  struct unw_fns f = {0};
  if (h) {
    f.init2 = (int (*)(unw_cursor_t *, unw_context_t *, int))dlsym(h, "_ULx86_64_init_local2");
    f.step = (int (*)(unw_cursor_t *))dlsym(h, "_ULx86_64_step");
    f.get_reg = (int (*)(unw_cursor_t *, int, unw_word_t *))dlsym(h, "_ULx86_64_get_reg");
    f.proc_name = (int (*)(unw_cursor_t *, char *, size_t, unw_word_t *))dlsym(
        h, "_ULx86_64_get_proc_name");
  }
  bool ok = f.init2 && f.step && f.get_reg && f.proc_name;
  if (ok)
    fns = f;
  atomic_store_explicit(&loaded, ok ? 1 : -1, memory_order_release);
  return ok;
}

/* libunwind's get_proc_name reads the ELF file's symbol table on every
 * call (~70 us here): a dump of a thousand threads with the same few
 * frames would take half a second. Names are cached by pc, direct-mapped;
 * only the goroutine dump (one thread: sysmon) uses the cache. */
#define NAME_CACHE 1024
static struct {
  uintptr_t pc, off;
  char name[sizeof ((struct gmp_frame *)0)->name];
} cache[NAME_CACHE];

static int walk(unw_context_t *uc, int flags, struct gmp_frame *out, int max, bool cached)
{
  if (!load())
    return -1;
  unw_cursor_t c;
  if (fns.init2(&c, uc, flags) != 0)
    return 0;
  int n = 0;
  while (n < max) {
    unw_word_t pc = 0, off = 0;
    if (fns.get_reg(&c, UNW_REG_IP, &pc) != 0 || pc == 0)
      break;
    out[n].pc = (uintptr_t)pc;
    size_t slot = ((uintptr_t)pc >> 2) % NAME_CACHE;
    if (cached && cache[slot].pc == (uintptr_t)pc) {
      memcpy(out[n].name, cache[slot].name, sizeof out[n].name);
      off = cache[slot].off;
    } else {
      if (fns.proc_name(&c, out[n].name, sizeof out[n].name, &off) != 0) {
        out[n].name[0] = 0;
        off = 0;
      }
      if (cached) {
        cache[slot].pc = (uintptr_t)pc;
        cache[slot].off = (uintptr_t)off;
        memcpy(cache[slot].name, out[n].name, sizeof cache[slot].name);
      }
    }
    out[n].off = (uintptr_t)off;
    n++;
    if (fns.step(&c) <= 0)
      break;
  }
  return n;
}

int gmp_unwind_signal(void *ucontext, struct gmp_frame *out, int max)
{
  return walk((unw_context_t *)ucontext, UNW_INIT_SIGNAL_FRAME, out, max, false);
}

int gmp_unwind_switched(const void *saved_rsp, struct gmp_frame *out, int max)
{
  const uint64_t *f = saved_rsp;
  ucontext_t uc;
  memset(&uc, 0, sizeof uc);
  greg_t *r = uc.uc_mcontext.gregs;
  r[REG_R15] = (greg_t)f[1];
  r[REG_R14] = (greg_t)f[2];
  r[REG_R13] = (greg_t)f[3];
  r[REG_R12] = (greg_t)f[4];
  r[REG_RBX] = (greg_t)f[5];
  r[REG_RBP] = (greg_t)f[6];
  r[REG_RIP] = (greg_t)f[7];          /* the return address of the switch */
  r[REG_RSP] = (greg_t)(uintptr_t)(f + 8); /* rsp after that return */
  return walk((unw_context_t *)&uc, 0, out, max, true);
}
