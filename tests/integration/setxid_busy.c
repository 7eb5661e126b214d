/*
 * gmp-test: mode=compare
 *
 * seteuid/setegid back and forth 200 times while 4 threads compute and
 * read their own credentials: every call must return, and afterwards
 * every thread must see the final ids. Needs root for the uid change
 * (otherwise it only calls setuid(getuid())). Exits 0 natively.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int stop, wrong;
static unsigned final_uid;

static unsigned euid_of_os_thread(void)
{
  FILE *f = fopen("/proc/thread-self/status", "r");
  char line[256];
  unsigned r, e = ~0u, s, fs;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &fs) == 4)
      break;
  if (f)
    fclose(f);
  return e;
}

static void *busy(void *arg)
{
  (void)arg;
  volatile unsigned long x = 0;
  while (!atomic_load(&stop))
    for (int i = 0; i < 100000; i++)
      x += i;
  for (int i = 0; i < 20; i++) { /* after the last change */
    if (euid_of_os_thread() != final_uid)
      atomic_store(&wrong, 1);
    usleep(500);
  }
  return NULL;
}

int main(void)
{
  alarm(20);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, busy, NULL);
  int root = geteuid() == 0;
  for (int i = 0; i < 200; i++) {
    if (root) {
      if (seteuid(i % 2 ? 0 : 65534) != 0) { perror("seteuid"); return 2; }
    } else if (setuid(getuid()) != 0) {
      perror("setuid");
      return 2;
    }
    usleep(100);
  }
  final_uid = geteuid();
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  if (euid_of_os_thread() != final_uid)
    wrong = 1;
  printf("200 changes done, %s\n", wrong ? "FAIL: a thread saw other credentials" : "every thread sees the final euid");
  return wrong;
}
