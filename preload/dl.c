/*
 * dlopen: a library with initial-exec TLS loaded after Gs exist gets its
 * static TLS initialised by glibc only in the threads glibc knows; every
 * TCB of the runtime is initialised here (see shim/tls.c). Libraries with
 * ordinary (dynamic) TLS need nothing: __tls_get_addr allocates per G.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "preload/preload.h"

static gmp_lock dl_lock;

GMP_EXPORT void *dlopen(const char *file, int mode)
{
  if (!gmp_running)
    return REAL(dlopen)(file, mode);
  /* Serialised so that two concurrent dlopens agree on what is new. */
  gmp_lock_acquire(&dl_lock);
  struct gmp_tls_snapshot snap;
  gmp_tls_snapshot(&snap);
  void *h = REAL(dlopen)(file, mode);
  if (h && gmp_tls_new_static(&snap) > 0)
    gmp_for_each_tcb(gmp_tls_init_new_static, NULL);
  gmp_lock_release(&dl_lock);
  return h;
}
