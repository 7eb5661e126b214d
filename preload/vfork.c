/*
 * vfork() is fork() here.
 *
 * A vfork child runs on its parent's memory, on the calling thread's
 * stack and TCB, until it execs or _exits. Through the wrappers it calls
 * meanwhile (CPython's subprocess child resets signal handlers and closes
 * fds before exec) it would act as the parent's green thread on the
 * parent's runtime state: the virtual signal dispositions (the parent
 * found SIGINT back at SIG_DFL and died of its own KeyboardInterrupt),
 * the fd table (fds the child closed would be dead for the parent's
 * threads), the parking lot. POSIX allows vfork to be fork ("the
 * behavior is undefined if the child modifies any data"); the child gets
 * its own copy, and the runtime's fork handlers make it a consistent
 * one-thread process. The price is a fork's page-table copy.
 *
 * glibc's posix_spawn makes its child with clone(CLONE_VM|CLONE_VFORK)
 * internally and calls only glibc-internal functions there: it needs no
 * such care.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "preload/preload.h"

GMP_EXPORT pid_t vfork(void)
{
  return fork();
}

GMP_EXPORT pid_t __vfork(void)
{
  return fork();
}
