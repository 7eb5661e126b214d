/* A library whose __thread variables use the initial-exec model (as
 * libraries built with -ftls-model=initial-exec, or glibc's own, do):
 * dlopen()ed, its block lives in every thread's static TLS. */
__attribute__((tls_model("initial-exec"))) __thread int tlsie_value = 99;
__attribute__((tls_model("initial-exec"))) __thread char tlsie_zero[64];

int tlsie_get(void) { return tlsie_value; }
void tlsie_set(int v) { tlsie_value = v; }
int tlsie_zero_ok(void)
{
  for (int i = 0; i < 64; i++)
    if (tlsie_zero[i])
      return 0;
  return 1;
}
