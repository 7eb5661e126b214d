/* daemon_server: a legacy daemon: fork, setsid, fork again, then serve
 * TCP connections on 127.0.0.1 with one thread per connection.
 * gmp-test: mode=compare timeout=120
 *
 * Each fork leaves only the forking thread in the child; the daemon then
 * creates an accept thread and a thread per connection doing blocking
 * read/write. The original process connects 20 times, each with its own
 * thread, sends a line and checks the echo, then tells the daemon to quit
 * and waits for it (it is not our child: a pipe reports its exit).
 * Deterministic output.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCONN 20

static int lfd;

static void *conn_main(void *arg)
{
  int c = (int)(long)arg;
  char buf[256];
  ssize_t n;
  while ((n = read(c, buf, sizeof buf)) > 0) {
    if (n >= 4 && memcmp(buf, "QUIT", 4) == 0)
      _exit(0); /* the daemon ends here */
    if (write(c, buf, (size_t)n) != n)
      break;
  }
  close(c);
  return NULL;
}

static void *accept_main(void *arg)
{
  for (;;) {
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
      continue;
    pthread_t t;
    pthread_create(&t, NULL, conn_main, (void *)(long)c);
    pthread_detach(t);
  }
  return NULL;
}

static void daemon_main(int report)
{
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
    _exit(3);
  unsigned short port = ntohs(a.sin_port);
  if (write(report, &port, sizeof port) != sizeof port)
    _exit(4);
  pthread_t t;
  pthread_create(&t, NULL, accept_main, NULL);
  pthread_join(t, NULL);
}

static unsigned short port;
static int ok[NCONN];

static void *client(void *arg)
{
  long id = (long)arg;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
    return NULL;
  char msg[64], got[64] = "";
  int len = snprintf(msg, sizeof msg, "hello from client %ld\n", id);
  if (write(s, msg, (size_t)len) == len) {
    size_t have = 0;
    while (have < (size_t)len) {
      ssize_t n = read(s, got + have, (size_t)len - have);
      if (n <= 0)
        break;
      have += (size_t)n;
    }
    ok[id] = have == (size_t)len && memcmp(got, msg, (size_t)len) == 0;
  }
  close(s);
  return NULL;
}

int main(void)
{
  int pfd[2];
  if (pipe(pfd) != 0)
    return 1;
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) {
    setsid();
    if (fork() != 0)
      _exit(0); /* the intermediate process */
    close(pfd[0]);
    daemon_main(pfd[1]);
    _exit(5);
  }
  close(pfd[1]);
  waitpid(p, NULL, 0);
  if (read(pfd[0], &port, sizeof port) != sizeof port) {
    printf("daemon did not report a port\n");
    return 1;
  }
  pthread_t t[NCONN];
  for (long i = 0; i < NCONN; i++)
    pthread_create(&t[i], NULL, client, (void *)i);
  int good = 0;
  for (int i = 0; i < NCONN; i++) {
    pthread_join(t[i], NULL);
    good += ok[i];
  }
  printf("daemon served %d of %d connections correctly\n", good, NCONN);
  /* Tell it to quit; its end closes the pipe's write side. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && write(s, "QUIT", 4) == 4) {
    char c;
    printf("daemon exited: %s\n", read(pfd[0], &c, 1) == 0 ? "yes" : "no");
  }
  close(s);
  return good == NCONN ? 0 : 1;
}
