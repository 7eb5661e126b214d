/*
 * gmp-test: mode=compare
 *
 * What CPython's subprocess does between vfork and exec: the child resets
 * a signal handler to SIG_DFL and closes a descriptor, then execs. None
 * of it may reach the parent: afterwards the parent's handler still runs
 * (raise), its pipe still works, and its threads still run. The child
 * execs /bin/true or _exits when there is none.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"

static volatile sig_atomic_t got;
static void on_usr1(int s) { got++; }

static void *spin_a_bit(void *arg)
{
  usleep(10000);
  return arg;
}

int main(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  pthread_t t;
  pthread_create(&t, NULL, spin_a_bit, NULL);
  for (int i = 0; i < 20; i++) {
    pid_t c = vfork();
    CHECK(c >= 0, "vfork");
    if (c == 0) {
      signal(SIGUSR1, SIG_DFL);
      close(p[0]);
      close(p[1]);
      char *argv[] = {"true", NULL};
      execv("/bin/true", argv);
      _exit(0);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
  }
  pthread_join(t, NULL);
  raise(SIGUSR1);
  char b = 0;
  CHECK(write(p[1], "k", 1) == 1, "write: %s", strerror(errno));
  CHECK(read(p[0], &b, 1) == 1, "read: %s", strerror(errno));
  printf("after 20 vfork children: handler ran %d time(s), pipe carried '%c'\n", (int)got, b);
  return 0;
}
