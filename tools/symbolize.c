/*
 * Out-of-process symboliser for tools/gmp-schedtrace: turns a code address
 * of another process into "func+0xOFF (file)".
 *
 * dladdr only sees dynamic symbols of our own process. The dumper needs
 * names in someone else's process, and the interesting ones (a thread's
 * start function, the caller that blocked) are often static functions of
 * the program, which only .symtab has. So we do what a debugger does,
 * without stopping the process:
 *
 *   1. /proc/PID/maps gives the file-backed mappings: [start,end), the file
 *      offset the mapping starts at, the file's inode and path.
 *   2. An address becomes a file offset: off = addr - start + map_offset.
 *      That needs no knowledge of how the loader placed the file (PIE,
 *      shared library, prelinked or ET_EXEC alike).
 *   3. The PT_LOAD segment holding that offset turns it into the address
 *      space the symbol table uses: v = off - p_offset + p_vaddr.
 *   4. The file's FUNC and IFUNC symbols, sorted, are binary-searched for
 *      the one containing v. .symtab when the file has it; else the
 *      separate debug file found by build ID (/usr/lib/debug/.build-id,
 *      which Debian's -dbgsym packages install); else .dynsym.
 *
 * Files are read lazily, on the first address that falls in them (the
 * dumper usually needs a handful of the process's many mappings), once
 * per file however many mappings it has, and then closed: only the sorted
 * symbols and their names stay in memory. A file that cannot be read is
 * remembered as failing and its addresses are named by file offset, which
 * is still enough to find them later with addr2line.
 */
#define _GNU_SOURCE
#include "tools/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds on what one file may cost us. A large C++ program has a few
 * hundred thousand functions; past these we keep the first ones read
 * rather than let a corrupt or hostile file make the tool eat memory. */
#define SYM_MAX (1u << 22)
#define NAMES_MAX (64u << 20)

struct sym {
  uint64_t lo, hi; /* [lo,hi) in the file's virtual address space */
  uint32_t name;   /* offset in symfile.names */
  uint8_t sized;   /* st_size > 0; else hi is the end of its section */
  uint8_t rank;    /* among symbols at one address, the lowest is named */
};

struct load {
  uint64_t off, filesz, vaddr;
};

enum { FILE_UNREAD, FILE_OK, FILE_FAILED };

struct symfile {
  char *path;         /* as maps shows it, " (deleted)" removed */
  const char *base;   /* its last component, for the output */
  unsigned long ino;  /* as maps shows it, to tell a rebuilt file */
  int deleted;
  uintptr_t mstart, mend; /* one of its mappings, for /proc/PID/map_files */
  int state;
  struct load *loads;
  size_t nloads;
  struct sym *syms;
  size_t nsyms, capsyms;
  char *names;
  size_t nnames, capnames;
};

struct mapping {
  uintptr_t start, end;
  uint64_t off;
  struct symfile *file;
};

struct gmp_symtab {
  pid_t pid;
  struct mapping *maps; /* sorted by start, as the kernel lists them */
  size_t nmaps;
  struct symfile **files;
  size_t nfiles;
};

/* Grow *p (n used, *cap allocated, elements of size sz) to hold one more.
 * 0 on success, -1 (errno ENOMEM) when it cannot. */
static int grow(void **p, size_t n, size_t *cap, size_t sz)
{
  if (n < *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 16;
  if (c > SIZE_MAX / sz) {
    errno = ENOMEM;
    return -1;
  }
  void *q = realloc(*p, c * sz);
  if (!q)
    return -1;
  *p = q;
  *cap = c;
  return 0;
}

static void put(char *buf, size_t len, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void put(char *buf, size_t len, const char *fmt, ...)
{
  if (!buf || len == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

static void file_free(struct symfile *f)
{
  if (!f)
    return;
  free(f->path);
  free(f->loads);
  free(f->syms);
  free(f->names);
  free(f);
}

void gmp_sym_close(struct gmp_symtab *st)
{
  if (!st)
    return;
  for (size_t i = 0; i < st->nfiles; i++)
    file_free(st->files[i]);
  free(st->files);
  free(st->maps);
  free(st);
}

/* The file a mapping belongs to, made on first sight. Mappings of one file
 * are adjacent in maps, so the last file made is nearly always the one. */
static struct symfile *file_for(struct gmp_symtab *st, size_t *capfiles, const char *path,
                                unsigned long ino, int deleted, uintptr_t start, uintptr_t end)
{
  for (size_t i = st->nfiles; i-- > 0;) {
    struct symfile *f = st->files[i];
    if (f->ino == ino && f->deleted == deleted && strcmp(f->path, path) == 0)
      return f;
  }
  if (grow((void **)&st->files, st->nfiles, capfiles, sizeof *st->files) != 0)
    return NULL;
  struct symfile *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->path = strdup(path);
  if (!f->path) {
    free(f);
    return NULL;
  }
  const char *slash = strrchr(f->path, '/');
  f->base = slash ? slash + 1 : f->path;
  f->ino = ino;
  f->deleted = deleted;
  f->mstart = start;
  f->mend = end;
  st->files[st->nfiles++] = f;
  return f;
}

/* One line of maps: "start-end perms offset major:minor inode   path".
 * Only file-backed mappings are kept ("[heap]", "[vdso]" and anonymous
 * memory have no file to read). Non-executable ones are kept too: an
 * address in .rodata is still worth naming by file offset. */
static int parse_line(struct gmp_symtab *st, size_t *capmaps, size_t *capfiles, char *line)
{
  unsigned long start, end, ino;
  unsigned long long off;
  char perms[8];
  int n = -1;
  if (sscanf(line, "%lx-%lx %7s %llx %*x:%*x %lu %n", &start, &end, perms, &off, &ino, &n) < 5 ||
      n < 0 || start >= end)
    return 0;
  char *path = line + n;
  size_t pl = strcspn(path, "\n");
  path[pl] = 0;
  if (path[0] != '/')
    return 0;
  /* An unlinked (or replaced) file: the path now names nothing, or
   * another file; only map_files can still open the mapped one. */
  static const char del[] = " (deleted)";
  int deleted = 0;
  if (pl >= sizeof del - 1 && strcmp(path + pl - (sizeof del - 1), del) == 0) {
    path[pl - (sizeof del - 1)] = 0;
    deleted = 1;
  }
  struct symfile *f = file_for(st, capfiles, path, ino, deleted, start, end);
  if (!f || grow((void **)&st->maps, st->nmaps, capmaps, sizeof *st->maps) != 0)
    return -1;
  st->maps[st->nmaps++] = (struct mapping){start, end, off, f};
  return 0;
}

struct gmp_symtab *gmp_sym_open(pid_t pid)
{
  char p[64];
  if (pid <= 0) {
    errno = ESRCH;
    return NULL;
  }
  snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
  FILE *fp = fopen(p, "re");
  if (!fp) {
    if (errno == ENOENT)
      errno = ESRCH;
    return NULL;
  }
  struct gmp_symtab *st = calloc(1, sizeof *st);
  if (!st) {
    fclose(fp);
    return NULL;
  }
  st->pid = pid;
  size_t capmaps = 0, capfiles = 0, linecap = 0;
  char *line = NULL;
  int err = 0;
  errno = 0;
  while (getline(&line, &linecap, fp) >= 0) {
    if (parse_line(st, &capmaps, &capfiles, line) != 0) {
      err = errno ? errno : ENOMEM;
      break;
    }
  }
  /* A process that exits while we read makes the read fail (ESRCH) or
   * end early; a failed read is reported, a short one is a process with
   * nothing (more) mapped, whose addresses are all "?". */
  if (!err && ferror(fp))
    err = errno ? errno : EIO;
  free(line);
  fclose(fp);
  if (err) {
    gmp_sym_close(st);
    errno = err;
    return NULL;
  }
  return st;
}

/* ---- reading one ELF file ------------------------------------------------ */

/* Open the file a mapping maps, trying the names that are most likely to
 * be exactly that file first:
 *   /proc/PID/map_files/START-END  the mapped file itself, even if deleted
 *                                  or in another mount namespace; needs
 *                                  CAP_SYS_ADMIN (or root) to open.
 *   /proc/PID/root/PATH            the path as the process sees it (a
 *                                  container's root); same user suffices.
 *   PATH                           as we see it.
 * A path can name a newer file than the mapped one (the program was
 * rebuilt while running): the inode must match what maps says, or the
 * names would be of another binary. */
static int file_open(pid_t pid, const struct symfile *f)
{
  char p[PATH_MAX + 64];
  snprintf(p, sizeof p, "/proc/%d/map_files/%lx-%lx", (int)pid, (unsigned long)f->mstart,
           (unsigned long)f->mend);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd >= 0 || f->deleted)
    return fd;
  for (int i = 0; i < 2; i++) {
    if (i == 0) {
      if ((size_t)snprintf(p, sizeof p, "/proc/%d/root%s", (int)pid, f->path) >= sizeof p)
        continue;
      fd = open(p, O_RDONLY | O_CLOEXEC);
    } else {
      fd = open(f->path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
      continue;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (f->ino == 0 || sb.st_ino == f->ino))
      return fd;
    close(fd);
  }
  return -1;
}

/* The PT_LOAD segments: they turn file offsets into symbol values. */
static int load_phdrs(struct symfile *f, Elf *e)
{
  size_t n;
  if (elf_getphdrnum(e, &n) != 0 || n == 0 || n > 65535)
    return -1;
  f->loads = calloc(n, sizeof *f->loads);
  if (!f->loads)
    return -1;
  for (size_t i = 0; i < n; i++) {
    GElf_Phdr ph;
    if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || ph.p_filesz == 0)
      continue;
    f->loads[f->nloads++] = (struct load){ph.p_offset, ph.p_filesz, ph.p_vaddr};
  }
  return f->nloads ? 0 : -1;
}

/* Among symbols at one address (aliases: glibc's weak getpid and global
 * __getpid) prefer one with a size, then the fewest leading underscores,
 * which is the name the program's author called, then global over weak
 * over local. */
static uint8_t sym_rank(const GElf_Sym *s, const char *name)
{
  int b = GELF_ST_BIND(s->st_info);
  int r = s->st_size ? 0 : 100;
  int u = 0;
  while (name[u] == '_' && u < 9)
    u++;
  r += 10 * u;
  r += b == STB_GLOBAL ? 0 : b == STB_WEAK ? 1 : 2;
  return (uint8_t)r;
}

static int add_sym(struct symfile *f, uint64_t lo, uint64_t hi, int sized, uint8_t rank,
                   const char *name)
{
  size_t nl = strlen(name) + 1;
  if (f->nsyms >= SYM_MAX || f->nnames + nl > NAMES_MAX)
    return 0; /* full: keep what we have */
  if (grow((void **)&f->syms, f->nsyms, &f->capsyms, sizeof *f->syms) != 0)
    return -1;
  while (f->nnames + nl > f->capnames) {
    size_t c = f->capnames ? f->capnames * 2 : 4096;
    char *q = realloc(f->names, c);
    if (!q)
      return -1;
    f->names = q;
    f->capnames = c;
  }
  memcpy(f->names + f->nnames, name, nl);
  f->syms[f->nsyms++] = (struct sym){lo, hi, (uint32_t)f->nnames, (uint8_t)sized, rank};
  f->nnames += nl;
  return 0;
}

/* Add the function symbols of every section of the given type (SHT_SYMTAB
 * or SHT_DYNSYM). Returns how many were added, -1 when out of memory. */
static long load_syms(struct symfile *f, Elf *e, Elf64_Word type)
{
  size_t before = f->nsyms;
  Elf_Scn *scn = NULL;
  while ((scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || sh.sh_entsize == 0)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d)
      continue;
    size_t n = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
      GElf_Sym s;
      if (!gelf_getsym(d, (int)i, &s))
        break;
      int t = GELF_ST_TYPE(s.st_info);
      if ((t != STT_FUNC && t != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || s.st_value == 0)
        continue;
      const char *name = elf_strptr(e, sh.sh_link, s.st_name);
      if (!name || !name[0])
        continue;
      uint64_t hi;
      if (s.st_size) {
        hi = s.st_value + s.st_size;
        if (hi < s.st_value)
          continue;
      } else {
        /* A size-less symbol (hand-written assembly) covers at most up to
         * the end of its section; lookup also stops it at the next one. */
        hi = UINT64_MAX;
        GElf_Shdr ss;
        Elf_Scn *sec = s.st_shndx < SHN_LORESERVE ? elf_getscn(e, s.st_shndx) : NULL;
        if (sec && gelf_getshdr(sec, &ss) && s.st_value >= ss.sh_addr &&
            s.st_value < ss.sh_addr + ss.sh_size)
          hi = ss.sh_addr + ss.sh_size;
      }
      if (add_sym(f, s.st_value, hi, s.st_size != 0, sym_rank(&s, name), name) != 0)
        return -1;
    }
  }
  return (long)(f->nsyms - before);
}

/* The separate debug file of a stripped file, by its GNU build ID note:
 * /usr/lib/debug/.build-id/ab/cdef....debug. 0 when there is a name. */
static int debug_path(Elf *e, char *out, size_t len)
{
  Elf_Scn *scn = NULL;
  while ((scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d || !d->d_buf)
      continue;
    GElf_Nhdr nh;
    size_t off = 0, noff, doff, next;
    while ((next = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
      off = next;
      if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
          memcmp((char *)d->d_buf + noff, "GNU", 4) != 0 || nh.n_descsz < 2 ||
          nh.n_descsz > 64)
        continue;
      const unsigned char *id = (const unsigned char *)d->d_buf + doff;
      size_t w = (size_t)snprintf(out, len, "/usr/lib/debug/.build-id/%02x/", id[0]);
      for (size_t i = 1; i < nh.n_descsz && w < len; i++)
        w += (size_t)snprintf(out + w, len - w, "%02x", id[i]);
      if (w < len)
        w += (size_t)snprintf(out + w, len - w, ".debug");
      return w < len ? 0 : -1;
    }
  }
  return -1;
}

static long load_debug_syms(struct symfile *f, Elf *e)
{
  char p[256];
  if (debug_path(e, p, sizeof p) != 0)
    return 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  long n = 0;
  Elf *d = elf_begin(fd, ELF_C_READ, NULL);
  if (d && elf_kind(d) == ELF_K_ELF)
    n = load_syms(f, d, SHT_SYMTAB);
  if (d)
    elf_end(d);
  close(fd);
  return n;
}

static int sym_cmp(const void *a, const void *b, void *names)
{
  const struct sym *x = a, *y = b;
  if (x->lo != y->lo)
    return x->lo < y->lo ? -1 : 1;
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  return strcmp((char *)names + x->name, (char *)names + y->name);
}

/* Sort, and keep one symbol per address: the best-ranked alias. */
static void sort_syms(struct symfile *f)
{
  if (f->nsyms == 0)
    return;
  qsort_r(f->syms, f->nsyms, sizeof *f->syms, sym_cmp, f->names);
  size_t w = 1;
  for (size_t i = 1; i < f->nsyms; i++)
    if (f->syms[i].lo != f->syms[w - 1].lo)
      f->syms[w++] = f->syms[i];
  f->nsyms = w;
  /* Give back the growth slack: tables live as long as the symtab. */
  struct sym *s = realloc(f->syms, w * sizeof *s);
  if (s)
    f->syms = s;
  char *nm = realloc(f->names, f->nnames);
  if (nm)
    f->names = nm;
}

static void file_load(pid_t pid, struct symfile *f)
{
  f->state = FILE_FAILED;
  int fd = file_open(pid, f);
  if (fd < 0)
    return;
  Elf *e = NULL;
  if (elf_version(EV_CURRENT) == EV_NONE)
    goto out;
  /* ELF_C_READ, not ELF_C_READ_MMAP: a file truncated under a mapping
   * would kill the tool with SIGBUS. */
  e = elf_begin(fd, ELF_C_READ, NULL);
  if (!e || elf_kind(e) != ELF_K_ELF || load_phdrs(f, e) != 0)
    goto out;
  long n = load_syms(f, e, SHT_SYMTAB);
  if (n == 0)
    n = load_debug_syms(f, e);
  if (n == 0)
    n = load_syms(f, e, SHT_DYNSYM);
  if (n < 0) {
    /* Out of memory half-way: drop everything rather than keep a table
     * that would name addresses after the wrong neighbour. */
    free(f->syms);
    free(f->names);
    f->syms = NULL;
    f->names = NULL;
    f->nsyms = f->capsyms = f->nnames = f->capnames = 0;
    goto out;
  }
  sort_syms(f);
  f->state = FILE_OK;
out:
  if (e)
    elf_end(e);
  close(fd);
}

/* ---- lookup -------------------------------------------------------------- */

static const struct mapping *find_mapping(const struct gmp_symtab *st, uintptr_t addr)
{
  size_t lo = 0, hi = st->nmaps;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (st->maps[mid].start <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || addr >= st->maps[lo - 1].end)
    return NULL;
  return &st->maps[lo - 1];
}

/* The symbol containing v: the last one starting at or before v, if its
 * size covers v; else one a little before it that does (a function with a
 * nested symbol, such as a local entry point); else the last one if it has
 * no size, since nothing lies between it and v. */
static const struct sym *find_sym(const struct symfile *f, uint64_t v)
{
  size_t lo = 0, hi = f->nsyms;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->syms[mid].lo <= v)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return NULL;
  size_t i = lo - 1;
  for (size_t j = i, k = 0; k < 8; j--, k++) {
    if (f->syms[j].sized && v < f->syms[j].hi)
      return &f->syms[j];
    if (j == 0)
      break;
  }
  if (!f->syms[i].sized && v < f->syms[i].hi)
    return &f->syms[i];
  return NULL;
}

static int describe(struct gmp_symtab *st, uintptr_t addr, char *buf, size_t len, int with_off)
{
  const struct mapping *m = st ? find_mapping(st, addr) : NULL;
  if (!m) {
    put(buf, len, "?");
    return 0;
  }
  struct symfile *f = m->file;
  uint64_t off = addr - m->start + m->off;
  if (f->state == FILE_UNREAD)
    file_load(st->pid, f);
  if (f->state == FILE_OK) {
    for (size_t i = 0; i < f->nloads; i++) {
      const struct load *l = &f->loads[i];
      if (off < l->off || off - l->off >= l->filesz)
        continue;
      uint64_t v = off - l->off + l->vaddr;
      const struct sym *s = find_sym(f, v);
      if (!s)
        break;
      if (with_off)
        put(buf, len, "%s+0x%llx (%s)", f->names + s->name, (unsigned long long)(v - s->lo),
            f->base);
      else
        put(buf, len, "%s", f->names + s->name);
      return 1;
    }
  }
  put(buf, len, "? (%s+0x%llx)", f->base, (unsigned long long)off);
  return 0;
}

int gmp_sym_name(struct gmp_symtab *st, uintptr_t addr, char *buf, size_t len)
{
  return describe(st, addr, buf, len, 1);
}

int gmp_sym_func(struct gmp_symtab *st, uintptr_t addr, char *buf, size_t len)
{
  return describe(st, addr, buf, len, 0);
}
