/* engine-internal.h: the engine's private state, shared by engine.c (the state machine)
 * and engine-state.c (its serialisation for a reexec) and by nothing else: every other
 * file sees struct engine only through engine.h's functions. A field added here must be
 * serialised in engine-state.c too, or it is lost at the next reexec (engine-state.c
 * asserts the structs' sizes so that the build says so). */
#pragma once

#include <stddef.h>

#include "engine.h"
#include "macro.h"
#include "min-heap.h"
#include "pid-map.h"

/* Crash back-off: 100 ms doubling to 10 s; a worker that stayed up this long resets it. */
#define BACKOFF_MIN_USEC (100 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define BACKOFF_RESET_USEC (10 * USEC_PER_SEC)

/* A worker that missed its watchdog gets SIGABRT (a core dump or a stack trace tells why
 * it hung), and SIGKILL this long after if it is still there. */
#define WATCHDOG_KILL_USEC (5 * USEC_PER_SEC)
/* The longest timeout a worker may set with WATCHDOG_USEC= (as config.c's durations). */
#define WATCHDOG_MAX_USEC (365ULL * 24 * 3600 * USEC_PER_SEC)

/* memory_max's rate limit. A slot is replaced at most MEMORY_BURST times within
 * MEMORY_WINDOW_USEC; a slot that needs more is a release too big for the limit, not a
 * leak: it shows as a loop in STATUS= and is left alone for MEMORY_HOLDOFF_USEC instead
 * of churning. A replacement that never becomes ready leaves the old worker serving and
 * is tried again after MEMORY_RETRY_USEC, doubling up to MEMORY_HOLDOFF_USEC. */
#define MEMORY_BURST 3
#define MEMORY_WINDOW_USEC (5 * 60 * USEC_PER_SEC)
#define MEMORY_HOLDOFF_USEC (5 * 60 * USEC_PER_SEC)
#define MEMORY_RETRY_USEC (10 * USEC_PER_SEC)

struct generation {
        uint64_t number; /* 0 = none */
        char *target;
        struct engine_settings settings;
};

/* What the health checks remember about a slot of the current generation. */
struct slot_health {
        pid_t watchdog_pid; /* its last worker killed by the watchdog, shown until the slot is ready again */
        uint64_t memory_window_start;
        unsigned memory_attempts; /* replacements started since memory_window_start */
        unsigned memory_failed; /* replacements in a row that never became ready */
        uint64_t memory_holdoff_until; /* no replacement before this */
        bool memory_loop; /* the hold-off is for too many replacements, not for a failure */
};

/* How many workers of a generation are in each state, and its workers starting and ready
 * newest first (keys count down from the id, as ids grow with the spawn order): the
 * counts and the pick of the worker to drain without a walk over every worker. Only the
 * few generations that still have workers have an entry. */
struct generation_index {
        uint64_t generation;
        unsigned in_state[3]; /* by enum worker_state */
        struct min_heap newest[2]; /* WORKER_STARTING, WORKER_READY; entries may be stale */
};

/* A slot of the current generation waiting to be respawned after a crash. */
struct respawn {
        unsigned slot;
        uint64_t at_usec;
        unsigned restarts; /* of the worker that died: its replacement counts one more */
};

/* An action waiting in the queue: its fixed fields as they are, and its one text
 * (notify.status of ACTION_NOTIFY, reason of the others) on the heap, NULL when empty. */
struct queued_action {
        unsigned char head[offsetof(struct engine_action, notify.status)];
        char *text;
};

struct engine {
        enum engine_state state;
        bool preparing; /* upgrade reserved, pre-upgrade hook running */
        bool ready_sent; /* READY=1 was queued: some generation was fully ready once */
        uint64_t now; /* the time of the latest event, for the status lines of actions */
        char status_sent[1024]; /* the last STATUS= queued */
        bool hook_failed; /* the pending abort is the pre-upgrade hook's */
        struct generation current, candidate;
        /* The highest generation number used: each started generation takes the next one,
         * and a failed candidate's number is never given out again. */
        uint64_t last_generation;
        char *previous_target;
        char last_result[512];
        char failure_status[600]; /* shown in STATUS= after a rollback, until the next upgrade */

        struct engine_worker *workers;
        size_t n_workers, allocated_workers;
        uint64_t next_worker_id;

        struct respawn *respawns;
        size_t n_respawns, allocated_respawns;

        unsigned *failures; /* consecutive crashes per slot of the current generation */
        size_t n_failures;

        struct slot_health *health; /* per slot of the current generation */
        size_t n_health;
        uint64_t memory_replacements; /* started since the engine's start */

        uint64_t credited; /* rolling: new ready workers an old one was drained for */
        bool canary_passed; /* the first batch stayed ready for stable_time */
        char rollback_reason[512];

        /* The start bound (start_timeout): while the first generation was never fully
         * ready, the supervisor gives up at this instant; USEC_INFINITY = no bound. */
        uint64_t start_deadline_usec;
        unsigned start_failures; /* workers of the first generation that failed before it was ready */
        char start_last_failure[256];
        char exit_reason[512]; /* set when the stop is a failure: ACTION_EXIT reports it */

        /* The action queue. The newest action is built in place in pending, where its
         * push_*() caller fills it in; the next push or pop moves it to actions[] in short
         * form (queued_action). A blue-green upgrade of N workers queues N spawns and 2N
         * drain signals at once: at 1.6 KiB each (mostly two text buffers, empty in all of
         * them), the queue alone took 3.3 MiB of the supervisor's memory at N = 1,024. */
        struct engine_action pending;
        bool has_pending;
        struct queued_action *actions;
        size_t n_actions, first_action, allocated_actions;

        /* Derived, not serialised: engine_rebuild_indexes() recomputes them from the rest
         * after a restore, so that the hand-over format does not change.
         * candidate_slots: the slots handed out to the candidate so far. A candidate
         * worker never leaves its slot while the upgrade runs (anything that would make it
         * fails the upgrade), so they are 0 ... candidate_slots - 1 and the next free one
         * is candidate_slots: O(1) per spawn instead of a search through every worker.
         * workers_version: changes whenever a worker comes, goes, or changes its pid or
         * state (engine_get_workers_version()). */
        unsigned candidate_slots;
        uint64_t workers_version;
        uint64_t slot_steps; /* work done finding free slots, for the tests (engine_get_slot_steps()) */
        /* Indexes that keep the cost of each event independent of the number of workers
         * (the array stays in spawn order, so sorted by id: find_by_id() is a binary
         * search). by_pid: pid -> worker id. generations: counts and newest-first heaps
         * per generation. deadlines, watchdogs: deadline_usec and watchdog_deadline_usec
         * of the workers (entries may be stale; they are checked when on top).
         * candidate_last_ready: the latest ready_usec of the candidate's workers.
         * rollback_starting: see leave_rollback_starting() in engine.c.
         * worst_failures, worst_failure_slot: the slot with the most crashes in a row.
         * health_notable: slots whose health the status line has something to say about. */
        struct pid_map by_pid;
        struct generation_index *generations;
        size_t allocated_generations; /* entries with generation 0 are free */
        struct min_heap deadlines, watchdogs;
        uint64_t candidate_last_ready;
        unsigned worst_failures, worst_failure_slot;
        unsigned rollback_starting; /* workers with for_rollback still starting */
        unsigned n_replacing; /* workers with replaces != 0 (set_replaces() in engine.c) */
        size_t health_notable;
        /* Worker records looked at by every scan and lookup, for the tests that an event
         * costs the same whatever the number of workers (engine_get_worker_visits()). */
        uint64_t worker_visits;
};

/* After a restore: recomputes the derived fields above. */
void engine_rebuild_indexes(struct engine *e);

/* Makes room for NEEDED elements in *ARRAY (doubling); false on ENOMEM, *ARRAY unchanged. */
bool engine_grow(void **array, size_t *allocated, size_t needed, size_t element);
