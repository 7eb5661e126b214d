/* exit_from_thread: exit(3) from a thread while the others are blocked.
 * gmp-test: mode=compare
 *
 * main waits in pthread_join, one thread in read() on a pipe nobody
 * writes, one in pthread_cond_wait, one in sleep(100), one in accept();
 * a fifth thread calls exit(3). The process must end at once with status
 * 3, atexit handlers run exactly once, in the exiting thread, and stdio
 * buffered output is flushed (it is written without a newline flush).
 * The scenario runs in a child (its stdout a pipe); the parent prints what
 * it wrote and how it ended, and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/check.h"

static int p[2], lfd;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static __thread int who;

static void at_exit(void) { printf("atexit ran in thread %d\n", who); }

static void *reader(void *a) { char c; read(p[0], &c, 1); return a; }
static void *waiter(void *a)
{
  pthread_mutex_lock(&mu);
  for (;;)
    pthread_cond_wait(&cv, &mu);
  return a;
}
static void *sleeper(void *a) { sleep(100); return a; }
static void *acceptor(void *a) { accept(lfd, NULL, NULL); return a; }
static void *exiter(void *a)
{
  who = 5;
  usleep(100000); /* everyone else is blocked by now */
  printf("thread 5 calls exit(3)");
  exit(3);
  return a;
}

static void scenario(void)
{
  CHECK(pipe(p) == 0, "pipe");
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(lfd, (struct sockaddr *)&la, sizeof la) == 0 && listen(lfd, 4) == 0, "listen");
  atexit(at_exit);
  who = 1;
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  printf("main starts 5 threads\n");
  void *(*fns[])(void *) = {reader, waiter, sleeper, acceptor, exiter};
  pthread_t t[5];
  for (int i = 0; i < 5; i++)
    CHECK(pthread_create(&t[i], NULL, fns[i], NULL) == 0, "create");
  pthread_join(t[0], NULL); /* never returns: exit(3) ends the process */
  printf("NOT REACHED\n");
  exit(0);
}

int main(void)
{
  int out[2];
  CHECK(pipe(out) == 0, "pipe");
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    scenario();
  }
  close(out[1]);
  char buf[512];
  size_t n = 0;
  ssize_t k;
  while (n < sizeof buf - 1 && (k = read(out[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)k;
  buf[n] = 0;
  int st;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  printf("child wrote:\n%s", buf);
  printf("child ended: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  return 0;
}
