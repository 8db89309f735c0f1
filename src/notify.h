/* notify.h: the sd_notify protocol in both directions. Workers send READY=1/STATUS=/
 * STOPPING=1/WATCHDOG=1 to the supervisor's own NOTIFY_SOCKET; the supervisor reports upstream to
 * systemd with sd_notify(). Parsing is pure; the socket functions are the thin shell. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NOTIFY_MAX_MESSAGE 4096
#define NOTIFY_MAX_STATUS 256

struct notify_message {
        bool ready;
        bool watchdog; /* WATCHDOG=1: the worker is alive */
        bool watchdog_trigger; /* WATCHDOG=trigger: the worker asks to be treated as hung */
        bool has_watchdog_usec; /* WATCHDOG_USEC=N: the worker's own timeout from now on */
        uint64_t watchdog_usec;
        bool has_status;
        char status[NOTIFY_MAX_STATUS];
};

/* Parses newline-separated KEY=VALUE assignments. Unknown keys are ignored, as systemd
 * does; a message with a NUL byte or a line without '=' is rejected with -EBADMSG. */
int notify_parse(const char *data, size_t len, struct notify_message *ret);

/* Creates the worker-facing socket at PATH (replacing a stale file), mode 0666 because
 * senders are identified by their kernel-checked credentials, not by file permissions.
 * Returns the fd or a negative errno. */
int notify_open(const char *path);

/* Reads one datagram. Returns 1 with the sender's pid and the data, 0 when nothing is
 * pending, a negative errno on failure. Datagrams without credentials are dropped (0). */
int notify_receive(int fd, pid_t *ret_pid, char *buf, size_t size, size_t *ret_len);
