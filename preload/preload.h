/*
 * Shared by the wrapper files of preload/: the export macro, the check
 * that decides whether a call is ours to handle, and time conversions.
 */
#ifndef GMP_PRELOAD_H
#define GMP_PRELOAD_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "preload/real.h"
#include "sched/lock.h"
#include "sched/sched.h"

/* Everything in libgmp.so is hidden except the interposed symbols. */
#define GMP_EXPORT __attribute__((visibility("default")))

/* The real function, resolved on first use if a wrapper runs before the
 * constructor (another library's constructor may create threads). */
#define REAL(name) (real_##name ? real_##name : (gmp_real_init(), real_##name))

/* The G making this call, or NULL when the call must pass through to
 * glibc: runtime disabled (fail-safe), or a thread the runtime did not
 * make (the runtime's own threads, or threads made behind its back). */
static inline struct g *gmp_self(void)
{
  return gmp_running ? gmp_curg() : NULL;
}

static inline bool ts_valid(const struct timespec *ts)
{
  return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

static inline int64_t ts_ns(const struct timespec *ts)
{
  if (ts->tv_sec >= INT64_MAX / 1000000000LL - 1)
    return INT64_MAX / 2;
  return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* An absolute time on clock clk, as a monotonic deadline. A deadline in
 * the past stays in the past. Returns false for an unsupported clock. */
static inline bool abs_to_deadline(clockid_t clk, const struct timespec *abs, int64_t *out)
{
  int64_t now = gmp_clock_ns(clk);
  if (now < 0)
    return false;
  int64_t rel = ts_ns(abs) - now;
  int64_t mono = gmp_nanotime();
  *out = rel > INT64_MAX / 4 ? INT64_MAX / 2 : mono + rel;
  return true;
}

/* Raw futex calls (futex.c): the result (>= 0 or -errno), or
 * GMP_FUTEX_KERNEL for a call the kernel must make. */
#define GMP_FUTEX_KERNEL LONG_MIN
long gmp_futex(long a1, long a2, long a3, long a4, long a5, long a6);

/* Send the signal info->si_signo to G g (thread.c): 0 or an error number. */
#include <signal.h>
int gmp_signal_thread(struct g *g, siginfo_t *info);
/* The thread-id system calls made through syscall(2) (tid.c): true if nr
 * names a thread by id and was answered (*ret: syscall's -1/errno form). */
bool gmp_tid_syscall(long nr, long a1, long a2, long a3, long a4, long *ret);
/* At a G's exit: carry out its set_tid_address (tid.c). */
void gmp_tid_thread_exit(void);

/* Cancellation (cancel.c): act on a pending cancel of the current G. */
void gmp_testcancel(void);
_Noreturn void gmp_cancel_act(void);

/* A call into glibc's own implementation that may block the OS thread
 * (process-shared objects, named semaphores): from a G, inside
 * entersyscall/exitsyscall so that its P is handed over while it blocks.
 * errno is the call's. */
#define NATIVE_BLOCKING(call)                                                 \
  ({                                                                          \
    int r_;                                                                   \
    if (gmp_self()) {                                                         \
      gmp_entersyscall();                                                     \
      r_ = (call);                                                            \
      int e_ = errno;                                                         \
      gmp_exitsyscall();                                                      \
      errno = e_;                                                             \
    } else {                                                                  \
      r_ = (call);                                                            \
    }                                                                         \
    r_;                                                                       \
  })

#endif
