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
        /* The worker's cgroup (cgroup.h), or NULL: the cgroup.procs of its v2 cgroup, which
         * the child joins by clone3(CLONE_INTO_CGROUP) on CGROUP_FD or, where that fails,
         * by writing itself there before exec; and of its name=systemd v1 cgroup (hybrid
         * hosts), which it always joins itself. CGROUP_FD counts only with CGROUP_PROCS. */
        const char *cgroup_procs;
        int cgroup_fd;
        const char *cgroup_v1_procs;
        /* The soft RLIMIT_NOFILE the worker gets (the one the supervisor was started
         * with, before it raised its own), or 0 to leave it as the supervisor's. */
        uint64_t nofile_soft;
};

/* Starts the worker. Returns 0 with its pid and the supervisor's end of the control
 * socketpair (close-on-exec, non-blocking), or a negative errno. An exec failure in the
 * child is reported here too: its errno travels back over a close-on-exec pipe, and the
 * child is reaped before returning. */
int spawn_start_worker(const struct spawn_request *r, pid_t *ret_pid, int *ret_control_fd);

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
