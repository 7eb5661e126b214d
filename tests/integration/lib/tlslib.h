/* tlslib: a shared library with its own __thread variables, used by the
 * integration programs tls_isolation (linked against it) and tls_dlopen
 * (loads it with dlopen). The library's TLS is reached through
 * __tls_get_addr (general-dynamic model), the program's own through
 * initial-exec, so both paths of glibc's TLS are exercised. */
#ifndef GMP_IT_TLSLIB_H
#define GMP_IT_TLSLIB_H

#define TLSLIB_INIT_VALUE 4242          /* initializer of tlslib_exported */
#define TLSLIB_ARRAY_LEN  64            /* length of the zero-initialised array */

/* Exported TLS variable with a non-zero initializer; the program may access
 * it directly (extern __thread). */
extern __thread int tlslib_exported;

void tlslib_set(int v);                 /* sets a static __thread int */
int  tlslib_get(void);
int *tlslib_addr(void);                 /* address of that static __thread int */
int  tlslib_initial(void);              /* value of tlslib_exported, read inside the lib */
int *tlslib_exported_addr(void);        /* &tlslib_exported, computed inside the lib */
/* Returns 1 if this thread's zero-initialised __thread array is all zero. */
int  tlslib_array_is_zero(void);
/* Fills this thread's array with v, then returns 1 if it reads back as v. */
int  tlslib_array_fill_check(int v);
int *tlslib_array_addr(void);

#endif
