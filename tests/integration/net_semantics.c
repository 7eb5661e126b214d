/* net_semantics: what a threaded program sees of sockets, pipes and the
 * readiness calls, one case per function; every answer printed.
 * gmp-test: mode=compare timeout=60
 *
 *  - O_NONBLOCK views (SOCK_NONBLOCK, fcntl F_SETFL, ioctl FIONBIO) return
 *    EAGAIN at once, and F_GETFL reports what the program set, also on a
 *    listening socket after a blocking accept;
 *  - SO_RCVTIMEO times out on time with EAGAIN; SO_SNDTIMEO on a full
 *    socket too;
 *  - shutdown(SHUT_RD) wakes a thread blocked in recv (it returns 0);
 *  - poll, ppoll, select, pselect: readiness from another thread, and
 *    timeouts that are not early; several fds at once;
 *  - blocking connect: to a listener, and ECONNREFUSED from a closed port;
 *  - recv(MSG_WAITALL) gathers; MSG_PEEK; readv/writev; sendmsg with
 *    SCM_RIGHTS passes an fd;
 *  - a worker thread running its own epoll_wait loop over socketpairs
 *    others write to; eventfd ping-pong between two threads;
 *  - write to a socket whose peer closed: EPIPE (SIGPIPE ignored).
 * Output is deterministic.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/check.h"

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void msleep(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* "on time": not early, and not absurdly late on a loaded 2-CPU VM. */
static const char *timing(double took, double want)
{
  if (took < want - 2)
    return "EARLY";
  if (took > want + 1500)
    return "LATE";
  return "on time";
}

static int listener(int *port, int flags)
{
  int l = socket(AF_INET, SOCK_STREAM | flags, 0);
  CHECK(l >= 0, "socket: %s", ename(errno));
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", ename(errno));
  CHECK(listen(l, 64) == 0, "listen: %s", ename(errno));
  socklen_t len = sizeof a;
  getsockname(l, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return l;
}

static int connect_to(int port)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int r = connect(s, (struct sockaddr *)&a, sizeof a);
  CHECK(r == 0, "connect: %s", ename(errno));
  return s;
}

/* ---- non-blocking views ---------------------------------------------------- */

static void test_nonblock(void)
{
  int sv[2];
  char b[4];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
  errno = 0;
  double t0 = now_ms();
  ssize_t r = read(sv[0], b, sizeof b);
  printf("SOCK_NONBLOCK read: %zd %s%s\n", r, ename(errno), now_ms() - t0 < 500 ? "" : " (slow)");
  printf("F_GETFL O_NONBLOCK: %d\n", (fcntl(sv[0], F_GETFL) & O_NONBLOCK) != 0);
  close(sv[0]);
  close(sv[1]);

  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  printf("blocking F_GETFL O_NONBLOCK: %d\n", (fcntl(sv[0], F_GETFL) & O_NONBLOCK) != 0);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  errno = 0;
  r = recv(sv[0], b, sizeof b, 0);
  printf("F_SETFL O_NONBLOCK recv: %zd %s\n", r, ename(errno));
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_NONBLOCK);
  int on = 1;
  ioctl(sv[1], FIONBIO, &on);
  errno = 0;
  r = read(sv[1], b, sizeof b);
  printf("FIONBIO read: %zd %s\n", r, ename(errno));
  errno = 0;
  r = recv(sv[0], b, sizeof b, MSG_DONTWAIT);
  printf("MSG_DONTWAIT recv: %zd %s\n", r, ename(errno));
  close(sv[0]);
  close(sv[1]);

  int fds[2];
  CHECK(pipe2(fds, O_NONBLOCK) == 0, "pipe2");
  errno = 0;
  r = read(fds[0], b, sizeof b);
  printf("pipe2 O_NONBLOCK read: %zd %s\n", r, ename(errno));
  close(fds[0]);
  close(fds[1]);

  int efd = eventfd(0, EFD_NONBLOCK);
  uint64_t v;
  errno = 0;
  r = read(efd, &v, sizeof v);
  printf("eventfd EFD_NONBLOCK read: %zd %s\n", r, ename(errno));
  close(efd);
}

/* ---- listening socket: accept, then F_GETFL ------------------------------ */

static int acc_port;

static void *late_connect(void *arg)
{
  msleep(50);
  int s = connect_to(acc_port);
  write(s, "x", 1);
  close(s);
  return NULL;
}

static void test_accept_view(void)
{
  int l = listener(&acc_port, 0);
  pthread_t t;
  pthread_create(&t, NULL, late_connect, NULL);
  int c = accept(l, NULL, NULL);
  CHECK(c >= 0, "accept: %s", ename(errno));
  char b;
  printf("accepted, read %zd\n", read(c, &b, 1));
  printf("listener F_GETFL O_NONBLOCK after accept: %d\n", (fcntl(l, F_GETFL) & O_NONBLOCK) != 0);
  printf("accepted F_GETFL O_NONBLOCK: %d\n", (fcntl(c, F_GETFL) & O_NONBLOCK) != 0);
  pthread_join(t, NULL);
  int on = 1;
  ioctl(l, FIONBIO, &on);
  errno = 0;
  int r = accept(l, NULL, NULL);
  printf("FIONBIO listener accept: %d %s\n", r, ename(errno));
  on = 0;
  ioctl(l, FIONBIO, &on);
  printf("listener F_GETFL after FIONBIO off: %d\n", (fcntl(l, F_GETFL) & O_NONBLOCK) != 0);
  close(c);
  close(l);
}

/* ---- timeouts ---------------------------------------------------------------- */

static void test_timeouts(void)
{
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  struct timeval tv = {0, 200000};
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[8];
  errno = 0;
  double t0 = now_ms();
  ssize_t r = read(sv[0], b, sizeof b);
  printf("SO_RCVTIMEO 200ms read: %zd %s %s\n", r, ename(errno), timing(now_ms() - t0, 200));

  setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  static char big[1 << 16];
  long sent = 0;
  t0 = now_ms();
  for (;;) {
    r = write(sv[1], big, sizeof big);
    if (r < 0)
      break;
    sent += r;
    t0 = now_ms();
  }
  printf("SO_SNDTIMEO full socket: %s after some bytes: %s %s\n", ename(errno),
         sent > 0 ? "yes" : "no", timing(now_ms() - t0, 200));
  close(sv[0]);
  close(sv[1]);

  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  struct pollfd pf = {p[0], POLLIN, 0};
  t0 = now_ms();
  int n = poll(&pf, 1, 150);
  printf("poll 150ms empty pipe: %d %s\n", n, timing(now_ms() - t0, 150));
  struct pollfd two[2] = {{p[0], POLLIN, 0}, {p[0], POLLPRI, 0}};
  t0 = now_ms();
  n = poll(two, 2, 100);
  printf("poll 100ms two entries: %d %s\n", n, timing(now_ms() - t0, 100));
  struct timespec ts = {0, 120000000};
  t0 = now_ms();
  n = ppoll(&pf, 1, &ts, NULL);
  printf("ppoll 120ms: %d %s, timespec untouched: %d\n", n, timing(now_ms() - t0, 120),
         ts.tv_nsec == 120000000);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(p[0], &rs);
  struct timeval stv = {0, 110000};
  t0 = now_ms();
  n = select(p[0] + 1, &rs, NULL, NULL, &stv);
  printf("select 110ms: %d %s, set cleared: %d, timeval left 0: %d\n", n,
         timing(now_ms() - t0, 110), !FD_ISSET(p[0], &rs), stv.tv_sec == 0 && stv.tv_usec == 0);
  FD_SET(p[0], &rs);
  ts.tv_nsec = 90000000;
  t0 = now_ms();
  n = pselect(p[0] + 1, &rs, NULL, NULL, &ts, NULL);
  printf("pselect 90ms: %d %s\n", n, timing(now_ms() - t0, 90));
  t0 = now_ms();
  n = poll(NULL, 0, 80);
  printf("poll no fds 80ms: %d %s\n", n, timing(now_ms() - t0, 80));
  close(p[0]);
  close(p[1]);
}

/* ---- readiness from another thread ------------------------------------------- */

struct later {
  int fd;
  int ms;
  int how; /* 0: write a byte, 1: shutdown(SHUT_RD) */
};

static void *do_later(void *arg)
{
  struct later *l = arg;
  msleep(l->ms);
  if (l->how == 0)
    CHECK(write(l->fd, "!", 1) == 1, "write: %s", ename(errno));
  else
    shutdown(l->fd, SHUT_RD);
  return NULL;
}

struct drain {
  int fd;
  long blocks;
};

static void *drain_later(void *arg)
{
  struct drain *d = arg;
  static char buf[4096];
  msleep(60);
  for (long i = 0; i < d->blocks; i++)
    CHECK(read(d->fd, buf, sizeof buf) == (ssize_t)sizeof buf, "drain read: %s", ename(errno));
  return NULL;
}

static void test_readiness(void)
{
  int p[2], q[2];
  CHECK(pipe(p) == 0 && pipe(q) == 0, "pipe");
  pthread_t t;
  struct later l = {q[1], 60, 0};
  pthread_create(&t, NULL, do_later, &l);
  struct pollfd pf[2] = {{p[0], POLLIN, 0}, {q[0], POLLIN, 0}};
  int n = poll(pf, 2, 5000);
  printf("poll two pipes, second written: %d revents %d %d\n", n, pf[0].revents != 0,
         (pf[1].revents & POLLIN) != 0);
  pthread_join(t, NULL);
  char c;
  read(q[0], &c, 1);

  l.fd = p[1];
  pthread_create(&t, NULL, do_later, &l);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(p[0], &rs);
  FD_SET(q[0], &rs);
  n = select((p[0] > q[0] ? p[0] : q[0]) + 1, &rs, NULL, NULL, NULL);
  printf("select two pipes, first written: %d set %d %d\n", n, FD_ISSET(p[0], &rs) != 0,
         FD_ISSET(q[0], &rs) != 0);
  pthread_join(t, NULL);
  read(p[0], &c, 1);

  l.fd = q[1];
  pthread_create(&t, NULL, do_later, &l);
  struct pollfd one = {q[0], POLLIN, 0};
  n = ppoll(&one, 1, NULL, NULL);
  printf("ppoll no timeout: %d revents POLLIN %d\n", n, (one.revents & POLLIN) != 0);
  pthread_join(t, NULL);
  read(q[0], &c, 1);

  /* POLLOUT on a full pipe becomes ready when another thread drains it */
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  long filled = 0;
  static char big[4096];
  while (write(p[1], big, sizeof big) > 0)
    filled++;
  fcntl(p[1], F_SETFL, 0);
  struct pollfd w = {p[1], POLLOUT, 0};
  printf("full pipe POLLOUT now: %d\n", poll(&w, 1, 0));
  pthread_t dr;
  struct drain d = {p[0], filled};
  pthread_create(&dr, NULL, drain_later, &d);
  n = poll(&w, 1, 5000);
  printf("full pipe POLLOUT after drain: %d revents POLLOUT %d\n", n, (w.revents & POLLOUT) != 0);
  pthread_join(dr, NULL);
  close(p[0]);
  close(p[1]);
  close(q[0]);
  close(q[1]);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  struct later s = {sv[0], 80, 1};
  pthread_create(&t, NULL, do_later, &s);
  char b[16];
  double t0 = now_ms();
  ssize_t r = recv(sv[0], b, sizeof b, 0);
  printf("shutdown(SHUT_RD) wakes recv: %zd %s\n", r, now_ms() - t0 < 3000 ? "promptly" : "late");
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);
}

/* ---- connect, data transfer variants ----------------------------------------- */

static void *peer_echo(void *arg)
{
  int c = (int)(long)arg;
  char buf[4096];
  ssize_t n;
  while ((n = read(c, buf, sizeof buf)) > 0)
    CHECK(write(c, buf, (size_t)n) == n, "echo write: %s", ename(errno));
  close(c);
  return NULL;
}

static void *slow_sender(void *arg)
{
  int fd = (int)(long)arg;
  for (int i = 0; i < 10; i++) {
    msleep(5);
    CHECK(write(fd, "0123456789", 10) == 10, "slow write");
  }
  return NULL;
}

static void test_connect_and_data(void)
{
  int port;
  int l = listener(&port, 0);
  close(l);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  errno = 0;
  int r = connect(s, (struct sockaddr *)&a, sizeof a);
  printf("connect to closed port: %d %s\n", r, errno == ECONNREFUSED ? "ECONNREFUSED" : ename(errno));
  close(s);

  l = listener(&port, 0);
  s = connect_to(port);
  int c = accept(l, NULL, NULL);
  CHECK(c >= 0, "accept");
  pthread_t t;
  pthread_create(&t, NULL, peer_echo, (void *)(long)c);
  struct iovec iov[3] = {{"ab", 2}, {"cde", 3}, {"fghij", 5}};
  printf("writev: %zd\n", writev(s, iov, 3));
  char x[4] = {0}, y[8] = {0};
  struct iovec rv[2] = {{x, 3}, {y, 7}};
  ssize_t got = 0;
  while (got < 10) {
    ssize_t k = readv(s, rv, 2);
    CHECK(k > 0, "readv: %s", ename(errno));
    got += k;
    if (got < 10) { /* a partial echo: move the window */
      size_t skip = (size_t)k;
      for (int i = 0; i < 2; i++) {
        size_t m = skip < rv[i].iov_len ? skip : rv[i].iov_len;
        rv[i].iov_base = (char *)rv[i].iov_base + m;
        rv[i].iov_len -= m;
        skip -= m;
      }
    }
  }
  printf("readv: %s|%s\n", x, y);
  shutdown(s, SHUT_WR);
  char e;
  printf("read after peer echo ended: %zd\n", read(s, &e, 1));
  pthread_join(t, NULL);
  close(s);
  close(l);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  pthread_create(&t, NULL, slow_sender, (void *)(long)sv[1]);
  char big[100];
  ssize_t n = recv(sv[0], big, 100, MSG_WAITALL);
  printf("recv MSG_WAITALL 100 from 10x10: %zd %.10s\n", n, big + 90);
  pthread_join(t, NULL);
  write(sv[1], "peek", 4);
  char pk[8] = {0};
  n = recv(sv[0], pk, 4, MSG_PEEK);
  printf("MSG_PEEK: %zd %s, ", n, pk);
  memset(pk, 0, sizeof pk);
  n = recv(sv[0], pk, 4, 0);
  printf("then recv: %zd %s\n", n, pk);

  /* SCM_RIGHTS: pass a pipe's read end through the socketpair */
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec one = {"F", 1};
  struct msghdr mh = {.msg_iov = &one, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
  printf("sendmsg SCM_RIGHTS: %zd\n", sendmsg(sv[1], &mh, 0));
  char f;
  struct iovec rone = {&f, 1};
  char rbuf[CMSG_SPACE(sizeof(int))];
  struct msghdr rh = {.msg_iov = &rone, .msg_iovlen = 1, .msg_control = rbuf,
                      .msg_controllen = sizeof rbuf};
  n = recvmsg(sv[0], &rh, 0);
  struct cmsghdr *rc = CMSG_FIRSTHDR(&rh);
  int passed = -1;
  if (rc && rc->cmsg_type == SCM_RIGHTS)
    memcpy(&passed, CMSG_DATA(rc), sizeof(int));
  write(p[1], "via", 3);
  char via[4] = {0};
  printf("recvmsg: %zd %c, passed fd reads: %zd %s\n", n, f, passed >= 0 ? read(passed, via, 3) : -1,
         via);
  close(passed);
  close(p[0]);
  close(p[1]);

  close(sv[1]);
  errno = 0;
  n = write(sv[0], "x", 1);
  printf("write to closed peer: %zd %s\n", n, errno == EPIPE ? "EPIPE" : ename(errno));
  close(sv[0]);
}

/* ---- a worker with its own epoll loop; eventfd ping-pong ---------------------- */

#define NPAIRS 8
#define PER_PAIR 200

static int ep_pairs[NPAIRS][2];

static void *epoll_worker(void *arg)
{
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK(ep >= 0, "epoll_create1");
  for (int i = 0; i < NPAIRS; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep_pairs[i][0], &ev) == 0, "epoll_ctl");
  }
  long total = 0, sum = 0;
  while (total < NPAIRS * PER_PAIR) {
    struct epoll_event evs[4];
    int n = epoll_wait(ep, evs, 4, 5000);
    CHECK(n > 0, "epoll_wait: %d %s", n, ename(errno));
    for (int i = 0; i < n; i++) {
      unsigned char buf[64];
      ssize_t k = read(ep_pairs[evs[i].data.u32][0], buf, sizeof buf);
      CHECK(k > 0, "worker read");
      for (ssize_t j = 0; j < k; j++)
        sum += buf[j];
      total += k;
    }
  }
  close(ep);
  return (void *)sum;
}

static void *pair_writer(void *arg)
{
  int i = (int)(long)arg;
  for (int k = 0; k < PER_PAIR; k++) {
    unsigned char b = (unsigned char)(i + k);
    CHECK(write(ep_pairs[i][1], &b, 1) == 1, "pair write");
    if (k % 50 == 0)
      msleep(1);
  }
  return NULL;
}

static int efd_a, efd_b;

static void *efd_ponger(void *arg)
{
  for (int i = 0; i < 2000; i++) {
    uint64_t v;
    CHECK(read(efd_a, &v, 8) == 8, "eventfd read");
    v += 1;
    CHECK(write(efd_b, &v, 8) == 8, "eventfd write");
  }
  return NULL;
}

static void test_loops(void)
{
  long expect = 0;
  for (int i = 0; i < NPAIRS; i++) {
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, ep_pairs[i]) == 0, "socketpair");
    for (int k = 0; k < PER_PAIR; k++)
      expect += (unsigned char)(i + k);
  }
  pthread_t w, wr[NPAIRS];
  pthread_create(&w, NULL, epoll_worker, NULL);
  for (int i = 0; i < NPAIRS; i++)
    pthread_create(&wr[i], NULL, pair_writer, (void *)(long)i);
  for (int i = 0; i < NPAIRS; i++)
    pthread_join(wr[i], NULL);
  void *sum;
  pthread_join(w, &sum);
  printf("epoll worker loop: sum %s\n", (long)sum == expect ? "matches" : "WRONG");
  for (int i = 0; i < NPAIRS; i++) {
    close(ep_pairs[i][0]);
    close(ep_pairs[i][1]);
  }

  efd_a = eventfd(0, 0);
  efd_b = eventfd(0, 0);
  pthread_t t;
  pthread_create(&t, NULL, efd_ponger, NULL);
  uint64_t v = 0;
  for (int i = 0; i < 2000; i++) {
    uint64_t out = (uint64_t)i * 2 + 1;
    CHECK(write(efd_a, &out, 8) == 8, "eventfd write");
    CHECK(read(efd_b, &v, 8) == 8, "eventfd read");
    CHECK(v == out + 1, "eventfd value %llu", (unsigned long long)v);
  }
  pthread_join(t, NULL);
  printf("eventfd ping-pong: 2000 round trips, last %llu\n", (unsigned long long)v);
  close(efd_a);
  close(efd_b);
}

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  test_nonblock();
  test_accept_view();
  test_timeouts();
  test_readiness();
  test_connect_and_data();
  test_loops();
  return 0;
}
