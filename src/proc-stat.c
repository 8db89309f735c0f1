/* proc-stat.c: the parser of proc-stat.h. No syscalls, no allocation. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>

#include "proc-stat.h"

/* A decimal number without sign or overflow; END is where it stops. */
static int parse_u64(const char *p, const char *limit, uint64_t *ret, const char **end) {
        uint64_t v = 0;
        const char *start = p;
        for (; p < limit && *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        if (p == start)
                return -EINVAL;
        *ret = v;
        *end = p;
        return 0;
}

static int to_pid(uint64_t v, pid_t *ret) {
        if (v == 0 || v > INT32_MAX)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* The signed fields that liveswap does not use (tty_nr, tpgid, priority, nice,
 * itrealvalue): their sign is skipped. A negative time, start or RSS is refused. */
static bool signed_unused(int n) {
        return n == 7 || n == 8 || n == 18 || n == 19 || n == 21;
}

int proc_stat_parse(const char *text, size_t len, struct proc_stat *ret) {
        const char *limit = text + len, *p, *end;
        struct proc_stat s = {};
        uint64_t v;

        if (parse_u64(text, limit, &v, &end) < 0 || to_pid(v, &s.pid) < 0 || end + 1 >= limit || end[0] != ' ' ||
            end[1] != '(')
                return -EINVAL;
        const char *close = NULL;
        for (p = end + 2; p < limit; p++)
                if (*p == ')')
                        close = p;
        if (!close || close + 3 >= limit || close[1] != ' ' || close[3] != ' ')
                return -EINVAL;
        s.state = close[2];
        p = close + 4;
        for (int n = 4; n <= 24; n++) {
                if (p < limit && *p == '-' && signed_unused(n))
                        p++;
                if (parse_u64(p, limit, &v, &end) < 0)
                        return -EINVAL;
                switch (n) {
                case 5:
                        if (to_pid(v, &s.pgrp) < 0)
                                return -EINVAL;
                        break;
                case 6:
                        if (to_pid(v, &s.session) < 0)
                                return -EINVAL;
                        break;
                case 14:
                        s.utime_ticks = v;
                        break;
                case 15:
                        s.stime_ticks = v;
                        break;
                case 16:
                        s.cutime_ticks = v;
                        break;
                case 17:
                        s.cstime_ticks = v;
                        break;
                case 22:
                        s.start_time = v;
                        break;
                case 24:
                        s.rss_pages = v;
                        break;
                }
                p = end;
                /* Field 24 may end the text (a test's line) or go on to field 25. */
                if (n < 24 && (p >= limit || *p != ' '))
                        return -EINVAL;
                if (n < 24)
                        p++;
        }
        if (p < limit && *p != ' ' && *p != '\n')
                return -EINVAL;
        *ret = s;
        return 0;
}
