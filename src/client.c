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

void client_error(const struct client *c, const char *format, ...) {
        va_list ap;
        fprintf(stderr, "%s%s: %s: ", client_line_prefix(STDERR_FILENO, LOG_ERR), program(c->options),
                c->instance ?: "liveswap");
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
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

/* Whether something listens on the socket: a supervisor that was killed leaves its
 * socket file behind, and connecting is the only way to tell. */
static int socket_alive(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return 0;
}

/* A D-Bus address escapes every byte outside a small safe set as %xx. */
static char *socket_address(const char *path) {
        static const char hex[] = "0123456789abcdef";
        const char *prefix = "unix:path=";
        char *out = malloc(strlen(prefix) + strlen(path) * 3 + 1);
        if (!out)
                return NULL;
        char *p = stpcpy(out, prefix);
        for (const unsigned char *s = (const unsigned char *) path; *s; s++) {
                if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                    strchr("-_/.\\", *s))
                        *p++ = (char) *s;
                else {
                        *p++ = '%';
                        *p++ = hex[*s >> 4];
                        *p++ = hex[*s & 15];
                }
        }
        *p = 0;
        return out;
}

static int open_socket(const char *path, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = socket_address(path);
        if (!address)
                return -ENOMEM;
        int r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
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
                 * talk to; still worth listing. */
                if (socket_alive(path) == -ECONNREFUSED)
                        continue;
                struct client_instance *i = list_add(l, de->d_name);
                if (!i)
                        break;
                if (!(i->seen & CLIENT_SEEN_SOCKET)) {
                        i->seen |= CLIENT_SEEN_SOCKET;
                        i->socket = TAKE_PTR(path);
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
                fprintf(stderr, "%s: cannot reach the %s: %s\n", program(o), BUS_LABEL(o->transport, o->host),
                        strerror(-r));
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

static int pick_instance(const struct client_options *o, char **ret) {
        const char *name = o->instance;
        if (!name || !*name)
                name = getenv("LIVESWAP_INSTANCE");
        if (name && *name) {
                if (names_validate_instance(name) < 0) {
                        fprintf(stderr, "%s: invalid instance name '%s'\n", program(o), name);
                        return -EINVAL;
                }
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }

        struct client_instance_list l;
        int r = client_find_instances(o, &l);
        if (r < 0) {
                client_instance_list_done(&l);
                return r;
        }
        if (l.n == 0) {
                fprintf(stderr,
                        "%s: no running liveswap instance found%s%s (start one with liveswap -s TARGET -p PORT)\n",
                        program(o), o->transport == CLIENT_TRANSPORT_AUTO ? "" : " on the ",
                        o->transport == CLIENT_TRANSPORT_AUTO ? "" : BUS_LABEL(o->transport, o->host));
                r = -ESRCH;
        } else if (l.n > 1) {
                fprintf(stderr, "%s: several liveswap instances are running; pick one with -i:", program(o));
                for (size_t i = 0; i < l.n; i++)
                        fprintf(stderr, " %s", l.items[i].name);
                fputc('\n', stderr);
                r = -ENOTUNIQ;
        } else
                *ret = TAKE_PTR(l.items[0].name);
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
                        client_error(c, "cannot reach the %s: %s", BUS_LABEL(t, host), strerror(-r));
                return r;
        }
        if (r == 0) {
                if (!quiet)
                        client_error(c, "liveswap instance %s is not running on the %s (no %s there)", c->instance,
                                     BUS_LABEL(t, host), name);
                return -ESRCH;
        }
        r = use_bus(c, t, host, bus);
        if (r >= 0)
                bus = NULL;
        return r;
}

static int connect_socket(struct client *c, const char *path) {
        int r = open_socket(path, &c->bus);
        if (r < 0)
                return r;
        if (asprintf(&c->where, "the private socket %s", path) < 0) {
                c->where = NULL;
                c->bus = sd_bus_flush_close_unref(c->bus); /* the next attempt would overwrite it */
                return -ENOMEM;
        }
        return 0;
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
                int r = connect_socket(c, path);
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
                client_error(c, "liveswap instance %s is not running (%s is left over from a supervisor that is gone)",
                             c->instance, failed_path);
        else if (socket_error)
                client_error(c, "cannot connect to liveswap instance %s at %s: %s", c->instance, failed_path,
                             strerror(-socket_error));
        else {
                _cleanup_free_ char *user = socket_path(c->instance, false), *sys = socket_path(c->instance, true);
                _cleanup_free_ char *name = names_bus_name(c->instance);
                client_error(
                        c,
                        "liveswap instance %s is not running (no control socket %s%s%s, no %s on the user or system bus)",
                        c->instance, user ?: "", user ? " or " : "", sys ?: "", name ?: "name");
        }
        return socket_error ?: -ESRCH;
}

int client_open(struct client *c, const struct client_options *o) {
        *c = (struct client){ .options = o };
        int r = pick_instance(o, &c->instance);
        if (r < 0)
                return r;
        if (o->transport == CLIENT_TRANSPORT_AUTO)
                r = connect_auto(c);
        else
                r = connect_bus(c, o->transport, o->transport == CLIENT_TRANSPORT_REMOTE ? o->host : NULL, false);
        if (r < 0) {
                if (r == -ENOMEM)
                        client_error(c, "out of memory");
                client_close(c);
        }
        return r;
}

int client_open_instance(struct client *c, const struct client_options *o, const struct client_instance *i) {
        *c = (struct client){ .options = o, .instance = strdup(i->name) };
        int r = -ENOMEM;
        if (!c->instance)
                return r;
        if (i->seen & CLIENT_SEEN_SOCKET)
                r = connect_socket(c, i->socket);
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

int client_exit_code_for(const sd_bus_error *error) {
        if (sd_bus_error_has_name(error, ERROR_UPGRADE_FAILED) || sd_bus_error_has_name(error, ERROR_HOOK_FAILED) ||
            sd_bus_error_has_name(error, ERROR_BUSY) || sd_bus_error_has_name(error, ERROR_NO_PREVIOUS) ||
            sd_bus_error_has_name(error, ERROR_REEXEC_FAILED))
                return CLIENT_EXIT_FAILED;
        return CLIENT_EXIT_USAGE;
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

int client_report_error(const struct client *c, const sd_bus_error *error, int r) {
        const char *text = sd_bus_error_is_set(error) ? explain(error) ?: error->message : NULL;
        if (!text || !*text)
                text = strerror(-r);
        size_t n = strlen(c->instance);
        /* Most of the supervisor's messages name the instance already. */
        if (strncmp(text, c->instance, n) == 0 && text[n] == ':')
                fprintf(stderr, "%s: %s\n", program(c->options), text);
        else if (sd_bus_error_has_name(error, ERROR_ACCESS_DENIED))
                client_error(c, "permission denied: %s", text);
        else
                client_error(c, "%s", text);
        return sd_bus_error_is_set(error) ? client_exit_code_for(error) : CLIENT_EXIT_USAGE;
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
