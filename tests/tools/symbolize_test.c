/*
 * Test of tools/symbolize.c, the out-of-process symboliser, on a second
 * copy of this program: run without arguments it starts itself as
 * "symbolize_test child", which prints the addresses of a static function,
 * a global one, libc's getpid and its own ELF header, then waits for its
 * stdin to close (so it ends when we do, however we end) or 30 s. We then
 * name those addresses through the child's /proc/PID/maps and compare.
 *
 *   symbolize_test                 all checks; PASS/FAIL lines, exit 1 on FAIL
 *   symbolize_test child           the process to be named
 *   symbolize_test name PID ADDR   print "RC TEXT" of gmp_sym_name (for
 *   symbolize_test func PID ADDR   tests/tools/symbolize.sh's own children)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/symbolize.h"

/* The linker's symbol for the first byte of the file as loaded: an address
 * in a file mapping that no function covers. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

/* Static, so only .symtab knows it; noinline/noclone so it exists under
 * this name and not as a .constprop copy. The loops make both longer than
 * the 5 bytes we step into them and keep them different, so identical code
 * folding cannot merge them. */
#ifdef __clang__
#define NOCLONE /* clang makes no clones of address-taken functions */
#else
#define NOCLONE __attribute__((noclone))
#endif
static __attribute__((noinline)) NOCLONE unsigned sym_static_target(unsigned x)
{
  unsigned h = 2166136261u;
  for (unsigned i = 0; i < x; i++)
    h = (h ^ i) * 16777619u;
  return h;
}

unsigned sym_global_target(unsigned x);
__attribute__((noinline)) unsigned sym_global_target(unsigned x)
{
  unsigned h = 5381;
  for (unsigned i = 0; i < x; i++)
    h = h * 33 + i;
  return h;
}

static int child(void)
{
  /* From libc's own scope: in a non-PIE build &getpid would be the
   * program's PLT stub. */
  void *libc_getpid = (void *)getpid;
  void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (h) {
    void *p = dlsym(h, "getpid");
    if (p)
      libc_getpid = p;
    dlclose(h);
  }
  printf("static %p\nglobal %p\nlibc %p\nehdr %p\n", (void *)sym_static_target,
         (void *)sym_global_target, libc_getpid, (void *)__ehdr_start);
  fflush(stdout);
  alarm(30);
  char c;
  while (read(0, &c, 1) > 0)
    ;
  return 0;
}

static int fails;

static void check(int ok, const char *what, const char *got)
{
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, got ? ": " : "", got ? got : "");
  if (!ok)
    fails++;
}

static int ends_with(const char *s, const char *suf)
{
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* "symbolize_test name|func PID ADDR": one lookup, for the shell script. */
static int one(const char *mode, const char *pid, const char *addr)
{
  struct gmp_symtab *st = gmp_sym_open((pid_t)atoi(pid));
  if (!st) {
    printf("open: %s\n", strerror(errno));
    return 2;
  }
  char buf[512];
  uintptr_t a = (uintptr_t)strtoull(addr, NULL, 0);
  int rc = strcmp(mode, "func") == 0 ? gmp_sym_func(st, a, buf, sizeof buf)
                                     : gmp_sym_name(st, a, buf, sizeof buf);
  printf("%d %s\n", rc, buf);
  gmp_sym_close(st);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "child") == 0)
    return child();
  if (argc == 4)
    return one(argv[1], argv[2], argv[3]);
  if (argc != 1) {
    fprintf(stderr, "usage: symbolize_test [child | name PID ADDR | func PID ADDR]\n");
    return 2;
  }
  /* Bounded: if we hang, SIGALRM ends us, which closes the child's stdin. */
  alarm(45);

  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    perror("readlink /proc/self/exe");
    return 1;
  }
  self[n] = 0;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    perror("pipe");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execl(self, self, "child", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  FILE *fp = fdopen(out[0], "r");
  unsigned long long a_static = 0, a_global = 0, a_libc = 0, a_ehdr = 0;
  char line[128];
  while (fp && fgets(line, sizeof line, fp)) {
    char key[16];
    unsigned long long v;
    if (sscanf(line, "%15s %llx", key, &v) != 2)
      continue;
    if (!strcmp(key, "static"))
      a_static = v;
    else if (!strcmp(key, "global"))
      a_global = v;
    else if (!strcmp(key, "libc"))
      a_libc = v;
    else if (!strcmp(key, "ehdr")) {
      a_ehdr = v;
      break;
    }
  }
  check(a_static && a_global && a_libc && a_ehdr, "child printed its addresses", NULL);

  char buf[512], want[256];
  int rc;
  struct gmp_symtab *st = gmp_sym_open(pid);
  check(st != NULL, "gmp_sym_open(child)", st ? NULL : strerror(errno));
  if (st && a_ehdr) {
    rc = gmp_sym_name(st, (uintptr_t)a_static + 5, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, "sym_static_target+0x5 (symbolize_test)"),
          "static function +5", buf);
    rc = gmp_sym_name(st, (uintptr_t)a_global + 5, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, "sym_global_target+0x5 (symbolize_test)"),
          "global function +5", buf);
    rc = gmp_sym_name(st, (uintptr_t)a_static, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, "sym_static_target+0x0 (symbolize_test)"),
          "static function entry", buf);
    rc = gmp_sym_func(st, (uintptr_t)a_static + 5, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, "sym_static_target"), "gmp_sym_func: name only", buf);
    rc = gmp_sym_name(st, (uintptr_t)a_libc, buf, sizeof buf);
    check(rc == 1 && strstr(buf, "getpid") && ends_with(buf, " (libc.so.6)"),
          "libc's getpid named in libc.so.6", buf);
    rc = gmp_sym_name(st, (uintptr_t)a_ehdr, buf, sizeof buf);
    check(rc == 0 && !strcmp(buf, "? (symbolize_test+0x0)"),
          "file mapping without a symbol: file offset", buf);
    rc = gmp_sym_name(st, 0x1000, buf, sizeof buf);
    check(rc == 0 && !strcmp(buf, "?"), "0x1000: no mapping", buf);
    rc = gmp_sym_func(st, 0x1000, buf, sizeof buf);
    check(rc == 0 && !strcmp(buf, "?"), "gmp_sym_func 0x1000", buf);
    rc = gmp_sym_name(st, UINTPTR_MAX, buf, sizeof buf);
    check(rc == 0 && !strcmp(buf, "?"), "UINTPTR_MAX: no mapping", buf);

    /* Truncation: always terminated, never past len; len 0 writes nothing. */
    memset(buf, 'x', sizeof buf);
    rc = gmp_sym_name(st, (uintptr_t)a_static + 5, buf, 6);
    check(rc == 1 && !strcmp(buf, "sym_s") && buf[6] == 'x', "truncated to len", buf);
    buf[0] = 'x';
    rc = gmp_sym_name(st, (uintptr_t)a_static + 5, buf, 0);
    check(rc == 1 && buf[0] == 'x', "len 0 writes nothing", NULL);
    rc = gmp_sym_name(st, (uintptr_t)a_static + 5, NULL, 0);
    check(rc == 1, "NULL buffer", NULL);

    /* Asked again: the cached file gives the same answers. */
    rc = gmp_sym_name(st, (uintptr_t)a_global + 5, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, "sym_global_target+0x5 (symbolize_test)"),
          "second lookup in the same file", buf);
  }
  gmp_sym_close(st);
  gmp_sym_close(NULL);

  /* Our own process: the same file, another address space. */
  st = gmp_sym_open(getpid());
  check(st != NULL, "gmp_sym_open(self)", st ? NULL : strerror(errno));
  if (st) {
    snprintf(want, sizeof want, "sym_static_target+0x5 (symbolize_test)");
    rc = gmp_sym_name(st, (uintptr_t)sym_static_target + 5, buf, sizeof buf);
    check(rc == 1 && !strcmp(buf, want), "static function in self", buf);
    gmp_sym_close(st);
  }

  errno = 0;
  st = gmp_sym_open(INT_MAX);
  check(st == NULL && errno == ESRCH, "no such process: NULL/ESRCH", strerror(errno));
  gmp_sym_close(st);
  errno = 0;
  st = gmp_sym_open(0);
  check(st == NULL && errno == ESRCH, "pid 0: NULL/ESRCH", strerror(errno));
  gmp_sym_close(st);

  /* Only the child we started, by its pid. */
  close(in[1]);
  if (fp)
    fclose(fp);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return fails ? 1 : 0;
}
