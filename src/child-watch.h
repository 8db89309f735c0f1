/* child-watch.h: a child's exit, watched through a pidfd so that it is never lost.
 *
 * Why not sd_event_add_child(): sd-event registers the child's pidfd with EPOLLONESHOT,
 * and when the pidfd wakes while waitid() finds nothing to reap yet, it never looks
 * again. A zombie that a tracer holds is such a case (a ptraced zombie is visible to its
 * tracer only, until the tracer lets go; LeakSanitizer's tracer in sanitizer builds, a
 * debugger): its exit was lost, and a stop waited forever for a worker that was long a
 * zombie (found in CI, and reproduced: the supervisor asleep, its child a zombie). Here
 * the pidfd is watched level-triggered and, when it wakes early, looked at again after
 * a short delay that grows (10 ms up to 1 s) rather than in a busy loop. */
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct child_watch;

/* Called once, with the child still a zombie (so that its pid, and the process group
 * named after it, cannot have been reused yet); it is reaped when HANDLER returns.
 * HANDLER may free W. */
typedef void (*child_watch_handler_t)(struct child_watch *w, const siginfo_t *si, void *userdata);

/* Watches PID, a child of this process (0 or a negative errno). */
int child_watch_add(sd_event *event, struct child_watch **ret, pid_t pid, child_watch_handler_t handler,
                    void *userdata);

/* Stops watching (the child is not reaped); NULL-safe; returns NULL. */
struct child_watch *child_watch_free(struct child_watch *w);
