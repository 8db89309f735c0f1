/* human.c: figures for people (human.h). No I/O. */
#include <inttypes.h>
#include <stdio.h>

#include "human.h"
#include "macro.h"

void human_bytes(uint64_t bytes, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return;
        }
        /* In tenths of the unit, computed from the remainder so that nothing overflows. */
        size_t u = 0;
        uint64_t whole = bytes / 1024, rest = bytes % 1024;
        while (whole >= 1024 && u + 1 < ELEMENTSOF(units)) {
                rest = whole % 1024;
                whole /= 1024;
                u++;
        }
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 " %s", whole, rest * 10 / 1024, units[u]);
}

void human_span(uint64_t usec, char *buf, size_t size) {
        uint64_t s = usec / USEC_PER_SEC;
        if (s >= 86400)
                snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h", s / 86400, s % 86400 / 3600);
        else if (s >= 3600)
                snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "min", s / 3600, s % 3600 / 60);
        else if (s >= 60)
                snprintf(buf, size, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRIu64 "s", s);
}

void human_cpu_time(uint64_t usec, char *buf, size_t size) {
        if (usec >= 60 * USEC_PER_SEC) {
                human_span(usec, buf, size);
                return;
        }
        uint64_t hundredths = usec / (USEC_PER_SEC / 100);
        snprintf(buf, size, "%" PRIu64 ".%02" PRIu64 "s", hundredths / 100, hundredths % 100);
}
