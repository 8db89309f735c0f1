/* adopt-idle.h: the drain's question for each connection the app accepted (adopt.c step
 * 3): has it sat idle long enough to be closed? Pure, so that the unit tests
 * (tests/unit/test-adopt-idle.c) run it under the sanitizers. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The times of one connection, CLOCK_MONOTONIC nanoseconds; 0: never. */
struct adopt_conn_times {
        uint64_t accepted; /* when the app accepted it */
        uint64_t in, out; /* when the app last read from it and last wrote to it */
};

/* True when a connection with no unread input has been idle for the grace period at NOW:
 * no request read and not yet answered (a read after the last write), and GRACE since the
 * later of START (the drain began) and its last write; for one that has seen neither,
 * NEW_GRACE since the later of START and its acceptance. NOW may be older than the
 * connection's times (the app goes on while the drain looks): such a connection was busy
 * after NOW, and is not idle. */
bool adopt_conn_idle(const struct adopt_conn_times *t, uint64_t now, uint64_t start, uint64_t grace,
                     uint64_t new_grace);
