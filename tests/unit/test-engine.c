/* test-engine.c: drives the upgrade state machine event by event and checks the actions
 * it queues. A fake shell pops every action, records it and reports spawns back with
 * made-up pids, exactly as supervisor.c does, but nothing is forked and no time passes
 * except through `now`. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "macro.h"

#define MSEC USEC_PER_MSEC
#define SEC USEC_PER_SEC
#define MAX_LOG 4096
#define MAX_PIDS 64
#define ANY_STATE -1

/* ---- the fake shell ---- */

static struct engine *e;
static uint64_t now;
static pid_t next_pid;
static struct engine_action recorded[MAX_LOG];
static size_t n_recorded;
static unsigned min_ready; /* checked after every event when non-zero */
static uint64_t fail_generation; /* spawns of this generation fail ... */
static unsigned fail_spawns; /* ... this many times */
static bool hold_spawns; /* do not report spawns (the fork has not happened yet) */
static uint64_t held[MAX_PIDS];
static size_t n_held;

static void setup(void) {
        cr_assert_eq(engine_new(&e), 0);
        now = 1000 * SEC;
        next_pid = 1000;
        n_recorded = 0;
        min_ready = 0;
        fail_generation = 0;
        fail_spawns = 0;
        hold_spawns = false;
        n_held = 0;
}

static void teardown(void) {
        e = engine_free(e);
}

/* Performs every queued action the way the supervisor's dispatch does. */
static void pump(void) {
        struct engine_action a;
        while (engine_next_action(e, &a)) {
                cr_assert_lt(n_recorded, MAX_LOG);
                recorded[n_recorded++] = a;
                if (a.type != ACTION_SPAWN)
                        continue;
                if (fail_spawns > 0 && a.generation == fail_generation) {
                        fail_spawns--;
                        engine_worker_spawn_failed(e, a.worker_id, "No such file or directory", now);
                } else if (hold_spawns) {
                        cr_assert_lt(n_held, MAX_PIDS);
                        held[n_held++] = a.worker_id;
                } else
                        engine_worker_spawned(e, a.worker_id, next_pid++, now);
        }
        if (min_ready > 0)
                cr_assert_geq(engine_count_ready(e), min_ready, "capacity dropped to %u ready workers (want >= %u)",
                              engine_count_ready(e), min_ready);
}

static void report_held_spawns(void) {
        for (size_t i = 0; i < n_held; i++)
                engine_worker_spawned(e, held[i], next_pid++, now);
        n_held = 0;
        pump();
}

/* ---- views ---- */

static size_t mark(void) {
        return n_recorded;
}

static size_t count_actions(size_t from, enum action_type type) {
        size_t n = 0;
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == type)
                        n++;
        return n;
}

static size_t count_spawns(size_t from, uint64_t generation) {
        size_t n = 0;
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == ACTION_SPAWN && recorded[i].generation == generation)
                        n++;
        return n;
}

/* Signals to pid (0: to anyone) of sig (0: any signal but the SIGCONT that follows each
 * drain signal, which drain_resumes_stopped_worker and its neighbours check). */
static size_t count_signals(size_t from, pid_t pid, int sig) {
        size_t n = 0;
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == ACTION_SIGNAL && (pid == 0 || recorded[i].pid == pid) &&
                    (sig == 0 ? recorded[i].purpose != SIGNAL_RESUME : recorded[i].signal == sig))
                        n++;
        return n;
}

static const struct engine_action *find_action(size_t from, enum action_type type) {
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == type)
                        return &recorded[i];
        return NULL;
}

static size_t index_of(size_t from, enum action_type type) {
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == type)
                        return i;
        return SIZE_MAX;
}

/* Workers of a generation (0: any) in a state (ANY_STATE: any), in the engine's order. */
static size_t pids_of(uint64_t generation, int state, pid_t *out) {
        struct engine_worker w;
        size_t k = 0;
        for (size_t i = 0; engine_get_worker_at(e, i, &w); i++)
                if ((generation == 0 || w.generation == generation) && (state == ANY_STATE || (int) w.state == state)) {
                        cr_assert_lt(k, MAX_PIDS);
                        out[k++] = w.pid;
                }
        return k;
}

static unsigned workers_in(uint64_t generation, int state) {
        pid_t pids[MAX_PIDS];
        return (unsigned) pids_of(generation, state, pids);
}

static pid_t first_pid(uint64_t generation, int state) {
        pid_t pids[MAX_PIDS];
        size_t n = pids_of(generation, state, pids);
        cr_assert_gt(n, 0, "no worker of generation %llu in state %d", (unsigned long long) generation, state);
        return pids[0];
}

/* A copy of the worker with PID, which must exist. */
static struct engine_worker worker(pid_t pid) {
        struct engine_worker w;
        cr_assert(engine_get_worker(e, pid, &w), "worker %d is unknown", (int) pid);
        return w;
}

static enum worker_state state_of(pid_t pid) {
        return worker(pid).state;
}

/* The generation an upgrade is building, 0 when none. */
static uint64_t candidate(void) {
        enum engine_state st = engine_get_state(e);
        return st == ENGINE_UPGRADING || st == ENGINE_ROLLING_BACK ? engine_get_generation(e) + 1 : 0;
}

static const char *status(void) {
        static char buf[1024];
        engine_format_status(e, now, buf, sizeof(buf));
        return buf;
}

/* ---- events ---- */

static void ready_pid(pid_t pid) {
        engine_worker_ready(e, pid, now);
        pump();
}

/* READY=1 from every worker of the generation that is starting now. */
static void ready_all(uint64_t generation) {
        pid_t pids[MAX_PIDS];
        size_t n = pids_of(generation, WORKER_STARTING, pids);
        for (size_t i = 0; i < n; i++)
                ready_pid(pids[i]);
}

static void ready_one(uint64_t generation) {
        ready_pid(first_pid(generation, WORKER_STARTING));
}

static void exit_pid(pid_t pid, int status) {
        engine_worker_exited(e, pid, false, status, now);
        pump();
}

static void kill_pid(pid_t pid, int sig) {
        engine_worker_exited(e, pid, true, sig, now);
        pump();
}

/* Every draining worker obeys and exits. */
static void exit_draining(void) {
        pid_t pids[MAX_PIDS];
        size_t n = pids_of(0, WORKER_DRAINING, pids);
        for (size_t i = 0; i < n; i++)
                exit_pid(pids[i], 0);
}

static void advance(uint64_t usec) {
        now += usec;
        engine_timer(e, now);
        pump();
}

/* Fires the timer at the engine's next deadline, as the shell's one timer would. */
static void advance_to_deadline(void) {
        uint64_t d = engine_next_deadline(e);
        cr_assert_neq(d, USEC_INFINITY, "no deadline armed");
        if (d > now)
                now = d;
        engine_timer(e, now);
        pump();
}

/* ---- setups ---- */

static struct engine_settings settings(unsigned workers, enum strategy strategy, unsigned batch) {
        return (struct engine_settings){
                .workers = workers,
                .strategy = strategy,
                .batch = batch,
                .ready = READY_NOTIFY,
                .ready_delay_usec = 1 * SEC,
                .ready_timeout_usec = 30 * SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 60 * SEC,
        };
}

static void start(const struct engine_settings *s) {
        cr_assert_eq(engine_start(e, now, 1, "/srv/app/v1", s), 0);
        pump();
}

/* Generation 1 with every worker ready. */
static void start_running(const struct engine_settings *s) {
        start(s);
        ready_all(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

static void begin_upgrade(const char *target, const struct engine_settings *s) {
        int64_t g = engine_prepare_upgrade(e);
        cr_assert_gt(g, (int64_t) engine_get_generation(e));
        cr_assert_eq(engine_start_upgrade(e, now, target, s), 0);
        pump();
}

static const struct engine_action *finished(size_t from) {
        cr_assert_eq(count_actions(from, ACTION_UPGRADE_FINISHED), 1, "want exactly one UPGRADE_FINISHED");
        return find_action(from, ACTION_UPGRADE_FINISHED);
}

/* ---- start ---- */

TestSuite(engine, .init = setup, .fini = teardown);

Test(engine, start_notify_ready_once_all_ready) {
        struct engine_settings s = settings(3, STRATEGY_ROLLING, 1);
        start(&s);

        cr_assert_eq(count_spawns(0, 1), 3);
        cr_assert_eq(n_recorded, 3);
        for (unsigned i = 0; i < 3; i++) {
                cr_assert_eq(recorded[i].type, ACTION_SPAWN);
                cr_assert_eq(recorded[i].generation, 1);
                cr_assert_eq(recorded[i].slot, i);
        }
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v1");
        cr_assert_eq(engine_get_desired_workers(e), 3);
        cr_assert_eq(workers_in(1, WORKER_STARTING), 3);

        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 3);
        ready_pid(pids[0]);
        ready_pid(pids[0]); /* a repeated READY=1 changes nothing */
        ready_pid(pids[1]);
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_eq(engine_count_ready(e), 2);

        ready_pid(pids[2]);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_str_eq(engine_get_last_result(e), "success");
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);

        ready_pid(pids[2]);
        ready_pid(4242); /* unknown pid */
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
}

Test(engine, start_delay_mode_ready_after_delay) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.ready = READY_DELAY;
        s.ready_delay_usec = 1500 * MSEC;
        uint64_t t0 = now;
        start(&s);

        cr_assert_eq(count_spawns(0, 1), 2);
        cr_assert_eq(engine_next_deadline(e), t0 + 1500 * MSEC);

        /* READY=1 means nothing in delay mode. */
        ready_all(1);
        cr_assert_eq(engine_count_ready(e), 0);

        advance(1499 * MSEC);
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);

        advance_to_deadline();
        cr_assert_eq(now, t0 + 1500 * MSEC);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_eq(engine_count_ready(e), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
}

Test(engine, start_rejects_bad_settings) {
        struct engine_settings s = settings(0, STRATEGY_ROLLING, 1);
        cr_assert_eq(engine_start(e, now, 1, "/srv/app/v1", &s), -EINVAL);
        s = settings(2, STRATEGY_ROLLING, 0);
        cr_assert_eq(engine_start(e, now, 1, "/srv/app/v1", &s), -EINVAL);
        s = settings(2, STRATEGY_ROLLING, 1);
        cr_assert_eq(engine_start(e, now, 1, NULL, &s), -EINVAL);
        cr_assert_eq(engine_start(e, now, 1, "/srv/app/v1", &s), 0);
        cr_assert_eq(engine_start(e, now, 1, "/srv/app/v1", &s), -EBUSY);
}

/* ---- rolling ---- */

Test(engine, rolling_batch1_one_at_a_time) {
        struct engine_settings old = settings(4, STRATEGY_ROLLING, 1);
        old.drain_signal = SIGQUIT; /* old workers drain with their own generation's signal */
        old.drain_timeout_usec = 10 * SEC;
        start_running(&old);
        engine_set_previous_target(e, "/srv/app/v0");
        min_ready = 4;

        pid_t old_pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, old_pids), 4);

        struct engine_settings s = settings(4, STRATEGY_ROLLING, 1);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        const struct engine_action *started = find_action(m, ACTION_UPGRADE_STARTED);
        cr_assert_not_null(started);
        cr_assert_eq(started->generation, 2);
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        cr_assert_eq(candidate(), 2);

        pid_t drained_pid[5];
        uint64_t drained_at[5];
        for (unsigned step = 1; step <= 4; step++) {
                /* Exactly one new worker starts at a time; nothing is drained for it yet. */
                cr_assert_eq(workers_in(2, WORKER_STARTING), 1, "step %u", step);
                cr_assert_eq(workers_in(2, WORKER_READY), step - 1);
                cr_assert_eq(workers_in(1, WORKER_DRAINING), step - 1);
                cr_assert_eq(count_spawns(m, 2), step);
                cr_assert_eq(count_signals(m, 0, 0), step - 1);

                now += 100 * MSEC;
                size_t before = mark();
                pid_t fresh = first_pid(2, WORKER_STARTING);
                ready_pid(fresh);

                /* Its replacement is ready: exactly one old worker drains, with SIGQUIT. */
                cr_assert_eq(count_signals(before, 0, 0), 1, "step %u", step);
                cr_assert_eq(count_signals(before, 0, SIGQUIT), 1);
                pid_t drained = recorded[index_of(before, ACTION_SIGNAL)].pid;
                cr_assert_eq(worker(drained).generation, 1);
                cr_assert_eq(state_of(drained), WORKER_DRAINING);
                cr_assert_eq(workers_in(1, WORKER_DRAINING), step);
                drained_pid[step] = drained;
                drained_at[step] = now;
                if (step < 4) {
                        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
                        cr_assert_eq(engine_get_generation(e), 1);
                }
        }

        const struct engine_action *f = finished(m);
        cr_assert(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert_eq(count_spawns(m, 2), 4);
        cr_assert_eq(count_spawns(m, 1), 0);
        cr_assert_eq(count_actions(m, ACTION_READY), 0, "READY=1 is for the first generation only");
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(candidate(), 0);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v2");
        cr_assert_str_eq(engine_get_previous_target(e), "/srv/app/v1");
        cr_assert_str_eq(engine_get_last_result(e), "success");
        cr_assert_eq(workers_in(2, WORKER_READY), 4);
        cr_assert_eq(engine_count_draining(e), 4);

        /* Three old workers obey; the one drained second hangs and is killed after the
         * drain timeout of its own generation (10 s after it was drained). */
        exit_pid(drained_pid[1], 0);
        exit_pid(drained_pid[3], 0);
        exit_pid(drained_pid[4], 0);
        pid_t hung = drained_pid[2];
        m = mark();
        cr_assert_eq(engine_next_deadline(e), drained_at[2] + 10 * SEC);
        now = drained_at[2] + 10 * SEC - 1;
        engine_timer(e, now);
        pump();
        cr_assert_eq(count_signals(m, 0, 0), 0);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, 0, 0), 1);
        cr_assert_eq(count_signals(m, hung, SIGKILL), 1);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
        kill_pid(hung, SIGKILL);
        cr_assert_eq(count_spawns(m, 1) + count_spawns(m, 2), 0);
        cr_assert_eq(engine_count_draining(e), 0);
        cr_assert_eq(engine_count_ready(e), 4);
}

Test(engine, rolling_drained_old_killed_after_drain_timeout) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.drain_timeout_usec = 5 * SEC;
        start_running(&s);
        min_ready = 2;
        begin_upgrade("/srv/app/v2", &s);

        uint64_t t1 = now;
        ready_one(2);
        pid_t first = first_pid(1, WORKER_DRAINING);
        now += 2 * SEC;
        ready_one(2);
        cr_assert_eq(engine_get_generation(e), 2);
        pid_t draining[MAX_PIDS];
        cr_assert_eq(pids_of(1, WORKER_DRAINING, draining), 2);
        pid_t second = draining[0] == first ? draining[1] : draining[0];

        size_t m = mark();
        cr_assert_eq(engine_next_deadline(e), t1 + 5 * SEC);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, first, SIGKILL), 1);
        cr_assert_eq(count_signals(m, second, 0), 0);
        cr_assert_eq(engine_next_deadline(e), t1 + 7 * SEC);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, second, SIGKILL), 1);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        /* Killed once: no SIGKILL storm while the kernel reaps them. */
        advance(60 * SEC);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        kill_pid(first, SIGKILL);
        kill_pid(second, SIGKILL);
        cr_assert_eq(engine_count_draining(e), 0);
        cr_assert_eq(count_spawns(m, 1) + count_spawns(m, 2), 0);
}

Test(engine, rolling_batch2) {
        struct engine_settings s = settings(4, STRATEGY_ROLLING, 2);
        start_running(&s);
        min_ready = 4;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        cr_assert_eq(count_spawns(m, 2), 2);
        cr_assert_eq(workers_in(2, WORKER_STARTING), 2);

        /* Half a batch ready: nothing drained, nothing more started. */
        ready_one(2);
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(count_spawns(m, 2), 2);

        ready_one(2);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 2);
        cr_assert_eq(count_spawns(m, 2), 4);
        cr_assert_eq(workers_in(2, WORKER_STARTING), 2);

        ready_one(2);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        ready_one(2);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 4);
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(workers_in(2, WORKER_READY), 4);
}

Test(engine, rolling_batch_not_dividing_workers) {
        struct engine_settings s = settings(3, STRATEGY_ROLLING, 2);
        start_running(&s);
        min_ready = 3;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(count_spawns(m, 2), 2);
        ready_all(2);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        cr_assert_eq(count_spawns(m, 2), 3, "the last batch is the remainder");
        ready_all(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(count_signals(m, 0, 0), 3);
}

Test(engine, rolling_to_more_workers) {
        struct engine_settings old = settings(2, STRATEGY_ROLLING, 1);
        start_running(&old);
        min_ready = 2;
        struct engine_settings s = settings(4, STRATEGY_ROLLING, 1);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        for (unsigned step = 1; step <= 4; step++) {
                cr_assert_eq(workers_in(2, WORKER_STARTING), 1, "step %u", step);
                ready_one(2);
                unsigned drained = step < 2 ? step : 2;
                cr_assert_eq(workers_in(1, WORKER_DRAINING), drained, "step %u", step);
                cr_assert_eq(count_signals(m, 0, 0), drained);
        }
        cr_assert(finished(m)->success);
        cr_assert_eq(count_spawns(m, 2), 4);
        cr_assert_eq(workers_in(2, WORKER_READY), 4);
        cr_assert_eq(engine_get_desired_workers(e), 4);
        cr_assert_eq(engine_count_ready(e), 4);
        cr_assert_eq(status()[0], 'S');
        cr_assert(strstr(status(), "4/4 ready"), "%s", status());
}

Test(engine, rolling_to_fewer_workers) {
        struct engine_settings old = settings(4, STRATEGY_ROLLING, 1);
        start_running(&old);
        min_ready = 2; /* the new generation's strength */
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        cr_assert_eq(count_spawns(m, 2), 1);
        ready_one(2);
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 1);
        cr_assert_eq(engine_count_ready(e), 4, "the old strength holds until the upgrade is done");
        cr_assert_eq(count_spawns(m, 2), 2);
        ready_one(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(count_spawns(m, 2), 2);
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 4, "every old worker drains");
        cr_assert_eq(engine_count_ready(e), 2);
        cr_assert_eq(engine_get_desired_workers(e), 2);
}

/* ---- blue-green and restart ---- */

Test(engine, blue_green_all_at_once) {
        struct engine_settings s = settings(3, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        min_ready = 3;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        cr_assert_eq(count_spawns(m, 2), 3);
        cr_assert_eq(workers_in(2, WORKER_STARTING), 3);
        ready_one(2);
        ready_one(2);
        cr_assert_eq(count_signals(m, 0, 0), 0, "no old worker drains before all new are ready");
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        cr_assert_eq(engine_count_ready(e), 5);

        pid_t old_pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, old_pids), 3);
        ready_one(2);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(count_signals(m, old_pids[i], SIGTERM), 1);
        cr_assert_eq(count_signals(m, 0, 0), 3);
        cr_assert(finished(m)->success);
        cr_assert_eq(count_spawns(m, 2), 3);
        cr_assert_eq(engine_get_generation(e), 2);
}

Test(engine, restart_strategy_old_gone_first) {
        struct engine_settings s = settings(2, STRATEGY_RESTART, 1);
        start_running(&s);
        pid_t old_pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, old_pids), 2);

        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(count_signals(m, old_pids[0], SIGTERM), 1);
        cr_assert_eq(count_signals(m, old_pids[1], SIGTERM), 1);
        cr_assert_eq(count_spawns(m, 2), 0);

        exit_pid(old_pids[1], 0);
        cr_assert_eq(count_spawns(m, 2), 0, "one old worker still runs");
        advance(500 * MSEC);
        cr_assert_eq(count_spawns(m, 2), 0);

        exit_pid(old_pids[0], 0);
        cr_assert_eq(count_spawns(m, 2), 2);
        cr_assert_eq(count_spawns(m, 1), 0);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        ready_one(2);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        ready_one(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(engine_count_ready(e), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, restart_strategy_rollback_restarts_old) {
        struct engine_settings s = settings(2, STRATEGY_RESTART, 1);
        start_running(&s);
        begin_upgrade("/srv/app/v2", &s);
        exit_draining();
        size_t m = mark();
        exit_pid(first_pid(2, WORKER_STARTING), 127);
        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        cr_assert_eq(count_spawns(m, 1), 2, "the old code is started again");
        cr_assert_eq(workers_in(2, WORKER_DRAINING), 1);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        ready_all(1);
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "exited with status 127"), "%s", f->reason);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_count_ready(e), 2);
}

/* ---- rollback ---- */

Test(engine, rollback_new_worker_exits_before_ready) {
        struct engine_settings s = settings(3, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        engine_set_previous_target(e, "/srv/app/v0");
        min_ready = 3;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        pid_t fresh[MAX_PIDS];
        cr_assert_eq(pids_of(2, ANY_STATE, fresh), 3);
        ready_pid(fresh[0]);
        exit_pid(fresh[1], 3);

        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert(strstr(f->reason, "exited with status 3"), "%s", f->reason);
        cr_assert(strstr(f->reason, "before it was ready"), "%s", f->reason);
        char pid_text[32];
        snprintf(pid_text, sizeof(pid_text), "worker %d", (int) fresh[1]);
        cr_assert(strstr(f->reason, pid_text), "%s", f->reason);

        /* Every other new worker is drained, no old one. */
        cr_assert_eq(count_signals(m, fresh[0], SIGTERM), 1);
        cr_assert_eq(count_signals(m, fresh[2], SIGTERM), 1);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        cr_assert_eq(count_spawns(m, 1), 0);
        cr_assert_eq(workers_in(1, WORKER_READY), 3);
        cr_assert_eq(workers_in(2, WORKER_DRAINING), 2);

        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(candidate(), 0);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v1");
        cr_assert_str_eq(engine_get_previous_target(e), "/srv/app/v0");
        cr_assert_eq(strncmp(engine_get_last_result(e), "failed: ", 8), 0, "%s", engine_get_last_result(e));
        cr_assert(strstr(engine_get_last_result(e), "exited with status 3"));

        /* The drained new workers leave quietly; nothing is respawned. */
        m = mark();
        exit_draining();
        ready_pid(fresh[2]);
        cr_assert_eq(n_recorded, m);
        cr_assert_eq(engine_count_ready(e), 3);
        cr_assert_eq(engine_count_draining(e), 0);

        /* The failed candidate used up its number: the next upgrade is generation 3. */
        cr_assert_eq(engine_check_upgrade(e), 3);
        cr_assert_eq(engine_get_generation(e), 1);
}

Test(engine, rollback_rolling_regains_full_strength) {
        struct engine_settings s = settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        ready_one(2); /* new #1 ready, one old drains */
        pid_t drained_old = first_pid(1, WORKER_DRAINING);
        pid_t ready_new = first_pid(2, WORKER_READY);
        pid_t failing = first_pid(2, WORKER_STARTING); /* new #2 */
        size_t before = mark();
        exit_pid(failing, 1);

        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        cr_assert_eq(candidate(), 2);
        cr_assert_eq(count_signals(before, ready_new, SIGTERM), 1);
        cr_assert_eq(count_signals(before, 0, 0), 1);
        cr_assert_eq(count_spawns(before, 1), 1, "a replacement of the old generation");
        cr_assert_eq(count_spawns(before, 2), 0);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0, "finished once the old are back");
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert(strstr(status(), "rolling back to generation 1"), "%s", status());
        cr_assert_eq(engine_prepare_upgrade(e), -EBUSY);

        /* The drained old worker stays drained. */
        cr_assert_eq(state_of(drained_old), WORKER_DRAINING);
        struct engine_worker replacement = worker(first_pid(1, WORKER_STARTING));
        cr_assert_eq(replacement.generation, 1);
        cr_assert_str_eq(replacement.target, "/srv/app/v1");

        ready_one(1);
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert(strstr(f->reason, "exited with status 1"), "%s", f->reason);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(workers_in(1, WORKER_READY), 3);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v1");
        cr_assert_str_eq(engine_get_previous_target(e), "");
}

Test(engine, rollback_ready_timeout) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        min_ready = 2;
        struct engine_settings n = s;
        n.ready_timeout_usec = 5 * SEC;
        size_t m = mark();
        uint64_t t0 = now;
        begin_upgrade("/srv/app/v2", &n);
        pid_t silent = first_pid(2, WORKER_STARTING);

        cr_assert_eq(engine_next_deadline(e), t0 + 5 * SEC);
        advance(5 * SEC - 1);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        advance_to_deadline();

        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "not ready within"), "%s", f->reason);
        cr_assert(strstr(f->reason, "5000 ms"), "%s", f->reason);
        cr_assert_eq(count_signals(m, silent, SIGTERM), 1);
        cr_assert_eq(state_of(silent), WORKER_DRAINING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, rollback_new_worker_crashes_after_ready) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        pid_t crashing = first_pid(2, WORKER_READY);
        pid_t starting = first_pid(2, WORKER_STARTING);
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 1);

        size_t before = mark();
        kill_pid(crashing, SIGSEGV);
        cr_assert_eq(count_signals(before, starting, SIGTERM), 1);
        cr_assert_eq(count_spawns(before, 1), 1);
        cr_assert_eq(count_spawns(before, 2), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        ready_all(1);

        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "killed by signal 11"), "%s", f->reason);
        cr_assert_null(strstr(f->reason, "before it was ready"), "%s", f->reason);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, rollback_on_spawn_failure) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        min_ready = 2;
        fail_generation = 2;
        fail_spawns = 1;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);

        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "could not be started"), "%s", f->reason);
        cr_assert(strstr(f->reason, "No such file or directory"), "%s", f->reason);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(count_spawns(m, 1), 0);
        cr_assert_eq(engine_count_ready(e), 2);
        cr_assert_eq(engine_count_workers(e), 2);
}

/* The number a client shows while it waits: a failed upgrade used 2 up, so the next one
 * builds 3 (not the current 1 plus one), while its hook runs too; 0 outside an upgrade. */
Test(engine, upgrade_generation_counts_failed_upgrades) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        cr_assert_eq(engine_get_upgrade_generation(e), 0);
        fail_generation = 2;
        fail_spawns = 1;
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_get_upgrade_generation(e), 0);

        cr_assert_eq(engine_prepare_upgrade(e), 3);
        cr_assert_eq(engine_get_upgrade_generation(e), 3); /* the hook's turn: not used up yet */
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v3", &s), 0);
        pump();
        cr_assert_eq(engine_get_upgrade_generation(e), 3);
        ready_all(3); /* rolling: one batch at a time */
        ready_all(3);
        cr_assert_eq(engine_get_generation(e), 3);
        cr_assert_eq(engine_get_upgrade_generation(e), 0);
}

Test(engine, spawn_failure_outside_upgrade_backs_off) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        fail_generation = 1;
        fail_spawns = 1;
        start(&s);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_eq(engine_count_workers(e), 0);
        uint64_t t0 = now;
        cr_assert_eq(engine_next_deadline(e), t0 + 100 * MSEC);
        size_t m = mark();
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1);
        ready_all(1);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
}

/* ---- draining and crashes ---- */

Test(engine, draining_worker_exit_changes_nothing) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        pid_t draining = first_pid(1, WORKER_DRAINING);

        size_t m = mark();
        unsigned ready = engine_count_ready(e);
        exit_pid(draining, 0);
        cr_assert_eq(n_recorded, m, "no action for an expected exit");
        cr_assert_not(engine_get_worker(e, draining, &(struct engine_worker){}));
        cr_assert_eq(engine_count_ready(e), ready);
        cr_assert_eq(engine_count_draining(e), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        cr_assert_eq(workers_in(2, WORKER_STARTING), 1);

        /* Even killed by a signal while draining. */
        ready_one(2);
        cr_assert_eq(engine_get_generation(e), 2);
        pid_t last = first_pid(1, WORKER_DRAINING);
        m = mark();
        kill_pid(last, SIGSEGV);
        cr_assert_eq(n_recorded, m);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
        cr_assert_eq(engine_count_ready(e), 2);

        /* An exit nobody knows about is ignored. */
        exit_pid(99999, 1);
        cr_assert_eq(n_recorded, m);
}

Test(engine, crash_respawn_backoff) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start_running(&s);
        const uint64_t expected[] = { 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000 };

        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                pid_t pid = first_pid(1, ANY_STATE);
                size_t m = mark();
                exit_pid(pid, 1);
                cr_assert_eq(count_spawns(m, 1), 0, "no respawn at once");
                cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
                cr_assert_eq(engine_next_deadline(e), now + expected[i] * MSEC, "crash %zu: want %llu ms, got %llu",
                             i + 1, (unsigned long long) expected[i],
                             (unsigned long long) ((engine_next_deadline(e) - now) / MSEC));
                if (i >= 1) {
                        char want[128];
                        snprintf(want, sizeof(want), "crashed %zu times in a row", i + 1);
                        cr_assert(strstr(status(), want), "%s", status());
                } else
                        cr_assert_null(strstr(status(), "crashed"), "%s", status());
                advance(expected[i] * MSEC - 1);
                cr_assert_eq(count_spawns(m, 1), 0);
                advance_to_deadline();
                cr_assert_eq(count_spawns(m, 1), 1);
                cr_assert_eq(recorded[index_of(m, ACTION_SPAWN)].slot, 0);
        }

        /* Up long enough to count as healthy: the back-off starts over. */
        ready_one(1);
        cr_assert_eq(engine_count_ready(e), 1);
        now += 10 * SEC;
        exit_pid(first_pid(1, ANY_STATE), 1);
        cr_assert_eq(engine_next_deadline(e), now + 100 * MSEC);
        cr_assert_null(strstr(status(), "crashed"), "%s", status());
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
}

Test(engine, crash_backoff_not_reset_when_briefly_ready) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start_running(&s);
        exit_pid(first_pid(1, ANY_STATE), 1);
        advance_to_deadline();
        ready_one(1);
        now += 9 * SEC;
        exit_pid(first_pid(1, ANY_STATE), 1);
        cr_assert_eq(engine_next_deadline(e), now + 200 * MSEC);
        cr_assert(strstr(status(), "worker 0 crashed 2 times in a row, restarting in 0.2s"), "%s", status());
        cr_assert(strstr(status(), "Serving generation 1"), "%s", status());
        cr_assert(strstr(status(), "0/1 ready"), "%s", status());
}

Test(engine, crash_loop_while_starting_respawns) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        ready_pid(pids[0]);
        exit_pid(pids[1], 2);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        size_t m = mark();
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1);
        cr_assert_eq(recorded[index_of(m, ACTION_SPAWN)].slot, 1);
        ready_one(1);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, not_ready_in_time_outside_upgrade_is_replaced) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        s.ready_timeout_usec = 2 * SEC;
        start(&s);
        pid_t pid = first_pid(1, ANY_STATE);
        size_t m = mark();
        advance_to_deadline();
        cr_assert_eq(count_signals(m, pid, SIGKILL), 1);
        cr_assert_eq(state_of(pid), WORKER_DRAINING);
        kill_pid(pid, SIGKILL);
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1);
        ready_one(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

/* ---- one upgrade at a time ---- */

Test(engine, second_upgrade_refused) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);

        cr_assert_eq(engine_check_upgrade(e), 2);
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        /* The hook phase. */
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        cr_assert_eq(engine_prepare_upgrade(e), -EBUSY);
        cr_assert_eq(engine_check_upgrade(e), -EBUSY);
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v2", &(struct engine_settings){ 0 }), -EINVAL);
        cr_assert_eq(engine_prepare_upgrade(e), -EBUSY, "a rejected start keeps the reservation");
        size_t m = mark();
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v2", &s), 0);
        pump();
        cr_assert_eq(engine_prepare_upgrade(e), -EBUSY);
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v3", &s), -EBUSY, "not reserved");
        cr_assert_eq(engine_restart(e, now), -EBUSY);
        ready_all(2);
        ready_all(2);
        cr_assert(finished(m)->success);

        cr_assert_eq(engine_check_upgrade(e), 3);
        cr_assert_eq(engine_prepare_upgrade(e), 3);
        engine_abort_upgrade(e, "hook said no");
        pump();
        cr_assert_eq(engine_prepare_upgrade(e), 3);
}

Test(engine, abort_during_prepare) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        cr_assert_eq(candidate(), 2);
        cr_assert(strstr(status(), "Upgrading to generation 2: running the pre-upgrade hook"), "%s", status());

        engine_abort_upgrade(e, "pre-upgrade hook failed: database is read-only");
        pump();
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert_str_eq(f->reason, "pre-upgrade hook failed: database is read-only");
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(candidate(), 0);
        cr_assert_eq(count_actions(m, ACTION_SPAWN), 0);
        cr_assert_eq(count_actions(m, ACTION_SIGNAL), 0);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_STARTED), 0);
        cr_assert(strstr(engine_get_last_result(e), "database is read-only"));

        /* A second abort, without a reservation, does nothing. */
        m = mark();
        engine_abort_upgrade(e, "again");
        pump();
        cr_assert_eq(n_recorded, m);
}

/* ---- stop ---- */

Test(engine, stop_during_upgrade) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2); /* old #1 draining, new #1 ready, new #2 starting */
        cr_assert_eq(engine_count_draining(e), 1);

        size_t before = mark();
        engine_stop(e, now);
        pump();
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert(strlen(f->reason) > 0);
        cr_assert_eq(engine_get_state(e), ENGINE_STOPPING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(count_signals(before, 0, SIGTERM), 3, "every worker not yet draining");
        cr_assert_eq(engine_count_draining(e), 4);
        cr_assert_eq(count_actions(before, ACTION_SPAWN), 0);
        cr_assert_str_eq(status(), "Stopping: 4 workers draining");

        /* Further requests are refused. */
        cr_assert_eq(engine_prepare_upgrade(e), -ESHUTDOWN);
        cr_assert_eq(engine_cancel(e, now), -ENOENT);
        cr_assert_eq(engine_set_workers(e, now, 3), -EBUSY);
        cr_assert_eq(engine_restart(e, now), -EBUSY);

        pid_t pids[MAX_PIDS];
        size_t n = pids_of(0, ANY_STATE, pids);
        cr_assert_eq(n, 4);
        for (size_t i = 0; i < n; i++) {
                cr_assert_eq(count_actions(before, ACTION_EXIT), 0);
                if (i == 1)
                        kill_pid(pids[i], SIGSEGV); /* a crash while stopping is not respawned */
                else
                        exit_pid(pids[i], 0);
                advance(1 * MSEC);
        }
        cr_assert_eq(count_actions(before, ACTION_EXIT), 1);
        cr_assert_eq(recorded[n_recorded - 1].type, ACTION_EXIT);
        cr_assert_eq(count_actions(before, ACTION_SPAWN), 0);
        cr_assert_eq(count_actions(0, ACTION_UPGRADE_FINISHED), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_STOPPED);

        engine_stop(e, now);
        pump();
        cr_assert_eq(count_actions(before, ACTION_EXIT), 1);
}

Test(engine, stop_during_hook_cancels_it) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        engine_stop(e, now);
        pump();
        cr_assert_eq(count_actions(m, ACTION_CANCEL_HOOK), 1);
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
        cr_assert_eq(engine_get_state(e), ENGINE_STOPPING);

        /* The shell reports the hook's end as told; no second UPGRADE_FINISHED. */
        engine_abort_upgrade(e, "cancelled");
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v2", &s), -EBUSY);
        pump();
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 1);
        cr_assert_eq(count_spawns(m, 2), 0);
        exit_draining();
        cr_assert_eq(count_actions(m, ACTION_EXIT), 1);
}

Test(engine, stop_kills_after_drain_timeout) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.drain_timeout_usec = 3 * SEC;
        start_running(&s);
        size_t m = mark();
        uint64_t t0 = now;
        engine_stop(e, now);
        pump();
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0, "no upgrade to report");
        cr_assert_eq(engine_next_deadline(e), t0 + 3 * SEC);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        exit_pid(pids[0], 0);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, pids[1], SIGKILL), 1);
        cr_assert_eq(count_actions(m, ACTION_EXIT), 0);
        kill_pid(pids[1], SIGKILL);
        cr_assert_eq(count_actions(m, ACTION_EXIT), 1);
}

Test(engine, stop_before_spawn_reported_signals_late) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        hold_spawns = true;
        start(&s);
        size_t m = mark();
        engine_stop(e, now);
        pump();
        cr_assert_eq(count_signals(m, 0, 0), 0, "no pid to signal yet");
        hold_spawns = false;
        report_held_spawns();
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
        exit_draining();
        cr_assert_eq(count_actions(m, ACTION_EXIT), 1);
}

Test(engine, stop_with_pending_respawn) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        exit_pid(first_pid(1, ANY_STATE), 1);
        size_t m = mark();
        engine_stop(e, now);
        pump();
        exit_draining();
        cr_assert_eq(count_actions(m, ACTION_EXIT), 1);
        advance(20 * SEC);
        cr_assert_eq(count_actions(m, ACTION_SPAWN), 0, "no respawn after the stop");
}

/* ---- cancel, restart, scale ---- */

Test(engine, cancel_rolls_back) {
        struct engine_settings s = settings(2, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        cr_assert_eq(engine_cancel(e, now), -ENOENT);

        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        cr_assert_eq(engine_cancel(e, now), 0);
        pump();
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "cancelled"), "%s", f->reason);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
        cr_assert_eq(workers_in(2, WORKER_DRAINING), 2);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_cancel(e, now), -ENOENT);
}

Test(engine, cancel_during_hook) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        cr_assert_eq(engine_cancel(e, now), 0);
        pump();
        cr_assert_eq(count_actions(m, ACTION_CANCEL_HOOK), 1);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0, "the shell aborts once the hook is gone");
        engine_abort_upgrade(e, "cancelled");
        pump();
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, restart_kills_and_replaces) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        unsigned slot1 = worker(pids[1]).slot;

        size_t m = mark();
        cr_assert_eq(engine_restart(e, now), 0);
        pump();
        cr_assert_eq(count_signals(m, pids[0], SIGKILL), 1);
        cr_assert_eq(count_signals(m, pids[1], SIGKILL), 1);
        cr_assert_eq(count_signals(m, 0, 0), 2);
        cr_assert_eq(count_actions(m, ACTION_SPAWN), 0, "replacements wait for the exit");

        kill_pid(pids[1], SIGKILL);
        cr_assert_eq(count_spawns(m, 1), 1, "replaced at once, no back-off");
        cr_assert_eq(recorded[index_of(m, ACTION_SPAWN)].slot, slot1);
        kill_pid(pids[0], SIGKILL);
        cr_assert_eq(count_spawns(m, 1), 2);
        cr_assert_eq(workers_in(1, WORKER_STARTING), 2);
        ready_all(1);
        cr_assert_eq(engine_count_ready(e), 2);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_null(strstr(status(), "crashed"), "%s", status());
}

Test(engine, restart_busy_unless_running) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start(&s);
        cr_assert_eq(engine_restart(e, now), -EBUSY);
        ready_all(1);
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        cr_assert_eq(engine_restart(e, now), -EBUSY);
}

Test(engine, set_workers_up_and_down) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        cr_assert_eq(engine_set_workers(e, now, 0), -EINVAL);

        size_t m = mark();
        now += 1 * SEC;
        cr_assert_eq(engine_set_workers(e, now, 3), 0);
        pump();
        now += 1 * SEC;
        cr_assert_eq(engine_set_workers(e, now, 4), 0);
        pump();
        cr_assert_eq(count_spawns(m, 1), 2);
        cr_assert_eq(recorded[m].slot, 2);
        cr_assert_eq(recorded[m + 1].slot, 3);
        cr_assert_eq(engine_get_desired_workers(e), 4);
        cr_assert_eq(engine_count_ready(e), 2, "not counted until ready");
        cr_assert(strstr(status(), "2/4 ready"), "%s", status());
        cr_assert_eq(count_actions(m, ACTION_READY), 0);
        ready_all(1);
        cr_assert_eq(engine_count_ready(e), 4);

        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 4);
        m = mark();
        cr_assert_eq(engine_set_workers(e, now, 3), 0);
        pump();
        cr_assert_eq(count_signals(m, pids[3], SIGTERM), 1, "newest first");
        cr_assert_eq(count_signals(m, 0, 0), 1);
        cr_assert_eq(engine_set_workers(e, now, 1), 0);
        pump();
        cr_assert_eq(count_signals(m, pids[2], SIGTERM), 1);
        cr_assert_eq(count_signals(m, 0, 0), 3);
        cr_assert_eq(state_of(pids[0]) == WORKER_READY || state_of(pids[1]) == WORKER_READY, true);
        cr_assert_eq(engine_count_ready(e), 1);
        cr_assert_eq(engine_get_desired_workers(e), 1);
        size_t before_exit = mark();
        exit_draining();
        cr_assert_eq(n_recorded, before_exit, "scaled-down workers are not respawned");

        /* Same count: nothing happens. */
        m = mark();
        cr_assert_eq(engine_set_workers(e, now, 1), 0);
        pump();
        cr_assert_eq(n_recorded, m);

        cr_assert_eq(engine_prepare_upgrade(e), 2);
        cr_assert_eq(engine_set_workers(e, now, 2), -EBUSY, "during the hook");
        cr_assert_eq(engine_start_upgrade(e, now, "/srv/app/v2", &s), 0);
        pump();
        cr_assert_eq(engine_set_workers(e, now, 2), -EBUSY, "during the upgrade");
        cr_assert_eq(engine_set_workers(e, now, 0), -EINVAL);
}

Test(engine, set_workers_down_prefers_starting_workers) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        now += SEC;
        cr_assert_eq(engine_set_workers(e, now, 3), 0);
        pump();
        pid_t fresh = first_pid(1, WORKER_STARTING);
        size_t m = mark();
        cr_assert_eq(engine_set_workers(e, now, 2), 0);
        pump();
        cr_assert_eq(count_signals(m, fresh, SIGTERM), 1);
        cr_assert_eq(engine_count_ready(e), 2);
}

/* ---- status ---- */

Test(engine, status_strings) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "starting");
        cr_assert_str_eq(status(), "Starting generation 1 (/srv/app/v1): 0/2 ready");
        ready_one(1);
        cr_assert_str_eq(status(), "Starting generation 1 (/srv/app/v1): 1/2 ready");
        ready_one(1);
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "running");
        cr_assert_str_eq(status(), "Serving generation 1 (/srv/app/v1): 2/2 ready");

        begin_upgrade("/srv/app/v2", &s);
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "upgrading");
        cr_assert_str_eq(status(), "Upgrading to generation 2: 0/2 ready");
        ready_one(2);
        cr_assert_str_eq(status(), "Upgrading to generation 2: 1/2 ready, 1 draining");

        pid_t failing = first_pid(2, WORKER_STARTING);
        exit_pid(failing, 4);
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "rolling-back");
        char want[512];
        snprintf(want, sizeof(want),
                 "Upgrade to generation 2 failed: worker %d (generation 2) exited with status 4 before it was "
                 "ready; rolling back to generation 1, 2 draining",
                 (int) failing);
        cr_assert_str_eq(status(), want);

        ready_one(1);
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "running");
        snprintf(want, sizeof(want),
                 "Upgrade to generation 2 failed: worker %d (generation 2) exited with status 4 before it was "
                 "ready; serving generation 1 (/srv/app/v1): 2/2 ready, 2 draining",
                 (int) failing);
        cr_assert_str_eq(status(), want);
        exit_draining();
        cr_assert(strstr(status(), "; serving generation 1 (/srv/app/v1): 2/2 ready"), "%s", status());
        cr_assert_null(strstr(status(), "draining"), "%s", status());

        /* The next upgrade clears the failure. Generation 2 is used up; an upgrade refused
         * by its hook uses no number, so the one after it is generation 3 too. */
        cr_assert_eq(engine_prepare_upgrade(e), 3);
        engine_abort_upgrade(e, "no");
        pump();
        cr_assert_str_eq(status(), "Upgrade to generation 3 failed: no; serving generation 1 (/srv/app/v1): 2/2 ready");
        begin_upgrade("/srv/app/v2", &s);
        ready_all(3);
        ready_all(3);
        cr_assert_str_eq(status(), "Serving generation 3 (/srv/app/v2): 2/2 ready, 2 draining");

        engine_stop(e, now);
        pump();
        cr_assert_str_eq(engine_state_to_string(engine_get_state(e)), "stopping");
        cr_assert_str_eq(status(), "Stopping: 4 workers draining");
        exit_draining();
        cr_assert_str_eq(status(), "Stopping: 0 workers draining");

        char tiny[8];
        engine_format_status(e, now, tiny, sizeof(tiny));
        cr_assert_str_eq(tiny, "Stoppin");
        cr_assert_str_eq(worker_state_to_string(WORKER_DRAINING), "draining");
}

Test(engine, status_is_valid_utf8_whatever_the_reasons) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        /* A hook's stderr line is any bytes; systemd drops a STATUS= that is not UTF-8. */
        engine_upgrade_refused(e, "hook failed: bad \xff\xfe bytes");
        pump();
        cr_assert_str_eq(status(), "Hook failed: bad \\xff\\xfe bytes; serving generation 1 (/srv/app/v1): 2/2 ready");
}

Test(engine, refused_upgrade_shows_in_status) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        size_t m = mark();
        engine_upgrade_refused(e, "upgrade refused, invalid target: /srv/app/v3 is not executable");
        pump();
        cr_assert_eq(count_actions(m, ACTION_NOTIFY), n_recorded - m, "a refusal changes nothing but the status");
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_str_eq(status(), "Upgrade refused, invalid target: /srv/app/v3 is not executable; "
                                   "serving generation 1 (/srv/app/v1): 2/2 ready");
        begin_upgrade("/srv/app/v2", &s);
        ready_all(2); /* rolling: one batch at a time */
        ready_all(2);
        cr_assert_str_eq(status(), "Serving generation 2 (/srv/app/v2): 2/2 ready, 2 draining");
}

/* Every worker that becomes ready is reported once, however it became ready. */
Test(engine, worker_ready_reported) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        cr_assert_eq(count_actions(0, ACTION_WORKER_READY), 2);
        const struct engine_action *a = find_action(0, ACTION_WORKER_READY);
        cr_assert_eq(a->generation, 1);
        cr_assert_gt(a->pid, 0);
        cr_assert_lt(index_of(0, ACTION_WORKER_READY), index_of(0, ACTION_READY));

        s.ready = READY_DELAY;
        s.ready_delay_usec = 500 * MSEC;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        advance(200 * MSEC);
        cr_assert_eq(count_actions(m, ACTION_WORKER_READY), 0);
        advance(400 * MSEC);
        cr_assert_eq(count_actions(m, ACTION_WORKER_READY), 1);
        advance(600 * MSEC);
        cr_assert_eq(count_actions(m, ACTION_WORKER_READY), 2);
        cr_assert_eq(find_action(m, ACTION_WORKER_READY)->generation, 2);
}

/* ---- upgrades out of a bad start ---- */

Test(engine, upgrade_while_first_generation_starting) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        /* The deployed code crash-loops. */
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        exit_pid(pids[0], 1);
        exit_pid(pids[1], 1);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);

        cr_assert_eq(engine_check_upgrade(e), 2);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        cr_assert_eq(count_spawns(m, 2), 1);
        advance_to_deadline(); /* respawns of the broken code go on meanwhile */
        cr_assert_eq(count_spawns(m, 1), 2);
        exit_pid(first_pid(1, WORKER_STARTING), 1);

        ready_one(2);
        ready_one(2);
        const struct engine_action *f = finished(m);
        cr_assert(f->success);
        cr_assert_eq(f->generation, 2);
        size_t fin = index_of(m, ACTION_UPGRADE_FINISHED);
        size_t ready = index_of(m, ACTION_READY);
        cr_assert_neq(ready, SIZE_MAX, "READY=1 once the replacement serves");
        /* Like the READY=1 it goes with: before the callers hear that the upgrade ended. */
        cr_assert_lt(ready, fin);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(workers_in(1, ANY_STATE), workers_in(1, WORKER_DRAINING));
        cr_assert_null(strstr(status(), "crashed"), "%s", status());

        /* The old slots' respawns died with their generation. */
        exit_draining();
        m = mark();
        advance(20 * SEC);
        cr_assert_eq(count_spawns(m, 1), 0);
}

Test(engine, failed_upgrade_while_starting_still_reports_ready) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        /* The first generation comes up while the upgrade runs ... */
        ready_all(1);
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        /* ... and the upgrade fails. */
        exit_pid(first_pid(2, WORKER_STARTING), 1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING, "state %s", engine_state_to_string(engine_get_state(e)));
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
        cr_assert_eq(engine_restart(e, now), 0, "a running engine accepts requests");
}

Test(engine, aborted_hook_while_starting_still_reports_ready) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        ready_all(1);
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        engine_abort_upgrade(e, "hook failed");
        pump();
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
}

Test(engine, failed_upgrade_while_starting_keeps_starting) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        exit_pid(first_pid(2, WORKER_STARTING), 1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        ready_all(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(count_actions(0, ACTION_READY), 1);
}

/* ---- a crashing old worker during an upgrade ---- */

Test(engine, old_worker_crash_during_rolling_upgrade) {
        struct engine_settings s = settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        pid_t old[MAX_PIDS];
        cr_assert_eq(pids_of(1, WORKER_READY, old), 3);
        exit_pid(old[0], 1); /* an old worker crashes: respawn pending */
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        ready_one(2);
        /* The pending respawn serves nobody: it goes instead of a ready old worker. */
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(engine_count_ready(e), 3);
        ready_one(2);
        ready_one(2);
        cr_assert(finished(m)->success);
        advance(20 * SEC);
        cr_assert_eq(count_spawns(m, 1), 0);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
}

Test(engine, rolling_delay_mode_timer_driven) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.ready = READY_DELAY;
        start(&s);
        advance_to_deadline();
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        min_ready = 2;

        size_t m = mark();
        uint64_t t0 = now;
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(engine_next_deadline(e), t0 + 1 * SEC);
        ready_all(2); /* READY=1 is ignored in delay mode */
        cr_assert_eq(count_signals(m, 0, 0), 0);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, 0, SIGTERM), 1);
        cr_assert_eq(count_spawns(m, 2), 2);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        /* The drained worker's kill deadline is later than the new worker's ready delay. */
        cr_assert_eq(engine_next_deadline(e), t0 + 2 * SEC);
        advance_to_deadline();
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 2);
}

Test(engine, rollback_counts_pending_respawn) {
        struct engine_settings s = settings(2, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        exit_pid(first_pid(1, WORKER_READY), 1); /* an old worker crashes: respawn pending */
        exit_pid(first_pid(2, WORKER_STARTING), 1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(count_spawns(m, 1), 0, "the pending respawn restores the old strength");
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1);
        ready_all(1);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
}

Test(engine, old_worker_respawned_during_blue_green) {
        struct engine_settings s = settings(2, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        exit_pid(first_pid(1, WORKER_READY), 1);
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1, "the old generation is kept at strength meanwhile");
        pid_t respawned = first_pid(1, WORKER_STARTING);
        ready_all(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(count_signals(m, respawned, SIGTERM), 1);
        cr_assert_eq(workers_in(1, ANY_STATE), workers_in(1, WORKER_DRAINING));
}

/* ---- a stopped worker drains: SIGCONT, then the drain signal ---- */

/* The signal actions to pid from `from` on, in order; returns how many. */
static size_t signals_to(size_t from, pid_t pid, const struct engine_action **out, size_t max) {
        size_t k = 0;
        for (size_t i = from; i < n_recorded && k < max; i++)
                if (recorded[i].type == ACTION_SIGNAL && recorded[i].pid == pid)
                        out[k++] = &recorded[i];
        return k;
}

Test(engine, drain_resumes_stopped_worker) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        begin_upgrade("/srv/app/v2", &s);
        size_t m = mark();
        ready_one(2);
        pid_t old = first_pid(1, WORKER_DRAINING);

        /* SIGCONT, then at once SIGTERM to the same pid and the same scope: a worker
         * stopped with SIGSTOP runs its drain instead of waiting to be killed, and no
         * SIGCONT can come after the worker has begun to exit. */
        size_t cont = index_of(m, ACTION_SIGNAL);
        cr_assert_eq(recorded[cont].pid, old);
        cr_assert_eq(recorded[cont].signal, SIGCONT);
        cr_assert_eq(recorded[cont].purpose, SIGNAL_RESUME);
        cr_assert(recorded[cont].group);
        cr_assert_eq(recorded[cont + 1].type, ACTION_SIGNAL);
        cr_assert_eq(recorded[cont + 1].pid, old);
        cr_assert_eq(recorded[cont + 1].signal, SIGTERM);
        cr_assert_eq(recorded[cont + 1].purpose, SIGNAL_DRAIN);
        cr_assert(recorded[cont + 1].group);
        cr_assert_eq(count_signals(m, old, SIGCONT), 1);

        /* The SIGKILL at drain_timeout needs no SIGCONT: it ends a stopped process too. */
        ready_one(2);
        exit_pid(first_pid(1, WORKER_DRAINING) == old ? 0 : first_pid(1, WORKER_DRAINING), 0);
        m = mark();
        advance(60 * SEC);
        cr_assert_eq(count_signals(m, old, SIGKILL), 1);
        cr_assert_eq(count_signals(m, old, SIGCONT), 0);
        cr_assert_eq(recorded[index_of(m, ACTION_SIGNAL)].purpose, SIGNAL_KILL);
}

Test(engine, drain_resume_skipped_for_cont_and_kill) {
        const int signals[] = { SIGCONT, SIGKILL };
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                teardown();
                setup();
                struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
                s.drain_signal = signals[i];
                start_running(&s);
                pid_t pid = first_pid(1, ANY_STATE);
                size_t m = mark();
                engine_stop(e, now);
                pump();
                const struct engine_action *got[8];
                cr_assert_eq(signals_to(m, pid, got, 8), 1, "%s: one signal, not a second SIGCONT",
                             sigabbrev_np(signals[i]));
                cr_assert_eq(got[0]->signal, signals[i]);
        }
}

Test(engine, stop_resumes_every_worker_even_before_spawn_reported) {
        struct engine_settings s = settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        size_t m = mark();
        engine_stop(e, now);
        pump();
        cr_assert_eq(count_signals(m, 0, SIGTERM), 3);
        cr_assert_eq(count_signals(m, 0, SIGCONT), 3);

        teardown();
        setup();
        hold_spawns = true;
        start(&s);
        m = mark();
        engine_stop(e, now);
        pump();
        hold_spawns = false;
        report_held_spawns();
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 3);
        for (size_t i = 0; i < 3; i++) {
                const struct engine_action *got[8];
                cr_assert_eq(signals_to(m, pids[i], got, 8), 2);
                cr_assert_eq(got[0]->signal, SIGCONT);
                cr_assert_eq(got[1]->signal, SIGTERM);
        }
}

/* ---- kill_mode ---- */

Test(engine, kill_mode_mixed_drains_main_process_kills_group) {
        struct engine_settings old = settings(1, STRATEGY_ROLLING, 1);
        old.kill_mode = KILL_MODE_MIXED;
        old.drain_timeout_usec = 5 * SEC;
        start_running(&old);
        pid_t first = first_pid(1, ANY_STATE);

        /* The new generation goes back to group: each worker keeps its own generation's mode. */
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        s.kill_mode = KILL_MODE_GROUP;
        begin_upgrade("/srv/app/v2", &s);
        size_t m = mark();
        ready_one(2);
        const struct engine_action *got[8];
        cr_assert_eq(signals_to(m, first, got, 8), 2);
        cr_assert_eq(got[0]->signal, SIGCONT);
        cr_assert_not(got[0]->group, "mixed: SIGCONT to the main process only");
        cr_assert_eq(got[1]->signal, SIGTERM);
        cr_assert_not(got[1]->group, "mixed: the drain signal to the main process only");

        m = mark();
        advance_to_deadline();
        cr_assert_eq(signals_to(m, first, got, 8), 1);
        cr_assert_eq(got[0]->signal, SIGKILL);
        cr_assert(got[0]->group, "the SIGKILL at drain_timeout reaches the whole group");
        kill_pid(first, SIGKILL);

        pid_t second = first_pid(2, WORKER_READY);
        m = mark();
        engine_stop(e, now);
        pump();
        cr_assert_eq(signals_to(m, second, got, 8), 2);
        cr_assert(got[0]->group && got[1]->group, "generation 2 drains with kill_mode=group");
}

Test(engine, kill_mode_mixed_kills_are_group_wide) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.kill_mode = KILL_MODE_MIXED;
        s.ready_timeout_usec = 2 * SEC;
        start_running(&s);
        /* Restart: SIGKILL to the group. */
        size_t m = mark();
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        cr_assert_eq(engine_restart(e, now), 0);
        pump();
        cr_assert_eq(count_signals(m, 0, SIGKILL), 2);
        for (size_t i = m; i < n_recorded; i++)
                if (recorded[i].type == ACTION_SIGNAL)
                        cr_assert(recorded[i].group);
        kill_pid(pids[0], SIGKILL);
        kill_pid(pids[1], SIGKILL);
        /* Not ready in time: drained (main process) and killed (group). */
        m = mark();
        advance(2 * SEC);
        cr_assert_eq(count_signals(m, 0, SIGKILL), 2);
        for (size_t i = m; i < n_recorded; i++)
                if (recorded[i].type == ACTION_SIGNAL)
                        cr_assert_eq(recorded[i].group, recorded[i].signal == SIGKILL, "%s",
                                     sigabbrev_np(recorded[i].signal));
}

/* ---- start_timeout ---- */

static struct engine_settings bounded(unsigned workers, uint64_t start_timeout) {
        struct engine_settings s = settings(workers, STRATEGY_ROLLING, 1);
        s.start_timeout_usec = start_timeout;
        return s;
}

/* Every starting worker of generation 1 exits with status 1. */
static void crash_starting(void) {
        pid_t pids[MAX_PIDS];
        size_t n = pids_of(1, WORKER_STARTING, pids);
        for (size_t i = 0; i < n; i++)
                exit_pid(pids[i], 1);
}

Test(engine, start_timeout_crash_loop_stops_and_fails) {
        struct engine_settings s = bounded(2, 90 * SEC);
        s.ready_timeout_usec = 120 * SEC;
        uint64_t t0 = now;
        start(&s);
        cr_assert_eq(engine_next_deadline(e), t0 + 90 * SEC);

        /* A crash loop: every worker dies, is respawned after its back-off, dies again. */
        unsigned crashes = 0;
        while (engine_get_state(e) == ENGINE_STARTING) {
                crashes += workers_in(1, WORKER_STARTING);
                crash_starting();
                cr_assert_eq(count_actions(0, ACTION_START_FAILED), 0);
                advance_to_deadline();
                cr_assert_leq(now, t0 + 90 * SEC);
        }
        cr_assert_eq(now, t0 + 90 * SEC, "gave up exactly at the deadline");
        const struct engine_action *failed = find_action(0, ACTION_START_FAILED);
        cr_assert_not_null(failed);
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 1);
        char want[512];
        snprintf(want, sizeof(want),
                 "Start timed out: generation 1 not ready after 90s (0/2 ready, %u crashes; last: ", crashes);
        cr_assert(strncmp(failed->reason, want, strlen(want)) == 0, "%s", failed->reason);
        cr_assert(strstr(failed->reason, "exited with status 1)"), "%s", failed->reason);
        cr_assert(strncmp(engine_get_last_result(e), "failed: Start timed out", 23) == 0, "%s",
                  engine_get_last_result(e));

        /* Both slots were waiting out their back-off (the last crashes at 82.7 s, the
         * respawns due at 92.7 s): nothing to stop, so the exit follows at once, and the
         * respawns never happen. */
        size_t at = index_of(0, ACTION_START_FAILED);
        cr_assert_eq(count_spawns(at, 1), 0);
        cr_assert_eq(count_signals(at, 0, 0), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_STOPPED);
        const struct engine_action *exit = find_action(at, ACTION_EXIT);
        cr_assert_not_null(exit);
        cr_assert_not(exit->success);
        cr_assert_str_eq(exit->reason, failed->reason);
        cr_assert(strncmp(status(), "Start timed out: generation 1 not ready after 90s", 49) == 0, "%s", status());
        cr_assert_eq(count_actions(0, ACTION_READY), 0);
        cr_assert_eq(engine_check_upgrade(e), -ESHUTDOWN);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
}

Test(engine, start_timeout_drains_ready_workers_kills_starting_ones) {
        struct engine_settings s = bounded(3, 10 * SEC);
        s.ready_timeout_usec = 60 * SEC; /* the start bound comes first */
        s.drain_timeout_usec = 5 * SEC;
        start(&s);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 3);
        ready_pid(pids[0]);
        ready_pid(pids[1]);

        size_t m = mark();
        advance(10 * SEC);
        const struct engine_action *failed = find_action(m, ACTION_START_FAILED);
        cr_assert_not_null(failed);
        cr_assert_str_eq(failed->reason, "Start timed out: generation 1 not ready after 10s (2/3 ready, 0 crashes)");
        cr_assert_str_eq(status(), "Start timed out: generation 1 not ready after 10s (2/3 ready, 0 crashes); "
                                   "stopping: 3 workers draining");
        /* The ready ones may be serving requests: they drain, with SIGCONT. */
        for (size_t i = 0; i < 2; i++) {
                const struct engine_action *got[8];
                cr_assert_eq(signals_to(m, pids[i], got, 8), 2);
                cr_assert_eq(got[0]->signal, SIGCONT);
                cr_assert_eq(got[1]->signal, SIGTERM);
                cr_assert_eq(state_of(pids[i]), WORKER_DRAINING);
        }
        cr_assert_eq(count_signals(m, pids[2], 0), 1);
        cr_assert_eq(count_signals(m, pids[2], SIGKILL), 1);

        kill_pid(pids[2], SIGKILL);
        exit_pid(pids[0], 0);
        /* One that ignores the drain signal is killed at its drain_timeout, as in any stop. */
        m = mark();
        advance_to_deadline();
        cr_assert_eq(count_signals(m, pids[1], SIGKILL), 1);
        kill_pid(pids[1], SIGKILL);
        const struct engine_action *exit = find_action(m, ACTION_EXIT);
        cr_assert_not_null(exit);
        cr_assert_not(exit->success);
}

Test(engine, start_timeout_ready_in_time_never_fires) {
        struct engine_settings s = bounded(2, 5 * SEC);
        start(&s);
        now += 4 * SEC;
        ready_all(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY, "no start deadline once running");
        /* Crashes after the start are respawned for ever, as before. */
        for (int i = 0; i < 20; i++) {
                exit_pid(first_pid(1, ANY_STATE), 1);
                advance_to_deadline();
        }
        advance(3600 * SEC);
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 0);
        cr_assert_eq(count_actions(0, ACTION_EXIT), 0);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
}

Test(engine, start_timeout_zero_waits_for_ever) {
        struct engine_settings s = bounded(1, 0);
        start(&s);
        cr_assert_eq(engine_next_deadline(e), now + 30 * SEC, "only the worker's ready_timeout");
        crash_starting();
        for (int i = 0; i < 399; i++) { /* over an hour of back-off */
                advance_to_deadline();
                crash_starting();
        }
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 0);
        cr_assert_eq(count_actions(0, ACTION_EXIT), 0);
        cr_assert(strstr(status(), "crashed 400 times in a row"), "%s", status());
}

Test(engine, start_timeout_lets_a_running_upgrade_finish) {
        struct engine_settings s = bounded(1, 10 * SEC);
        uint64_t t0 = now;
        start(&s);
        crash_starting();
        /* The way out of a crash loop: an upgrade to fixed code, begun before the deadline. */
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        advance(15 * SEC);
        cr_assert_eq(count_actions(m, ACTION_START_FAILED), 0, "the upgrade runs to its end");
        cr_assert_eq(engine_get_state(e), ENGINE_UPGRADING);
        /* It fails: back to starting, past the deadline, so the next timer gives up. */
        exit_pid(first_pid(2, WORKER_STARTING), 1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        cr_assert_leq(engine_next_deadline(e), now, "due at once");
        advance_to_deadline();
        cr_assert_eq(count_actions(m, ACTION_START_FAILED), 1);
        cr_assert(now >= t0 + 10 * SEC);

        /* The same, but the upgrade succeeds: running, nothing ends. */
        teardown();
        setup();
        start(&s);
        crash_starting();
        m = mark();
        begin_upgrade("/srv/app/v2", &s);
        advance(15 * SEC);
        ready_all(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        advance(60 * SEC);
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 0);
        cr_assert_eq(count_actions(0, ACTION_EXIT), 0);
}

Test(engine, start_timeout_before_spawn_reported) {
        struct engine_settings s = bounded(1, 10 * SEC);
        s.drain_timeout_usec = 3 * SEC;
        hold_spawns = true;
        start(&s);
        cr_assert_eq(engine_next_deadline(e), now + 10 * SEC);
        advance_to_deadline();
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 1);
        cr_assert_eq(count_signals(0, 0, 0), 0, "no pid to signal yet");
        hold_spawns = false;
        size_t m = mark();
        report_held_spawns();
        pid_t pid = first_pid(1, ANY_STATE);
        cr_assert_eq(count_signals(m, pid, SIGTERM), 1);
        cr_assert_eq(count_signals(m, pid, SIGCONT), 1);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, pid, SIGKILL), 1, "bounded by the drain timeout");
        kill_pid(pid, SIGKILL);
        cr_assert_not(find_action(m, ACTION_EXIT)->success);
}

Test(engine, stop_exits_with_success) {
        struct engine_settings s = bounded(1, 10 * SEC);
        start_running(&s);
        size_t m = mark();
        engine_stop(e, now);
        pump();
        exit_draining();
        const struct engine_action *exit = find_action(m, ACTION_EXIT);
        cr_assert_not_null(exit);
        cr_assert(exit->success);
        cr_assert_str_eq(exit->reason, "");

        /* A stop while still starting, before the bound, is a success too. */
        teardown();
        setup();
        start(&s);
        m = mark();
        engine_stop(e, now);
        pump();
        exit_draining();
        cr_assert(find_action(m, ACTION_EXIT)->success);
        advance(60 * SEC);
        cr_assert_eq(count_actions(0, ACTION_START_FAILED), 0);
}

/* ---- what systemd is told ---- */

static size_t count_notify(size_t from, bool ready, bool reloading, bool stopping) {
        size_t n = 0;
        for (size_t i = from; i < n_recorded; i++) {
                const struct engine_notify *x = &recorded[i].notify;
                if (recorded[i].type == ACTION_NOTIFY && (!ready || x->ready) && (!reloading || x->reloading) &&
                    (!stopping || x->stopping))
                        n++;
        }
        return n;
}

Test(engine, refused_reload_while_starting_does_not_say_ready) {
        /* The issue's bug: a ready=notify worker that never becomes ready, then a bad
         * configuration and SIGHUP, made the supervisor send READY=1 with "0/1 ready". */
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start(&s);
        cr_assert_eq(engine_get_state(e), ENGINE_STARTING);
        size_t m = mark();
        engine_upgrade_refused(e, "reload refused, configuration not changed: x.conf:1: bad line");
        pump();
        cr_assert_eq(count_notify(m, false, true, false), 1, "RELOADING=1, so that a reload ends");
        cr_assert_eq(count_notify(m, true, false, false), 0, "no READY=1 before any worker is ready");
        size_t last = n_recorded - 1;
        cr_assert_eq(recorded[last].type, ACTION_NOTIFY);
        cr_assert(recorded[last].notify.has_status);
        cr_assert_str_eq(recorded[last].notify.status,
                         "Starting generation 1 (/srv/app/v1): 0/1 ready"); /* the status says where it stands */

        m = mark();
        ready_all(1);
        cr_assert_eq(count_notify(m, true, false, false), 1, "READY=1 once the first generation is ready");
}

Test(engine, refused_reload_when_running_says_reloading_then_ready) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        size_t m = mark();
        engine_upgrade_refused(e, "reload refused");
        pump();
        cr_assert_eq(n_recorded - m, 2);
        cr_assert(recorded[m].notify.reloading && !recorded[m].notify.ready);
        cr_assert(recorded[m + 1].notify.ready && recorded[m + 1].notify.has_status);
        cr_assert_str_eq(recorded[m + 1].notify.status,
                         "Reload refused; serving generation 1 (/srv/app/v1): 1/1 ready");
}

Test(engine, upgrade_notifies_reloading_then_ready_before_finished) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(count_notify(m, false, true, false), 1);
        ready_all(2);
        size_t fin = index_of(m, ACTION_UPGRADE_FINISHED);
        cr_assert_neq(fin, SIZE_MAX);
        cr_assert_eq(recorded[fin - 1].type, ACTION_NOTIFY, "READY=1 and STATUS= before the callers hear of it");
        cr_assert(recorded[fin - 1].notify.ready);
        cr_assert_str_eq(recorded[fin - 1].notify.status, "Serving generation 2 (/srv/app/v2): 1/1 ready, 1 draining");
}

Test(engine, stop_notifies_stopping_with_the_drain_bound) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start(&s);
        ready_all(1);
        size_t m = mark();
        engine_stop(e, now);
        pump();
        cr_assert_eq(count_notify(m, false, false, true), 1);
        for (size_t i = m; i < n_recorded; i++)
                if (recorded[i].type == ACTION_NOTIFY && recorded[i].notify.stopping)
                        cr_assert_eq(recorded[i].notify.extend_timeout_usec, 60 * SEC + 5 * SEC);
}

Test(engine, status_update_only_when_the_line_changes) {
        struct engine_settings s = settings(1, STRATEGY_ROLLING, 1);
        start(&s);
        pump();
        engine_update_status(e, now);
        pump();
        size_t m = mark();
        engine_update_status(e, now);
        pump();
        cr_assert_eq(n_recorded, m, "the same line is not sent twice");
        ready_all(1);
        m = mark();
        engine_update_status(e, now);
        pump();
        cr_assert_eq(n_recorded, m, "READY=1 carried the new line already");
}

/* ---- canary (stable_time) ---- */

static struct engine_settings canary_settings(unsigned workers, enum strategy strategy, unsigned batch) {
        struct engine_settings s = settings(workers, strategy, batch);
        s.stable_time_usec = 1 * SEC;
        return s;
}

Test(engine, canary_rolling_waits_before_first_drain) {
        struct engine_settings s = canary_settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        min_ready = 3; /* the old workers serve at full strength throughout */
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        now += 100 * MSEC;
        ready_one(2);
        uint64_t ready_at = now;

        /* Ready, but not yet for stable_time: nothing old drains, no next batch starts. */
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(count_spawns(m, 2), 1);
        cr_assert_eq(workers_in(1, WORKER_READY), 3);
        cr_assert_eq(engine_next_deadline(e), ready_at + 1 * SEC);
        cr_assert_str_eq(status(), "Upgrading to generation 2: 1/3 ready, canary stable in 1.0s");
        advance(400 * MSEC);
        cr_assert_str_eq(status(), "Upgrading to generation 2: 1/3 ready, canary stable in 0.6s");
        now = ready_at + 1 * SEC - 1;
        engine_timer(e, now);
        pump();
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(count_spawns(m, 2), 1);

        /* Stable: one old worker drains and the next batch starts. */
        advance_to_deadline();
        cr_assert_eq(now, ready_at + 1 * SEC);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 1);
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 1);
        cr_assert_eq(count_spawns(m, 2), 2);
        cr_assert_null(strstr(status(), "canary"), "%s", status());

        /* Later batches do not wait again. */
        size_t before = mark();
        ready_one(2);
        cr_assert_eq(count_signals(before, 0, SIGTERM), 1);
        ready_one(2);
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 2);
}

Test(engine, canary_blue_green_whole_generation_from_its_last_ready) {
        struct engine_settings s = canary_settings(3, STRATEGY_BLUE_GREEN, 1);
        start_running(&s);
        min_ready = 3;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        advance(800 * MSEC);
        ready_one(2);
        advance(800 * MSEC); /* the first has been ready 1.6 s, the second 0.8 s */
        cr_assert_eq(count_signals(m, 0, 0), 0, "not all new workers are ready yet");
        ready_one(2);
        uint64_t all_ready = now;
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(engine_next_deadline(e), all_ready + 1 * SEC);
        advance(999 * MSEC);
        cr_assert_eq(count_signals(m, 0, 0), 0);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        advance_to_deadline();
        cr_assert_eq(count_signals(m, 0, SIGTERM), 3);
        cr_assert(finished(m)->success);
}

/* A release that says READY=1 and dies 0.7 s later never takes the old code down. */
Test(engine, canary_death_rolls_back_without_draining_old) {
        struct engine_settings s = canary_settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        min_ready = 3;
        pid_t old_pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, old_pids), 3);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        pid_t canary = first_pid(2, WORKER_READY);
        advance(700 * MSEC);
        exit_pid(canary, 1);

        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert_eq(f->generation, 2);
        cr_assert(strstr(f->reason, "exited with status 1"), "%s", f->reason);
        cr_assert_eq(count_signals(m, 0, 0), 0, "no old worker was ever signalled");
        cr_assert_eq(count_spawns(m, 1), 0, "no old worker had to be replaced");
        for (int i = 0; i < 3; i++)
                cr_assert_eq(state_of(old_pids[i]), WORKER_READY);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v1");
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
}

/* After the canary passed, a new worker that dies while later batches still start fails
 * the upgrade too, and the old generation regains full strength. */
Test(engine, canary_passed_later_death_still_rolls_back) {
        struct engine_settings s = canary_settings(3, STRATEGY_ROLLING, 1);
        start_running(&s);
        min_ready = 2;
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        pid_t canary = first_pid(2, WORKER_READY);
        advance_to_deadline();
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 1);
        cr_assert_eq(workers_in(2, WORKER_STARTING), 1);
        advance(1500 * MSEC); /* dies 2.5 s after READY=1, before the upgrade ended */
        size_t before = mark();
        kill_pid(canary, SIGSEGV);
        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        cr_assert_eq(count_spawns(before, 1), 1, "the old generation regains its drained slot");
        ready_all(1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(workers_in(1, WORKER_READY), 3);
}

/* restart: the old code is gone already; the new generation must stay up stable_time
 * before the upgrade succeeds, and dying meanwhile brings the old code back. */
Test(engine, canary_restart_strategy_success_waits) {
        struct engine_settings s = canary_settings(2, STRATEGY_RESTART, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        exit_draining();
        ready_all(2);
        cr_assert_eq(count_actions(m, ACTION_UPGRADE_FINISHED), 0);
        cr_assert(strstr(status(), "canary stable in 1.0s"), "%s", status());
        advance_to_deadline();
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 2);
}

Test(engine, canary_restart_strategy_death_rolls_back) {
        struct engine_settings s = canary_settings(2, STRATEGY_RESTART, 1);
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        exit_draining();
        ready_all(2);
        advance(700 * MSEC);
        exit_pid(first_pid(2, WORKER_READY), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        cr_assert_eq(count_spawns(m, 1), 2, "the old code is started again");
        ready_all(1);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 1);
}

Test(engine, canary_off_drains_at_once) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        s.stable_time_usec = 0;
        start_running(&s);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 1);
        cr_assert_eq(count_spawns(m, 2), 2);
}

/* The first generation is not an upgrade: nothing old to protect, READY=1 at once. */
Test(engine, canary_not_applied_at_start) {
        struct engine_settings s = canary_settings(2, STRATEGY_ROLLING, 1);
        size_t m = mark();
        start(&s);
        ready_all(1);
        cr_assert_eq(count_actions(m, ACTION_READY), 1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY);
}

/* The canary waits in ready=delay mode too, on the same timer. */
Test(engine, canary_with_ready_delay) {
        struct engine_settings s = canary_settings(2, STRATEGY_ROLLING, 1);
        s.ready = READY_DELAY;
        start(&s);
        advance_to_deadline();
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        uint64_t t0 = now;
        advance_to_deadline(); /* ready after ready_delay */
        cr_assert_eq(workers_in(2, WORKER_READY), 1);
        cr_assert_eq(count_signals(m, 0, 0), 0);
        advance_to_deadline(); /* stable */
        cr_assert_eq(now, t0 + 2 * SEC);
        cr_assert_eq(count_signals(m, 0, SIGTERM), 1);
        advance_to_deadline();
        cr_assert(finished(m)->success);
}

/* ---- generation numbers ---- */

Test(engine, generation_starts_from_the_given_number) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        cr_assert_eq(engine_start(e, now, 0, "/srv/app/v1", &s), -EINVAL);
        cr_assert_eq(engine_start(e, now, (uint64_t) INT64_MAX + 1, "/srv/app/v1", &s), -EINVAL);
        cr_assert_eq(engine_start(e, now, 7, "/srv/app/v1", &s), 0);
        pump();
        cr_assert_eq(engine_get_generation(e), 7);
        cr_assert(strstr(status(), "Starting generation 7"), "%s", status());
        ready_all(7);
        cr_assert_eq(engine_check_upgrade(e), 8);
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(count_spawns(m, 8), 1);
        ready_all(8);
        ready_all(8);
        cr_assert(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 8);
}

Test(engine, generation_failed_candidate_uses_up_its_number) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);

        /* Refused before it began (the hook said no): no number used. */
        cr_assert_eq(engine_prepare_upgrade(e), 2);
        cr_assert_eq(candidate(), 2);
        engine_abort_upgrade(e, "hook failed");
        pump();
        cr_assert_eq(engine_check_upgrade(e), 2);

        /* Started and failed: generation 2 is used up; the current one stays 1. */
        size_t m = mark();
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(candidate(), 2);
        exit_pid(first_pid(2, WORKER_STARTING), 1);
        cr_assert_eq(finished(m)->generation, 2);
        cr_assert_not(finished(m)->success);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_str_eq(engine_get_target(e), "/srv/app/v1");
        cr_assert_eq(engine_check_upgrade(e), 3);

        /* The next upgrade is generation 3, while generation 2's worker may still drain. */
        m = mark();
        begin_upgrade("/srv/app/v3", &s);
        cr_assert_eq(find_action(m, ACTION_UPGRADE_STARTED)->generation, 3);
        cr_assert_eq(count_spawns(m, 3), 1);
        cr_assert_eq(count_spawns(m, 2), 0);
        ready_all(3);
        ready_all(3);
        cr_assert(finished(m)->success);
        cr_assert_eq(finished(m)->generation, 3);
        cr_assert_eq(engine_get_generation(e), 3);
        cr_assert_eq(engine_check_upgrade(e), 4);
}

/* Cancel and a stop during the upgrade use the number up too: workers had started. */
Test(engine, generation_cancelled_upgrade_uses_up_its_number) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_eq(engine_cancel(e, now), 0);
        pump();
        ready_all(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(engine_get_generation(e), 1);
        cr_assert_eq(engine_check_upgrade(e), 3);
}

/* ---- restarts per slot ---- */

/* The restarts of the worker that serves SLOT of GENERATION (not draining); -1 if none. */
static int restarts_of(uint64_t generation, unsigned slot) {
        struct engine_worker w;
        for (size_t i = 0; engine_get_worker_at(e, i, &w); i++)
                if (w.generation == generation && w.slot == slot && w.state != WORKER_DRAINING)
                        return (int) w.restarts;
        return -1;
}

/* The worker in SLOT crashes (exit status or signal) and its replacement starts and is ready. */
static void crash_slot(uint64_t generation, unsigned slot, bool by_signal) {
        pid_t pids[MAX_PIDS];
        size_t n = pids_of(generation, ANY_STATE, pids);
        for (size_t i = 0; i < n; i++)
                if (worker(pids[i]).slot == slot && state_of(pids[i]) != WORKER_DRAINING) {
                        if (by_signal)
                                kill_pid(pids[i], SIGKILL);
                        else
                                exit_pid(pids[i], 1);
                        advance_to_deadline(); /* the back-off */
                        ready_all(generation);
                        return;
                }
        cr_assert_fail("no worker in slot %u of generation %llu", slot, (unsigned long long) generation);
}

Test(engine, restarts_count_crashes_per_slot) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        cr_assert_eq(restarts_of(1, 0), 0);
        cr_assert_eq(restarts_of(1, 1), 0);

        crash_slot(1, 0, true);
        cr_assert_eq(restarts_of(1, 0), 1);
        cr_assert_eq(restarts_of(1, 1), 0, "only the slot that crashed");
        crash_slot(1, 0, false);
        cr_assert_eq(restarts_of(1, 0), 2);
        crash_slot(1, 1, false);
        cr_assert_eq(restarts_of(1, 1), 1);

        /* A respawn that is not ready in time is replaced too, and counts. */
        exit_pid(first_pid(1, WORKER_READY), 1);
        advance_to_deadline(); /* the replacement starts ... */
        pid_t slow = first_pid(1, WORKER_STARTING);
        unsigned slot = worker(slow).slot;
        unsigned before = worker(slow).restarts;
        advance(30 * SEC); /* ... and misses ready_timeout */
        advance_to_deadline();
        ready_all(1);
        cr_assert_eq(restarts_of(1, slot), (int) before + 1);

        /* A copy, like every view: the counts live in the engine. */
        struct engine_worker w;
        cr_assert(engine_get_worker_at(e, 0, &w));
        w.restarts = 99;
        cr_assert_neq(restarts_of(1, w.slot), 99);
}

Test(engine, restarts_start_over_with_a_new_generation) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        crash_slot(1, 0, false);
        crash_slot(1, 1, false);
        cr_assert_eq(restarts_of(1, 0), 1);

        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        ready_one(2);
        cr_assert_eq(engine_get_generation(e), 2);
        cr_assert_eq(restarts_of(2, 0), 0, "new code starts with a clean count");
        cr_assert_eq(restarts_of(2, 1), 0);
        crash_slot(2, 1, true);
        cr_assert_eq(restarts_of(2, 1), 1);
}

Test(engine, restarts_count_restart_but_not_scaling_or_rollback) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        crash_slot(1, 0, false);

        /* Restart(): each slot is refilled once, counted as for a crash. */
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, ANY_STATE, pids), 2);
        cr_assert_eq(engine_restart(e, now), 0);
        pump();
        kill_pid(pids[0], SIGKILL);
        kill_pid(pids[1], SIGKILL);
        ready_all(1);
        cr_assert_eq(restarts_of(1, 0), 2);
        cr_assert_eq(restarts_of(1, 1), 1);

        /* A slot added by scaling up is new, not restarted. */
        cr_assert_eq(engine_set_workers(e, now, 3), 0);
        pump();
        ready_all(1);
        cr_assert_eq(restarts_of(1, 2), 0);

        /* A failed rolling upgrade: an old worker drained for the first new one is
         * replaced to regain strength; that is no restart of its slot. */
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2); /* no canary in these settings: one old worker drains */
        cr_assert_eq(workers_in(1, WORKER_DRAINING), 1);
        unsigned drained = worker(first_pid(1, WORKER_DRAINING)).slot;
        exit_pid(first_pid(2, WORKER_STARTING), 1); /* the next new worker fails: rollback */
        cr_assert_eq(engine_get_state(e), ENGINE_ROLLING_BACK);
        ready_all(1);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert_eq(restarts_of(1, drained), 0);
}

/* ---- worker health: the watchdog ---- */

static struct engine_settings watchdog_settings(unsigned workers, uint64_t watchdog) {
        struct engine_settings s = settings(workers, STRATEGY_ROLLING, 1);
        s.watchdog_usec = watchdog;
        return s;
}

static void ping(pid_t pid) {
        engine_worker_watchdog(e, pid, now);
        pump();
}

/* The index of the first signal SIG to PID from FROM, SIZE_MAX if none. */
static size_t signal_index(size_t from, pid_t pid, int sig) {
        for (size_t i = from; i < n_recorded; i++)
                if (recorded[i].type == ACTION_SIGNAL && recorded[i].pid == pid && recorded[i].signal == sig)
                        return i;
        return SIZE_MAX;
}

Test(engine, watchdog_off_arms_nothing) {
        struct engine_settings s = settings(2, STRATEGY_ROLLING, 1);
        start_running(&s);
        pid_t p = first_pid(1, WORKER_READY);
        ping(p);
        engine_worker_watchdog_usec(e, p, 1 * SEC, now);
        engine_worker_watchdog_trigger(e, p, now);
        pump();
        cr_assert_eq(engine_next_deadline(e), USEC_INFINITY, "watchdog = 0 must leave no deadline");
        cr_assert_eq(count_signals(0, 0, 0), 0);
        cr_assert_not(engine_wants_memory(e), "memory_max = 0 wants no samples");
}

Test(engine, watchdog_pings_keep_worker_alive) {
        struct engine_settings s = watchdog_settings(2, 2 * SEC);
        uint64_t t0 = now;
        start(&s);
        /* The deadline runs from the spawn, before READY=1, as systemd's from exec. */
        cr_assert_eq(engine_next_deadline(e), t0 + 2 * SEC);
        ready_all(1);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, WORKER_READY, pids), 2);
        for (int i = 0; i < 20; i++) {
                now += 1 * SEC;
                ping(pids[0]);
                ping(pids[1]);
                cr_assert_eq(engine_next_deadline(e), now + 2 * SEC);
                engine_timer(e, now);
                pump();
        }
        cr_assert_eq(count_signals(0, 0, 0), 0);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
}

Test(engine, watchdog_expiry_aborts_resumes_kills_and_refills) {
        struct engine_settings s = watchdog_settings(2, 2 * SEC);
        start_running(&s);
        pid_t pids[MAX_PIDS];
        cr_assert_eq(pids_of(1, WORKER_READY, pids), 2);
        pid_t hung = pids[0], fine = pids[1];
        unsigned slot = worker(hung).slot;

        now += 1500 * MSEC;
        ping(hung);
        ping(fine);
        now += 1500 * MSEC;
        ping(fine); /* hung is SIGSTOPped: its last ping was 1.5 s ago */
        size_t m = mark();
        advance_to_deadline();
        cr_assert_eq(now, 1000 * SEC + 3500 * MSEC);

        size_t abrt = signal_index(m, hung, SIGABRT), cont = signal_index(m, hung, SIGCONT);
        cr_assert_neq(abrt, SIZE_MAX, "SIGABRT to the hung worker");
        cr_assert_eq(recorded[abrt].purpose, SIGNAL_ABORT);
        cr_assert(recorded[abrt].group);
        char want[64];
        snprintf(want, sizeof(want), "watchdog timeout: worker %d", (int) hung);
        cr_assert(strstr(recorded[abrt].reason, want), "%s", recorded[abrt].reason);
        cr_assert(strstr(recorded[abrt].reason, "no WATCHDOG=1 for 2s"), "%s", recorded[abrt].reason);
        cr_assert(cont != SIZE_MAX && cont > abrt, "SIGCONT after SIGABRT, for a stopped worker");
        cr_assert_eq(count_signals(m, hung, SIGKILL), 0, "no SIGKILL before 5 s");
        cr_assert_eq(count_signals(m, fine, 0), 0);
        cr_assert_eq(state_of(hung), WORKER_DRAINING);
        cr_assert(strstr(status(), want), "%s", status());

        /* Its slot is refilled as after a crash: after the first back-off step. */
        m = mark();
        advance_to_deadline();
        cr_assert_eq(count_spawns(m, 1), 1);
        cr_assert_eq(find_action(m, ACTION_SPAWN)->slot, slot);
        ready_one(1);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
        cr_assert_null(strstr(status(), "watchdog"), "%s", status());

        /* The new worker pings; the hung one still has not exited: SIGKILL 5 s after ABRT. */
        cr_assert_eq(pids_of(1, WORKER_READY, pids), 2);
        pid_t fresh = pids[0] == fine ? pids[1] : pids[0];
        m = mark();
        for (int i = 0; i < 5; i++) {
                now += 1 * SEC;
                ping(fine);
                ping(fresh);
                engine_timer(e, now);
                pump();
        }
        cr_assert_eq(count_signals(m, hung, SIGKILL), 1, "SIGKILL 5 s after SIGABRT");
        cr_assert(strstr(find_action(m, ACTION_SIGNAL)->reason, "watchdog timeout"), "%s",
                  find_action(m, ACTION_SIGNAL)->reason);
        kill_pid(hung, SIGKILL);
        cr_assert_eq(workers_in(1, ANY_STATE), 2, "nothing else respawned when it exits");
}

Test(engine, watchdog_expiry_of_candidate_fails_upgrade) {
        struct engine_settings s = watchdog_settings(2, 2 * SEC);
        s.stable_time_usec = 10 * SEC; /* the canary holds the old workers at full strength */
        start_running(&s);
        min_ready = 2;
        begin_upgrade("/srv/app/v2", &s);
        ready_one(2);
        pid_t cand = first_pid(2, WORKER_READY);
        /* The old workers ping; the candidate stops after READY=1. */
        size_t m = mark();
        for (int i = 0; i < 4 && candidate() == 2 && engine_get_state(e) == ENGINE_UPGRADING; i++) {
                now += 600 * MSEC;
                pid_t old[MAX_PIDS];
                size_t n = pids_of(1, WORKER_READY, old);
                for (size_t k = 0; k < n; k++)
                        ping(old[k]);
                engine_timer(e, now);
                pump();
        }
        const struct engine_action *f = finished(m);
        cr_assert_not(f->success);
        cr_assert(strstr(f->reason, "watchdog timeout"), "%s", f->reason);
        cr_assert_eq(count_signals(m, cand, SIGABRT), 1);
        cr_assert_eq(engine_get_generation(e), 1, "generation stays the old one");
        cr_assert(strstr(engine_get_last_result(e), "watchdog timeout"), "%s", engine_get_last_result(e));
        cr_assert(strstr(status(), "watchdog timeout"), "%s", status());
}

Test(engine, watchdog_trigger_and_new_timeout) {
        struct engine_settings s = watchdog_settings(2, 2 * SEC);
        start_running(&s);
        pid_t pids[MAX_PIDS];
        pids_of(1, WORKER_READY, pids);

        /* WATCHDOG_USEC=N: the worker's own timeout from now. */
        engine_worker_watchdog_usec(e, pids[1], 10 * SEC, now);
        ping(pids[0]);
        engine_worker_watchdog_usec(e, pids[0], 10 * SEC, now);
        pump();
        cr_assert_eq(engine_next_deadline(e), now + 10 * SEC);
        ping(pids[0]);
        cr_assert_eq(engine_next_deadline(e), now + 10 * SEC, "pings use the new timeout");

        /* WATCHDOG=trigger: a miss now. */
        size_t m = mark();
        engine_worker_watchdog_trigger(e, pids[0], now);
        pump();
        cr_assert_eq(count_signals(m, pids[0], SIGABRT), 1);
        cr_assert(strstr(recorded[signal_index(m, pids[0], SIGABRT)].reason, "WATCHDOG=trigger"));
        engine_worker_watchdog_trigger(e, pids[0], now);
        pump();
        cr_assert_eq(count_signals(m, pids[0], SIGABRT), 1, "once");

        /* WATCHDOG_USEC=0: off for that worker. */
        engine_worker_watchdog_usec(e, pids[1], 0, now);
        now += 60 * SEC;
        engine_timer(e, now);
        pump();
        cr_assert_eq(count_signals(m, pids[1], SIGABRT), 0);
}

Test(engine, watchdog_kept_while_draining) {
        struct engine_settings s = watchdog_settings(1, 2 * SEC);
        s.drain_timeout_usec = 600 * SEC;
        start_running(&s);
        pid_t old = first_pid(1, WORKER_READY);
        ping(old);
        engine_stop(e, now);
        pump();
        cr_assert_eq(state_of(old), WORKER_DRAINING);
        size_t m = mark();
        advance_to_deadline();
        cr_assert_eq(count_signals(m, old, SIGABRT), 1, "a worker hung while draining is found");
        cr_assert_eq(count_spawns(m, 1), 0, "and not replaced: it was leaving");
        cr_assert_eq(engine_next_deadline(e), now + 5 * SEC, "SIGKILL in 5 s, not after drain_timeout");
        advance_to_deadline();
        cr_assert_eq(count_signals(m, old, SIGKILL), 1);
}

/* ---- worker health: memory_max ---- */

#define MIB (1ULL << 20)

static struct engine_settings memory_settings(unsigned workers) {
        struct engine_settings s = settings(workers, STRATEGY_ROLLING, 1);
        s.memory_max = 256 * MIB;
        return s;
}

static void sample(pid_t pid, uint64_t bytes) {
        engine_worker_memory(e, pid, bytes, now);
        pump();
}

static const struct engine_action *health_since(size_t from) {
        return find_action(from, ACTION_WORKER_HEALTH);
}

/* Replaces the worker in SLOT-th ready position for memory and lets the fat one exit. */
static void replace_for_memory(pid_t fat) {
        size_t m = mark();
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 1, "%s", health_since(m) ? health_since(m)->reason : "no health action");
        ready_one(1);
        cr_assert_eq(state_of(fat), WORKER_DRAINING);
        exit_pid(fat, 0);
}

Test(engine, memory_replacement_starts_new_worker_first) {
        struct engine_settings s = memory_settings(2);
        start_running(&s);
        min_ready = 2; /* never fewer than 2 ready: no gap */
        cr_assert(engine_wants_memory(e));
        pid_t fat = first_pid(1, WORKER_READY);
        unsigned slot = worker(fat).slot;

        size_t m = mark();
        sample(fat, 200 * MIB); /* under the limit */
        cr_assert_eq(n_recorded, m);
        sample(fat, 312 * MIB);
        const struct engine_action *h = health_since(m);
        cr_assert_not_null(h);
        char want[128];
        snprintf(want, sizeof(want), "memory_max exceeded: 312 MiB > 256 MiB, replacing worker %d", (int) fat);
        cr_assert(strstr(h->reason, want), "%s", h->reason);
        cr_assert_eq(count_spawns(m, 1), 1);
        cr_assert_eq(find_action(m, ACTION_SPAWN)->slot, slot, "the same slot");
        cr_assert_eq(count_signals(m, fat, 0), 0, "the fat worker serves until the new one is ready");
        cr_assert_eq(engine_get_memory_replacements(e), 1);

        sample(fat, 400 * MIB); /* still fat: one replacement is on its way already */
        cr_assert_eq(count_spawns(m, 1), 1);

        pid_t fresh = first_pid(1, WORKER_STARTING);
        size_t r = mark();
        ready_pid(fresh);
        size_t ready_at = index_of(r, ACTION_WORKER_READY), drain_at = signal_index(r, fat, SIGTERM);
        cr_assert(ready_at != SIZE_MAX && drain_at != SIZE_MAX && ready_at < drain_at,
                  "the new worker is ready before the fat one is told to drain");
        cr_assert_eq(state_of(fat), WORKER_DRAINING);
        cr_assert_eq(worker(fresh).slot, slot);
        cr_assert_eq(worker(fresh).restarts, worker(fat).restarts + 1, "a replacement is a restart of its slot");
        exit_pid(fat, 0);
        cr_assert_eq(count_spawns(r, 1), 0, "a drained worker is not respawned");
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
}

Test(engine, memory_replacement_rate_limited_as_a_loop) {
        struct engine_settings s = memory_settings(1);
        start_running(&s);
        for (int i = 0; i < 3; i++) {
                now += 10 * SEC;
                replace_for_memory(first_pid(1, WORKER_READY));
        }
        cr_assert_eq(engine_get_memory_replacements(e), 3);

        /* A fourth within 5 minutes: a release too big for the limit, not a leak. */
        now += 10 * SEC;
        pid_t fat = first_pid(1, WORKER_READY);
        size_t m = mark();
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 0, "no churn");
        cr_assert_not_null(health_since(m));
        cr_assert(strstr(health_since(m)->reason, "not replacing"), "%s", health_since(m)->reason);
        cr_assert(strstr(status(),
                         "worker 0 exceeded memory_max more than 3 times within 300s, not replacing it for 300s"),
                  "%s", status());
        now += 60 * SEC;
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 0, "still holding off");
        cr_assert(strstr(status(), "not replacing it for 240s"), "%s", status());

        /* After the hold-off it tries again. */
        now += 240 * SEC;
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 1);
        cr_assert_null(strstr(status(), "memory_max"), "%s", status());
        cr_assert_eq(engine_get_memory_replacements(e), 4);
}

Test(engine, memory_replacement_that_fails_leaves_fat_worker_serving) {
        struct engine_settings s = memory_settings(2);
        start_running(&s);
        min_ready = 2;
        pid_t fat = first_pid(1, WORKER_READY);
        size_t m = mark();
        sample(fat, 300 * MIB);
        pid_t fresh = first_pid(1, WORKER_STARTING);
        exit_pid(fresh, 1); /* the replacement crashes before it is ready */
        cr_assert_eq(count_spawns(m, 1), 1, "not respawned: the fat worker still holds the slot");
        cr_assert_eq(count_signals(m, fat, 0), 0);
        cr_assert_eq(state_of(fat), WORKER_READY);
        cr_assert(strstr(status(), "replacing worker 0 (memory_max) failed 1 times, retrying in 10s"), "%s", status());

        now += 5 * SEC;
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 1, "backing off");
        now += 5 * SEC;
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 2, "tried again after 10 s");

        /* Not ready in time either: the back-off doubles. */
        advance(30 * SEC);
        cr_assert_eq(count_spawns(m, 1), 2);
        cr_assert(strstr(status(), "failed 2 times, retrying in 20s"), "%s", status());
        cr_assert_eq(state_of(fat), WORKER_READY);
}

Test(engine, memory_not_replaced_during_upgrade) {
        struct engine_settings s = memory_settings(2);
        start_running(&s);
        pid_t fat = first_pid(1, WORKER_READY);
        size_t m = mark();
        sample(fat, 300 * MIB);
        pid_t fresh = first_pid(1, WORKER_STARTING);
        /* An upgrade begins: the old workers will drain anyway. */
        begin_upgrade("/srv/app/v2", &s);
        cr_assert_not(engine_wants_memory(e));
        cr_assert_eq(state_of(fresh), WORKER_DRAINING, "the pending replacement is abandoned");
        cr_assert_eq(state_of(fat), WORKER_READY);
        sample(fat, 300 * MIB);
        cr_assert_eq(count_spawns(m, 1), 1);
        ready_all(2);
        advance(1 * SEC);
        ready_all(2);
        cr_assert_eq(engine_get_state(e), ENGINE_RUNNING);
        cr_assert(engine_wants_memory(e), "judged again once it serves");
}

Test(engine, memory_fat_worker_dies_while_replaced) {
        struct engine_settings s = memory_settings(2);
        start_running(&s);
        pid_t fat = first_pid(1, WORKER_READY);
        size_t m = mark();
        sample(fat, 300 * MIB);
        pid_t fresh = first_pid(1, WORKER_STARTING);
        kill_pid(fat, SIGKILL); /* the kernel's OOM killer was faster */
        advance(10 * SEC);
        cr_assert_eq(count_spawns(m, 1), 1, "the replacement takes the slot over: no respawn");
        ready_pid(fresh);
        cr_assert_eq(workers_in(1, WORKER_READY), 2);
        cr_assert_eq(count_signals(m, 0, 0), 0);
}
