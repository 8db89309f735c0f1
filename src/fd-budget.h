/* fd-budget.h: how many workers the open-file limit (RLIMIT_NOFILE) allows, and how many
 * are alive at once at the peak of a start, an upgrade or a scale. Pure arithmetic: the
 * shell reads and raises the limit and counts its own fds (supervisor.c, liveswap.c), so
 * that a workers= or SetWorkers that cannot fit is refused before anything starts,
 * instead of failing with EMFILE halfway through. */
#pragma once

#include <stdint.h>

#include "config.h"

/* What each live worker holds open in the supervisor until it is reaped: the control
 * socket and the pidfd of its child watch (measured: 2 per worker, nothing else; its
 * journal stream is the worker's own). Before it runs, the two ends of its socketpair
 * stand in for them: a run of prepared spawns (spawn.h) needs no more than its workers
 * will hold, and opens its cgroup directory only for the clone. */
#define FD_BUDGET_PER_WORKER 2U
/* Room kept for what comes and goes: a run of spawns' report pipe, private bus
 * clients, the pre-upgrade hook's pipes, HEAD writes and /proc or cgroup reads. */
#define FD_BUDGET_SPARE 64U

/* The most workers that may be alive at once under LIMIT (the soft RLIMIT_NOFILE) when
 * FIXED fds are open besides theirs. 0 when not even one fits. */
unsigned fd_budget_max_workers(uint64_t limit, unsigned fixed);

/* Workers alive at the peak of an upgrade to NEW workers with STRATEGY, starting from
 * ALIVE workers of which CURRENT belong to the current generation (draining or not).
 * Rolling and blue-green count every old worker as still there when the last new one
 * starts: a drained worker keeps its fds until it exits, which drain_timeout allows to
 * take as long as the whole upgrade. Restart starts the new ones only once the current
 * generation is gone. */
unsigned fd_budget_upgrade_peak(enum strategy strategy, unsigned alive, unsigned current, unsigned new_workers);

/* Workers alive at the peak of scaling to COUNT, from ALIVE workers of which ACTIVE
 * serve (or start to): scaling up adds the difference; scaling down adds none. */
unsigned fd_budget_scale_peak(unsigned alive, unsigned active, unsigned count);
