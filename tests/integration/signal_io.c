/* signal_io: signals meeting threads that wait in I/O, and a process whose
 * threads all wait.
 * gmp-test: mode=compare timeout=60
 *
 *  - pthread_kill to a thread blocked in read(): the handler runs in that
 *    thread (its __thread id), then read fails with EINTR when the handler
 *    has no SA_RESTART, and goes on waiting (then gets the data) with it;
 *  - poll() interrupted the same way fails with EINTR even with SA_RESTART;
 *  - accept() interrupted without SA_RESTART: EINTR;
 *  - a child whose threads are all blocked (join, accept, read) dies of a
 *    SIGINT sent by its parent, as Ctrl-C would kill it; a SIGTERM handler
 *    in such a child runs (it writes to a pipe and _exits 3);
 *  - the sigwait pattern: SIGTERM blocked in main before creating threads,
 *    one thread in sigwait, another blocked in read: kill(getpid(),
 *    SIGTERM) reaches sigwait;
 *  - the program's own SIGURG handler gets pthread_kill(t, SIGURG).
 * Deterministic output.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static __thread int my_id;
static atomic_int handler_ran_in = -1;
static atomic_int urg_handled;

static void on_usr1(int sig)
{
  (void)sig;
  atomic_store(&handler_ran_in, my_id);
}

static void on_urg(int sig)
{
  (void)sig;
  atomic_fetch_add(&urg_handled, 1);
}

static void msleep(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static void set_handler(int sig, void (*h)(int), int flags)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = h;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

/* ---- a thread blocked in a call, interrupted ---------------------------- */

enum { DO_READ, DO_POLL, DO_ACCEPT };

struct blocked {
  int fd;
  int what;
  atomic_int started;
  long rc;
  int err;
};

static void *blocked_main(void *arg)
{
  struct blocked *b = arg;
  my_id = 7;
  atomic_store(&b->started, 1);
  char c;
  struct pollfd p = {b->fd, POLLIN, 0};
  errno = 0;
  if (b->what == DO_READ)
    b->rc = read(b->fd, &c, 1);
  else if (b->what == DO_POLL)
    b->rc = poll(&p, 1, 5000);
  else
    b->rc = accept(b->fd, NULL, NULL);
  b->err = errno;
  return NULL;
}

static void interrupt_case(const char *name, int fd, int what, int flags, int feed)
{
  set_handler(SIGUSR1, on_usr1, flags);
  atomic_store(&handler_ran_in, -1);
  struct blocked b = {.fd = fd, .what = what};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, blocked_main, &b) == 0, "create");
  while (!atomic_load(&b.started))
    msleep(1);
  msleep(100); /* well inside the call */
  CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
  msleep(100);
  if (feed >= 0)
    CHECK(write(feed, "d", 1) == 1, "feed");
  pthread_join(t, NULL);
  printf("%s: handler in thread %d, rc %ld %s\n", name, atomic_load(&handler_ran_in), b.rc,
         b.rc < 0 ? ename(b.err) : "");
}

static int listener(void)
{
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0, "bind");
  CHECK(listen(l, 8) == 0, "listen");
  return l;
}

static void test_interrupts(void)
{
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  interrupt_case("read, no SA_RESTART", sv[0], DO_READ, 0, -1);
  interrupt_case("read, SA_RESTART", sv[0], DO_READ, SA_RESTART, sv[1]);
  interrupt_case("poll, SA_RESTART", sv[0], DO_POLL, SA_RESTART, -1);
  int l = listener();
  interrupt_case("accept, no SA_RESTART", l, DO_ACCEPT, 0, -1);
  close(l);
  close(sv[0]);
  close(sv[1]);
}

/* ---- a child whose threads all wait ------------------------------------- */

static int child_fd;

static void *child_reader(void *arg)
{
  char c;
  read(child_fd, &c, 1);
  return arg;
}

static void *child_acceptor(void *arg)
{
  accept(*(int *)arg, NULL, NULL);
  return NULL;
}

static int report_fd;

static void on_term(int sig)
{
  (void)sig;
  write(report_fd, "T", 1);
  _exit(3);
}

static void child_all_blocked(int with_handler, int ready_fd)
{
  if (with_handler) {
    report_fd = ready_fd;
    set_handler(SIGTERM, on_term, 0);
  }
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  child_fd = sv[0];
  int l = listener();
  pthread_t a, b;
  pthread_create(&a, NULL, child_reader, NULL);
  pthread_create(&b, NULL, child_acceptor, &l);
  write(ready_fd, "R", 1);
  pthread_join(a, NULL); /* main blocks too */
  _exit(0);
}

static void test_all_blocked(int sig, int with_handler)
{
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    close(p[0]);
    child_all_blocked(with_handler, p[1]);
  }
  close(p[1]);
  char c;
  CHECK(read(p[0], &c, 1) == 1 && c == 'R', "child ready");
  msleep(200); /* every thread of the child is waiting now */
  kill(pid, sig);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  char got = 0;
  ssize_t n = read(p[0], &got, 1);
  if (WIFSIGNALED(st))
    printf("child with all threads blocked, %s: killed by %s\n", strsignal(sig),
           strsignal(WTERMSIG(st)));
  else
    printf("child with all threads blocked, %s: exit %d, handler wrote %s\n", strsignal(sig),
           WEXITSTATUS(st), n == 1 && got == 'T' ? "T" : "nothing");
  close(p[0]);
}

/* ---- the sigwait pattern ------------------------------------------------- */

static int sw_fd;

static void *sw_reader(void *arg)
{
  char c;
  read(sw_fd, &c, 1);
  return arg;
}

static void *sw_waiter(void *arg)
{
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  int sig = 0;
  CHECK(sigwait(&s, &sig) == 0, "sigwait");
  *(int *)arg = sig;
  return NULL;
}

static void test_sigwait(void)
{
  sigset_t s, old;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, &old);
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  sw_fd = sv[0];
  int got = 0;
  pthread_t r, w;
  pthread_create(&r, NULL, sw_reader, NULL);
  pthread_create(&w, NULL, sw_waiter, &got);
  msleep(100);
  kill(getpid(), SIGTERM);
  pthread_join(w, NULL);
  printf("sigwait thread got: %s\n", got == SIGTERM ? "SIGTERM" : "something else");
  /* blocked by every thread now: it stays pending for the process */
  kill(getpid(), SIGTERM);
  struct timespec wait = {2, 0};
  siginfo_t si;
  int left = sigtimedwait(&s, &si, &wait) == SIGTERM;
  printf("the next one stayed pending: %d\n", left);
  write(sv[1], "x", 1);
  pthread_join(r, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(sv[0]);
  close(sv[1]);
}

/* ---- the program's SIGURG ------------------------------------------------ */

static void *urg_target(void *arg)
{
  atomic_int *go = arg;
  while (!atomic_load(go))
    msleep(1);
  return NULL;
}

static void test_urg(void)
{
  set_handler(SIGURG, on_urg, SA_RESTART);
  atomic_int go = 0;
  pthread_t t;
  pthread_create(&t, NULL, urg_target, &go);
  for (int i = 0; i < 3; i++) {
    pthread_kill(t, SIGURG);
    msleep(20);
  }
  raise(SIGURG);
  atomic_store(&go, 1);
  pthread_join(t, NULL);
  struct sigaction now;
  sigaction(SIGURG, NULL, &now);
  printf("program's SIGURG handler ran %d times, reads back as its own: %d\n",
         atomic_load(&urg_handled), now.sa_handler == on_urg);
}

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  my_id = 1;
  test_interrupts();
  test_all_blocked(SIGINT, 0);
  test_all_blocked(SIGTERM, 1);
  test_sigwait();
  test_urg();
  return 0;
}
