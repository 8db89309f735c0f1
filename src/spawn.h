/* spawn.h: starting workers with the environment of the worker protocol (contract
 * section 2): listening fds at 3.., LISTEN_* set as systemd sets them, the supervisor's
 * NOTIFY_SOCKET, LIVESWAP_* variables and the control socketpair; one at a time, or a run
 * of them in parallel. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockets.h"
#include "spawn-child.h"

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

/* The most jobs to hand spawn_jobs_start() at once: each holds its environment (a copy
 * of ours, a few KiB) until then. (Its fds are the ones its worker will keep: the
 * worker's end of the socketpair stands in for the pidfd it gets once it runs.) */
#define SPAWN_BATCH_MAX 256U
/* Jobs per helper process: fewer are not worth a fork of the supervisor. */
#define SPAWN_JOBS_PER_HELPER 8U
/* A run of more than this many still has each helper wait for one exec after another:
 * all of a run of 256 at once compete for the CPUs until the last has exec'd, and a
 * blue-green upgrade of 1,024 workers under load took 1.20 times the floor's time, 1.11
 * with the waits (bench/, 3 rounds; runs of 16 were better without them in 12 of 12). */
#define SPAWN_DETACHED_MAX 64U

/* For tests: the helper that starts job number N of a run kills itself (SIGKILL) right
 * after, as the OOM killer could. SIZE_MAX: none does. */
extern size_t spawn_test_helper_dies_after;

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
