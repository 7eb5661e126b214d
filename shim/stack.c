/*
 * G stacks.
 *
 * A stack is reserved with MAP_NORESERVE and committed lazily by page
 * faults, so an 8 MiB NPTL-sized stack costs only the pages a G touches.
 * Below it sits a PROT_NONE guard page, so an overflow faults instead of
 * corrupting the neighbour.
 *
 * A guarded stack costs two VMAs (the guard splits the mapping), and the
 * kernel refuses new mappings past vm.max_map_count (65,530 here): about
 * 32,000 guarded stacks would exhaust it and every later mmap in the
 * process — malloc's included — would fail. So guards are handed out from
 * a budget (guard_limit, derived from max_map_count at init); past it a
 * stack is one plain mapping, which the kernel merges with its neighbours
 * into a single VMA, and a canary word at its lowest address is checked
 * each time the G is switched out (sched/proc.c). That detects an overflow
 * late, but detects it, and keeps the process within its map budget.
 *
 * On Linux >= 6.13, madvise(MADV_GUARD_INSTALL) makes a guard page without
 * splitting the mapping. Then stacks are carved from large mappings, one
 * madvise each: every stack keeps its guard, however many there are, and
 * a new stack costs one system call instead of two (measured here: 4.6 us
 * instead of 11.5 us for a fresh 64 KiB stack, page fault included). Where
 * process_madvise() accepts the calling process itself (PIDFD_SELF), the
 * guards of a whole new slab go in with one call: 0.52 instead of 0.86 us
 * a stack here.
 */
#define _GNU_SOURCE
#include "shim/shim.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static size_t page_size = 4096;
static long guard_limit = 24000;
static atomic_long guarded_now;
static bool use_regions;

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

bool gmp_stack_guard_regions(void) { return use_regions; }

/* Carving state for guard-region stacks: one cursor per slot size.
 *
 * A program uses few distinct stack sizes, but some cycle through more
 * than there are cursors (the fork_stacks test uses 12). The least
 * recently used cursor is evicted, and the uncarved rest of its slab is
 * unmapped then: forgetting it leaked address space and, worse, the page
 * tables that hold its guard markers, one slab per thread creation
 * (VmPTE reached 550 MiB in seconds, and fork, which copies page tables,
 * slowed to a crawl).
 *
 * A size's first slab holds SLAB_FIRST stacks and each refill doubles
 * that, up to SLAB_MAX: a size used once does not reserve 64 stacks' worth
 * of address space and page tables, and a size used many times still
 * pays one mmap (and one guard call) per 64 stacks. */
#define NSLABS 16
#define SLAB_FIRST 8
#define SLAB_MAX 64
static struct {
  size_t slot, guard;
  char *cur, *end;
  unsigned long used; /* slab_clock at the last take: LRU eviction */
  unsigned nnext;     /* stacks in this size's next slab */
  bool guarded;       /* every slot's guard installed when the slab was mapped */
} slabs[NSLABS];
static unsigned long slab_clock;
/* process_madvise() on the calling process itself, with PIDFD_SELF
 * (Linux >= 6.14 for the sentinel, any advice for self since 6.13): one
 * call installs the guards of a whole slab. -1 until tried, then 0/1. */
static int batch_guards = -1;
#define PIDFD_SELF_PROCESS_ (-10001)
static atomic_uint slab_lock;

size_t gmp_page_size(void) { return page_size; }
long gmp_stack_guarded_count(void) { return atomic_load(&guarded_now); }

void gmp_stack_init(long limit)
{
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0)
    page_size = (size_t)ps;
  use_regions = false;
  if (limit >= 0) {
    guard_limit = limit;
    return;
  }
  /* Probe guard regions on a scratch mapping. */
  long r = gmp_sys6(SYS_mmap, 0, 2 * page_size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (!(r < 0 && r > -4096)) {
    use_regions = gmp_sys3(SYS_madvise, r, page_size, MADV_GUARD_INSTALL) == 0;
    gmp_sys2(SYS_munmap, r, 2 * page_size);
  }
  /* Leave half the map budget, and at least 16k maps, to the program. */
  char buf[64];
  long maxmap = 65530;
  if (gmp_read_file("/proc/sys/vm/max_map_count", buf, sizeof buf) > 0)
    maxmap = strtol(buf, NULL, 10);
  long spare = maxmap / 2 > 16384 ? maxmap / 2 : 16384;
  guard_limit = maxmap > spare ? (maxmap - spare) / 2 : 0;
}

static size_t round_page(size_t n)
{
  return (n + page_size - 1) & ~(page_size - 1);
}

static void *map_anon(size_t len)
{
  long r = gmp_sys6(SYS_mmap, 0, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (r < 0 && r > -4096)
    return NULL;
  return (void *)r;
}

/* Guards at the start of each of the n slots of a new slab, in one
 * system call where the kernel allows it. */
static bool slab_guard_all(char *m, size_t n, size_t slot, size_t guard)
{
  if (batch_guards == 0)
    return false;
  struct iovec v[SLAB_MAX];
  for (size_t k = 0; k < n; k++) {
    v[k].iov_base = m + k * slot;
    v[k].iov_len = guard;
  }
  long r = gmp_sys6(SYS_process_madvise, PIDFD_SELF_PROCESS_, (long)v, (long)n,
                    MADV_GUARD_INSTALL, 0, 0);
  if (r == (long)(n * guard)) {
    batch_guards = 1;
    return true;
  }
  /* Older kernel (EBADF for the sentinel, EINVAL for the advice): fall
   * back to one madvise per stack, and stop trying. A partial result
   * leaves some guards installed; the per-stack madvise redoes them. */
  if (r < 0 && batch_guards < 0)
    batch_guards = 0;
  return false;
}

static char *slab_take(size_t slot, size_t guard, bool *guarded)
{
  char *drop = NULL; /* uncarved rest of a slab replaced here: unmapped after */
  size_t droplen = 0;
  while (atomic_exchange_explicit(&slab_lock, 1, memory_order_acquire))
    __builtin_ia32_pause();
  int i, lru = 0;
  for (i = 0; i < NSLABS; i++) {
    if (slabs[i].slot == slot && slabs[i].guard == guard)
      break;
    if (slabs[i].used < slabs[lru].used)
      lru = i;
  }
  if (i == NSLABS || slabs[i].cur + slot > slabs[i].end) {
    unsigned n = SLAB_FIRST;
    if (i == NSLABS) {
      i = lru; /* a never-used entry has used == 0 and cur == end == NULL */
    } else {
      n = slabs[i].nnext;
    }
    /* At most 64 MiB a mapping, and at least one stack. */
    size_t cap = ((size_t)64 << 20) / slot;
    if (n > cap)
      n = cap ? (unsigned)cap : 1;
    char *m = map_anon(n * slot);
    if (!m) {
      atomic_store_explicit(&slab_lock, 0, memory_order_release);
      return NULL;
    }
    drop = slabs[i].cur;
    droplen = (size_t)(slabs[i].end - slabs[i].cur);
    slabs[i].slot = slot;
    slabs[i].guard = guard;
    slabs[i].cur = m;
    slabs[i].end = m + n * slot;
    slabs[i].nnext = n * 2 < SLAB_MAX ? n * 2 : SLAB_MAX;
    slabs[i].guarded = slab_guard_all(m, n, slot, guard);
  }
  char *m = slabs[i].cur;
  slabs[i].cur += slot;
  slabs[i].used = ++slab_clock;
  *guarded = slabs[i].guarded;
  atomic_store_explicit(&slab_lock, 0, memory_order_release);
  if (drop && droplen)
    gmp_sys2(SYS_munmap, (long)drop, (long)droplen);
  return m;
}

void gmp_stack_fork_child(void)
{
  /* Another thread of the parent may have held the slab lock, halfway
   * through carving or mapping, when the process forked: in the child
   * that thread is gone, and the slabs may be half updated. Then forget
   * them (their uncarved rest, at most a few slabs, is lost to this
   * process). Otherwise give the uncarved rests back. Either way the
   * child starts with no slabs and a free lock. */
  if (atomic_load_explicit(&slab_lock, memory_order_relaxed) == 0)
    for (int i = 0; i < NSLABS; i++)
      if (slabs[i].cur < slabs[i].end)
        gmp_sys2(SYS_munmap, (long)slabs[i].cur, (long)(slabs[i].end - slabs[i].cur));
  memset(slabs, 0, sizeof slabs);
  slab_clock = 0;
  atomic_store_explicit(&slab_lock, 0, memory_order_release);
}

int gmp_stack_alloc(struct gmp_stack *s, size_t size, size_t guard)
{
  size = round_page(size);
  guard = round_page(guard);
  s->region = false;
  if (use_regions && guard) {
    bool guarded;
    char *m = slab_take(size + guard, guard, &guarded);
    if (!m)
      return EAGAIN;
    s->user = false;
    s->map = m;
    s->maplen = size + guard;
    s->hi = m + s->maplen;
    if (guarded || gmp_sys3(SYS_madvise, m, guard, MADV_GUARD_INSTALL) == 0) {
      s->region = true;
      s->guard = guard;
      s->lo = m + guard;
    } else {
      s->guard = 0;
      s->lo = m;
      *(uint64_t *)s->lo = GMP_STACK_CANARY;
    }
    return 0;
  }
  size_t req_guard = guard; /* what gets mapped, even if the guard budget is spent */
  s->user = false;
  if (guard) {
    if (atomic_fetch_add(&guarded_now, 1) >= guard_limit) {
      atomic_fetch_sub(&guarded_now, 1);
      guard = 0;
    }
  }
  if (!guard)
    req_guard = 0;
  char *m = map_anon(size + req_guard);
  if (!m) {
    if (guard)
      atomic_fetch_sub(&guarded_now, 1);
    return EAGAIN;
  }
  if (guard && gmp_sys3(SYS_mprotect, m, guard, PROT_NONE) != 0) {
    /* Out of map budget after all: keep the mapping as a canary stack. */
    atomic_fetch_sub(&guarded_now, 1);
    guard = 0;
  }
  /* If the guard could not be made, its page stays ordinary stack. */
  s->map = m;
  s->maplen = size + round_page(req_guard);
  s->guard = guard;
  s->lo = m + guard;
  s->hi = m + s->maplen;
  if (!guard)
    *(uint64_t *)s->lo = GMP_STACK_CANARY;
  return 0;
}

void gmp_stack_free(struct gmp_stack *s)
{
  if (s->user || !s->map)
    return;
  /* A carved stack is unmapped alone: its neighbours are other stacks. */
  gmp_sys2(SYS_munmap, s->map, s->maplen);
  if (s->guard && !s->region)
    atomic_fetch_sub(&guarded_now, 1);
  s->map = s->lo = s->hi = NULL;
}
