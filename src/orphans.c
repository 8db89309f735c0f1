/* orphans.c: the previous image's workers after an unreadable hand-over (orphans.h):
 * finding them, watching their exits, draining them once, and the fds they may depend
 * on. This is the one place the shell signals workers the engine does not know: they
 * are not the engine's, and the drain follows the configuration as an upgrade's would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child-watch.h"
#include "clock.h"
#include "leftovers.h"
#include "log.h"
#include "macro.h"
#include "orphans.h"
#include "reap.h"

#define CHILDREN_MAX 65536

struct orphan {
        pid_t pid;
        struct child_watch *child;
};

struct orphans {
        sd_event *event; /* set by orphans_watch() */
        struct leftovers *leftovers;
        struct orphan *items;
        size_t n;
        pid_t *pids; /* of every orphan found, for leftovers */
        size_t n_pids;
        int *fds;
        size_t n_fds;
        sd_event_source *kill_timer;
        bool draining;
};

int orphans_inherited_fds(struct inherited_fd **ret, size_t *ret_n) {
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -errno;
        int self = dirfd(d);
        struct inherited_fd *fds = NULL;
        size_t n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);
                if (*end || end == de->d_name || fd < 3 || fd == self)
                        continue;
                struct stat st;
                if (fstat((int) fd, &st) < 0)
                        continue;
                struct inherited_fd *p = reallocarray(fds, n + 1, sizeof(*p));
                if (!p) {
                        free(fds);
                        closedir(d);
                        return -ENOMEM;
                }
                fds = p;
                fds[n++] = (struct inherited_fd){ .fd = (int) fd, .dev = st.st_dev, .ino = st.st_ino };
        }
        closedir(d);
        *ret = fds;
        *ret_n = n;
        return 0;
}

/* Children of every thread, from /proc/self/task/TID/children. */
static int read_children(pid_t **ret, size_t *ret_n) {
        DIR *d = opendir("/proc/self/task");
        pid_t *pids = NULL;
        size_t n = 0;
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                char path[64], buf[65536];
                snprintf(path, sizeof(path), "/proc/self/task/%.20s/children", de->d_name);
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
                if (len <= 0)
                        continue;
                buf[len] = 0;
                for (char *p = buf, *end; *p && n < CHILDREN_MAX; p = end) {
                        long pid = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        pid_t *q = pid > 0 ? reallocarray(pids, n + 1, sizeof(pid_t)) : pids;
                        if (!q) {
                                free(pids);
                                closedir(d);
                                return -ENOMEM;
                        }
                        pids = q;
                        if (pid > 0)
                                pids[n++] = (pid_t) pid;
                }
        }
        closedir(d);
        *ret = pids;
        *ret_n = n;
        return 0;
}

struct orphans *orphans_collect(const struct inherited_fd *fds, size_t n_fds, int first_fd, const char *records_dir) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        int r = read_children(&pids, &n);
        if (r < 0) {
                log_error_errno(r, "Cannot list the previous image's workers: %m");
                return NULL;
        }
        struct orphans *o = calloc(1, sizeof(*o));
        if (o) {
                o->items = calloc(n ?: 1, sizeof(*o->items));
                o->fds = calloc(n_fds ?: 1, sizeof(int));
        }
        if (!o || !o->items || !o->fds) {
                log_oom();
                return orphans_free(o);
        }
        for (size_t i = 0; i < n; i++)
                o->items[o->n++] = (struct orphan){ .pid = pids[i] };
        o->pids = TAKE_PTR(pids);
        o->n_pids = n;
        for (size_t i = 0; i < n_fds; i++) {
                char link[32], target[4096];
                int fd = fds[i].fd;
                struct stat st;
                if (fd < first_fd || fstat(fd, &st) < 0 || st.st_dev != fds[i].dev || st.st_ino != fds[i].ino)
                        continue; /* closed since, or the number is another file's now */
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                ssize_t len = readlink(link, target, sizeof(target) - 1);
                if (len > 0) {
                        target[len] = 0;
                        if (records_dir && strcmp(target, records_dir) == 0) {
                                close(fd);
                                continue;
                        }
                }
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                o->fds[o->n_fds++] = fd;
        }
        if (o->n == 0) {
                log_info("The previous image left no worker");
                return orphans_free(o);
        }
        log_warning("Keeping %zu worker(s) of the previous image serving until the new workers are ready", o->n);
        return o;
}

size_t orphans_pids(const struct orphans *o, const pid_t **ret) {
        *ret = o ? o->pids : NULL;
        return o ? o->n_pids : 0;
}

static void remove_item(struct orphans *o, size_t i) {
        child_watch_free(o->items[i].child);
        o->items[i] = o->items[--o->n];
        if (o->n == 0) {
                for (size_t k = 0; k < o->n_fds; k++)
                        close(o->fds[k]);
                o->n_fds = 0;
                o->kill_timer = sd_event_source_disable_unref(o->kill_timer);
                log_info("The previous image's workers are gone");
        }
}

static void on_orphan_exit(struct child_watch *w, const siginfo_t *si, void *userdata) {
        struct orphans *o = userdata;
        for (size_t i = 0; i < o->n; i++)
                if (o->items[i].pid == si->si_pid) {
                        log_info("Worker %d of the previous image exited", si->si_pid);
                        (void) kill(-si->si_pid, SIGKILL); /* what it left in its group */
                        leftovers_forget(o->leftovers, si->si_pid);
                        remove_item(o, i);
                        break;
                }
}

int orphans_watch(struct orphans *o, sd_event *event, struct leftovers *leftovers) {
        if (!o)
                return 0;
        o->event = event;
        o->leftovers = leftovers;
        for (size_t i = 0; i < o->n; i++) {
                int r = child_watch_add(event, &o->items[i].child, o->items[i].pid, on_orphan_exit, o);
                if (r < 0)
                        return log_error_errno(r, "Cannot watch worker %d of the previous image: %m", o->items[i].pid);
        }
        return 0;
}

static int on_kill_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct orphans *o = userdata;
        for (size_t i = 0; i < o->n; i++) {
                log_warning("Killing worker %d of the previous image: still there after drain_timeout",
                            o->items[i].pid);
                (void) kill(-o->items[i].pid, SIGKILL);
                (void) kill(o->items[i].pid, SIGKILL);
        }
        return 0;
}

void orphans_drain(struct orphans *o, int drain_signal, uint64_t drain_usec) {
        if (!o || o->draining || o->n == 0)
                return;
        o->draining = true;
        for (size_t i = 0; i < o->n; i++) {
                log_info("Draining worker %d of the previous image (%s)", o->items[i].pid,
                         sigabbrev_np(drain_signal) ?: "?");
                if (kill(-o->items[i].pid, drain_signal) < 0)
                        (void) kill(o->items[i].pid, drain_signal);
                (void) kill(-o->items[i].pid, SIGCONT);
        }
        if (o->event && sd_event_add_time(o->event, &o->kill_timer, CLOCK_MONOTONIC, now_usec() + drain_usec,
                                          TIMER_ACCURACY_USEC, on_kill_timer, o) < 0)
                log_warning("Cannot arm the drain timeout of the previous image's workers");
}

struct orphans *orphans_free(struct orphans *o) {
        if (!o)
                return NULL;
        for (size_t i = 0; i < o->n; i++) {
                (void) kill(-o->items[i].pid, SIGKILL);
                (void) kill(o->items[i].pid, SIGKILL);
                (void) reap_killed(o->items[i].pid, REAP_KILLED_USEC, "A worker of the previous image");
                if (o->leftovers)
                        leftovers_forget(o->leftovers, o->items[i].pid);
                child_watch_free(o->items[i].child);
        }
        for (size_t i = 0; i < o->n_fds; i++)
                close(o->fds[i]);
        sd_event_source_disable_unref(o->kill_timer);
        free(o->items);
        free(o->pids);
        free(o->fds);
        free(o);
        return NULL;
}
