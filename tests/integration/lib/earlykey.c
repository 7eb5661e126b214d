/* earlykey: a shared library whose constructor creates thread-specific
 * data keys, as GLib's GPrivate can: under LD_PRELOAD it may run before
 * libgmp's own constructor, so the keys are glibc's, made natively. Used
 * by tsd_early_key. */
#include <pthread.h>

pthread_key_t earlykey_keys[3];
int earlykey_rc = -1;

__attribute__((constructor)) static void make_keys(void)
{
  earlykey_rc = 0;
  for (int i = 0; i < 3; i++)
    earlykey_rc |= pthread_key_create(&earlykey_keys[i], NULL);
}
