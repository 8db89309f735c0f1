/* engine-state.h: the engine's whole state as text and back, for a reexec (contract
 * section 11). engine-state.c describes the format and its versions. Pure: no I/O. */
#pragma once

#include <stddef.h>

#include "engine.h"

/* The engine's whole state as text: every generation (number, target, settings), every
 * worker with every field, pending respawns and the crash back-off per slot, slot health
 * (memory_max rate limit, watchdog), the counters, the state, previous target, last
 * result, what was last told to systemd and the start deadline: everything, so that a
 * restored engine behaves exactly as the original would have. Malloc'd, NUL-terminated.
 * Returns 0, -ENOMEM, or -EBUSY while actions are queued: the shell serialises only
 * after performing every queued action, since one left in the queue would be lost. */
int engine_serialize(const struct engine *e, char **ret_text);

/* Rebuilds an engine from TEXT (SIZE bytes, no NUL needed; untrusted: every count, length
 * and cross-reference is checked). Returns 0, -EINVAL (malformed: ERROR says what and on
 * which line), -EPROTONOSUPPORT (a format version newer than this program reads), or
 * -ENOMEM. On failure nothing is allocated. */
int engine_restore(const char *text, size_t size, struct engine **ret, char *error, size_t error_size);
