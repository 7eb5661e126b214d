/*
 * Resolution of the real implementations. dlsym(RTLD_NEXT) from inside
 * libgmp.so finds the next definition in search order, glibc's (at its
 * default version: e.g. pthread_cond_wait@@GLIBC_2.3.2). It runs once, in
 * the constructor, before any wrapper needs it; dlsym does not call any of
 * the functions interposed here, so it cannot recurse into us.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "preload/real.h"

#define GMP_REAL_DEF(ret, name, params) ret(*real_##name) params;
GMP_REAL_LIST(GMP_REAL_DEF)
#undef GMP_REAL_DEF

const char *gmp_real_init(void)
{
  const char *missing = NULL;
#define GMP_REAL_RESOLVE(ret, name, params)                              \
  real_##name = (ret(*) params)dlsym(RTLD_NEXT, #name);                   \
  if (!real_##name && !missing)                                          \
    missing = #name;
  GMP_REAL_LIST(GMP_REAL_RESOLVE)
#undef GMP_REAL_RESOLVE
  return missing;
}
