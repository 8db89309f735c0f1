/* macro.h: small helpers shared by every file (cleanup attributes, array size).
 * Header-only; nothing here may allocate or log. */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define USEC_INFINITY ((uint64_t) -1)
/* The accuracy given to every sd-event timer. 0 would mean sd-event's default of 250 ms,
 * which made each ready_delay, drain SIGKILL and respawn back-off up to 250 ms late (a
 * rolling upgrade with ready = delay took ~240 ms per step). Timers are armed only when a
 * deadline exists, so a small window costs no idle wake-ups. */
#define TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Frees a NULL-terminated array of strings and the array itself. */
static inline void strv_free(char **v) {
        if (!v)
                return;
        for (char **i = v; *i; i++)
                free(*i);
        free(v);
}
static inline void strv_freep(char ***v) {
        strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Takes ownership: returns the pointer and leaves NULL behind, so cleanup does nothing. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _taken = (p); \
                (p) = NULL;                 \
                _taken;                     \
        })
#define TAKE_FD(fd)                \
        ({                         \
                int _taken = (fd); \
                (fd) = -1;         \
                _taken;            \
        })
