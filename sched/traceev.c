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
 * Recording must stay cheap next to a switch (~0.2 us): an event is one
 * or two 64-bit words in binary, appended by code inlined at the call
 * site (internal.h), with a CPU timestamp counter reading (rdtsc, ~11 ns,
 * where the TSC is invariant; the clock otherwise). Formatting
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
bool gmp_tev_tsc;

/* The records, in 64-bit words (type: the low 4 bits of the first; d: a
 * time as a delta from the M's base, set by the last TEV_TIME record of
 * the same buffer; every buffer starts without one, so that buffers
 * decode on their own, in any order):
 *
 *   TEV_RUN      [type | end << 8 | P << 16 | goid << 32] [d | dur << 32]
 *   TEV_SYSCALL  [type | goid << 32]                       [d | dur << 32]
 *   TEV_CREATE, TEV_STEAL, TEV_UNPARK
 *                [type | track << 16 | goid << 32]         [d | arg << 32]
 *   TEV_UNPARK1  [type | P << 4 | goid << 16 | d << 40]    (P < 4096, goid
 *                and d < 2^24: a wake-up by a running thread, one word)
 *   TEV_TIME     [type]                                    [ticks]
 *   TEV_HDR      [type | M << 32]                          [words]  (file only)
 *
 * dur is in ticks >> TEV_DUR_SHIFT, saturated (2^36 ticks: ~25 s at 2.7
 * GHz, ~18 min in ns). The previous format, 24 bytes an event, made the
 * kernel zero 96 bytes of fresh memory a condvar round trip (clear_page:
 * ~40 ns of the round trip's ~130 ns of tracing overhead). */

/* 12286 words + the header: 96 KiB a buffer, 21 to a 2 MiB chunk. A busy
 * P produces ~1-5 M events/s (a condvar ping-pong switches every ~0.2
 * us): a buffer every ms or two. */
#define TEV_WORDS 12286

struct tevbuf {
  struct tevbuf *next; /* the M's earlier buffers */
  uint32_t n;          /* words used (set when the M leaves it) */
  uint32_t pad;
  uint64_t w[TEV_WORDS];
};
_Static_assert(sizeof(struct tevbuf) == 96 * 1024, "a buffer is 96 KiB");

/* A record decoded, for format(). */
struct tev {
  int64_t ts;   /* ticks (gmp_tev_now) */
  uint32_t dur; /* ticks >> TEV_DUR_SHIFT */
  uint32_t goid;
  int32_t a;    /* the end reason, the creator, the victim P, ... */
  int tid;      /* a P's track; TID_SELF: the recording M's */
  int type;
};
#define TID_SELF 0xffff

static int tev_fd = -1;  /* the JSON file, written at exit */
static int raw_fd = -1;  /* the unlinked file of raw events */
static int64_t tick0, ns0; /* the clocks when tracing began */
static gmp_lock tev_wlock; /* one writer of the file at a time */
static pid_t tev_pid;

/* Per M, for the slow path only (the fast one is in struct m): the
 * buffer being filled, and the full ones before it. Indexed by M id. */
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

/* Append one buffer's words, raw, to the temporary file, behind a
 * header naming the M that recorded them. */
static void flush_buf(struct tevbuf *b, int mid)
{
  uint64_t h[2] = {TEV_HDR | (uint64_t)(uint32_t)mid << 32, b->n};
  gmp_lock_acquire(&tev_wlock);
  write_all(raw_fd, h, sizeof h);
  write_all(raw_fd, b->w, (size_t)b->n * sizeof b->w[0]);
  gmp_lock_release(&tev_wlock);
  b->n = 0;
}

/* pos is a cursor into b (NULL is not). */
static bool in_buf(const struct tevbuf *b, const uint64_t *pos)
{
  uintptr_t p = (uintptr_t)pos, lo = (uintptr_t)b->w;
  return p >= lo && p <= lo + TEV_WORDS * sizeof b->w[0];
}

/* The slow path of gmp_tev_room: m's buffer is full (or it has none).
 * Returns room for TEV_MAXREC words, or NULL (then m->tev_pos and
 * tev_end stay equal: every record comes back here, and fails). */
uint64_t *gmp_tev_refill(struct m *m)
{
  if (!m || m->id < 0 || m->id >= TEV_MAXM || !tevm)
    return NULL;
  struct tevm *t = &tevm[m->id];
  struct tevbuf *b = t->cur;
  /* (Once this M has failed, its cursor is NULL: leave b->n alone.) */
  if (b && in_buf(b, m->tev_pos))
    b->n = (uint32_t)(m->tev_pos - b->w);
  m->tev_pos = m->tev_end = NULL;
  m->tev_base = TEV_NOBASE;
  if (t->failed)
    return NULL;
  struct tevbuf *nb = NULL;
  if (b && atomic_load_explicit(&tev_mem, memory_order_relaxed) >= tev_mem_max) {
    /* At the memory limit: spill this M's buffers to the file (each
     * decodes on its own: the order does not matter) and reuse them. */
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
    nb = b;
    b = NULL;
  } else if ((nb = t->spare)) {
    t->spare = nb->next;
  } else {
    /* A new buffer, carved from 2 MiB chunks marked for transparent huge
     * pages: one page fault per 2 MiB instead of one per 4 KiB (24,000
     * faults for a million condvar round trips cost more than the events
     * themselves). Never freed: the trace lives until exit. */
    if (t->chunk_cur + sizeof *nb > t->chunk_end) {
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
    if (t->chunk_cur && t->chunk_cur + sizeof *nb <= t->chunk_end) {
      nb = (struct tevbuf *)t->chunk_cur;
      t->chunk_cur += sizeof *nb;
    }
    if (!nb) {
      t->failed = true;
      gmp_printf_err("libgmp: GMP_TRACE: out of memory; M%d records no more events\n", m->id);
      return NULL;
    }
    atomic_fetch_add(&tev_mem, sizeof *nb);
  }
  nb->n = 0;
  nb->next = b;
  t->cur = nb;
  m->tev_pos = nb->w;
  m->tev_end = nb->w + TEV_WORDS;
  return nb->w;
}

void gmp_tev_instant(struct m *m, int type, int tid, uint64_t goid, int64_t ts, int a)
{
  if (!ts)
    ts = gmp_tev_now();
  uint64_t *w = m ? gmp_tev_room(m) : NULL, d;
  if (!w)
    return;
  w = gmp_tev_delta(m, w, ts, (uint64_t)1 << 32, &d);
  w[0] = (uint64_t)type | (uint64_t)(tid & 0xffff) << 16 | (uint64_t)(uint32_t)goid << 32;
  w[1] = d | (uint64_t)(uint32_t)a << 32;
  m->tev_pos = w + 2;
}

/* Decode the records of one buffer (n words) into e[]; returns how many.
 * A record cut short or of an unknown type ends the buffer (the one race
 * tracing accepts: an M still recording while tev_finish reads). */
static int decode(const uint64_t *w, uint32_t n, struct tev *e, int max, uint32_t *used,
                  uint64_t *base)
{
  int k = 0;
  uint32_t i = 0;
  while (i < n && k < max) {
    uint64_t w0 = w[i];
    int type = (int)(w0 & 0xf);
    struct tev *o = &e[k];
    if (type == TEV_UNPARK1) {
      if (*base == TEV_NOBASE)
        break;
      o->type = TEV_UNPARK;
      o->tid = (int)(w0 >> 4 & 0xfff);
      o->goid = (uint32_t)(w0 >> 16 & 0xffffff);
      o->ts = (int64_t)(*base + (w0 >> 40));
      o->dur = 0;
      o->a = 0;
      i++;
      k++;
      continue;
    }
    if (i + 1 >= n || type < TEV_RUN || type > TEV_TIME || type == TEV_UNPARK1)
      break;
    uint64_t w1 = w[i + 1];
    i += 2;
    if (type == TEV_TIME) {
      *base = w1;
      continue;
    }
    if (*base == TEV_NOBASE)
      break;
    o->type = type;
    o->goid = (uint32_t)(w0 >> 32);
    o->ts = (int64_t)(*base + (uint32_t)w1);
    o->tid = type == TEV_SYSCALL ? TID_SELF : (int)(w0 >> 16 & 0xffff);
    if (type == TEV_RUN || type == TEV_SYSCALL) {
      o->a = (int32_t)(w0 >> 8 & 0xff);
      o->dur = (uint32_t)(w1 >> 32);
    } else {
      o->a = (int32_t)(uint32_t)(w1 >> 32);
      o->dur = 0;
    }
    k++;
  }
  *used = i;
  return k;
}

/* Convert one event to a JSON array element (each starts with a comma:
 * the header wrote the first element). Microseconds with three
 * decimals, formatted as integers: glibc's floating-point printf wants
 * more stack than an M's g0 may have. */
static int format(char *out, size_t len, const struct tev *e, int mid, double ns_per_tick)
{
  int64_t ts = (int64_t)((double)(e->ts - tick0) * ns_per_tick);
  int64_t dur = (int64_t)((double)((uint64_t)e->dur << TEV_DUR_SHIFT) * ns_per_tick);
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

static void tev_finish(void);

void gmp_tev_finish(void)
{
  tev_finish();
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
  /* Each M's current buffer is as full as its cursor says. */
  for (struct m *m = gmp_sched.allm; m; m = m->alllink) {
    struct tevbuf *b = m->id >= 0 && m->id < TEV_MAXM ? tevm[m->id].cur : NULL;
    if (b && in_buf(b, m->tev_pos))
      b->n = (uint32_t)(m->tev_pos - b->w);
  }
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
  /* The file: [TEV_HDR][words] per buffer. Buffers decode on their own. */
  static uint64_t in[TEV_WORDS];
  static struct tev ev[1024];
  uint64_t h[2];
  while (gmp_sys3(SYS_read, raw_fd, h, sizeof h) == (long)sizeof h && (h[0] & 0xf) == TEV_HDR &&
         h[1] <= TEV_WORDS) {
    int mid = (int)(h[0] >> 32);
    size_t want = (size_t)h[1] * sizeof in[0], got = 0;
    while (got < want) {
      long r = gmp_sys3(SYS_read, raw_fd, (char *)in + got, want - got);
      if (r <= 0)
        break;
      got += (size_t)r;
    }
    uint32_t n = (uint32_t)(got / sizeof in[0]), at = 0, used;
    uint64_t base = TEV_NOBASE;
    int k;
    while (at < n && (k = decode(in + at, n - at, ev, 1024, &used, &base)) > 0) {
      at += used;
      for (int i = 0; i < k; i++) {
        if (len > sizeof out - 512) {
          write_all(tev_fd, out, len);
          len = 0;
        }
        int f = format(out + len, sizeof out - len, &ev[i], mid, ns_per_tick);
        if (f > 0 && (size_t)f < sizeof out - len)
          len += (size_t)f;
      }
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
  gmp_tev_tsc = tsc_invariant();
  tick0 = gmp_tev_now();
  ns0 = gmp_nanotime();
  tev_pid = (pid_t)gmp_sys0(SYS_getpid);
  atexit(tev_finish);
  gmp_tev_on = true;
  return 0;
}
