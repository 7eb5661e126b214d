/*
 * gmp-test: mode=compare
 *
 * setgroups/setegid/seteuid in a threaded process: glibc applies the
 * change to every OS thread of the process (SIGSETXID broadcast,
 * nptl_setxid.c), because Linux credentials are per thread. Afterwards
 * every thread -- the caller and the others -- must see the new ids.
 *
 * Natively: prints the ids each thread sees and exits 0.
 * A failure: the call never returns (alarm ends the process with
 * SIGALRM), or some thread still sees the old ids (exit 1).
 */
#define _GNU_SOURCE
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 4
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;

/* effective uid/gid as the kernel sees them for the calling OS thread */
static void ids(unsigned *euid, unsigned *egid)
{
  FILE *f = fopen("/proc/thread-self/status", "r");
  char line[256];
  unsigned r, e, s, fs;
  *euid = *egid = ~0u;
  if (!f)
    return;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &fs) == 4)
      *euid = e;
    if (sscanf(line, "Gid: %u %u %u %u", &r, &e, &s, &fs) == 4)
      *egid = e;
  }
  fclose(f);
}

static unsigned want_uid, want_gid;

static void *worker(void *arg)
{
  long id = (long)arg;
  pthread_mutex_lock(&mu);
  while (!go)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  int bad = 0;
  for (int i = 0; i < 50; i++) { /* look from wherever the thread runs */
    unsigned eu, eg;
    ids(&eu, &eg);
    if (eu != want_uid || eg != want_gid) {
      printf("thread %ld: euid %u egid %u, expected %u %u\n", id, eu, eg, want_uid, want_gid);
      bad = 1;
      break;
    }
    usleep(1000);
  }
  return (void *)(long)bad;
}

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(10);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    pthread_create(&t[i], NULL, worker, (void *)i);
  usleep(20000); /* the workers wait in pthread_cond_wait */

  if (geteuid() == 0) {
    /* what a daemon dropping privileges does (memcached -u, redis, ...) */
    if (setgroups(0, NULL) != 0) { perror("setgroups"); return 2; }
    if (setegid(65534) != 0) { perror("setegid"); return 2; }
    if (seteuid(65534) != 0) { perror("seteuid"); return 2; }
    want_uid = 65534;
    want_gid = 65534;
  } else {
    if (setuid(getuid()) != 0) { perror("setuid"); return 2; }
    want_uid = geteuid();
    want_gid = getegid();
  }
  printf("credentials changed\n");

  pthread_mutex_lock(&mu);
  go = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  int bad = 0;
  for (int i = 0; i < NTHREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad |= (int)(long)r;
  }
  printf("%s\n", bad ? "FAIL: a thread kept the old credentials" : "all threads see the new credentials");
  return bad;
}
