/*
 * GMP_TRACE=FILE: a trace of what the scheduler did, in the Chrome
 * trace-event JSON format that Perfetto (ui.perfetto.dev) and
 * chrome://tracing open.
 *
 *  - one track per P: a slice per run of a thread ("G12", from the switch
 *    in to the switch out, with why it ended: park reason, yield,
 *    preempted, exit, syscall), and instants for thread creation
 *    ("create"), wake-ups ("unpark", naming the G readied; one made by a
 *    running thread is stamped at the start of the waker's slice) and
 *    steals;
 *  - one track per M: a slice per blocking system call ("syscall").
 *
 * Every event is recorded by the OS thread (M) it happens on, into that
 * M's own buffer: no lock and no shared cache line on the switch path,
 * and no question of who owns a P at the moment (a P can be retaken
 * while its M is blocked; an M is always itself). Runs and syscalls are
 * recorded once, when they end, as complete ("X") events carrying their
 * start, so a slice never loses its other half when a G moves between
 * Ms or Ps.
 *
 * Recording must stay cheap next to a switch (~0.2 us): an event is 24
 * bytes stored in binary with a CPU timestamp counter reading (rdtsc,
 * ~7 ns, where the TSC is invariant; the clock otherwise). Formatting
 * JSON on the way (~0.3 us an event) made a condvar ping-pong 4x slower.
 * Full buffers stay in memory, chained on their M (no sharing, no
 * system call: writing them out as they filled cost a condvar ping-pong
 * 20% in page-cache copies), up to GMP_TRACE_MEM (total, default 256
 * MiB); past that each M appends its full buffers, raw, to an unlinked
 * temporary file next to the trace and reuses them. Nothing is dropped.
 *
 * At exit (atexit) the raw events are converted: ticks to microseconds
 * (the TSC rate measured between the start and the end of the trace),
 * then JSON, the track names and the closing bracket. A process that dies
 * of a signal or _exit()s leaves no trace; a forked child does not trace.
 * Cost when off: one predictable branch per event site.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "sched/internal.h"

bool gmp_tev_on;

/* 4096 events of 24 bytes: 96 KiB per buffer. A busy P produces ~1-5 M
 * events/s (a condvar ping-pong switches every ~0.2 us): a buffer a ms. */
#define TEV_N 4096

/* 24 bytes: every byte is written to the raw file while the program
 * runs. The M is not stored: each buffer is written behind a TEV_HDR
 * record naming it. */
struct tev {
  uint64_t ts;      /* ticks (gmp_tev_now) */
  uint32_t dur;     /* ticks >> DUR_SHIFT, saturated */
  uint32_t goid;
  int32_t a;        /* the end reason, the creator, the victim P, ... */
  uint16_t tid;     /* a P's track; TID_SELF: the recording M's */
  uint8_t type, pad;
};
_Static_assert(sizeof(struct tev) == 24, "a raw event is 24 bytes");
#define DUR_SHIFT 4 /* 2^36 ticks: ~25 s at 2.7 GHz, ~18 min in ns */
#define TID_SELF 0xffff
#define TEV_HDR 0xff

struct tevbuf {
  struct tevbuf *next; /* the M's earlier buffers */
  int n;
  struct tev e[TEV_N];
};

static int tev_fd = -1;  /* the JSON file, written at exit */
static int raw_fd = -1;  /* the unlinked file of raw events */
static int64_t tick0, ns0; /* the clocks when tracing began */
static bool use_tsc;
static gmp_lock tev_wlock; /* one writer of the file at a time */
static pid_t tev_pid;

/* Per M: the buffer being filled, and the full ones before it. Kept
 * outside struct m, indexed by M id. */
struct tevm {
  struct tevbuf *cur;
  char *chunk_cur, *chunk_end; /* where the next buffer is carved */
  struct tevbuf *spare;        /* spilled buffers, for reuse */
  bool failed; /* out of memory: this M records nothing */
};
#define TEV_MAXM 4096
static struct tevm *tevm;     /* [TEV_MAXM], allocated when tracing starts */
static _Atomic size_t tev_mem; /* bytes of buffers allocated */
static size_t tev_mem_max = (size_t)256 << 20;

static const char *end_name(int32_t a)
{
  switch (a) {
  case TEV_END_YIELD: return "yield";
  case TEV_END_PREEMPT: return "preempted";
  case TEV_END_EXIT: return "exit";
  case TEV_END_SYSCALL: return "syscall (P lost)";
  default: return a > 0 && a < WAIT__COUNT ? gmp_waitreason_name(a) : "park";
  }
}

static void write_all(int fd, const void *p, size_t len)
{
  const char *s = p;
  while (len) {
    long w = gmp_sys3(SYS_write, fd, s, len);
    if (w <= 0) {
      if (w == -4) /* EINTR */
        continue;
      return;
    }
    s += w;
    len -= (size_t)w;
  }
}

int64_t gmp_tev_now(void)
{
  if (use_tsc) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (int64_t)(((uint64_t)hi << 32) | lo);
  }
  return gmp_nanotime();
}

/* Append one buffer's events, raw, to the temporary file, behind a
 * header naming the M that recorded them. */
static void flush_buf(struct tevbuf *b, int mid)
{
  struct tev h = {.type = TEV_HDR, .a = mid, .goid = (uint32_t)b->n};
  gmp_lock_acquire(&tev_wlock);
  write_all(raw_fd, &h, sizeof h);
  write_all(raw_fd, b->e, (size_t)b->n * sizeof b->e[0]);
  gmp_lock_release(&tev_wlock);
  b->n = 0;
}

static struct tevbuf *current(struct m *m)
{
  if (m->id < 0 || m->id >= TEV_MAXM)
    return NULL;
  struct tevm *t = &tevm[m->id];
  struct tevbuf *b = t->cur;
  if (b && b->n < TEV_N)
    return b;
  if (t->failed)
    return NULL;
  if (b && atomic_load_explicit(&tev_mem, memory_order_relaxed) >= tev_mem_max) {
    /* At the memory limit: spill this M's buffers to the file. */
    flush_buf(b, m->id);
    while (b->next) {
      struct tevbuf *o = b->next;
      b->next = o->next;
      flush_buf(o, m->id);
      /* Chunk memory is never unmapped: spilled buffers are kept for
       * reuse (the limit bounds what was ever carved). */
      o->next = t->spare;
      t->spare = o;
    }
    return b;
  }
  /* A new buffer, carved from 2 MiB chunks marked for transparent huge
   * pages: one page fault per 2 MiB instead of one per 4 KiB (24,000
   * faults for a million condvar round trips cost more than the events
   * themselves). Never freed: the trace lives until exit. */
  struct tevbuf *nb = t->spare;
  if (nb) {
    t->spare = nb->next;
  } else if (t->chunk_cur + sizeof *nb > t->chunk_end) {
    size_t len = 2u << 20;
    long r = gmp_sys6(SYS_mmap, 0, len * 2, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r < 0 && r > -4096) {
      t->chunk_cur = t->chunk_end = NULL;
    } else {
      uintptr_t base = (uintptr_t)r, al = (base + len - 1) & ~(uintptr_t)(len - 1);
      if (al > base)
        gmp_sys2(SYS_munmap, base, al - base);
      if (base + len * 2 > al + len)
        gmp_sys2(SYS_munmap, al + len, base + len * 2 - (al + len));
      gmp_sys3(SYS_madvise, al, len, MADV_HUGEPAGE);
      t->chunk_cur = (char *)al;
      t->chunk_end = (char *)al + len;
    }
  }
  if (!nb && t->chunk_cur && t->chunk_cur + sizeof *nb <= t->chunk_end) {
    nb = (struct tevbuf *)t->chunk_cur;
    t->chunk_cur += sizeof *nb;
  }
  if (!nb) {
    t->failed = true;
    gmp_printf_err("libgmp: GMP_TRACE: out of memory; M%d records no more events\n", m->id);
    return NULL;
  }
  atomic_fetch_add(&tev_mem, sizeof *nb);
  nb->n = 0;
  nb->next = b;
  t->cur = nb;
  return nb;
}

int64_t gmp_tev_record(struct m *m, int type, int tid, uint64_t goid, int64_t start, int a, int b)
{
  if (!m)
    return 0;
  struct tevbuf *buf = current(m);
  if (!buf)
    return 0;
  /* A wake-up made by a running G is stamped with the start of that G's
   * run: no clock read (a condvar ping-pong makes two a round trip), and
   * still inside the waker's slice on its P's track. */
  int64_t now;
  struct g *cur = type == TEV_UNPARK ? gmp_curg_raw() : NULL;
  if (cur && !cur->is_g0 && cur->run_since)
    now = cur->run_since;
  else
    now = gmp_tev_now();
  struct tev *e = &buf->e[buf->n];
  e->type = (uint8_t)type;
  e->tid = tid >= TEV_TID_M ? TID_SELF : (uint16_t)tid;
  e->goid = (uint32_t)goid;
  e->a = a;
  e->ts = (uint64_t)(start ? start : now);
  uint64_t d = start ? (uint64_t)(now - start) >> DUR_SHIFT : 0;
  e->dur = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
  buf->n++;
  return now;
}

/* Convert one event to a JSON array element (each starts with a comma:
 * the header wrote the first element). Microseconds with three
 * decimals, formatted as integers: glibc's floating-point printf wants
 * more stack than an M's g0 may have. */
static int format(char *out, size_t len, const struct tev *e, int mid, double ns_per_tick)
{
  int64_t ts = (int64_t)((double)((int64_t)e->ts - tick0) * ns_per_tick);
  int64_t dur = (int64_t)((double)((uint64_t)e->dur << DUR_SHIFT) * ns_per_tick);
  int tid = e->tid == TID_SELF ? TEV_TID_M + mid : e->tid;
  if (ts < 0)
    ts = 0;
  long long tsu = ts / 1000, tsn = ts % 1000, du = dur / 1000, dn = dur % 1000;
  switch (e->type) {
  case TEV_RUN:
    return snprintf(out, len,
                    ",\n{\"name\":\"G%llu\",\"cat\":\"run\",\"ph\":\"X\",\"pid\":1,\"tid\":%d,"
                    "\"ts\":%lld.%03lld,\"dur\":%lld.%03lld,\"args\":{\"g\":%llu,\"m\":%d,"
                    "\"end\":\"%s\"}}",
                    (unsigned long long)e->goid, tid, tsu, tsn, du, dn,
                    (unsigned long long)e->goid, mid, end_name(e->a));
  case TEV_SYSCALL:
    return snprintf(out, len,
                    ",\n{\"name\":\"syscall\",\"cat\":\"syscall\",\"ph\":\"X\",\"pid\":1,"
                    "\"tid\":%d,\"ts\":%lld.%03lld,\"dur\":%lld.%03lld,\"args\":{\"g\":%llu}}",
                    tid, tsu, tsn, du, dn, (unsigned long long)e->goid);
  default: {
    static const char *names[] = {[TEV_CREATE] = "create", [TEV_UNPARK] = "unpark",
                                  [TEV_STEAL] = "steal"};
    const char *nm = e->type > 0 && e->type < (int)(sizeof names / sizeof names[0]) &&
                             names[e->type]
                         ? names[e->type]
                         : "event";
    return snprintf(out, len,
                    ",\n{\"name\":\"%s\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,"
                    "\"tid\":%d,\"ts\":%lld.%03lld,\"args\":{\"g\":%llu,\"arg\":%d}}",
                    nm, tid, tsu, tsn, (unsigned long long)e->goid, e->a);
  }
  }
}

static void tev_finish(void)
{
  if (!gmp_tev_on || gmp_sys0(SYS_getpid) != tev_pid)
    return;
  /* Stop recording first; an M in the middle of recording one event
   * may still write into its buffer while this runs (its last event can
   * then be lost or torn: the one race tracing accepts at exit). */
  gmp_tev_on = false;
  int64_t tick1 = gmp_tev_now(), ns1 = gmp_nanotime();
  double ns_per_tick = tick1 > tick0 ? (double)(ns1 - ns0) / (double)(tick1 - tick0) : 1.0;
  for (int i = 0; i < TEV_MAXM && i < gmp_sched.mcount + 1; i++)
    for (struct tevbuf *b = tevm[i].cur; b; b = b->next)
      if (b->n)
        flush_buf(b, i);
  static char out[1 << 16];
  size_t len = (size_t)snprintf(out, sizeof out,
                                "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"tool\":\"libgmp\"},"
                                "\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\","
                                "\"pid\":1,\"tid\":0,\"args\":{\"name\":\"libgmp pid %d\"}}",
                                (int)tev_pid);
  for (int i = 0; i < gmp_nprocs; i++)
    len += (size_t)snprintf(out + len, sizeof out - len,
                            ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,"
                            "\"args\":{\"name\":\"P%d\"}}",
                            i, i);
  gmp_sys3(SYS_lseek, raw_fd, 0, SEEK_SET);
  static struct tev in[1024];
  long r;
  int mid = 0;
  while ((r = gmp_sys3(SYS_read, raw_fd, in, sizeof in)) > 0) {
    for (long i = 0; i < r / (long)sizeof in[0]; i++) {
      if (in[i].type == TEV_HDR) {
        mid = in[i].a;
        continue;
      }
      if (len > sizeof out - 512) {
        write_all(tev_fd, out, len);
        len = 0;
      }
      int n = format(out + len, sizeof out - len, &in[i], mid, ns_per_tick);
      if (n > 0 && (size_t)n < sizeof out - len)
        len += (size_t)n;
    }
  }
  for (struct m *m = gmp_sched.allm; m; m = m->alllink) {
    if (len > sizeof out - 512) {
      write_all(tev_fd, out, len);
      len = 0;
    }
    len += (size_t)snprintf(out + len, sizeof out - len,
                            ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,"
                            "\"args\":{\"name\":\"M%d (tid %d)\"}}",
                            TEV_TID_M + m->id, m->id, m->ostid);
  }
  write_all(tev_fd, out, len);
  write_all(tev_fd, "\n]}\n", 4);
  gmp_sys1(SYS_close, tev_fd);
  gmp_sys1(SYS_close, raw_fd);
  tev_fd = raw_fd = -1;
}

/* The TSC is usable as a clock if it ticks at a constant rate and does
 * not stop in idle states (both flags of /proc/cpuinfo), as on every
 * x86_64 of the last decade and their VMs. */
static bool tsc_invariant(void)
{
  static char buf[8192];
  long n = gmp_read_file("/proc/cpuinfo", buf, sizeof buf);
  return n > 0 && strstr(buf, " constant_tsc") && strstr(buf, " nonstop_tsc");
}

void gmp_tev_fork_child(void)
{
  gmp_tev_on = false; /* the file is the parent's */
}

/* "%p" in the path stands for the process id: a program that execs
 * others with GMP_TRACE set (a shell script, a server's CGI) would
 * otherwise have every process truncate and write the same file. */
static void expand(const char *in, char *out, size_t len)
{
  size_t o = 0;
  for (const char *c = in; *c && o + 12 < len; c++) {
    if (c[0] == '%' && c[1] == 'p') {
      o += (size_t)snprintf(out + o, len - o, "%d", (int)gmp_sys0(SYS_getpid));
      c++;
    } else {
      out[o++] = *c;
    }
  }
  out[o] = 0;
}

int gmp_tev_open(const char *spec)
{
  char path[4096];
  expand(spec, path, sizeof path - 8);
  const char *mem = getenv("GMP_TRACE_MEM");
  if (mem && *mem) {
    size_t v;
    const char *why = gmp_parse_size(mem, (size_t)1 << 20, (size_t)1 << 40, &v);
    if (why)
      gmp_printf_err("libgmp: GMP_TRACE_MEM='%s' is invalid (want %s); using 256M\n", mem, why);
    else
      tev_mem_max = v;
  }
  long fd = gmp_sys4(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0644);
  if (fd < 0) {
    gmp_printf_err("libgmp: GMP_TRACE=%s cannot be opened (errno %ld); no trace\n", path, -fd);
    return -1;
  }
  /* The raw events go to an unlinked file beside the trace (same file
   * system: as much room as the trace itself will need). */
  char raw[sizeof path + 8];
  snprintf(raw, sizeof raw, "%s.raw", path);
  long rfd = gmp_sys4(SYS_openat, AT_FDCWD, raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (rfd >= 0)
    gmp_sys1(SYS_unlink, raw);
  tevm = rfd >= 0 ? calloc(TEV_MAXM, sizeof *tevm) : NULL;
  if (!tevm) {
    gmp_printf_err("libgmp: GMP_TRACE: cannot make %s (errno %ld) or out of memory; no trace\n",
                   raw, rfd < 0 ? -rfd : 12L);
    if (rfd >= 0)
      gmp_sys1(SYS_close, rfd);
    gmp_sys1(SYS_close, fd);
    return -1;
  }
  tev_fd = (int)fd;
  raw_fd = (int)rfd;
  use_tsc = tsc_invariant();
  tick0 = gmp_tev_now();
  ns0 = gmp_nanotime();
  tev_pid = (pid_t)gmp_sys0(SYS_getpid);
  atexit(tev_finish);
  gmp_tev_on = true;
  return 0;
}
