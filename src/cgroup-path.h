/* cgroup-path.h: the pure half of cgroup.h: reading /proc/self/cgroup, cgroup.events and
 * cgroup.controllers, and the names of the cgroups liveswap makes. No I/O here. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The cgroup liveswap moves itself into, below its unit's cgroup. */
#define CGROUP_SUPERVISOR "supervisor"

/* Finds, in the text of /proc/self/cgroup, the cgroup v2 path ("0::/a/b") and the path in
 * the named "name=systemd" v1 hierarchy (hybrid and legacy modes). Each is returned
 * malloc'd, or NULL when the text has no such line. 0, -EINVAL for a line that is not
 * "ID:CONTROLLERS:/PATH", or -ENOMEM. */
int cgroup_parse_self(const char *text, char **ret_unified, char **ret_named);

/* The unit's cgroup for a process at PATH: PATH itself, or its parent when PATH is the
 * supervisor's own child cgroup (a supervisor that re-executed itself is already there).
 * malloc'd, NULL on ENOMEM. */
char *cgroup_unit_path(const char *path);

/* MOUNT joined with the cgroup PATH ("/sys/fs/cgroup/unified" + "/a/b"); NULL for a
 * relative PATH or one with a ".." component, or on ENOMEM. */
char *cgroup_join(const char *mount, const char *path);

/* "generation-G" and "generation-G/worker-ID", relative to the unit's cgroup. */
char *cgroup_generation_name(uint64_t generation);
char *cgroup_worker_name(uint64_t generation, uint64_t worker_id);

/* What to write to cgroup.subtree_control so that the children get whichever of memory,
 * cpu and pids CONTROLLERS (the text of cgroup.controllers) offers: "+memory +cpu", or ""
 * when it offers none of them. Fills BUF of SIZE; -ENOBUFS when it does not fit. */
int cgroup_subtree_request(const char *controllers, char *buf, size_t size);

/* The "populated" field of a cgroup.events text: 1, 0, or -EINVAL when it has none. */
int cgroup_events_populated(const char *text);
