/* test-fd-budget.c: the open-file limit's arithmetic (src/fd-budget.c). */
#include <criterion/criterion.h>

#include "fd-budget.h"

Test(fd_budget, max_workers) {
        /* 1024 - 20 fixed - 64 spare = 940 fds: 470 workers at 2 each. */
        cr_assert_eq(fd_budget_max_workers(1024, 20), 470);
        cr_assert_eq(fd_budget_max_workers(1025, 20), 470);
        cr_assert_eq(fd_budget_max_workers(128, 12), 26);
        /* Nothing left for even one: 0, never an underflow. */
        cr_assert_eq(fd_budget_max_workers(64, 12), 0);
        cr_assert_eq(fd_budget_max_workers(10, 100), 0);
        cr_assert_eq(fd_budget_max_workers(12 + FD_BUDGET_SPARE + 1, 12), 0);
        cr_assert_eq(fd_budget_max_workers(12 + FD_BUDGET_SPARE + 2, 12), 1);
        /* A huge hard limit (RLIM_INFINITY) saturates. */
        cr_assert_eq(fd_budget_max_workers(UINT64_MAX, 20), UINT32_MAX);
}

Test(fd_budget, upgrade_peak) {
        /* Blue-green and rolling: every old worker may still hold its fds when the last
         * new one starts (a drained worker keeps them until it exits). */
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_BLUE_GREEN, 256, 256, 256), 512);
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_ROLLING, 256, 256, 256), 512);
        /* Workers of an older generation still draining count too. */
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_BLUE_GREEN, 300, 256, 100), 400);
        /* Restart: the current generation is gone before the new one starts. */
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_RESTART, 256, 256, 256), 256);
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_RESTART, 300, 256, 100), 300);
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_RESTART, 300, 256, 500), 544);
        cr_assert_eq(fd_budget_upgrade_peak(STRATEGY_BLUE_GREEN, UINT32_MAX, 1, 5), UINT32_MAX);
}

Test(fd_budget, scale_peak) {
        cr_assert_eq(fd_budget_scale_peak(4, 4, 30), 30);
        /* Draining workers hold their fds while the new ones start. */
        cr_assert_eq(fd_budget_scale_peak(10, 4, 30), 36);
        /* Scaling down adds nobody. */
        cr_assert_eq(fd_budget_scale_peak(10, 8, 2), 10);
}
