/* spawn-child.h: the child side of a spawn (spawn.c's jobs and runs are the parent
 * side): what the child is given, what it reports, and the ways to start it. Internal to
 * spawn.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "spawn.h"

#define FIRST_LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define JOURNAL_STREAM_SIZE 64 /* "JOURNAL_STREAM=" and two 64-bit numbers */

/* What the child gets: all of it prepared and owned by the parent, which waits (vfork)
 * or has been copied (fork) while the child writes the buffers meant for it. */
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
 * has exec'd or failed (it shares our memory until then), or -1 with errno. Never
 * returns in the child. */
pid_t spawn_child_start(struct child_plan *plan);

/* Whether a child shares our memory until exec (not in sanitizer builds), and our fd
 * table (not under valgrind). Runs of spawns use helpers only where both hold. */
bool spawn_child_shares_memory(void);
bool spawn_child_shares_files(void);
