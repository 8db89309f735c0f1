/* engine.h: the upgrade state machine — the single source of truth about generations and
 * workers. It takes events (a worker was spawned, became ready, exited; a timer fired; an
 * upgrade was requested) and queues actions (spawn, signal, upgrade finished, exit) that
 * the shell performs. It makes no syscalls and reads no clock: time comes in with every
 * event, so the unit tests can drive it event by event. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

enum engine_state {
        ENGINE_STARTING, /* first generation not yet fully ready */
        ENGINE_RUNNING,
        ENGINE_UPGRADING, /* includes the pre-upgrade hook phase */
        ENGINE_ROLLING_BACK,
        ENGINE_STOPPING,
        ENGINE_STOPPED, /* every worker is gone; the supervisor may exit */
};

enum worker_state {
        WORKER_STARTING,
        WORKER_READY,
        WORKER_DRAINING,
};

/* What the engine needs to know about a generation's settings. */
struct engine_settings {
        unsigned workers;
        enum strategy strategy;
        unsigned batch;
        enum ready_mode ready;
        uint64_t ready_delay_usec;
        uint64_t ready_timeout_usec;
        /* Canary: in an upgrade, the first batch (rolling) or the whole new generation
         * (blue-green, restart) must have stayed ready this long before the first old
         * worker drains (for restart, before the upgrade succeeds); 0 = off. The first
         * generation at start has no old code to protect and does not wait. */
        uint64_t stable_time_usec;
        int drain_signal;
        uint64_t drain_timeout_usec;
        enum kill_mode kill_mode; /* who gets the drain signal: the group or the main process */
        /* The first generation must be fully ready this long after engine_start(), or every
         * worker is stopped and ACTION_EXIT reports a failure; 0 = no bound. Read only
         * from the settings given to engine_start(). */
        uint64_t start_timeout_usec;
        /* Worker health (contract section 10). watchdog: each worker must send WATCHDOG=1
         * this often, from its spawn on; 0 = off. memory_max: bytes; a ready worker
         * reported above it is replaced (a new one first, then it drains); 0 = off. */
        uint64_t watchdog_usec;
        uint64_t memory_max;
};

struct engine_worker {
        uint64_t id; /* engine-assigned, never reused */
        pid_t pid; /* 0 until the shell reports the spawn */
        uint64_t generation;
        unsigned slot;
        enum worker_state state;
        char *target;
        uint64_t started_usec;
        uint64_t ready_usec;
        uint64_t deadline_usec; /* ready delay/timeout, or the drain kill; USEC_INFINITY if none */
        int drain_signal;
        uint64_t drain_timeout_usec;
        enum kill_mode kill_mode;
        bool killed; /* SIGKILL already sent */
        bool respawn_now; /* Restart(): replace at once when it exits */
        bool for_rollback; /* started to restore the old generation's strength */
        /* How often this slot of this generation was refilled: its previous worker died or
         * was killed (a crash, not ready in time, Restart(), and any other replacement)
         * and this one took its place. Scaling up, an upgrade's new generation and the
         * workers a rollback starts to regain strength begin at 0. */
        unsigned restarts;
        /* The watchdog: WATCHDOG=1 must come before watchdog_deadline_usec (USEC_INFINITY
         * when off). After a miss, aborted: SIGABRT was sent and the worker is draining
         * with 5 s left before its SIGKILL. */
        uint64_t watchdog_usec;
        uint64_t watchdog_deadline_usec;
        bool aborted;
        /* memory_max: the id of the worker of the same slot that this one is replacing
         * (it drains once this one is ready); 0 for an ordinary worker. */
        uint64_t replaces;
};

enum action_type {
        ACTION_SPAWN, /* worker_id, generation, slot: fork/exec, then report */
        ACTION_SIGNAL, /* pid, signal, group, purpose (and reason for a kill) */
        ACTION_WORKER_READY, /* pid, generation, slot: a worker became ready (for the log) */
        ACTION_WORKER_HEALTH, /* pid, generation, slot, reason: a worker's memory or watchdog
                               * made the engine act, or not act (for the log) */
        ACTION_READY, /* the first generation is fully ready (for the log; READY=1 is an ACTION_NOTIFY) */
        ACTION_NOTIFY, /* notify: what to tell systemd with sd_notify() */
        ACTION_UPGRADE_STARTED, /* generation */
        ACTION_UPGRADE_FINISHED, /* generation, success, reason; on success the generation
                                  * and target are already the new ones */
        ACTION_CANCEL_HOOK, /* stop the pre-upgrade hook, then call engine_abort_upgrade() */
        ACTION_START_FAILED, /* generation, reason: the first generation was not ready within
                              * start_timeout; a stop follows, ending in a failed ACTION_EXIT */
        ACTION_EXIT, /* every worker is gone after a stop: success, or false with the
                      * reason (the start timed out): the supervisor exits non-zero */
};

/* What to tell the service manager: the engine decides every field; the shell formats
 * and sends it. */
struct engine_notify {
        bool ready; /* READY=1 */
        bool reloading; /* RELOADING=1, with MONOTONIC_USEC=reloading_usec */
        uint64_t reloading_usec; /* when the request began */
        bool stopping; /* STOPPING=1 */
        uint64_t extend_timeout_usec; /* EXTEND_TIMEOUT_USEC=, 0 = none */
        bool has_status;
        char status[1024]; /* STATUS=, valid UTF-8 */
};

/* Why a worker is signalled, so that the shell logs each for what it is. */
enum signal_purpose {
        SIGNAL_DRAIN, /* the drain signal: stop accepting, finish, exit */
        SIGNAL_RESUME, /* SIGCONT right after the drain signal: a stopped worker drains too */
        SIGNAL_KILL, /* SIGKILL; reason says why */
        SIGNAL_ABORT, /* SIGABRT for a missed watchdog (a core dump, a stack trace); reason says why */
};

struct engine_action {
        enum action_type type;
        uint64_t worker_id;
        uint64_t generation;
        unsigned slot;
        pid_t pid;
        int signal;
        bool group; /* ACTION_SIGNAL: to the worker's whole process group, else its main process only */
        enum signal_purpose purpose;
        bool success;
        bool hook_failed; /* ACTION_UPGRADE_FINISHED: the pre-upgrade hook refused it */
        bool candidate; /* ACTION_SPAWN: with the settings of the generation being built */
        /* The texts last, in this order: the queue keeps everything before notify.status
         * as it is and only the one text an action has on the heap (engine.c). */
        struct engine_notify notify; /* ACTION_NOTIFY */
        char reason[512]; /* every other action */
};

struct engine;

int engine_new(struct engine **ret);
struct engine *engine_free(struct engine *e);

/* Starts the first generation as number GENERATION (>= 1): one past the highest number a
 * previous run used, so that numbers are never reused across restarts. Each upgrade that
 * starts workers then takes the next number, whether it succeeds or not. Returns 0,
 * -EBUSY, -EINVAL or -ENOMEM. */
int engine_start(struct engine *e, uint64_t now, uint64_t generation, const char *target,
                 const struct engine_settings *settings);

/* Shell reports. */
void engine_worker_spawned(struct engine *e, uint64_t worker_id, pid_t pid, uint64_t now);
void engine_worker_spawn_failed(struct engine *e, uint64_t worker_id, const char *why, uint64_t now);
/* READY=1 from a worker (ignored unless its generation uses ready=notify). */
void engine_worker_ready(struct engine *e, pid_t pid, uint64_t now);
/* A worker exited: exit status, or the signal when signaled is true. */
void engine_worker_exited(struct engine *e, pid_t pid, bool signaled, int status, uint64_t now);
/* The same, with HINT (or NULL) appended to an upgrade's failure reason when the worker
 * had not become ready: why the shell thinks it failed. */
void engine_worker_exited_hint(struct engine *e, pid_t pid, bool signaled, int status, const char *hint, uint64_t now);
/* The worker's watchdog (from WATCHDOG=1, WATCHDOG=trigger and WATCHDOG_USEC= on the
 * notify socket). Ignored for workers whose generation has no watchdog. A ping restarts
 * the deadline; a trigger is a miss now; a new timeout (microseconds, 0 = off for this
 * worker) replaces the worker's own and restarts the deadline, as systemd does. */
void engine_worker_watchdog(struct engine *e, pid_t pid, uint64_t now);
void engine_worker_watchdog_trigger(struct engine *e, pid_t pid, uint64_t now);
void engine_worker_watchdog_usec(struct engine *e, pid_t pid, uint64_t usec, uint64_t now);
/* A sample of a worker's memory in bytes. Above its generation's memory_max, a ready
 * worker is replaced without a gap, within the rate limit (engine.c, memory_max). */
void engine_worker_memory(struct engine *e, pid_t pid, uint64_t bytes, uint64_t now);
/* Whether the engine wants memory samples now: only then does the shell run its
 * sampling timer, so that memory_max = 0 costs no wake-up. */
bool engine_wants_memory(const struct engine *e);
/* Workers replaced for memory_max since the start (started replacements). */
uint64_t engine_get_memory_replacements(const struct engine *e);
/* The earliest deadline, USEC_INFINITY when none; the shell arms one timer for it. */
uint64_t engine_next_deadline(const struct engine *e);
void engine_timer(struct engine *e, uint64_t now);

/* An upgrade in two steps, so that the pre-upgrade hook can run in between without
 * another upgrade slipping in. engine_prepare_upgrade() reserves the engine: it returns
 * the number the new generation will get (one past the highest used so far), -EBUSY
 * while an upgrade runs, -ESHUTDOWN while stopping, or -EOVERFLOW when numbers ran out.
 * Then exactly one of engine_start_upgrade() (which uses the number up: the shell
 * records it before the first spawn) or engine_abort_upgrade() (which does not)
 * follows. */
int64_t engine_prepare_upgrade(struct engine *e);
/* The same, for a request that came in at NOW: RELOADING=1 says when the reload began. */
int64_t engine_prepare_upgrade_at(struct engine *e, uint64_t now);
/* The same answer as engine_prepare_upgrade() without reserving anything. */
int64_t engine_check_upgrade(const struct engine *e);
int engine_start_upgrade(struct engine *e, uint64_t now, const char *target, const struct engine_settings *settings);
void engine_abort_upgrade(struct engine *e, const char *reason);
/* engine_abort_upgrade() because the pre-upgrade hook failed or refused the upgrade: the
 * finished action says so (hook_failed), so that callers learn it was the hook's verdict. */
void engine_hook_failed(struct engine *e, const char *reason);
/* An upgrade request refused before it began (invalid target, bad configuration): nothing
 * changes but STATUS=, which leads with REASON until the next upgrade. systemd is told
 * RELOADING=1 and then READY=1 (only if the service was ready once), so that a reload
 * under Type=notify-reload ends. */
void engine_upgrade_refused(struct engine *e, const char *reason);
void engine_upgrade_refused_at(struct engine *e, uint64_t now, const char *reason);
/* Queues an ACTION_NOTIFY with STATUS= when the status line differs from the last one
 * the engine sent. The shell calls it after performing each batch of actions. */
void engine_update_status(struct engine *e, uint64_t now);

/* Aborts the running upgrade and rolls back. -ENOENT when none runs. */
int engine_cancel(struct engine *e, uint64_t now);
/* Kills every worker of the current generation and starts it again. -EBUSY unless running. */
int engine_restart(struct engine *e, uint64_t now);
/* Scales the current generation. -EBUSY unless running, -EINVAL for 0. */
int engine_set_workers(struct engine *e, uint64_t now, unsigned count);
/* Drains every worker; ACTION_EXIT follows when the last one is gone. */
void engine_stop(struct engine *e, uint64_t now);

/* Pops the next action; false when the queue is empty. */
bool engine_next_action(struct engine *e, struct engine_action *ret);

/* Read-only views for status, properties and the spawner. */
enum engine_state engine_get_state(const struct engine *e);
const char *engine_state_to_string(enum engine_state s);
const char *worker_state_to_string(enum worker_state s);
uint64_t engine_get_generation(const struct engine *e);
const char *engine_get_target(const struct engine *e);
const char *engine_get_previous_target(const struct engine *e);
int engine_set_previous_target(struct engine *e, const char *previous);
const char *engine_get_last_result(const struct engine *e);
unsigned engine_get_desired_workers(const struct engine *e);
unsigned engine_count_ready(const struct engine *e);
unsigned engine_count_draining(const struct engine *e);
/* Copies of the workers, never pointers into the engine's array (any event may spawn a
 * worker and move it). The target string is the engine's, valid until the next event. */
size_t engine_count_workers(const struct engine *e);
/* The worker at INDEX (0 ... engine_count_workers() - 1); false past the end. */
bool engine_get_worker_at(const struct engine *e, size_t index, struct engine_worker *ret);
/* The worker with PID; false when no worker has it. */
bool engine_get_worker(const struct engine *e, pid_t pid, struct engine_worker *ret);
/* Changes whenever a worker comes or goes or its pid or state changes: what the Workers
 * property shows can have changed only then. */
uint64_t engine_get_workers_version(const struct engine *e);
/* Workers of the generation being built in STATE; 0 outside an upgrade. */
unsigned engine_count_upgrade(const struct engine *e, enum worker_state state);
/* The number of the generation being built (while the pre-upgrade hook runs too: the one
 * it will get), or being rolled back; 0 outside an upgrade. Not the current one plus one:
 * a failed upgrade used its number up. */
uint64_t engine_get_upgrade_generation(const struct engine *e);
/* The work done finding free slots since engine_new(), in steps (a worker or a slot
 * looked at): for the tests that an upgrade of N workers does O(N) of it. */
uint64_t engine_get_slot_steps(const struct engine *e);
/* Worker records looked at since engine_new() by every scan and lookup of the engine's
 * (a binary search counts each record it compares): for the tests that each event costs
 * about the same whatever the number of workers, and an upgrade of N workers O(N). */
uint64_t engine_get_worker_visits(const struct engine *e);
/* The systemd STATUS= line for the present state. */
void engine_format_status(const struct engine *e, uint64_t now, char *buf, size_t size);
