/* log.h: logging to stderr. Under systemd (stderr not a terminal, or $JOURNAL_STREAM set)
 * each line carries the sd-daemon "<N>" priority prefix so journald keeps the level; on a
 * terminal the level is spelled out instead, which reads better for a person. */
#pragma once

#include <errno.h>
#include <syslog.h>

void log_open(void);

/* Logs and returns -abs(error), so callers can write `return log_error_errno(r, ...)`. */
int log_full_errno(int level, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_oom() log_error_errno(ENOMEM, "Out of memory")
