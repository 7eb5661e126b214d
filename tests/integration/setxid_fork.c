/*
 * gmp-test: mode=compare
 *
 * What a pre-forking server's child does (Apache's worker MPM): a
 * process with threads forks; the child drops privileges (setgroups,
 * setgid, setuid) before it starts its own threads, and every one of
 * them, and the child itself, must then have the new credentials. As
 * non-root the calls keep the same ids (setuid(getuid())). Natively: the
 * child's report and exit 0. Done 6 times, forking from main and from
 * other threads, so that under a green-thread runtime the fork happens
 * on different OS threads (the one that was main, or not).
 */
#define _GNU_SOURCE
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned want_uid, want_gid;

static int os_thread_ok(void)
{
  FILE *f = fopen("/proc/thread-self/status", "r");
  char line[256];
  unsigned r, e = ~0u, s, fs, ge = ~0u;
  while (f && fgets(line, sizeof line, f)) {
    if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &fs) == 4)
      continue;
    sscanf(line, "Gid: %u %u %u %u", &r, &ge, &s, &fs);
  }
  if (f)
    fclose(f);
  return e == want_uid && ge == want_gid;
}

static void *check(void *arg)
{
  int ok = 1;
  for (int i = 0; i < 20; i++) {
    ok &= os_thread_ok();
    usleep(500);
  }
  return (void *)(long)ok;
}

static void *idle(void *arg)
{
  sleep(1);
  return arg;
}

static void fork_and_drop(const char *who);

static void *forker(void *arg)
{
  fork_and_drop("a thread");
  return arg;
}

int main(void)
{
  alarm(60);
  pthread_t bg[3];
  for (int i = 0; i < 3; i++)
    pthread_create(&bg[i], NULL, idle, NULL);
  for (int round = 0; round < 3; round++) {
    fork_and_drop("main");
    pthread_t f;
    pthread_create(&f, NULL, forker, NULL);
    pthread_join(f, NULL);
  }
  for (int i = 0; i < 3; i++)
    pthread_join(bg[i], NULL);
  return 0;
}

static void fork_and_drop(const char *who)
{
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0) {
      if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
        perror("drop privileges");
        _exit(2);
      }
      want_uid = want_gid = 65534;
    } else {
      if (setgid(getgid()) || setuid(getuid())) {
        perror("setuid");
        _exit(2);
      }
      want_uid = geteuid();
      want_gid = getegid();
    }
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
      pthread_create(&t[i], NULL, check, NULL);
    int ok = os_thread_ok();
    for (int i = 0; i < 8; i++) {
      void *r;
      pthread_join(t[i], &r);
      ok &= (int)(long)r;
    }
    printf("child of %s: privileges dropped, the child and its 8 threads see them: %s\n", who,
           ok ? "yes" : "NO");
    fflush(stdout);
    _exit(ok ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  printf("parent: child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
