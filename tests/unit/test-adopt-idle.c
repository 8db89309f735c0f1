/* test-adopt-idle.c: when the adopt library's drain closes a connection as idle
 * (adopt-idle.c). */
#include <criterion/criterion.h>

#include "adopt/adopt-idle.h"

#define MS 1000000ull
#define GRACE (1000 * MS)
#define NEW_GRACE (5000 * MS)
#define START (100000 * MS)

static bool idle(uint64_t accepted, uint64_t in, uint64_t out, uint64_t now) {
        struct adopt_conn_times t = { .accepted = accepted, .in = in, .out = out };
        return adopt_conn_idle(&t, now, START, GRACE, NEW_GRACE);
}

Test(adopt_idle, grace_counts_from_the_later_of_drain_start_and_last_write) {
        /* Answered before the drain: idle GRACE after the drain began. */
        cr_assert_not(idle(1, 2, 3, START + GRACE - 1));
        cr_assert(idle(1, 2, 3, START + GRACE));
        /* Answered during the drain: GRACE after that answer. */
        cr_assert_not(idle(1, 2, START + 500 * MS, START + GRACE));
        cr_assert(idle(1, 2, START + 500 * MS, START + 500 * MS + GRACE));
}

Test(adopt_idle, a_request_read_and_not_answered_is_never_idle) {
        cr_assert_not(idle(1, 5, 4, START + 3600 * 1000 * MS));
}

Test(adopt_idle, a_connection_without_a_first_request_gets_the_longer_grace) {
        cr_assert_not(idle(START - 10 * MS, 0, 0, START + GRACE));
        cr_assert_not(idle(START - 10 * MS, 0, 0, START + NEW_GRACE - 1));
        cr_assert(idle(START - 10 * MS, 0, 0, START + NEW_GRACE));
        /* Accepted during the drain: from its acceptance. */
        cr_assert_not(idle(START + 200 * MS, 0, 0, START + NEW_GRACE));
        cr_assert(idle(START + 200 * MS, 0, 0, START + 200 * MS + NEW_GRACE));
}

/* The drain reads the clock, then each connection's times: the app may write (or accept)
 * in between. A response head written then was shut down behind its body when NOW - OUT
 * wrapped around (python3 -m http.server under load: 1 request in ~10,000 read EOF). */
Test(adopt_idle, times_later_than_now_are_busy_not_idle) {
        uint64_t now = START + 3000 * MS;
        cr_assert_not(idle(1, now - 20, now + 5, now)); /* the head written after NOW */
        cr_assert_not(idle(now + 1, 0, 0, now)); /* accepted after NOW */
        cr_assert_not(idle(1, 2, 3, START - 1)); /* NOW before the drain began */
}
