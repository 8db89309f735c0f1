/* proc-stat.h: one parser of /proc/PID/stat for everything that reads it (leftovers of a
 * previous run, a worker's memory and CPU figures). Pure: the caller reads the file. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The fields liveswap uses, numbered as in proc(5). */
struct proc_stat {
        pid_t pid; /* 1 */
        char state; /* 3: 'Z' (zombie) and 'X' (dead) are gone already */
        pid_t pgrp; /* 5 */
        pid_t session; /* 6 */
        uint64_t utime_ticks; /* 14 */
        uint64_t stime_ticks; /* 15 */
        uint64_t cutime_ticks; /* 16: reaped children's user time */
        uint64_t cstime_ticks; /* 17 */
        uint64_t start_time; /* 22: clock ticks after boot */
        uint64_t rss_pages; /* 24 */
};

/* Parses the first LEN bytes of TEXT (no NUL needed). The command name is in parentheses
 * and may itself hold spaces and ')', so the fields are counted from its last ')'.
 * 0, or -EINVAL for anything else than a stat line of a user process (a kernel thread,
 * with process group and session 0, is refused too). */
int proc_stat_parse(const char *text, size_t len, struct proc_stat *ret);
