/* decimal.h: a decimal number read from a text that need not end in NUL (a /proc file,
 * a record, a file name): no sign, no spaces, no overflow. For the pure parsers. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

/* The digits from P up to LIMIT into RET; END is where they stop. -EINVAL when there is
 * no digit, -ERANGE on overflow. */
static inline int parse_decimal(const char *p, const char *limit, uint64_t *ret, const char **end) {
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

/* A process id: as parse_decimal(), and -ERANGE for 0 or one above INT32_MAX. */
static inline int parse_decimal_pid(const char *p, const char *limit, pid_t *ret, const char **end) {
        uint64_t v;
        int r = parse_decimal(p, limit, &v, end);
        if (r < 0)
                return r;
        if (v == 0 || v > INT32_MAX)
                return -ERANGE;
        *ret = (pid_t) v;
        return 0;
}
