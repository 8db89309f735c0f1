/* spawn.h: fork/exec of one worker with the environment of the worker protocol
 * (contract section 2): listening fds at 3.., LISTEN_* set as systemd sets them, the
 * supervisor's NOTIFY_SOCKET, LIVESWAP_* variables and the control socketpair. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockets.h"

struct spawn_request {
        const char *directory; /* working directory */
        char *const *argv; /* argv[0] is a path (with '/') or a name looked up in PATH */
        char *const *environment; /* extra KEY=VALUE entries (config), may be NULL */
        const struct socket_set *sockets;
        const char *fdnames;
        const char *notify_socket;
        const char *instance;
        uint64_t generation;
        unsigned slot;
        /* Adopt (contract section 9): the preload library's path, appended to LD_PRELOAD,
         * or NULL; with it, the library's LIVESWAP_READY and LIVESWAP_DRAIN_SIGNAL. */
        const char *adopt_library;
        bool ready_listen;
        int drain_signal;
        /* Under systemd, journald's stdout socket (journal-stream.h), or NULL: the worker
         * connects a stream of its own there, identified as the instance, and puts it on
         * its stdout and/or stderr, whichever of ours is the service's journal stream. */
        const char *journal_path;
        bool journal_stdout, journal_stderr;
        /* With a watchdog (> 0): WATCHDOG_USEC and WATCHDOG_PID (the worker's own pid), as
         * systemd sets them. */
        uint64_t watchdog_usec;
        /* The worker's cgroup (cgroup.h), or NULL: its v2 directory, which the child is
         * born in by clone3(CLONE_INTO_CGROUP) (opened just before the clone, so that
         * prepared spawns hold no fd for it), and its cgroup.procs, which it writes itself
         * before exec where that fails; and the cgroup.procs of its name=systemd v1
         * cgroup (hybrid hosts), which it always joins itself. CGROUP_DIR counts only
         * with CGROUP_PROCS. */
        const char *cgroup_procs;
        const char *cgroup_dir;
        const char *cgroup_v1_procs;
        /* The soft RLIMIT_NOFILE the worker gets (the one the supervisor was started
         * with, before it raised its own), or 0 to leave it as the supervisor's. */
        uint64_t nofile_soft;
};

/* A worker prepared to start: its environment, its control socketpair and the rest of
 * what the child needs, made before any child exists (spawn.c). It keeps a copy of the
 * request, whose strings stay the caller's until spawn_job_free(). */
struct spawn_job;

/* Prepares R. 0 or a negative errno. */
int spawn_job_prepare(const struct spawn_request *r, struct spawn_job **ret);

/* Called as soon as job INDEX's child runs, before its exec: whatever must exist before
 * the worker does anything (leftovers.h's record) is made here, not once the whole run is
 * over. */
typedef void (*spawn_started_t)(void *userdata, size_t index, pid_t pid);

/* Starts the prepared workers and returns once each has exec'd or failed; the outcome of
 * each is then spawn_job_result()'s. Several at once, in the shipped build, start in
 * parallel from a few short-lived helper processes (spawn.c says why and how); each
 * worker is still our child, and dies with us (PR_SET_PDEATHSIG). STARTED may be NULL. */
void spawn_jobs_start(struct spawn_job **jobs, size_t n, spawn_started_t started, void *userdata);

/* A started job's outcome: 0 with its pid and the supervisor's end of the control
 * socketpair (close-on-exec, non-blocking, now the caller's), or a negative errno. An
 * exec failure in the child is reported here too, and that child is reaped already. */
int spawn_job_result(struct spawn_job *j, pid_t *ret_pid, int *ret_control_fd);

/* NULL-safe; returns NULL. */
struct spawn_job *spawn_job_free(struct spawn_job *j);

/* Prepares R, starts it in this process, and returns spawn_job_result()'s answer. */
int spawn_start_worker(const struct spawn_request *r, pid_t *ret_pid, int *ret_control_fd);

/* The most jobs to hand spawn_jobs_start() at once: each holds its environment (a copy
 * of ours, a few KiB) until then. (Its fds are the ones its worker will keep: the
 * worker's end of the socketpair stands in for the pidfd it gets once it runs.) */
#define SPAWN_BATCH_MAX 256U
/* Jobs per helper process: fewer are not worth a fork of the supervisor. */
#define SPAWN_JOBS_PER_HELPER 8U

/* Opens the 3 fds (on /dev/null, close-on-exec) that each spawn lends the child its
 * control socket and error pipe through, at fd numbers below those the supervisor keeps
 * per worker: the child then copies only that low part of our fd table, instead of
 * closing all of it at exec (O(N) per spawn). Best called at startup, while the low
 * numbers are free; else the first spawn does it. 0 or a negative errno (then spawns
 * take the slower way). */
int spawn_reserve_fds(void);

/* With GROUP, sends SIG to a worker and to everything in the process group it leads, as
 * systemd's KillMode=control-group would: a wrapper's child must drain (and die after
 * drain_timeout) with it, or it would go on serving old code. A worker that left its
 * group still gets SIG itself, once. Without GROUP, only the worker's main process gets
 * it (KillMode=mixed's SIGTERM): a prefork master that drains its own children. Returns
 * 0 (also when nothing was left to signal) or a negative errno. */
int spawn_signal_worker(pid_t pid, int sig, bool group);

/* The environment a child gets: ours minus the variables that describe our own service
 * manager relationship, plus EXTRA. NULL on ENOMEM. */
char **spawn_build_environment(char *const *extra, size_t reserve);

/* In a freshly forked child: default signal mask and dispositions, its own process group
 * (in a session of its own with OWN_SESSION), and death with the supervisor. Returns -1
 * when the parent is already gone. */
int spawn_child_reset(pid_t parent, bool own_session);
