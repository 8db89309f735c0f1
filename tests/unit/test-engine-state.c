/* test-engine-state.c: the engine's hand-over for a reexec (engine-state.c). For each
 * interesting situation: serialise, restore, serialise again gives the same text; and,
 * the real proof, the original and the restored engine, driven by the same further
 * events, queue the same actions. Then malformed documents, each refused with a message
 * naming its line, and version 1's fixture (tests/unit/data/engine-v1.txt), which every
 * later program must read. A fake shell plays supervisor.c: it performs each action and
 * reports spawns with made-up pids; nothing is forked. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-state.h"
#include "engine.h"
#include "macro.h"

#define MSEC USEC_PER_MSEC
#define SEC USEC_PER_SEC
#define MAX_LOG 2048

/* ---- the fake shell, one per engine ---- */

struct driver {
        struct engine *e;
        uint64_t now;
        pid_t next_pid;
        struct engine_action log[MAX_LOG];
        size_t n_log;
        char *snapshots[8]; /* the state after each round of the continuation */
        size_t n_snapshots;
};

static struct driver original, restored;

static void setup(void) {
        original = (struct driver){ .now = 1000 * SEC, .next_pid = 1000 };
        cr_assert_eq(engine_new(&original.e), 0);
        restored = (struct driver){};
}

static void teardown(void) {
        engine_free(original.e);
        engine_free(restored.e);
        for (size_t i = 0; i < original.n_snapshots; i++)
                free(original.snapshots[i]);
        for (size_t i = 0; i < restored.n_snapshots; i++)
                free(restored.snapshots[i]);
        original = restored = (struct driver){};
}

static void pump(struct driver *d) {
        struct engine_action a;
        while (engine_next_action(d->e, &a)) {
                cr_assert_lt(d->n_log, MAX_LOG);
                d->log[d->n_log++] = a;
                if (a.type == ACTION_SPAWN)
                        engine_worker_spawned(d->e, a.worker_id, d->next_pid++, d->now);
        }
        engine_update_status(d->e, d->now); /* as the dispatch does after each batch */
        while (engine_next_action(d->e, &a)) {
                cr_assert_lt(d->n_log, MAX_LOG);
                d->log[d->n_log++] = a;
        }
}

/* Pids of the workers in STATE (-1: any), in the engine's order. */
static size_t pids_in(struct driver *d, int state, pid_t *out, size_t max) {
        struct engine_worker w;
        size_t n = 0;
        for (size_t i = 0; engine_get_worker_at(d->e, i, &w) && n < max; i++)
                if (state < 0 || (int) w.state == state)
                        out[n++] = w.pid;
        return n;
}

static void ready_all(struct driver *d) {
        pid_t pids[64];
        size_t n = pids_in(d, WORKER_STARTING, pids, 64);
        for (size_t i = 0; i < n; i++) {
                engine_worker_ready(d->e, pids[i], d->now);
                pump(d);
        }
}

static void exit_draining(struct driver *d) {
        pid_t pids[64];
        size_t n = pids_in(d, WORKER_DRAINING, pids, 64);
        for (size_t i = 0; i < n; i++) {
                engine_worker_exited(d->e, pids[i], false, 0, d->now);
                pump(d);
        }
}

static void crash_first(struct driver *d, int state) {
        pid_t pids[64];
        if (pids_in(d, state, pids, 64) == 0)
                return;
        engine_worker_exited(d->e, pids[0], true, SIGSEGV, d->now);
        pump(d);
}

/* Fires the timer at the next deadline, or after AT_MOST when none comes sooner. */
static void to_deadline(struct driver *d, uint64_t at_most) {
        uint64_t deadline = engine_next_deadline(d->e);
        uint64_t later = d->now + at_most;
        d->now = deadline != USEC_INFINITY && deadline > d->now && deadline < later ? deadline : later;
        engine_timer(d->e, d->now);
        pump(d);
}

static struct engine_settings settings(unsigned workers) {
        return (struct engine_settings){
                .workers = workers,
                .strategy = STRATEGY_ROLLING,
                .batch = 1,
                .ready = READY_NOTIFY,
                .ready_delay_usec = 1 * SEC,
                .ready_timeout_usec = 5 * SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 10 * SEC,
                .kill_mode = KILL_MODE_GROUP,
                .start_timeout_usec = 90 * SEC,
        };
}

static void start_running(struct driver *d, const struct engine_settings *s) {
        cr_assert_eq(engine_start(d->e, d->now, 1, "/srv/app v1\nwith a newline", s), 0);
        pump(d);
        ready_all(d);
        cr_assert_eq(engine_get_state(d->e), ENGINE_RUNNING);
}

static void upgrade(struct driver *d, const char *target, const struct engine_settings *s) {
        cr_assert_gt(engine_prepare_upgrade_at(d->e, d->now), 0);
        cr_assert_eq(engine_start_upgrade(d->e, d->now, target, s), 0);
        pump(d);
}

/* ---- comparing ---- */

static bool action_equal(const struct engine_action *a, const struct engine_action *b) {
        return a->type == b->type && a->worker_id == b->worker_id && a->generation == b->generation &&
               a->slot == b->slot && a->pid == b->pid && a->signal == b->signal && a->group == b->group &&
               a->purpose == b->purpose && a->success == b->success && a->hook_failed == b->hook_failed &&
               a->candidate == b->candidate && strcmp(a->reason, b->reason) == 0 &&
               a->notify.ready == b->notify.ready && a->notify.reloading == b->notify.reloading &&
               a->notify.reloading_usec == b->notify.reloading_usec && a->notify.stopping == b->notify.stopping &&
               a->notify.extend_timeout_usec == b->notify.extend_timeout_usec &&
               a->notify.has_status == b->notify.has_status && strcmp(a->notify.status, b->notify.status) == 0;
}

static char *serialize(struct driver *d) {
        char *text = NULL;
        cr_assert_eq(engine_serialize(d->e, &text), 0);
        return text;
}

/* The same further events for both engines: time passes to every deadline, workers
 * become ready, drain, crash, ping their watchdog and grow; an upgrade; a stop. */
static void ping_all(struct driver *d, uint64_t bytes) {
        pid_t pids[64];
        size_t n = pids_in(d, -1, pids, 64);
        for (size_t i = 0; i < n; i++) {
                engine_worker_watchdog(d->e, pids[i], d->now);
                engine_worker_memory(d->e, pids[i], bytes, d->now);
                pump(d);
        }
}

/* VARIANT picks what comes first, so that each piece of state gets a chance to matter:
 * 0 time passes (deadlines), 1 workers become ready and keep growing, 2 an upgrade, 3 a
 * restart. */
static void continue_with(struct driver *d, int variant) {
        if (engine_get_generation(d->e) == 0) {
                struct engine_settings s = settings(2);
                cr_assert_eq(engine_start(d->e, d->now, 1, "/srv/a", &s), 0);
                pump(d);
        }
        if (variant == 1)
                for (int i = 0; i < 6; i++) {
                        ready_all(d);
                        d->now += 20 * SEC;
                        ping_all(d, 1ULL << 40);
                }
        if (variant == 2 && engine_check_upgrade(d->e) > 0) {
                struct engine_settings s = settings(3);
                s.stable_time_usec = 1 * SEC;
                upgrade(d, "/srv/app/first", &s);
        }
        if (variant == 2) {
                ready_all(d);
                ready_all(d);
                to_deadline(d, 500 * MSEC);
                ready_all(d);
                to_deadline(d, 2 * SEC);
        }
        if (variant == 3) {
                (void) engine_restart(d->e, d->now);
                pump(d);
                exit_draining(d);
                crash_first(d, WORKER_STARTING);
        }
        for (int round = 0; round < 3; round++) {
                pid_t pids[64];
                size_t n = pids_in(d, -1, pids, 64);
                for (size_t i = 0; i < n; i++) {
                        engine_worker_watchdog(d->e, pids[i], d->now);
                        engine_worker_memory(d->e, pids[i], 64 << 20, d->now);
                        pump(d);
                }
                for (int i = 0; i < 4; i++)
                        to_deadline(d, 20 * SEC);
                ready_all(d);
                to_deadline(d, 3 * SEC);
                cr_assert_lt(d->n_snapshots, ELEMENTSOF(d->snapshots));
                cr_assert_eq(engine_serialize(d->e, &d->snapshots[d->n_snapshots++]), 0);
                if (round == 0)
                        crash_first(d, WORKER_READY);
                if (round == 1) {
                        exit_draining(d);
                        if (engine_check_upgrade(d->e) > 0) {
                                struct engine_settings s = settings(2);
                                s.stable_time_usec = 2 * SEC;
                                upgrade(d, "/srv/app/next", &s);
                        }
                }
        }
        engine_stop(d->e, d->now);
        pump(d);
        for (int i = 0; i < 8 && engine_get_state(d->e) != ENGINE_STOPPED; i++) {
                exit_draining(d);
                to_deadline(d, 20 * SEC);
        }
}

/* Restores the original's hand-over and checks both claims. */
static void check_same_views(struct driver *a, struct driver *b) {
        cr_assert_eq(engine_get_state(a->e), engine_get_state(b->e));
        cr_assert_eq(engine_get_generation(a->e), engine_get_generation(b->e));
        cr_assert_str_eq(engine_get_target(a->e), engine_get_target(b->e));
        cr_assert_str_eq(engine_get_previous_target(a->e), engine_get_previous_target(b->e));
        cr_assert_str_eq(engine_get_last_result(a->e), engine_get_last_result(b->e));
        cr_assert_eq(engine_get_desired_workers(a->e), engine_get_desired_workers(b->e));
        cr_assert_eq(engine_get_memory_replacements(a->e), engine_get_memory_replacements(b->e));
        cr_assert_eq(engine_wants_memory(a->e), engine_wants_memory(b->e));
        cr_assert_eq(engine_check_upgrade(a->e), engine_check_upgrade(b->e));
        cr_assert_eq(engine_next_deadline(a->e), engine_next_deadline(b->e));
        for (uint64_t later = 0; later <= 2 * SEC; later += SEC) {
                char x[1024], y[1024];
                engine_format_status(a->e, a->now + later, x, sizeof(x));
                engine_format_status(b->e, b->now + later, y, sizeof(y));
                cr_assert_str_eq(x, y);
        }
        /* Every member of every worker, whatever the format's tables say. */
        cr_assert_eq(engine_count_workers(a->e), engine_count_workers(b->e));
        struct engine_worker x, y;
        for (size_t i = 0; engine_get_worker_at(a->e, i, &x); i++) {
                cr_assert(engine_get_worker_at(b->e, i, &y));
                cr_assert(x.id == y.id && x.pid == y.pid && x.generation == y.generation && x.slot == y.slot &&
                                  x.state == y.state && strcmp(x.target, y.target) == 0 &&
                                  x.started_usec == y.started_usec && x.ready_usec == y.ready_usec &&
                                  x.deadline_usec == y.deadline_usec && x.drain_signal == y.drain_signal &&
                                  x.drain_timeout_usec == y.drain_timeout_usec && x.kill_mode == y.kill_mode &&
                                  x.killed == y.killed && x.respawn_now == y.respawn_now &&
                                  x.for_rollback == y.for_rollback && x.restarts == y.restarts &&
                                  x.watchdog_usec == y.watchdog_usec &&
                                  x.watchdog_deadline_usec == y.watchdog_deadline_usec && x.aborted == y.aborted &&
                                  x.replaces == y.replaces,
                          "worker %zu differs after the hand-over", i);
        }
}

static void check_hand_over(int variant) {
        _cleanup_free_ char *text = serialize(&original);
        char error[256];
        int r = engine_restore(text, strlen(text), &restored.e, error, sizeof(error));
        cr_assert_eq(r, 0, "restore failed: %s\n%s", error, text);
        restored.now = original.now;
        restored.next_pid = original.next_pid;

        _cleanup_free_ char *again = serialize(&restored);
        cr_assert_str_eq(again, text);
        check_same_views(&original, &restored);

        size_t from = original.n_log;
        continue_with(&original, variant);
        continue_with(&restored, variant);
        size_t n = original.n_log - from;
        cr_assert_eq(restored.n_log, n, "the restored engine queued %zu actions, the original %zu", restored.n_log, n);
        for (size_t i = 0; i < n; i++)
                cr_assert(action_equal(&original.log[from + i], &restored.log[i]),
                          "action %zu differs: type %d/%d pid %d/%d reason '%s'/'%s' status '%s'/'%s'", i,
                          original.log[from + i].type, restored.log[i].type, original.log[from + i].pid,
                          restored.log[i].pid, original.log[from + i].reason, restored.log[i].reason,
                          original.log[from + i].notify.status, restored.log[i].notify.status);
        cr_assert_geq(n, 3, "the continuation did too little to compare");
        check_same_views(&original, &restored);
        cr_assert_eq(original.n_snapshots, restored.n_snapshots);
        for (size_t i = 0; i < original.n_snapshots; i++)
                cr_assert_str_eq(original.snapshots[i], restored.snapshots[i], "round %zu", i);
        _cleanup_free_ char *end1 = serialize(&original);
        _cleanup_free_ char *end2 = serialize(&restored);
        cr_assert_str_eq(end1, end2);
}

/* ---- situations ---- */

TestSuite(engine_state, .init = setup, .fini = teardown);

/* SITUATION is set up afresh for each way of going on from it. */
static void check_situation(void (*situation)(void)) {
        for (int variant = 0; variant < 4; variant++) {
                teardown();
                setup();
                situation();
                check_hand_over(variant);
        }
}

static void situation_fresh_engine(void) {
}
Test(engine_state, fresh_engine) {
        check_situation(situation_fresh_engine);
}

static void situation_running(void) {
        struct engine_settings s = settings(3);
        start_running(&original, &s);
}
Test(engine_state, running) {
        check_situation(situation_running);
}

static void situation_starting_with_start_deadline(void) {
        struct engine_settings s = settings(2);
        s.start_timeout_usec = 7 * SEC;
        s.ready_timeout_usec = 60 * SEC;
        cr_assert_eq(engine_start(original.e, original.now, 5, "/srv/a", &s), 0);
        pump(&original);
        crash_first(&original, WORKER_STARTING); /* a start failure is remembered */
        original.now += 2 * SEC;
}
Test(engine_state, starting_with_start_deadline) {
        check_situation(situation_starting_with_start_deadline);
}

static void situation_mid_drain_with_deadlines(void) {
        struct engine_settings s = settings(3);
        start_running(&original, &s);
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original); /* the first new worker: an old one drains */
        original.now += 3 * SEC;
}
Test(engine_state, mid_drain_with_deadlines) {
        check_situation(situation_mid_drain_with_deadlines);
}

static void situation_draining_worker_already_killed(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original);
        ready_all(&original);
        to_deadline(&original, 20 * SEC); /* past drain_timeout: SIGKILL sent, not reaped yet */
        struct engine_worker w;
        bool killed = false;
        for (size_t i = 0; engine_get_worker_at(original.e, i, &w); i++)
                killed |= w.killed;
        cr_assert(killed);
}
Test(engine_state, draining_worker_already_killed) {
        check_situation(situation_draining_worker_already_killed);
}

static void situation_crash_loop_in_back_off(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        for (int i = 0; i < 4; i++) {
                crash_first(&original, WORKER_READY);
                to_deadline(&original, 20 * SEC); /* the respawn */
                ready_all(&original);
        }
        crash_first(&original, WORKER_READY); /* now waiting out a long back-off */
        original.now += 100 * MSEC;
        cr_assert_neq(engine_next_deadline(original.e), USEC_INFINITY);
}
Test(engine_state, crash_loop_in_back_off) {
        check_situation(situation_crash_loop_in_back_off);
}

static void situation_watchdog_armed_and_missed(void) {
        struct engine_settings s = settings(2);
        s.watchdog_usec = 2 * SEC;
        start_running(&original, &s);
        pid_t pids[8];
        pids_in(&original, -1, pids, 8);
        engine_worker_watchdog_usec(original.e, pids[1], 3 * SEC, original.now);
        original.now += 1 * SEC;
        engine_worker_watchdog(original.e, pids[1], original.now);
        to_deadline(&original, 20 * SEC); /* pids[0] misses it: SIGABRT, draining */
}
Test(engine_state, watchdog_armed_and_missed) {
        check_situation(situation_watchdog_armed_and_missed);
}

static void situation_memory_replacement_in_flight(void) {
        struct engine_settings s = settings(2);
        s.memory_max = 32 << 20;
        start_running(&original, &s);
        pid_t pids[8];
        pids_in(&original, -1, pids, 8);
        engine_worker_memory(original.e, pids[0], 40 << 20, original.now);
        pump(&original);
        cr_assert_eq(engine_get_memory_replacements(original.e), 1);
}
Test(engine_state, memory_replacement_in_flight) {
        check_situation(situation_memory_replacement_in_flight);
}

static void situation_memory_holdoff_after_failed_replacement(void) {
        struct engine_settings s = settings(1);
        s.memory_max = 32 << 20;
        start_running(&original, &s);
        pid_t pids[8];
        pids_in(&original, -1, pids, 8);
        engine_worker_memory(original.e, pids[0], 40 << 20, original.now);
        pump(&original);
        crash_first(&original, WORKER_STARTING); /* the replacement dies */
}
Test(engine_state, memory_holdoff_after_failed_replacement) {
        check_situation(situation_memory_holdoff_after_failed_replacement);
}

static void situation_after_failed_upgrade(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original);
        ready_all(&original);
        exit_draining(&original);
        cr_assert_str_eq(engine_get_previous_target(original.e), "/srv/app v1\nwith a newline");
        upgrade(&original, "/srv/app/v3 \"bad\"", &s);
        crash_first(&original, WORKER_STARTING);
        ready_all(&original);
        cr_assert_str_eq(engine_get_last_result(original.e),
                         "failed: worker 1004 (generation 3) was killed by signal 11 (SEGV) before it was ready");
}
Test(engine_state, after_failed_upgrade) {
        check_situation(situation_after_failed_upgrade);
}

static void situation_rolling_back(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original); /* an old worker drains: the rollback must start one */
        cr_assert_eq(engine_cancel(original.e, original.now), 0);
        pump(&original);
        cr_assert_eq(engine_get_state(original.e), ENGINE_ROLLING_BACK);
}
Test(engine_state, rolling_back) {
        check_situation(situation_rolling_back);
}

static void situation_canary_waiting(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        s.stable_time_usec = 30 * SEC;
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original);
        original.now += 10 * SEC;
        char status[1024];
        engine_format_status(original.e, original.now, status, sizeof(status));
        cr_assert(strstr(status, "canary stable in 20.0s"), "%s", status);
}
Test(engine_state, canary_waiting) {
        check_situation(situation_canary_waiting);
}

static void situation_hook_running(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        cr_assert_gt(engine_prepare_upgrade_at(original.e, original.now + SEC), 0);
        pump(&original);
}
Test(engine_state, hook_running) {
        check_situation(situation_hook_running);
}

static void situation_restart_in_flight(void) {
        struct engine_settings s = settings(2);
        start_running(&original, &s);
        cr_assert_eq(engine_restart(original.e, original.now), 0); /* SIGKILLs sent, not reaped yet */
        pump(&original);
}
Test(engine_state, restart_in_flight) {
        check_situation(situation_restart_in_flight);
}

static void situation_canary_passed_next_batch_starting(void) {
        struct engine_settings s = settings(3);
        start_running(&original, &s);
        s.stable_time_usec = 5 * SEC;
        upgrade(&original, "/srv/app/v2", &s);
        ready_all(&original);
        to_deadline(&original, 20 * SEC); /* the canary passed: an old one drains, the next starts */
        original.now += 1 * SEC;
}
Test(engine_state, canary_passed_next_batch_starting) {
        check_situation(situation_canary_passed_next_batch_starting);
}

static void situation_start_timed_out(void) {
        struct engine_settings s = settings(2);
        s.start_timeout_usec = 3 * SEC;
        s.ready_timeout_usec = 60 * SEC;
        s.drain_timeout_usec = 30 * SEC;
        cr_assert_eq(engine_start(original.e, original.now, 1, "/srv/a", &s), 0);
        pump(&original);
        pid_t pids[8];
        pids_in(&original, -1, pids, 8);
        engine_worker_ready(original.e, pids[0], original.now);
        pump(&original);
        crash_first(&original, WORKER_STARTING);
        to_deadline(&original, 20 * SEC); /* the respawn, still not all ready */
        to_deadline(&original, 20 * SEC); /* the start bound: stopping, a failure */
        cr_assert_eq(engine_get_state(original.e), ENGINE_STOPPING);
}
Test(engine_state, start_timed_out) {
        check_situation(situation_start_timed_out);
}

static void situation_memory_loop(void) {
        struct engine_settings s = settings(1);
        s.memory_max = 32 << 20;
        start_running(&original, &s);
        for (int i = 0; i < 4; i++) {
                pid_t pids[8];
                size_t n = pids_in(&original, WORKER_READY, pids, 8);
                cr_assert_eq(n, 1);
                engine_worker_memory(original.e, pids[0], 40 << 20, original.now);
                pump(&original);
                ready_all(&original);
                exit_draining(&original);
                original.now += 10 * SEC;
        }
        char status[1024];
        engine_format_status(original.e, original.now, status, sizeof(status));
        cr_assert(strstr(status, "exceeded memory_max more than 3 times"), "%s", status);
}
Test(engine_state, memory_loop) {
        check_situation(situation_memory_loop);
}

static void situation_stopping(void) {
        struct engine_settings s = settings(2);
        s.kill_mode = KILL_MODE_MIXED;
        s.drain_signal = SIGQUIT;
        start_running(&original, &s);
        engine_upgrade_refused_at(original.e, original.now, "invalid target: /srv/x");
        pump(&original);
        engine_stop(original.e, original.now);
        pump(&original);
}
Test(engine_state, stopping) {
        check_situation(situation_stopping);
}

Test(engine_state, refuses_while_actions_are_queued) {
        struct engine_settings s = settings(2);
        cr_assert_eq(engine_start(original.e, original.now, 1, "/srv/a", &s), 0);
        char *text = NULL;
        cr_assert_eq(engine_serialize(original.e, &text), -EBUSY);
        cr_assert_null(text);
        pump(&original);
        free(serialize(&original));
}

/* ---- malformed documents ---- */

/* A document of a busy engine: workers of two generations, a respawn, health. */
static char *busy_text(void) {
        struct engine_settings s = settings(2);
        s.memory_max = 32 << 20;
        start_running(&original, &s);
        pid_t pids[8];
        pids_in(&original, -1, pids, 8);
        engine_worker_memory(original.e, pids[0], 40 << 20, original.now);
        pump(&original);
        engine_worker_exited(original.e, pids[1], true, SIGSEGV, original.now);
        pump(&original);
        upgrade(&original, "/srv/app/v2", &s);
        return serialize(&original);
}

/* TEXT with the first FROM replaced by TO. */
static char *replace(const char *text, const char *from, const char *to) {
        const char *at = strstr(text, from);
        cr_assert_not_null(at, "'%s' is not in the text", from);
        char *out = NULL;
        cr_assert_gt(asprintf(&out, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from)), 0);
        return out;
}

static void expect_refused(const char *text, int error, const char *message) {
        struct engine *e = NULL;
        char buf[256] = "";
        int r = engine_restore(text, strlen(text), &e, buf, sizeof(buf));
        cr_assert_eq(r, error, "want %d, got %d (%s) for:\n%s", error, r, buf, text);
        cr_assert_null(e);
        cr_assert(strncmp(buf, "line ", 5) == 0, "no line in '%s'", buf);
        cr_assert(strstr(buf, message), "want '%s' in '%s'", message, buf);
}

static void expect_replaced_refused(const char *text, const char *from, const char *to, const char *message) {
        _cleanup_free_ char *bad = replace(text, from, to);
        expect_refused(bad, -EINVAL, message);
}

Test(engine_state, refuses_every_truncation) {
        _cleanup_free_ char *text = busy_text();
        size_t n = strlen(text);
        /* Each prefix in a buffer of its own size, with no NUL after it: under ASan, a
         * read past SIZE is caught. */
        for (size_t cut = 0; cut <= n; cut++) {
                char *copy = malloc(cut ?: 1);
                memcpy(copy, text, cut);
                struct engine *e = NULL;
                char error[256];
                int r = engine_restore(copy, cut, &e, error, sizeof(error));
                free(copy);
                if (cut == n) {
                        cr_assert_eq(r, 0, "%s", error);
                        engine_free(e);
                } else {
                        cr_assert_lt(r, 0, "cut at %zu accepted", cut);
                        cr_assert_null(e);
                }
        }
}

Test(engine_state, refuses_bad_numbers_and_values) {
        _cleanup_free_ char *text = busy_text();
        expect_replaced_refused(text, "pid=1000", "pid=-5", "pid: expected a number");
        expect_replaced_refused(text, "pid=1000", "pid=99999999999", "pid: expected a number from 0 to 2147483647");
        expect_replaced_refused(text, "slot=0", "slot=zero", "slot: expected a number");
        expect_replaced_refused(text, "slot=0", "slot=18446744073709551616", "slot: expected a number");
        expect_replaced_refused(text, "slot=0", "slot=70000", "out of range");
        expect_replaced_refused(text, "now=", "now=x", "now: expected microseconds");
        expect_replaced_refused(text, "killed=no", "killed=maybe", "killed: expected yes or no");
        expect_replaced_refused(text, "state=ready", "state=sleeping", "state: unknown value 'sleeping'");
        expect_replaced_refused(text, "target=\"/srv/app/v2\"", "target=\"/srv\\q\"", "unknown escape");
        expect_replaced_refused(text, "target=\"/srv/app/v2\"", "target=\"/srv\\x00\"", "NUL byte");
        expect_replaced_refused(text, "target=\"/srv/app/v2\"", "target=\"/srv", "closing quote");
        expect_replaced_refused(text, "workers=2", "workers=0", "workers and batch must be");
        expect_replaced_refused(text, "drain_signal=15", "drain_signal=0", "not a signal");
        expect_replaced_refused(text, "last_result=\"success\"",
                                "last_result=\""
                                "0123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789012345678901234567890123456789\"",
                                "string too long");
}

Test(engine_state, refuses_broken_references) {
        _cleanup_free_ char *text = busy_text();
        /* A worker of a generation never started, and a ready one of a generation gone. */
        expect_replaced_refused(text, "generation=1 slot=0", "generation=7 slot=0", "generation 7 was never started");
        _cleanup_free_ char *two = replace(text, "last_generation=2", "last_generation=3");
        expect_replaced_refused(two, "generation=2 slot=0 state=starting", "generation=3 slot=0 state=starting",
                                "neither current nor the candidate");
        expect_replaced_refused(text, "id=3 ", "id=1 ", "two workers have the same id 1");
        expect_replaced_refused(text, "pid=1002", "pid=1000", "two workers have the same pid 1000");
        expect_replaced_refused(text, "replaces=0", "replaces=99", "not another worker's id");
        expect_replaced_refused(text, "id=1 ", "id=99 ", "next_worker_id");
        expect_replaced_refused(text, "candidate number=2", "candidate number=0",
                                "a target without a generation number");
        expect_replaced_refused(text, "state=upgrading", "state=running", "state running cannot have a candidate");
        expect_replaced_refused(text, "preparing=no", "preparing=yes", "preparing outside the start of an upgrade");
        expect_replaced_refused(text, "current number=1 target=\"", "current number=1 target=- x=\"",
                                "unknown field 'x'");
        expect_replaced_refused(text, "failure slot=0", "failure slot=1", "expected slot 0");
}

Test(engine_state, refuses_malformed_structure) {
        _cleanup_free_ char *text = busy_text();
        expect_replaced_refused(text, "engine state=", "engine bogus=1 state=", "unknown field 'bogus'");
        expect_replaced_refused(text, "engine state=upgrading", "engine state=upgrading state=running",
                                "field 'state' given twice");
        expect_replaced_refused(text, "killed=no ", "", "worker: field 'killed' is missing");
        expect_replaced_refused(text, "respawn ", "spawn ", "unknown record 'spawn'");
        expect_replaced_refused(text, "end\n", "end\nmore\n", "text after the 'end' line");
        expect_replaced_refused(text, "end\n", "", "without its 'end' line");
        expect_replaced_refused(text, "\nworker ", "\ncurrent number=1\nworker ", "a second 'current' record");
        expect_replaced_refused(text, "now=", "now=1 now=", "given twice");
        expect_replaced_refused(text, "engine state=upgrading ", "engine  state=upgrading ", "expected NAME=VALUE");
        expect_replaced_refused(text, "liveswap-engine 1", "liveswap-engine one", "expected 'liveswap-engine VERSION'");
        expect_replaced_refused(text, "liveswap-engine 1", "liveswap-config 1", "expected 'liveswap-engine VERSION'");
        _cleanup_free_ char *v2 = replace(text, "liveswap-engine 1", "liveswap-engine 2");
        expect_refused(v2, -EPROTONOSUPPORT, "format version 2 is newer than this program reads (at most 1)");

        /* A NUL byte inside the given size. */
        _cleanup_free_ char *nul = strdup(text);
        char *at = strstr(nul, "running") ?: strstr(nul, "upgrading");
        at[1] = 0;
        struct engine *e = NULL;
        char error[256];
        cr_assert_eq(engine_restore(nul, strlen(text), &e, error, sizeof(error)), -EINVAL);
        cr_assert(strstr(error, "NUL byte"), "%s", error);
        cr_assert_eq(engine_restore("", 0, &e, error, sizeof(error)), -EINVAL);
        cr_assert_str_eq(error, "line 1: empty text, expected 'liveswap-engine VERSION'");
}

/* ---- version 1, as every later program must read it ---- */

static char *read_fixture(const char *name, size_t *ret_size) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %m", path);
        char *text = calloc(1, 1 << 16);
        *ret_size = fread(text, 1, (1 << 16) - 1, f);
        fclose(f);
        return text;
}

Test(engine_state, restores_version_1) {
        size_t size;
        _cleanup_free_ char *text = read_fixture("engine-v1.txt", &size);
        char error[256];
        int r = engine_restore(text, size, &restored.e, error, sizeof(error));
        cr_assert_eq(r, 0, "%s", error);
        restored.now = 1060 * SEC;
        restored.next_pid = 2000;

        /* What the fixture holds: generation 2 serving after an upgrade from "/srv/app v1",
         * a failed upgrade to 3, an old worker draining, a crashed slot waiting out its
         * back-off, a memory_max replacement that failed and its hold-off. */
        cr_assert_eq(engine_get_state(restored.e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(restored.e), 2);
        cr_assert_str_eq(engine_get_target(restored.e), "/srv/app/v2");
        cr_assert_str_eq(engine_get_previous_target(restored.e), "/srv/app v1\nwith a newline");
        cr_assert_str_eq(engine_get_last_result(restored.e),
                         "failed: worker 1004 (generation 3) exited with status 1 before it was ready");
        cr_assert_eq(engine_get_memory_replacements(restored.e), 1);
        cr_assert_eq(engine_count_workers(restored.e), 2);
        struct engine_worker w;
        cr_assert(engine_get_worker(restored.e, 1001, &w));
        cr_assert_eq(w.state, WORKER_DRAINING);
        cr_assert_eq(w.generation, 1);
        cr_assert_eq(w.deadline_usec, 1070 * SEC);
        cr_assert_eq(engine_next_deadline(restored.e), 1060 * SEC + 100 * MSEC);
        char status[1024];
        engine_format_status(restored.e, restored.now, status, sizeof(status));
        cr_assert(strstr(status, "replacing worker 0 (memory_max) failed 1 times, retrying in 7s"), "%s", status);

        /* And it behaves: the respawn after its back-off (the next id, its slot), then the
         * drain's SIGKILL at the recorded deadline, and only then. */
        to_deadline(&restored, 20 * SEC);
        cr_assert_eq(restored.log[0].type, ACTION_SPAWN);
        cr_assert_eq(restored.log[0].slot, 1);
        cr_assert_eq(restored.log[0].worker_id, 7);
        cr_assert_eq(restored.log[0].generation, 2);
        ready_all(&restored);
        size_t before = restored.n_log;
        to_deadline(&restored, 20 * SEC);
        cr_assert_eq(restored.now, 1070 * SEC);
        cr_assert_eq(restored.log[before].type, ACTION_SIGNAL);
        cr_assert_eq(restored.log[before].pid, 1001);
        cr_assert_eq(restored.log[before].signal, SIGKILL);
}
