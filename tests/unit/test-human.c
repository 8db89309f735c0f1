/* test-human.c: the units liveswapctl status shows per worker. */
#include <criterion/criterion.h>

#include "human.h"
#include "macro.h"

#define CHECK(fn, value, expected)                                                                 \
        do {                                                                                       \
                char _buf[64];                                                                     \
                fn((value), _buf, sizeof(_buf));                                                   \
                cr_assert_str_eq(_buf, (expected), "%s(%llu)", #fn, (unsigned long long) (value)); \
        } while (0)

Test(human, bytes) {
        CHECK(human_bytes, 0, "0 B");
        CHECK(human_bytes, 1023, "1023 B");
        CHECK(human_bytes, 1024, "1.0 KiB");
        CHECK(human_bytes, 1536, "1.5 KiB");
        CHECK(human_bytes, 1024 * 1024 - 1, "1023.9 KiB"); /* cut, never rounded up to 1024.0 */
        CHECK(human_bytes, 1024 * 1024, "1.0 MiB");
        CHECK(human_bytes, 12897484, "12.2 MiB");
        CHECK(human_bytes, 64ULL << 20, "64.0 MiB");
        CHECK(human_bytes, 3ULL << 30, "3.0 GiB");
        CHECK(human_bytes, 5ULL << 40, "5.0 TiB");
        CHECK(human_bytes, UINT64_MAX, "15.9 EiB");
}

Test(human, span) {
        CHECK(human_span, 0, "0s");
        CHECK(human_span, 999999, "0s");
        CHECK(human_span, 59 * USEC_PER_SEC, "59s");
        CHECK(human_span, 80 * USEC_PER_SEC, "1min 20s");
        CHECK(human_span, 3600 * USEC_PER_SEC + 5 * 60 * USEC_PER_SEC, "1h 5min");
        CHECK(human_span, (3 * 86400 + 4 * 3600 + 59) * USEC_PER_SEC, "3d 4h");
}

Test(human, cpu_time) {
        CHECK(human_cpu_time, 0, "0.00s");
        CHECK(human_cpu_time, 9999, "0.00s");
        CHECK(human_cpu_time, 520000, "0.52s");
        CHECK(human_cpu_time, 12300000, "12.30s");
        CHECK(human_cpu_time, 60 * USEC_PER_SEC - 1, "59.99s"); /* never "60.00s" */
        CHECK(human_cpu_time, 60 * USEC_PER_SEC, "1min 0s");
        CHECK(human_cpu_time, 2 * 3600 * USEC_PER_SEC, "2h 0min");
}
