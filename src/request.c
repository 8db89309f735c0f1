/* request.c: the verbs that change what runs (upgrade, reload, rollback, cancel, restart,
 * scale, quit), wherever they come from (D-Bus, SIGHUP). It checks the request, reads the
 * configuration, resolves the target, applies the HEAD policy, runs the pre-upgrade hook
 * and hands the upgrade to the engine; the engine decides everything after that, and
 * this file records the outcome in HEAD. It never sees an sd-bus type: refusals come
 * back as -errno and an enum request_error, which bus.c maps to D-Bus error names. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "envfile.h"
#include "fd-budget.h"
#include "handover.h"
#include "head.h"
#include "hook.h"
#include "log.h"
#include "macro.h"
#include "orphans.h"
#include "request.h"

#define MAX_MESSAGE_TEXT 65536

static int fail(struct request_result *ret, int r, enum request_error error, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(struct request_result *ret, int r, enum request_error error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        ret->error = error;
        vsnprintf(ret->message, sizeof(ret->message), fmt, ap);
        va_end(ap);
        return r;
}

static int fail_errno(struct request_result *ret, int r) {
        return fail(ret, r, REQUEST_ERRNO, "%s", strerror(-r));
}

static void candidate_clear(struct supervisor *s) {
        worker_command_done(&s->candidate);
        config_done(&s->candidate_config);
        memset(&s->candidate_config, 0, sizeof(s->candidate_config));
}

static void start_candidate(struct supervisor *s) {
        struct engine_settings settings;
        engine_settings_from_config(&s->candidate_config, &settings);
        int r = engine_start_upgrade(s->engine, now_usec(), s->candidate.target, &settings);
        if (r < 0)
                engine_abort_upgrade(s->engine, strerror(-r));
}

static void on_hook_done(void *userdata, bool success, const char *reason, const char *new_target) {
        struct supervisor *s = userdata;
        s->hook = NULL; /* freed by hook.c after this returns */

        if (!success)
                engine_hook_failed(s->engine, reason);
        else if (new_target) {
                struct worker_command cmd;
                char err[512], why[700];
                if (target_resolve(new_target, s->candidate_config.exec, &cmd, err, sizeof(err)) < 0) {
                        snprintf(why, sizeof(why), "pre-upgrade hook gave an invalid target: %s", err);
                        engine_hook_failed(s->engine, why);
                } else {
                        log_info("Pre-upgrade hook chose the target %s", cmd.target);
                        worker_command_done(&s->candidate);
                        s->candidate = cmd;
                        start_candidate(s);
                }
        } else
                start_candidate(s);
        supervisor_kick(s);
}

/* Whether HEAD (its content) was deployed for this instance and CONFIGURED_TARGET (as in
 * the configuration, possibly relative), per HEAD.origin; logs why not. */
static bool head_applies(struct supervisor *s, const char *head, const char *configured_target) {
        _cleanup_free_ char *origin_path = head_origin_path(s->head_path),
                            *configured = head_configured_target(configured_target);
        struct head_origin origin = {};
        /* An unreadable origin says nothing: HEAD is then taken as a deploy tool's. */
        bool have_origin = origin_path && head_origin_read(origin_path, &origin) >= 0;
        enum head_verdict v = head_judge(have_origin ? &origin : NULL, head, s->instance, configured);
        if (v == HEAD_FROM_ELSEWHERE)
                log_warning("Ignoring HEAD %s (%s): deployed from another configuration (instance %s, target %s), "
                            "not this one (instance %s, target %s)",
                            s->head_path, head, origin.instance, origin.target, s->instance, configured ?: "?");
        head_origin_done(&origin);
        return v != HEAD_FROM_ELSEWHERE;
}

/* HEAD wins over the configured target when it is new: at start, any HEAD (a restart or
 * a reboot keeps what was deployed); at a reload, only one that something other than
 * liveswap rewrote since (a deploy tool's workflow). Either way not when liveswap wrote
 * it for another configuration sharing the state directory (two apps both started as
 * ./server get the same default instance): then it is not ours to start. Returns HEAD's
 * content when it wins, NULL otherwise; *ret_content keeps what was read. */
static const char *head_wins(struct supervisor *s, const char *configured_target, char **ret_content) {
        int r = head_read(s->head_path, ret_content);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning_errno(r, "Ignoring %s: %m", s->head_path);
                return NULL;
        }
        if (s->head_seen && strcmp(*ret_content, s->head_seen) == 0)
                return NULL;
        if (!head_applies(s, *ret_content, configured_target))
                return NULL;
        return *ret_content;
}

int request_choose_start_target(struct supervisor *s) {
        char err[512];
        _cleanup_free_ char *content = NULL;
        const char *head = head_wins(s, s->config.target, &content);
        if (head) {
                struct worker_command cmd;
                if (target_resolve(head, s->config.exec, &cmd, err, sizeof(err)) >= 0) {
                        log_info("Starting the deployed target from %s: %s", s->head_path, cmd.target);
                        s->current = cmd;
                        _cleanup_free_ char *previous_path = head_previous_path(s->head_path), *previous = NULL;
                        if (previous_path && head_read(previous_path, &previous) >= 0)
                                (void) engine_set_previous_target(s->engine, previous);
                        s->head_seen = TAKE_PTR(content);
                        return 0;
                }
                log_warning("Ignoring %s: %s", s->head_path, err);
        }
        /* Seen all the same, whether ignored or another configuration's: only a later
         * rewrite is a deploy that a reload follows, or every reload would try this stale
         * target again and be refused. */
        if (content)
                s->head_seen = TAKE_PTR(content);

        if (!s->config.target) {
                log_error("No target to run: give one with -s TARGET or target= in the configuration");
                return -EINVAL;
        }
        int r = target_resolve(s->config.target, s->config.exec, &s->current, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "Invalid target: %s", err);
        return 0;
}

/* A request refused before anything changed. The caller gets the error; the log and
 * STATUS= say why as well, since `systemctl reload` shows neither the reply nor its
 * caller's output. What systemd is told is the engine's decision. */
static int refuse(struct supervisor *s, struct request_result *ret, enum request_error error, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int refuse(struct supervisor *s, struct request_result *ret, enum request_error error, const char *fmt, ...) {
        char reason[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        log_warning("%s", reason);
        engine_upgrade_refused_at(s->engine, now_usec(), reason);
        supervisor_kick(s);
        return fail(ret, -EINVAL, error, "%s: %s", s->instance, reason);
}

/* Workers alive now, and those of them that are the current generation's. */
static void count_alive(const struct supervisor *s, unsigned *ret_alive, unsigned *ret_current) {
        struct engine_worker w;
        unsigned alive = 0, current = 0;
        uint64_t generation = engine_get_generation(s->engine);
        for (size_t i = 0; engine_get_worker_at(s->engine, i, &w); i++) {
                alive++;
                if (w.generation == generation)
                        current++;
        }
        *ret_alive = alive;
        *ret_current = current;
}

int request_upgrade(struct supervisor *s, const char *target, uint64_t *ret_generation, struct request_result *ret) {
        uint64_t begun = now_usec(); /* what RELOADING=1 reports as the start of the reload */
        *ret = (struct request_result){};
        int64_t generation = engine_check_upgrade(s->engine);
        if (generation == -EBUSY)
                return fail(ret, -EBUSY, REQUEST_BUSY, "%s: an upgrade is already in progress", s->instance);
        if (generation < 0)
                return fail(ret, -ESHUTDOWN, REQUEST_BUSY, "%s: the supervisor is stopping", s->instance);

        struct config c;
        char err[512];
        _cleanup_free_ char *head_content = NULL;
        int r;
        if (target && *target)
                r = config_copy(&c, &s->config);
        else {
                r = config_load_merged(&c, s->config_path, &s->overrides, err, sizeof(err));
                if (r == -EINVAL || (r < 0 && r != -ENOMEM))
                        return refuse(s, ret, REQUEST_UPGRADE_FAILED, "reload refused, configuration not changed: %s",
                                      err);
                if (r >= 0) {
                        target = head_wins(s, c.target, &head_content);
                        if (target)
                                log_info("HEAD was changed to %s: upgrading to it", target);
                        else
                                target = c.target ?: engine_get_target(s->engine);
                }
        }
        if (r < 0)
                return fail_errno(ret, r);
        /* The environment files as they are now: a reload (or any upgrade) picks up a
         * changed file; a bad one refuses the upgrade before anything changes. */
        r = envfile_resolve(&c, err, sizeof(err));
        if (r < 0) {
                config_done(&c);
                if (r == -ENOMEM)
                        return fail_errno(ret, r);
                return refuse(s, ret, REQUEST_UPGRADE_FAILED, "upgrade refused, nothing changed: %s", err);
        }

        /* The new generation starts beside the old one: both must fit in the open-file
         * limit at once, or the upgrade would fail with EMFILE halfway and roll back. */
        unsigned alive, current;
        count_alive(s, &alive, &current);
        unsigned peak = fd_budget_upgrade_peak(c.strategy, alive, current, c.workers);
        if (peak > s->max_workers) {
                enum strategy strategy = c.strategy;
                unsigned workers = c.workers;
                config_done(&c);
                return refuse(s, ret, REQUEST_INVALID_ARGUMENT,
                              "upgrade refused, nothing changed: workers=%u with strategy %s needs room for %u workers "
                              "at once (%u running), but the open file limit (%" PRIu64 ") allows %u",
                              workers, strategy_to_string(strategy), peak, alive, s->nofile_limit, s->max_workers);
        }

        struct worker_command cmd;
        r = target_resolve(target, c.exec, &cmd, err, sizeof(err));
        if (r < 0) {
                config_done(&c);
                return refuse(s, ret, REQUEST_INVALID_TARGET, "upgrade refused, invalid target: %s", err);
        }
        /* An upgrade whose result could not be recorded would be undone by the next
         * restart: refuse it now, while nothing has changed. */
        r = head_probe(s->head_path, cmd.target);
        if (r < 0) {
                config_done(&c);
                worker_command_done(&cmd);
                return refuse(s, ret, REQUEST_UPGRADE_FAILED,
                              "upgrade refused, nothing changed: cannot record it in %s: %s", s->head_path,
                              strerror(-r));
        }

        generation = engine_prepare_upgrade_at(s->engine, begun);
        candidate_clear(s);
        s->candidate_config = c;
        s->candidate = cmd;
        log_worker(LOG_INFO, (uint64_t) generation, 0, "Upgrade to generation %" PRId64 " requested: %s", generation,
                   cmd.target);
        *ret_generation = (uint64_t) generation;

        if (c.pre_upgrade) {
                log_info("Running the pre-upgrade hook %s", c.pre_upgrade);
                r = hook_start(s->event, c.pre_upgrade, cmd.target, s->instance, engine_get_target(s->engine),
                               c.pre_upgrade_timeout_usec, on_hook_done, s, &s->hook);
                if (r < 0) {
                        snprintf(err, sizeof(err), "cannot run the pre-upgrade hook %s: %s", c.pre_upgrade,
                                 strerror(-r));
                        engine_hook_failed(s->engine, err);
                }
        } else
                start_candidate(s);
        supervisor_kick(s);
        return 0;
}

int request_rollback(struct supervisor *s, uint64_t *ret_generation, struct request_result *ret) {
        *ret = (struct request_result){};
        const char *previous = engine_get_previous_target(s->engine);
        if (!*previous)
                return fail(ret, -ENOENT, REQUEST_NO_PREVIOUS, "%s: there is no previous target", s->instance);
        _cleanup_free_ char *target = strdup(previous);
        if (!target)
                return fail_errno(ret, -ENOMEM);
        return request_upgrade(s, target, ret_generation, ret);
}

int request_cancel(struct supervisor *s, struct request_result *ret) {
        *ret = (struct request_result){};
        /* Already being undone: what Cancel asks for is under way. */
        if (engine_get_state(s->engine) == ENGINE_ROLLING_BACK)
                return 0;
        if (engine_cancel(s->engine, now_usec()) < 0)
                return fail(ret, -ENOENT, REQUEST_INVALID_ARGUMENT, "%s: no upgrade is running, nothing to cancel",
                            s->instance);
        log_info("Upgrade cancelled by request");
        supervisor_kick(s);
        return 0;
}

int request_restart(struct supervisor *s, struct request_result *ret) {
        *ret = (struct request_result){};
        int r = engine_restart(s->engine, now_usec());
        if (r < 0)
                return fail(ret, r, REQUEST_BUSY, "%s: cannot restart while %s", s->instance,
                            engine_state_to_string(engine_get_state(s->engine)));
        log_info("Restarting every worker by request");
        supervisor_kick(s);
        return 0;
}

int request_scale(struct supervisor *s, unsigned count, struct request_result *ret) {
        *ret = (struct request_result){};
        if (count == 0 || count > 4096)
                return fail(ret, -EINVAL, REQUEST_INVALID_ARGUMENT, "%s: the worker count must be between 1 and 4096",
                            s->instance);
        unsigned alive, current;
        count_alive(s, &alive, &current);
        unsigned peak = fd_budget_scale_peak(alive, engine_get_desired_workers(s->engine), count);
        if (engine_get_state(s->engine) == ENGINE_RUNNING && peak > s->max_workers)
                return fail(ret, -EMFILE, REQUEST_INVALID_ARGUMENT,
                            "%s: cannot scale to %u workers: the open file limit (%" PRIu64
                            ") allows %u at once, and %u are running",
                            s->instance, count, s->nofile_limit, s->max_workers, alive);
        int r = engine_set_workers(s->engine, now_usec(), count);
        if (r < 0)
                return fail(ret, r, REQUEST_BUSY, "%s: cannot scale while %s", s->instance,
                            engine_state_to_string(engine_get_state(s->engine)));
        /* Kept for the next upgrade to a new target; a reload reads the file again. */
        s->config.workers = count;
        log_info("Scaling to %u workers by request", count);
        supervisor_kick(s);
        return 0;
}

int request_quit(struct supervisor *s) {
        orphans_drain(s->orphans, s->config.drain_signal, s->config.drain_timeout_usec);
        if (engine_get_state(s->engine) == ENGINE_STOPPING) {
                log_notice("Already stopping: waiting for %u worker(s) to drain (at most the drain timeout)",
                           engine_count_draining(s->engine));
                return 0;
        }
        engine_stop(s->engine, now_usec());
        supervisor_kick(s);
        return 0;
}

int request_reexec(struct supervisor *s, struct request_result *ret) {
        *ret = (struct request_result){};
        enum engine_state state = engine_get_state(s->engine);
        /* Only between transitions: an upgrade's candidate settings, the hook's process
         * and a stop's deadline are not part of the hand-over. */
        if (state == ENGINE_UPGRADING || state == ENGINE_ROLLING_BACK || s->hook)
                return fail(ret, -EBUSY, REQUEST_BUSY, "%s: cannot re-execute while an upgrade is in progress",
                            s->instance);
        if (state == ENGINE_STOPPING || state == ENGINE_STOPPED)
                return fail(ret, -ESHUTDOWN, REQUEST_BUSY, "%s: cannot re-execute: the supervisor is stopping",
                            s->instance);
        char err[700];
        int r = handover_check_program(s->program, err, sizeof(err));
        if (r < 0) {
                log_error("Reexec refused: %s", err);
                return fail(ret, r, REQUEST_REEXEC_FAILED, "%s: %s", s->instance, err);
        }
        log_info("Re-executing %s by request", s->program);
        (void) sd_event_source_set_enabled(s->reexec, SD_EVENT_ONESHOT);
        return 0;
}

int request_message(struct supervisor *s, const char *text, unsigned *ret_delivered, struct request_result *ret) {
        *ret = (struct request_result){};
        /* A zero-length packet reads as end-of-file on a SOCK_SEQPACKET socket: a worker
         * would take it for the supervisor going away. */
        if (!*text)
                return fail(ret, -EINVAL, REQUEST_INVALID_ARGUMENT, "%s: the message is empty", s->instance);
        if (strlen(text) > MAX_MESSAGE_TEXT)
                return fail(ret, -EINVAL, REQUEST_INVALID_ARGUMENT, "%s: the message is too long (at most %d bytes)",
                            s->instance, MAX_MESSAGE_TEXT);
        supervisor_message(s, text, ret_delivered);
        return 0;
}

/* ---- what the engine's actions ask of the upgrade logic ---- */

static void upgrade_finished(struct supervisor *s, const struct engine_action *a) {
        char summary[sizeof(a->reason) + 128];
        struct request_result failure = {};

        if (a->success) {
                worker_command_done(&s->current);
                s->current = s->candidate;
                s->candidate = (struct worker_command){};
                config_done(&s->config);
                s->config = s->candidate_config;
                memset(&s->candidate_config, 0, sizeof(s->candidate_config));

                snprintf(summary, sizeof(summary), "serving %s", s->current.target);
                /* With the configuration it came from, so that another one sharing this
                 * state directory does not start it (head_applies()). */
                _cleanup_free_ char *configured = head_configured_target(s->config.target);
                int r = configured ? head_commit(s->head_path, engine_get_previous_target(s->engine), s->current.target,
                                                 s->instance, configured)
                                   : -ENOMEM;
                if (r < 0) {
                        /* The new code is live; only the record of it failed. Say so loudly:
                         * a restart would bring back the old version. */
                        log_error_errno(
                                r,
                                "Cannot record the new target in %s: %m (a restart would start the previous version)",
                                s->head_path);
                        snprintf(summary, sizeof(summary), "serving %s, but HEAD could not be written: %s",
                                 s->current.target, strerror(-r));
                } else {
                        free(s->head_seen);
                        s->head_seen = strdup(s->current.target);
                }
                log_worker(LOG_INFO, a->generation, 0, "Upgrade to generation %" PRIu64 " finished: %s", a->generation,
                           summary);
        } else {
                candidate_clear(s);
                snprintf(summary, sizeof(summary), "%s", a->reason);
                log_worker(LOG_ERR, a->generation, 0,
                           "Upgrade to generation %" PRIu64 " failed: %s; serving generation %" PRIu64, a->generation,
                           a->reason, engine_get_generation(s->engine));
                fail(&failure, -EIO, a->hook_failed ? REQUEST_HOOK_FAILED : REQUEST_UPGRADE_FAILED,
                     "%s: upgrade to generation %" PRIu64 " failed, still serving generation %" PRIu64 ": %s",
                     s->instance, a->generation, engine_get_generation(s->engine), a->reason);
        }
        const struct request_observer *o = s->request_observer;
        if (o && o->upgrade_finished)
                o->upgrade_finished(o->userdata, a->generation, a->success, &failure, summary);
}

static void cancel_hook(struct supervisor *s) {
        hook_cancel(s->hook);
        s->hook = NULL;
        engine_abort_upgrade(s->engine, "cancelled");
}

void request_init(struct supervisor *s, const struct request_observer *observer) {
        s->request_observer = observer;
        s->on_upgrade_finished = upgrade_finished;
        s->on_cancel_hook = cancel_hook;
}

void request_done(struct supervisor *s) {
        hook_cancel(s->hook);
        s->hook = NULL;
        candidate_clear(s);
}
