/*
 * pthread_exit with NPTL's semantics: the thread's stack is unwound, so
 * that C++ destructors, __attribute__((cleanup)) handlers and
 * pthread_cleanup_push handlers run, innermost first, before the TSD
 * destructors.
 *
 * glibc does this with a forced unwind whose stop function longjmps into
 * each pthread_cleanup_push buffer (C without -fexceptions registers them
 * with __pthread_register_cancel in its struct pthread) as the unwinding
 * passes the frame that holds it. Here the chain of buffers is kept per G
 * (libgmp's __thread variables are per G, see shim/tls.c), and the stop
 * function ends the G once the unwinder reaches the top of its stack
 * (gmp_ctx_entry marks it; the main G ends at _start).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unwind.h>

#include "preload/preload.h"

/* glibc's __pthread_unwind_buf_t: the jmp_buf, then priv.data.prev. */
struct unwind_buf {
  struct {
    long jmp_buf[8];
    int mask_was_saved;
  } cancel_jmp_buf[1];
  void *pad[4];
};

static __thread struct unwind_buf *cleanup_top;
static __thread struct _Unwind_Exception exit_exc;
static __thread void *exit_value;

static _Noreturn void unwind_now(void);

static _Unwind_Reason_Code exit_stop(int version, _Unwind_Action actions,
                                     _Unwind_Exception_Class cls,
                                     struct _Unwind_Exception *exc,
                                     struct _Unwind_Context *ctx, void *param)
{
  struct unwind_buf *buf = cleanup_top;
  bool end = (actions & _UA_END_OF_STACK) != 0;
  /* The frame that holds buf is about to be unwound once the CFA (the
   * caller's stack pointer) rises above buf: enter its handler now. */
  if (buf && (end || _Unwind_GetCFA(ctx) > (uintptr_t)buf)) {
    cleanup_top = buf->pad[0];
    /* The buffer holds only the jmp_buf and mask_was_saved (0), which is
     * all longjmp reads of it: gcc's size warning does not apply. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
    longjmp((struct __jmp_buf_tag *)(void *)buf->cancel_jmp_buf, 1);
#pragma GCC diagnostic pop
  }
  if (end)
    gmp_goexit(exit_value);
  return _URC_NO_REASON;
}

static _Noreturn void unwind_now(void)
{
  memset(&exit_exc, 0, sizeof exit_exc);
  exit_exc.exception_class = 0x474d500045584954ULL; /* "GMP\0EXIT" */
  _Unwind_ForcedUnwind(&exit_exc, exit_stop, NULL);
  /* The unwinder could not walk the stack (no unwind info somewhere):
   * end the G here, without the remaining handlers. */
  gmp_goexit(exit_value);
}

void gmp_exit_unwind(void *retval)
{
  exit_value = retval;
  unwind_now();
}

GMP_EXPORT void __pthread_register_cancel(__pthread_unwind_buf_t *b)
{
  if (!gmp_self()) {
    REAL(__pthread_register_cancel)(b);
    return;
  }
  struct unwind_buf *buf = (struct unwind_buf *)b;
  buf->pad[0] = cleanup_top;
  cleanup_top = buf;
}

GMP_EXPORT void __pthread_unregister_cancel(__pthread_unwind_buf_t *b)
{
  if (!gmp_self()) {
    REAL(__pthread_unregister_cancel)(b);
    return;
  }
  struct unwind_buf *buf = (struct unwind_buf *)b;
  cleanup_top = buf->pad[0];
}

/* Called by the pthread_cleanup_push landing code after the handler ran:
 * continue the unwinding towards the next buffer. */
GMP_EXPORT void __pthread_unwind_next(__pthread_unwind_buf_t *b)
{
  if (!gmp_self())
    REAL(__pthread_unwind_next)(b);
  unwind_now();
}
