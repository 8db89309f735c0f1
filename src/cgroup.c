/* cgroup.c: a cgroup per worker under a delegated systemd unit: detection, the
 * supervisor's own child cgroup, worker cgroups, signals to a whole cgroup, and the
 * removal of a worker's cgroup once what it left behind is gone. It never touches a
 * cgroup its unit was not delegated, and nothing here decides when a worker starts or
 * stops (engine.c does). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "cgroup-path.h"
#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "macro.h"

#define CGROUP_MOUNT "/sys/fs/cgroup"
/* How long the last worker cgroups may take to empty at stop, and how many rounds a kill
 * without cgroup.kill makes against a cgroup that keeps forking. */
#define STOP_WAIT_USEC (2 * USEC_PER_SEC)
#define KILL_ROUNDS 16
#define BUS_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* A worker's cgroup whose processes were killed but have not all exited yet. */
struct dying {
        struct dying *next;
        struct cgroup_tree *tree;
        char *path, *v1_path;
        sd_event_source *watch; /* inotify on PATH/cgroup.events */
};

struct cgroup_tree {
        sd_event *event;
        char *unit; /* the unit's cgroup v2 directory, or NULL */
        char *v1_unit; /* its name=systemd v1 directory (hybrid, legacy), or NULL */
        char subtree[64]; /* what each generation's cgroup hands its workers: "+memory ..." */
        bool has_kill; /* cgroup.kill (Linux 5.14) */
        struct dying *dying;
};

static bool is_fs(const char *path, long magic) {
        struct statfs st;
        return statfs(path, &st) == 0 && (long) st.f_type == magic;
}

/* Reads a small file whole (cgroup files, /proc/self/cgroup). malloc'd or NULL, errno set. */
static char *read_text(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        size_t size = 4096, used = 0;
        _cleanup_free_ char *buf = malloc(size);
        for (;;) {
                if (!buf) {
                        errno = ENOMEM;
                        return NULL;
                }
                ssize_t n = read(fd, buf + used, size - used - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return NULL;
                if (n == 0)
                        break;
                used += (size_t) n;
                if (used + 1 == size) {
                        char *bigger = size < (1U << 24) ? realloc(buf, size * 2) : NULL;
                        if (!bigger)
                                free(buf);
                        buf = bigger;
                        size *= 2;
                }
        }
        buf[used] = 0;
        return TAKE_PTR(buf);
}

static int write_text(const char *dir, const char *file, const char *text) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(text);
        ssize_t n = write(fd, text, len);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

static bool marked_delegated(const char *dir) {
        static const char *const names[] = { "trusted.delegate", "user.delegate" };
        for (size_t i = 0; dir && i < ELEMENTSOF(names); i++) {
                char value[8];
                ssize_t n = getxattr(dir, names[i], value, sizeof(value));
                if (n == 1 && value[0] == '1')
                        return true;
        }
        return false;
}

/* The unit's Delegate= property, from its service manager over the manager's private
 * socket (no bus daemon needed): for managers that mark nothing (systemd < 251, and the
 * user manager of 252, which sets no xattr). 1, 0, or a negative errno. */
static int manager_says_delegated(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *address = NULL;
        const char *runtime = getenv("XDG_RUNTIME_DIR"), *unit;
        int delegate = 0;

        /* $MANAGERPID is set by user managers only. */
        if (getenv("MANAGERPID") && runtime && *runtime)
                address = asprintf(&address, "unix:path=%s/systemd/private", runtime) < 0 ? NULL : address;
        else
                address = strdup("unix:path=/run/systemd/private");
        if (!address)
                return -ENOMEM;
        int r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_method_call_timeout(bus, BUS_TIMEOUT_USEC);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "GetUnitByPID", &error, &reply, "u",
                               (uint32_t) getpid());
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &unit);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", unit,
                                                "org.freedesktop.systemd1.Service", "Delegate", &error, 'b', &delegate);
        if (r < 0)
                log_debug("Cannot ask the service manager about Delegate=: %s", error.message ?: strerror(-r));
        return r < 0 ? r : !!delegate;
}

/* Moves this process into DIR/supervisor. */
static int move_self(const char *dir) {
        _cleanup_free_ char *child = NULL;
        char pid[32];
        if (asprintf(&child, "%s/" CGROUP_SUPERVISOR, dir) < 0)
                return -ENOMEM;
        if (mkdir(child, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(pid, sizeof(pid), "%d", (int) getpid());
        return write_text(child, "cgroup.procs", pid);
}

static int tree_setup(struct cgroup_tree *t) {
        int r;
        /* A cgroup.procs of a read-only cgroupfs (ProtectControlGroups=yes) fails with EROFS. */
        const char *dirs[] = { t->v1_unit, t->unit };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *procs = NULL;
                if (!dirs[i])
                        continue;
                if (asprintf(&procs, "%s/cgroup.procs", dirs[i]) < 0)
                        return -ENOMEM;
                if (access(procs, W_OK) < 0) {
                        log_warning_errno(errno,
                                          "Delegate=yes, but %s cannot be written (%m; ProtectControlGroups=yes?): "
                                          "workers get process groups, no cgroups",
                                          procs);
                        return 0;
                }
        }
        /* No process may live in a cgroup whose children get controllers: the supervisor
         * leaves the unit's cgroup first. The v1 tree first, so that a failure there
         * leaves the v2 one, the one systemd tracks the unit in, untouched. */
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                if (!dirs[i])
                        continue;
                r = move_self(dirs[i]);
                if (r < 0) {
                        log_warning_errno(r,
                                          "Cannot move the supervisor into %s/" CGROUP_SUPERVISOR
                                          ": %m; workers get process groups, no cgroups",
                                          dirs[i]);
                        return 0;
                }
        }
        if (t->unit) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/cgroup.controllers", t->unit) < 0)
                        return -ENOMEM;
                _cleanup_free_ char *offered = read_text(path);
                if (offered && cgroup_subtree_request(offered, t->subtree, sizeof(t->subtree)) >= 0 && t->subtree[0]) {
                        r = write_text(t->unit, "cgroup.subtree_control", t->subtree);
                        if (r < 0) {
                                log_warning_errno(r, "Cannot enable %s for the workers' cgroups in %s: %m", t->subtree,
                                                  t->unit);
                                t->subtree[0] = 0;
                        }
                } else
                        t->subtree[0] = 0;
                _cleanup_free_ char *kill_path = NULL;
                if (asprintf(&kill_path, "%s/" CGROUP_SUPERVISOR "/cgroup.kill", t->unit) < 0)
                        return -ENOMEM;
                t->has_kill = access(kill_path, F_OK) == 0;
        }
        log_info("Delegated cgroup %s%s%s: the supervisor moved to its " CGROUP_SUPERVISOR
                 " cgroup, workers run in generation-G/worker-ID%s%s",
                 t->unit ?: t->v1_unit, t->unit && t->v1_unit ? " and " : "", t->unit && t->v1_unit ? t->v1_unit : "",
                 t->subtree[0] ? " with " : "", t->subtree);
        return 1;
}

int cgroup_tree_open(sd_event *event, struct cgroup_tree **ret) {
        *ret = NULL;
        /* Only a service of a systemd manager can have been delegated a cgroup. */
        if (!getenv("INVOCATION_ID"))
                return 0;
        _cleanup_free_ char *self = read_text("/proc/self/cgroup");
        _cleanup_free_ char *unified = NULL, *named = NULL;
        if (!self || cgroup_parse_self(self, &unified, &named) < 0) {
                log_warning("Cannot read /proc/self/cgroup: workers get process groups, no cgroups");
                return 0;
        }
        const char *v2_mount = is_fs(CGROUP_MOUNT, CGROUP2_SUPER_MAGIC)              ? CGROUP_MOUNT
                               : is_fs(CGROUP_MOUNT "/unified", CGROUP2_SUPER_MAGIC) ? CGROUP_MOUNT "/unified"
                                                                                     : NULL;
        const char *v1_mount = is_fs(CGROUP_MOUNT "/systemd", CGROUP_SUPER_MAGIC) ? CGROUP_MOUNT "/systemd" : NULL;

        struct cgroup_tree *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->event = sd_event_ref(event);
        int r = 0;
        _cleanup_free_ char *unit_v2 = unified && v2_mount ? cgroup_unit_path(unified) : NULL;
        _cleanup_free_ char *unit_v1 = named && v1_mount ? cgroup_unit_path(named) : NULL;
        /* The root cgroup is nobody's to delegate. */
        if (unit_v2 && strcmp(unit_v2, "/") != 0)
                t->unit = cgroup_join(v2_mount, unit_v2);
        if (unit_v1 && strcmp(unit_v1, "/") != 0)
                t->v1_unit = cgroup_join(v1_mount, unit_v1);
        if (!t->unit && !t->v1_unit)
                log_debug("No cgroup of our own: workers get process groups");
        else if (!marked_delegated(t->unit) && !marked_delegated(t->v1_unit) && manager_says_delegated() <= 0)
                log_debug("The unit has no Delegate=yes: workers get process groups");
        else
                r = tree_setup(t);
        if (r <= 0) {
                cgroup_tree_free(t);
                return r;
        }
        *ret = t;
        return 1;
}

/* ---- workers ---- */

static char *join(const char *dir, const char *name) {
        char *path;
        return asprintf(&path, "%s/%s", dir, name) < 0 ? NULL : path;
}

/* Makes DIR/GENERATION and DIR/GENERATION/worker-ID; SUBTREE goes to the generation's
 * cgroup.subtree_control, so that its workers have memory.current and cpu.stat. */
static int make_worker_dir(const char *unit, const char *generation, const char *worker, const char *subtree,
                           char **ret) {
        _cleanup_free_ char *gdir = join(unit, generation), *wdir = join(unit, worker);
        if (!gdir || !wdir)
                return -ENOMEM;
        if (mkdir(gdir, 0755) < 0) {
                if (errno != EEXIST)
                        return -errno;
        } else if (subtree && subtree[0]) {
                int r = write_text(gdir, "cgroup.subtree_control", subtree);
                if (r < 0)
                        log_warning_errno(r, "Cannot enable %s in %s: %m", subtree, gdir);
        }
        if (mkdir(wdir, 0755) < 0 && errno != EEXIST) {
                int r = -errno;
                (void) rmdir(gdir); /* fails harmlessly while siblings live in it */
                return r;
        }
        *ret = TAKE_PTR(wdir);
        return 0;
}

/* Removes the generation's cgroup around the worker's PATH once its last worker's is gone. */
static void remove_generation_of(const char *path) {
        _cleanup_free_ char *generation = strdup(path);
        char *slash = generation ? strrchr(generation, '/') : NULL;
        if (slash) {
                *slash = 0;
                (void) rmdir(generation); /* ENOTEMPTY/EBUSY while other workers of it run */
        }
}

static void remove_worker_dir(const char *path) {
        if (path && rmdir(path) >= 0)
                remove_generation_of(path);
}

int cgroup_worker_create(struct cgroup_tree *t, uint64_t generation, uint64_t worker_id, struct cgroup_worker *ret) {
        _cleanup_free_ char *gname = cgroup_generation_name(generation);
        _cleanup_free_ char *wname = cgroup_worker_name(generation, worker_id);
        struct cgroup_worker w = {};
        int r = 0;
        if (!gname || !wname)
                return -ENOMEM;
        if (t->unit)
                r = make_worker_dir(t->unit, gname, wname, t->subtree, &w.path);
        if (r >= 0 && t->v1_unit)
                r = make_worker_dir(t->v1_unit, gname, wname, NULL, &w.v1_path);
        if (r < 0) {
                remove_worker_dir(w.path);
                remove_worker_dir(w.v1_path);
                cgroup_worker_done(&w);
                return r;
        }
        *ret = w;
        return 0;
}

void cgroup_worker_done(struct cgroup_worker *w) {
        free(w->path);
        free(w->v1_path);
        *w = (struct cgroup_worker){};
}

/* Sends SIG to each process in DIR/cgroup.procs. With REPEAT (SIGKILL without
 * cgroup.kill), again while a round finds pids the last one did not: what forked in the
 * meantime. Bounded by KILL_ROUNDS. */
static int signal_procs(const char *dir, int sig, bool repeat) {
        _cleanup_free_ char *path = join(dir, "cgroup.procs");
        _cleanup_free_ pid_t *seen = NULL;
        size_t n_seen = 0;
        if (!path)
                return -ENOMEM;
        for (int round = 0; round < (repeat ? KILL_ROUNDS : 1); round++) {
                _cleanup_free_ char *text = read_text(path);
                if (!text)
                        return errno == ENOENT ? 0 : -errno;
                size_t fresh = 0, n = 0;
                for (const char *p = text; *p; p++)
                        n += *p == '\n';
                pid_t *now = calloc(n + 1, sizeof(pid_t));
                if (!now)
                        return -ENOMEM;
                n = 0;
                for (char *p = text, *end; *p; p = end) {
                        long v = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        if (v <= 0)
                                continue;
                        now[n++] = (pid_t) v;
                        bool known = false;
                        for (size_t i = 0; i < n_seen && !known; i++)
                                known = seen[i] == (pid_t) v;
                        fresh += !known;
                        (void) kill((pid_t) v, sig);
                }
                free(seen);
                seen = now;
                n_seen = n;
                if (fresh == 0)
                        break;
        }
        return 0;
}

int cgroup_worker_signal(struct cgroup_tree *t, const char *path, const char *v1_path, int sig) {
        if (sig == SIGKILL && path && t->has_kill) {
                int r = write_text(path, "cgroup.kill", "1");
                if (r != -ENOENT)
                        return r;
                return 0;
        }
        /* Both hierarchies hold the same processes; the v2 one is the unit's own. */
        const char *dir = path ?: v1_path;
        return dir ? signal_procs(dir, sig, sig == SIGKILL) : 0;
}

static void dying_free(struct dying *d) {
        sd_event_source_disable_unref(d->watch);
        free(d->path);
        free(d->v1_path);
        free(d);
}

/* Removes what is left of D's directories: 0 when both are gone, -EBUSY while processes
 * are still exiting. Another error is logged and gives that directory up. */
static int dying_try_remove(struct dying *d) {
        char **paths[] = { &d->path, &d->v1_path };
        int result = 0;
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                if (!*paths[i])
                        continue;
                if (rmdir(*paths[i]) < 0 && errno != ENOENT) {
                        if (errno == EBUSY) {
                                result = -EBUSY;
                                continue;
                        }
                        log_warning_errno(errno, "Cannot remove the cgroup %s: %m", *paths[i]);
                }
                remove_generation_of(*paths[i]);
                free(*paths[i]);
                *paths[i] = NULL;
        }
        return result;
}

static void sweep(struct cgroup_tree *t) {
        for (struct dying **p = &t->dying; *p;) {
                struct dying *d = *p;
                if (dying_try_remove(d) < 0) {
                        p = &d->next;
                        continue;
                }
                *p = d->next;
                dying_free(d);
        }
}

static int on_events(sd_event_source *source, const struct inotify_event *event, void *userdata) {
        struct dying *d = userdata;
        sweep(d->tree); /* may free d */
        return 0;
}

void cgroup_worker_release(struct cgroup_tree *t, char *path, char *v1_path) {
        struct dying *d = calloc(1, sizeof(*d));
        if (!d) {
                free(path);
                free(v1_path);
                log_oom();
                return;
        }
        *d = (struct dying){ .tree = t, .path = path, .v1_path = v1_path };
        int r = cgroup_worker_signal(t, path, v1_path, SIGKILL);
        if (r < 0)
                log_warning_errno(r, "Cannot kill what is left in the cgroup %s: %m", path ?: v1_path);
        d->next = t->dying;
        t->dying = d;
        if (path) {
                /* The kernel reports "populated 0" in cgroup.events as a modification. */
                _cleanup_free_ char *events = join(path, "cgroup.events");
                r = events ? sd_event_add_inotify(t->event, &d->watch, events, IN_MODIFY, on_events, d) : -ENOMEM;
                if (r < 0)
                        log_debug("Cannot watch %s (%s): removed at a later exit", events ?: path, strerror(-r));
        }
        /* After the watch exists, so that an exit in between is not missed. The others
         * get another chance too (a v1-only host has no events to wait for). */
        sweep(t);
}

/* At stop: the last killed processes exit within moments; waits on cgroup.events for
 * each (poll() wakes on its change), at most STOP_WAIT_USEC in all. */
static void wait_empty(const char *path, uint64_t deadline) {
        _cleanup_free_ char *events = join(path, "cgroup.events");
        _cleanup_close_ int fd = events ? open(events, O_RDONLY | O_CLOEXEC) : -1;
        while (fd >= 0) {
                char buf[256];
                ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0)
                        return;
                buf[n] = 0;
                uint64_t now = now_usec();
                if (cgroup_events_populated(buf) != 1 || now >= deadline)
                        return;
                struct pollfd p = { .fd = fd, .events = POLLPRI };
                if (poll(&p, 1, (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC)) <= 0)
                        return;
        }
}

struct cgroup_tree *cgroup_tree_free(struct cgroup_tree *t) {
        if (!t)
                return NULL;
        uint64_t deadline = now_usec() + STOP_WAIT_USEC;
        for (struct dying *d = t->dying; d; d = d->next)
                if (d->path)
                        wait_empty(d->path, deadline);
        sweep(t);
        while (t->dying) {
                struct dying *d = t->dying;
                t->dying = d->next;
                log_warning("Cannot remove the cgroup %s: processes in it did not exit", d->path ?: d->v1_path);
                dying_free(d);
        }
        sd_event_unref(t->event);
        free(t->unit);
        free(t->v1_unit);
        free(t);
        return NULL;
}
