/*
 * Per-G thread control blocks compatible with glibc 2.36.
 *
 * Every G gets what NPTL gives a thread: a struct pthread and a static TLS
 * block, made by ld.so's own _dl_allocate_tls, and the fs base is switched
 * with the G (shim/context_x86_64.S). Then errno, __thread variables of
 * every module, stdio's recursive lock owners (THREAD_SELF), malloc's
 * tcache, the ctype tables, the stack protector canary and pthread_self()
 * are all per G, wherever the G runs. ../shared/notes/tls-findings.md has
 * the measurements behind each step below.
 *
 * struct pthread is private to glibc. Its layout comes from the
 * _thread_db_* descriptors libc exports for libthread_db ({bits, count,
 * offset} triples), and the two fields no descriptor covers (robust_head,
 * stackblock) from run-time probes whose invariants are checked. Anything
 * unexpected makes gmp_tls_init() return a reason, and the runtime falls
 * back to native threads.
 */
#define _GNU_SOURCE
#include "shim/shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* tcbhead_t is fixed ABI on x86_64 (sysdeps/x86_64/nptl/tls.h). */
enum {
  TCB_TCB = 0x00,
  TCB_DTV = 0x08,
  TCB_SELF = 0x10,
  TCB_MULTIPLE_THREADS = 0x18,
  TCB_SYSINFO = 0x20,
  TCB_STACK_GUARD = 0x28,
  TCB_POINTER_GUARD = 0x30,
  TCB_FEATURE_1 = 0x48,
};

/* rseq cpu_id value meaning "not registered": sched_getcpu() then asks
 * the vDSO instead of reading a stale 0 from the G's unregistered area. */
#define RSEQ_CPU_ID_REGISTRATION_FAILED (-2)

static struct {
  size_t sizeof_pthread;
  size_t off_tid, off_list, off_specific, off_robust, off_stackblock;
  size_t static_size, static_align, block_size;
  size_t lm_tls_offset; /* offsetof(struct link_map, l_tls_offset) */
  /* libc's own static TLS block, kept across recycling. */
  size_t libc_tls_off, libc_tls_size;
  long rseq_offset;
  unsigned rseq_size;
  /* process-wide header values copied into every TCB */
  uintptr_t sysinfo, stack_guard, pointer_guard;
  unsigned feature_1;
  void *(*allocate_tls)(void *);
  void *(*allocate_tls_init)(void *, bool);
  void (*get_static_info)(size_t *, size_t *);
  void (*ctype_init)(void);
  void (*call_tls_dtors)(void);
} T;

static const unsigned *db(const char *name)
{
  return (const unsigned *)dlsym(RTLD_DEFAULT, name);
}

#define FIELD(tcb, off, type) (*(type *)((char *)(tcb) + (off)))

/* A descriptor is {size in bits, element count, byte offset}. */
static bool db_field(const char *name, unsigned bits, size_t *off)
{
  const unsigned *d = db(name);
  if (!d || (bits && d[0] != bits))
    return false;
  *off = d[2];
  return true;
}

/* The stackblock probe: a real pthread with a caller-provided stack looks
 * for (stackaddr, stacksize) in its own struct pthread. */
static char probe_stack[64 * 1024] __attribute__((aligned(4096)));
static size_t probe_found;

static void *probe_main(void *arg)
{
  char *tp = gmp_thread_self();
  for (size_t o = T.off_tid; o + 16 <= T.sizeof_pthread; o += 8) {
    if (FIELD(tp, o, void *) == (void *)probe_stack &&
        FIELD(tp, o + 8, size_t) == sizeof probe_stack) {
      probe_found = o;
      break;
    }
  }
  return NULL;
}

struct libc_tls_find {
  uintptr_t addr;
  size_t memsz;
  bool found;
};

static int find_libc_tls(struct dl_phdr_info *info, size_t sz, void *arg)
{
  struct libc_tls_find *f = arg;
  bool contains = false;
  size_t memsz = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && f->addr >= info->dlpi_addr + ph->p_vaddr &&
        f->addr < info->dlpi_addr + ph->p_vaddr + ph->p_memsz)
      contains = true;
    if (ph->p_type == PT_TLS)
      memsz = ph->p_memsz;
  }
  if (contains) {
    f->memsz = memsz;
    f->found = true;
    return 1;
  }
  return 0;
}

const char *gmp_tls_init(int (*create)(pthread_t *, const pthread_attr_t *,
                                       void *(*)(void *), void *),
                         int (*join)(pthread_t, void **))
{
  const char *ver = gnu_get_libc_version();
  if (strcmp(ver, "2.36") != 0)
    return "glibc version not supported (only 2.36 is known)";

  T.allocate_tls = (void *(*)(void *))dlsym(RTLD_DEFAULT, "_dl_allocate_tls");
  T.allocate_tls_init =
      (void *(*)(void *, bool))dlsym(RTLD_DEFAULT, "_dl_allocate_tls_init");
  T.get_static_info =
      (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
  T.ctype_init = (void (*)(void))dlsym(RTLD_DEFAULT, "__ctype_init");
  T.call_tls_dtors = (void (*)(void))dlsym(RTLD_DEFAULT, "__call_tls_dtors");
  if (!T.allocate_tls || !T.allocate_tls_init || !T.get_static_info ||
      !T.ctype_init || !T.call_tls_dtors)
    return "glibc private TLS entry points not found";

  const unsigned *szp = db("_thread_db_sizeof_pthread");
  size_t dtvp;
  if (!szp || !db_field("_thread_db_pthread_tid", 32, &T.off_tid) ||
      !db_field("_thread_db_pthread_list", 0, &T.off_list) ||
      !db_field("_thread_db_pthread_specific", 0, &T.off_specific) ||
      !db_field("_thread_db_pthread_dtvp", 64, &dtvp) ||
      !db_field("_thread_db_link_map_l_tls_offset", 0, &T.lm_tls_offset))
    return "glibc _thread_db descriptors missing";
  T.sizeof_pthread = *szp;
  if (dtvp != TCB_DTV || T.sizeof_pthread < 1024 || T.sizeof_pthread > 16384 ||
      T.off_tid >= T.sizeof_pthread || T.off_specific >= T.sizeof_pthread)
    return "glibc struct pthread layout unexpected";

  char *tp = gmp_thread_self();
  if (FIELD(tp, T.off_tid, int) != gmp_gettid())
    return "struct pthread tid probe failed";

  /* robust_head.list points to itself while the robust list is empty:
   * the first self-pointing word after tid. */
  T.off_robust = 0;
  for (size_t o = T.off_tid + 8; o + 8 <= T.sizeof_pthread; o += 8)
    if (FIELD(tp, o, void *) == tp + o) {
      T.off_robust = o;
      break;
    }
  if (!T.off_robust)
    return "struct pthread robust_head probe failed";

  T.sysinfo = FIELD(tp, TCB_SYSINFO, uintptr_t);
  T.stack_guard = FIELD(tp, TCB_STACK_GUARD, uintptr_t);
  T.pointer_guard = FIELD(tp, TCB_POINTER_GUARD, uintptr_t);
  T.feature_1 = FIELD(tp, TCB_FEATURE_1, unsigned);
  if (T.feature_1 != 0)
    return "CET (shadow stack) is active: stack switching is not supported";

  T.get_static_info(&T.static_size, &T.static_align);
  if (T.static_align < 64)
    T.static_align = 64;
  if (T.static_size < T.sizeof_pthread || T.static_size > (64u << 20))
    return "static TLS size unexpected";
  T.block_size = (T.static_size + T.static_align + 63) & ~(size_t)63;

  const long *ro = dlsym(RTLD_DEFAULT, "__rseq_offset");
  const unsigned *rs = dlsym(RTLD_DEFAULT, "__rseq_size");
  T.rseq_offset = ro ? *ro : 0;
  T.rseq_size = rs ? *rs : 0;

  /* libc's TLS block holds malloc's tcache pointer: recycling keeps it. */
  Dl_info dli;
  struct link_map *lm = NULL;
  if (!dladdr1((void *)gnu_get_libc_version, &dli, (void **)&lm, RTLD_DL_LINKMAP) ||
      !lm)
    return "cannot find libc's link_map";
  struct libc_tls_find f = {.addr = (uintptr_t)gnu_get_libc_version};
  dl_iterate_phdr(find_libc_tls, &f);
  if (!f.found || f.memsz == 0)
    return "cannot find libc's TLS segment";
  T.libc_tls_off = *(size_t *)((char *)lm + T.lm_tls_offset);
  T.libc_tls_size = f.memsz;
  if (T.libc_tls_off == 0 || T.libc_tls_off > T.static_size ||
      T.libc_tls_size > T.libc_tls_off)
    return "libc static TLS offset unexpected";

  /* The probe thread also makes the process multi-threaded in glibc's
   * eyes (__libc_single_threaded = 0, multiple_threads = 1), which every
   * G inherits: locking in stdio and malloc must stay on. */
  pthread_attr_t a;
  pthread_t th;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, probe_stack, sizeof probe_stack);
  int rc = create(&th, &a, probe_main, NULL);
  pthread_attr_destroy(&a);
  if (rc != 0)
    return "cannot create the probe thread";
  join(th, NULL);
  if (!probe_found)
    return "struct pthread stackblock probe failed";
  T.off_stackblock = probe_found;
  return NULL;
}

size_t gmp_tls_block_size(void) { return T.block_size; }

/* Static TLS in use below the thread pointer: the farthest module block
 * (l_tls_offset, TLS_TCB_AT_TP) of the modules loaded so far. The rest of
 * the static block down to its start is the surplus kept for dlopen, which
 * nothing writes until such a module is loaded. */
static int used_cb(struct dl_phdr_info *info, size_t sz, void *arg)
{
  (void)sz;
  size_t *max = arg;
  if (!info->dlpi_tls_modid)
    return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD)
      continue;
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1((void *)(info->dlpi_addr + ph->p_vaddr), &di, (void **)&lm,
                 RTLD_DL_LINKMAP) || !lm)
      return 0;
    ptrdiff_t off = *(ptrdiff_t *)((char *)lm + T.lm_tls_offset);
    if (off > 0 && (size_t)off <= T.static_size && (size_t)off > *max)
      *max = (size_t)off;
    return 0;
  }
  return 0;
}

size_t gmp_tls_hot_bytes(void)
{
  size_t used = 0;
  dl_iterate_phdr(used_cb, &used);
  /* from the block's end down to the thread pointer, then the used TLS */
  size_t top = (T.sizeof_pthread + T.static_align - 1) & ~(T.static_align - 1);
  return top + used;
}

void *gmp_tls_create(void *block)
{
  uintptr_t end = (uintptr_t)block + T.block_size;
  uintptr_t tp = (end - T.sizeof_pthread) & ~(uintptr_t)(T.static_align - 1);
  /* _dl_allocate_tls(mem) takes the thread pointer of zeroed memory with
   * static_size - sizeof(struct pthread) bytes of TLS below it, allocates
   * the DTV and copies every module's TLS init image. */
  return T.allocate_tls((void *)tp);
}

void gmp_tls_setup(void *tcb, int fake_tid, void *stack_lo, size_t stack_size)
{
  char *tp = tcb;
  FIELD(tp, TCB_TCB, void *) = tp;
  FIELD(tp, TCB_SELF, void *) = tp;
  /* 2.36 still reads header.multiple_threads for SINGLE_THREAD_P. */
  FIELD(tp, TCB_MULTIPLE_THREADS, int) = 1;
  FIELD(tp, TCB_SYSINFO, uintptr_t) = T.sysinfo;
  /* Pointer guard: fopencookie, atexit and jmp_buf pointers were mangled
   * with the process value; a different one crashes on first use. */
  FIELD(tp, TCB_STACK_GUARD, uintptr_t) = T.stack_guard;
  FIELD(tp, TCB_POINTER_GUARD, uintptr_t) = T.pointer_guard;
  FIELD(tp, TCB_FEATURE_1, unsigned) = T.feature_1;
  /* A unique, never-real tid: glibc's mutexes use it as the owner id (a
   * shared one lets a recursive lock be taken "recursively" by another G). */
  FIELD(tp, T.off_tid, int) = fake_tid;
  void **list = (void **)(tp + T.off_list);
  list[0] = list[1] = list;
  void **robust = (void **)(tp + T.off_robust);
  robust[0] = robust;
  FIELD(tp, T.off_specific, void *) = tp + T.off_specific - 32 * 16;
  /* __libc_alloca_cutoff reads stackblock_size: 0 would allow 64 KiB
   * allocas on a small G stack. */
  FIELD(tp, T.off_stackblock, void *) = stack_lo;
  FIELD(tp, T.off_stackblock + 8, size_t) = stack_size;
  if (T.rseq_size >= 8)
    FIELD(tp, T.rseq_offset + 4, int32_t) = RSEQ_CPU_ID_REGISTRATION_FAILED;
}

void gmp_tls_recycle(void *tcb)
{
  char *tp = tcb;
  char saved[512];
  char *libc_block = tp - T.libc_tls_off;
  char *save = T.libc_tls_size <= sizeof saved ? saved : malloc(T.libc_tls_size);
  if (save)
    memcpy(save, libc_block, T.libc_tls_size);
  /* dtv[-1].counter is the capacity; entries are {val, to_free}. Blocks of
   * dlopen'ed modules were malloc'ed by __tls_get_addr: free them, and let
   * _dl_allocate_tls_init mark them unallocated again. */
  struct dtv_slot { void *val; void *to_free; };
  struct dtv_slot *dtv = FIELD(tp, TCB_DTV, struct dtv_slot *);
  size_t cap = (size_t)dtv[-1].val;
  for (size_t i = 1; i <= cap; i++) {
    if (dtv[i].to_free) {
      free(dtv[i].to_free);
      dtv[i].to_free = NULL;
    }
  }
  T.allocate_tls_init(tp, true);
  if (save) {
    memcpy(libc_block, save, T.libc_tls_size);
    if (save != saved)
      free(save);
  }
}

void gmp_tls_enter(void)
{
  /* Inside the G (fs = its TCB). Carried-over libc state from the
   * previous owner of a recycled TCB is reset here. */
  errno = 0;
  uselocale(LC_GLOBAL_LOCALE);
  T.ctype_init();
}

void gmp_tls_leave(void)
{
  T.call_tls_dtors();
}

int gmp_tls_tid(void *tcb)
{
  return FIELD(tcb, T.off_tid, int);
}

void gmp_tls_set_tid(void *tcb, int tid)
{
  FIELD(tcb, T.off_tid, int) = tid;
}

/* ---- modules with static TLS loaded by dlopen ------------------------- */

struct new_static {
  ptrdiff_t offset;      /* the block sits at tp - offset */
  const void *image;
  size_t filesz, memsz;
};
static struct new_static news[32];
static int nnews;

static int max_modid_cb(struct dl_phdr_info *info, size_t sz, void *arg)
{
  size_t *max = arg;
  if (info->dlpi_tls_modid > *max)
    *max = info->dlpi_tls_modid;
  return 0;
}

void gmp_tls_snapshot(struct gmp_tls_snapshot *s)
{
  s->max_modid = 0;
  dl_iterate_phdr(max_modid_cb, &s->max_modid);
}

static struct link_map *map_of(uintptr_t addr)
{
  struct link_map *lm = NULL;
  Dl_info info;
  if (!dladdr1((void *)addr, &info, (void **)&lm, RTLD_DL_LINKMAP))
    return NULL;
  return lm;
}

static int new_static_cb(struct dl_phdr_info *info, size_t sz, void *arg)
{
  const struct gmp_tls_snapshot *s = arg;
  if (info->dlpi_tls_modid <= s->max_modid || nnews >= 32)
    return 0;
  const ElfW(Phdr) *tls = NULL, *load = NULL;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type == PT_TLS)
      tls = &info->dlpi_phdr[i];
    if (info->dlpi_phdr[i].p_type == PT_LOAD && !load)
      load = &info->dlpi_phdr[i];
  }
  if (!tls || !load)
    return 0;
  struct link_map *lm = map_of(info->dlpi_addr + load->p_vaddr);
  if (!lm)
    return 0;
  ptrdiff_t off = *(ptrdiff_t *)((char *)lm + T.lm_tls_offset);
  /* 0 is NO_TLS_OFFSET and -1 FORCED_DYNAMIC_TLS_OFFSET: dynamic TLS,
   * which __tls_get_addr allocates per thread on first use. */
  if (off == 0 || off == -1 || off < 0 || (size_t)off > T.static_size)
    return 0;
  /* The init image is the PT_TLS segment itself (dlpi_tls_data would be
   * the calling thread's copy, possibly already modified or absent). */
  news[nnews++] = (struct new_static){off, (const void *)(info->dlpi_addr + tls->p_vaddr),
                                      tls->p_filesz, tls->p_memsz};
  return 0;
}

int gmp_tls_new_static(const struct gmp_tls_snapshot *s)
{
  nnews = 0;
  dl_iterate_phdr(new_static_cb, (void *)s);
  return nnews;
}

void gmp_tls_init_new_static(void *tcb, void *unused)
{
  char *tp = tcb;
  for (int i = 0; i < nnews; i++) {
    char *blk = tp - news[i].offset;
    memcpy(blk, news[i].image, news[i].filesz);
    memset(blk + news[i].filesz, 0, news[i].memsz - news[i].filesz);
  }
}
