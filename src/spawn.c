/* spawn.c: starting workers, the parent side: the environment and fds each child gets,
 * prepared before it exists (spawn-child.c is the child side), one spawn at a time or a
 * run of them through helper processes, and the reports that come back. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "spawn-child.h"
#include "spawn.h"

extern char **environ;

/* Variables that describe the supervisor's own relationship with its service manager or
 * a previous exec; a worker gets fresh ones (or none). */
static bool inherited_unwanted(const char *kv) {
        static const char *const prefixes[] = { "LISTEN_PID=",   "LISTEN_FDS=",    "LISTEN_FDNAMES=", "NOTIFY_SOCKET=",
                                                "WATCHDOG_PID=", "WATCHDOG_USEC=", "LIVESWAP_" };
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static bool overridden(const char *kv, char *const *extra) {
        size_t n = strcspn(kv, "=");
        for (char *const *e = extra; e && *e; e++)
                if (strncmp(*e, kv, n) == 0 && (*e)[n] == '=')
                        return true;
        return false;
}

char **spawn_build_environment(char *const *extra, size_t reserve) {
        size_t n = 0, m = 0;
        for (char **e = environ; e && *e; e++)
                n++;
        for (char *const *e = extra; e && *e; e++)
                m++;
        char **env = calloc(n + m + reserve + 1, sizeof(char *));
        if (!env)
                return NULL;
        size_t k = 0;
        for (char **e = environ; e && *e; e++)
                if (!inherited_unwanted(*e) && !overridden(*e, extra) && !(env[k++] = strdup(*e)))
                        goto fail;
        for (char *const *e = extra; e && *e; e++)
                if (!(env[k++] = strdup(*e)))
                        goto fail;
        return env;
fail:
        strv_free(env);
        return NULL;
}

static int push(char **env, size_t *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int push(char **env, size_t *k, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&env[*k], fmt, ap);
        va_end(ap);
        if (r < 0) {
                env[*k] = NULL;
                return -ENOMEM;
        }
        (*k)++;
        return 0;
}

int spawn_signal_worker(pid_t pid, int sig, bool group) {
        if (!group)
                return kill(pid, sig) < 0 && errno != ESRCH ? -errno : 0;
        /* getpgid() fails once the worker is reaped; its group may still hold children. */
        if (getpgid(pid) != pid && kill(pid, sig) < 0 && errno != ESRCH)
                return -errno;
        if (kill(-pid, sig) < 0 && errno != ESRCH)
                return -errno;
        return 0;
}

/* Two fds at low numbers that the child's control socket and error pipe are copied into
 * for each spawn, so that a child sharing our fd table copies only its low part (child()),
 * and a third to park in them between spawns (so that we hold no end of the worker's).
 * O_CLOEXEC, so a reexec drops them (and the new image opens its own). */
static int low_fds[3] = { -1, -1, -1 };

int spawn_reserve_fds(void) {
        for (size_t i = 0; i < ELEMENTSOF(low_fds); i++)
                if (low_fds[i] < 0 && (low_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                        return -errno;
        return 0;
}

/* Puts CONTROL and ERROR in the low fds: false (and nothing held) when it cannot. */
static bool lend_low_fds(int control, int error) {
        if (!spawn_child_shares_memory() || spawn_reserve_fds() < 0)
                return false;
        if (dup3(control, low_fds[0], O_CLOEXEC) >= 0 && dup3(error, low_fds[1], O_CLOEXEC) >= 0)
                return true;
        (void) dup3(low_fds[2], low_fds[0], O_CLOEXEC);
        (void) dup3(low_fds[2], low_fds[1], O_CLOEXEC);
        return false;
}

static void return_low_fds(void) {
        (void) dup3(low_fds[2], low_fds[0], O_CLOEXEC);
        (void) dup3(low_fds[2], low_fds[1], O_CLOEXEC);
}

struct spawn_job {
        struct spawn_request r;
        char **env;
        char *listen_pid, *journal_stream, *watchdog_pid; /* room in env for the child */
        int *moved;
        int ours, theirs; /* the control socketpair */
        pid_t pid; /* from the child's report */
        int error; /* its errno, or why it could not be started */
        struct child_plan plan; /* a helper's detached child's, which outlives run_job() */
};

struct spawn_job *spawn_job_free(struct spawn_job *j) {
        if (!j)
                return NULL;
        strv_free(j->env);
        free(j->moved);
        if (j->ours >= 0)
                close(j->ours);
        if (j->theirs >= 0)
                close(j->theirs);
        free(j);
        return NULL;
}

static inline void spawn_job_freep(struct spawn_job **j) {
        spawn_job_free(*j);
}

int spawn_job_prepare(const struct spawn_request *r, struct spawn_job **ret) {
        __attribute__((cleanup(spawn_job_freep))) struct spawn_job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->r = *r;
        j->ours = j->theirs = -1;
        char **env = j->env = spawn_build_environment(r->environment, 15);
        if (!env)
                return -ENOMEM;
        size_t k = 0;
        while (env[k])
                k++;

        /* LISTEN_PID must be the child's own pid: reserve room, fill it in the child. */
        size_t listen_pid_index = k;
        if (push(env, &k, "LISTEN_PID=%-20s", "") < 0 || push(env, &k, "LISTEN_FDS=%zu", r->sockets->n) < 0 ||
            push(env, &k, "LISTEN_FDNAMES=%s", r->fdnames) < 0 ||
            push(env, &k, "NOTIFY_SOCKET=%s", r->notify_socket) < 0 ||
            push(env, &k, "LIVESWAP_INSTANCE=%s", r->instance) < 0 ||
            push(env, &k, "LIVESWAP_GENERATION=%" PRIu64, r->generation) < 0 ||
            push(env, &k, "LIVESWAP_WORKER=%u", r->slot) < 0 ||
            push(env, &k, "LIVESWAP_CONTROL_FD=%zu", FIRST_LISTEN_FD + r->sockets->n) < 0)
                return -ENOMEM;
        if (r->adopt_library) {
                /* After the inherited LIVESWAP_* were dropped; any LD_PRELOAD the worker
                 * would get (ours, or the config's) keeps its libraries, ours comes last. */
                size_t at = k;
                for (size_t i = 0; i < k; i++)
                        if (strncmp(env[i], "LD_PRELOAD=", 11) == 0)
                                at = i;
                const char *v = at < k ? env[at] + 11 : "";
                char *value;
                if (asprintf(&value, "LD_PRELOAD=%s%s%s", v, *v ? ":" : "", r->adopt_library) < 0)
                        return -ENOMEM;
                if (at < k)
                        free(env[at]);
                env[at] = value;
                if (at == k)
                        k++;
                if ((r->ready_listen && push(env, &k, "LIVESWAP_READY=listen") < 0) ||
                    push(env, &k, "LIVESWAP_DRAIN_SIGNAL=%d", r->drain_signal) < 0)
                        return -ENOMEM;
        }
        j->listen_pid = env[listen_pid_index] + strlen("LISTEN_PID=");
        if (r->journal_path) {
                /* Room for the child to write its own stream's DEV:INO; ours until then. */
                size_t at = 0;
                while (at < k && strncmp(env[at], "JOURNAL_STREAM=", 15) != 0)
                        at++;
                if (!(j->journal_stream = calloc(1, JOURNAL_STREAM_SIZE)))
                        return -ENOMEM;
                if (at < k) {
                        strncpy(j->journal_stream, env[at], JOURNAL_STREAM_SIZE - 1);
                        free(env[at]);
                } else
                        strcpy(j->journal_stream, "JOURNAL_STREAM=");
                env[at] = j->journal_stream;
                if (at == k)
                        k++;
        }
        /* WATCHDOG_PID likewise: sd_watchdog_enabled() checks it against getpid(). */
        if (r->watchdog_usec > 0) {
                if (push(env, &k, "WATCHDOG_USEC=%" PRIu64, r->watchdog_usec) < 0 ||
                    push(env, &k, "WATCHDOG_PID=%-20s", "") < 0)
                        return -ENOMEM;
                j->watchdog_pid = env[k - 1] + strlen("WATCHDOG_PID=");
        }

        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        j->ours = pair[0];
        j->theirs = pair[1];
        if (fcntl(j->ours, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        if (!(j->moved = calloc(r->sockets->n + 1, sizeof(int))))
                return -ENOMEM;
        *ret = TAKE_PTR(j);
        return 0;
}

/* Starts J's child with its reports going to REPORT_FD, as job INDEX; a child of PARENT
 * (us, or with CLONE_PARENT the helper's parent). Returns its pid (once it has exec'd or
 * failed: it shares our memory until then), or -1 with errno. DETACHED (a helper's
 * child, which runs EXEC_PATH if not NULL): returns as soon as the child exists. */
static pid_t run_job(struct spawn_job *j, int report_fd, uint32_t index, pid_t parent, unsigned long clone_parent,
                     bool detached, const char *exec_path) {
        /* Without it the child joins by cgroup.procs. */
        _cleanup_close_ int cgroup_fd =
                j->r.cgroup_procs && j->r.cgroup_dir ? open(j->r.cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        /* Only here, in the supervisor: a helper's fd table is small already
         * (compact_fds()), and the low fds' numbers may be in use in it. */
        bool low = !clone_parent && lend_low_fds(j->theirs, report_fd);
        struct child_plan local, *plan = detached ? &j->plan : &local;
        *plan = (struct child_plan){
                .r = &j->r,
                .env = j->env,
                .listen_pid = j->listen_pid,
                .journal_stream = j->journal_stream,
                .watchdog_pid = j->watchdog_pid,
                .control_fd = low ? low_fds[0] : j->theirs,
                .error_fd = low ? low_fds[1] : report_fd,
                .index = index,
                .parent = parent,
                .cgroup_fd = cgroup_fd,
                .clone_parent = clone_parent,
                .moved = j->moved,
                .detached = detached,
                .exec_path = exec_path,
        };
        int highest = STDERR_FILENO;
        highest = plan->control_fd > highest ? plan->control_fd : highest;
        highest = plan->error_fd > highest ? plan->error_fd : highest;
        for (size_t i = 0; i < j->r.sockets->n; i++)
                highest = j->r.sockets->sockets[i].fd > highest ? j->r.sockets->sockets[i].fd : highest;
        plan->keep_below = (unsigned) highest + 1;
        pid_t pid = spawn_child_start(plan);
        int e = errno;
        if (low)
                return_low_fds(); /* before anyone reads FD: EOF waits for its last writer */
        errno = e;
        return pid;
}

struct reader {
        struct spawn_job **jobs;
        size_t n;
        spawn_started_t started;
        void *userdata;
};

static void take_report(const struct reader *rd, const struct spawn_report *r) {
        if (r->job >= rd->n)
                return;
        struct spawn_job *j = rd->jobs[r->job];
        if (r->pid > 0 && j->pid != r->pid) {
                j->pid = r->pid;
                if (rd->started)
                        rd->started(rd->userdata, r->job, r->pid);
        }
        if (r->error != 0)
                j->error = r->error;
}

/* Reads reports from FD until every writer is gone: each child has exec'd (its copy was
 * close-on-exec) or exited, and each helper has exited. */
static void read_reports(int fd, const struct reader *rd) {
        unsigned char buf[64 * sizeof(struct spawn_report)];
        size_t have = 0;
        for (;;) {
                ssize_t got = read(fd, buf + have, sizeof(buf) - have);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        return;
                have += (size_t) got;
                size_t whole = have / sizeof(struct spawn_report) * sizeof(struct spawn_report);
                for (size_t at = 0; at < whole; at += sizeof(struct spawn_report)) {
                        struct spawn_report r;
                        memcpy(&r, buf + at, sizeof(r));
                        take_report(rd, &r);
                }
                memmove(buf, buf + whole, have - whole);
                have -= whole;
        }
}

/* After the reports: a child that failed is exiting right now (it reports, then exits),
 * and is reaped here; one that never said it ran was never started. The worker's end of
 * the socketpair is the worker's alone from now on. */
static void finish(struct spawn_job *j) {
        if (j->error == 0 && j->pid <= 0)
                j->error = EIO;
        if (j->error != 0 && j->pid > 0) {
                while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                j->pid = 0;
        }
        closep(&j->theirs);
        j->theirs = -1;
}

static void start_here(struct spawn_job *j, size_t index, spawn_started_t started, void *userdata) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                j->error = errno;
                return;
        }
        pid_t pid = run_job(j, p[1], 0, getpid(), 0, false, NULL);
        int e = errno;
        close(p[1]);
        if (pid < 0)
                j->error = e;
        else {
                /* No setpgid() from here as for the hook (it would make the child's
                 * setsid() fail): the child has its session and group before exec, and we
                 * get here only after that. */
                struct spawn_job *one[] = { j };
                struct reader rd = { .jobs = one, .n = 1 };
                if (started)
                        started(userdata, index, pid);
                j->pid = pid;
                read_reports(p[0], &rd);
        }
        close(p[0]);
        finish(j);
}

/* ---- spawning in parallel ----
 * Each spawn waits for its child's exec (CLONE_VFORK). On a busy machine that is two
 * waits for a CPU, the child's and then ours, for 0.1 ms of work: 1.5-3 ms per worker,
 * so that a blue-green upgrade of 256 workers under load spent 780 ms in its spawn loop
 * where a plain fork() loop spends 340 ms. They cannot be threads of ours: PDEATHSIG is
 * tied to the thread that made the child, so a worker would be killed when its spawner
 * thread ended, and at every reexec. So a few helper processes, forked from us with the
 * prepared jobs in their copy of our memory, start the workers with CLONE_PARENT: each
 * worker is our child, its PDEATHSIG tied to our main thread, and its exit ours to reap,
 * as if we had started it. In a run of up to SPAWN_DETACHED_MAX, a helper does not wait
 * for each exec either: its children share its memory (CLONE_VM, no copy) but not its
 * wait, each on a stack and with a plan of its own, as a fork() loop would start them.
 * One exec at a time, a helper's 8th child was cloned only once the 7 before it had
 * exec'd, and a blue-green upgrade of 16 workers under load took 1.44 times the floor's
 * time; not waiting, 1.28 (bench/, medians of 12 rounds, better in each).
 * Each child reports its own pid as soon as it runs, so that a helper that dies loses
 * none. We wait for the whole run as we wait for one spawn (every child has exec'd or
 * failed, every helper has exited): the loop sees each worker only once it runs, and
 * nothing can change under a helper. */
#define SPAWN_HELPERS (SPAWN_BATCH_MAX / SPAWN_JOBS_PER_HELPER)

size_t spawn_test_helper_dies_after = SIZE_MAX;

static int compare_fds(const void *a, const void *b) {
        int x = *(const int *) a, y = *(const int *) b;
        return (x > y) - (x < y);
}

/* Moves *FD to the lowest free number, if that is lower. */
static void move_down(int *fd) {
        int moved = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (moved >= 0 && moved < *fd) {
                close(*fd);
                *fd = moved;
        } else if (moved >= 0)
                close(moved);
}

/* A helper's fd table is a copy of ours, 2 fds per worker: each of its children would
 * copy all of it (they cannot share it, not being waited for) and close it at exec, O(N)
 * per spawn. So the helper keeps only what its jobs need (their sockets, their ends of
 * the control socketpairs, the report pipe), and moves the control sockets and the pipe
 * to the lowest free numbers. Returns REPORT_FD's number, which may have changed; where a
 * step fails the table is only bigger than it could be. */
static int compact_fds(struct spawn_job **jobs, size_t n, size_t first, size_t step, int report_fd) {
        size_t count = 1;
        for (size_t i = first; i < n; i += step)
                count += 1 + jobs[i]->r.sockets->n;
        _cleanup_free_ int *keep = malloc(count * sizeof(int));
        if (!keep)
                return report_fd;
        size_t k = 0;
        keep[k++] = report_fd;
        for (size_t i = first; i < n; i += step) {
                keep[k++] = jobs[i]->theirs;
                for (size_t f = 0; f < jobs[i]->r.sockets->n; f++)
                        keep[k++] = jobs[i]->r.sockets->sockets[f].fd;
        }
        qsort(keep, k, sizeof(int), compare_fds);
        int below = STDERR_FILENO + 1; /* the first fd not known to be needed */
        for (size_t i = 0; i <= k; i++) {
                int next = i < k ? keep[i] : -1;
                if (i < k && next < below)
                        continue; /* stdio, or the same fd twice */
                if ((next < 0 || next > below) &&
                    close_range((unsigned) below, next < 0 ? ~0U : (unsigned) next - 1, 0) < 0)
                        return report_fd; /* no close_range(): leave it */
                if (next < 0)
                        break;
                below = next + 1;
        }
        for (size_t i = first; i < n; i += step)
                move_down(&jobs[i]->theirs);
        move_down(&report_fd);
        return report_fd;
}

/* NAME (argv[0] without a '/') looked up in PATH as execvpe() does, first match that is
 * a regular file we may execute, into BUF; or NULL when that cannot be decided here (not
 * found, or a relative PATH entry, which is relative to the worker's directory). The
 * child runs what is found, and execvpe() if that fails, which decides as before. */
static const char *lookup_in_path(const char *name, char *buf, size_t size) {
        if (strchr(name, '/'))
                return NULL;
        const char *path = getenv("PATH");
        if (!path)
                path = "/bin:/usr/bin"; /* execvpe()'s default */
        for (const char *p = path;;) {
                const char *end = strchrnul(p, ':');
                if (*p != '/')
                        return NULL;
                struct stat st;
                int len = snprintf(buf, size, "%.*s/%s", (int) (end - p), p, name);
                if (len > 0 && (size_t) len < size && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
                    faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == 0)
                        return buf;
                if (!*end)
                        return NULL;
                p = end + 1;
        }
}

/* A helper: starts every STEP-th job from FIRST (DETACHED: without waiting for each
 * exec), then exits. No logging and no exit() here: this is a copy of us, with our
 * buffers and our bus connections. */
static _Noreturn void helper(struct spawn_job **jobs, size_t n, size_t first, size_t step, int report_fd, pid_t parent,
                             bool detached) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        report_fd = compact_fds(jobs, n, first, step, report_fd);
        /* The last lookup, which a run's jobs mostly share; each in memory of its own, as
         * the children that run it may not have exec'd yet. Never freed: we exit. */
        const char *looked_up = NULL, *found = NULL;
        for (size_t i = first; i < n; i += step) {
                const char *name = jobs[i]->r.argv[0];
                if (!looked_up || strcmp(looked_up, name) != 0) {
                        char buf[4096];
                        const char *path = lookup_in_path(name, buf, sizeof(buf));
                        found = path ? strdup(path) : NULL;
                        looked_up = name;
                }
                pid_t pid = run_job(jobs[i], report_fd, (uint32_t) i, parent, CLONE_PARENT, detached, found);
                if (i == spawn_test_helper_dies_after) /* before it could say anything */
                        (void) kill(getpid(), SIGKILL);
                if (pid < 0) {
                        struct spawn_report r = { .job = (uint32_t) i, .pid = 0, .error = errno };
                        (void) !write(report_fd, &r, sizeof(r));
                }
        }
        _exit(EXIT_SUCCESS);
}

/* Helpers only where a spawn shares memory (a forked helper's child would otherwise copy
 * it once more); not under the sanitizers or valgrind. */
static bool helpers_usable(void) {
        return spawn_child_shares_memory() && spawn_child_shares_files();
}

void spawn_jobs_start(struct spawn_job **jobs, size_t n, spawn_started_t started, void *userdata) {
        size_t helpers = (n + SPAWN_JOBS_PER_HELPER - 1) / SPAWN_JOBS_PER_HELPER, forked = 0;
        if (helpers > SPAWN_HELPERS)
                helpers = SPAWN_HELPERS;
        pid_t pids[SPAWN_HELPERS];
        int p[2] = { -1, -1 };
        if (helpers >= 2 && helpers_usable() && pipe2(p, O_CLOEXEC) >= 0) {
                pid_t parent = getpid();
                for (; forked < helpers; forked++) {
                        pids[forked] = fork();
                        if (pids[forked] == 0)
                                helper(jobs, n, forked, helpers, p[1], parent, n <= SPAWN_DETACHED_MAX);
                        if (pids[forked] < 0)
                                break;
                }
                close(p[1]);
                struct reader rd = { .jobs = jobs, .n = n, .started = started, .userdata = userdata };
                read_reports(p[0], &rd);
                close(p[0]);
                for (size_t h = 0; h < forked; h++)
                        while (waitpid(pids[h], NULL, 0) < 0 && errno == EINTR)
                                ;
        }
        /* Whatever no helper took (none forked, or not all) starts here. */
        for (size_t i = 0; i < n; i++)
                if (forked > 0 && i % helpers < forked)
                        finish(jobs[i]);
                else
                        start_here(jobs[i], i, started, userdata);
}

int spawn_job_result(struct spawn_job *j, pid_t *ret_pid, int *ret_control_fd) {
        if (j->error != 0)
                return -j->error;
        *ret_pid = j->pid;
        *ret_control_fd = TAKE_FD(j->ours);
        return 0;
}
