/* supervisor.c: the shell around the engine. It turns kernel events (child exits, notify
 * datagrams, timers, signals) into engine events and performs the engine's actions
 * (fork/exec, kill, sd_notify) from one place, a deferred event source, as PID 1 runs its
 * job queue. What to do, and what to tell systemd, is decided in engine.c; what an
 * upgrade request means, in request.c. This file must not decide either. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "child-watch.h"
#include "elf-kind.h"
#include "fd-budget.h"
#include "head.h"
#include "journal-stream.h"
#include "leftovers.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "orphans.h"
#include "proc-describe.h"
#include "reap.h"
#include "spawn.h"
#include "supervisor.h"
#include "worker-stats.h"

/* memory_max: how often the workers' memory is sampled while a limit is set. A leak
 * that grows by 100 MiB a second overshoots by at most that much; one sample of every
 * worker costs one pass over /proc (about a millisecond for a few hundred processes). */
#define MEMORY_SAMPLE_USEC (1 * USEC_PER_SEC)
/* Coalesced with other wake-ups within this window: exact timing does not matter here. */
#define MEMORY_SAMPLE_ACCURACY_USEC (50 * USEC_PER_MSEC)

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
                .watchdog_usec = c->watchdog_usec,
                .memory_max = c->memory_max,
        };
}

/* ---- workers ---- */

/* The adopt library: LIVESWAP_ADOPT_LIBRARY (the tests'), the installed one, or, for a
 * program run from its build tree (README's first steps), the copy built beside it.
 * Looked for once: a missing library must not make every worker print ld.so's error. */
static const char *adopt_library(struct supervisor *s) {
        if (s->adopt_library_searched)
                return s->adopt_library;
        s->adopt_library_searched = true;
        const char *p = getenv("LIVESWAP_ADOPT_LIBRARY");
        if (p && *p)
                return s->adopt_library = strdup(p);
        if (access(LIVESWAP_ADOPT_LIBRARY, R_OK) == 0)
                return s->adopt_library = strdup(LIVESWAP_ADOPT_LIBRARY);
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                char *slash = strrchr(self, '/');
                if (slash &&
                    asprintf(&s->adopt_library, "%.*s/libliveswap-adopt.so", (int) (slash - self), self) >= 0 &&
                    access(s->adopt_library, R_OK) == 0)
                        return s->adopt_library;
                free(s->adopt_library);
                s->adopt_library = NULL;
        }
        log_warning("The adopt library is not installed (%s): apps that bind their own port will not get "
                    "the listening socket; install liveswap or set LIVESWAP_ADOPT_LIBRARY",
                    LIVESWAP_ADOPT_LIBRARY);
        return NULL;
}

#define STATIC_HINT                                                                                             \
        "the app is statically linked, so liveswap cannot hand it the listening socket when it binds the port " \
        "itself (adopt); make it read the socket from LISTEN_FDS (fd 3; Go: "                                   \
        "net.FileListener(os.NewFile(3, \"listener\"))), or link it dynamically"

static struct worker_io *io_find(struct supervisor *s, pid_t pid) {
        uint64_t i;
        return pid_map_get(&s->io_by_pid, pid, &i) ? &s->io[i] : NULL;
}

static void on_worker_exit(struct child_watch *w, const siginfo_t *si, void *userdata);

/* The record at the end of io, filled in, gets its child source and is counted. */
static int io_add(struct supervisor *s) {
        struct worker_io *io = &s->io[s->n_io];
        int r = pid_map_put(&s->io_by_pid, io->pid, s->n_io);
        if (r >= 0)
                r = child_watch_add(s->event, &io->child, io->pid, on_worker_exit, s);
        if (r < 0) {
                pid_map_remove(&s->io_by_pid, io->pid);
                return r;
        }
        if (++s->n_io > s->n_io_high)
                s->n_io_high = s->n_io;
        return 0;
}

/* The worker is gone (its zombie at most): whatever is left in its cgroup is killed, and
 * the cgroup removed once that is gone too. */
static void io_remove(struct supervisor *s, struct worker_io *io) {
        child_watch_free(io->child);
        if (io->control_fd >= 0)
                close(io->control_fd);
        if (s->cgroups && (io->cgroup_path || io->cgroup_v1_path))
                cgroup_worker_release(s->cgroups, io->cgroup_path, io->cgroup_v1_path);
        pid_map_remove(&s->io_by_pid, io->pid);
        *io = s->io[--s->n_io];
        /* The last record moved into the hole: a pid already in the map, so the map does
         * not grow and this cannot fail. */
        if (io != &s->io[s->n_io])
                (void) pid_map_put(&s->io_by_pid, io->pid, (uint64_t) (io - s->io));
}

/* Half of the most workers there were have exited (a blue-green upgrade's drain is over,
 * or a scale-down): what they used is free inside malloc's heap, mostly between blocks
 * still in use, where free() cannot give it back. malloc_trim() does: 0.3-0.5 MiB after
 * a blue-green upgrade of 1,024 workers, for 0.1-0.25 ms once per upgrade (measured on
 * a 2-CPU machine). Below 64 workers there is too little to matter. */
static void trim_after_drain(struct supervisor *s) {
        if (s->n_io_high < 64 || s->n_io * 2 > s->n_io_high)
                return;
        (void) malloc_trim(0);
        s->n_io_high = s->n_io;
}

/* A worker is gone (SI says how): logged unless QUIET, its leftovers killed, its
 * records dropped, and the engine told. */
static void worker_exited(struct supervisor *s, const siginfo_t *si, bool quiet) {
        pid_t pid = si->si_pid;
        struct engine_worker view, *w = engine_get_worker(s->engine, pid, &view) ? &view : NULL;
        bool signaled = si->si_code != CLD_EXITED;
        struct worker_io *io = io_find(s, pid);
        const char *hint = io && io->unpreloadable ? STATIC_HINT : NULL;

        if (w && !quiet) {
                bool expected = w->state == WORKER_DRAINING && !w->aborted;
                /* Restart() kills on purpose: the SIGKILL it sent is no news. */
                bool restarted = w->respawn_now && w->killed && signaled && si->si_status == SIGKILL;
                int level = (expected && !signaled && si->si_status == 0) || restarted ? LOG_INFO : LOG_WARNING;
                if (signaled)
                        log_worker(level, w->generation, pid,
                                   "Worker %d (generation %" PRIu64 ", slot %u) was killed by signal %s%s", pid,
                                   w->generation, w->slot, sigabbrev_np(si->si_status) ?: "unknown",
                                   restarted    ? " for the restart"
                                   : w->aborted ? " after its watchdog timeout"
                                   : expected   ? " while draining"
                                                : "");
                else
                        log_worker(level, w->generation, pid,
                                   "Worker %d (generation %" PRIu64 ", slot %u) exited with status %d%s", pid,
                                   w->generation, w->slot, si->si_status, expected ? " after draining" : "");
                if (hint && w->state == WORKER_STARTING)
                        log_worker(LOG_WARNING, w->generation, pid, "Worker %d: %s", pid, hint);
        }
        /* The worker is reaped after this callback (child-watch.h), so its pid, and with it its
         * process group, cannot have been reused yet: whatever it left behind goes now.
         * (kill() cannot tell whether anything but the zombie leader got it, so no log.)
         * With a cgroup, io_remove() kills the rest of it too: a daemon that called
         * setsid() left the group, never the cgroup. */
        if (pid > 0) /* kill(-0) would be our own process group */
                (void) kill(-pid, SIGKILL);
        leftovers_forget(&s->leftovers, pid);
        if (io) {
                io_remove(s, io);
                trim_after_drain(s);
        }
        engine_worker_exited_hint(s->engine, pid, signaled, si->si_status, hint, now_usec());
        supervisor_kick(s);
}

static void on_worker_exit(struct child_watch *w, const siginfo_t *si, void *userdata) {
        worker_exited(userdata, si, false);
}

/* ---- killed workers that stay ----
 * SIGKILL cannot be refused, yet a killed worker may not be reaped: stuck in the kernel
 * (D state), or a zombie held by a tracer (a debugger, LeakSanitizer's) that has not
 * waited for it; until then its parent cannot reap it. systemd gives up on such
 * processes after its final SIGKILL timeout; so does the supervisor, after
 * KILL_GRACE_USEC, rather than wait forever (a stop that would never end). */
#define KILL_GRACE_USEC (10 * USEC_PER_SEC)

/* After a pass over the killed workers: the earliest grace left, if any. */
static void arm_kill_timer(struct supervisor *s) {
        uint64_t next = USEC_INFINITY;
        for (size_t i = 0; i < s->n_io; i++)
                if (s->io[i].killed_usec > 0 && s->io[i].killed_usec + KILL_GRACE_USEC < next)
                        next = s->io[i].killed_usec + KILL_GRACE_USEC;
        if (next == USEC_INFINITY) {
                (void) sd_event_source_set_enabled(s->kill_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(s->kill_timer, next);
        (void) sd_event_source_set_enabled(s->kill_timer, SD_EVENT_ONESHOT);
}

static void settle_killed(struct supervisor *s, struct worker_io *io) {
        pid_t pid = io->pid;
        siginfo_t si = {};
        int r = waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid == pid) {
                /* Its exit is there to be reaped: it was not reported to us. */
                log_warning("Worker %d is gone, but its exit was not reported; handling it now", (int) pid);
                worker_exited(s, &si, false);
                (void) waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG);
                return;
        }
        char why[256] = "not a child of the supervisor any more";
        if (r == 0 || errno != ECHILD)
                proc_describe(pid, why, sizeof(why));
        log_error("Worker %d is still there %llu s after SIGKILL (%s): giving up on it", (int) pid,
                  (unsigned long long) (KILL_GRACE_USEC / USEC_PER_SEC), why);
        if (engine_get_state(s->engine) == ENGINE_STOPPING)
                s->gave_up_in_stop = true;
        /* si_pid and si_status are in members of one union: assigned, not initialized. */
        si = (siginfo_t){ .si_code = CLD_KILLED };
        si.si_pid = pid;
        si.si_status = SIGKILL;
        worker_exited(s, &si, true);
}

static int on_kill_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        uint64_t now = now_usec();
        /* settle_killed() removes the worker's record: the last one moves into its place. */
        for (size_t i = 0; i < s->n_io;) {
                struct worker_io *io = &s->io[i];
                size_t before = s->n_io;
                if (io->killed_usec > 0 && now >= io->killed_usec + KILL_GRACE_USEC)
                        settle_killed(s, io);
                if (s->n_io == before)
                        i++;
        }
        arm_kill_timer(s);
        return 0;
}

/* The engine says whose settings a worker runs with; the request layer keeps the
 * candidate's command until the engine's UPGRADE_FINISHED, which comes after every spawn
 * of the candidate in the queue. */
static const struct worker_command *command_for(struct supervisor *s, const struct engine_action *a,
                                                const struct config **ret_config) {
        if (a->candidate && s->candidate.argv) {
                *ret_config = &s->candidate_config;
                return &s->candidate;
        }
        *ret_config = &s->config;
        return &s->current;
}

/* ---- spawns ----
 * The engine queues an upgrade's spawns together (all of them for blue-green): a run of
 * them is prepared here, then started in one spawn_jobs_start(), which overlaps their
 * waits for exec (spawn.c). Any other action first ends the run, so that actions are
 * still performed in the engine's order, each seeing the spawns before it done. */
struct pending_spawn {
        uint64_t worker_id, generation;
        unsigned slot;
        const struct worker_command *cmd; /* the request layer keeps it until the run ends */
        bool unpreloadable;
        struct cgroup_worker cg;
        char *procs, *v1_procs;
        struct spawn_job *job;
        int error; /* preparing failed */
        pid_t recorded; /* its child ran: leftovers_record()ed */
};

struct spawn_run {
        struct pending_spawn p[SPAWN_BATCH_MAX];
        size_t n;
};

static void prepare_spawn(struct supervisor *s, const struct engine_action *a, struct pending_spawn *p) {
        const struct config *c;
        const struct worker_command *cmd = command_for(s, a, &c);
        *p = (struct pending_spawn){
                .worker_id = a->worker_id, .generation = a->generation, .slot = a->slot, .cmd = cmd
        };
        struct spawn_request req = {
                .directory = cmd->directory,
                .argv = cmd->argv,
                .environment = c->worker_environment ?: c->environment,
                .sockets = &s->sockets,
                .fdnames = s->fdnames,
                .notify_socket = s->notify_path,
                .instance = s->instance,
                .generation = a->generation,
                .slot = a->slot,
                .adopt_library = c->adopt ? adopt_library(s) : NULL,
                .ready_listen = c->ready == READY_LISTEN,
                .drain_signal = c->drain_signal,
                .journal_path = s->journal_path[0] ? s->journal_path : NULL,
                .journal_stdout = s->journal_stdout,
                .journal_stderr = s->journal_stderr,
                .watchdog_usec = c->watchdog_usec,
                .nofile_soft = s->nofile_original,
        };
        if (s->cgroups) {
                int q = cgroup_worker_create(s->cgroups, a->generation, a->worker_id, &p->cg);
                if (q < 0)
                        log_warning_errno(q,
                                          "Cannot make a cgroup for a worker of generation %" PRIu64
                                          ": %m; it gets a process group only",
                                          a->generation);
                if ((p->cg.path && asprintf(&p->procs, "%s/cgroup.procs", p->cg.path) < 0) ||
                    (p->cg.v1_path && asprintf(&p->v1_procs, "%s/cgroup.procs", p->cg.v1_path) < 0)) {
                        cgroup_worker_release(s->cgroups, TAKE_PTR(p->cg.path), TAKE_PTR(p->cg.v1_path));
                        cgroup_worker_done(&p->cg);
                        p->procs = p->v1_procs = NULL;
                }
                req.cgroup_procs = p->procs;
                req.cgroup_dir = p->cg.path;
                req.cgroup_v1_procs = p->v1_procs;
        }
        p->unpreloadable = c->adopt && cmd->is_static;
        if (p->unpreloadable)
                log_warning("%s is statically linked: if it binds its port itself, it will fail with \"address in "
                            "use\" (adopt cannot reach it)",
                            cmd->argv[0]);
        p->error = spawn_job_prepare(&req, &p->job);
}

/* Takes over a started worker, or reports why it did not start. */
static void finish_spawn(struct supervisor *s, struct pending_spawn *p) {
        pid_t pid = 0;
        int control_fd = -1;
        int r = p->job ? spawn_job_result(p->job, &pid, &control_fd) : p->error;
        p->job = spawn_job_free(p->job);
        if (r >= 0) {
                struct worker_io *io = reallocarray(s->io, s->n_io + 1, sizeof(*io));
                if (io) {
                        s->io = io;
                        s->io[s->n_io] = (struct worker_io){ .pid = pid,
                                                             .control_fd = control_fd,
                                                             .unpreloadable = p->unpreloadable,
                                                             .cgroup_path = TAKE_PTR(p->cg.path),
                                                             .cgroup_v1_path = TAKE_PTR(p->cg.v1_path) };
                        r = io_add(s);
                } else
                        r = -ENOMEM;
                if (r < 0) {
                        /* Without a child source we would never learn of its exit. */
                        (void) kill(pid, SIGKILL);
                        (void) reap_killed(pid, REAP_KILLED_USEC, "A worker that could not be watched");
                        close(control_fd);
                        if (io) {
                                p->cg.path = TAKE_PTR(s->io[s->n_io].cgroup_path);
                                p->cg.v1_path = TAKE_PTR(s->io[s->n_io].cgroup_v1_path);
                        }
                }
        }
        if (s->cgroups && (p->cg.path || p->cg.v1_path))
                cgroup_worker_release(s->cgroups, TAKE_PTR(p->cg.path), TAKE_PTR(p->cg.v1_path));
        cgroup_worker_done(&p->cg);
        free(p->procs);
        free(p->v1_procs);
        if (r < 0) {
                if (p->recorded > 0)
                        leftovers_forget(&s->leftovers, p->recorded);
                log_worker_errno(LOG_ERR, r, p->generation, 0, "Cannot start worker of generation %" PRIu64 " (%s): %m",
                                 p->generation, p->cmd->argv[0]);
                engine_worker_spawn_failed(s->engine, p->worker_id, strerror(-r), now_usec());
                return;
        }
        log_worker(LOG_INFO, p->generation, pid, "Worker %d (generation %" PRIu64 ", slot %u) started: %s", pid,
                   p->generation, p->slot, p->cmd->target);
        engine_worker_spawned(s->engine, p->worker_id, pid, now_usec());
}

struct run_context {
        struct supervisor *s;
        struct pending_spawn *owners[SPAWN_BATCH_MAX];
};

/* As soon as the child runs, before it execs: from now on a SIGKILL of the supervisor
 * leaves a record for the next start to stop what this worker forks (leftovers.h). */
static void on_started(void *userdata, size_t index, pid_t pid) {
        struct run_context *ctx = userdata;
        struct pending_spawn *p = ctx->owners[index];
        leftovers_record(&ctx->s->leftovers, pid, p->generation);
        p->recorded = pid;
}

static void spawn_run_flush(struct supervisor *s, struct spawn_run *run) {
        if (run->n == 0)
                return;
        struct run_context ctx = { .s = s };
        struct spawn_job *jobs[SPAWN_BATCH_MAX];
        size_t n = 0;
        for (size_t i = 0; i < run->n; i++)
                if (run->p[i].job) {
                        ctx.owners[n] = &run->p[i];
                        jobs[n++] = run->p[i].job;
                }
        spawn_jobs_start(jobs, n, on_started, &ctx);
        for (size_t i = 0; i < run->n; i++)
                finish_spawn(s, &run->p[i]);
        run->n = 0;
}

static void spawn_run_add(struct supervisor *s, struct spawn_run *run, const struct engine_action *a) {
        prepare_spawn(s, a, &run->p[run->n++]);
        if (run->n == SPAWN_BATCH_MAX)
                spawn_run_flush(s, run);
}

/* ---- generation numbers ----
 * Never reused, restarts included: the highest one used is kept beside HEAD, and each is
 * recorded before its first worker starts, so that a crash cannot hand it out again. */

uint64_t supervisor_first_generation(struct supervisor *s) {
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

/* A failed write costs only the guarantee across a restart: warn and go on. (An
 * unwritable state directory refuses upgrades anyway, through head_probe().) */
void supervisor_record_generation(struct supervisor *s, uint64_t generation) {
        _cleanup_free_ char *path = head_generation_path(s->head_path);
        int r = path ? head_generation_write(path, generation) : -ENOMEM;
        if (r < 0)
                log_warning_errno(r,
                                  "Cannot record generation %" PRIu64 " in %s: %s (a restart may number "
                                  "generations again from an earlier one)",
                                  generation, path ?: s->head_path, strerror(-r));
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
                        log_worker_errno(LOG_WARNING, errno, 0, s->io[i].pid, "Cannot deliver message to worker %d: %m",
                                         s->io[i].pid);
        }
        *ret_delivered = n;
        return 0;
}

/* ---- timers ---- */

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        engine_timer(s->engine, now_usec());
        supervisor_kick(s);
        return 0;
}

/* ---- memory_max ----
 * One time source, enabled only while the engine wants samples (a generation serving
 * with memory_max set): with memory_max = 0 nothing here ever wakes the supervisor. */

int supervisor_worker_stats(struct supervisor *s, const pid_t *pids, size_t n, struct worker_stats *ret) {
        _cleanup_free_ struct worker_stats_query *queries = calloc(n ?: 1, sizeof(*queries));
        if (!queries)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                /* Each worker leads its process group; under delegation it has a cgroup. */
                const struct worker_io *io = io_find(s, pids[i]);
                queries[i] = (struct worker_stats_query){ .pgid = pids[i], .cgroup_path = io ? io->cgroup_path : NULL };
        }
        return worker_stats_collect(queries, n, ret);
}

static int on_memory_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        _cleanup_free_ pid_t *pids = calloc(s->n_io ?: 1, sizeof(*pids));
        _cleanup_free_ struct worker_stats *stats = calloc(s->n_io ?: 1, sizeof(*stats));
        if (!pids || !stats) {
                log_oom();
                supervisor_kick(s); /* the next dispatch arms the next sample */
                return 0;
        }
        for (size_t i = 0; i < s->n_io; i++)
                pids[i] = s->io[i].pid;
        int r = supervisor_worker_stats(s, pids, s->n_io, stats);
        if (r < 0)
                log_warning_errno(r, "Cannot measure the workers' memory: %m");
        else
                for (size_t i = 0; i < s->n_io; i++)
                        if (stats[i].has_memory)
                                engine_worker_memory(s->engine, pids[i], stats[i].memory_bytes, now_usec());
        supervisor_kick(s);
        return 0;
}

/* Called after every batch of actions: starts the next sample when samples are wanted
 * and none is pending, stops it when they are not. A pending sample is left alone, so
 * that frequent events (WATCHDOG=1 pings) cannot put it off. */
static void arm_memory_timer(struct supervisor *s) {
        int enabled = SD_EVENT_OFF;
        (void) sd_event_source_get_enabled(s->memory_timer, &enabled);
        if (!engine_wants_memory(s->engine)) {
                if (enabled != SD_EVENT_OFF)
                        (void) sd_event_source_set_enabled(s->memory_timer, SD_EVENT_OFF);
                return;
        }
        if (enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time(s->memory_timer, now_usec() + MEMORY_SAMPLE_USEC);
        (void) sd_event_source_set_enabled(s->memory_timer, SD_EVENT_ONESHOT);
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
                struct engine_worker w;
                bool found = engine_get_worker(s->engine, pid, &w);
                if (!found) {
                        pid_t group = getpgid(pid);
                        if (group > 0)
                                found = engine_get_worker(s->engine, group, &w);
                }
                if (!found) {
                        log_debug("Ignoring notify message from pid %d: not a worker", pid);
                        continue;
                }
                if (m.has_status)
                        log_worker(LOG_DEBUG, w.generation, w.pid, "Worker %d: %s", w.pid, m.status);
                if (m.ready) {
                        log_worker(LOG_DEBUG, w.generation, w.pid, "Worker %d (generation %" PRIu64 ") sent READY=1",
                                   w.pid, w.generation);
                        engine_worker_ready(s->engine, w.pid, now_usec());
                }
                /* A new timeout first: systemd applies it before the ping in the same
                 * message. */
                if (m.has_watchdog_usec)
                        engine_worker_watchdog_usec(s->engine, w.pid, m.watchdog_usec, now_usec());
                if (m.watchdog)
                        engine_worker_watchdog(s->engine, w.pid, now_usec());
                if (m.watchdog_trigger)
                        engine_worker_watchdog_trigger(s->engine, w.pid, now_usec());
        }
        supervisor_kick(s);
        return 0;
}

/* ---- actions ---- */

static void perform_signal(struct supervisor *s, const struct engine_action *a) {
        struct engine_worker w = {};
        (void) engine_get_worker(s->engine, a->pid, &w); /* its generation, for the log */
        switch (a->purpose) {
        case SIGNAL_DRAIN:
                log_worker(LOG_INFO, w.generation, a->pid, "Draining worker %d (%s%s)", a->pid,
                           sigabbrev_np(a->signal) ?: "?", a->group ? "" : " to its main process only");
                break;
        case SIGNAL_RESUME:
                log_worker(LOG_DEBUG, w.generation, a->pid, "Sending CONT to worker %d, in case it is stopped", a->pid);
                break;
        case SIGNAL_KILL:
                /* A restart by request is what was asked for; any other kill is a problem. */
                if (w.respawn_now)
                        log_worker(LOG_INFO, w.generation, a->pid, "Killing worker %d: %s", a->pid, a->reason);
                else {
                        /* What it was doing instead of exiting is where to look. */
                        char doing[256];
                        proc_describe(a->pid, doing, sizeof(doing));
                        log_worker(LOG_WARNING, w.generation, a->pid, "Killing worker %d: %s (%s)", a->pid, a->reason,
                                   doing);
                }
                break;
        case SIGNAL_ABORT:
                log_worker(LOG_WARNING, w.generation, a->pid, "Aborting worker %d (ABRT%s): %s", a->pid,
                           a->group ? "" : " to its main process only", a->reason);
                break;
        }
        struct worker_io *io = io_find(s, a->pid);
        if (a->signal == SIGKILL && io && io->killed_usec == 0) {
                io->killed_usec = now_usec();
                /* Kill times only grow: an armed timer is due first already. */
                if (sd_event_source_get_enabled(s->kill_timer, NULL) == 0) {
                        (void) sd_event_source_set_time(s->kill_timer, io->killed_usec + KILL_GRACE_USEC);
                        (void) sd_event_source_set_enabled(s->kill_timer, SD_EVENT_ONESHOT);
                }
        }
        /* KillMode=control-group, with a cgroup: a daemon that left the worker's process
         * group drains (and is killed) with it. */
        int r = io && a->group && s->cgroups && (io->cgroup_path || io->cgroup_v1_path)
                        ? cgroup_worker_signal(s->cgroups, io->cgroup_path, io->cgroup_v1_path, a->signal)
                        : spawn_signal_worker(a->pid, a->signal, a->group);
        if (r < 0)
                log_worker_errno(LOG_WARNING, r, w.generation, a->pid, "Cannot signal worker %d: %m", a->pid);
}

/* Sends what the engine decided to tell systemd, as it said it. */
static void perform_notify(const struct engine_notify *n) {
        char text[sizeof(n->status) + 256];
        size_t p = 0;
        if (n->reloading)
                p += (size_t) snprintf(text + p, sizeof(text) - p, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\n",
                                       n->reloading_usec);
        if (n->stopping)
                p += (size_t) snprintf(text + p, sizeof(text) - p, "STOPPING=1\n");
        if (n->extend_timeout_usec > 0)
                p += (size_t) snprintf(text + p, sizeof(text) - p, "EXTEND_TIMEOUT_USEC=%" PRIu64 "\n",
                                       n->extend_timeout_usec);
        if (n->ready)
                p += (size_t) snprintf(text + p, sizeof(text) - p, "READY=1\n");
        if (n->has_status)
                p += (size_t) snprintf(text + p, sizeof(text) - p, "STATUS=%s\n", n->status);
        if (p > 0)
                (void) sd_notify(false, text);
}

static void perform(struct supervisor *s, const struct engine_action *a) {
        switch (a->type) {
        case ACTION_SPAWN: /* on_dispatch() runs these */
                break;
        case ACTION_SIGNAL:
                perform_signal(s, a);
                break;
        case ACTION_WORKER_READY:
                log_worker(LOG_INFO, a->generation, a->pid, "Worker %d (generation %" PRIu64 ", slot %u) is ready",
                           a->pid, a->generation, a->slot);
                break;
        case ACTION_WORKER_HEALTH:
                log_warning("%s", a->reason);
                break;
        case ACTION_READY: {
                char status[1024];
                /* After a hand-over this program could not read: the fresh generation
                 * serves now, the previous image's workers may go. */
                orphans_drain(s->orphans, s->config.drain_signal, s->config.drain_timeout_usec);
                engine_format_status(s->engine, now_usec(), status, sizeof(status));
                log_info("%s", status);
                break;
        }
        case ACTION_NOTIFY:
                perform_notify(&a->notify);
                break;
        case ACTION_UPGRADE_STARTED:
                /* Queued before the generation's first spawn. */
                supervisor_record_generation(s, a->generation);
                log_worker(LOG_INFO, a->generation, 0, "Upgrading to generation %" PRIu64 " (%s, strategy %s)",
                           a->generation, s->candidate.target, strategy_to_string(s->candidate_config.strategy));
                break;
        case ACTION_UPGRADE_FINISHED:
                if (s->on_upgrade_finished)
                        s->on_upgrade_finished(s, a);
                break;
        case ACTION_CANCEL_HOOK:
                if (s->on_cancel_hook)
                        s->on_cancel_hook(s);
                break;
        case ACTION_START_FAILED:
                log_error("%s; stopping every worker", a->reason);
                break;
        case ACTION_EXIT:
                s->exit_status = a->success && !s->gave_up_in_stop ? EXIT_SUCCESS : EXIT_FAILURE;
                (void) sd_event_exit(s->event, s->exit_status);
                break;
        }
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

/* The one dispatch point: performs every queued action, then brings the status, the
 * timer and the properties up to date. It runs before any other event source (highest
 * priority), so each handler finds the queue empty and the request layer's candidate
 * always matches the engine's. */
static int on_dispatch(sd_event_source *source, void *userdata) {
        struct supervisor *s = userdata;
        struct engine_action a;
        struct spawn_run run; /* not zeroed: 20 KiB, on every pass of the loop */
        run.n = 0;

        /* Bounded: actions only queue more actions through spawn reports, which add at
         * most one signal each, and the status update adds at most one. A run's reports
         * come when it ends: what they queue is performed in the same pass. */
        for (int round = 0; round < 2; round++) {
                for (;;) {
                        if (engine_next_action(s->engine, &a)) {
                                if (a.type == ACTION_SPAWN) {
                                        spawn_run_add(s, &run, &a);
                                        continue;
                                }
                                spawn_run_flush(s, &run);
                                perform(s, &a);
                        } else if (run.n > 0)
                                spawn_run_flush(s, &run);
                        else
                                break;
                }
                engine_update_status(s->engine, now_usec());
        }
        arm_timer(s);
        arm_memory_timer(s);
        if (s->on_changed)
                s->on_changed(s->changed_userdata);
        return 0;
}

void supervisor_flush(struct supervisor *s) {
        (void) on_dispatch(s->dispatch, s);
        (void) sd_event_source_set_enabled(s->dispatch, SD_EVENT_OFF);
}

int supervisor_restore_worker(struct supervisor *s, const struct worker_io *io) {
        struct worker_io *p = reallocarray(s->io, s->n_io + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->io = p;
        p[s->n_io] = *io;
        p[s->n_io].child = NULL;
        /* A worker that exited while the old image was exec'ing is a zombie now: its
         * pidfd is readable at once, and it is reaped at the next iteration as any other
         * exit would be. */
        return io_add(s);
}

void supervisor_kick(struct supervisor *s) {
        (void) sd_event_source_set_enabled(s->dispatch, SD_EVENT_ONESHOT);
}

/* ---- signals ---- */

/* The systemd watchdog's keep-alive is a timer of its own, not an engine action: it says
 * that the event loop still runs, which is I/O liveness, not a decision. */
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
                return log_error_errno(r, "Cannot create the event loop: %m");
        r = sd_event_add_defer(s->event, &s->dispatch, on_dispatch, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->dispatch, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return log_error_errno(r, "Cannot create the dispatch source: %m");
        (void) sd_event_source_set_enabled(s->dispatch, SD_EVENT_OFF);
        r = sd_event_add_time(s->event, &s->timer, CLOCK_MONOTONIC, USEC_INFINITY, TIMER_ACCURACY_USEC, on_timer, s);
        if (r < 0)
                return log_error_errno(r, "Cannot create timer: %m");
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        r = sd_event_add_time(s->event, &s->memory_timer, CLOCK_MONOTONIC, USEC_INFINITY, MEMORY_SAMPLE_ACCURACY_USEC,
                              on_memory_timer, s);
        if (r < 0)
                return log_error_errno(r, "Cannot create the memory timer: %m");
        (void) sd_event_source_set_enabled(s->memory_timer, SD_EVENT_OFF);
        r = sd_event_add_time(s->event, &s->kill_timer, CLOCK_MONOTONIC, USEC_INFINITY, TIMER_ACCURACY_USEC,
                              on_kill_timer, s);
        if (r < 0)
                return log_error_errno(r, "Cannot create the kill timer: %m");
        (void) sd_event_source_set_enabled(s->kill_timer, SD_EVENT_OFF);
        r = sd_event_add_io(s->event, &s->notify_source, s->notify_fd, EPOLLIN, on_notify, s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the notify socket: %m");
        s->journal_stdout = journal_stream_is(STDOUT_FILENO);
        s->journal_stderr = journal_stream_is(STDERR_FILENO);
        if ((s->journal_stdout || s->journal_stderr) &&
            journal_stream_path(s->journal_path, sizeof(s->journal_path)) < 0)
                s->journal_path[0] = 0;
        r = cgroup_tree_open(s->event, &s->cgroups);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the workers' cgroups: %m");
        if (sd_watchdog_enabled(false, &interval) > 0) {
                r = sd_event_add_time_relative(s->event, &s->watchdog, CLOCK_MONOTONIC, interval / 2,
                                               TIMER_ACCURACY_USEC, on_watchdog, s);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the watchdog: %m");
                (void) sd_event_source_set_enabled(s->watchdog, SD_EVENT_ON);
        }
        return 0;
}

void supervisor_measure_fds(struct supervisor *s) {
        unsigned open_fds = 0;
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] != '.')
                                open_fds++;
                closedir(d);
                open_fds--; /* the directory's own */
        }
        unsigned held = (unsigned) s->n_io * FD_BUDGET_PER_WORKER;
        s->max_workers = fd_budget_max_workers(s->nofile_limit, open_fds > held ? open_fds - held : 0);
}

void supervisor_done(struct supervisor *s) {
        s->orphans = orphans_free(s->orphans);
        s->reexec = sd_event_source_disable_unref(s->reexec);
        free(s->program);
        while (s->n_io > 0) {
                /* Only reached when the loop ended abnormally: never leave a worker behind. */
                (void) spawn_signal_worker(s->io[0].pid, SIGKILL, true);
                (void) reap_killed(s->io[0].pid, REAP_KILLED_USEC, "A worker");
                /* (io_remove() kills the rest of its cgroup.) */
                leftovers_forget(&s->leftovers, s->io[0].pid);
                io_remove(s, &s->io[0]);
        }
        leftovers_close(&s->leftovers);
        free(s->io);
        pid_map_clear(&s->io_by_pid);
        s->cgroups = cgroup_tree_free(s->cgroups);
        s->notify_source = sd_event_source_disable_unref(s->notify_source);
        s->timer = sd_event_source_disable_unref(s->timer);
        s->memory_timer = sd_event_source_disable_unref(s->memory_timer);
        s->kill_timer = sd_event_source_disable_unref(s->kill_timer);
        s->dispatch = sd_event_source_disable_unref(s->dispatch);
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
        free(s->adopt_library);
        free(s->notify_path);
        free(s->head_path);
        free(s->head_seen);
        free(s->instance);
}
