/*
 * gmp-run: start an unmodified program under libgmp.
 *
 * libgmp.so is an LD_PRELOAD runtime that turns a program's pthreads into
 * green threads.  GNU MP already owns the name libgmp.so in the default
 * library path, so ours is installed in a private directory
 * (GMP_PKGLIBDIR) and this launcher finds it, sets LD_PRELOAD and the
 * GMP_* knobs, checks that the preload can actually reach the target
 * (not static, not set-user-ID, not 32-bit) and execs the command.
 *
 * Exit status follows the shell: 2 usage error, 126 command found but
 * cannot be run (or cannot be run under libgmp), 127 command or library
 * not found; otherwise the exit status is the command's own.
 */
#define _GNU_SOURCE

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef GMP_PKGLIBDIR
#define GMP_PKGLIBDIR "/usr/local/lib/gmp-sched"
#endif
#ifndef GMP_VERSION_STRING
#define GMP_VERSION_STRING "0.0.0"
#endif

#define PROG "gmp-run"
#define LIBNAME "libgmp.so"

#define EXIT_USAGE 2
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

#define MAXPROCS_MIN 1
#define MAXPROCS_MAX 1024
#define STACK_MIN (16ULL * 1024)              /* PTHREAD_STACK_MIN, x86_64 */
#define STACK_MAX (1024ULL * 1024 * 1024)     /* 1 GiB */

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static _Noreturn void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void die(int code, const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die(EXIT_NOT_FOUND, "out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

/* ------------------------------------------------------------------------ */
/* Help and version                                                         */

static void print_version(void)
{
    puts(PROG " (libgmp) " GMP_VERSION_STRING);
}

static void print_help(void)
{
    fputs(
"NAME\n"
"    gmp-run - run an unmodified program with its pthreads as green threads\n"
"\n"
"SYNOPSIS\n"
"    gmp-run [options] [--] command [args...]\n"
"\n"
"DESCRIPTION\n"
"    gmp-run starts COMMAND with libgmp.so preloaded (LD_PRELOAD).  libgmp\n"
"    interposes the pthread API and runs every thread the program creates as\n"
"    a green thread (G) on a Go-style scheduler: a fixed number of\n"
"    processors (Ps), each driven by a kernel thread (M).  The program is not\n"
"    recompiled or relinked.\n"
"\n"
"    GNU MP already installs a library called libgmp.so in the default\n"
"    library path, so this libgmp.so lives in a private directory and is\n"
"    meant to be started through gmp-run.\n"
"\n"
"    COMMAND is looked up in PATH like a shell does.  Options are only\n"
"    recognised before COMMAND; everything from COMMAND on is passed to it\n"
"    untouched.  Use -- when COMMAND itself starts with '-'.\n"
"\n", stdout);
    fputs(
"OPTIONS\n"
"    --maxprocs N\n"
"        Number of Ps, 1..1024.  Sets GMP_MAXPROCS.\n"
"\n"
"    --stack-size SIZE\n"
"        Default stack size of a thread: a number of bytes with an optional\n"
"        K, M or G suffix (powers of 1024), 16K..1G.  Sets GMP_STACK_SIZE\n"
"        (to the value in bytes).\n"
"\n"
"    --debug KEY=VALUE[,KEY=VALUE...]\n"
"        Debug settings, see GMP_DEBUG below.  Sets GMP_DEBUG.\n"
"\n"
"    --verbose\n"
"        Sets GMP_VERBOSE=1; gmp-run also prints the library it preloads.\n"
"\n"
"    --lib PATH\n"
"        Use this libgmp.so instead of searching for one (see LIBRARY).\n"
"\n"
"    --native\n"
"        Run COMMAND without libgmp (LD_PRELOAD is not set; a libgmp already\n"
"        in it is removed), with the same environment otherwise.  Useful to\n"
"        compare against native NPTL threads.\n"
"\n"
"    -h, --help\n"
"        Print this text and exit.\n"
"\n"
"    --version\n"
"        Print the version and exit.\n"
"\n"
"    Every option that takes a value also accepts the --option=VALUE form.\n"
"\n", stdout);
    fputs(
"ENVIRONMENT\n"
"    Read by the runtime (libgmp.so), whether set by the options above or\n"
"    directly in the environment:\n"
"\n"
"    GMP_MAXPROCS=N\n"
"        Number of Ps, i.e. how many green threads run in parallel.  Default:\n"
"        the number of CPUs in the process's sched_getaffinity mask, lowered\n"
"        to the CPU quota of its cgroup (cgroup v2 cpu.max, or cgroup v1\n"
"        cpu.cfs_quota_us / cpu.cfs_period_us).\n"
"\n"
"    GMP_STACK_SIZE=SIZE\n"
"        Default stack size of a thread, in bytes with an optional K/M/G\n"
"        suffix.  Default: what NPTL would use, i.e. RLIMIT_STACK (ulimit -s,\n"
"        usually 8 MiB).  Stacks are reserved address space and are only\n"
"        backed by memory as they are touched.  A size the program asks for\n"
"        with pthread_attr_setstacksize still wins.\n"
"\n"
"    GMP_DEBUG=KEY=VALUE[,KEY=VALUE...]\n"
"        Comma-separated debug settings:\n"
"          guardlimit=N  use mprotect guard pages for at most N thread\n"
"                        stacks, then a canary word at the stack limit,\n"
"                        checked at every context switch.  Default: guard\n"
"                        regions (MADV_GUARD_INSTALL, Linux >= 6.13), which\n"
"                        give every stack a guard page without using a\n"
"                        memory mapping each; on older kernels, mprotect\n"
"                        guards within a budget derived from\n"
"                        vm.max_map_count.\n"
"          asyncpreemptoff=1  no asynchronous preemption of threads that\n"
"                        compute for over 10 ms (as Go's GODEBUG).\n"
"          maxthreads=N  at most N OS threads (default 10000): threads\n"
"                        blocked in system calls each hold one; at the\n"
"                        limit the others wait for one to return.\n"
"          schedtrace=MS print a Go-style SCHED line every MS ms\n"
"                        (to GMP_TRACEFILE if set, else stderr).\n"
"          scheddetail=1 with schedtrace, one line per P, M and thread.\n"
"          stats=1       print scheduler counters at exit.\n"
"          verbose=1     verbose output, as with GMP_VERBOSE=1.\n"
"\n"
"    GMP_VERBOSE=1\n"
"        Print the libgmp version and the resolved settings when the\n"
"        program starts.\n"
"\n"
"    GMP_DISABLE=1\n"
"        Load libgmp but pass every call through to the native pthreads:\n"
"        threads are ordinary NPTL threads.  Distinguishes a problem in the\n"
"        scheduler from one caused merely by the preload.\n"
"\n"
"    Read by gmp-run itself:\n"
"\n"
"    GMP_LIB=PATH\n"
"        The libgmp.so to preload when --lib is not given.\n"
"\n"
"    LD_PRELOAD\n"
"        An existing LD_PRELOAD is kept; libgmp is put first.\n"
"\n", stdout);
    fputs(
"LIBRARY\n"
"    The library to preload is the first of:\n"
"      1. the --lib PATH option;\n"
"      2. the GMP_LIB environment variable;\n"
"      3. libgmp.so in the directory of the gmp-run executable (this finds\n"
"         the library in a build directory);\n"
"      4. " GMP_PKGLIBDIR "/" LIBNAME " (the installed copy).\n"
"    A library named by --lib or GMP_LIB must exist; it is not silently\n"
"    replaced by another one.  It must be a readable x86_64 ELF shared object.\n"
"\n", stdout);
    fputs(
"LIMITATIONS\n"
"    LD_PRELOAD only reaches dynamically linked x86_64 programs.  gmp-run\n"
"    refuses (exit status 126), rather than silently running natively:\n"
"      - statically linked programs (no program interpreter);\n"
"      - set-user-ID / set-group-ID programs, and programs with file\n"
"        capabilities, that would change the user's privileges: the dynamic\n"
"        loader ignores LD_PRELOAD for them;\n"
"      - 32-bit and non-x86_64 programs: libgmp is x86_64 only.\n"
"    Use --native to run such programs without libgmp.  Scripts (#!) are\n"
"    accepted: their interpreter gets the preload, and so does every\n"
"    program they start.\n"
"\n"
"EXIT STATUS\n"
"    The exit status of COMMAND; otherwise 2 for a usage error, 126 if\n"
"    COMMAND cannot be run (or cannot be run under libgmp), 127 if COMMAND\n"
"    or libgmp.so cannot be found.\n"
"\n", stdout);
    fputs(
"EXAMPLES\n"
"    gmp-run -- ./server 8080\n"
"        Run ./server with green threads, one P per available CPU.\n"
"\n"
"    gmp-run --maxprocs 2 --verbose -- ./myprog\n"
"        Use two Ps and print the runtime's settings at start.\n"
"\n"
"    gmp-run --native -- ./myprog\n"
"        Run ./myprog on native pthreads, for comparison.\n"
"\n"
"    gmp-run --stack-size 256K --debug guardlimit=10000 -- ./manythreads\n"
"        Smaller default stacks; guard pages for the first 10000 threads.\n"
"\n"
"VERSION\n"
"    gmp-run (libgmp) " GMP_VERSION_STRING "\n",
        stdout);
}

/* ------------------------------------------------------------------------ */
/* Option values                                                            */

/* Strict unsigned decimal: digits only, no sign, no spaces. */
static bool parse_u64(const char *s, const char **end, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return true;
}

static bool parse_number(const char *s, unsigned long long *out)
{
    const char *end;
    return parse_u64(s, &end, out) && *end == '\0';
}

static unsigned long long check_maxprocs(const char *s)
{
    unsigned long long v;
    if (!parse_number(s, &v) || v < MAXPROCS_MIN || v > MAXPROCS_MAX)
        die(EXIT_USAGE, "--maxprocs: '%s' is not a number in %d..%d",
            s, MAXPROCS_MIN, MAXPROCS_MAX);
    return v;
}

static unsigned long long check_stack_size(const char *s)
{
    const char *end;
    unsigned long long v, mul = 1;
    bool ok = parse_u64(s, &end, &v);
    if (ok) {
        switch (*end) {
        case '\0':           break;
        case 'k': case 'K':  mul = 1ULL << 10; end++; break;
        case 'm': case 'M':  mul = 1ULL << 20; end++; break;
        case 'g': case 'G':  mul = 1ULL << 30; end++; break;
        default:             ok = false; break;
        }
    }
    if (ok && (*end != '\0' || v > ULLONG_MAX / mul))
        ok = false;
    if (ok) {
        v *= mul;
        ok = v >= STACK_MIN && v <= STACK_MAX;
    }
    if (!ok)
        die(EXIT_USAGE, "--stack-size: '%s' is not a size in 16K..1G "
            "(bytes, optional K/M/G suffix)", s);
    return v;
}

/* GMP_DEBUG: KEY=VALUE[,KEY=VALUE...].  Syntax is checked strictly, known
 * keys have their values checked, unknown keys are passed on with a
 * warning (a newer runtime may know them). */
static void check_debug(const char *s)
{
    if (*s == '\0')
        die(EXIT_USAGE, "--debug: empty; expected KEY=VALUE[,KEY=VALUE...] "
            "(keys: asyncpreemptoff, guardlimit, maxthreads, schedtrace, scheddetail, stats, verbose)");

    /* Walked by hand, not with strtok, so that "a=1,,b=2" is an error. */
    char *copy = xstrdup(s);
    char *item = copy;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';

        char *eq = strchr(item, '=');
        if (!eq || eq == item || eq[1] == '\0')
            die(EXIT_USAGE, "--debug: '%s'%s%s%s is not KEY=VALUE "
                "(keys: asyncpreemptoff, guardlimit, maxthreads, schedtrace, scheddetail, stats, verbose)", item,
                strcmp(item, s) ? " (in '" : "", strcmp(item, s) ? s : "",
                strcmp(item, s) ? "')" : "");
        *eq = '\0';
        const char *key = item, *val = eq + 1;

        for (const char *k = key; *k; k++)
            if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
                  *k == '_'))
                die(EXIT_USAGE, "--debug: '%s' is not a valid key "
                    "(lower-case letters, digits, '_')", key);

        unsigned long long v;
        if (strcmp(key, "guardlimit") == 0) {
            if (!parse_number(val, &v) || v > 1000000000ULL)
                die(EXIT_USAGE, "--debug: guardlimit: '%s' is not a number "
                    "in 0..1000000000", val);
        } else if (strcmp(key, "schedtrace") == 0) {
            if (!parse_number(val, &v) || v > 3600000)
                die(EXIT_USAGE, "--debug: schedtrace: '%s' is not a number "
                    "of milliseconds in 0..3600000", val);
        } else if (strcmp(key, "scheddetail") == 0 || strcmp(key, "stats") == 0) {
            if (!parse_number(val, &v) || v > 1)
                die(EXIT_USAGE, "--debug: %s: '%s' is not 0 or 1", key, val);
        } else if (strcmp(key, "maxthreads") == 0) {
            if (!parse_number(val, &v) || v < 2 || v > 1000000)
                die(EXIT_USAGE, "--debug: maxthreads: '%s' is not a number "
                    "in 2..1000000", val);
        } else if (strcmp(key, "asyncpreemptoff") == 0) {
            if (!parse_number(val, &v) || v > 1)
                die(EXIT_USAGE, "--debug: asyncpreemptoff: '%s' is not 0 "
                    "or 1", val);
        } else if (strcmp(key, "verbose") == 0) {
            if (!parse_number(val, &v) || v > 9)
                die(EXIT_USAGE, "--debug: verbose: '%s' is not a number "
                    "in 0..9", val);
        } else {
            msg("warning: --debug: unknown key '%s' (known: guardlimit, "
                "maxthreads, schedtrace, scheddetail, stats, verbose, asyncpreemptoff); passing it on", key);
        }

        if (!comma)
            break;
        item = comma + 1;
    }
    free(copy);
}

static bool read_full(int fd, void *buf, size_t n)
{
    char *b = buf;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool read_at(int fd, uint64_t off, void *buf, size_t n)
{
    if (off > (uint64_t)INT64_MAX ||
        lseek(fd, (off_t)off, SEEK_SET) == (off_t)-1)
        return false;
    return read_full(fd, buf, n);
}

/* Read the ELF64 header and program headers of FD (whose e_ident is
 * already known to be ELF64, little-endian).  Returns NULL, with *PH
 * malloc'ed, or a short description of what is malformed. */
static const char *read_elf64(int fd, Elf64_Ehdr *eh, Elf64_Phdr **ph,
                              uint64_t *phnum)
{
    if (!read_at(fd, 0, eh, sizeof *eh))
        return "truncated ELF header";

    /* With more than 0xfffe program headers the real count is in sh_info
     * of section header 0 (PN_XNUM). */
    uint64_t n = eh->e_phnum;
    if (n == PN_XNUM) {
        Elf64_Shdr sh0;
        if (eh->e_shoff == 0 || eh->e_shentsize != sizeof sh0 ||
            !read_at(fd, eh->e_shoff, &sh0, sizeof sh0))
            return "bad program header count";
        n = sh0.sh_info;
    }
    if (n == 0 || eh->e_phoff == 0 ||
        eh->e_phentsize != sizeof(Elf64_Phdr) || n > (1u << 20))
        return "bad program headers";
    size_t bytes = (size_t)n * sizeof(Elf64_Phdr);
    *ph = xmalloc(bytes);
    if (!read_at(fd, eh->e_phoff, *ph, bytes)) {
        free(*ph);
        *ph = NULL;
        return "truncated program headers";
    }
    *phnum = n;
    return NULL;
}

/* Does the dynamic section say DF_1_PIE?  ld.so refuses to preload (or
 * dlopen) a position-independent executable. */
static bool elf64_is_pie(int fd, const Elf64_Phdr *ph, uint64_t phnum)
{
    for (uint64_t i = 0; i < phnum; i++) {
        if (ph[i].p_type != PT_DYNAMIC)
            continue;
        uint64_t count = ph[i].p_filesz / sizeof(Elf64_Dyn);
        if (count > 65536)
            count = 65536;
        Elf64_Dyn *dyn = xmalloc((size_t)count * sizeof *dyn);
        bool pie = false;
        if (read_at(fd, ph[i].p_offset, dyn, (size_t)count * sizeof *dyn))
            for (uint64_t j = 0; j < count && dyn[j].d_tag != DT_NULL; j++)
                if (dyn[j].d_tag == DT_FLAGS_1 &&
                    (dyn[j].d_un.d_val & DF_1_PIE))
                    pie = true;
        free(dyn);
        return pie;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Finding the library                                                      */

/* Is PATH a readable x86_64 ELF shared object?  On failure returns false
 * with *why set to a short reason.  A library the loader cannot use is
 * only a warning from ld.so ("cannot be preloaded ... ignored") and the
 * program would quietly run natively, so check here. */
static bool usable_library(const char *path, const char **why)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        *why = strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return false;
    }
    unsigned char ident[EI_NIDENT];
    Elf64_Ehdr eh;
    Elf64_Phdr *ph = NULL;
    uint64_t phnum = 0;
    bool ok = false;
    if (!read_at(fd, 0, ident, sizeof ident) ||
        memcmp(ident, ELFMAG, SELFMAG) != 0)
        *why = "not an ELF file";
    else if (ident[EI_CLASS] != ELFCLASS64 || ident[EI_DATA] != ELFDATA2LSB)
        *why = "not an x86_64 (64-bit) ELF file";
    else if ((*why = read_elf64(fd, &eh, &ph, &phnum)) != NULL)
        ;
    else if (eh.e_machine != EM_X86_64)
        *why = "not an x86_64 (64-bit) ELF file";
    else if (eh.e_type != ET_DYN)
        *why = "not a shared object";
    else if (elf64_is_pie(fd, ph, phnum))
        *why = "a program (PIE), not a shared library";
    else
        ok = true;
    free(ph);
    close(fd);
    return ok;
}

/* Directory of this executable, from /proc/self/exe; NULL if unknown. */
static char *self_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    if (slash == buf)
        slash[1] = '\0';            /* "/gmp-run" -> "/" */
    else
        *slash = '\0';
    return xstrdup(buf);
}

static char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    char *p = xmalloc(dl + nl + 2);
    memcpy(p, dir, dl);
    if (!slash)
        p[dl++] = '/';
    memcpy(p + dl, name, nl + 1);
    return p;
}

/* Absolute path of a usable library, or exit 127.  If QUIET, return NULL
 * instead of exiting (used by --native, which only wants to know which
 * library to strip from LD_PRELOAD). */
static char *find_library(const char *opt_lib, bool quiet)
{
    const char *why = NULL;
    const char *explicit_src = NULL, *explicit_path = NULL;

    if (opt_lib) {
        explicit_src = "--lib";
        explicit_path = opt_lib;
    } else {
        const char *env = getenv("GMP_LIB");
        if (env && *env) {
            explicit_src = "GMP_LIB";
            explicit_path = env;
        }
    }

    char *found = NULL;
    if (explicit_path) {
        if (!usable_library(explicit_path, &why)) {
            if (quiet)
                return NULL;
            die(EXIT_NOT_FOUND, "cannot use library %s (from %s): %s",
                explicit_path, explicit_src, why);
        }
        found = xstrdup(explicit_path);
    } else {
        char *dir = self_dir();
        char *cand[2] = { dir ? join(dir, LIBNAME) : NULL,
                          join(GMP_PKGLIBDIR, LIBNAME) };
        const char *whys[2] = { "cannot read /proc/self/exe", NULL };
        for (int i = 0; i < 2 && !found; i++)
            if (cand[i] && usable_library(cand[i], &whys[i]))
                found = xstrdup(cand[i]);
        if (!found) {
            if (quiet)
                return NULL;
            die(EXIT_NOT_FOUND, "cannot find " LIBNAME ": tried %s (%s), "
                "%s (%s); use --lib PATH or set GMP_LIB",
                cand[0] ? cand[0] : "<directory of gmp-run>", whys[0],
                cand[1], whys[1]);
        }
        free(cand[0]);
        free(cand[1]);
        free(dir);
    }

    /* LD_PRELOAD needs an absolute path: a relative one would be resolved
     * against whatever directory the program (or its children) is in. */
    char *abs = realpath(found, NULL);
    if (!abs) {
        if (quiet)
            return NULL;
        die(EXIT_NOT_FOUND, "cannot resolve library path %s: %s",
            found, strerror(errno));
    }
    free(found);
    if (strpbrk(abs, " :\t\n")) {
        if (quiet)
            return NULL;
        die(EXIT_NOT_FOUND, "library path '%s' contains a space or ':', "
            "which LD_PRELOAD cannot express; move or symlink it", abs);
    }
    return abs;
}

/* ------------------------------------------------------------------------ */
/* LD_PRELOAD                                                               */

static bool same_file(const char *a, const struct stat *b)
{
    struct stat st;
    return stat(a, &st) == 0 && st.st_dev == b->st_dev &&
           st.st_ino == b->st_ino;
}

/* Existing LD_PRELOAD (separated by spaces or colons, as ld.so reads it)
 * rebuilt space-separated, without entries that are LIB, and with LIB
 * first if PREPEND.  Returns NULL if the result is empty. */
static char *build_preload(const char *lib, bool prepend)
{
    const char *old = getenv("LD_PRELOAD");
    struct stat lib_st;
    bool have_st = lib && stat(lib, &lib_st) == 0;

    size_t cap = (old ? strlen(old) : 0) + (lib ? strlen(lib) : 0) + 2;
    char *out = xmalloc(cap);
    size_t len = 0;
    out[0] = '\0';

    if (prepend && lib) {
        len = strlen(lib);
        memcpy(out, lib, len + 1);
    }
    if (old) {
        char *copy = xstrdup(old), *save = NULL;
        for (char *tok = strtok_r(copy, " :\t\n", &save); tok;
             tok = strtok_r(NULL, " :\t\n", &save)) {
            if (lib && (strcmp(tok, lib) == 0 ||
                        (have_st && same_file(tok, &lib_st))))
                continue;
            size_t tl = strlen(tok);
            if (len)
                out[len++] = ' ';
            memcpy(out + len, tok, tl + 1);
            len += tl;
        }
        free(copy);
    }
    if (len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* Finding and inspecting the command                                       */

/* Resolve NAME like execvp: used as is if it contains '/', else the first
 * executable regular file in PATH.  Returns a path containing '/' (so a
 * later execvp does not search again), or exits 127/126. */
static char *resolve_command(const char *name)
{
    if (*name == '\0')
        die(EXIT_NOT_FOUND, "'': command not found");
    if (strchr(name, '/'))
        return xstrdup(name);

    const char *path = getenv("PATH");
    char defpath[256];
    if (!path) {
        size_t n = confstr(_CS_PATH, defpath, sizeof defpath);
        path = (n > 0 && n <= sizeof defpath) ? defpath : "/bin:/usr/bin";
    }

    bool saw_eacces = false;
    const char *p = path;
    for (;;) {
        const char *colon = strchrnul(p, ':');
        size_t dl = (size_t)(colon - p);
        char *dir = xmalloc(dl + 1);
        memcpy(dir, p, dl);
        dir[dl] = '\0';
        /* An empty PATH element means the current directory. */
        char *cand = join(dl ? dir : ".", name);
        free(dir);

        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0)
                return cand;
            if (errno == EACCES)
                saw_eacces = true;
        }
        free(cand);
        if (*colon == '\0')
            break;
        p = colon + 1;
    }
    if (saw_eacces)
        die(EXIT_CANNOT_EXEC, "%s: %s", name, strerror(EACCES));
    die(EXIT_NOT_FOUND, "%s: command not found", name);
}

static const char *machine_name(unsigned m)
{
    switch (m) {
    case EM_386:     return "i386";
    case EM_X86_64:  return "x86_64";
    case EM_AARCH64: return "aarch64";
    case EM_ARM:     return "arm";
    case EM_RISCV:   return "riscv";
    case EM_PPC64:   return "ppc64";
    case EM_S390:    return "s390";
    default:         return "another architecture";
    }
}

/* Would exec'ing a file with this stat run with other credentials than
 * ours?  That is what makes the kernel set AT_SECURE, and then ld.so
 * ignores LD_PRELOAD.  (Root running a set-user-ID-root program keeps its
 * credentials, and the bits are ignored on a nosuid mount.) */
static void check_privileges(const char *path, const struct stat *st)
{
    /* Nothing to check: no set-ID bits, and root gains nothing from file
     * capabilities. */
    if (!(st->st_mode & (S_ISUID | S_ISGID)) && getuid() == 0)
        return;

    struct statvfs vfs;
    bool nosuid = statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);

    if (!nosuid && (st->st_mode & S_ISUID) && st->st_uid != getuid())
        die(EXIT_CANNOT_EXEC, "%s is set-user-ID (owner uid %u): the dynamic "
            "loader ignores LD_PRELOAD for it, so libgmp cannot be loaded; "
            "run it natively (--native)", path, (unsigned)st->st_uid);
    /* S_ISGID without group-execute means mandatory locking, not setgid. */
    if (!nosuid && (st->st_mode & S_ISGID) && (st->st_mode & S_IXGRP) &&
        st->st_gid != getgid())
        die(EXIT_CANNOT_EXEC, "%s is set-group-ID (group gid %u): the dynamic "
            "loader ignores LD_PRELOAD for it, so libgmp cannot be loaded; "
            "run it natively (--native)", path, (unsigned)st->st_gid);

    /* File capabilities raise privileges for a non-root user as well. */
    if (!nosuid && getuid() != 0 &&
        getxattr(path, "security.capability", NULL, 0) > 0)
        die(EXIT_CANNOT_EXEC, "%s has file capabilities: the dynamic loader "
            "ignores LD_PRELOAD for it, so libgmp cannot be loaded; run it "
            "natively (--native)", path);
}

/* Refuse (exit 126) a program LD_PRELOAD cannot reach.  Files we cannot
 * open or that are not ELF are left to execve to judge. */
static void inspect_command(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;                                   /* execve reports it */
    if (S_ISDIR(st.st_mode))
        die(EXIT_CANNOT_EXEC, "%s: %s", path, strerror(EISDIR));
    if (!S_ISREG(st.st_mode))
        return;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;             /* e.g. execute-only (mode 0711): can't look */

    unsigned char ident[EI_NIDENT];
    ssize_t n;
    do
        n = read(fd, ident, sizeof ident);
    while (n < 0 && errno == EINTR);

    if (n >= 2 && ident[0] == '#' && ident[1] == '!') {
        close(fd);                 /* script: its interpreter gets libgmp */
        return;
    }
    if (n < SELFMAG || memcmp(ident, ELFMAG, SELFMAG) != 0) {
        close(fd);                 /* not ELF: execve/sh decide */
        return;
    }
    if (n < EI_NIDENT) {
        close(fd);
        die(EXIT_CANNOT_EXEC, "%s: malformed ELF file (truncated header)",
            path);
    }

    if (ident[EI_CLASS] == ELFCLASS32) {
        close(fd);
        die(EXIT_CANNOT_EXEC, "%s is a 32-bit ELF program: libgmp is x86_64 "
            "(64-bit) only; run it natively (--native)", path);
    }
    if (ident[EI_CLASS] != ELFCLASS64 || ident[EI_DATA] != ELFDATA2LSB) {
        close(fd);
        die(EXIT_CANNOT_EXEC, "%s is not a 64-bit little-endian ELF program: "
            "libgmp is x86_64 only; run it natively (--native)", path);
    }

    Elf64_Ehdr eh;
    Elf64_Phdr *ph = NULL;
    uint64_t phnum = 0;
    const char *bad = read_elf64(fd, &eh, &ph, &phnum);
    close(fd);
    if (bad)
        die(EXIT_CANNOT_EXEC, "%s: malformed ELF file (%s)", path, bad);
    if (eh.e_machine != EM_X86_64)
        die(EXIT_CANNOT_EXEC, "%s is an ELF program for %s: libgmp is x86_64 "
            "only; run it natively (--native)", path,
            machine_name(eh.e_machine));
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
        die(EXIT_CANNOT_EXEC, "%s: ELF file is not an executable (e_type %u)",
            path, (unsigned)eh.e_type);

    bool interp = false;
    for (uint64_t i = 0; i < phnum; i++)
        if (ph[i].p_type == PT_INTERP)
            interp = true;
    free(ph);
    if (!interp)
        die(EXIT_CANNOT_EXEC, "%s is statically linked%s: LD_PRELOAD cannot "
            "reach it; run it natively (--native)", path,
            eh.e_type == ET_DYN ? " (no program interpreter)" : "");

    check_privileges(path, &st);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */

static void set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1) != 0)
        die(EXIT_NOT_FOUND, "cannot set %s: %s", name, strerror(errno));
}

/* "--opt VALUE" or "--opt=VALUE": if ARGV[*I] is OPT, return its value
 * (advancing *I past a separate value); else NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
    const char *a = argv[*i];
    size_t ol = strlen(opt);
    if (strncmp(a, opt, ol) != 0)
        return NULL;
    if (a[ol] == '=')
        return a + ol + 1;
    if (a[ol] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        die(EXIT_USAGE, "%s needs a value (see gmp-run --help)", opt);
    return argv[++*i];
}

int main(int argc, char **argv)
{
    const char *maxprocs = NULL, *stack = NULL, *debug = NULL, *lib = NULL;
    bool verbose = false, native = false;
    int i = 1;

    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;                              /* the command */
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help();
            return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
        }
        if (strcmp(a, "--version") == 0) {
            print_version();
            return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
        }
        if (strcmp(a, "--verbose") == 0) {
            verbose = true;
            continue;
        }
        if (strcmp(a, "--native") == 0) {
            native = true;
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--maxprocs"))) {
            check_maxprocs(v);
            maxprocs = v;
        } else if ((v = opt_value(argc, argv, &i, "--stack-size"))) {
            check_stack_size(v);
            stack = v;
        } else if ((v = opt_value(argc, argv, &i, "--debug"))) {
            check_debug(v);
            debug = v;
        } else if ((v = opt_value(argc, argv, &i, "--lib"))) {
            if (*v == '\0')
                die(EXIT_USAGE, "--lib: empty path");
            lib = v;
        } else {
            die(EXIT_USAGE, "unknown option '%s' (see gmp-run --help)", a);
        }
    }
    if (i >= argc)
        die(EXIT_USAGE, "no command given (usage: gmp-run [options] [--] "
            "command [args...]; see gmp-run --help)");

    char **cmd = argv + i;
    char *path = resolve_command(cmd[0]);

    /* Knobs first: they are set for --native too, so a comparison run sees
     * the same environment apart from the preload. */
    if (maxprocs)
        set_env("GMP_MAXPROCS", maxprocs);
    if (stack) {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", check_stack_size(stack));
        set_env("GMP_STACK_SIZE", buf);
    }
    if (debug)
        set_env("GMP_DEBUG", debug);
    if (verbose)
        set_env("GMP_VERBOSE", "1");

    char *libpath = NULL;
    if (native) {
        /* Drop a libgmp an outer gmp-run (or the user) already put there. */
        libpath = find_library(lib, true);
        char *pre = build_preload(libpath, false);
        if (pre)
            set_env("LD_PRELOAD", pre);
        else
            unsetenv("LD_PRELOAD");
        if (verbose)
            msg("running %s natively (without libgmp)", path);
        free(pre);
    } else {
        libpath = find_library(lib, false);
        inspect_command(path);
        char *pre = build_preload(libpath, true);
        set_env("LD_PRELOAD", pre);
        if (verbose)
            msg("preloading %s into %s", libpath, path);
        free(pre);
    }
    free(libpath);

    fflush(NULL);
    /* PATH contains a '/', so execvp does not search again; it still runs
     * a file without #! or ELF magic through /bin/sh, like a shell. */
    execvp(path, cmd);
    int err = errno;
    msg("%s: %s", cmd[0], strerror(err));
    return err == EACCES || err == ENOEXEC || err == EISDIR ||
           err == ETXTBSY ? EXIT_CANNOT_EXEC : EXIT_NOT_FOUND;
}
