/* tsd_early_key: keys made by a library's constructor before the program
 * (and libgmp) started keep working, per thread, beside keys made later.
 * gmp-test: mode=compare
 *
 * Linked against lib/earlykey.c, whose constructor creates three keys.
 * main and 8 threads set their own value under each early key and under a
 * key created in main, and read them back after yielding; key numbers and
 * errors are printed (not the pointers).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/check.h"

extern pthread_key_t earlykey_keys[3];
extern int earlykey_rc;
static pthread_key_t late;

static int use_keys(intptr_t id)
{
  int bad = 0;
  for (int i = 0; i < 3; i++)
    CHECK(pthread_setspecific(earlykey_keys[i], (void *)(id * 10 + i + 1)) == 0,
          "setspecific(early %d) failed", i);
  CHECK(pthread_setspecific(late, (void *)(id + 1000)) == 0, "setspecific(late)");
  for (int r = 0; r < 50; r++) {
    sched_yield();
    for (int i = 0; i < 3; i++)
      bad += pthread_getspecific(earlykey_keys[i]) != (void *)(id * 10 + i + 1);
    bad += pthread_getspecific(late) != (void *)(id + 1000);
  }
  return bad;
}

static void *thread_main(void *arg)
{
  return (void *)(intptr_t)use_keys((intptr_t)arg);
}

int main(void)
{
  printf("library constructor made its keys: %s\n", earlykey_rc == 0 ? "yes" : "no");
  CHECK(pthread_key_create(&late, NULL) == 0, "key_create");
  int distinct = late != earlykey_keys[0] && late != earlykey_keys[1] && late != earlykey_keys[2];
  printf("key made by main differs from the early ones: %d\n", distinct);
  pthread_t t[8];
  for (intptr_t i = 0; i < 8; i++)
    CHECK(pthread_create(&t[i], NULL, thread_main, (void *)(i + 1)) == 0, "create");
  long bad = use_keys(0);
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += (intptr_t)r;
  }
  printf("wrong values read back: %ld\n", bad);
  CHECK(pthread_key_delete(earlykey_keys[2]) == 0, "delete early");
  printf("delete of an early key: ok\n");
  return bad != 0;
}
