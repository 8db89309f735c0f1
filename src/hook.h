/* hook.h: the pre-upgrade hook (contract section 3), run asynchronously on the event
 * loop so the supervisor keeps serving while it works. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct hook;

/* Called once: success with new_target (NULL when the hook printed no path) or failure
 * with a reason (the hook's last stderr line, or what went wrong). The hook is freed
 * right after the callback returns. */
typedef void (*hook_done_t)(void *userdata, bool success, const char *reason, const char *new_target);

int hook_start(sd_event *event, const char *program, const char *target, const char *instance, const char *previous,
               uint64_t timeout_usec, hook_done_t done, void *userdata, struct hook **ret);

/* Kills the hook's process group and frees it, without calling done. */
void hook_cancel(struct hook *h);

/* Pure helper: the last non-empty line of BUF (no trailing newline), or NULL. */
char *hook_last_line(const char *buf, size_t len);
