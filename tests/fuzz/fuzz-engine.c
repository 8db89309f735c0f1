/* fuzz-engine.c: libFuzzer target for the upgrade state machine. The input is a script of
 * events: the fuzzer plays the shell (upgrade requests, hook outcomes, Cancel, Restart,
 * SetWorkers, stop, spawns that fail) and the kernel (workers that become ready, crash,
 * exit, ignore the drain signal, time that passes). After every event it checks what
 * must hold in production whatever the order of events:
 *   - a signal only ever goes to a live worker (never to a pid already reaped, which the
 *     kernel may have given to an unrelated process);
 *   - the engine knows every live worker (one it forgot would be an orphan), and every
 *     spawn it asked for was reported back;
 *   - one upgrade at a time: a second request is refused until the first has finished,
 *     each finishes exactly once, and a success makes its generation current;
 *   - after a stop, firing the timers and reaping what was SIGKILLed always ends in
 *     ACTION_EXIT with no worker left, however stubborn the workers are;
 *   - every drain signal is followed by SIGCONT to the same pid, both sent where the
 *     worker's kill_mode says; SIGKILL always goes to the whole group;
 *   - the start bound gives up only before the first READY=1, once, and then (and only
 *     then) the exit is a failure;
 *   - generation numbers only grow: each upgrade that starts takes the next one, a failed
 *     one's number is never given out again, and one refused before it started uses none;
 *   - an upgrade succeeds only after a worker of the new generation stayed ready for
 *     stable_time (the canary);
 *   - every state reached can be handed over for a reexec: engine_serialize() and
 *     engine_restore() give back the same text (engine-state.c refuses no real state). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "engine-state.h"
#include "engine.h"
#include "macro.h"

#define MAX_LIVE 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
        const uint8_t *data;
        size_t size, pos;
};

static uint8_t next(struct script *s) {
        return s->pos < s->size ? s->data[s->pos++] : 0;
}

struct shell {
        struct engine *e;
        uint64_t now;
        pid_t next_pid;
        pid_t live[MAX_LIVE]; /* spawned and not yet reaped */
        bool killed[MAX_LIVE]; /* got SIGKILL: the kernel will end it */
        size_t n_live;
        bool fail_spawns; /* the next spawns fail (a target gone missing, EAGAIN) */
        bool prepared; /* between engine_prepare_upgrade() and start/abort: the hook runs */
        uint64_t outstanding; /* generation of the upgrade not finished yet, 0 if none */
        uint64_t generation;
        uint64_t last_used; /* the highest generation number started */
        uint64_t stable_usec; /* the running upgrade's stable_time */
        bool exited;
        bool ready; /* ACTION_READY was seen */
        bool start_failed; /* ACTION_START_FAILED was seen */
        struct engine_action last_signal; /* the previous action, if a signal */
        /* The previous action was a SIGCONT that the drain signal must follow, or a
         * SIGABRT that a SIGCONT must follow. */
        bool before_drain, after_abort;
};

static ssize_t live_index(const struct shell *sh, pid_t pid) {
        for (size_t i = 0; i < sh->n_live; i++)
                if (sh->live[i] == pid)
                        return (ssize_t) i;
        return -1;
}

static void reap(struct shell *sh, size_t i, bool signaled, int status) {
        pid_t pid = sh->live[i];
        sh->n_live--;
        sh->live[i] = sh->live[sh->n_live];
        sh->killed[i] = sh->killed[sh->n_live];
        engine_worker_exited(sh->e, pid, signaled, status, sh->now);
}

/* kill_mode, start_timeout and stable_time come from the higher bits of bytes read
 * anyway, so that the seed corpus keeps its meaning. */
static void settings_from(struct script *s, struct engine_settings *ret) {
        uint8_t workers = next(s), strategy = next(s), batch = next(s), ready = next(s), delay = next(s),
                timeout = next(s), drain = next(s);
        *ret = (struct engine_settings){
                .workers = 1 + workers % 6,
                .strategy = (enum strategy)(strategy % 3),
                .batch = 1 + batch % 3,
                .ready = ready % 2 ? READY_NOTIFY : READY_DELAY,
                .ready_delay_usec = (uint64_t) (delay % 4) * 100 * USEC_PER_MSEC,
                .ready_timeout_usec = (uint64_t) (1 + timeout % 4) * USEC_PER_SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = (uint64_t) (1 + drain % 4) * USEC_PER_SEC,
                .stable_time_usec = (uint64_t) ((drain / 4) % 4) * 500 * USEC_PER_MSEC, /* 0 = off */
                .kill_mode = (workers / 6) % 2 ? KILL_MODE_MIXED : KILL_MODE_GROUP,
                .start_timeout_usec = (uint64_t) ((timeout / 4) % 4) * 1500 * USEC_PER_MSEC, /* 0 = none */
        };
}

/* Whether a worker of GENERATION has been ready for the upgrade's stable_time: none of
 * the canary can have gone since, or the upgrade would have been rolled back. */
static bool canary_passed(const struct shell *sh, uint64_t generation) {
        struct engine_worker w;
        for (size_t i = 0; engine_get_worker_at(sh->e, i, &w); i++)
                if (w.generation == generation && w.state != WORKER_STARTING &&
                    sh->now - w.ready_usec >= sh->stable_usec)
                        return true;
        return false;
}

/* Performs the queued actions as the supervisor's dispatch does, checking each. */
static void pump(struct shell *sh) {
        struct engine_action a;
        while (engine_next_action(sh->e, &a)) {
                CHECK(!sh->exited);
                bool before_drain = sh->before_drain, after_abort = sh->after_abort;
                sh->before_drain = sh->after_abort = false;
                if (before_drain) /* the drain signal comes right after its SIGCONT */
                        CHECK(a.type == ACTION_SIGNAL && a.purpose == SIGNAL_DRAIN && a.pid == sh->last_signal.pid &&
                              a.group == sh->last_signal.group);
                if (after_abort) /* SIGCONT comes right after a watchdog's SIGABRT */
                        CHECK(a.type == ACTION_SIGNAL && a.signal == SIGCONT && a.purpose == SIGNAL_RESUME &&
                              a.pid == sh->last_signal.pid && a.group == sh->last_signal.group);
                switch (a.type) {
                case ACTION_SPAWN:
                        if (sh->fail_spawns || sh->n_live == MAX_LIVE)
                                engine_worker_spawn_failed(sh->e, a.worker_id, "No such file or directory", sh->now);
                        else {
                                sh->live[sh->n_live] = sh->next_pid;
                                sh->killed[sh->n_live++] = false;
                                engine_worker_spawned(sh->e, a.worker_id, sh->next_pid++, sh->now);
                        }
                        break;
                case ACTION_SIGNAL: {
                        ssize_t i = live_index(sh, a.pid);
                        CHECK(i >= 0); /* never a reaped pid */
                        struct engine_worker view, *w = &view;
                        CHECK(engine_get_worker(sh->e, a.pid, &view));
                        switch (a.purpose) {
                        case SIGNAL_DRAIN:
                                CHECK(a.signal == w->drain_signal);
                                CHECK(a.group == (w->kill_mode == KILL_MODE_GROUP));
                                /* A SIGCONT went just before, unless the drain signal is one
                                 * that needs none. */
                                CHECK(before_drain == (a.signal != SIGCONT && a.signal != SIGKILL));
                                break;
                        case SIGNAL_RESUME:
                                CHECK(a.signal == SIGCONT);
                                if (!after_abort)
                                        sh->before_drain = true;
                                break;
                        case SIGNAL_KILL:
                                CHECK(a.signal == SIGKILL && a.group);
                                break;
                        case SIGNAL_ABORT: /* a missed watchdog: SIGCONT follows */
                                CHECK(a.signal == SIGABRT);
                                CHECK(a.group == (w->kill_mode == KILL_MODE_GROUP));
                                sh->after_abort = true;
                                break;
                        }
                        sh->last_signal = a;
                        if (a.signal == SIGKILL)
                                sh->killed[i] = true;
                        break;
                }
                case ACTION_UPGRADE_STARTED:
                        CHECK(a.generation == sh->outstanding && a.generation == sh->last_used + 1);
                        sh->last_used = a.generation;
                        break;
                case ACTION_UPGRADE_FINISHED:
                        CHECK(sh->outstanding != 0 && a.generation == sh->outstanding);
                        sh->outstanding = 0;
                        if (a.success) {
                                CHECK(a.generation == sh->last_used);
                                CHECK(engine_get_generation(sh->e) == a.generation);
                                CHECK(canary_passed(sh, a.generation));
                                sh->generation = a.generation;
                        }
                        break;
                case ACTION_CANCEL_HOOK: /* request.c's cancel_hook() */
                        sh->prepared = false;
                        engine_abort_upgrade(sh->e, "cancelled");
                        break;
                case ACTION_START_FAILED:
                        CHECK(!sh->ready && !sh->start_failed && sh->outstanding == 0);
                        sh->start_failed = true;
                        break;
                case ACTION_EXIT:
                        CHECK(a.success == !sh->start_failed);
                        sh->exited = true;
                        break;
                case ACTION_READY:
                        sh->ready = true;
                        break;
                case ACTION_NOTIFY:
                        /* READY=1 never before the first generation was ready. */
                        CHECK(!a.notify.ready || sh->ready);
                        break;
                case ACTION_WORKER_READY:
                case ACTION_WORKER_HEALTH:
                        break;
                }
        }
        CHECK(!sh->before_drain && !sh->after_abort); /* the pair is in one batch */
}

static void check(struct shell *sh) {
        struct engine_worker w;
        size_t n = engine_count_workers(sh->e);
        for (size_t i = 0; engine_get_worker_at(sh->e, i, &w); i++) {
                CHECK(w.pid > 0); /* every spawn was reported, none is pending */
                CHECK(live_index(sh, w.pid) >= 0);
        }
        for (size_t i = 0; i < sh->n_live; i++)
                CHECK(engine_get_worker(sh->e, sh->live[i], &w)); /* no orphan */
        CHECK(n == sh->n_live);
        CHECK(engine_count_ready(sh->e) <= n);
        CHECK(engine_count_draining(sh->e) <= n);
        CHECK(engine_get_generation(sh->e) == sh->generation);
        if (sh->exited)
                CHECK(n == 0 && engine_get_state(sh->e) == ENGINE_STOPPED);

        _cleanup_free_ char *text = NULL, *again = NULL;
        struct engine *copy = NULL;
        char error[256];
        CHECK(engine_serialize(sh->e, &text) == 0);
        int r = engine_restore(text, strlen(text), &copy, error, sizeof(error));
        if (r < 0)
                fprintf(stderr, "%s\n%s", error, text);
        CHECK(r == 0);
        CHECK(engine_serialize(copy, &again) == 0);
        CHECK(strcmp(text, again) == 0);
        engine_free(copy);

        char small[16], status[1024];
        engine_format_status(sh->e, sh->now, small, sizeof(small));
        CHECK(memchr(small, 0, sizeof(small)));
        engine_format_status(sh->e, sh->now, status, sizeof(status));
        CHECK(memchr(status, 0, sizeof(status)));
}

static void request_upgrade(struct shell *sh) {
        int64_t g = engine_prepare_upgrade(sh->e);
        if (g < 0) {
                CHECK(g == -EBUSY || g == -ESHUTDOWN);
                return;
        }
        CHECK(sh->outstanding == 0 && !sh->prepared); /* one upgrade at a time */
        CHECK((uint64_t) g == sh->last_used + 1); /* never a number used before */
        sh->outstanding = (uint64_t) g;
        sh->prepared = true;
}

static void start_prepared(struct shell *sh, struct script *s) {
        if (!sh->prepared)
                return;
        struct engine_settings settings;
        settings_from(s, &settings);
        sh->prepared = false;
        sh->stable_usec = settings.stable_time_usec;
        int r = engine_start_upgrade(sh->e, sh->now, next(s) % 2 ? "/srv/b" : "/srv/c", &settings);
        if (r < 0) /* control.c's start_candidate() */
                engine_abort_upgrade(sh->e, "cannot start");
}

static void step(struct shell *sh, struct script *s) {
        uint8_t op = next(s), arg = next(s);
        switch (op % 16) {
        case 0: /* time passes; the timer fires at its deadline or later */
        case 1: {
                uint64_t deadline = engine_next_deadline(sh->e);
                uint64_t later = sh->now + (uint64_t) arg * 20 * USEC_PER_MSEC;
                if (deadline != USEC_INFINITY && deadline > sh->now && (op & 0x10))
                        later = deadline;
                sh->now = later;
                engine_timer(sh->e, sh->now);
                break;
        }
        case 2: /* READY=1 */
        case 3:
                if (sh->n_live)
                        engine_worker_ready(sh->e, sh->live[arg % sh->n_live], sh->now);
                break;
        case 4: /* a worker exits or crashes */
                if (sh->n_live)
                        reap(sh, arg % sh->n_live, op & 0x10, op & 0x10 ? SIGSEGV : (op >> 5));
                break;
        case 5: /* the kernel ends everything that got SIGKILL */
                for (size_t i = 0; i < sh->n_live;)
                        if (sh->killed[i])
                                reap(sh, i, true, SIGKILL);
                        else
                                i++;
                break;
        case 6: /* drained workers leave */
                for (size_t i = 0; i < sh->n_live;) {
                        struct engine_worker w;
                        if (engine_get_worker(sh->e, sh->live[i], &w) && w.state == WORKER_DRAINING && (arg & 1))
                                reap(sh, i, false, 0);
                        else
                                i++;
                }
                break;
        case 7:
        case 8:
                request_upgrade(sh);
                if (!(op & 0x10))
                        start_prepared(sh, s); /* no pre-upgrade hook */
                break;
        case 9: /* the hook succeeded */
                start_prepared(sh, s);
                break;
        case 10: /* the hook failed */
                if (sh->prepared) {
                        sh->prepared = false;
                        engine_abort_upgrade(sh->e, "hook failed");
                }
                break;
        case 11:
                (void) engine_cancel(sh->e, sh->now);
                break;
        case 12:
                (void) engine_restart(sh->e, sh->now);
                break;
        case 13:
                (void) engine_set_workers(sh->e, sh->now, arg % 9);
                break;
        case 14:
                sh->fail_spawns = arg & 1;
                break;
        case 15:
                if (arg == 0xff)
                        engine_stop(sh->e, sh->now);
                else
                        engine_upgrade_refused(sh->e, "upgrade refused, invalid target: /srv/x: No such file");
                break;
        }
        pump(sh);
        check(sh);
}

/* However the script left things, a stop ends: drain, wait out the deadlines, reap what
 * was killed (the workers themselves never cooperate here). */
static void stop(struct shell *sh) {
        sh->fail_spawns = true;
        if (sh->prepared) {
                sh->prepared = false;
                engine_abort_upgrade(sh->e, "stopping");
        }
        engine_stop(sh->e, sh->now);
        pump(sh);
        check(sh);
        for (int round = 0; !sh->exited && round < 64; round++) {
                for (size_t i = 0; i < sh->n_live;)
                        if (sh->killed[i])
                                reap(sh, i, true, SIGKILL);
                        else
                                i++;
                pump(sh);
                check(sh);
                if (sh->exited)
                        break;
                uint64_t deadline = engine_next_deadline(sh->e);
                CHECK(deadline != USEC_INFINITY); /* else it would wait forever */
                if (deadline > sh->now)
                        sh->now = deadline;
                engine_timer(sh->e, sh->now);
                pump(sh);
                check(sh);
        }
        CHECK(sh->exited);
        CHECK(sh->outstanding == 0);
        CHECK(!sh->before_drain && !sh->after_abort);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct script s = { .data = data, .size = size };
        struct shell sh = { .now = 1000 * USEC_PER_SEC, .next_pid = 100 };
        if (engine_new(&sh.e) < 0)
                return 0;
        struct engine_settings settings;
        settings_from(&s, &settings);
        /* As after a restart: numbering goes on from what a previous run used. */
        sh.generation = sh.last_used = 1 + (uint64_t) (settings.ready_delay_usec / (100 * USEC_PER_MSEC)) * 1000;
        CHECK(engine_start(sh.e, sh.now, sh.generation, "/srv/a", &settings) == 0);
        pump(&sh);
        check(&sh);
        for (unsigned i = 0; s.pos < s.size && !sh.exited && i < 4096; i++)
                step(&sh, &s);
        if (!sh.exited)
                stop(&sh);
        engine_free(sh.e);
        return 0;
}
