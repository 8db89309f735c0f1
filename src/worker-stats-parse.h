/* worker-stats-parse.h: the pure parsers behind a worker's figures (worker-stats.h): the
 * cgroup v2 files memory.current and cpu.stat (/proc/PID/stat lines: proc-stat.h). No I/O. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* cpu.stat's usage_usec. 0, or -ENOENT when the key is missing, -EINVAL when malformed. */
int cgroup_cpu_stat_parse(const char *text, uint64_t *ret_usage_usec);
/* memory.current: one decimal number and a newline ("max" is never a current value). */
int cgroup_memory_current_parse(const char *text, uint64_t *ret_bytes);
