/* worker-stats-parse.c: the pure parsers of worker-stats-parse.h: /proc/PID/stat lines and the
 * cgroup v2 files memory.current and cpu.stat. No I/O. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "worker-stats-parse.h"

static int parse_u64(const char *s, char **end, uint64_t *ret) {
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, end, 10);
        if (errno != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int proc_stat_parse(const char *line, struct proc_stat_fields *ret) {
        /* "pid (comm) state ppid pgrp ...": fields are counted from state, which is 3. */
        const char *p = strrchr(line, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        struct proc_stat_fields f = { 0 };
        for (unsigned field = 3; field <= 24; field++) {
                if (*p == '\0')
                        return -EINVAL;
                const char *next = strchr(p, ' ');
                uint64_t v = 0;
                char *end = NULL;
                if (field == 3) {
                        /* the state: one letter */
                } else if (field == 5 || (field >= 14 && field <= 17) || field == 24) {
                        /* pgrp is an int; the times and rss never negative */
                        if (parse_u64(p, &end, &v) < 0 || (*end != ' ' && *end != '\0' && *end != '\n'))
                                return -EINVAL;
                        if (field == 5) {
                                if (v == 0 || v > INT32_MAX)
                                        return -EINVAL;
                                f.pgrp = (pid_t) v;
                        } else if (field == 14)
                                f.utime_ticks = v;
                        else if (field == 15)
                                f.stime_ticks = v;
                        else if (field == 16)
                                f.cutime_ticks = v;
                        else if (field == 17)
                                f.cstime_ticks = v;
                        else
                                f.rss_pages = v;
                }
                if (field == 24)
                        break;
                if (!next)
                        return -EINVAL;
                p = next + 1;
        }
        *ret = f;
        return 0;
}

int cgroup_cpu_stat_parse(const char *text, uint64_t *ret_usage_usec) {
        static const char key[] = "usage_usec ";
        for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, key, sizeof(key) - 1) != 0)
                        continue;
                char *end = NULL;
                uint64_t v;
                if (parse_u64(line + sizeof(key) - 1, &end, &v) < 0 || (*end != '\n' && *end != '\0'))
                        return -EINVAL;
                *ret_usage_usec = v;
                return 0;
        }
        return -ENOENT;
}

int cgroup_memory_current_parse(const char *text, uint64_t *ret_bytes) {
        char *end = NULL;
        uint64_t v;
        if (parse_u64(text, &end, &v) < 0 || (*end != '\n' && *end != '\0'))
                return -EINVAL;
        *ret_bytes = v;
        return 0;
}
