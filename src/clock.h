/* clock.h: the supervisor's one clock, CLOCK_MONOTONIC in microseconds, as sd-event's
 * timers use it. The engine never reads it: time comes in with every event. */
#pragma once

#include <stdint.h>
#include <time.h>

#include "macro.h"

static inline uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}
