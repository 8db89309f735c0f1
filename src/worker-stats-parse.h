/* worker-stats-parse.h: the pure parsers behind a worker's figures (worker-stats.h): one
 * /proc/PID/stat line, and the cgroup v2 files memory.current and cpu.stat. No I/O. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

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
