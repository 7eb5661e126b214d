/*
 * Unit tests of the per-G thread control block (shim/tls.c) together with
 * the context switch (shim/context_x86_64.S, shim/cpu.c) and G stacks.
 *
 * A G here is: a zeroed 64-aligned block of gmp_tls_block_size() bytes
 * turned into a TCB by gmp_tls_create + gmp_tls_setup, a stack from
 * gmp_stack_alloc, and a context from gmp_ctx_make whose fs is the TCB.
 * The test switches into it from the main thread (whose own context's fs
 * is set to gmp_thread_self(), since the switch back loads it).
 *
 * Invariants checked, inside the G (results are recorded there and
 * asserted after switching back: a cmocka failure longjmps, which must not
 * happen on the G's stack with the G's fs):
 *  - pthread_self() == the TCB, gmp_thread_self() == the TCB, and glibc's
 *    tid field is the fake tid given to gmp_tls_setup (it is what a
 *    recursive mutex records as owner);
 *  - errno is the G's own (another address than the main thread's, 0 at
 *    start, preserved across switches and across a move to another OS
 *    thread), and the main thread's errno is untouched;
 *  - a __thread variable of the executable has its initial value (42,
 *    while main's copy is 7), .tbss is zero, and each G has its own copy;
 *  - ctype tables (isalpha, toupper), locale-dependent snprintf("%f"),
 *    malloc/free, glibc's TSD (pthread_getspecific) and sched_getcpu work;
 *  - gmp_tcb_slot_get() in the G returns what gmp_tcb_slot_set stored;
 *  - the G runs on its stack, with the ABI's entry alignment, and its
 *    MXCSR/x87 control words are its own (saved and restored per switch);
 *  - gmp_tls_recycle re-initialises every __thread variable from its
 *    init image (99 -> 42, .tbss -> 0) while malloc keeps working;
 *  - two Gs interleaved by direct switches keep their own TLS and errno.
 *
 * Everything that runs on a G is skipped under AddressSanitizer: ASan
 * cannot follow a stack switch without fiber annotations
 * (__sanitizer_start_switch_fiber); gmp_tls_init and TCB creation are
 * still checked there.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/shim.h"

#if defined(__SANITIZE_ADDRESS__)
#define GMP_TLS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GMP_TLS_UNDER_ASAN 1
#endif
#endif

#define FAKE_TID 0x40000123
#define STACK_SIZE (256 * 1024)

static __thread int tls_x = 42;
static __thread int tls_bss;
static __thread char tls_str[16] = "hello";

static const char *init_why = "not initialised";

/* What a G observed at one point of its life. */
struct obs {
  bool ran;
  void *self, *tp, *errno_addr, *x_addr, *local_addr, *frame;
  int errno_before_enter, errno_val;
  int x, bss;
  bool str_ok;
  int isalpha_a, isalpha_1, toupper_a, isdigit_7, isspace_tab;
  void *slot;
  bool malloc_ok;
  char buf[64];
  int mutex_owner;
  void *specific;
  int cpu;
  uintptr_t stack_guard;
  uint32_t mxcsr;
  uint16_t fcw;
};

struct grun {
  struct gmp_ctx self;    /* the G's context */
  struct gmp_ctx *back;   /* where the G switches to when it pauses */
  bool fresh;             /* first observation: call gmp_tls_enter */
  pthread_key_t key;
  struct obs first, second;
};

static uintptr_t read_stack_guard(void)
{
  uintptr_t v;
  __asm__ volatile("mov %%fs:0x28, %0" : "=r"(v));
  return v;
}

static uint32_t get_mxcsr(void)
{
  uint32_t v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}

static void set_mxcsr(uint32_t v) { __asm__ volatile("ldmxcsr %0" : : "m"(v)); }

static uint16_t get_fcw(void)
{
  uint16_t v;
  __asm__ volatile("fnstcw %0" : "=m"(v));
  return v;
}

static void set_fcw(uint16_t v) { __asm__ volatile("fldcw %0" : : "m"(v)); }

#define MXCSR_RC_DOWN (1u << 13)
#define FCW_RC_UP (2u << 10)

__attribute__((noinline)) static void observe(struct grun *r, struct obs *o, bool enter)
{
  o->errno_before_enter = errno;
  if (enter)
    gmp_tls_enter();
  int local = 0;
  o->local_addr = &local;
  o->self = (void *)pthread_self();
  o->tp = gmp_thread_self();
  o->errno_addr = &errno;
  o->errno_val = errno;
  o->x_addr = &tls_x;
  o->x = tls_x;
  o->bss = tls_bss;
  o->str_ok = strcmp(tls_str, "hello") == 0;
  o->isalpha_a = isalpha('a') != 0;
  o->isalpha_1 = isalpha('1') != 0;
  o->toupper_a = toupper('a');
  o->isdigit_7 = isdigit('7') != 0;
  o->isspace_tab = isspace('\t') != 0;
  o->slot = gmp_tcb_slot_get();
  char *p = malloc(100);
  char *q = malloc(1 << 20); /* mmap'ed chunk */
  char *c = calloc(64, 64);
  o->malloc_ok = p && q && c && c[4095] == 0;
  if (p) {
    memset(p, 1, 100);
    free(p);
  }
  if (q) {
    q[(1 << 20) - 1] = 1;
    free(q);
  }
  free(c);
  snprintf(o->buf, sizeof o->buf, "%d-%s-%.2f-%x", 42, "ok", 1.5, 255);
  pthread_mutex_t m;
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&m, &ma);
  pthread_mutex_lock(&m);
  pthread_mutex_lock(&m);
  o->mutex_owner = m.__data.__owner;
  pthread_mutex_unlock(&m);
  pthread_mutex_unlock(&m);
  pthread_mutex_destroy(&m);
  pthread_mutexattr_destroy(&ma);
  o->specific = pthread_getspecific(r->key);
  o->cpu = sched_getcpu();
  o->stack_guard = read_stack_guard();
  o->mxcsr = get_mxcsr();
  o->fcw = get_fcw();
  o->ran = true;
}

/* The G's body: observe, change its state, pause; observe again, pause. */
static void g_body(void *arg)
{
  struct grun *r = arg;
  r->first.frame = __builtin_frame_address(0);
  observe(r, &r->first, true);
  tls_x = 99;
  tls_bss = 5;
  tls_str[0] = 'j';
  errno = 55;
  pthread_setspecific(r->key, (void *)0x1234);
  set_mxcsr(get_mxcsr() | MXCSR_RC_DOWN);
  set_fcw((uint16_t)((get_fcw() & ~(3u << 10)) | FCW_RC_UP));
  gmp_ctx_switch(&r->self, r->back);
  observe(r, &r->second, false);
  gmp_ctx_switch(&r->self, r->back);
  abort(); /* never resumed a third time */
}

static void *tcb_block;
static void *tcb;
static struct gmp_stack gstack;
static int slot_marker;

static int group_setup(void **state)
{
  (void)state;
  init_why = gmp_tls_init(pthread_create, pthread_join);
  if (init_why)
    return 0; /* each test skips with the reason */
  gmp_ctx_switch_init();
  gmp_stack_init(100);
  size_t bs = gmp_tls_block_size();
  if (bs == 0)
    return -1;
  tcb_block = aligned_alloc(64, (bs + 63) & ~(size_t)63);
  if (!tcb_block)
    return -1;
  memset(tcb_block, 0, bs);
  tcb = gmp_tls_create(tcb_block);
  if (!tcb || gmp_stack_alloc(&gstack, STACK_SIZE, gmp_page_size()) != 0)
    return -1;
  return 0;
}

static void require_runtime(void)
{
  if (init_why) {
    print_message("skipped: gmp_tls_init: %s\n", init_why);
    skip();
  }
}

/* Running on a G needs a stack switch, which ASan cannot follow. */
static void require_switch(void)
{
  require_runtime();
#ifdef GMP_TLS_UNDER_ASAN
  print_message("skipped: ASan cannot follow a stack switch without fiber annotations\n");
  skip();
#endif
}

static void test_init(void **state)
{
  (void)state;
  /* This machine runs glibc 2.36: the runtime must accept it. */
  if (strcmp(gnu_get_libc_version(), "2.36") == 0)
    assert_null(init_why);
  require_runtime();
  size_t bs = gmp_tls_block_size();
  assert_true(bs >= 1024);
  assert_non_null(tcb);
  assert_true((char *)tcb > (char *)tcb_block);
  assert_true((char *)tcb < (char *)tcb_block + bs);
  assert_int_equal((uintptr_t)tcb % 64, 0);
  assert_ptr_not_equal(tcb, gmp_thread_self());
  assert_true(gmp_ctx_switch != NULL);
}

/* Prepare the G for a (re)start on the test stack. */
static void g_prepare(struct grun *r, struct gmp_ctx *back, pthread_key_t key)
{
  memset(r, 0, sizeof *r);
  r->back = back;
  r->key = key;
  gmp_tls_setup(tcb, FAKE_TID, gstack.lo, (size_t)(gstack.hi - gstack.lo));
  gmp_tcb_slot_set(tcb, &slot_marker);
  gmp_ctx_make(&r->self, gstack.hi, g_body, r, tcb);
}

static void check_fresh(const struct obs *o, int *main_errno_addr, int *main_x_addr,
                        uintptr_t main_guard)
{
  assert_true(o->ran);
  assert_ptr_equal(o->self, tcb);
  assert_ptr_equal(o->tp, tcb);
  assert_ptr_not_equal(o->errno_addr, main_errno_addr);
  assert_int_equal(o->errno_val, 0);
  assert_ptr_not_equal(o->x_addr, main_x_addr);
  assert_int_equal(o->x, 42);
  assert_int_equal(o->bss, 0);
  assert_true(o->str_ok);
  assert_true(o->isalpha_a);
  assert_false(o->isalpha_1);
  assert_int_equal(o->toupper_a, 'A');
  assert_true(o->isdigit_7);
  assert_true(o->isspace_tab);
  assert_ptr_equal(o->slot, &slot_marker);
  assert_true(o->malloc_ok);
  assert_string_equal(o->buf, "42-ok-1.50-ff");
  assert_int_equal(o->mutex_owner, FAKE_TID);
  assert_true(o->cpu >= 0);
  assert_true(o->stack_guard == main_guard);
  /* on the G's stack, entered with (rsp + 8) % 16 == 0 */
  assert_true((char *)o->local_addr >= gstack.lo && (char *)o->local_addr < gstack.hi);
  /* the errno and __thread copies live in the TCB's static TLS block */
  assert_true((char *)o->errno_addr >= (char *)tcb_block && (char *)o->errno_addr < (char *)tcb);
  assert_true((char *)o->x_addr >= (char *)tcb_block && (char *)o->x_addr < (char *)tcb);
  /* ... within the hot top of the block (gmp_tls_hot_bytes), which the
   * scheduler's box layout puts in one page: a G writes nothing below */
  size_t hot = gmp_tls_hot_bytes();
  char *block_end = (char *)tcb_block + gmp_tls_block_size();
  assert_true(hot > 0 && hot <= gmp_tls_block_size());
  assert_true((char *)o->errno_addr >= block_end - hot);
  assert_true((char *)o->x_addr >= block_end - hot);
  assert_true((char *)tcb >= block_end - hot);
}

/* A real pthread that resumes the paused G, as another M would. */
struct mover {
  struct grun *r;
  int *errno_addr;
  int errno_after;
};

static void *mover_main(void *arg)
{
  struct mover *mv = arg;
  errno = 0;
  mv->errno_addr = &errno;
  struct gmp_ctx here = {.fs = gmp_thread_self()};
  mv->r->back = &here;
  gmp_ctx_switch(&here, &mv->r->self);
  mv->errno_after = errno;
  return NULL;
}

static void test_run_on_tcb(void **state)
{
  (void)state;
  require_switch();
  assert_int_equal(gmp_tls_tid(tcb), 0); /* zeroed until setup */
  pthread_key_t key;
  assert_int_equal(pthread_key_create(&key, NULL), 0);
  assert_int_equal(pthread_setspecific(key, (void *)0x777), 0);

  tls_x = 7;
  tls_bss = 3;
  errno = 3;
  pthread_t me = pthread_self();
  void *main_tp = gmp_thread_self();
  uint32_t mxcsr0 = get_mxcsr();
  uint16_t fcw0 = get_fcw();
  uintptr_t guard = read_stack_guard();

  struct gmp_ctx main_ctx = {.fs = main_tp};
  static struct grun r;
  g_prepare(&r, &main_ctx, key);
  assert_int_equal(gmp_tls_tid(tcb), FAKE_TID);
  gmp_ctx_switch(&main_ctx, &r.self);

  /* back on the main thread: its state is its own */
  assert_ptr_equal(gmp_thread_self(), main_tp);
  assert_true(pthread_equal(pthread_self(), me));
  assert_int_equal(errno, 3);
  assert_int_equal(tls_x, 7);
  assert_int_equal(tls_bss, 3);
  assert_string_equal(tls_str, "hello");
  assert_ptr_equal(pthread_getspecific(key), (void *)0x777);
  assert_int_equal(get_mxcsr(), mxcsr0);
  assert_int_equal(get_fcw(), fcw0);
  assert_null(gmp_tcb_slot_get()); /* not a runtime-made thread */

  check_fresh(&r.first, &errno, &tls_x, guard);
  assert_int_equal(r.first.errno_before_enter, 0);
  assert_null(r.first.specific); /* fresh TSD */
  assert_int_equal((uintptr_t)r.first.frame % 16, 0);
  assert_int_equal(r.first.mxcsr, mxcsr0);
  assert_int_equal(r.first.fcw, fcw0);
  assert_false(r.second.ran);

  /* Resume the G on another OS thread: it keeps its TCB and state. */
  struct mover mv = {.r = &r};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, mover_main, &mv), 0);
  assert_int_equal(pthread_join(th, NULL), 0);

  const struct obs *o = &r.second;
  assert_true(o->ran);
  assert_ptr_equal(o->self, tcb);
  assert_ptr_equal(o->tp, tcb);
  assert_ptr_equal(o->errno_addr, r.first.errno_addr);
  assert_ptr_not_equal(o->errno_addr, mv.errno_addr);
  assert_int_equal(o->errno_before_enter, 55);
  assert_int_equal(o->errno_val, 55);
  assert_int_equal(mv.errno_after, 0); /* the mover thread's own errno */
  assert_int_equal(o->x, 99);
  assert_int_equal(o->bss, 5);
  assert_false(o->str_ok);
  assert_ptr_equal(o->specific, (void *)0x1234);
  assert_ptr_equal(o->slot, &slot_marker);
  assert_true(o->isalpha_a);
  assert_true(o->malloc_ok);
  assert_string_equal(o->buf, "42-ok-1.50-ff");
  assert_int_equal(o->mutex_owner, FAKE_TID);
  assert_int_equal(o->mxcsr & (3u << 13), MXCSR_RC_DOWN);
  assert_int_equal(o->fcw & (3u << 10), FCW_RC_UP);
  assert_int_equal(errno, 3);
  assert_int_equal(tls_x, 7);

  pthread_key_delete(key);
}

/* Recycle the TCB: __thread variables back to their init image. */
static void test_recycle(void **state)
{
  (void)state;
  require_switch();
  pthread_key_t key;
  assert_int_equal(pthread_key_create(&key, NULL), 0);
  tls_x = 7;
  errno = 4;
  uintptr_t guard = read_stack_guard();

  /* Make sure there is something to reset, whatever ran before. */
  struct gmp_ctx main_ctx = {.fs = gmp_thread_self()};
  static struct grun r;
  g_prepare(&r, &main_ctx, key);
  gmp_ctx_switch(&main_ctx, &r.self); /* sets x=99, bss=5, errno=55 */
  assert_true(r.first.ran);

  gmp_tls_recycle(tcb);
  g_prepare(&r, &main_ctx, key);
  gmp_ctx_switch(&main_ctx, &r.self);
  assert_ptr_equal(gmp_thread_self(), main_ctx.fs);
  assert_int_equal(errno, 4);
  assert_int_equal(tls_x, 7);
  check_fresh(&r.first, &errno, &tls_x, guard); /* x == 42, bss == 0, errno 0 */

  /* And again, several times: recycling is repeatable, malloc survives. */
  for (int i = 0; i < 20; i++) {
    gmp_tls_recycle(tcb);
    g_prepare(&r, &main_ctx, key);
    gmp_ctx_switch(&main_ctx, &r.self);
    check_fresh(&r.first, &errno, &tls_x, guard);
  }
  pthread_key_delete(key);
}

/* Two Gs switching directly to each other keep their own TLS and errno. */
#define PINGPONG_ROUNDS 10000

struct pp {
  struct gmp_ctx ctx;
  struct pp *peer;
  struct gmp_ctx *main_ctx;
  bool last; /* the one that returns to main */
  int id;
  int errors;
  int rounds;
};

static void pp_body(void *arg)
{
  struct pp *p = arg;
  gmp_tls_enter();
  if (tls_x != 42 || errno != 0)
    p->errors++;
  for (int k = 0; k < PINGPONG_ROUNDS; k++) {
    tls_x = p->id * 1000000 + k;
    tls_bss = -k;
    errno = p->id * 100 + (k % 100);
    gmp_ctx_switch(&p->ctx, &p->peer->ctx);
    if (tls_x != p->id * 1000000 + k || tls_bss != -k || errno != p->id * 100 + (k % 100) ||
        pthread_self() != (pthread_t)gmp_thread_self())
      p->errors++;
    p->rounds++;
  }
  gmp_ctx_switch(&p->ctx, p->last ? p->main_ctx : &p->peer->ctx);
  abort();
}

static void run_two_gs(void)
{
  size_t bs = gmp_tls_block_size();
  void *blk2 = aligned_alloc(64, (bs + 63) & ~(size_t)63);
  assert_non_null(blk2);
  memset(blk2, 0, bs);
  void *tcb2 = gmp_tls_create(blk2);
  assert_non_null(tcb2);
  struct gmp_stack st2;
  assert_int_equal(gmp_stack_alloc(&st2, STACK_SIZE, gmp_page_size()), 0);

  gmp_tls_recycle(tcb);
  gmp_tls_setup(tcb, FAKE_TID, gstack.lo, (size_t)(gstack.hi - gstack.lo));
  gmp_tls_setup(tcb2, FAKE_TID + 1, st2.lo, (size_t)(st2.hi - st2.lo));

  struct gmp_ctx main_ctx = {.fs = gmp_thread_self()};
  static struct pp a, b;
  a = (struct pp){.peer = &b, .main_ctx = &main_ctx, .id = 1};
  b = (struct pp){.peer = &a, .main_ctx = &main_ctx, .id = 2, .last = true};
  gmp_ctx_make(&a.ctx, gstack.hi, pp_body, &a, tcb);
  gmp_ctx_make(&b.ctx, st2.hi, pp_body, &b, tcb2);
  tls_x = 7;
  errno = 6;
  gmp_ctx_switch(&main_ctx, &a.ctx);
  assert_ptr_equal(gmp_thread_self(), main_ctx.fs);
  assert_int_equal(tls_x, 7);
  assert_int_equal(errno, 6);
  assert_int_equal(a.errors, 0);
  assert_int_equal(b.errors, 0);
  assert_int_equal(a.rounds, PINGPONG_ROUNDS);
  assert_int_equal(b.rounds, PINGPONG_ROUNDS);
  assert_int_equal(gmp_tls_tid(tcb2), FAKE_TID + 1);
  /* tcb2's DTV is left allocated: TCBs are never freed by the runtime. */
  gmp_stack_free(&st2);
}

/* The two switch implementations (cpu.c picks one at init). */
void gmp_ctx_switch_wrfs(struct gmp_ctx *from, struct gmp_ctx *to);
void gmp_ctx_switch_prctl(struct gmp_ctx *from, struct gmp_ctx *to);

static void test_two_gs(void **state)
{
  (void)state;
  require_switch();
  assert_true(gmp_ctx_switch ==
              (gmp_cpu_has_fsgsbase() ? gmp_ctx_switch_wrfs : gmp_ctx_switch_prctl));
  gmp_ctx_switch_fn chosen = gmp_ctx_switch;
  gmp_ctx_switch = gmp_ctx_switch_prctl;
  run_two_gs();
  if (gmp_cpu_has_fsgsbase()) {
    gmp_ctx_switch = gmp_ctx_switch_wrfs;
    run_two_gs();
  } else {
    print_message("no FSGSBASE: only the arch_prctl switch was tested\n");
  }
  gmp_ctx_switch = chosen;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_run_on_tcb),
      cmocka_unit_test(test_recycle),
      cmocka_unit_test(test_two_gs),
  };
  return cmocka_run_group_tests_name("tls", tests, group_setup, NULL);
}
