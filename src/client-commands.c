/* client-commands.c: the requests liveswapctl and liveswap -u/-k/-d/-m share, and the
 * waiting with live progress for those that take time (upgrade, reload, rollback, stop).
 * Progress comes from PropertiesChanged, whose match is in place before the request is
 * sent, so no change is missed; the end of an upgrade comes as the method's reply. The
 * counters say it all: Workers is only invalidated in those signals, and never read
 * again while waiting (at thousands of workers it would cost more than the upgrade).
 * Progress goes to stderr (one line rewritten in place on a terminal, plain lines
 * otherwise), results to stdout, so a script reads only the result. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "errors.h"
#include "json.h"
#include "macro.h"
#include "names.h"
#include "utf8.h"

/* One request being waited for. */
struct wait {
        struct client *c;
        struct client_status status; /* kept current from PropertiesChanged */
        uint64_t generation; /* the generation being built, for the progress line */
        bool stopping; /* waiting for the supervisor to go away */
        bool done;
        int exit;
        uint64_t result_generation;
        bool tty;
        bool line_shown; /* a terminal line to clear before anything else is printed */
        char shown[512];
        uint64_t started_usec;
        sd_bus_slot *properties_slot, *call_slot, *gone_slot;
};

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static bool json(const struct client *c) {
        return c->options->json;
}

/* ---- progress ---- */

static void progress_text(const struct wait *w, char *buf, size_t size) {
        const struct client_status *s = &w->status;
        const char *instance = w->c->instance;
        if (w->stopping) {
                snprintf(buf, size, "%s: stopping: %u worker%s draining", instance, s->draining,
                         s->draining == 1 ? "" : "s");
                return;
        }
        /* A supervisor older than the counters still sends Workers with each change. */
        unsigned ready = s->has_upgrade_counts ? s->upgrade_ready : client_status_count(s, w->generation, "ready");
        unsigned starting =
                s->has_upgrade_counts ? s->upgrade_starting : client_status_count(s, w->generation, "starting");
        /* The upgrade ended before its reply came: the new generation is the current one,
         * and the counters of "the generation being built" are back to 0. */
        if (s->has_upgrade_counts && s->generation == w->generation && s->state && strcmp(s->state, "running") == 0)
                ready = s->ready, starting = 0;
        if (s->state && strcmp(s->state, "rolling-back") == 0)
                snprintf(buf, size, "%s: generation %" PRIu64 " failed, rolling back: %u draining", instance,
                         w->generation, s->draining);
        else
                snprintf(buf, size, "%s: upgrading to generation %" PRIu64 ": %u/%u ready, %u starting, %u draining",
                         instance, w->generation, ready, s->desired, starting, s->draining);
}

static void progress_clear(struct wait *w) {
        if (w->line_shown) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                w->line_shown = false;
        }
}

/* On a terminal one line, rewritten with the time spent; otherwise a line per change. */
static void progress_show(struct wait *w) {
        char text[sizeof(w->shown)];
        progress_text(w, text, sizeof(text));
        if (w->tty) {
                fprintf(stderr, "\r\033[K%s (%" PRIu64 "s)", text,
                        (uint64_t) ((monotonic_usec() - w->started_usec) / USEC_PER_SEC));
                fflush(stderr);
                w->line_shown = true;
        } else if (strcmp(text, w->shown) != 0)
                /* In the service's journal (ExecReload=) at debug level: the supervisor
                 * logs each of these steps itself, at info, with the worker's fields. */
                fprintf(stderr, "%s%s\n", client_line_prefix(STDERR_FILENO, LOG_DEBUG), text);
        memcpy(w->shown, text, sizeof(text));
}

/* ---- bus callbacks ---- */

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct wait *w = userdata;
        const char *interface;
        if (sd_bus_message_read(m, "s", &interface) < 0 || strcmp(interface, LIVESWAP_INTERFACE) != 0)
                return 0;
        if (client_status_update(&w->status, m) >= 0 && !w->done) {
                if (w->status.upgrade_generation > 0)
                        w->generation = w->status.upgrade_generation;
                progress_show(w);
        }
        return 0;
}

static void report_lost(struct wait *w) {
        progress_clear(w);
        w->exit = client_fail(w->c->options, w->c->instance, CLIENT_EXIT_NOT_RUNNING, "NotRunning",
                              "lost the connection to the supervisor (%s); it may have exited", w->c->where);
}

static int on_upgrade_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct wait *w = userdata;
        w->done = true;
        progress_clear(w);
        const sd_bus_error *error = sd_bus_message_get_error(m);
        if (error) {
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY) && sd_bus_is_open(w->c->bus) <= 0)
                        report_lost(w);
                else
                        w->exit = client_report_error(w->c, error, -EIO);
                return 0;
        }
        if (sd_bus_message_read(m, "t", &w->result_generation) < 0)
                w->exit = client_fail(w->c->options, w->c->instance, CLIENT_EXIT_FAILED, "Failed",
                                      "the supervisor sent a malformed reply");
        return 0;
}

static int on_gone(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct wait *w = userdata;
        const char *name, *old_owner, *new_owner;
        /* NameOwnerChanged on a bus; the local Disconnected peer-to-peer. */
        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus", "NameOwnerChanged")) {
                if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || *new_owner)
                        return 0;
        }
        w->done = true;
        return 0;
}

/* Runs the connection until the request is answered (or the supervisor is gone). */
static int wait_loop(struct wait *w) {
        sd_bus *bus = w->c->bus;
        while (!w->done) {
                int r = sd_bus_process(bus, NULL);
                if (r > 0)
                        continue;
                if (r == 0) {
                        if (w->tty)
                                progress_show(w);
                        r = sd_bus_wait(bus, w->tty ? USEC_PER_SEC : UINT64_MAX);
                }
                if (r < 0 && r != -EINTR) {
                        if (w->stopping && !w->done) {
                                w->done = true; /* peer-to-peer, the connection ends with the supervisor */
                                break;
                        }
                        if (!w->done)
                                report_lost(w);
                        w->done = true;
                }
        }
        progress_clear(w);
        return w->exit;
}

static int wait_init(struct wait *w, struct client *c) {
        *w = (struct wait){ .c = c, .tty = isatty(STDERR_FILENO) > 0, .started_usec = monotonic_usec() };
        /* The match first, then the state: a change in between arrives as a signal. */
        int r = sd_bus_match_signal(c->bus, &w->properties_slot, c->destination, LIVESWAP_OBJECT_PATH,
                                    "org.freedesktop.DBus.Properties", "PropertiesChanged", on_properties_changed, w);
        if (r < 0)
                return client_fail(c->options, c->instance, client_exit_code_for_errno(r, NULL), "Failed",
                                   "cannot watch the supervisor's progress: %s", strerror(-r));
        return client_get_status(c, &w->status);
}

/* The callbacks point at w: they must not outlive it. */
static void wait_done(struct wait *w) {
        w->properties_slot = sd_bus_slot_unref(w->properties_slot);
        w->call_slot = sd_bus_slot_unref(w->call_slot);
        w->gone_slot = sd_bus_slot_unref(w->gone_slot);
        client_status_done(&w->status);
}

/* ---- upgrade, reload, rollback ---- */

static void print_upgraded(struct client *c, uint64_t generation) {
        struct client_status s = {};
        /* The reply comes before the last PropertiesChanged: read the target anew. */
        (void) client_get_status(c, &s);
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                printf(",\"success\":true,\"generation\":%" PRIu64 ",\"target\":", generation);
                json_write_string(stdout, s.target);
                fputs("}\n", stdout);
        } else
                printf("%s%s: serving generation %" PRIu64 " (%s)\n", client_line_prefix(STDOUT_FILENO, LOG_INFO),
                       c->instance, generation, s.target ?: "?");
        client_status_done(&s);
}

static void print_started(struct client *c, uint64_t generation) {
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                printf(",\"started\":true,\"generation\":%" PRIu64 "}\n", generation);
        } else
                printf("%s%s: upgrade to generation %" PRIu64 " started\n", client_line_prefix(STDOUT_FILENO, LOG_INFO),
                       c->instance, generation);
}

/* An upgrade that waits: METHOD is Upgrade (with TARGET) or Rollback. */
static int upgrade_and_wait(struct client *c, const char *method, const char *target) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        struct wait w;
        int r = wait_init(&w, c);
        if (r != CLIENT_EXIT_OK)
                goto finish;
        /* A guess until the supervisor says (UpgradeGeneration, with its first change):
         * right unless a failed upgrade used a number up, which an older supervisor does
         * not tell. */
        w.generation = w.status.generation + 1;
        r = sd_bus_message_new_method_call(c->bus, &call, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE,
                                           method);
        if (r >= 0 && target)
                r = sd_bus_message_append(call, "s", target);
        /* An upgrade may legitimately take minutes (ready and drain timeouts): the
         * supervisor bounds it, so the call has no timeout of its own. */
        if (r >= 0)
                r = sd_bus_call_async(c->bus, &w.call_slot, call, on_upgrade_reply, &w, UINT64_MAX);
        if (r < 0) {
                r = client_fail(c->options, c->instance, client_exit_code_for_errno(r, NULL), "Failed",
                                "cannot send the request: %s", strerror(-r));
                goto finish;
        }
        r = wait_loop(&w);
        if (r == CLIENT_EXIT_OK)
                print_upgraded(c, w.result_generation);
finish:
        wait_done(&w);
        return r;
}

static int start_upgrade(struct client *c, const char *target) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t generation;
        int r = client_call(c, "StartUpgrade", &reply, "s", target);
        if (r != CLIENT_EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "t", &generation) < 0)
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                   "the supervisor sent a malformed reply");
        print_started(c, generation);
        return CLIENT_EXIT_OK;
}

/* A relative target means relative to the caller, not to the supervisor's directory.
 * Returns 0, or the exit code of a failure it reported. */
static int absolute_target(struct client *c, const char *target, char **ret) {
        if (!target || !*target || target[0] == '/') {
                *ret = strdup(target ?: "");
                return *ret ? 0 : client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed", "out of memory");
        }
        if (c->options->transport == CLIENT_TRANSPORT_REMOTE)
                return client_fail(c->options, c->instance, CLIENT_EXIT_USAGE, "Usage",
                                   "the relative target %s cannot be resolved on a remote host; give an absolute path",
                                   target);
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd)
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                   "cannot resolve the relative target %s: %s", target, strerror(errno));
        while (target[0] == '.' && target[1] == '/')
                target += 2;
        if (asprintf(ret, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", target) < 0) {
                *ret = NULL;
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed", "out of memory");
        }
        return 0;
}

/* sd-bus refuses to send a string that is not UTF-8, which would only say "Invalid
 * argument": name the problem instead, with the bad bytes shown as \xNN. */
static bool check_utf8(struct client *c, const char *what, const char *text) {
        if (utf8_is_valid(text))
                return true;
        _cleanup_free_ char *shown = utf8_escape_invalid(text);
        client_fail(c->options, c->instance, CLIENT_EXIT_USAGE, "InvalidArgument",
                    "%s is not valid UTF-8 (D-Bus carries only UTF-8): %s", what, shown ?: "(out of memory)");
        return false;
}

int client_upgrade(struct client *c, const char *target) {
        _cleanup_free_ char *absolute = NULL;
        int r = absolute_target(c, target, &absolute);
        if (r != 0)
                return r;
        if (!check_utf8(c, "target", absolute))
                return CLIENT_EXIT_USAGE;
        if (c->options->no_wait)
                return start_upgrade(c, absolute);
        return upgrade_and_wait(c, "Upgrade", absolute);
}

int client_rollback(struct client *c) {
        if (!c->options->no_wait)
                return upgrade_and_wait(c, "Rollback", NULL);
        /* There is no StartRollback: Rollback is StartUpgrade to the previous target. */
        struct client_status s = {};
        int r = client_get_status(c, &s);
        if (r == CLIENT_EXIT_OK && !(s.previous_target && *s.previous_target))
                r = client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "NoPrevious",
                                "there is no previous target");
        else if (r == CLIENT_EXIT_OK)
                r = start_upgrade(c, s.previous_target);
        client_status_done(&s);
        return r;
}

/* ---- stop ---- */

static int watch_gone(struct wait *w) {
        struct client *c = w->c;
        int r;
        if (c->destination) {
                _cleanup_free_ char *rule = NULL;
                if (asprintf(&rule,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                             c->destination) < 0)
                        return -ENOMEM;
                r = sd_bus_add_match(c->bus, &w->gone_slot, rule, on_gone, w);
        } else
                r = sd_bus_match_signal(c->bus, &w->gone_slot, NULL, "/org/freedesktop/DBus/Local",
                                        "org.freedesktop.DBus.Local", "Disconnected", on_gone, w);
        return r;
}

static void print_done(struct client *c, const char *what, const char *text) {
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                printf(",\"%s\":true}\n", what);
        } else
                printf("%s%s: %s\n", client_line_prefix(STDOUT_FILENO, LOG_INFO), c->instance, text);
}

int client_stop(struct client *c) {
        if (c->options->no_wait) {
                int r = client_call(c, "Quit", NULL, "");
                if (r == CLIENT_EXIT_OK)
                        print_done(c, "stopping", "stopping (every worker drains, then the supervisor exits)");
                return r;
        }
        struct wait w;
        int r = wait_init(&w, c);
        int k = r == CLIENT_EXIT_OK ? watch_gone(&w) : 0;
        if (k < 0)
                r = client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                "cannot watch the supervisor: %s", strerror(-k));
        if (r == CLIENT_EXIT_OK)
                r = client_call(c, "Quit", NULL, "");
        if (r == CLIENT_EXIT_OK) {
                w.stopping = true;
                /* The drain began before Quit returned: say so at once. The changes that
                 * follow may never come as signals, when the workers are gone before the
                 * supervisor's loop is idle enough to send them, and the supervisor may
                 * be gone before it can be asked: then every worker it had was draining. */
                uint32_t draining;
                if (sd_bus_get_property_trivial(c->bus, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE,
                                                "DrainingWorkers", NULL, 'u', &draining) < 0)
                        draining = (uint32_t) w.status.n_workers;
                w.status.draining = draining;
                progress_show(&w);
                r = wait_loop(&w);
        }
        if (r == CLIENT_EXIT_OK)
                print_done(c, "stopped", "stopped");
        wait_done(&w);
        return r;
}

/* ---- the short requests ---- */

int client_restart(struct client *c) {
        int r = client_call(c, "Restart", NULL, "");
        if (r == CLIENT_EXIT_OK)
                print_done(c, "restarting", "restarting every worker");
        return r;
}

int client_cancel(struct client *c) {
        int r = client_call(c, "Cancel", NULL, "");
        if (r == CLIENT_EXIT_OK)
                print_done(c, "cancelled", "upgrade cancelled, rolling back");
        return r;
}

int client_message(struct client *c, const char *text) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t delivered = 0;
        if (!check_utf8(c, "the message", text))
                return CLIENT_EXIT_USAGE;
        int r = client_call(c, "Message", &reply, "s", text);
        if (r != CLIENT_EXIT_OK)
                return r;
        (void) sd_bus_message_read(reply, "u", &delivered);
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                printf(",\"delivered\":%" PRIu32 "}\n", delivered);
        } else
                printf("%s: delivered to %" PRIu32 " worker%s\n", c->instance, delivered, delivered == 1 ? "" : "s");
        return CLIENT_EXIT_OK;
}

int client_scale(struct client *c, uint32_t count) {
        int r = client_call(c, "SetWorkers", NULL, "u", count);
        if (r != CLIENT_EXIT_OK)
                return r;
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                printf(",\"workers\":%" PRIu32 "}\n", count);
        } else
                printf("%s: scaling to %" PRIu32 " worker%s\n", c->instance, count, count == 1 ? "" : "s");
        return CLIENT_EXIT_OK;
}

/* ---- reexec ---- */

/* How long the supervisor may take to answer again: its exec and start-up take a few
 * milliseconds; this bounds the wait on a machine that is thrashing. */
#define REEXEC_WAIT_USEC (30 * 1000000ULL)

static int get_version(struct client *c, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_get_property_string(c->bus, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, "Version",
                                           &error, ret);
        if (r < 0)
                return client_report_error(c, &error, r);
        return CLIENT_EXIT_OK;
}

struct reexec_wait {
        const char *old_owner;
        bool gone; /* the old image's connection closed, or its bus name changed hands */
};

static int on_reexec_gone(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct reexec_wait *w = userdata;
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus", "NameOwnerChanged")) {
                if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
                    strcmp(old_owner, w->old_owner) != 0)
                        return 0;
        }
        w->gone = true;
        return 0;
}

/* Until the old image is gone: peer-to-peer its connection closes at the exec; on a bus
 * its name loses the old owner. Bounded by DEADLINE. */
static int wait_old_image_gone(struct client *c, struct reexec_wait *w, uint64_t deadline) {
        while (!w->gone) {
                int r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return 0; /* peer-to-peer, the closed connection says it too */
                if (r > 0)
                        continue;
                uint64_t now = monotonic_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = sd_bus_wait(c->bus, deadline - now);
                if (r < 0)
                        return 0;
        }
        return 0;
}

/* Connects again until the new image answers Version; bounded by DEADLINE. The private
 * socket is the same listening socket throughout, so a connection there waits in its
 * backlog for the new image; a bus name may have no owner for a moment. */
static int reconnect(struct client *c, uint64_t deadline, char **ret_version) {
        const struct client_options *o = c->options;
        for (;;) {
                client_close(c);
                int r = client_open(c, o);
                if (r >= 0) {
                        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                        (void) sd_bus_set_method_call_timeout(c->bus, deadline - monotonic_usec());
                        r = sd_bus_get_property_string(c->bus, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE,
                                                       "Version", &error, ret_version);
                        if (r >= 0)
                                return 0;
                }
                if (monotonic_usec() >= deadline)
                        return -ETIMEDOUT;
                /* The name is back within moments (contract section 11): retry soon. */
                (void) usleep(20000);
        }
}

int client_reexec(struct client *c) {
        _cleanup_free_ char *old_version = NULL, *new_version = NULL, *rule = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *owner = "";
        int r = get_version(c, &old_version);
        if (r != CLIENT_EXIT_OK)
                return r;
        if (c->destination) {
                if (sd_bus_get_name_creds(c->bus, c->destination, SD_BUS_CREDS_UNIQUE_NAME, &creds) >= 0)
                        (void) sd_bus_creds_get_unique_name(creds, &owner);
                if (asprintf(&rule,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                             c->destination) < 0)
                        return CLIENT_EXIT_USAGE;
        }
        struct reexec_wait w = { .old_owner = owner };
        r = rule ? sd_bus_add_match(c->bus, &slot, rule, on_reexec_gone, &w)
                 : sd_bus_match_signal(c->bus, &slot, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                       "Disconnected", on_reexec_gone, &w);
        if (r < 0) {
                client_error(c, "cannot watch the supervisor: %s", strerror(-r));
                return CLIENT_EXIT_USAGE;
        }
        r = client_call(c, "Reexecute", NULL, "");
        if (r != CLIENT_EXIT_OK)
                return r;
        uint64_t deadline = monotonic_usec() + REEXEC_WAIT_USEC;
        if (wait_old_image_gone(c, &w, deadline) < 0 ||
            (slot = sd_bus_slot_unref(slot), reconnect(c, deadline, &new_version) < 0)) {
                if (c->instance)
                        client_error(c, "the supervisor did not answer again within %llu s after re-executing",
                                     REEXEC_WAIT_USEC / 1000000ULL);
                else
                        fprintf(stderr, "%s: the supervisor did not answer again after re-executing\n",
                                c->options->program);
                return CLIENT_EXIT_FAILED;
        }
        if (json(c)) {
                fputs("{\"instance\":", stdout);
                json_write_string(stdout, c->instance);
                fputs(",\"reexecuted\":true,\"old_version\":", stdout);
                json_write_string(stdout, old_version);
                fputs(",\"new_version\":", stdout);
                json_write_string(stdout, new_version);
                fputs("}\n", stdout);
        } else
                printf("%s%s: re-executed: liveswap %s -> liveswap %s\n", client_line_prefix(STDOUT_FILENO, LOG_INFO),
                       c->instance, old_version, new_version);
        return CLIENT_EXIT_OK;
}
