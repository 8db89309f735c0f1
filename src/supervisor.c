/* supervisor.c: the shell around the engine. It turns kernel events (child exits, notify
 * datagrams, timers) into engine events and performs the engine's actions (fork/exec,
 * kill, sd_notify, replies). It holds no policy: every decision comes from engine.c. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"
#include "leftovers.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "spawn.h"
#include "supervisor.h"

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

void engine_settings_from_config(const struct config *c, struct engine_settings *ret) {
        *ret = (struct engine_settings){
                .workers = c->workers,
                .strategy = c->strategy,
                .batch = c->batch,
                .ready = c->ready,
                .ready_delay_usec = c->ready_delay_usec,
                .ready_timeout_usec = c->ready_timeout_usec,
                .stable_time_usec = c->stable_time_usec,
                .drain_signal = c->drain_signal,
                .drain_timeout_usec = c->drain_timeout_usec,
                .kill_mode = c->kill_mode,
                .start_timeout_usec = c->start_timeout_usec,
        };
}

int supervisor_load_config(struct supervisor *s, struct config *ret, char *err, size_t errlen) {
        struct config c;
        int r = config_init(&c);
        if (r < 0)
                return r;
        if (s->config_path) {
                r = config_load(&c, s->config_path, err, errlen);
                if (r < 0) {
                        config_done(&c);
                        return r;
                }
        }
        const struct cli_overrides *o = &s->overrides;
        if (o->target) {
                free(c.target);
                c.target = strdup(o->target);
        }
        if (o->workers > 0)
                c.workers = o->workers;
        if (o->restart)
                c.strategy = STRATEGY_RESTART;
        if (o->start_timeout_set)
                c.start_timeout_usec = o->start_timeout_usec;
        if (o->pre_upgrade) {
                free(c.pre_upgrade);
                c.pre_upgrade = strdup(o->pre_upgrade);
        }
        if (o->head) {
                free(c.head);
                c.head = strdup(o->head);
        }
        if ((o->target && !c.target) || (o->pre_upgrade && !c.pre_upgrade) || (o->head && !c.head)) {
                config_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

/* ---- workers ---- */

static struct worker_io *io_find(struct supervisor *s, pid_t pid) {
        for (size_t i = 0; i < s->n_io; i++)
                if (s->io[i].pid == pid)
                        return &s->io[i];
        return NULL;
}

static void io_remove(struct supervisor *s, struct worker_io *io) {
        sd_event_source_disable_unref(io->child);
        if (io->control_fd >= 0)
                close(io->control_fd);
        *io = s->io[--s->n_io];
}

static int on_worker_exit(sd_event_source *source, const siginfo_t *si, void *userdata) {
        struct supervisor *s = userdata;
        pid_t pid = si->si_pid;
        const struct engine_worker *w = engine_find_worker(s->engine, pid);
        bool signaled = si->si_code != CLD_EXITED;

        if (w) {
                bool expected = w->state == WORKER_DRAINING;
                int level = expected && !signaled && si->si_status == 0 ? LOG_INFO : LOG_WARNING;
                if (signaled)
                        log_full(level, "Worker %d (generation %" PRIu64 ", slot %u) was killed by signal %s%s", pid,
                                 w->generation, w->slot, sigabbrev_np(si->si_status) ?: "unknown",
                                 expected ? " while draining" : "");
                else
                        log_full(level, "Worker %d (generation %" PRIu64 ", slot %u) exited with status %d%s", pid,
                                 w->generation, w->slot, si->si_status, expected ? " after draining" : "");
        }
        /* sd-event reaps the worker after this callback, so its pid, and with it its
         * process group, cannot have been reused yet: whatever it left behind goes now.
         * (kill() cannot tell whether anything but the zombie leader got it, so no log.) */
        (void) kill(-pid, SIGKILL);
        leftovers_forget(&s->leftovers, pid);
        struct worker_io *io = io_find(s, pid);
        if (io)
                io_remove(s, io);
        engine_worker_exited(s->engine, pid, signaled, si->si_status, now_usec());
        supervisor_dispatch(s);
        return 0;
}

static const struct worker_command *command_for(struct supervisor *s, uint64_t generation,
                                                const struct config **ret_config) {
        if (generation == s->candidate_generation && s->candidate.argv) {
                *ret_config = &s->candidate_config;
                return &s->candidate;
        }
        *ret_config = &s->config;
        return &s->current;
}

static void perform_spawn(struct supervisor *s, const struct engine_action *a) {
        const struct config *c;
        const struct worker_command *cmd = command_for(s, a->generation, &c);
        struct spawn_request req = {
                .directory = cmd->directory,
                .argv = cmd->argv,
                .environment = c->environment,
                .sockets = &s->sockets,
                .fdnames = s->fdnames,
                .notify_socket = s->notify_path,
                .instance = s->instance,
                .generation = a->generation,
                .slot = a->slot,
        };
        pid_t pid = 0;
        int control_fd = -1;
        int r = spawn_worker(&req, &pid, &control_fd);
        if (r >= 0) {
                struct worker_io *p = reallocarray(s->io, s->n_io + 1, sizeof(*p));
                if (p) {
                        s->io = p;
                        s->io[s->n_io] = (struct worker_io){ .pid = pid, .control_fd = control_fd };
                        r = sd_event_add_child(s->event, &s->io[s->n_io].child, pid, WEXITED, on_worker_exit, s);
                        if (r >= 0)
                                s->n_io++;
                } else
                        r = -ENOMEM;
                if (r < 0) {
                        /* Without a child source we would never learn of its exit. */
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                        close(control_fd);
                }
        }
        if (r < 0) {
                log_error_errno(r, "Cannot start worker of generation %" PRIu64 " (%s): %s", a->generation,
                                cmd->argv[0], strerror(-r));
                engine_worker_spawn_failed(s->engine, a->worker_id, strerror(-r), now_usec());
                return;
        }
        /* Before the engine hears of it: from now on a SIGKILL of the supervisor leaves a
         * record for the next start to stop what this worker forks (leftovers.h). */
        leftovers_record(&s->leftovers, pid, a->generation);
        log_info("Worker %d (generation %" PRIu64 ", slot %u) started: %s", pid, a->generation, a->slot, cmd->target);
        engine_worker_spawned(s->engine, a->worker_id, pid, now_usec());
}

int supervisor_message(struct supervisor *s, const char *text, unsigned *ret_delivered) {
        unsigned n = 0;
        size_t len = strlen(text);
        for (size_t i = 0; i < s->n_io; i++) {
                if (s->io[i].control_fd < 0)
                        continue;
                if (send(s->io[i].control_fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t) len)
                        n++;
                else
                        log_warning_errno(errno, "Cannot deliver message to worker %d: %m", s->io[i].pid);
        }
        *ret_delivered = n;
        return 0;
}

/* ---- timers ---- */

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        engine_timer(s->engine, now_usec());
        supervisor_dispatch(s);
        return 0;
}

static void arm_timer(struct supervisor *s) {
        uint64_t next = engine_next_deadline(s->engine);
        if (next == USEC_INFINITY) {
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(s->timer, next);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

/* ---- notify ---- */

static int on_notify(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct supervisor *s = userdata;
        char buf[NOTIFY_MAX_MESSAGE];
        pid_t pid;
        size_t len;

        for (int i = 0; i < 64; i++) {
                int r = notify_receive(fd, &pid, buf, sizeof(buf), &len);
                if (r <= 0)
                        break;
                struct notify_message m;
                if (notify_parse(buf, len, &m) < 0) {
                        log_debug("Ignoring malformed notify message from pid %d", pid);
                        continue;
                }
                /* A worker started through a shell script may send from a child: it is
                 * attributed to the worker whose process group it belongs to. */
                const struct engine_worker *w = engine_find_worker(s->engine, pid);
                if (!w) {
                        pid_t group = getpgid(pid);
                        if (group > 0)
                                w = engine_find_worker(s->engine, group);
                }
                if (!w) {
                        log_debug("Ignoring notify message from pid %d: not a worker", pid);
                        continue;
                }
                /* Copied out: engine_worker_ready() may spawn the next batch, which can
                 * move the engine's worker array and leave w dangling. */
                pid_t worker = w->pid;
                if (m.has_status)
                        log_debug("Worker %d: %s", worker, m.status);
                if (m.ready) {
                        log_debug("Worker %d (generation %" PRIu64 ") sent READY=1", worker, w->generation);
                        engine_worker_ready(s->engine, worker, now_usec());
                }
        }
        supervisor_dispatch(s);
        return 0;
}

/* ---- status ---- */

static void update_status(struct supervisor *s) {
        char status[sizeof(s->status)];
        engine_format_status(s->engine, now_usec(), status, sizeof(status));
        if (strcmp(status, s->status) == 0)
                return;
        memcpy(s->status, status, sizeof(status));
        (void) sd_notifyf(false, "STATUS=%s", status);
}

static uint64_t max_drain_timeout(struct supervisor *s) {
        const struct engine_worker *w;
        size_t n = engine_get_workers(s->engine, &w);
        uint64_t max = 0;
        for (size_t i = 0; i < n; i++)
                if (w[i].drain_timeout_usec > max)
                        max = w[i].drain_timeout_usec;
        return max;
}

/* Performs every queued action, then brings timer, status and properties up to date.
 * Called after each event handed to the engine. */
void supervisor_dispatch(struct supervisor *s) {
        struct engine_action a;
        int r;

        /* Bounded: actions only queue more actions through spawn reports, which add at
         * most one signal each. */
        while (engine_next_action(s->engine, &a)) {
                switch (a.type) {
                case ACTION_SPAWN:
                        perform_spawn(s, &a);
                        break;
                case ACTION_SIGNAL:
                        switch (a.purpose) {
                        case SIGNAL_DRAIN:
                                log_info("Draining worker %d (%s%s)", a.pid, sigabbrev_np(a.signal) ?: "?",
                                         a.group ? "" : " to its main process only");
                                break;
                        case SIGNAL_RESUME:
                                log_debug("Sending CONT to worker %d, in case it is stopped", a.pid);
                                break;
                        case SIGNAL_KILL:
                                log_warning("Killing worker %d: %s", a.pid, a.reason);
                                break;
                        }
                        r = spawn_signal_worker(a.pid, a.signal, a.group);
                        if (r < 0)
                                log_warning_errno(r, "Cannot signal worker %d: %s", a.pid, strerror(-r));
                        break;
                case ACTION_WORKER_READY:
                        log_info("Worker %d (generation %" PRIu64 ", slot %u) is ready", a.pid, a.generation, a.slot);
                        break;
                case ACTION_READY:
                        engine_format_status(s->engine, now_usec(), s->status, sizeof(s->status));
                        log_info("%s", s->status);
                        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", s->status);
                        break;
                case ACTION_UPGRADE_STARTED:
                        log_info("Upgrading to generation %" PRIu64 " (%s, strategy %s)", a.generation,
                                 s->candidate.target, strategy_to_string(s->candidate_config.strategy));
                        break;
                case ACTION_UPGRADE_FINISHED:
                        control_upgrade_finished(s, &a);
                        break;
                case ACTION_CANCEL_HOOK:
                        control_cancel_hook(s);
                        break;
                case ACTION_START_FAILED:
                        log_error("%s; stopping every worker", a.reason);
                        break;
                case ACTION_EXIT:
                        s->exit_status = a.success ? EXIT_SUCCESS : EXIT_FAILURE;
                        (void) sd_event_exit(s->event, s->exit_status);
                        break;
                }
        }
        if (engine_get_state(s->engine) == ENGINE_STOPPING && !s->stopping_notified) {
                s->stopping_notified = true;
                (void) sd_notifyf(false, "STOPPING=1\nEXTEND_TIMEOUT_USEC=%" PRIu64,
                                  (uint64_t) (max_drain_timeout(s) + 5 * USEC_PER_SEC));
        }
        arm_timer(s);
        update_status(s);
        bus_emit_changes(s->bus);
}

/* ---- signals ---- */

static int on_stop_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;
        if (engine_get_state(s->engine) == ENGINE_STOPPING) {
                log_notice("Already stopping: waiting for %u worker(s) to drain (at most the drain timeout)",
                           engine_count_draining(s->engine));
                return 0;
        }
        log_info("Received %s: draining every worker", sigabbrev_np((int) si->ssi_signo) ?: "signal");
        engine_stop(s->engine, now_usec());
        supervisor_dispatch(s);
        return 0;
}

static int on_reload_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        log_info("Received SIGHUP: reloading");
        if (control_upgrade(s, "", NULL, false, &error) < 0)
                log_error("Reload refused: %s", error.message);
        sd_bus_error_free(&error);
        return 0;
}

static int on_watchdog(sd_event_source *source, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        uint64_t interval;
        (void) sd_notify(false, "WATCHDOG=1");
        if (sd_watchdog_enabled(false, &interval) > 0)
                (void) sd_event_source_set_time_relative(s->watchdog, interval / 2);
        return 0;
}

int supervisor_setup_loop(struct supervisor *s) {
        int r;
        uint64_t interval;

        r = sd_event_default(&s->event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %s", strerror(-r));
        if ((r = sd_event_add_signal(s->event, NULL, SIGTERM, on_stop_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGINT, on_stop_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGHUP, on_reload_signal, s)) < 0)
                return log_error_errno(r, "Cannot watch signals: %s", strerror(-r));
        r = sd_event_add_time(s->event, &s->timer, CLOCK_MONOTONIC, USEC_INFINITY, TIMER_ACCURACY_USEC, on_timer, s);
        if (r < 0)
                return log_error_errno(r, "Cannot create timer: %s", strerror(-r));
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        r = sd_event_add_io(s->event, &s->notify_source, s->notify_fd, EPOLLIN, on_notify, s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the notify socket: %s", strerror(-r));
        if (sd_watchdog_enabled(false, &interval) > 0) {
                r = sd_event_add_time_relative(s->event, &s->watchdog, CLOCK_MONOTONIC, interval / 2,
                                               TIMER_ACCURACY_USEC, on_watchdog, s);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the watchdog: %s", strerror(-r));
                (void) sd_event_source_set_enabled(s->watchdog, SD_EVENT_ON);
        }
        return 0;
}

void supervisor_done(struct supervisor *s) {
        control_done(s);
        s->bus = bus_server_free(s->bus);
        while (s->n_io > 0) {
                /* Only reached when the loop ended abnormally: never leave a worker behind. */
                (void) spawn_signal_worker(s->io[0].pid, SIGKILL, true);
                (void) waitpid(s->io[0].pid, NULL, 0);
                leftovers_forget(&s->leftovers, s->io[0].pid);
                io_remove(s, &s->io[0]);
        }
        leftovers_close(&s->leftovers);
        free(s->io);
        s->notify_source = sd_event_source_disable_unref(s->notify_source);
        s->timer = sd_event_source_disable_unref(s->timer);
        s->watchdog = sd_event_source_disable_unref(s->watchdog);
        if (s->notify_fd >= 0) {
                close(s->notify_fd);
                (void) unlink(s->notify_path);
        }
        sockets_done(&s->sockets);
        s->engine = engine_free(s->engine);
        s->event = sd_event_unref(s->event);
        config_done(&s->config);
        config_done(&s->candidate_config);
        worker_command_done(&s->current);
        worker_command_done(&s->candidate);
        free(s->fdnames);
        free(s->runtime_dir);
        free(s->notify_path);
        free(s->head_path);
        free(s->head_seen);
        free(s->instance);
}
