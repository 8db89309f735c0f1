/* control.c: requests to change what runs (upgrade, reload, rollback), wherever they come
 * from (D-Bus, SIGHUP). It checks the request, resolves the target, runs the pre-upgrade
 * hook and hands the upgrade to the engine; the engine decides everything after that.
 * Calls that wait for the end of an upgrade are kept here and answered from the
 * engine's UPGRADE_FINISHED action. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "errors.h"
#include "head.h"
#include "hook.h"
#include "log.h"
#include "macro.h"
#include "supervisor.h"

static int add_waiter(struct supervisor *s, sd_bus_message *call, uint64_t generation) {
        struct waiter *p = reallocarray(s->waiters, s->n_waiters + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->waiters = p;
        s->waiters[s->n_waiters++] = (struct waiter){ .call = sd_bus_message_ref(call), .generation = generation };
        return 0;
}

static void reply_waiters(struct supervisor *s, uint64_t generation, bool success, const char *error_name,
                          const char *reason) {
        for (size_t i = 0; i < s->n_waiters;) {
                struct waiter *w = &s->waiters[i];
                if (w->generation != generation) {
                        i++;
                        continue;
                }
                /* The caller may have gone away meanwhile: nothing to do about that. */
                if (success)
                        (void) sd_bus_reply_method_return(w->call, "t", generation);
                else
                        (void) bus_reply_errorf(w->call, error_name,
                                                "%s: upgrade to generation %" PRIu64
                                                " failed, still serving generation %" PRIu64 ": %s",
                                                s->instance, generation, engine_get_generation(s->engine), reason);
                sd_bus_message_unref(w->call);
                *w = s->waiters[--s->n_waiters];
        }
}

static void candidate_clear(struct supervisor *s) {
        s->candidate_generation = 0;
        worker_command_done(&s->candidate);
        config_done(&s->candidate_config);
        memset(&s->candidate_config, 0, sizeof(s->candidate_config));
}

uint64_t control_first_generation(struct supervisor *s) {
        _cleanup_free_ char *path = head_generation_path(s->head_path);
        uint64_t last = 0;
        int r = path ? head_generation_read(path, &last) : -ENOMEM;
        if (r == -ENOENT)
                return 1;
        if (r < 0) {
                log_warning_errno(r, "Ignoring %s: %s; numbering generations from 1", path ?: s->head_path,
                                  r == -EINVAL ? "not a generation number" : strerror(-r));
                return 1;
        }
        return last + 1;
}

/* A failed write costs nothing now, only the guarantee across a restart: warn and go on.
 * (An unwritable state directory refuses upgrades anyway, through head_probe().) */
void control_record_generation(struct supervisor *s, uint64_t generation) {
        _cleanup_free_ char *path = head_generation_path(s->head_path);
        int r = path ? head_generation_write(path, generation) : -ENOMEM;
        if (r < 0)
                log_warning_errno(r,
                                  "Cannot record generation %" PRIu64 " in %s: %s (a restart may number "
                                  "generations again from an earlier one)",
                                  generation, path ?: s->head_path, strerror(-r));
}

static void start_candidate(struct supervisor *s) {
        /* Before the engine spawns anything: a crash from here on must not reuse it. */
        control_record_generation(s, s->candidate_generation);
        struct engine_settings settings;
        engine_settings_from_config(&s->candidate_config, &settings);
        int r = engine_start_upgrade(s->engine, now_usec(), s->candidate.target, &settings);
        if (r < 0)
                engine_abort_upgrade(s->engine, strerror(-r));
}

static void abort_with(struct supervisor *s, const char *error_name, const char *reason) {
        s->hook_error = error_name;
        engine_abort_upgrade(s->engine, reason);
}

static void on_hook_done(void *userdata, bool success, const char *reason, const char *new_target) {
        struct supervisor *s = userdata;
        s->hook = NULL; /* freed by hook.c after this returns */

        if (!success)
                abort_with(s, ERROR_HOOK_FAILED, reason);
        else if (new_target) {
                struct worker_command cmd;
                char err[512], why[700];
                if (target_resolve(new_target, s->candidate_config.exec, &cmd, err, sizeof(err)) < 0) {
                        snprintf(why, sizeof(why), "pre-upgrade hook gave an invalid target: %s", err);
                        abort_with(s, ERROR_HOOK_FAILED, why);
                } else {
                        log_info("Pre-upgrade hook chose the target %s", cmd.target);
                        worker_command_done(&s->candidate);
                        s->candidate = cmd;
                        start_candidate(s);
                }
        } else
                start_candidate(s);
        supervisor_dispatch(s);
}

bool control_head_applies(struct supervisor *s, const char *head, const char *configured_target) {
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

/* Reload: the HEAD file wins when something other than liveswap rewrote it since the last
 * upgrade (a deploy tool's workflow), unless another liveswap configuration sharing the
 * state directory wrote it; otherwise the configured target, resolved anew. */
static const char *reload_target(struct supervisor *s, const struct config *c, char **head_content) {
        if (head_read(s->head_path, head_content) >= 0 && (!s->head_seen || strcmp(*head_content, s->head_seen) != 0) &&
            control_head_applies(s, *head_content, c->target)) {
                log_info("HEAD was changed to %s: upgrading to it", *head_content);
                return *head_content;
        }
        return c->target ?: engine_get_target(s->engine);
}

/* systemd's reloading state covers a whole request, the pre-upgrade hook included, and
 * READY=1 ends it whatever the outcome (control_upgrade_finished(), refuse()). With
 * Type=notify-reload a SIGHUP that sends no RELOADING=1 and READY=1 would leave the unit
 * reloading until its timeout. */
static void notify_reloading(void) {
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec());
}

/* A request refused before anything changed. The caller gets the error; the log and
 * STATUS= say why as well, since `systemctl reload` shows neither the reply nor its
 * caller's output. */
static int refuse(struct supervisor *s, sd_bus_error *ret_error, const char *error_name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int refuse(struct supervisor *s, sd_bus_error *ret_error, const char *error_name, const char *fmt, ...) {
        char reason[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        log_warning("%s", reason);
        notify_reloading();
        engine_upgrade_refused(s->engine, reason);
        supervisor_dispatch(s);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", s->status);
        return bus_error_setf(ret_error, error_name, "%s: %s", s->instance, reason);
}

int control_upgrade(struct supervisor *s, const char *target, sd_bus_message *call, bool wait,
                    sd_bus_error *ret_error) {
        int64_t generation = engine_check_upgrade(s->engine);
        if (generation == -EBUSY)
                return bus_error_setf(ret_error, ERROR_BUSY, "%s: an upgrade is already in progress", s->instance);
        if (generation < 0)
                return bus_error_setf(ret_error, ERROR_BUSY, "%s: the supervisor is stopping", s->instance);

        struct config c;
        char err[512];
        _cleanup_free_ char *head_content = NULL;
        int r;
        if (target && *target)
                r = config_copy(&c, &s->config);
        else {
                r = supervisor_load_config(s, &c, err, sizeof(err));
                if (r == -EINVAL || (r < 0 && r != -ENOMEM))
                        return refuse(s, ret_error, ERROR_UPGRADE_FAILED,
                                      "reload refused, configuration not changed: %s", err);
                if (r >= 0)
                        target = reload_target(s, &c, &head_content);
        }
        if (r < 0)
                return sd_bus_error_set_errno(ret_error, r);

        struct worker_command cmd;
        r = target_resolve(target, c.exec, &cmd, err, sizeof(err));
        if (r < 0) {
                config_done(&c);
                return refuse(s, ret_error, ERROR_INVALID_TARGET, "upgrade refused, invalid target: %s", err);
        }
        /* An upgrade whose result could not be recorded would be undone by the next
         * restart: refuse it now, while nothing has changed. */
        r = head_probe(s->head_path, cmd.target);
        if (r < 0) {
                config_done(&c);
                worker_command_done(&cmd);
                return refuse(s, ret_error, ERROR_UPGRADE_FAILED,
                              "upgrade refused, nothing changed: cannot record it in %s: %s", s->head_path,
                              strerror(-r));
        }
        if (call && wait && (r = add_waiter(s, call, (uint64_t) generation)) < 0) {
                config_done(&c);
                worker_command_done(&cmd);
                return sd_bus_error_set_errno(ret_error, r);
        }

        generation = engine_prepare_upgrade(s->engine);
        notify_reloading();
        candidate_clear(s);
        s->candidate_config = c;
        s->candidate = cmd;
        s->candidate_generation = (uint64_t) generation;
        s->hook_error = NULL;
        log_info("Upgrade to generation %" PRId64 " requested: %s", generation, cmd.target);
        if (call && !wait)
                (void) sd_bus_reply_method_return(call, "t", (uint64_t) generation);

        if (c.pre_upgrade) {
                log_info("Running the pre-upgrade hook %s", c.pre_upgrade);
                r = hook_start(s->event, c.pre_upgrade, cmd.target, s->instance, engine_get_target(s->engine),
                               c.pre_upgrade_timeout_usec, on_hook_done, s, &s->hook);
                if (r < 0) {
                        snprintf(err, sizeof(err), "cannot run the pre-upgrade hook %s: %s", c.pre_upgrade,
                                 strerror(-r));
                        abort_with(s, ERROR_HOOK_FAILED, err);
                }
        } else
                start_candidate(s);
        supervisor_dispatch(s);
        return 1;
}

int control_rollback(struct supervisor *s, sd_bus_message *call, sd_bus_error *ret_error) {
        const char *previous = engine_get_previous_target(s->engine);
        if (!*previous)
                return bus_error_setf(ret_error, ERROR_NO_PREVIOUS, "%s: there is no previous target", s->instance);
        _cleanup_free_ char *target = strdup(previous);
        if (!target)
                return sd_bus_error_set_errno(ret_error, -ENOMEM);
        return control_upgrade(s, target, call, true, ret_error);
}

void control_upgrade_finished(struct supervisor *s, const struct engine_action *a) {
        const char *error_name = s->hook_error ?: ERROR_UPGRADE_FAILED;
        char reason[sizeof(a->reason) + 128];

        s->hook_error = NULL;
        if (a->success) {
                worker_command_done(&s->current);
                s->current = s->candidate;
                s->candidate = (struct worker_command){};
                s->candidate_generation = 0;
                config_done(&s->config);
                s->config = s->candidate_config;
                memset(&s->candidate_config, 0, sizeof(s->candidate_config));

                snprintf(reason, sizeof(reason), "serving %s", s->current.target);
                /* With the configuration it came from, so that another one sharing this
                 * state directory does not start it (control_head_applies()). */
                _cleanup_free_ char *configured = head_configured_target(s->config.target);
                int r = configured ? head_commit(s->head_path, engine_get_previous_target(s->engine), s->current.target,
                                                 s->instance, configured)
                                   : -errno;
                if (r < 0) {
                        /* The new code is live; only the record of it failed. Say so loudly:
                         * a restart would bring back the old version. */
                        log_error_errno(
                                r,
                                "Cannot record the new target in %s: %s (a restart would start the previous version)",
                                s->head_path, strerror(-r));
                        snprintf(reason, sizeof(reason), "serving %s, but HEAD could not be written: %s",
                                 s->current.target, strerror(-r));
                } else {
                        free(s->head_seen);
                        s->head_seen = strdup(s->current.target);
                }
                log_info("Upgrade to generation %" PRIu64 " finished: %s", a->generation, reason);
        } else {
                candidate_clear(s);
                snprintf(reason, sizeof(reason), "%s", a->reason);
                log_error("Upgrade to generation %" PRIu64 " failed: %s; serving generation %" PRIu64, a->generation,
                          a->reason, engine_get_generation(s->engine));
        }
        /* READY=1 ends systemd's reloading state, success or not; the status goes with it
         * so that `systemctl show -p StatusText` is current when `systemctl reload`
         * returns. While the first generation is still starting, the service is not
         * ready yet, whatever became of this upgrade. */
        engine_format_status(s->engine, now_usec(), s->status, sizeof(s->status));
        (void) sd_notifyf(false, "%sSTATUS=%s", engine_get_state(s->engine) == ENGINE_STARTING ? "" : "READY=1\n",
                          s->status);
        /* Properties first: a client that sees the reply or UpgradeFinished and then reads
         * its cached Generation/Target must find the new ones already. */
        bus_emit_changes(s->bus);
        reply_waiters(s, a->generation, a->success, error_name, a->reason);
        bus_emit_upgrade_finished(s->bus, a->generation, a->success, reason);
}

void control_cancel_hook(struct supervisor *s) {
        hook_cancel(s->hook);
        s->hook = NULL;
        engine_abort_upgrade(s->engine, "cancelled");
}

void control_done(struct supervisor *s) {
        hook_cancel(s->hook);
        s->hook = NULL;
        for (size_t i = 0; i < s->n_waiters; i++) {
                (void) bus_reply_errorf(s->waiters[i].call, ERROR_UPGRADE_FAILED, "%s: the supervisor is stopping",
                                        s->instance);
                sd_bus_message_unref(s->waiters[i].call);
        }
        free(s->waiters);
        s->waiters = NULL;
        s->n_waiters = 0;
        candidate_clear(s);
}
