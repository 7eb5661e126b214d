/* Shared by the integration test programs (ordinary programs: nothing
 * here knows of libgmp). CHECK fails the test with a located message;
 * ename prints an error number by name so that outputs compare across
 * runs. */
#ifndef IT_CHECK_H
#define IT_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fflush(stdout);                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

static inline const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EBUSY: return "EBUSY";
    case EDEADLK: return "EDEADLK";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EAGAIN: return "EAGAIN";
    case ENOTSUP: return "ENOTSUP";
    case EOWNERDEAD: return "EOWNERDEAD";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    case EOVERFLOW: return "EOVERFLOW";
    case EINTR: return "EINTR";
    case ESRCH: return "ESRCH";
    case ERANGE: return "ERANGE";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno-%d", e);
        return buf;
    }
    }
}

#endif
