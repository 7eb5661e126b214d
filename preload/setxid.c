/*
 * setuid & co. Linux credentials belong to each OS thread; glibc makes a
 * set*id call on every thread it lists (nptl_setxid.c: SIGSETXID to each,
 * then the call itself in the caller), skipping the caller, which it
 * recognises by THREAD_SELF. A G's TCB is not the OS thread's, and the
 * main G's TCB is the one glibc lists for M0: the main G calling setuid
 * from another M would leave M0 with the old credentials, and any G would
 * later run on it with them. So the call runs with fs set to the M's own
 * (g0) TCB: glibc then skips exactly the calling OS thread and signals all
 * others, M0 included (sched/signal.c runs each handler as its M).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <unistd.h>

#include "preload/preload.h"

/* Not inlined nor analysed: errno is read while fs is the M's TCB, and
 * __errno_location, declared const, must not be moved across the switch. */
static __attribute__((noipa)) int errno_now(void) { return errno; }

#define SETXID_CALL(ret, fn, params, args)                                     \
  static ret (*real_x_##fn) params;                                            \
  GMP_EXPORT ret fn params                                                     \
  {                                                                            \
    if (!real_x_##fn)                                                          \
      real_x_##fn = (ret(*) params)dlsym(RTLD_NEXT, #fn);                      \
    if (!gmp_self())                                                           \
      return real_x_##fn args;                                                 \
    void *prev = gmp_m_fs_enter();                                             \
    ret rv_ = real_x_##fn args;                                                  \
    int err_ = errno_now();                                                       \
    gmp_m_fs_leave(prev);                                                      \
    if (rv_ != 0)                                                              \
      errno = err_;                                                            \
    return rv_;                                                                \
  }

SETXID_CALL(int, setuid, (uid_t u), (u))
SETXID_CALL(int, setgid, (gid_t g), (g))
SETXID_CALL(int, seteuid, (uid_t u), (u))
SETXID_CALL(int, setegid, (gid_t g), (g))
SETXID_CALL(int, setreuid, (uid_t r, uid_t e), (r, e))
SETXID_CALL(int, setregid, (gid_t r, gid_t e), (r, e))
SETXID_CALL(int, setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
SETXID_CALL(int, setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
SETXID_CALL(int, setgroups, (size_t n, const gid_t *l), (n, l))
SETXID_CALL(int, initgroups, (const char *u, gid_t g), (u, g))
