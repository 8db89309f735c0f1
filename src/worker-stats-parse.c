/* worker-stats-parse.c: the pure parsers of worker-stats-parse.h: the cgroup v2 files
 * memory.current and cpu.stat. No I/O. (/proc/PID/stat is proc-stat.h's.) */
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
