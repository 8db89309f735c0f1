/* test-worker-stats.c: the parsers behind a worker's memory and CPU figures (cgroup v2
 * memory.current and cpu.stat; /proc/PID/stat lines: test-proc-stat.c), and one real
 * collection: this test's own process group, read from /proc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker-stats.h"

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
