/*
 * gmp-test: mode=compare
 *
 * A signal sent before the data a thread waits for is handled before
 * that thread sees the data: a child does kill(parent, SIGUSR1) and then
 * writes to a pipe the parent polls; when poll returns, the handler has
 * run (natively the kernel delivers the signal at kill time). Then the
 * parent resets SIGUSR1 to SIG_DFL, as CPython's test_subprocess does: a
 * signal delivered late would now kill it. 200 rounds.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"

static volatile sig_atomic_t got;
static void on_usr1(int s) { got++; }

int main(void)
{
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
  int seen = 0;
  for (int i = 0; i < 200; i++) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    got = 0;
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
      usleep(200);
      kill(getppid(), SIGUSR1);
      (void)!write(p[1], "x", 1);
      _exit(0);
    }
    close(p[1]);
    struct pollfd pf = {p[0], POLLIN, 0};
    while (poll(&pf, 1, -1) < 0)
      ;
    char b;
    CHECK(read(p[0], &b, 1) == 1, "read");
    seen += got == 1;
    signal(SIGUSR1, SIG_DFL);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    waitpid(c, NULL, 0);
    close(p[0]);
  }
  printf("the handler ran before poll returned the data in %d of 200 rounds\n", seen);
  return 0;
}
