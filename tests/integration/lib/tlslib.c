/* tlslib: shared library with __thread variables for the TLS integration
 * tests (see tlslib.h). Built as libittls.so by tests/CMakeLists.txt. */
#include "tlslib.h"

__thread int tlslib_exported = TLSLIB_INIT_VALUE;
static __thread int lib_value;                    /* .tbss, zero */
static __thread int lib_array[TLSLIB_ARRAY_LEN];  /* .tbss, zero */

void tlslib_set(int v) { lib_value = v; }
int tlslib_get(void) { return lib_value; }
int *tlslib_addr(void) { return &lib_value; }
int tlslib_initial(void) { return tlslib_exported; }
int *tlslib_exported_addr(void) { return &tlslib_exported; }
int *tlslib_array_addr(void) { return lib_array; }

int tlslib_array_is_zero(void)
{
    for (int i = 0; i < TLSLIB_ARRAY_LEN; i++)
        if (lib_array[i] != 0)
            return 0;
    return 1;
}

int tlslib_array_fill_check(int v)
{
    volatile int *a = lib_array;
    for (int i = 0; i < TLSLIB_ARRAY_LEN; i++)
        a[i] = v + i;
    for (int i = 0; i < TLSLIB_ARRAY_LEN; i++)
        if (a[i] != v + i)
            return 0;
    return 1;
}
