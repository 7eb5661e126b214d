/*
 * shim/ — the machine and glibc underneath the scheduler.
 *
 * This is the only header sched/ includes from shim/. It knows nothing of
 * Gs, Ms or Ps: it offers a context switch, stacks, glibc-compatible thread
 * control blocks (TCB + static TLS), raw syscalls, and a few CPU facts.
 */
#ifndef GMP_SHIM_H
#define GMP_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- raw system interface (shim/sys.c) ------------------------------- */

/* Raw syscalls that never touch errno and never go through the PLT: the
 * runtime must not re-enter its own wrappers, and errno belongs to the G. */
long gmp_sys(long nr, long a, long b, long c, long d, long e, long f);
#define gmp_sys0(n) gmp_sys((n), 0, 0, 0, 0, 0, 0)
#define gmp_sys1(n, a) gmp_sys((n), (long)(a), 0, 0, 0, 0, 0)
#define gmp_sys2(n, a, b) gmp_sys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define gmp_sys3(n, a, b, c) gmp_sys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define gmp_sys4(n, a, b, c, d) \
  gmp_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define gmp_sys6(n, a, b, c, d, e, f) \
  gmp_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* Monotonic and realtime clocks in nanoseconds (vDSO; no errno). */
int64_t gmp_nanotime(void);
int64_t gmp_walltime(void);
int64_t gmp_clock_ns(clockid_t clk); /* -1 for an unknown clock */

/* futex wait/wake on a private 32-bit word. wait returns 0 when woken or
 * when *addr != val, -ETIMEDOUT after timeout_ns (<0: forever). */
int gmp_futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns);
void gmp_futex_wake(uint32_t *addr, int n);

int gmp_gettid(void);

/* Write a message to fd 2 without stdio or malloc (async-signal-safe). */
void gmp_write_err(const char *s);
/* printf-like into a caller buffer, stderr; small and allocation-free. */
void gmp_printf_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "libgmp: fatal: ..." and abort. Used only for broken invariants. */
_Noreturn void gmp_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Read a small text file (e.g. /proc/sys/vm/max_map_count) with raw
 * syscalls. Returns the number of bytes read (NUL-terminated) or -1. */
long gmp_read_file(const char *path, char *buf, size_t len);

/* ---- backtraces (shim/unwind.c) --------------------------------------- */

/* One frame: its pc and, when the ELF symbol tables name it (static
 * functions included), the function and the offset into it. */
struct gmp_frame {
  uintptr_t pc, off;
  char name[96];
};
/* From a signal handler's ucontext (the interrupted frame first). */
int gmp_unwind_signal(void *ucontext, struct gmp_frame *out, int max);
/* From the frame a switched-out context left at its saved rsp. Both
 * return the number of frames, or -1 when libunwind is not installed.
 * Names are cached by pc here: one caller at a time (the dumper). */
int gmp_unwind_switched(const void *saved_rsp, struct gmp_frame *out, int max);

/* ---- CPU (shim/cpu.c) ------------------------------------------------- */

/* FSGSBASE lets user code write the fs base with one instruction (12 ns)
 * instead of arch_prctl (~160 ns). Decided once, from AT_HWCAP2. */
bool gmp_cpu_has_fsgsbase(void);
/* Current thread pointer (fs:0x10, what glibc calls THREAD_SELF). */
static inline void *gmp_thread_self(void)
{
  void *p;
  __asm__ volatile("mov %%fs:0x10, %0" : "=r"(p));
  return p;
}

/* ---- context switch (shim/context_x86_64.S) --------------------------- */

/* A saved execution context. Only rsp is stored: the callee-saved
 * registers, mxcsr and the x87 control word live on the stack below it.
 * fs is the TCB the context runs with; it is loaded on every switch into
 * the context and never saved (it is fixed for the lifetime of a context). */
struct gmp_ctx {
  void *rsp;
  void *fs;
};

/* Save the current context into *from and resume *to. Selected at init:
 * wrfsbase when the CPU allows it, arch_prctl(ARCH_SET_FS) otherwise. */
typedef void (*gmp_ctx_switch_fn)(struct gmp_ctx *from, struct gmp_ctx *to);
extern gmp_ctx_switch_fn gmp_ctx_switch;
void gmp_ctx_switch_init(void);

/* Prepare *c so that the first switch into it calls fn(arg) on the stack
 * whose highest address is stack_top, with fs = tcb. fn must not return. */
void gmp_ctx_make(struct gmp_ctx *c, void *stack_top, void (*fn)(void *),
                  void *arg, void *tcb);
/* Same, with the first switch's frame in boot (8 words on free stack of
 * the switching context, valid until the switch completes) instead of on
 * the new stack: making the context writes nothing to its stack, whose
 * first page is then faulted in by the context itself. mxcsr and fcw are
 * the floating-point control state it starts with. */
void gmp_ctx_make_boot(struct gmp_ctx *c, uint64_t boot[8], void *stack_top,
                       void (*fn)(void *), void *arg, uint32_t mxcsr, uint16_t fcw);
/* The calling thread's MXCSR and x87 control word. */
void gmp_fpctl_get(uint32_t *mxcsr, uint16_t *fcw);

/* ---- preemption support (shim/ranges.c, shim/preempt_x86_64.S) ------- */

/* Build (again, after dlopen) the set of code ranges where a G may be
 * interrupted and switched: false on out of memory. */
bool gmp_ranges_build(void);
/* Is pc a safe point? Async-signal-safe. */
bool gmp_pc_safe(uintptr_t pc);
/* Detect xsave and the size of the state it saves; false: unsupported. */
bool gmp_xsave_init(void);
/* The trampoline the signal handler redirects a G to. It calls
 * gmp_preempt_enter() (returns the interrupted rip) and gmp_preempt_yield(),
 * both provided by sched/. */
void gmp_preempt_tramp(void);

/* ---- stacks (shim/stack.c) ------------------------------------------- */

/* A G stack: [lo, hi) usable; an optional PROT_NONE guard page below lo.
 * When the guard budget (vm.max_map_count) is spent, stacks are made
 * without a guard page and a canary word at lo is checked at every switch
 * instead (see stack.c for why). */
struct gmp_stack {
  char *lo, *hi;      /* usable range; the stack grows down from hi */
  char *map;          /* mapping base (== lo - guard), NULL if user-provided */
  size_t maplen;
  size_t guard;       /* bytes of PROT_NONE below lo (0: canary mode) */
  bool user;          /* provided by pthread_attr_setstack: never freed */
  bool region;        /* guard is a madvise guard region, not an mprotect split */
};

#define GMP_STACK_CANARY 0x6d67706d67706d67ULL /* "gmpgmpgm" */

/* guard_limit < 0: automatic (guard regions when the kernel has them,
 * else mprotect guards within a budget derived from vm.max_map_count);
 * >= 0: mprotect guards for at most that many stacks. */
void gmp_stack_init(long guard_limit);
/* Whether stacks get their guard pages as guard regions (Linux >= 6.13). */
bool gmp_stack_guard_regions(void);
/* Allocate a stack of (at least) size bytes with a guard of guard bytes
 * (rounded to pages; 0 allowed). Returns 0 or an errno value. */
int gmp_stack_alloc(struct gmp_stack *s, size_t size, size_t guard);
/* In a fork child: the stack allocator's lock and cached slabs reset (the
 * thread that held them in the parent does not exist in the child). */
void gmp_stack_fork_child(void);
void gmp_stack_free(struct gmp_stack *s);
/* false when the canary of an unguarded stack was overwritten. */
static inline bool gmp_stack_ok(const struct gmp_stack *s)
{
  return s->guard != 0 || s->user || s->lo == NULL ||
         *(const uint64_t *)s->lo == GMP_STACK_CANARY;
}
size_t gmp_page_size(void);
long gmp_stack_guarded_count(void);

/* ---- TCB + TLS (shim/tls.c) ------------------------------------------ */

/* Discover glibc's struct pthread layout from its _thread_db_* descriptors
 * and run-time probes. Returns NULL on success, or a one-line reason why
 * this glibc cannot be supported (the caller then falls back to native). */
#include <pthread.h>
const char *gmp_tls_init(int (*create)(pthread_t *, const pthread_attr_t *,
                                       void *(*)(void *), void *),
                         int (*join)(pthread_t, void **));

/* Bytes a TCB block needs (static TLS + struct pthread + alignment). */
size_t gmp_tls_block_size(void);
/* Bytes at the high end of a TLS block that a thread touches (TCB and the
 * static TLS of the modules loaded so far); the low rest is surplus. */
size_t gmp_tls_hot_bytes(void);
/* Build a fresh TCB inside block (gmp_tls_block_size() bytes, zeroed,
 * 64-aligned). Returns the thread pointer, or NULL (out of memory). */
void *gmp_tls_create(void *block);
/* Reset a TCB that ran user code, for reuse by a new thread: re-initialise
 * every module's TLS from its init image, free dynamic TLS blocks, but keep
 * libc's own block (malloc's tcache cannot be released; see tls.c). */
void gmp_tls_recycle(void *tcb);
/* Per-thread fields every new thread needs (steps of
 * ../shared/notes/tls-findings.md): guards, tid, stackblock, rseq... */
void gmp_tls_setup(void *tcb, int fake_tid, void *stack_lo, size_t stack_size);
/* dlopen support. glibc initialises the static TLS of a module loaded
 * later with initial-exec TLS only in the threads it knows (its stack
 * lists), so a G created before the dlopen would read zeros. Snapshot the
 * static-TLS modules before dlopen, then initialise the new ones' blocks
 * in a TCB with gmp_tls_init_new_static. */
struct gmp_tls_snapshot {
  size_t max_modid;
};
void gmp_tls_snapshot(struct gmp_tls_snapshot *s);
/* Prepare the list of modules loaded since the snapshot that use static
 * TLS; returns how many (0: nothing to do). */
int gmp_tls_new_static(const struct gmp_tls_snapshot *s);
void gmp_tls_init_new_static(void *tcb, void *unused);
/* Run inside the thread (fs = tcb) before user code: ctype tables. */
void gmp_tls_enter(void);
/* Run inside the thread at its end: thread_local/C++ TLS destructors. */
void gmp_tls_leave(void);

/* The slot in the TCB header where the runtime keeps its per-thread
 * pointer. glibc 2.36 leaves tcbhead_t.unused_vgetcpu_cache (fs:0x38)
 * unused; zero for every thread the runtime did not make. */
#define GMP_TCB_SLOT 0x38
static inline void *gmp_tcb_slot_get(void)
{
  void *p;
  __asm__ volatile("mov %%fs:" "0x38" ", %0" : "=r"(p));
  return p;
}
static inline void gmp_tcb_slot_set(void *tcb, void *v)
{
  *(void **)((char *)tcb + GMP_TCB_SLOT) = v;
}
static inline void *gmp_tcb_slot_of(void *tcb)
{
  return *(void **)((char *)tcb + GMP_TCB_SLOT);
}
/* The tid field glibc uses as mutex owner id and passes to the kernel. */
int gmp_tls_tid(void *tcb);
void gmp_tls_set_tid(void *tcb, int tid);

#endif
