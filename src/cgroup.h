/* cgroup.h: a cgroup per worker under a delegated systemd unit (contract section 10).
 * The supervisor moves itself into <unit>/supervisor and starts each worker in
 * <unit>/generation-G/worker-ID, in the cgroup v2 hierarchy and, on a hybrid host, in the
 * named name=systemd v1 hierarchy too (the one systemctl status and systemd-cgls read
 * there). What a worker leaves behind is killed with its cgroup when it exits. Without
 * delegation nothing here does anything: workers keep their process groups. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct cgroup_tree;

/* Detects delegation (contract section 10; liveswap(8), CGROUPS) and, when our unit has
 * it, moves the supervisor into its child cgroup and hands memory, cpu and pids (what the
 * unit offers) to the workers' cgroups. Returns 1 with *RET set, 0 with *RET NULL when
 * there is no delegation (or it cannot be used: the reason is logged), or -ENOMEM. */
int cgroup_tree_open(sd_event *event, struct cgroup_tree **ret);
/* Waits (bounded) for the cgroups of exited workers to empty, removes them, frees. */
struct cgroup_tree *cgroup_tree_free(struct cgroup_tree *t);

/* One worker's cgroup, made before it starts. */
struct cgroup_worker {
        char *path; /* the cgroup v2 directory, or NULL (a legacy v1-only host) */
        char *v1_path; /* the name=systemd v1 directory on a hybrid or legacy host, or NULL */
};

/* Makes generation-G/worker-ID in every hierarchy. 0 or a negative errno (nothing is left
 * behind then). */
int cgroup_worker_create(struct cgroup_tree *t, uint64_t generation, uint64_t worker_id, struct cgroup_worker *ret);
/* Frees the strings (the cgroup stays). */
void cgroup_worker_done(struct cgroup_worker *w);

/* Sends SIG to every process in the worker's cgroup, as KillMode=control-group does
 * (SIGKILL through cgroup.kill where the kernel has it). 0 or a negative errno. */
int cgroup_worker_signal(struct cgroup_tree *t, const char *path, const char *v1_path, int sig);

/* The worker has exited: kills whatever is left in its cgroup and removes the cgroup (and
 * its generation's, once empty), now or, while killed processes are still exiting, once
 * cgroup.events says it is empty. Takes the paths (frees them). */
void cgroup_worker_release(struct cgroup_tree *t, char *path, char *v1_path);
