/* engine-state.c: the engine's whole state as text, and back, for a reexec (contract
 * section 11): the old image serialises, the new one restores and behaves exactly as the
 * old one would have. Pure like engine.c: no syscalls, no I/O, no clock. It needs the
 * engine's private structs (engine-internal.h), and nothing else may.
 *
 * The document (state-text.h gives the line syntax), version 1:
 *
 *     liveswap-engine 1
 *     engine state=running preparing=no ready_sent=yes now=... (every scalar)
 *     engine status_sent="..."                                  (each string, one a line)
 *     current number=3 target="/srv/app" workers=2 strategy=rolling ...
 *     candidate number=0 target=- workers=0 ...
 *     worker id=7 pid=1234 generation=3 slot=0 state=ready target="/srv/app" ...
 *     respawn slot=1 at_usec=... restarts=2                     (in the engine's order)
 *     failure slot=0 count=3                                    (slots 0, 1, ... in order)
 *     health slot=0 watchdog_pid=0 memory_window_start=...      (slots 0, 1, ... in order)
 *     end
 *
 * Field names are the C members' names, so that a reader can check a record against the
 * struct. Enums are written by name, so that renumbering an enum cannot change what an
 * old document means.
 *
 * Versions. Every later program must read version 1 (tests/unit/data/engine-v1.txt is
 * restored by a unit test). A field added later gets a bumped version and a default
 * for older documents. An unknown field or record kind is refused, never skipped: the
 * format is written by liveswap only, a field a reader does not know is state it would
 * drop (a deadline never armed, a back-off forgotten), and a restored engine that
 * behaves differently from the original is worse than a refused hand-over, which the
 * shell handles safely. A version newer than this program is refused the same way
 * (-EPROTONOSUPPORT): that is a downgrade, and the newer state may not fit. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "engine-state.h"
#include "macro.h"
#include "state-text.h"

#define ENGINE_STATE_MAGIC "liveswap-engine"
#define ENGINE_STATE_VERSION 1

/* Bounds for what a document may ask for: far beyond any real supervisor (liveswap takes
 * at most 4096 workers), and small enough that a corrupt number cannot make the engine
 * allocate gigabytes on its next event (the slot arrays grow to the highest slot). */
#define WORKERS_BOUND 65536
#define SLOT_BOUND 65536
#define SIGNAL_BOUND 64
/* Durations stay far from overflowing a timestamp they are added to (config.c allows a
 * year). */
#define DURATION_BOUND (10 * 366ULL * 24 * 3600 * USEC_PER_SEC)

/* A member added to one of these structs must be serialised below: the build stops here
 * until the size is updated, as a reminder (on the 64-bit ABIs the project builds on). */
#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(struct engine_settings) == 88, "serialise the new engine_settings member in engine-state.c");
_Static_assert(sizeof(struct engine_worker) == 128, "serialise the new engine_worker member in engine-state.c");
_Static_assert(sizeof(struct generation) == 104, "serialise the new generation member in engine-state.c");
_Static_assert(sizeof(struct slot_health) == 40, "serialise the new slot_health member in engine-state.c");
_Static_assert(sizeof(struct respawn) == 24, "serialise the new respawn member in engine-state.c");
/* 3824 serialised, 152 of derived indexes that engine_rebuild_indexes() recomputes, and
 * the pending action (1624 + 8), which is empty at a serialisation as the whole queue is. */
_Static_assert(sizeof(struct engine) == 3824 + 152 + 1632, "serialise the new engine member in engine-state.c");
#endif
_Static_assert(sizeof(enum engine_state) == sizeof(int) && sizeof(enum worker_state) == sizeof(int) &&
                       sizeof(enum strategy) == sizeof(int) && sizeof(enum ready_mode) == sizeof(int) &&
                       sizeof(enum kill_mode) == sizeof(int),
               "enums are read and written as int");

static const char *const engine_state_names[] = {
        [ENGINE_STARTING] = "starting",         [ENGINE_RUNNING] = "running",   [ENGINE_UPGRADING] = "upgrading",
        [ENGINE_ROLLING_BACK] = "rolling-back", [ENGINE_STOPPING] = "stopping", [ENGINE_STOPPED] = "stopped",
};
static const char *const worker_state_names[] = {
        [WORKER_STARTING] = "starting",
        [WORKER_READY] = "ready",
        [WORKER_DRAINING] = "draining",
};
static const char *const strategy_names[] = {
        [STRATEGY_ROLLING] = "rolling",
        [STRATEGY_BLUE_GREEN] = "blue-green",
        [STRATEGY_RESTART] = "restart",
};
static const char *const ready_names[] = {
        [READY_DELAY] = "delay",
        [READY_NOTIFY] = "notify",
        [READY_LISTEN] = "listen",
};
static const char *const kill_mode_names[] = {
        [KILL_MODE_GROUP] = "group",
        [KILL_MODE_MIXED] = "mixed",
};

/* The scalars first, then the strings: the writer puts each string on a line of its own. */
#define E(member, kind) STATE_FIELD(struct engine, member, kind)
static const struct state_field engine_fields[] = {
        STATE_ENUM_FIELD(struct engine, state, engine_state_names),
        E(preparing, STATE_BOOL),
        E(ready_sent, STATE_BOOL),
        E(now, STATE_TIME),
        E(hook_failed, STATE_BOOL), /* always false between events today; kept for exactness */
        E(last_generation, STATE_UINT),
        E(next_worker_id, STATE_UINT),
        E(memory_replacements, STATE_UINT),
        E(credited, STATE_UINT),
        E(canary_passed, STATE_BOOL),
        E(start_deadline_usec, STATE_TIME),
        E(start_failures, STATE_UINT),
#define ENGINE_FIRST_STRING 12
        E(status_sent, STATE_BUFFER),
        E(previous_target, STATE_STRING),
        E(last_result, STATE_BUFFER),
        E(failure_status, STATE_BUFFER),
        E(rollback_reason, STATE_BUFFER),
        E(start_last_failure, STATE_BUFFER),
        E(exit_reason, STATE_BUFFER),
};
#undef E

#define G(member, kind) STATE_FIELD_AS(#member, struct generation, settings.member, kind)
static const struct state_field generation_fields[] = {
        STATE_FIELD(struct generation, number, STATE_UINT),
        STATE_FIELD(struct generation, target, STATE_STRING),
        G(workers, STATE_UINT),
        STATE_ENUM_FIELD_AS("strategy", struct generation, settings.strategy, strategy_names),
        G(batch, STATE_UINT),
        STATE_ENUM_FIELD_AS("ready", struct generation, settings.ready, ready_names),
        G(ready_delay_usec, STATE_TIME),
        G(ready_timeout_usec, STATE_TIME),
        G(stable_time_usec, STATE_TIME),
        G(drain_signal, STATE_INT),
        G(drain_timeout_usec, STATE_TIME),
        STATE_ENUM_FIELD_AS("kill_mode", struct generation, settings.kill_mode, kill_mode_names),
        G(start_timeout_usec, STATE_TIME),
        G(watchdog_usec, STATE_TIME),
        G(memory_max, STATE_UINT),
};
#undef G

#define W(member, kind) STATE_FIELD(struct engine_worker, member, kind)
static const struct state_field worker_fields[] = {
        W(id, STATE_UINT),
        W(pid, STATE_INT),
        W(generation, STATE_UINT),
        W(slot, STATE_UINT),
        STATE_ENUM_FIELD(struct engine_worker, state, worker_state_names),
        W(target, STATE_STRING),
        W(started_usec, STATE_TIME),
        W(ready_usec, STATE_TIME),
        W(deadline_usec, STATE_TIME),
        W(drain_signal, STATE_INT),
        W(drain_timeout_usec, STATE_TIME),
        STATE_ENUM_FIELD(struct engine_worker, kill_mode, kill_mode_names),
        W(killed, STATE_BOOL),
        W(respawn_now, STATE_BOOL),
        W(for_rollback, STATE_BOOL),
        W(restarts, STATE_UINT),
        W(watchdog_usec, STATE_TIME),
        W(watchdog_deadline_usec, STATE_TIME),
        W(aborted, STATE_BOOL),
        W(replaces, STATE_UINT),
};
#undef W

static const struct state_field respawn_fields[] = {
        STATE_FIELD(struct respawn, slot, STATE_UINT),
        STATE_FIELD(struct respawn, at_usec, STATE_TIME),
        STATE_FIELD(struct respawn, restarts, STATE_UINT),
};

/* The per-slot arrays are written one record per slot, with its index, so that their
 * length comes back exactly. */
struct failure_record {
        unsigned slot;
        unsigned count;
};
static const struct state_field failure_fields[] = {
        STATE_FIELD(struct failure_record, slot, STATE_UINT),
        STATE_FIELD(struct failure_record, count, STATE_UINT),
};

struct health_record {
        unsigned slot;
        struct slot_health health;
};
#define H(member, kind) STATE_FIELD_AS(#member, struct health_record, health.member, kind)
static const struct state_field health_fields[] = {
        STATE_FIELD(struct health_record, slot, STATE_UINT),
        H(watchdog_pid, STATE_INT),
        H(memory_window_start, STATE_TIME),
        H(memory_attempts, STATE_UINT),
        H(memory_failed, STATE_UINT),
        H(memory_holdoff_until, STATE_TIME),
        H(memory_loop, STATE_BOOL),
};
#undef H

/* ---- writing ---- */

int engine_serialize(const struct engine *e, char **ret_text) {
        /* The shell serialises after performing every queued action: an action still in
         * the queue would be lost in the new image (a spawn never forked, a kill never
         * sent). */
        if (e->first_action < e->n_actions || e->has_pending)
                return -EBUSY;

        struct state_writer w = {};
        state_write_header(&w, ENGINE_STATE_MAGIC, ENGINE_STATE_VERSION);
        state_write_record(&w, "engine", e, engine_fields, ENGINE_FIRST_STRING);
        for (size_t i = ENGINE_FIRST_STRING; i < ELEMENTSOF(engine_fields); i++)
                state_write_record(&w, "engine", e, &engine_fields[i], 1);
        state_write_record(&w, "current", &e->current, generation_fields, ELEMENTSOF(generation_fields));
        state_write_record(&w, "candidate", &e->candidate, generation_fields, ELEMENTSOF(generation_fields));
        for (size_t i = 0; i < e->n_workers; i++)
                state_write_record(&w, "worker", &e->workers[i], worker_fields, ELEMENTSOF(worker_fields));
        for (size_t i = 0; i < e->n_respawns; i++)
                state_write_record(&w, "respawn", &e->respawns[i], respawn_fields, ELEMENTSOF(respawn_fields));
        for (size_t i = 0; i < e->n_failures; i++) {
                struct failure_record f = { .slot = (unsigned) i, .count = e->failures[i] };
                state_write_record(&w, "failure", &f, failure_fields, ELEMENTSOF(failure_fields));
        }
        for (size_t i = 0; i < e->n_health; i++) {
                struct health_record h = { .slot = (unsigned) i, .health = e->health[i] };
                state_write_record(&w, "health", &h, health_fields, ELEMENTSOF(health_fields));
        }
        return state_writer_finish(&w, ret_text);
}

/* ---- reading ---- */

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return (x > y) - (x < y);
}

static int check_generation(struct state_reader *r, const char *role, const struct generation *g,
                            uint64_t last_generation) {
        const struct engine_settings *s = &g->settings;
        if (g->number == 0) {
                if (g->target)
                        return state_fail(r, -EINVAL, "%s: a target without a generation number", role);
                return 0;
        }
        if (g->number > last_generation || g->number > INT64_MAX)
                return state_fail(r, -EINVAL, "%s: generation %llu is above last_generation %llu", role,
                                  (unsigned long long) g->number, (unsigned long long) last_generation);
        if (!g->target)
                return state_fail(r, -EINVAL, "%s: generation %llu has no target", role,
                                  (unsigned long long) g->number);
        if (s->workers < 1 || s->workers > WORKERS_BOUND || s->batch < 1 || s->batch > WORKERS_BOUND)
                return state_fail(r, -EINVAL, "%s: workers and batch must be from 1 to %d", role, WORKERS_BOUND);
        if (s->drain_signal < 1 || s->drain_signal > SIGNAL_BOUND)
                return state_fail(r, -EINVAL, "%s: drain_signal %d is not a signal", role, s->drain_signal);
        const uint64_t durations[] = { s->ready_delay_usec,   s->ready_timeout_usec, s->stable_time_usec,
                                       s->drain_timeout_usec, s->start_timeout_usec, s->watchdog_usec };
        for (size_t i = 0; i < ELEMENTSOF(durations); i++)
                if (durations[i] > DURATION_BOUND)
                        return state_fail(r, -EINVAL, "%s: a duration is longer than ten years", role);
        return 0;
}

static int check_worker(struct state_reader *r, const struct engine *e, const struct engine_worker *w) {
        if (w->id == 0 || w->id >= e->next_worker_id)
                return state_fail(r, -EINVAL, "worker %llu: the id must be from 1 to next_worker_id - 1 (%llu)",
                                  (unsigned long long) w->id, (unsigned long long) e->next_worker_id - 1);
        if (!w->target)
                return state_fail(r, -EINVAL, "worker %llu: no target", (unsigned long long) w->id);
        if (w->generation == 0 || w->generation > e->last_generation)
                return state_fail(r, -EINVAL, "worker %llu: generation %llu was never started",
                                  (unsigned long long) w->id, (unsigned long long) w->generation);
        /* A draining worker may belong to a generation that is gone (the one an upgrade
         * replaced, or a failed candidate); any other serves the current generation or
         * the one being built. */
        if (w->state != WORKER_DRAINING && w->generation != e->current.number &&
            (e->candidate.number == 0 || w->generation != e->candidate.number))
                return state_fail(
                        r, -EINVAL, "worker %llu: %s, but its generation %llu is neither current nor the candidate",
                        (unsigned long long) w->id, worker_state_names[w->state], (unsigned long long) w->generation);
        if (w->slot >= SLOT_BOUND)
                return state_fail(r, -EINVAL, "worker %llu: slot %u is out of range", (unsigned long long) w->id,
                                  w->slot);
        if (w->drain_signal < 1 || w->drain_signal > SIGNAL_BOUND)
                return state_fail(r, -EINVAL, "worker %llu: drain_signal %d is not a signal",
                                  (unsigned long long) w->id, w->drain_signal);
        if (w->drain_timeout_usec > DURATION_BOUND || w->watchdog_usec > DURATION_BOUND)
                return state_fail(r, -EINVAL, "worker %llu: a duration is longer than ten years",
                                  (unsigned long long) w->id);
        if (w->replaces >= e->next_worker_id || w->replaces == w->id)
                return state_fail(r, -EINVAL, "worker %llu: replaces %llu, which is not another worker's id",
                                  (unsigned long long) w->id, (unsigned long long) w->replaces);
        return 0;
}

/* Unique worker ids, and unique pids among the workers already spawned. */
static int check_unique(struct state_reader *r, const struct engine *e) {
        if (e->n_workers < 2)
                return 0;
        _cleanup_free_ uint64_t *keys = calloc(e->n_workers, sizeof(uint64_t));
        if (!keys)
                return -ENOMEM;
        for (int pass = 0; pass < 2; pass++) {
                size_t n = 0;
                for (size_t i = 0; i < e->n_workers; i++)
                        if (pass == 0)
                                keys[n++] = e->workers[i].id;
                        else if (e->workers[i].pid > 0)
                                keys[n++] = (uint64_t) e->workers[i].pid;
                qsort(keys, n, sizeof(uint64_t), compare_u64);
                for (size_t i = 1; i < n; i++)
                        if (keys[i] == keys[i - 1])
                                return state_fail(r, -EINVAL, "two workers have the same %s %llu",
                                                  pass == 0 ? "id" : "pid", (unsigned long long) keys[i]);
        }
        return 0;
}

/* What the engine relies on without checking: each state has the generations it needs
 * (a spawn copies its generation's target), and every reference points at something. */
static int check_engine(struct state_reader *r, const struct engine *e) {
        int k;
        if (e->next_worker_id == 0)
                return state_fail(r, -EINVAL, "next_worker_id must be at least 1");
        if ((k = check_generation(r, "current", &e->current, e->last_generation)) < 0 ||
            (k = check_generation(r, "candidate", &e->candidate, e->last_generation)) < 0)
                return k;
        if (e->state != ENGINE_STOPPED && e->current.number == 0)
                return state_fail(r, -EINVAL, "state %s without a current generation", engine_state_names[e->state]);
        if (e->preparing && (e->state != ENGINE_UPGRADING || e->candidate.number != 0))
                return state_fail(r, -EINVAL, "preparing outside the start of an upgrade");
        bool building = (e->state == ENGINE_UPGRADING && !e->preparing) || e->state == ENGINE_ROLLING_BACK;
        if (building != (e->candidate.number != 0))
                return state_fail(r, -EINVAL, "state %s %s a candidate generation", engine_state_names[e->state],
                                  building ? "needs" : "cannot have");
        if (e->candidate.number != 0 && e->candidate.number <= e->current.number)
                return state_fail(r, -EINVAL, "the candidate generation is not above the current one");
        if (e->n_workers > WORKERS_BOUND * 4)
                return state_fail(r, -EINVAL, "too many workers (%zu)", e->n_workers);
        for (size_t i = 0; i < e->n_workers; i++)
                if ((k = check_worker(r, e, &e->workers[i])) < 0)
                        return k;
        if ((k = check_unique(r, e)) < 0)
                return k;
        if (e->n_respawns > 0 && e->current.number == 0)
                return state_fail(r, -EINVAL, "respawns without a current generation");
        for (size_t i = 0; i < e->n_respawns; i++)
                if (e->respawns[i].slot >= SLOT_BOUND)
                        return state_fail(r, -EINVAL, "respawn: slot %u is out of range", e->respawns[i].slot);
        return 0;
}

/* A record of a per-slot array: slots must come as 0, 1, 2, ... */
static int check_slot(struct state_reader *r, const char *kind, unsigned slot, size_t expected) {
        if (slot != expected)
                return state_fail(r, -EINVAL, "%s: slot %u, expected slot %zu (in order from 0)", kind, slot, expected);
        if (slot >= SLOT_BOUND)
                return state_fail(r, -EINVAL, "%s: slot %u is out of range", kind, slot);
        return 0;
}

static int read_record(struct state_reader *r, struct engine *e, const char *kind, uint64_t *engine_seen,
                       uint64_t *current_seen, uint64_t *candidate_seen) {
        int k;
        if (strcmp(kind, "engine") == 0)
                return state_read_fields(r, e, engine_fields, ELEMENTSOF(engine_fields), engine_seen);
        if (strcmp(kind, "current") == 0 || strcmp(kind, "candidate") == 0) {
                bool current = kind[1] == 'u';
                uint64_t *seen = current ? current_seen : candidate_seen;
                if (*seen)
                        return state_fail(r, -EINVAL, "a second '%s' record", kind);
                k = state_read_fields(r, current ? &e->current : &e->candidate, generation_fields,
                                      ELEMENTSOF(generation_fields), seen);
                if (k < 0)
                        return k;
                *seen |= UINT64_C(1) << 63; /* present, even with no field */
                return state_check_fields(r, kind, generation_fields, ELEMENTSOF(generation_fields), *seen);
        }
        if (strcmp(kind, "worker") == 0) {
                if (!engine_grow((void **) &e->workers, &e->allocated_workers, e->n_workers + 1, sizeof(*e->workers)))
                        return -ENOMEM;
                struct engine_worker *w = &e->workers[e->n_workers++];
                *w = (struct engine_worker){};
                uint64_t seen = 0;
                /* Counted before parsing: engine_free() then frees a half-read target. */
                if ((k = state_read_fields(r, w, worker_fields, ELEMENTSOF(worker_fields), &seen)) < 0)
                        return k;
                return state_check_fields(r, kind, worker_fields, ELEMENTSOF(worker_fields), seen);
        }
        if (strcmp(kind, "respawn") == 0) {
                struct respawn s = {};
                uint64_t seen = 0;
                if ((k = state_read_fields(r, &s, respawn_fields, ELEMENTSOF(respawn_fields), &seen)) < 0 ||
                    (k = state_check_fields(r, kind, respawn_fields, ELEMENTSOF(respawn_fields), seen)) < 0)
                        return k;
                if (!engine_grow((void **) &e->respawns, &e->allocated_respawns, e->n_respawns + 1, sizeof(*e->respawns)))
                        return -ENOMEM;
                e->respawns[e->n_respawns++] = s;
                return 0;
        }
        if (strcmp(kind, "failure") == 0) {
                struct failure_record f = {};
                uint64_t seen = 0;
                if ((k = state_read_fields(r, &f, failure_fields, ELEMENTSOF(failure_fields), &seen)) < 0 ||
                    (k = state_check_fields(r, kind, failure_fields, ELEMENTSOF(failure_fields), seen)) < 0 ||
                    (k = check_slot(r, kind, f.slot, e->n_failures)) < 0)
                        return k;
                unsigned *p = reallocarray(e->failures, e->n_failures + 1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                e->failures = p;
                e->failures[e->n_failures++] = f.count;
                return 0;
        }
        if (strcmp(kind, "health") == 0) {
                struct health_record h = {};
                uint64_t seen = 0;
                if ((k = state_read_fields(r, &h, health_fields, ELEMENTSOF(health_fields), &seen)) < 0 ||
                    (k = state_check_fields(r, kind, health_fields, ELEMENTSOF(health_fields), seen)) < 0 ||
                    (k = check_slot(r, kind, h.slot, e->n_health)) < 0)
                        return k;
                struct slot_health *p = reallocarray(e->health, e->n_health + 1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                e->health = p;
                e->health[e->n_health++] = h.health;
                return 0;
        }
        return state_fail(r, -EINVAL, "unknown record '%s'", kind);
}

int engine_restore(const char *text, size_t size, struct engine **ret, char *error, size_t error_size) {
        struct state_reader r;
        struct engine *e = NULL;
        unsigned version;
        state_reader_init(&r, text, size, error, error_size);
        int k = state_read_header(&r, ENGINE_STATE_MAGIC, ENGINE_STATE_VERSION, &version);
        if (k < 0)
                return k;
        if ((k = engine_new(&e)) < 0)
                return k;

        uint64_t engine_seen = 0, current_seen = 0, candidate_seen = 0;
        char kind[32];
        while ((k = state_next_record(&r, kind, sizeof(kind))) > 0)
                if ((k = read_record(&r, e, kind, &engine_seen, &current_seen, &candidate_seen)) < 0)
                        break;
        if (k == 0)
                k = state_check_fields(&r, "engine", engine_fields, ELEMENTSOF(engine_fields), engine_seen);
        if (k == 0 && (!current_seen || !candidate_seen))
                k = state_fail(&r, -EINVAL, "the '%s' record is missing", current_seen ? "candidate" : "current");
        if (k == 0)
                k = check_engine(&r, e);
        if (k == 0)
                engine_rebuild_indexes(e);
        if (k < 0) {
                if (k == -ENOMEM)
                        state_fail(&r, k, "out of memory");
                engine_free(e);
                return k;
        }
        *ret = e;
        return 0;
}
