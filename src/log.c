/* log.c: one line per event on stderr, with an sd-daemon priority prefix for journald.
 * Never allocates: it must work when memory or fds have run out. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static bool use_prefix = true;
static int max_level = LOG_INFO;

void log_open(void) {
        use_prefix = getenv("JOURNAL_STREAM") || !isatty(STDERR_FILENO);
        const char *l = getenv("LIVESWAP_LOG_LEVEL");
        if (l && strcmp(l, "debug") == 0)
                max_level = LOG_DEBUG;
}

int log_full_errno(int level, int error, const char *fmt, ...) {
        static const char *const words[] = { "emergency", "alert",  "critical", "error",
                                             "warning",   "notice", "info",     "debug" };
        int saved = errno;
        error = error < 0 ? -error : error;
        if (level <= max_level) {
                char msg[2048];
                va_list ap;
                va_start(ap, fmt);
                errno = error; /* so that %m works */
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
                if (use_prefix)
                        fprintf(stderr, "<%d>%s\n", level, msg);
                else if (level <= LOG_WARNING)
                        fprintf(stderr, "liveswap: %s: %s\n", words[level & 7], msg);
                else
                        fprintf(stderr, "liveswap: %s\n", msg);
        }
        errno = saved;
        return -error;
}
