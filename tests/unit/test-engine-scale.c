/* test-engine-scale.c: the engine's work grows linearly with the number of workers. An
 * upgrade of N workers (blue-green and rolling) is driven to its end, every worker
 * spawned, ready and exited as a shell would report them, and after each event the shell's
 * own questions asked (the next deadline, the worker of a pid, the status line). The steps
 * the engine took to find free slots, and the worker records it looked at in all, are
 * compared between N = 64 and N = 1024: 16 times the workers must cost about 16 times the
 * work, not 256 (a search of every worker per slot tried made an upgrade O(N^2) to
 * O(N^3); a walk over every worker per event, O(N^2)). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "macro.h"

struct driver {
        struct engine *e;
        uint64_t now;
        pid_t next_pid;
        pid_t *to_ready, *to_exit;
        size_t n_ready, n_exit;
        bool finished, success;
};

static void pump(struct driver *d) {
        struct engine_action a;
        while (engine_next_action(d->e, &a)) {
                if (a.type == ACTION_SPAWN) {
                        pid_t pid = d->next_pid++;
                        engine_worker_spawned(d->e, a.worker_id, pid, d->now);
                        d->to_ready[d->n_ready++] = pid;
                } else if (a.type == ACTION_SIGNAL && a.purpose == SIGNAL_DRAIN)
                        d->to_exit[d->n_exit++] = a.pid;
                else if (a.type == ACTION_UPGRADE_FINISHED) {
                        d->finished = true;
                        d->success = a.success;
                }
        }
        engine_update_status(d->e, d->now);
        /* What the shell asks after each batch of actions: the timer to arm, and the
         * status line (engine_update_status() formats it too). */
        (void) engine_next_deadline(d->e);
        char status[1024];
        engine_format_status(d->e, d->now, status, sizeof(status));
}

/* The shell looks a worker up by pid for each event it reports (to log it). */
static void look_up(struct driver *d, pid_t pid) {
        struct engine_worker w;
        cr_assert(engine_get_worker(d->e, pid, &w), "worker %d is not found", (int) pid);
        cr_assert_eq(w.pid, pid);
}

/* Reports the oldest pending READY=1 or exit until nothing is left. */
static void run(struct driver *d) {
        size_t ready_at = 0, exit_at = 0;
        for (;;) {
                pump(d);
                d->now += 1000;
                if (ready_at < d->n_ready) {
                        look_up(d, d->to_ready[ready_at]);
                        engine_worker_ready(d->e, d->to_ready[ready_at++], d->now);
                } else if (exit_at < d->n_exit) {
                        look_up(d, d->to_exit[exit_at]);
                        engine_worker_exited(d->e, d->to_exit[exit_at++], false, 0, d->now);
                } else
                        break;
        }
}

struct work {
        uint64_t slot_steps, visits;
};

/* The work of one upgrade of N workers with STRATEGY. */
static struct work upgrade_work(unsigned n, enum strategy strategy) {
        struct engine_settings settings = {
                .workers = n,
                .strategy = strategy,
                .batch = 1,
                .ready = READY_NOTIFY,
                .ready_timeout_usec = 30 * USEC_PER_SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 10 * USEC_PER_SEC,
                .watchdog_usec = 0,
        };
        struct driver d = { .now = USEC_PER_SEC, .next_pid = 1000 };
        /* Every worker of both generations is spawned once and drained at most once. */
        d.to_ready = calloc(2 * n, sizeof(pid_t));
        d.to_exit = calloc(2 * n, sizeof(pid_t));
        cr_assert(d.to_ready && d.to_exit);
        cr_assert_eq(engine_new(&d.e), 0);
        cr_assert_eq(engine_start(d.e, d.now, 1, "/srv/v1", &settings), 0);
        run(&d);
        cr_assert_eq(engine_get_state(d.e), ENGINE_RUNNING);
        cr_assert_eq(engine_count_ready(d.e), n);

        uint64_t before = engine_get_slot_steps(d.e), visits_before = engine_get_worker_visits(d.e);
        cr_assert_eq(engine_prepare_upgrade(d.e), 2);
        cr_assert_eq(engine_start_upgrade(d.e, d.now, "/srv/v2", &settings), 0);
        run(&d);
        cr_assert(d.finished && d.success, "the upgrade of %u workers did not succeed", n);
        cr_assert_eq(engine_get_generation(d.e), 2);
        cr_assert_eq(engine_count_ready(d.e), n);
        cr_assert_eq(engine_count_workers(d.e), n);
        /* Slots 0 ... n-1, each once. */
        bool *seen = calloc(n, sizeof(bool));
        struct engine_worker w;
        for (size_t i = 0; engine_get_worker_at(d.e, i, &w); i++) {
                cr_assert_lt(w.slot, n);
                cr_assert_not(seen[w.slot]);
                seen[w.slot] = true;
        }
        free(seen);
        struct work work = { .slot_steps = engine_get_slot_steps(d.e) - before,
                             .visits = engine_get_worker_visits(d.e) - visits_before };
        engine_free(d.e);
        free(d.to_ready);
        free(d.to_exit);
        return work;
}

/* 16 times the workers must cost between 8 and MAX times the work (WHAT, from SMALL at
 * N=64 to LARGE at N=1024). */
static void check_ratio(const char *what, uint64_t small, uint64_t large, double max) {
        cr_assert_gt(small, 0, "%s", what);
        double ratio = (double) large / (double) small;
        cr_log_info("%s: %llu at N=64, %llu at N=1024: ratio %.1f", what, (unsigned long long) small,
                    (unsigned long long) large, ratio);
        cr_assert(ratio >= 8 && ratio <= max, "%s grew %.1f times for 16 times the workers", what, ratio);
}

/* The slot search and all the worker records the engine looked at in an upgrade, its
 * events and the shell's questions after each. A lookup may cost O(log N) (a binary
 * search), so 16 times the workers may cost up to about 16 * log2(1024) / log2(64) = 27
 * times the visits; a walk over every worker per event costs 256 times. */
static void check_linear(enum strategy strategy) {
        struct work small = upgrade_work(64, strategy), large = upgrade_work(1024, strategy);
        char what[64];
        snprintf(what, sizeof(what), "%s: slot steps", strategy_to_string(strategy));
        check_ratio(what, small.slot_steps, large.slot_steps, 32);
        snprintf(what, sizeof(what), "%s: worker visits", strategy_to_string(strategy));
        check_ratio(what, small.visits, large.visits, 40);
}

Test(engine_scale, blue_green_upgrade_is_linear) {
        check_linear(STRATEGY_BLUE_GREEN);
}

Test(engine_scale, rolling_upgrade_is_linear) {
        check_linear(STRATEGY_ROLLING);
}

/* A blue-green upgrade of N workers whose last new worker crashes before it is ready:
 * the rollback drains the other N - 1, and each of their exits is an event. The worker
 * records looked at, from the upgrade's start to the end of the rollback. */
static uint64_t rollback_visits(unsigned n) {
        struct engine_settings settings = {
                .workers = n,
                .strategy = STRATEGY_BLUE_GREEN,
                .batch = 1,
                .ready = READY_NOTIFY,
                .ready_timeout_usec = 30 * USEC_PER_SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 10 * USEC_PER_SEC,
        };
        struct driver d = { .now = USEC_PER_SEC, .next_pid = 1000 };
        d.to_ready = calloc(2 * n, sizeof(pid_t));
        d.to_exit = calloc(2 * n, sizeof(pid_t));
        cr_assert(d.to_ready && d.to_exit);
        cr_assert_eq(engine_new(&d.e), 0);
        cr_assert_eq(engine_start(d.e, d.now, 1, "/srv/v1", &settings), 0);
        run(&d);
        uint64_t before = engine_get_worker_visits(d.e);
        cr_assert_eq(engine_prepare_upgrade(d.e), 2);
        cr_assert_eq(engine_start_upgrade(d.e, d.now, "/srv/v2", &settings), 0);
        pump(&d);
        cr_assert_eq(d.n_ready, 2 * n);
        for (size_t i = n; i < 2 * n - 1; i++) {
                d.now += 1000;
                look_up(&d, d.to_ready[i]);
                engine_worker_ready(d.e, d.to_ready[i], d.now);
                pump(&d);
        }
        d.now += 1000;
        engine_worker_exited(d.e, d.to_ready[2 * n - 1], false, 1, d.now);
        pump(&d);
        cr_assert(d.finished && !d.success, "the upgrade of %u workers did not fail", n);
        for (size_t i = 0; i < d.n_exit; i++) {
                d.now += 1000;
                look_up(&d, d.to_exit[i]);
                engine_worker_exited(d.e, d.to_exit[i], false, 0, d.now);
                pump(&d);
        }
        cr_assert_eq(engine_get_generation(d.e), 1);
        cr_assert_eq(engine_count_workers(d.e), n);
        uint64_t visits = engine_get_worker_visits(d.e) - before;
        engine_free(d.e);
        free(d.to_ready);
        free(d.to_exit);
        return visits;
}

Test(engine_scale, rollback_visits_each_worker_a_bounded_number_of_times) {
        check_ratio("rollback: worker visits", rollback_visits(64), rollback_visits(1024), 40);
}

/* Scaling up and a rollback take their slots in one pass each. */
Test(engine_scale, scale_up_fills_the_lowest_free_slots) {
        struct engine_settings settings = { .workers = 4,
                                            .batch = 1,
                                            .ready = READY_NOTIFY,
                                            .ready_timeout_usec = 30 * USEC_PER_SEC,
                                            .drain_signal = SIGTERM,
                                            .drain_timeout_usec = 10 * USEC_PER_SEC };
        struct driver d = { .now = USEC_PER_SEC, .next_pid = 1000 };
        d.to_ready = calloc(64, sizeof(pid_t));
        d.to_exit = calloc(64, sizeof(pid_t));
        cr_assert_eq(engine_new(&d.e), 0);
        cr_assert_eq(engine_start(d.e, d.now, 1, "/srv/v1", &settings), 0);
        run(&d);
        /* Slot 1 crashes: its respawn waits (back-off) and keeps the slot. */
        engine_worker_exited(d.e, 1001, false, 1, d.now);
        pump(&d);
        cr_assert_eq(engine_set_workers(d.e, d.now, 8), 0);
        pump(&d);
        bool seen[16] = { 0 };
        struct engine_worker w;
        for (size_t i = 0; engine_get_worker_at(d.e, i, &w); i++)
                seen[w.slot] = true;
        cr_assert_not(seen[1]); /* still waiting for its respawn */
        for (unsigned slot = 0; slot < 8; slot++)
                if (slot != 1)
                        cr_assert(seen[slot], "slot %u is not taken", slot);
        cr_assert_not(seen[8]);
        engine_free(d.e);
        free(d.to_ready);
        free(d.to_exit);
}
