/* test-worker-stats.c: the parsers behind a worker's memory and CPU figures (/proc/PID/stat
 * lines, cgroup v2 memory.current and cpu.stat), and one real collection: this test's own
 * process group, read from /proc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker-stats.h"

#define STAT_TAIL " 0 -1 4194304 100 0 0 0 7 3 5 2 20 0 1 0 1131537 3133440 408 18446744073709551615 0 0"

Test(proc_stat, fields) {
        struct proc_stat_fields f;
        cr_assert_eq(proc_stat_parse("24945 (cat) R 24942 24940 21279" STAT_TAIL "\n", &f), 0);
        cr_assert_eq(f.pgrp, 24940);
        cr_assert_eq(f.utime_ticks, 7);
        cr_assert_eq(f.stime_ticks, 3);
        cr_assert_eq(f.cutime_ticks, 5);
        cr_assert_eq(f.cstime_ticks, 2);
        cr_assert_eq(f.rss_pages, 408);
}

Test(proc_stat, command_with_spaces_and_parentheses) {
        /* A program can name itself anything: the fields start after the last ')'. */
        struct proc_stat_fields f;
        cr_assert_eq(proc_stat_parse("7 (a) b (c) 9 9) S 1 42 1" STAT_TAIL, &f), 0);
        cr_assert_eq(f.pgrp, 42);
        cr_assert_eq(f.rss_pages, 408);
}

Test(proc_stat, refuses_what_is_not_a_stat_line) {
        struct proc_stat_fields f;
        cr_assert_eq(proc_stat_parse("", &f), -EINVAL);
        cr_assert_eq(proc_stat_parse("12 (x)", &f), -EINVAL);
        cr_assert_eq(proc_stat_parse("12 (x) S 1 0 1" STAT_TAIL, &f), -EINVAL, "process group 0");
        cr_assert_eq(proc_stat_parse("12 (x) S 1 -3 1" STAT_TAIL, &f), -EINVAL);
        cr_assert_eq(proc_stat_parse("12 (x) S 1 5 1 0 -1 4194304 100 0 0 0 x 3", &f), -EINVAL);
        cr_assert_eq(proc_stat_parse("12 (x) S 1 5 1 0 -1 4194304 100 0 0 0 7 3 5", &f), -EINVAL, "cut short");
}

Test(cgroup_files, cpu_stat) {
        uint64_t v = 0;
        cr_assert_eq(cgroup_cpu_stat_parse("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n", &v), 0);
        cr_assert_eq(v, 123456);
        cr_assert_eq(cgroup_cpu_stat_parse("user_usec 1\nusage_usec 9", &v), 0);
        cr_assert_eq(v, 9);
        cr_assert_eq(cgroup_cpu_stat_parse("user_usec 1\n", &v), -ENOENT);
        cr_assert_eq(cgroup_cpu_stat_parse("usage_usec x\n", &v), -EINVAL);
        cr_assert_eq(cgroup_cpu_stat_parse("usage_usec 12 13\n", &v), -EINVAL);
}

Test(cgroup_files, memory_current) {
        uint64_t v = 0;
        cr_assert_eq(cgroup_memory_current_parse("8192\n", &v), 0);
        cr_assert_eq(v, 8192);
        cr_assert_eq(cgroup_memory_current_parse("max\n", &v), -EINVAL);
        cr_assert_eq(cgroup_memory_current_parse("", &v), -EINVAL);
        cr_assert_eq(cgroup_memory_current_parse("-1\n", &v), -EINVAL);
}

Test(collect, own_process_group_from_proc) {
        /* Touch memory so that the RSS is clearly above zero. */
        size_t size = 4 << 20;
        char *block = malloc(size);
        cr_assert_not_null(block);
        memset(block, 1, size);
        struct worker_stats_query q[2] = { { .pgid = getpgrp() }, { .pgid = 0x7ffffff0 } };
        struct worker_stats s[2];
        cr_assert_eq(worker_stats_collect(q, 2, s), 0);
        cr_assert(s[0].has_memory);
        cr_assert_geq(s[0].memory_bytes, size);
        cr_assert(s[0].has_cpu);
        cr_assert_geq(s[0].processes, 1);
        cr_assert_not(s[1].has_memory, "a group with no process has no figures");
        cr_assert_eq(s[1].processes, 0);
        free(block);
}
