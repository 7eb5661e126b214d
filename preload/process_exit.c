/*
 * _exit and _Exit: the process ends without atexit handlers, which is
 * where a GMP_TRACE file is completed (sched/traceev.c). Complete it
 * first, then end the process as glibc's _exit does (exit_group). exit()
 * itself runs the atexit handlers and then calls glibc's internal _exit,
 * which does not come through here.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

static _Noreturn void exit_now(int status)
{
  gmp_tev_finish(); /* no-op unless tracing, and only in the traced process */
  for (;;)
    gmp_sys1(SYS_exit_group, status);
}

GMP_EXPORT _Noreturn void _exit(int status) { exit_now(status); }

GMP_EXPORT _Noreturn void _Exit(int status) { exit_now(status); }
