/*
 * Out-of-process symboliser: names code addresses of another running
 * process of the same user, for tools/gmp-schedtrace (start functions,
 * return addresses). Unlike dladdr it reads the ELF files themselves, so
 * it also names the static functions of the program's own binary.
 *
 * Not thread-safe: one gmp_symtab per thread of the tool.
 */
#ifndef GMP_TOOLS_SYMBOLIZE_H
#define GMP_TOOLS_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gmp_symtab; /* opaque */

/* Read /proc/PID/maps and prepare to symbolise addresses of that process.
 * NULL with errno set on failure (ESRCH no such process, EACCES, ENOMEM).
 * The ELF files are read lazily, on the first address that falls in them,
 * and each only once; the map is a snapshot: libraries the process loads
 * later are unknown to this table (open a new one). */
struct gmp_symtab *gmp_sym_open(pid_t pid);

/* Name addr: writes "func+0xOFF (basename-of-file)" or, when no symbol
 * covers it, "? (basename+0xFILEOFF)" or "?" when addr is in no file
 * mapping. Returns 1 when a symbol was found, 0 otherwise. Never fails
 * harder than that (unreadable file, stripped binary, bad address).
 * The text is truncated to len-1 bytes and always NUL-terminated (len > 0). */
int gmp_sym_name(struct gmp_symtab *st, uintptr_t addr, char *buf, size_t len);

/* Just the symbol (no offset, no file): for start functions. 1/0 as above.
 * When it returns 0 it writes the same fallback text as gmp_sym_name
 * ("? (basename+0xFILEOFF)" or "?"), so a caller needs only one call. */
int gmp_sym_func(struct gmp_symtab *st, uintptr_t addr, char *buf, size_t len);

void gmp_sym_close(struct gmp_symtab *st);

#endif
