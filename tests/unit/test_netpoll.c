/*
 * Unit tests of the poller's data structures (poller/fdtab.c) and its
 * epoll instance (poller/netpoll_epoll.c), without a scheduler: the
 * parking lot side (gmp_unpark_collect, gmp_fd_wake_all) is replaced by
 * fakes that record what the poller asked for.
 *
 * Invariants checked:
 *  - gmp_fd_get: NULL for negative and out-of-table fds; one stable
 *    descriptor per fd, chunks allocated on demand; fresh descriptors have
 *    gen 1, peer -1, kind unknown;
 *  - gmp_fd_new bumps gen, forgets the old view (kind, flags, peer,
 *    timeouts, registration) and wakes whoever waited on the old file;
 *  - classification: socketpair -> socket, pipe -> stream (when the kernel
 *    honours RWF_NOWAIT), regular file -> not pollable, O_NONBLOCK read
 *    into the program's view; a closed fd is not cached;
 *  - registration: once per epoch, EPERM for a regular file, the instance
 *    lives at a high fd the program does not own;
 *  - gmp_netpoll: an event bumps the fd's readiness counter and asks the
 *    parking lot for waiters only when nwait > 0; events of a file whose
 *    gen moved (closed, number reused) are ignored; gmp_netpoll_break
 *    ends a blocking poll; a fork child gets a new instance and epoch.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "poller/netpoll.h"

/* ---- fakes of the scheduler side -------------------------------------- */

static int wake_all_calls;
static const void *collect_addrs[16];
static int ncollect;

void gmp_fd_wake_all(struct gmp_fd *d)
{
  (void)d;
  wake_all_calls++;
}

int gmp_unpark_collect(const void *addr, struct g **list)
{
  (void)list;
  if (ncollect < 16)
    collect_addrs[ncollect++] = addr;
  return 0;
}

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the table --------------------------------------------------------- */

static void test_get(void **state)
{
  (void)state;
  assert_null(gmp_fd_get(-1));
  assert_null(gmp_fd_get(1 << 20));
  assert_non_null(gmp_fd_get((1 << 20) - 1));
  struct gmp_fd *a = gmp_fd_get(5), *b = gmp_fd_get(5), *c = gmp_fd_get(6);
  assert_ptr_equal(a, b);
  assert_ptr_equal(c, a + 1);
  struct gmp_fd *far = gmp_fd_get(70000);
  assert_non_null(far);
  assert_int_equal(atomic_load(&far->gen), 1);
  assert_int_equal(far->peer, -1);
  assert_int_equal(atomic_load(&far->kind), FDK_UNKNOWN);
}

static void test_new_resets(void **state)
{
  (void)state;
  struct gmp_fd *d = gmp_fd_get(4000);
  uint32_t g0 = atomic_load(&d->gen);
  gmp_fd_new(4000, FDK_SOCK, FDF_NONBLOCK);
  d->peer = 7;
  d->rcvtimeo = 5;
  atomic_store(&d->epoch, 3);
  int calls = wake_all_calls;
  gmp_fd_new(4000, FDK_NOPOLL, 0);
  assert_int_equal(atomic_load(&d->gen), g0 + 2);
  assert_int_equal(atomic_load(&d->kind), FDK_NOPOLL);
  assert_int_equal(atomic_load(&d->flags), 0);
  assert_int_equal(d->peer, -1);
  assert_int_equal(d->rcvtimeo, 0);
  assert_int_equal(atomic_load(&d->epoch), 0);
  assert_int_equal(wake_all_calls, calls + 1);
}

static void test_classify(void **state)
{
  (void)state;
  int sv[2], p[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(pipe(p), 0);
  char path[] = "/tmp/gmp-netpoll-XXXXXX";
  int f = mkstemp(path);
  assert_true(f >= 0);
  unlink(path);
  struct gmp_fd *ds = gmp_fd_get(sv[0]), *dp = gmp_fd_get(p[0]), *df = gmp_fd_get(f);
  atomic_store(&ds->kind, FDK_UNKNOWN);
  atomic_store(&dp->kind, FDK_UNKNOWN);
  atomic_store(&df->kind, FDK_UNKNOWN);
  assert_int_equal(gmp_fd_kind(sv[0], ds), FDK_SOCK);
  assert_true(atomic_load(&ds->flags) & FDF_NONBLOCK);
  assert_int_equal(gmp_fd_kind(p[0], dp), gmp_fd_stream_ok() ? FDK_STREAM : FDK_NOPOLL);
  assert_false(atomic_load(&dp->flags) & FDF_NONBLOCK);
  assert_int_equal(gmp_fd_kind(f, df), FDK_NOPOLL);
  /* a closed fd: the answer is "blocking path", nothing is cached */
  int dead = dup(f);
  close(dead);
  struct gmp_fd *dd = gmp_fd_get(dead);
  atomic_store(&dd->kind, FDK_UNKNOWN);
  assert_int_equal(gmp_fd_kind(dead, dd), FDK_NOPOLL);
  assert_int_equal(atomic_load(&dd->kind), FDK_UNKNOWN);
  close(sv[0]);
  close(sv[1]);
  close(p[0]);
  close(p[1]);
  close(f);
}

/* ---- the epoll instance --------------------------------------------------- */

static void test_register_and_poll(void **state)
{
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  gmp_fd_new(p[0], FDK_STREAM, 0);
  struct gmp_fd *d = gmp_fd_get(p[0]);
  assert_int_equal(gmp_netpoll_register(p[0], d), 0);
  assert_int_equal(atomic_load(&d->epoch), gmp_netpoll_epoch());
  assert_true(atomic_load(&gmp_netpoll_active));
  assert_int_equal(gmp_netpoll_register(p[0], d), 0); /* once per epoch */

  struct g *list = NULL;
  gmp_netpoll(0, &list); /* drain the initial write-side readiness, if any */
  uint32_t r0 = atomic_load(&d->rseq);
  assert_int_equal(gmp_netpoll(0, &list), 0);
  assert_int_equal(atomic_load(&d->rseq), r0);

  ncollect = 0;
  assert_int_equal(write(p[1], "x", 1), 1);
  gmp_netpoll(0, &list);
  assert_int_equal(atomic_load(&d->rseq), r0 + 1);
  assert_int_equal(ncollect, 0); /* nobody waits: the parking lot is not asked */

  atomic_store(&d->nwait, 1);
  assert_int_equal(write(p[1], "y", 1), 1);
  gmp_netpoll(0, &list);
  atomic_store(&d->nwait, 0);
  assert_int_equal(ncollect, 1);
  assert_ptr_equal(collect_addrs[0], &d->rseq);

  /* the number gets a new file behind the registration: old events ignored */
  gmp_fd_new(p[0], FDK_STREAM, 0);
  uint32_t r1 = atomic_load(&d->rseq);
  assert_int_equal(write(p[1], "z", 1), 1);
  gmp_netpoll(0, &list);
  assert_int_equal(atomic_load(&d->rseq), r1);
  close(p[0]);
  close(p[1]);
}

static void test_regular_file_refused(void **state)
{
  (void)state;
  char path[] = "/tmp/gmp-netpoll-XXXXXX";
  int f = mkstemp(path);
  assert_true(f >= 0);
  unlink(path);
  gmp_fd_new(f, FDK_STREAM, 0); /* a wrong guess, as after a stale entry */
  assert_int_equal(gmp_netpoll_register(f, gmp_fd_get(f)), EPERM);
  assert_int_equal(atomic_load(&gmp_fd_get(f)->epoch), 0);
  close(f);
}

static void test_break_and_owns(void **state)
{
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  gmp_fd_new(p[0], FDK_STREAM, 0);
  assert_int_equal(gmp_netpoll_register(p[0], gmp_fd_get(p[0])), 0);
  int owned = 0;
  for (int fd = 0; fd < 1100; fd++)
    owned += gmp_netpoll_owns(fd);
  assert_int_equal(owned, 2); /* the instance and its break eventfd */
  assert_false(gmp_netpoll_owns(p[0]));
  struct g *list = NULL;
  gmp_netpoll(0, &list);
  gmp_netpoll_break();
  gmp_netpoll_break(); /* coalesced */
  int64_t t0 = mono_ns();
  assert_int_equal(gmp_netpoll(-1, &list), 0);
  assert_true(mono_ns() - t0 < 1000000000LL);
  /* a timeout is honoured */
  t0 = mono_ns();
  gmp_netpoll(20000000, &list);
  assert_true(mono_ns() - t0 >= 19000000);
  close(p[0]);
  close(p[1]);
}

static void test_fork_child_epoch(void **state)
{
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  gmp_fd_new(p[0], FDK_STREAM, 0);
  struct gmp_fd *d = gmp_fd_get(p[0]);
  assert_int_equal(gmp_netpoll_register(p[0], d), 0);
  uint32_t e0 = gmp_netpoll_epoch();
  gmp_netpoll_fork_child(); /* as a child would: a new instance, lazily */
  assert_int_not_equal(gmp_netpoll_epoch(), e0);
  assert_int_not_equal(atomic_load(&d->epoch), gmp_netpoll_epoch());
  assert_int_equal(gmp_netpoll_register(p[0], d), 0);
  struct g *list = NULL;
  gmp_netpoll(0, &list);
  uint32_t r0 = atomic_load(&d->rseq);
  assert_int_equal(write(p[1], "x", 1), 1);
  gmp_netpoll(0, &list);
  assert_int_equal(atomic_load(&d->rseq), r0 + 1);
  close(p[0]);
  close(p[1]);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get),
      cmocka_unit_test(test_new_resets),
      cmocka_unit_test(test_classify),
      cmocka_unit_test(test_register_and_poll),
      cmocka_unit_test(test_regular_file_refused),
      cmocka_unit_test(test_break_and_owns),
      cmocka_unit_test(test_fork_child_epoch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
