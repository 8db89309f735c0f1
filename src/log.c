/* log.c: one line per event. On stderr with an sd-daemon priority prefix for journald, or,
 * when stderr is the service's journal stream, as a native journal entry with structured
 * fields (LIVESWAP_INSTANCE=, LIVESWAP_GENERATION=, WORKER_PID=), falling back to the
 * prefixed line when journald does not take it. Never allocates: it must work when memory
 * or fds have run out. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION /* every entry would name log.c */
#include <systemd/sd-journal.h>

#include "journal-stream.h"
#include "log.h"

static bool use_prefix = true;
static bool use_journal = false;
static int max_level = LOG_INFO;
static char instance[256];

void log_open(void) {
        use_prefix = getenv("JOURNAL_STREAM") || !isatty(STDERR_FILENO);
        /* sd_journal_send() knows only the default namespace: with LogNamespace= the
         * lines keep to the stream, which goes to the namespace's journal. */
        const char *ns = getenv("LOG_NAMESPACE");
        /* sd_journal_send() reports success when journald's socket does not exist, so
         * that is checked here: without it the lines stay on the stream. */
        use_journal =
                journal_stream_is(STDERR_FILENO) && !(ns && *ns) && access("/run/systemd/journal/socket", W_OK) == 0;
        const char *l = getenv("LIVESWAP_LOG_LEVEL");
        if (l && strcmp(l, "debug") == 0)
                max_level = LOG_DEBUG;
}

void log_set_instance(const char *name) {
        snprintf(instance, sizeof(instance), "%s", name ?: "");
}

/* One KEY=VALUE of an entry in BUF, truncated to fit. */
static struct iovec field(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static struct iovec field(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        size_t len = n < 0 ? 0 : (size_t) n < size ? (size_t) n : size - 1;
        return (struct iovec){ .iov_base = buf, .iov_len = len };
}

/* The entry with its fields; false when journald did not take it. */
static bool send_to_journal(int level, int error, uint64_t generation, pid_t pid, const char *msg) {
        char message[2048 + 16], priority[16], identifier[32], inst[sizeof(instance) + 32], gen[48], wpid[32], err[32];
        struct iovec iov[7];
        int n = 0;
        iov[n++] = field(message, sizeof(message), "MESSAGE=%s", msg);
        iov[n++] = field(priority, sizeof(priority), "PRIORITY=%d", level);
        /* What systemd names a service's stream after (the executable's name), so that
         * these lines and those on the stream (before log_open(), from liveswap -u) agree. */
        iov[n++] = field(identifier, sizeof(identifier), "SYSLOG_IDENTIFIER=liveswap");
        if (instance[0])
                iov[n++] = field(inst, sizeof(inst), "LIVESWAP_INSTANCE=%s", instance);
        if (generation > 0)
                iov[n++] = field(gen, sizeof(gen), "LIVESWAP_GENERATION=%" PRIu64, generation);
        if (pid > 0)
                iov[n++] = field(wpid, sizeof(wpid), "WORKER_PID=%d", (int) pid);
        if (error > 0)
                iov[n++] = field(err, sizeof(err), "ERRNO=%d", error);
        return sd_journal_sendv(iov, n) >= 0;
}

static int log_internal(int level, int error, uint64_t generation, pid_t pid, const char *fmt, va_list ap) {
        static const char *const words[] = { "emergency", "alert",  "critical", "error",
                                             "warning",   "notice", "info",     "debug" };
        int saved = errno;
        error = error < 0 ? -error : error;
        if (level <= max_level) {
                char msg[2048];
                errno = error; /* so that %m works */
                vsnprintf(msg, sizeof(msg), fmt, ap);
                if (use_journal && send_to_journal(level, error, generation, pid, msg))
                        ;
                else if (use_prefix)
                        fprintf(stderr, "<%d>%s\n", level, msg);
                else if (level <= LOG_WARNING)
                        fprintf(stderr, "liveswap: %s: %s\n", words[level & 7], msg);
                else
                        fprintf(stderr, "liveswap: %s\n", msg);
        }
        errno = saved;
        return -error;
}

int log_full_errno(int level, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = log_internal(level, error, 0, 0, fmt, ap);
        va_end(ap);
        return r;
}

void log_worker(int level, uint64_t generation, pid_t pid, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) log_internal(level, 0, generation, pid, fmt, ap);
        va_end(ap);
}

int log_worker_errno(int level, int error, uint64_t generation, pid_t pid, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = log_internal(level, error, generation, pid, fmt, ap);
        va_end(ap);
        return r;
}
