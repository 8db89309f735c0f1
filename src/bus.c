/* bus.c: the org.liveswap1.Supervisor object, served peer-to-peer on the private socket
 * (one sd-bus server connection per client, no broker) and, when one is reachable, on the
 * system or user bus under org.liveswap1.<escaped instance>. Handlers check the caller
 * and read the arguments, call the request verbs (request.c) and map their enum reasons
 * to org.liveswap1.Error.* names; calls that wait for the end of an upgrade are kept here
 * and answered when the request layer reports it. No upgrade policy lives here. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "bus.h"
#include "errors.h"
#include "log.h"
#include "macro.h"
#include "names.h"
#include "request.h"
#include "supervisor.h"
#include "utf8.h"
#include "worker-stats.h"

#define MAX_CONNECTIONS 256

/* A D-Bus call waiting for the end of an upgrade. */
struct waiter {
        sd_bus_message *call;
        uint64_t generation;
};

struct connection {
        struct bus_server *server;
        sd_bus *bus;
        sd_bus_slot *disconnect_slot;
        bool dead;
        /* Signals only after the peer's first message: busctl and other bus clients send
         * Hello first and take anything but its reply as a protocol error (EIO). */
        bool ready;
        bool running; /* authenticated, and what came with BEGIN was processed */
        struct connection *next;
};

/* What the properties looked like when PropertiesChanged was last emitted. */
/* The longest a change waits for the loop to run dry before it goes out anyway. */
#define EMIT_LATENCY_MAX_USEC (100 * USEC_PER_MSEC)

struct snapshot {
        uint64_t generation;
        unsigned desired, ready, draining, upgrade_ready, upgrade_starting;
        uint64_t upgrade_generation;
        enum engine_state state;
        uint64_t workers_version;
        char target[512], previous[512], last_result[512];
};

struct bus_server {
        struct supervisor *supervisor;
        sd_bus *broker; /* the system or user bus, NULL when none is used */
        int listen_fd;
        char *path;
        sd_event_source *listen_source;
        sd_event_source *reaper; /* frees closed connections outside their own dispatch */
        sd_event_source *auth_kick; /* see on_auth_kick() */
        /* PropertiesChanged goes out from here, once the loop has nothing more urgent
         * to do: a burst of events (READY=1 from many workers, their exits) makes one
         * signal, not one each. */
        sd_event_source *emitter;
        uint64_t pending_since; /* when the emitter was enabled */
        struct connection *connections;
        unsigned n_connections;
        uint64_t next_unique;
        struct snapshot last;
        struct waiter *waiters;
        size_t n_waiters, allocated_waiters;
        struct request_observer observer;
};

/* ---- text on the bus ---- */

/* D-Bus strings must be valid UTF-8, or sd-bus refuses the whole message: one stray byte
 * in a hook's stderr line or a truncated reason would make every property read or reply
 * fail, and the instance could no longer be controlled. Targets are checked when they
 * come in (target.c), but whatever the supervisor says goes through here all the same:
 * invalid bytes are shown as \xNN. The one place that decides what text may go out. */
static char *bus_text(const char *s) {
        return utf8_escape_invalid(s ?: "");
}

static int append_text(sd_bus_message *m, const char *s) {
        _cleanup_free_ char *text = bus_text(s);
        if (!text)
                return -ENOMEM;
        return sd_bus_message_append(m, "s", text);
}

static char *format_text(const char *format, va_list ap) __attribute__((format(printf, 1, 0)));
static char *format_text(const char *format, va_list ap) {
        _cleanup_free_ char *raw = NULL;
        if (vasprintf(&raw, format, ap) < 0)
                return NULL;
        return bus_text(raw);
}

static int bus_error_setf(sd_bus_error *error, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int bus_error_setf(sd_bus_error *error, const char *name, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        _cleanup_free_ char *text = format_text(format, ap);
        va_end(ap);
        if (!text)
                return sd_bus_error_set_errno(error, -ENOMEM);
        return sd_bus_error_set(error, name, text);
}

/* Every error the supervisor sends goes through these two, so no reason can make a reply
 * fail. */
static int bus_reply_errorf(sd_bus_message *call, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int bus_reply_errorf(sd_bus_message *call, const char *name, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        _cleanup_free_ char *text = format_text(format, ap);
        va_end(ap);
        if (!text)
                return sd_bus_reply_method_errno(call, -ENOMEM, NULL);
        return sd_bus_reply_method_error(call, &SD_BUS_ERROR_MAKE_CONST(name, text));
}

/* ---- authorisation ---- */

static bool uid_allowed(const struct supervisor *s, uid_t uid) {
        if (uid == 0 || uid == getuid())
                return true;
        for (char **u = s->config.allow_users; u && *u; u++) {
                char *end;
                unsigned long n = strtoul(*u, &end, 10);
                if (*end == 0 && n == uid)
                        return true;
                struct passwd *pw = getpwnam(*u);
                if (pw && pw->pw_uid == uid)
                        return true;
        }
        return false;
}

static bool gid_allowed(const struct supervisor *s, gid_t gid) {
        for (char **g = s->config.allow_groups; g && *g; g++) {
                char *end;
                unsigned long n = strtoul(*g, &end, 10);
                if (*end == 0 && n == gid)
                        return true;
                struct group *gr = getgrnam(*g);
                if (gr && gr->gr_gid == gid)
                        return true;
        }
        return false;
}

/* Methods change what runs: root, our own uid, or the configured users and groups. The
 * check uses the kernel's view of the caller (SO_PEERCRED or the broker's), not a name. */
static int check_caller(sd_bus_message *m, struct supervisor *s, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        gid_t gid;
        const gid_t *gids = NULL;

        /* Peer-to-peer the kernel's SO_PEERCRED gives the effective ids. Through
         * dbus-daemon only the connection's uid (also taken from SO_PEERCRED when it
         * connected) is authoritative, so ask for both and prefer the effective one. */
        int r = sd_bus_query_sender_creds(m,
                                          SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_GID |
                                                  SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_AUGMENT,
                                          &creds);
        if (r >= 0 && sd_bus_creds_get_euid(creds, &uid) < 0)
                r = sd_bus_creds_get_uid(creds, &uid);
        if (r < 0) {
                log_warning("Refused %s: cannot determine the caller's identity: %s", sd_bus_message_get_member(m),
                            strerror(-r));
                return bus_error_setf(error, ERROR_ACCESS_DENIED, "Cannot determine the caller's identity");
        }
        if (uid_allowed(s, uid))
                return 0;
        if ((sd_bus_creds_get_egid(creds, &gid) >= 0 || sd_bus_creds_get_gid(creds, &gid) >= 0) && gid_allowed(s, gid))
                return 0;
        int n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        for (int i = 0; i < n; i++)
                if (gid_allowed(s, gids[i]))
                        return 0;
        log_warning("Refused %s from uid %u: not allowed to control %s", sd_bus_message_get_member(m), (unsigned) uid,
                    s->instance);
        /* The caller learns what would let it in, not only that it may not. */
        return bus_error_setf(error, ERROR_ACCESS_DENIED,
                              "uid %u may not control liveswap instance %s: allow_users= or allow_groups= in "
                              "[control] of %s would allow it",
                              (unsigned) uid, s->instance, s->config_path ?: "its configuration file");
}

#define CHECK_CALLER(m, s, error)                         \
        do {                                              \
                int _r = check_caller((m), (s), (error)); \
                if (_r < 0)                               \
                        return _r;                        \
        } while (0)

/* ---- methods ---- */

static const char *error_name(enum request_error e) {
        switch (e) {
        case REQUEST_BUSY:
                return ERROR_BUSY;
        case REQUEST_INVALID_TARGET:
                return ERROR_INVALID_TARGET;
        case REQUEST_INVALID_ARGUMENT:
                return ERROR_INVALID_ARGUMENT;
        case REQUEST_NO_PREVIOUS:
                return ERROR_NO_PREVIOUS;
        case REQUEST_HOOK_FAILED:
                return ERROR_HOOK_FAILED;
        case REQUEST_REEXEC_FAILED:
                return ERROR_REEXEC_FAILED;
        case REQUEST_UPGRADE_FAILED:
        default:
                return ERROR_UPGRADE_FAILED;
        }
}

/* A refused request as the caller sees it. */
static int set_request_error(sd_bus_error *error, int r, const struct request_result *result) {
        if (result->error == REQUEST_ERRNO || result->error == REQUEST_OK)
                return sd_bus_error_set_errno(error, r);
        return bus_error_setf(error, error_name(result->error), "%s", result->message);
}

/* Room for one more waiter before the request: once the upgrade has begun, no failure
 * may keep its caller from the answer. */
static int reserve_waiter(struct bus_server *b) {
        struct waiter *p = b->waiters;
        if (b->n_waiters < b->allocated_waiters)
                return 0;
        size_t n = b->allocated_waiters ? b->allocated_waiters * 2 : 4;
        p = reallocarray(p, n, sizeof(*p));
        if (!p)
                return -ENOMEM;
        b->waiters = p;
        b->allocated_waiters = n;
        return 0;
}

static int upgrade_reply(sd_bus_message *m, struct bus_server *b, int r, uint64_t generation, bool wait,
                         const struct request_result *result, sd_bus_error *error) {
        if (r < 0)
                return set_request_error(error, r, result);
        if (!wait)
                return sd_bus_reply_method_return(m, "t", generation);
        b->waiters[b->n_waiters++] = (struct waiter){ .call = sd_bus_message_ref(m), .generation = generation };
        return 1;
}

static int upgrade_common(sd_bus_message *m, struct bus_server *b, sd_bus_error *error, bool wait) {
        struct supervisor *s = b->supervisor;
        struct request_result result;
        uint64_t generation = 0;
        const char *target;
        CHECK_CALLER(m, s, error);
        int r = sd_bus_message_read(m, "s", &target);
        if (r < 0)
                return r;
        if (wait && (r = reserve_waiter(b)) < 0)
                return sd_bus_error_set_errno(error, r);
        r = request_upgrade(s, target, &generation, &result);
        return upgrade_reply(m, b, r, generation, wait, &result, error);
}

static int method_upgrade(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return upgrade_common(m, userdata, error, true);
}

static int method_start_upgrade(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return upgrade_common(m, userdata, error, false);
}

static int method_rollback(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        uint64_t generation = 0;
        CHECK_CALLER(m, b->supervisor, error);
        int r = reserve_waiter(b);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        r = request_rollback(b->supervisor, &generation, &result);
        return upgrade_reply(m, b, r, generation, true, &result, error);
}

static int method_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        CHECK_CALLER(m, b->supervisor, error);
        int r = request_cancel(b->supervisor, &result);
        return r < 0 ? set_request_error(error, r, &result) : sd_bus_reply_method_return(m, NULL);
}

static int method_restart(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        CHECK_CALLER(m, b->supervisor, error);
        int r = request_restart(b->supervisor, &result);
        return r < 0 ? set_request_error(error, r, &result) : sd_bus_reply_method_return(m, NULL);
}

static int method_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        CHECK_CALLER(m, b->supervisor, error);
        log_info("Quitting by request: draining every worker");
        int r = sd_bus_reply_method_return(m, NULL);
        (void) request_quit(b->supervisor);
        return r;
}

static int method_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        const char *text;
        unsigned delivered = 0;
        CHECK_CALLER(m, b->supervisor, error);
        int r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        r = request_message(b->supervisor, text, &delivered, &result);
        return r < 0 ? set_request_error(error, r, &result) : sd_bus_reply_method_return(m, "u", delivered);
}

static int method_set_workers(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        uint32_t count;
        CHECK_CALLER(m, b->supervisor, error);
        int r = sd_bus_message_read(m, "u", &count);
        if (r < 0)
                return r;
        r = request_scale(b->supervisor, count, &result);
        return r < 0 ? set_request_error(error, r, &result) : sd_bus_reply_method_return(m, NULL);
}

/* Replies once the reexec is accepted; the exec itself follows from the event loop
 * after this reply is on its way (the caller's connection closes with the old image). */
static int method_reexecute(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct request_result result;
        CHECK_CALLER(m, b->supervisor, error);
        int r = request_reexec(b->supervisor, &result);
        if (r < 0)
                return set_request_error(error, r, &result);
        r = sd_bus_reply_method_return(m, NULL);
        if (r >= 0)
                (void) sd_bus_flush(sd_bus_message_get_bus(m));
        return r;
}

/* ---- properties ---- */

/* WorkerDetails: what each worker costs, measured when the property is read (one pass
 * over /proc for all of them), so that no timer runs for it and an idle supervisor stays
 * idle. It changes all the time, so no PropertiesChanged is sent for it, and GetAll
 * leaves it out (the vtable says so): reading Workers or State costs no /proc pass. */
static int append_worker_details(sd_bus_message *reply, struct supervisor *s) {
        const struct engine *e = s->engine;
        size_t n = engine_count_workers(e);
        _cleanup_free_ struct engine_worker *workers = calloc(n ?: 1, sizeof(*workers));
        _cleanup_free_ pid_t *pids = calloc(n ?: 1, sizeof(*pids));
        _cleanup_free_ struct worker_stats *stats = calloc(n ?: 1, sizeof(*stats));
        if (!workers || !pids || !stats)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n && engine_get_worker_at(e, i, &workers[k]); i++)
                if (workers[k].pid > 0) {
                        pids[k] = workers[k].pid;
                        k++;
                }
        int r = supervisor_worker_stats(s, pids, k, stats);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', LIVESWAP_WORKER_DETAILS);
        for (size_t i = 0; r >= 0 && i < k; i++) {
                const struct engine_worker *w = &workers[i];
                r = sd_bus_message_append(reply, LIVESWAP_WORKER_DETAILS, (uint32_t) w->pid, w->generation,
                                          (uint32_t) w->slot, worker_state_to_string(w->state), w->started_usec,
                                          stats[i].has_memory ? stats[i].memory_bytes : LIVESWAP_FIGURE_UNKNOWN,
                                          stats[i].has_cpu ? stats[i].cpu_usec : LIVESWAP_FIGURE_UNKNOWN,
                                          (uint32_t) w->restarts);
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct bus_server *b = userdata;
        struct supervisor *s = b->supervisor;
        struct engine *e = s->engine;

        if (strcmp(property, "Instance") == 0)
                return append_text(reply, s->instance);
        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", LIVESWAP_VERSION);
        if (strcmp(property, "WorkerDetails") == 0)
                return append_worker_details(reply, s);
        if (strcmp(property, "Generation") == 0)
                return sd_bus_message_append(reply, "t", engine_get_generation(e));
        if (strcmp(property, "Target") == 0)
                return append_text(reply, engine_get_target(e));
        if (strcmp(property, "PreviousTarget") == 0)
                return append_text(reply, engine_get_previous_target(e));
        if (strcmp(property, "State") == 0)
                return sd_bus_message_append(reply, "s", engine_state_to_string(engine_get_state(e)));
        if (strcmp(property, "DesiredWorkers") == 0)
                return sd_bus_message_append(reply, "u", engine_get_desired_workers(e));
        if (strcmp(property, "ReadyWorkers") == 0)
                return sd_bus_message_append(reply, "u", engine_count_ready(e));
        if (strcmp(property, "DrainingWorkers") == 0)
                return sd_bus_message_append(reply, "u", engine_count_draining(e));
        if (strcmp(property, "LastResult") == 0)
                return append_text(reply, engine_get_last_result(e));
        if (strcmp(property, "UpgradeReadyWorkers") == 0)
                return sd_bus_message_append(reply, "u", engine_count_upgrade(e, WORKER_READY));
        if (strcmp(property, "UpgradeStartingWorkers") == 0)
                return sd_bus_message_append(reply, "u", engine_count_upgrade(e, WORKER_STARTING));
        if (strcmp(property, "UpgradeGeneration") == 0)
                return sd_bus_message_append(reply, "t", engine_get_upgrade_generation(e));
        if (strcmp(property, "Workers") == 0) {
                struct engine_worker w;
                int r = sd_bus_message_open_container(reply, 'a', "(utsst)");
                for (size_t i = 0; r >= 0 && engine_get_worker_at(e, i, &w); i++)
                        if (w.pid > 0) {
                                _cleanup_free_ char *target = bus_text(w.target);
                                r = target ? sd_bus_message_append(reply, "(utsst)", (uint32_t) w.pid, w.generation,
                                                                   worker_state_to_string(w.state), target,
                                                                   w.started_usec)
                                           : -ENOMEM;
                        }
                return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        return bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property %s", property);
}

static const sd_bus_vtable supervisor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Instance", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Generation", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Target", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PreviousTarget", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DesiredWorkers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ReadyWorkers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DrainingWorkers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Invalidated, not sent: at 80 bytes a worker it would make every signal of a big
         * instance tens of KB, re-parsed by every client that waits. Progress comes from
         * the counters; whoever wants the list reads it. */
        SD_BUS_PROPERTY("Workers", "a(utsst)", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("LastResult", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* The generation being built: its ready and starting workers (0 outside an
         * upgrade), what an upgrade's progress shows. */
        SD_BUS_PROPERTY("UpgradeReadyWorkers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UpgradeStartingWorkers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UpgradeGeneration", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* No EMITS_CHANGE flag: sd-bus annotates it EmitsChangedSignal=false. */
        SD_BUS_PROPERTY("WorkerDetails", "a" LIVESWAP_WORKER_DETAILS, property_get, 0, SD_BUS_VTABLE_PROPERTY_EXPLICIT),
        SD_BUS_METHOD_WITH_NAMES("Upgrade", "s", SD_BUS_PARAM(target), "t", SD_BUS_PARAM(generation), method_upgrade,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StartUpgrade", "s", SD_BUS_PARAM(target), "t", SD_BUS_PARAM(generation),
                                 method_start_upgrade, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Rollback", NULL, , "t", SD_BUS_PARAM(generation), method_rollback,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Cancel", NULL, NULL, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Restart", NULL, NULL, method_restart, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Quit", NULL, NULL, method_quit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Message", "s", SD_BUS_PARAM(text), "u", SD_BUS_PARAM(delivered), method_message,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetWorkers", "u", SD_BUS_PARAM(count), NULL, , method_set_workers,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reexecute", NULL, NULL, method_reexecute, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("UpgradeFinished", "tbs",
                                 SD_BUS_PARAM(generation) SD_BUS_PARAM(success) SD_BUS_PARAM(reason), 0),
        SD_BUS_VTABLE_END,
};

/* busctl always says Hello first, even peer-to-peer: answer it as a broker would. */
static int on_driver_call(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct connection *c = userdata;
        if (sd_bus_message_is_method_call(m, "org.freedesktop.DBus", "Hello")) {
                char name[32];
                snprintf(name, sizeof(name), ":1.%" PRIu64, ++c->server->next_unique);
                int r = sd_bus_reply_method_return(m, "s", name);
                c->ready = true;
                return r;
        }
        return 0;
}

/* Runs before any handler: a peer whose first message is not Hello is no bus client and
 * may get signals from now on. */
static int on_first_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct connection *c = userdata;
        if (!c->ready && !sd_bus_message_is_method_call(m, "org.freedesktop.DBus", "Hello"))
                c->ready = true;
        return 0;
}

static int fd_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);
        return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

/* ---- connections ---- */

static void connection_free(struct connection *c) {
        struct bus_server *b = c->server;
        for (struct connection **p = &b->connections; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        b->n_connections--;
        sd_bus_slot_unref(c->disconnect_slot);
        sd_bus_flush_close_unref(c->bus);
        free(c);
}

static int on_reap(sd_event_source *source, void *userdata) {
        struct bus_server *b = userdata;
        for (struct connection *c = b->connections, *next; c; c = next) {
                next = c->next;
                if (c->dead)
                        connection_free(c);
        }
        return 0;
}

/* Called from inside the connection's own dispatch: freeing it here would pull the bus
 * out from under sd-bus, so mark it and free it from a deferred event. */
static int on_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct connection *c = userdata;
        c->dead = true;
        (void) sd_event_source_set_enabled(c->server->reaper, SD_EVENT_ONESHOT);
        return 0;
}

/* A client may send its first method call in the same segment as the authentication's
 * BEGIN. sd-bus (252) then switches the connection to running with that call still in
 * its read buffer, and as nothing more arrives on the socket, nothing wakes it: the call
 * would wait for the next unrelated event. So after each loop iteration, process the
 * connections that are new until they are running and idle. */
static int on_auth_kick(sd_event_source *source, void *userdata) {
        struct bus_server *b = userdata;
        bool pending = false;
        for (struct connection *c = b->connections; c; c = c->next) {
                if (c->dead || c->running)
                        continue;
                int r = 0;
                for (int i = 0; i < 64 && (r = sd_bus_process(c->bus, NULL)) > 0; i++)
                        ;
                if (r < 0) {
                        c->dead = true;
                        (void) sd_event_source_set_enabled(b->reaper, SD_EVENT_ONESHOT);
                } else if (r == 0 && sd_bus_is_ready(c->bus) > 0)
                        c->running = true;
                else
                        pending = true;
        }
        if (!pending)
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        return 0;
}

static int connection_new(struct bus_server *b, int fd) {
        struct connection *c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->server = b;
        sd_id128_t id;
        int r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&c->bus);
        if (r < 0) {
                close(fd);
                free(c);
                return r;
        }
        if ((r = sd_bus_set_fd(c->bus, fd, fd)) < 0) {
                close(fd);
                goto fail;
        }
        if ((r = sd_bus_set_server(c->bus, 1, id)) < 0 || (r = sd_bus_set_anonymous(c->bus, false)) < 0 ||
            (r = sd_bus_negotiate_creds(c->bus, true, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID)) < 0 ||
            (r = sd_bus_add_object_vtable(c->bus, NULL, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, supervisor_vtable,
                                          b)) < 0 ||
            (r = sd_bus_add_object(c->bus, NULL, "/org/freedesktop/DBus", on_driver_call, c)) < 0 ||
            (r = sd_bus_add_filter(c->bus, NULL, on_first_message, c)) < 0 ||
            (r = sd_bus_match_signal(c->bus, &c->disconnect_slot, NULL, "/org/freedesktop/DBus/Local",
                                     "org.freedesktop.DBus.Local", "Disconnected", on_disconnect, c)) < 0 ||
            (r = sd_bus_start(c->bus)) < 0 || (r = sd_bus_attach_event(c->bus, b->supervisor->event, 0)) < 0)
                goto fail;
        c->next = b->connections;
        b->connections = c;
        b->n_connections++;
        (void) sd_event_source_set_enabled(b->auth_kick, SD_EVENT_ON);
        return 0;
fail:
        sd_bus_slot_unref(c->disconnect_slot);
        sd_bus_flush_close_unref(c->bus);
        free(c);
        return r;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct bus_server *b = userdata;
        for (int i = 0; i < 16; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(errno, "Cannot accept a control connection: %m");
                        return 0;
                }
                if (b->n_connections >= MAX_CONNECTIONS) {
                        log_warning("Refusing a control connection: %u already open", b->n_connections);
                        close(cfd);
                        continue;
                }
                int r = connection_new(b, cfd);
                if (r < 0)
                        log_warning_errno(r, "Cannot set up a control connection: %s", strerror(-r));
        }
        return 0;
}

/* Which bus to register on. A system service (started by systemd, no $MANAGERPID) uses
 * the system bus, a user service ($MANAGERPID is set only by user managers) and a
 * standalone supervisor the user bus, if there is one. $LIVESWAP_BUS=system|user|none
 * overrides the guess. */
static int open_broker(sd_bus **ret, const char **ret_kind) {
        const char *want = getenv("LIVESWAP_BUS");
        if (!want || !*want)
                want = getenv("INVOCATION_ID") && !getenv("MANAGERPID") ? "system" : "user";
        *ret_kind = want;
        if (strcmp(want, "none") == 0)
                return 0;
        if (strcmp(want, "system") == 0)
                return sd_bus_open_system(ret);
        if (strcmp(want, "user") == 0)
                return sd_bus_open_user(ret);
        return -EINVAL;
}

/* No bus at all is not an error: the private socket is enough. A name already owned by
 * another process is logged and left alone. */
static void attach_broker(struct bus_server *b) {
        struct supervisor *s = b->supervisor;
        const char *kind;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *name = names_bus_name(s->instance);
        int r = open_broker(&bus, &kind);
        if (r == -EINVAL) {
                log_warning("Ignoring LIVESWAP_BUS=%s: expected system, user or none", kind);
                return;
        }
        if (r < 0 || !bus) {
                if (r < 0)
                        log_debug("No %s bus: %s; serving the private socket only", kind, strerror(-r));
                return;
        }
        if (!name) {
                log_error("Out of memory");
                return;
        }
        r = sd_bus_add_object_vtable(bus, NULL, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, supervisor_vtable, b);
        if (r >= 0)
                r = sd_bus_request_name(bus, name, 0);
        if (r < 0) {
                if (r == -ENOENT || r == -ECONNREFUSED || r == -EACCES || r == -EPERM)
                        log_debug("Not on the %s bus: %s", kind, strerror(-r));
                else
                        log_warning("Cannot register %s on the %s bus: %s; serving the private socket only", name, kind,
                                    strerror(-r));
                return;
        }
        r = sd_bus_attach_event(bus, s->event, 0);
        if (r < 0) {
                log_warning("Cannot attach the %s bus to the event loop: %s", kind, strerror(-r));
                return;
        }
        log_info("Registered %s on the %s bus", name, kind);
        b->broker = TAKE_PTR(bus);
}

static void emit_changes(struct bus_server *b);

/* After each batch of actions (supervisor.c): the properties may have changed. */
static void changes_pending(void *userdata) {
        struct bus_server *b = userdata;
        int enabled = SD_EVENT_OFF;
        (void) sd_event_source_get_enabled(b->emitter, &enabled);
        if (enabled == SD_EVENT_OFF) {
                b->pending_since = now_usec();
                (void) sd_event_source_set_enabled(b->emitter, SD_EVENT_ONESHOT);
        } else if (now_usec() - b->pending_since >= EMIT_LATENCY_MAX_USEC)
                /* The loop never ran dry (a client calling without pause): no longer. */
                emit_changes(b);
}

static int on_emit(sd_event_source *source, void *userdata) {
        emit_changes(userdata);
        return 0;
}
static void on_upgrade_finished(void *userdata, uint64_t generation, bool success, const struct request_result *failure,
                                const char *summary);

struct supervisor *bus_server_supervisor(const struct bus_server *b) {
        return b->supervisor;
}

int bus_server_listen_fd(const struct bus_server *b) {
        return b->listen_fd;
}

void bus_server_flush(struct bus_server *b) {
        if (b->broker)
                (void) sd_bus_flush(b->broker);
        for (struct connection *c = b->connections; c; c = c->next)
                if (!c->dead)
                        (void) sd_bus_flush(c->bus);
}

int bus_server_new(struct supervisor *s, const char *socket_path, int listen_fd, struct bus_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Control socket path %s is too long", socket_path);
        strcpy(sa.sun_path, socket_path);

        struct bus_server *b = calloc(1, sizeof(*b));
        if (!b)
                return log_error_errno(ENOMEM, "Out of memory");
        b->supervisor = s;
        /* After a reexec the socket is the previous image's, still bound and listening:
         * clients that connected meanwhile wait in its backlog. */
        b->listen_fd = listen_fd >= 0 ? listen_fd : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        b->path = strdup(socket_path);
        int r;
        if (b->listen_fd < 0 || !b->path) {
                r = log_error_errno(b->path ? errno : ENOMEM, "Cannot create the control socket: %m");
                goto fail;
        }
        if (listen_fd < 0) {
                (void) unlink(socket_path);
                /* Mode 0600 from birth: no window in which another user could connect. */
                mode_t old = umask(0177);
                r = bind(b->listen_fd, (struct sockaddr *) &sa, sizeof(sa));
                umask(old);
                if (r < 0 || listen(b->listen_fd, 64) < 0) {
                        r = log_error_errno(errno, "Cannot listen on %s: %m", socket_path);
                        goto fail;
                }
        } else
                (void) fd_nonblock(b->listen_fd);
        r = sd_event_add_io(s->event, &b->listen_source, b->listen_fd, EPOLLIN, on_accept, b);
        if (r >= 0)
                r = sd_event_add_defer(s->event, &b->reaper, on_reap, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->reaper, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_post(s->event, &b->auth_kick, on_auth_kick, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->auth_kick, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(s->event, &b->emitter, on_emit, b);
        if (r >= 0)
                r = sd_event_source_set_priority(b->emitter, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->emitter, SD_EVENT_OFF);
        if (r < 0) {
                log_error_errno(r, "Cannot watch the control socket: %s", strerror(-r));
                goto fail;
        }
        attach_broker(b);
        b->observer = (struct request_observer){ .userdata = b, .upgrade_finished = on_upgrade_finished };
        request_init(s, &b->observer);
        s->on_changed = changes_pending;
        s->changed_userdata = b;
        *ret = b;
        return 0;
fail:
        bus_server_free(b);
        return r;
}

struct bus_server *bus_server_free(struct bus_server *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_waiters; i++) {
                (void) bus_reply_errorf(b->waiters[i].call, ERROR_UPGRADE_FAILED, "%s: the supervisor is stopping",
                                        b->supervisor->instance);
                sd_bus_message_unref(b->waiters[i].call);
        }
        free(b->waiters);
        if (b->supervisor->changed_userdata == b) {
                b->supervisor->on_changed = NULL;
                b->supervisor->changed_userdata = NULL;
        }
        if (b->supervisor->request_observer == &b->observer)
                b->supervisor->request_observer = NULL;
        while (b->connections)
                connection_free(b->connections);
        if (b->broker) {
                (void) sd_bus_detach_event(b->broker);
                b->broker = sd_bus_flush_close_unref(b->broker);
        }
        sd_event_source_disable_unref(b->listen_source);
        sd_event_source_disable_unref(b->reaper);
        sd_event_source_disable_unref(b->auth_kick);
        sd_event_source_disable_unref(b->emitter);
        if (b->listen_fd >= 0) {
                close(b->listen_fd);
                (void) unlink(b->path);
        }
        free(b->path);
        free(b);
        return NULL;
}

/* ---- signals ---- */

static void emit_upgrade_finished(struct bus_server *b, uint64_t generation, bool success, const char *reason) {
        if (!b)
                return;
        _cleanup_free_ char *text = bus_text(reason);
        if (!text)
                return;
        if (b->broker)
                (void) sd_bus_emit_signal(b->broker, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, "UpgradeFinished", "tbs",
                                          generation, (int) success, text);
        for (struct connection *c = b->connections; c; c = c->next)
                if (c->ready && !c->dead)
                        (void) sd_bus_emit_signal(c->bus, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, "UpgradeFinished",
                                                  "tbs", generation, (int) success, text);
}

static void take_snapshot(const struct supervisor *s, struct snapshot *snap) {
        const struct engine *e = s->engine;
        snap->generation = engine_get_generation(e);
        snap->desired = engine_get_desired_workers(e);
        snap->ready = engine_count_ready(e);
        snap->draining = engine_count_draining(e);
        snap->state = engine_get_state(e);
        snap->upgrade_ready = engine_count_upgrade(e, WORKER_READY);
        snap->upgrade_starting = engine_count_upgrade(e, WORKER_STARTING);
        snap->upgrade_generation = engine_get_upgrade_generation(e);
        snap->workers_version = engine_get_workers_version(e);
        snprintf(snap->target, sizeof(snap->target), "%s", engine_get_target(e));
        snprintf(snap->previous, sizeof(snap->previous), "%s", engine_get_previous_target(e));
        snprintf(snap->last_result, sizeof(snap->last_result), "%s", engine_get_last_result(e));
}

static void emit_changes(struct bus_server *b) {
        struct snapshot now, *old = &b->last;
        (void) sd_event_source_set_enabled(b->emitter, SD_EVENT_OFF);
        take_snapshot(b->supervisor, &now);
        char *changed[16];
        size_t n = 0;
        if (now.generation != old->generation)
                changed[n++] = "Generation";
        if (strcmp(now.target, old->target) != 0)
                changed[n++] = "Target";
        if (strcmp(now.previous, old->previous) != 0)
                changed[n++] = "PreviousTarget";
        if (now.state != old->state)
                changed[n++] = "State";
        if (now.desired != old->desired)
                changed[n++] = "DesiredWorkers";
        if (now.ready != old->ready)
                changed[n++] = "ReadyWorkers";
        if (now.draining != old->draining)
                changed[n++] = "DrainingWorkers";
        if (now.workers_version != old->workers_version)
                changed[n++] = "Workers";
        if (now.upgrade_ready != old->upgrade_ready)
                changed[n++] = "UpgradeReadyWorkers";
        if (now.upgrade_starting != old->upgrade_starting)
                changed[n++] = "UpgradeStartingWorkers";
        if (now.upgrade_generation != old->upgrade_generation)
                changed[n++] = "UpgradeGeneration";
        if (strcmp(now.last_result, old->last_result) != 0)
                changed[n++] = "LastResult";
        changed[n] = NULL;
        *old = now;
        if (n == 0)
                return;
        if (b->broker)
                (void) sd_bus_emit_properties_changed_strv(b->broker, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE,
                                                           changed);
        for (struct connection *c = b->connections; c; c = c->next)
                if (c->ready && !c->dead)
                        (void) sd_bus_emit_properties_changed_strv(c->bus, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE,
                                                                   changed);
}

/* ---- the end of an upgrade ---- */

static void on_upgrade_finished(void *userdata, uint64_t generation, bool success, const struct request_result *failure,
                                const char *summary) {
        struct bus_server *b = userdata;
        /* Properties first: a client that sees the reply or UpgradeFinished and then reads
         * its cached Generation/Target must find the new ones already. */
        emit_changes(b);
        for (size_t i = 0; i < b->n_waiters;) {
                struct waiter *w = &b->waiters[i];
                if (w->generation != generation) {
                        i++;
                        continue;
                }
                /* The caller may have gone away meanwhile: nothing to do about that. */
                if (success)
                        (void) sd_bus_reply_method_return(w->call, "t", generation);
                else
                        (void) bus_reply_errorf(w->call, error_name(failure->error), "%s", failure->message);
                sd_bus_message_unref(w->call);
                *w = b->waiters[--b->n_waiters];
        }
        emit_upgrade_finished(b, generation, success, summary);
}
