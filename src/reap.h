/* reap.h: reaping a child just sent SIGKILL, without trusting that it dies. It cannot
 * refuse the signal, but a zombie held by a tracer (a debugger, LeakSanitizer's tracer)
 * cannot be reaped by its parent until the tracer lets go, and a process stuck in the
 * kernel (D state) dies only when it returns: an unbounded waitpid() would stop the
 * supervisor's event loop with it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How long reap_killed() callers give a killed child: dying takes microseconds. */
#define REAP_KILLED_USEC (1000 * 1000ULL)

/* Reaps PID (our child, already sent SIGKILL), waiting at most TIMEOUT_USEC. True when it
 * was reaped (or is not our child any more); false when it gave up, after a warning that
 * names WHAT ("the pre-upgrade hook") and says what the process is doing. The zombie then
 * stays until the supervisor exits. */
bool reap_killed(pid_t pid, uint64_t timeout_usec, const char *what);
