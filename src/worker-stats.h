/* worker-stats.h: what a worker costs: its memory and CPU time, read from its cgroup when
 * it has one (memory.current, cpu.stat), else summed over the processes of its process
 * group from /proc. The parsers (worker-stats-parse.h) are pure; worker_stats_collect() reads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "worker-stats-parse.h"

struct worker_stats {
        bool has_memory;
        uint64_t memory_bytes; /* cgroup: memory.current; /proc: the sum of RSS */
        bool has_cpu;
        uint64_t cpu_usec; /* user + system time, including reaped children */
        unsigned processes; /* seen in its group; 0 from a cgroup without a /proc scan */
};

/* One worker to measure: its process group (the worker leads it) and its cgroup
 * directory (NULL without delegation). */
struct worker_stats_query {
        pid_t pgid;
        const char *cgroup_path;
};

/* Fills RET[i] for each of the N queries, with one pass over /proc for all the workers
 * that have no cgroup (a pass costs about as much for one worker as for a thousand).
 * Figures that cannot be read are left out (has_* false); never fails but for -ENOMEM. */
int worker_stats_collect(const struct worker_stats_query *queries, size_t n, struct worker_stats *ret);
