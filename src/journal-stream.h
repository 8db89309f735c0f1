/* journal-stream.h: journald's stream protocol, the way systemd connects a service's
 * stdout and stderr: is an fd the stream $JOURNAL_STREAM names, and a new stream of our
 * own (for a worker, from the worker's side, so that journald records it as _PID). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Parses $JOURNAL_STREAM's "DEV:INO" (decimal, as systemd writes it). 0 or -EINVAL. */
int journal_stream_parse(const char *value, dev_t *ret_dev, ino_t *ret_ino);

/* Whether FD is the journal stream $JOURNAL_STREAM describes (sd-daemon(3): compare the
 * fd's st_dev:st_ino with it). False when the variable is unset or malformed. */
bool journal_stream_is(int fd);

/* The header journald's stdout socket reads before the log lines: identifier, unit id
 * (empty: journald finds the unit from the peer's cgroup), default priority, level
 * prefix, and no forwarding to syslog, kmsg or console. Returns its length, or -ENOBUFS
 * (-EINVAL for an identifier with a newline). Allocation-free. */
int journal_stream_header(char *buf, size_t size, const char *identifier, int priority, bool level_prefix);

/* The stdout socket of the journal: /run/systemd/journal/stdout, or the namespace's when
 * $LOG_NAMESPACE is set (LogNamespace=). Writes it to BUF; -ENOBUFS when too long. */
int journal_stream_path(char *buf, size_t size);

/* Connects to PATH and sends the header. Never blocks: a journald too busy to accept
 * (a full backlog) is an error like any other, -EAGAIN. Allocation-free and safe after
 * fork(). Returns the fd (close-on-exec, blocking once connected) or a negative errno. */
int journal_stream_connect(const char *path, const char *identifier, int priority, bool level_prefix);

/* Writes "DEV:INO" of FD's stream into BUF, as $JOURNAL_STREAM. Allocation-free. */
int journal_stream_format(int fd, char *buf, size_t size);
