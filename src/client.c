/* client.c: finding running supervisors (their private sockets, their names on the user
 * and system buses) and connecting to one. Every failure a user can cause is printed as
 * one line naming the instance and the cause in words, never an errno number. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "client.h"
#include "errors.h"
#include "journal-stream.h"
#include "json.h"
#include "macro.h"
#include "names.h"

#define SYSTEM_RUNTIME_DIR "/run/liveswap"

static const char *program(const struct client_options *o) {
        return o && o->program ? o->program : "liveswap";
}

const char *client_line_prefix(int fd, int level) {
        static const char *const prefixes[] = { "<0>", "<1>", "<2>", "<3>", "<4>", "<5>", "<6>", "<7>" };
        return journal_stream_is(fd) ? prefixes[level & 7] : "";
}

/* The first failure of a run is the one --json reports: later lines are consequences. */
static void record_failure(const struct client_options *o, const char *instance, int exit, const char *error,
                           const char *reason) {
        struct client_failure *f = o ? o->failure : NULL;
        if (!f || f->exit != 0 || exit == 0)
                return;
        f->exit = exit;
        f->error = error ? strdup(error) : NULL;
        f->reason = strdup(reason);
        f->instance = instance ? strdup(instance) : NULL;
}

static int failv(const struct client_options *o, const char *instance, int exit, const char *error, const char *format,
                 va_list ap) {
        _cleanup_free_ char *text = NULL;
        if (vasprintf(&text, format, ap) < 0)
                text = NULL;
        fprintf(stderr, "%s%s: ", client_line_prefix(STDERR_FILENO, LOG_ERR), program(o));
        if (instance)
                fprintf(stderr, "%s: ", instance);
        fprintf(stderr, "%s\n", text ?: "out of memory");
        record_failure(o, instance, exit, error, text ?: "out of memory");
        return exit;
}

void client_error(const struct client *c, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        /* The exit code is the caller's: recorded with a name of its own only if none is. */
        (void) failv(c->options, c->instance ?: "liveswap", -1, NULL, format, ap);
        va_end(ap);
}

int client_fail(const struct client_options *o, const char *instance, int exit, const char *error, const char *format,
                ...) {
        va_list ap;
        va_start(ap, format);
        exit = failv(o, instance, exit, error, format, ap);
        va_end(ap);
        return exit;
}

static const char *name_for_exit(int exit) {
        switch (exit) {
        case CLIENT_EXIT_USAGE:
                return "InvalidArgument";
        case CLIENT_EXIT_NOT_RUNNING:
                return "NotRunning";
        case CLIENT_EXIT_ACCESS:
                return "AccessDenied";
        default:
                return "Failed";
        }
}

void client_failure_print_json(const struct client_failure *f, const char *instance, int exit) {
        /* A failure recorded by client_error() carries no name (exit -1): the exit code
         * the command returned names it. */
        bool named = f && f->exit == exit && f->error;
        fputs("{\"instance\":", stdout);
        if (f && f->instance)
                json_write_string(stdout, f->instance);
        else if (instance)
                json_write_string(stdout, instance);
        else
                fputs("null", stdout);
        fputs(",\"success\":false,\"error\":", stdout);
        json_write_string(stdout, named ? f->error : name_for_exit(exit));
        fputs(",\"reason\":", stdout);
        json_write_string(stdout, f && f->reason ? f->reason : "failed");
        printf(",\"exit_status\":%d}\n", exit);
        fflush(stdout);
}

void client_failure_done(struct client_failure *f) {
        free(f->error);
        free(f->reason);
        free(f->instance);
        *f = (struct client_failure){};
}

/* ---- private sockets ---- */

/* Where an instance's private socket can be: under $XDG_RUNTIME_DIR (user service or
 * standalone), then under /run (system service, or standalone without XDG_RUNTIME_DIR). */
static char *socket_path(const char *instance, bool system) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (!system && !(xdg && *xdg == '/'))
                return NULL;
        _cleanup_free_ char *dir = names_runtime_dir(NULL, system ? NULL : xdg, instance);
        char *path = NULL;
        if (dir && asprintf(&path, "%s/bus", dir) < 0)
                path = NULL;
        return path;
}

/* Connects to the private socket: the fd, or -ECONNREFUSED for a socket file left behind
 * by a supervisor that was killed (connecting is the only way to tell), -EACCES for one
 * that runs as another user. */
static int connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* One connection per use, handed to sd-bus: a probe that connected and closed before the
 * D-Bus handshake would show in the supervisor's log as a connection reset, once for
 * every `liveswapctl status`. sd_bus_flush_close_unref() completes the handshake before
 * closing, so even a connection opened only to look is a whole one. */
static int open_socket(const char *path, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_close_ int fd = connect_unix(path);
        if (fd < 0)
                return fd;
        int r = sd_bus_new(&bus);
        if (r >= 0 && (r = sd_bus_set_fd(bus, fd, fd)) >= 0)
                fd = -EBADF; /* the bus owns it now */
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int client_connect(const char *instance, bool quiet, sd_bus **ret) {
        int last = -ENOENT;
        for (int system = 0; system < 2; system++) {
                _cleanup_free_ char *path = socket_path(instance, system);
                if (!path || access(path, F_OK) < 0)
                        continue;
                int r = open_socket(path, ret);
                if (r >= 0)
                        return 0;
                last = r;
                if (!quiet)
                        fprintf(stderr, "Cannot connect to liveswap instance %s at %s: %s\n", instance, path,
                                strerror(-r));
        }
        if (last == -ENOENT && !quiet)
                fprintf(stderr, "liveswap instance %s is not running (no control socket found)\n", instance);
        return last;
}

/* ---- buses ---- */

/* "user bus", "system bus", "system bus of HOST": for messages. */
static const char *bus_label(enum client_transport t, const char *host, char *buf, size_t size) {
        switch (t) {
        case CLIENT_TRANSPORT_USER:
                return "user bus";
        case CLIENT_TRANSPORT_REMOTE:
                snprintf(buf, size, "system bus of %s", host);
                return buf;
        default:
                return "system bus";
        }
}
#define BUS_LABEL(t, host) bus_label((t), (host), (char[300]){}, 300)

static int open_bus(enum client_transport t, const char *host, sd_bus **ret) {
        switch (t) {
        case CLIENT_TRANSPORT_USER:
                return sd_bus_open_user(ret);
        case CLIENT_TRANSPORT_SYSTEM:
                return sd_bus_open_system(ret);
        case CLIENT_TRANSPORT_REMOTE:
                return sd_bus_open_system_remote(ret, host);
        default:
                return -EINVAL;
        }
}

static unsigned seen_flag(enum client_transport t) {
        return t == CLIENT_TRANSPORT_USER     ? CLIENT_SEEN_USER_BUS
               : t == CLIENT_TRANSPORT_SYSTEM ? CLIENT_SEEN_SYSTEM_BUS
                                              : CLIENT_SEEN_REMOTE;
}

/* 1 when NAME has an owner on the bus, 0 when not, or a negative errno. */
static int name_has_owner(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int owned;
        int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                   "NameHasOwner", &error, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "b", &owned);
        return r < 0 ? r : owned;
}

/* ---- the instance list ---- */

static struct client_instance *list_add(struct client_instance_list *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->items[i].name, name) == 0)
                        return &l->items[i];
        struct client_instance *p = reallocarray(l->items, l->n + 1, sizeof(*p));
        if (!p)
                return NULL;
        l->items = p;
        p = &l->items[l->n];
        *p = (struct client_instance){ .name = strdup(name) };
        if (!p->name)
                return NULL;
        l->n++;
        return p;
}

void client_instance_list_done(struct client_instance_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].name);
                free(l->items[i].socket);
                sd_bus_flush_close_unref(l->items[i].bus);
        }
        free(l->items);
        *l = (struct client_instance_list){};
}

static void scan_sockets(const char *base, struct client_instance_list *l) {
        DIR *d = opendir(base);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || names_validate_instance(de->d_name) < 0)
                        continue;
                _cleanup_free_ char *path = NULL;
                struct stat st;
                if (asprintf(&path, "%s/%s/bus", base, de->d_name) < 0) {
                        path = NULL; /* asprintf leaves it undefined */
                        break;
                }
                if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
                        continue;
                /* Refused: a stale socket. Permission denied: running, but not ours to
                 * talk to; still worth listing. Connected: kept, to be used. */
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                if (open_socket(path, &bus) == -ECONNREFUSED)
                        continue;
                struct client_instance *i = list_add(l, de->d_name);
                if (!i)
                        break;
                if (!(i->seen & CLIENT_SEEN_SOCKET)) {
                        i->seen |= CLIENT_SEEN_SOCKET;
                        i->socket = TAKE_PTR(path);
                        i->bus = TAKE_PTR(bus);
                }
        }
        closedir(d);
}

static int scan_bus(enum client_transport t, const char *host, struct client_instance_list *l) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **names = NULL;
        int r = open_bus(t, host, &bus);
        if (r >= 0)
                r = sd_bus_list_names(bus, &names, NULL);
        if (r < 0)
                return r;
        size_t prefix = strlen(LIVESWAP_BUS_PREFIX);
        for (char **n = names; n && *n; n++) {
                if (strncmp(*n, LIVESWAP_BUS_PREFIX, prefix) != 0)
                        continue;
                _cleanup_free_ char *name = names_unescape_instance(*n + prefix);
                struct client_instance *i = name ? list_add(l, name) : NULL;
                if (i)
                        i->seen |= seen_flag(t);
        }
        return 0;
}

static int compare_instances(const void *a, const void *b) {
        return strcmp(((const struct client_instance *) a)->name, ((const struct client_instance *) b)->name);
}

int client_find_instances(const struct client_options *o, struct client_instance_list *ret) {
        struct client_instance_list l = {};
        int r = 0;
        if (o->transport == CLIENT_TRANSPORT_AUTO) {
                const char *xdg = getenv("XDG_RUNTIME_DIR");
                char *base = NULL;
                if (xdg && *xdg == '/' && asprintf(&base, "%s/liveswap", xdg) >= 0) {
                        scan_sockets(base, &l);
                        free(base);
                }
                scan_sockets(SYSTEM_RUNTIME_DIR, &l);
                /* Either bus may not exist here: then nothing runs on it. */
                (void) scan_bus(CLIENT_TRANSPORT_USER, NULL, &l);
                (void) scan_bus(CLIENT_TRANSPORT_SYSTEM, NULL, &l);
        } else if ((r = scan_bus(o->transport, o->host, &l)) < 0)
                client_fail(o, NULL, client_exit_code_for_errno(r, NULL), "Unreachable", "cannot reach the %s: %s",
                            BUS_LABEL(o->transport, o->host), strerror(-r));
        if (l.n > 0)
                qsort(l.items, l.n, sizeof(*l.items), compare_instances);
        *ret = l;
        return r;
}

char *client_describe_seen(const struct client_instance *i) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        const char *sep = "";
        if (i->seen & CLIENT_SEEN_SOCKET) {
                fprintf(f, "private socket %s", i->socket);
                sep = ", ";
        }
        if (i->seen & CLIENT_SEEN_USER_BUS) {
                fprintf(f, "%suser bus", sep);
                sep = ", ";
        }
        if (i->seen & CLIENT_SEEN_SYSTEM_BUS) {
                fprintf(f, "%ssystem bus", sep);
                sep = ", ";
        }
        if (i->seen & CLIENT_SEEN_REMOTE)
                fprintf(f, "%sremote system bus", sep);
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

/* ---- connecting ---- */

/* The instance to talk to. When it was found by looking (no name given), it comes with
 * the connection that found it on its private socket, if any, to be used as it is. */
static int pick_instance(const struct client_options *o, struct client_instance *ret) {
        const char *name = o->instance;
        if (!name || !*name)
                name = getenv("LIVESWAP_INSTANCE");
        if (name && *name) {
                if (names_validate_instance(name) < 0) {
                        client_fail(o, NULL, CLIENT_EXIT_USAGE, "InvalidArgument", "invalid instance name '%s'", name);
                        return -EINVAL;
                }
                ret->name = strdup(name);
                return ret->name ? 0 : -ENOMEM;
        }

        struct client_instance_list l;
        int r = client_find_instances(o, &l);
        if (r < 0) {
                client_instance_list_done(&l);
                return r;
        }
        if (l.n == 0) {
                client_fail(o, NULL, CLIENT_EXIT_NOT_RUNNING, "NotRunning",
                            "no running liveswap instance found%s%s (start one with liveswap -s TARGET -p PORT)",
                            o->transport == CLIENT_TRANSPORT_AUTO ? "" : " on the ",
                            o->transport == CLIENT_TRANSPORT_AUTO ? "" : BUS_LABEL(o->transport, o->host));
                r = -ESRCH;
        } else if (l.n > 1) {
                _cleanup_free_ char *names = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&names, &size);
                for (size_t i = 0; f && i < l.n; i++)
                        fprintf(f, " %s", l.items[i].name);
                if (f)
                        fclose(f);
                client_fail(o, NULL, CLIENT_EXIT_USAGE, "Usage",
                            "several liveswap instances are running; pick one with -i:%s", names ?: "");
                r = -ENOTUNIQ;
        } else {
                *ret = l.items[0];
                l.items[0] = (struct client_instance){};
        }
        client_instance_list_done(&l);
        return r;
}

static int use_bus(struct client *c, enum client_transport t, const char *host, sd_bus *bus) {
        c->destination = names_bus_name(c->instance);
        if (asprintf(&c->where, "the %s", BUS_LABEL(t, host)) < 0)
                c->where = NULL;
        if (!c->destination || !c->where)
                return -ENOMEM;
        c->bus = bus;
        return 0;
}

/* Through a bus: the name must be there, or the instance does not run on it. */
static int connect_bus(struct client *c, enum client_transport t, const char *host, bool quiet) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *name = names_bus_name(c->instance);
        if (!name)
                return -ENOMEM;
        int r = open_bus(t, host, &bus);
        if (r >= 0)
                r = name_has_owner(bus, name);
        if (r < 0) {
                if (!quiet)
                        client_fail(c->options, c->instance, client_exit_code_for_errno(r, NULL), "Unreachable",
                                    "cannot reach the %s: %s", BUS_LABEL(t, host), strerror(-r));
                return r;
        }
        if (r == 0) {
                if (!quiet)
                        client_fail(c->options, c->instance, CLIENT_EXIT_NOT_RUNNING, "NotRunning",
                                    "liveswap instance %s is not running on the %s (no %s there)", c->instance,
                                    BUS_LABEL(t, host), name);
                return -ESRCH;
        }
        r = use_bus(c, t, host, bus);
        if (r >= 0)
                bus = NULL;
        return r;
}

/* Through the private socket at PATH, on BUS if it is connected already. */
static int connect_socket(struct client *c, const char *path, sd_bus *bus) {
        int r = bus ? 0 : open_socket(path, &bus);
        if (r < 0)
                return r;
        c->bus = bus;
        if (asprintf(&c->where, "the private socket %s", path) < 0) {
                c->where = NULL;
                c->bus = sd_bus_flush_close_unref(c->bus); /* the next attempt would overwrite it */
                return -ENOMEM;
        }
        return 0;
}

/* The private socket is mode 0600: only its owner and root may connect. Say so, and what
 * would let this caller in, instead of a bare "Permission denied". */
static void report_socket_denied(struct client *c, const char *path) {
        struct stat st;
        char owner[64] = "its owner";
        if (stat(path, &st) >= 0)
                snprintf(owner, sizeof(owner), "its owner (uid %u)", (unsigned) st.st_uid);
        client_fail(c->options, c->instance, CLIENT_EXIT_ACCESS, "AccessDenied",
                    "permission denied: the control socket %s is open only to %s and root; run this as that user, "
                    "or control the instance over the system bus, where allow_users= or allow_groups= in [control] "
                    "of its configuration and the D-Bus policy must allow you",
                    path, owner);
}

/* The private socket first (it needs no bus and works for a standalone supervisor),
 * then the instance's name on the user bus, then on the system bus. */
static int connect_auto(struct client *c) {
        int socket_error = 0;
        _cleanup_free_ char *failed_path = NULL;
        for (int system = 0; system < 2; system++) {
                _cleanup_free_ char *path = socket_path(c->instance, system);
                if (!path || access(path, F_OK) < 0)
                        continue;
                int r = connect_socket(c, path, NULL);
                if (r >= 0)
                        return 0;
                if (!socket_error) {
                        socket_error = r;
                        failed_path = TAKE_PTR(path);
                }
        }
        if (connect_bus(c, CLIENT_TRANSPORT_USER, NULL, true) >= 0 ||
            connect_bus(c, CLIENT_TRANSPORT_SYSTEM, NULL, true) >= 0)
                return 0;
        if (socket_error == -ECONNREFUSED)
                client_fail(c->options, c->instance, CLIENT_EXIT_NOT_RUNNING, "NotRunning",
                            "liveswap instance %s is not running (%s is left over from a supervisor that is gone)",
                            c->instance, failed_path);
        else if (socket_error == -EACCES || socket_error == -EPERM)
                report_socket_denied(c, failed_path);
        else if (socket_error)
                client_fail(c->options, c->instance, client_exit_code_for_errno(socket_error, NULL), "Unreachable",
                            "cannot connect to liveswap instance %s at %s: %s", c->instance, failed_path,
                            strerror(-socket_error));
        else {
                _cleanup_free_ char *user = socket_path(c->instance, false), *sys = socket_path(c->instance, true);
                _cleanup_free_ char *name = names_bus_name(c->instance);
                client_fail(c->options, c->instance, CLIENT_EXIT_NOT_RUNNING, "NotRunning",
                            "liveswap instance %s is not running (no control socket %s%s%s, no %s on the user or "
                            "system bus)",
                            c->instance, user ?: "", user ? " or " : "", sys ?: "", name ?: "name");
        }
        return socket_error ?: -ESRCH;
}

int client_open(struct client *c, const struct client_options *o) {
        *c = (struct client){ .options = o };
        struct client_instance picked = {};
        int r = pick_instance(o, &picked);
        c->instance = TAKE_PTR(picked.name);
        if (r >= 0 && picked.bus)
                r = connect_socket(c, picked.socket, TAKE_PTR(picked.bus));
        else if (r >= 0 && o->transport == CLIENT_TRANSPORT_AUTO)
                r = connect_auto(c);
        else if (r >= 0)
                r = connect_bus(c, o->transport, o->transport == CLIENT_TRANSPORT_REMOTE ? o->host : NULL, false);
        free(picked.socket);
        sd_bus_flush_close_unref(picked.bus);
        if (r < 0) {
                if (r == -ENOMEM)
                        client_fail(o, c->instance, CLIENT_EXIT_FAILED, "Failed", "out of memory");
                client_close(c);
        }
        return r;
}

int client_open_instance(struct client *c, const struct client_options *o, struct client_instance *i) {
        *c = (struct client){ .options = o, .instance = strdup(i->name) };
        int r = -ENOMEM;
        if (!c->instance)
                return r;
        if (i->seen & CLIENT_SEEN_SOCKET)
                r = connect_socket(c, i->socket, TAKE_PTR(i->bus));
        if (r < 0 && (i->seen & CLIENT_SEEN_USER_BUS))
                r = connect_bus(c, CLIENT_TRANSPORT_USER, NULL, true);
        if (r < 0 && (i->seen & CLIENT_SEEN_SYSTEM_BUS))
                r = connect_bus(c, CLIENT_TRANSPORT_SYSTEM, NULL, true);
        if (r < 0 && (i->seen & CLIENT_SEEN_REMOTE))
                r = connect_bus(c, CLIENT_TRANSPORT_REMOTE, o->host, true);
        if (r < 0)
                client_close(c);
        return r;
}

void client_close(struct client *c) {
        c->bus = sd_bus_flush_close_unref(c->bus);
        free(c->instance);
        free(c->destination);
        free(c->where);
        c->instance = c->destination = c->where = NULL;
}

int client_supervisor_pid(const struct client *c, pid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        /* Peer-to-peer the kernel told us at connect time (SO_PEERCRED); on a bus the
         * bus knows its peers. */
        int r = c->destination ? sd_bus_get_name_creds(c->bus, c->destination, SD_BUS_CREDS_PID, &creds)
                               : sd_bus_get_owner_creds(c->bus, SD_BUS_CREDS_PID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_pid(creds, ret);
}

/* ---- calls ---- */

static const struct {
        const char *dbus;
        int exit;
        const char *name;
} known_errors[] = {
        { ERROR_UPGRADE_FAILED, CLIENT_EXIT_FAILED, "UpgradeFailed" },
        { ERROR_HOOK_FAILED, CLIENT_EXIT_FAILED, "HookFailed" },
        { ERROR_BUSY, CLIENT_EXIT_FAILED, "Busy" },
        { ERROR_NO_PREVIOUS, CLIENT_EXIT_FAILED, "NoPrevious" },
        { ERROR_REEXEC_FAILED, CLIENT_EXIT_FAILED, "ReexecFailed" },
        { ERROR_INVALID_TARGET, CLIENT_EXIT_USAGE, "InvalidTarget" },
        { ERROR_INVALID_ARGUMENT, CLIENT_EXIT_USAGE, "InvalidArgument" },
        { SD_BUS_ERROR_INVALID_ARGS, CLIENT_EXIT_USAGE, "InvalidArgument" },
        { ERROR_ACCESS_DENIED, CLIENT_EXIT_ACCESS, "AccessDenied" },
        { SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED, CLIENT_EXIT_ACCESS, "AccessDenied" },
        { SD_BUS_ERROR_SERVICE_UNKNOWN, CLIENT_EXIT_NOT_RUNNING, "NotRunning" },
        { SD_BUS_ERROR_NAME_HAS_NO_OWNER, CLIENT_EXIT_NOT_RUNNING, "NotRunning" },
        { SD_BUS_ERROR_DISCONNECTED, CLIENT_EXIT_NOT_RUNNING, "NotRunning" },
        { SD_BUS_ERROR_NO_REPLY, CLIENT_EXIT_NOT_RUNNING, "Unreachable" },
        { SD_BUS_ERROR_TIMEOUT, CLIENT_EXIT_NOT_RUNNING, "Unreachable" },
};

int client_exit_code_for(const sd_bus_error *error, const char **ret_name) {
        for (size_t i = 0; i < ELEMENTSOF(known_errors); i++)
                if (sd_bus_error_has_name(error, known_errors[i].dbus)) {
                        if (ret_name)
                                *ret_name = known_errors[i].name;
                        return known_errors[i].exit;
                }
        /* Another error of the supervisor's (one a newer supervisor added): it failed, and
         * its last element names it. */
        if (ret_name) {
                const char *dot = error && error->name ? strrchr(error->name, '.') : NULL;
                *ret_name = dot && dot[1] ? dot + 1 : "Failed";
        }
        return CLIENT_EXIT_FAILED;
}

int client_exit_code_for_errno(int r, const char **ret_name) {
        const char *name;
        int exit;
        switch (-r) {
        case ENOMEM:
                exit = CLIENT_EXIT_FAILED, name = "Failed";
                break;
        case EINVAL:
        case ENOTUNIQ:
        case ENAMETOOLONG:
                exit = CLIENT_EXIT_USAGE, name = "InvalidArgument";
                break;
        case EACCES:
        case EPERM:
                exit = CLIENT_EXIT_ACCESS, name = "AccessDenied";
                break;
        case ENOENT:
        case ESRCH:
        case ECONNREFUSED:
                exit = CLIENT_EXIT_NOT_RUNNING, name = "NotRunning";
                break;
        default: /* reset, timed out, no route, a bus that is not there: cannot be reached */
                exit = CLIENT_EXIT_NOT_RUNNING, name = "Unreachable";
                break;
        }
        if (ret_name)
                *ret_name = name;
        return exit;
}

/* The bus's own errors, in words that say what to do. */
static const char *explain(const sd_bus_error *e) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return "the supervisor is not running any more";
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT))
                return "the supervisor did not answer in time";
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_DISCONNECTED))
                return "the supervisor closed the connection (it may have exited)";
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_OBJECT,
                                   SD_BUS_ERROR_UNKNOWN_INTERFACE))
                return "this is not a liveswap supervisor of a compatible version";
        return NULL;
}

/* AccessDenied comes from the supervisor (its own check names the setting that would
 * allow the caller) or from the bus's policy, whose text is dbus-daemon's rule dump of
 * some 400 characters: that one is replaced by what to change. */
static int report_access_denied(const struct client *c, const char *text) {
        const char *error = "AccessDenied";
        if (strstr(text, "may not control liveswap instance"))
                return client_fail(c->options, c->instance, CLIENT_EXIT_ACCESS, error, "permission denied: %s", text);
        return client_fail(c->options, c->instance, CLIENT_EXIT_ACCESS, error,
                           "permission denied by the D-Bus policy of %s: it lets root and members of the liveswap "
                           "group call liveswap (dbus-1/system.d/org.liveswap1.conf); a member also needs "
                           "allow_users= or allow_groups= in [control] of the instance's configuration",
                           c->where ?: "the bus");
}

int client_report_error(const struct client *c, const sd_bus_error *error, int r) {
        const char *name;
        int exit =
                sd_bus_error_is_set(error) ? client_exit_code_for(error, &name) : client_exit_code_for_errno(r, &name);
        const char *text = sd_bus_error_is_set(error) ? explain(error) ?: error->message : NULL;
        if (!text || !*text)
                text = strerror(-r);
        if (exit == CLIENT_EXIT_ACCESS)
                return report_access_denied(c, text);
        size_t n = strlen(c->instance);
        /* Most of the supervisor's messages name the instance already. */
        if (strncmp(text, c->instance, n) == 0 && text[n] == ':') {
                record_failure(c->options, c->instance, exit, name, text + n + 1 + strspn(text + n + 1, " "));
                fprintf(stderr, "%s%s: %s\n", client_line_prefix(STDERR_FILENO, LOG_ERR), program(c->options), text);
                return exit;
        }
        return client_fail(c->options, c->instance, exit, name, "%s", text);
}

int client_call(struct client *c, const char *method, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        va_start(ap, types);
        int r = sd_bus_call_methodv(c->bus, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, method, &error,
                                    ret_reply, types, ap);
        va_end(ap);
        if (r < 0)
                return client_report_error(c, &error, r);
        return CLIENT_EXIT_OK;
}
