/* spawn-child.h: the child side of a spawn (spawn.h's jobs and runs are the parent
 * side): what a worker is started with, what the child is given and reports, and the
 * ways to start it. spawn.h includes it for struct spawn_request; hook.c resets its own
 * child with spawn_child_reset(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockets.h"

#define FIRST_LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define JOURNAL_STREAM_SIZE 64 /* "JOURNAL_STREAM=" and two 64-bit numbers */

/* What a worker is started with (spawn.h: spawn_job_prepare()). */
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

/* In a freshly forked child: default signal mask and dispositions, its own process group
 * (in a session of its own with OWN_SESSION), and death with the supervisor. Returns -1
 * when the parent is already gone. */
int spawn_child_reset(pid_t parent, bool own_session);

/* What the child gets: all of it prepared and owned by the parent, which waits (vfork),
 * has been copied (fork), or is a helper that goes on without touching it (DETACHED)
 * while the child writes the buffers meant for it. */
struct child_plan {
        const struct spawn_request *r;
        char **env;
        char *listen_pid, *journal_stream, *watchdog_pid; /* room in env for the child */
        int control_fd, error_fd; /* error_fd: where the child's reports go */
        uint32_t index; /* the job's, in its reports */
        pid_t parent; /* the process the child must be a child of: us, or a helper's parent */
        int cgroup_fd; /* r->cgroup_dir, opened for CLONE_INTO_CGROUP, or -1 */
        unsigned long clone_parent; /* CLONE_PARENT from a helper (spawn_jobs_start()), else 0 */
        int *moved; /* n_sockets + 1 entries */
        bool in_cgroup;
        /* CLONE_FILES: the child shares our fd table, and must take its own copy before it
         * changes any fd. Every fd it needs is below keep_below. */
        bool files_shared;
        unsigned keep_below;
        /* A helper's child (spawn.c): it shares the helper's memory, but the helper does
         * not wait for its exec, and goes on to the next one; the child has a stack of its
         * own that is never freed (the helper exits, and its memory goes with the last of
         * its children to exec), and a copy of the helper's fd table. Such children run
         * side by side in one memory, with one errno: nothing they do may depend on what
         * another writes, so EXEC_PATH is argv[0] already looked up in PATH (execvpe()
         * decides by errno), or NULL. */
        bool detached;
        const char *exec_path;
};

/* What a child says on its error fd, in one write (atomic on a pipe, so that the children
 * of several helpers can share one): its pid as soon as it runs, so that we know every
 * child of ours even if the helper that made it dies, and its errno if it cannot exec.
 * A helper that cannot start one at all says so with pid 0. */
struct spawn_report {
        uint32_t job;
        int32_t pid;
        int32_t error;
};

/* Starts the child of PLAN by the cheapest way that works and returns its pid once it
 * has exec'd or failed (it shares our memory until then; a DETACHED plan's as soon as it
 * exists), or -1 with errno. Never returns in the child. */
pid_t spawn_child_start(struct child_plan *plan);

/* Whether a child shares our memory until exec (not in sanitizer builds), and our fd
 * table (not under valgrind). Runs of spawns use helpers only where both hold. */
bool spawn_child_shares_memory(void);
bool spawn_child_shares_files(void);
