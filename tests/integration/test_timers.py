#!/usr/bin/env python3
"""Timer precision: the supervisor's deadlines (ready_delay, drain_timeout, back-off,
hook timeout) fire when they are due, not up to sd-event's default accuracy (250 ms)
later. A rolling upgrade with ready = delay is a chain of such deadlines, one per step,
so its duration measures their lateness."""

import os
import re

import lib

WORKERS = 8
# Longer than a spawn takes, even under the sanitizers on a slow machine (115 ms seen):
# the delay runs from the spawn's start, so a step takes READY_DELAY_MS plus the timer's
# lateness, whatever a fork/exec costs. With sd-event's default 250 ms accuracy a timer
# fires up to 250 ms late (about 125 ms a step on average over a chain of them); with
# liveswap's 1 ms, a few ms at most.
READY_DELAY_MS = 300
MAX_LATENESS_MS = 60


class TimerPrecision(lib.TestCase):
    def test_rolling_upgrade_with_ready_delay_takes_about_the_delay_per_step(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nstrategy = rolling\nbatch = 1\nready = delay\n"
                              "ready_delay = %dms\nstable_time = 0\ndrain_timeout = 10s\n" % READY_DELAY_MS)
        # stable_time = 0: the canary's 1 s wait before the first old worker drains is no
        # step's deadline.
        sup = self.start("--instance", "timers", "--config", conf, "-s", v1, "-p", str(port), "-f", str(WORKERS))
        sup.client("-i", "timers", "-u", v2, check=0)

        # Both ends are the supervisor's own notifications: RELOADING=1 carries the
        # CLOCK_MONOTONIC time the upgrade was accepted, and READY=1 ends it.
        start = sup.notify.wait_for(lambda m: "RELOADING=1" in m.split("\n"), what="RELOADING=1")
        started = int(re.search(r"^MONOTONIC_USEC=(\d+)$", start, re.M).group(1)) / 1e6
        sup.notify.wait_for(lambda m: "READY=1" in m.split("\n"), what="READY=1 at the end of the upgrade")
        with sup.notify.cond:
            finished = sup.notify.times[sup.notify.consumed - 1]
        per_step_ms = (finished - started) * 1000 / WORKERS
        print("rolling upgrade of %d workers, ready_delay %d ms: %.0f ms, %.1f ms per step"
              % (WORKERS, READY_DELAY_MS, (finished - started) * 1000, per_step_ms))
        self.assertGreaterEqual(per_step_ms, READY_DELAY_MS * 0.9)
        self.assertLess(per_step_ms, READY_DELAY_MS + MAX_LATENESS_MS,
                        "each step of the upgrade took %.0f ms for a %d ms ready_delay" % (per_step_ms,
                                                                                          READY_DELAY_MS))
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2].split()[0], "v2")
        self.assertEqual(sup.stop(), 0)


if __name__ == "__main__":
    lib.main()
