/* supervisor.h: the one struct that ties the shell together: the event loop, the engine,
 * the sockets, the workers' fds, the settings of the current and the coming generation.
 * No other global state exists. Includes go one way: liveswap.c -> bus.c -> request.c ->
 * supervisor.c -> engine, spawn, hook; this header names nothing above it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "clock.h"
#include "config.h"
#include "engine.h"
#include "leftovers.h"
#include "pid-map.h"
#include "sockets.h"
#include "target.h"
#include "worker-stats.h"

/* The shell's side of one worker: what the engine does not need to know. */
struct worker_io {
        pid_t pid;
        int control_fd;
        struct child_watch *child;
        bool unpreloadable; /* adopt is on, but the program is statically linked */
        /* Its cgroup under a delegated unit (cgroup.h): the v2 directory, where
         * memory.current and cpu.stat are read, and the name=systemd v1 one of a hybrid
         * host. NULL without delegation (then its process group is what it has). */
        char *cgroup_path;
        char *cgroup_v1_path;
        uint64_t killed_usec; /* when SIGKILL went to it; 0 before (not handed over) */
};

struct child_watch;
struct cgroup_tree;
struct orphans;
struct hook;
struct request_observer;

struct supervisor {
        sd_event *event;
        struct engine *engine;
        char *instance;

        const char *config_path; /* NULL when running without a file */
        struct config_overrides overrides;
        struct config config; /* the current generation's settings */
        struct config candidate_config; /* the settings of the generation being built */
        struct worker_command current, candidate;

        struct socket_set sockets;
        char *fdnames;
        char *runtime_dir;
        char *adopt_library; /* found once, at the first spawn; NULL when there is none */
        bool adopt_library_searched;
        char *notify_path;
        /* journald's stdout socket when our stdout or stderr is the service's journal
         * stream: each worker then gets a stream of its own there (spawn.h). */
        char journal_path[108];
        bool journal_stdout, journal_stderr;
        int notify_fd;
        sd_event_source *notify_source;
        sd_event_source *timer;
        sd_event_source *memory_timer; /* memory_max samples; off unless the engine wants them */
        sd_event_source *kill_timer; /* the KILL_GRACE_USEC check of killed workers */
        bool gave_up_in_stop; /* a killed worker stayed while stopping: exit 1 */
        sd_event_source *watchdog;
        sd_event_source *dispatch; /* the one place the engine's actions are performed */

        struct worker_io *io;
        size_t n_io;
        size_t n_io_high; /* the most workers watched at once since the last malloc_trim() */
        struct pid_map io_by_pid; /* pid -> index in io: an exit finds its record in O(1) */
        struct leftovers leftovers; /* each live worker's record, for the next start */
        struct cgroup_tree *cgroups; /* NULL without a delegated cgroup */

        struct hook *hook; /* the pre-upgrade hook while it runs (request.c) */
        char *head_path;
        char *head_seen; /* HEAD's content as liveswap last wrote or read it */

        /* The actions that are the upgrade logic's, not I/O (request.c sets them). */
        void (*on_upgrade_finished)(struct supervisor *s, const struct engine_action *a);
        void (*on_cancel_hook)(struct supervisor *s);
        const struct request_observer *request_observer;
        /* After each batch of actions: the properties may have changed (bus.c). */
        void (*on_changed)(void *userdata);
        void *changed_userdata;

        int exit_status; /* from ACTION_EXIT: EXIT_FAILURE when the start timed out */

        /* Reexec (handover.h): the program to execute, chosen at start; the command line
         * it gets again; the deferred source that performs a requested reexec once its
         * reply is out, and who performs it (liveswap.c). */
        char *program;
        char **arguments;
        sd_event_source *reexec;
        /* The previous image's workers after a hand-over it could not read (orphans.h). */
        struct orphans *orphans;

        /* The open-file limit (fd-budget.h): the soft RLIMIT_NOFILE our parent gave us,
         * which workers get back (0 = leave theirs as ours), the one we run with (raised
         * to the hard limit), and how many workers fit in it beside our other fds. */
        uint64_t nofile_original, nofile_limit;
        unsigned max_workers;
};

int supervisor_setup_loop(struct supervisor *s);
/* Counts the fds open besides the workers' and sets max_workers from nofile_limit. */
void supervisor_measure_fds(struct supervisor *s);
void supervisor_done(struct supervisor *s);
/* Something was handed to the engine: its actions are performed from the event loop,
 * before any other event source runs. */
void supervisor_kick(struct supervisor *s);
/* Performs every queued action now (before a reexec: the engine serialises only an empty
 * queue). */
void supervisor_flush(struct supervisor *s);
/* A worker the previous image started (handover.c): watched from now on like any other.
 * Takes IO's strings and fd on success. 0 or a negative errno. */
int supervisor_restore_worker(struct supervisor *s, const struct worker_io *io);
void engine_settings_from_config(const struct config *c, struct engine_settings *ret);
/* The first generation's number: one past the highest recorded beside HEAD. */
uint64_t supervisor_first_generation(struct supervisor *s);
void supervisor_record_generation(struct supervisor *s, uint64_t generation);
/* The figures of the workers with PIDS (memory, CPU time), from their cgroups when they
 * have them, else from /proc. 0 or -ENOMEM. */
int supervisor_worker_stats(struct supervisor *s, const pid_t *pids, size_t n, struct worker_stats *ret);
int supervisor_message(struct supervisor *s, const char *text, unsigned *ret_delivered);
