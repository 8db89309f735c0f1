/* proc-stat.c: the parser of proc-stat.h. No syscalls, no allocation. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>

#include "decimal.h"
#include "proc-stat.h"

/* The signed fields that liveswap does not use (tty_nr, tpgid, priority, nice,
 * itrealvalue): their sign is skipped. A negative time, start or RSS is refused. */
static bool signed_unused(int n) {
        return n == 7 || n == 8 || n == 18 || n == 19 || n == 21;
}

int proc_stat_parse(const char *text, size_t len, struct proc_stat *ret) {
        const char *limit = text + len, *p, *end;
        struct proc_stat s = {};
        uint64_t v;

        if (parse_decimal_pid(text, limit, &s.pid, &end) < 0 || end + 1 >= limit || end[0] != ' ' || end[1] != '(')
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
                int r = n == 5   ? parse_decimal_pid(p, limit, &s.pgrp, &end)
                        : n == 6 ? parse_decimal_pid(p, limit, &s.session, &end)
                                 : parse_decimal(p, limit, &v, &end);
                if (r < 0)
                        return -EINVAL;
                switch (n) {
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
