/* fd-budget.c: the open-file limit's arithmetic (fd-budget.h). No syscalls. */
#include "fd-budget.h"

unsigned fd_budget_max_workers(uint64_t limit, unsigned fixed) {
        uint64_t reserved = (uint64_t) fixed + FD_BUDGET_SPARE;
        if (limit <= reserved)
                return 0;
        uint64_t n = (limit - reserved) / FD_BUDGET_PER_WORKER;
        return n > UINT32_MAX ? UINT32_MAX : (unsigned) n;
}

static unsigned add(unsigned a, unsigned b) {
        return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

unsigned fd_budget_upgrade_peak(enum strategy strategy, unsigned alive, unsigned current, unsigned new_workers) {
        if (strategy != STRATEGY_RESTART)
                return add(alive, new_workers);
        unsigned others = alive > current ? alive - current : 0; /* older generations still draining */
        unsigned after = add(others, new_workers);
        return after > alive ? after : alive;
}

unsigned fd_budget_scale_peak(unsigned alive, unsigned active, unsigned count) {
        return count > active ? add(alive, count - active) : alive;
}
