/* worker-stats.h: what a worker costs: its memory and CPU time, read from its cgroup when
 * it has one (memory.current, cpu.stat), else summed over the processes of its process
 * group from /proc. The parsers are pure (unit-tested); worker_stats_collect() reads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* The fields of one /proc/PID/stat line that the figures need. The command name may hold
 * spaces and parentheses, so parsing starts after the last ')'. */
struct proc_stat_fields {
        pid_t pgrp;
        uint64_t utime_ticks, stime_ticks, cutime_ticks, cstime_ticks;
        uint64_t rss_pages;
};
/* 0, or -EINVAL for a line that is not a stat line. */
int proc_stat_parse(const char *line, struct proc_stat_fields *ret);
/* cpu.stat's usage_usec. 0, or -ENOENT when the key is missing, -EINVAL when malformed. */
int cgroup_cpu_stat_parse(const char *text, uint64_t *ret_usage_usec);
/* memory.current: one decimal number and a newline ("max" is never a current value). */
int cgroup_memory_current_parse(const char *text, uint64_t *ret_bytes);

/* Fills RET[i] for each of the N queries, with one pass over /proc for all the workers
 * that have no cgroup (a pass costs about as much for one worker as for a thousand).
 * Figures that cannot be read are left out (has_* false); never fails but for -ENOMEM. */
int worker_stats_collect(const struct worker_stats_query *queries, size_t n, struct worker_stats *ret);
