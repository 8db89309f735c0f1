/* log.h: logging to stderr. Under systemd (stderr not a terminal, or $JOURNAL_STREAM set)
 * each line carries the sd-daemon "<N>" priority prefix so journald keeps the level; on a
 * terminal the level is spelled out instead, which reads better for a person. When stderr
 * is the journal stream itself, lines go to journald as entries with structured fields
 * (SYSLOG_IDENTIFIER=liveswap, LIVESWAP_INSTANCE=, and for a line about a worker or a
 * generation LIVESWAP_GENERATION= and WORKER_PID=), so that `journalctl` can select them. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>

void log_open(void);
/* Names the instance in every entry from now on (LIVESWAP_INSTANCE=). */
void log_set_instance(const char *name);

/* Logs and returns -abs(error), so callers can write `return log_error_errno(r, ...)`. */
int log_full_errno(int level, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A line about a worker (PID > 0) or a generation (GENERATION > 0; 0 for neither). */
void log_worker(int level, uint64_t generation, pid_t pid, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int log_worker_errno(int level, int error, uint64_t generation, pid_t pid, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_oom() log_error_errno(ENOMEM, "Out of memory")
