#!/usr/bin/env python3
"""Many workers on one listener (liveswap(8), WORKERS WITH MANY SIBLINGS): the example
worker watches it with EPOLLEXCLUSIVE, so a connection wakes one worker rather than all
of them, and its drain (unwatch, then accept until EAGAIN) loses no connection."""

import os
import re
import subprocess

import lib
from test_upgrade import notify_config


def exit_events(path):
    """Sums the counters of the workers' "exit" events in the shared --log file."""
    totals = {"workers": 0, "drain_accepts": 0}
    with open(path) as f:
        for line in f:
            m = re.match(r"exit drain_accepts=(\d+)$", line.strip())
            if m:
                totals["workers"] += 1
                totals["drain_accepts"] += int(m.group(1))
    return totals


def context_switches(pid):
    with open("/proc/%d/status" % pid) as f:
        return sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches:"))


def run_load(port, clients, mode, seconds):
    """loadgen for SECONDS (bounded by its own --duration), returning its report."""
    p = subprocess.run([lib.LOADGEN, "--target", "127.0.0.1:%d" % port, "--clients", str(clients), "--mode", mode,
                        "--duration", str(seconds)], capture_output=True, text=True, timeout=seconds + 60)
    result = dict(line.partition("=")[::2] for line in p.stdout.splitlines())
    result["_raw"] = p.stdout + p.stderr
    return result


class Herd(lib.TestCase):
    def test_one_wakeup_per_connection(self):
        # 32 workers, 4 clients opening a new connection per request: most workers sit idle
        # in epoll_wait. Without EPOLLEXCLUSIVE every connection wakes each idle one, which
        # finds it taken and sleeps again (measured: 32 voluntary context switches of the
        # workers per connection); with it one worker wakes (measured: 1.5).
        port = lib.free_port()
        log = os.path.join(self.dir, "events.log")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1", "--log", log)
        sup = self.start("--instance", "herd", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f",
                         "32")
        workers = [w[0] for w in sup.get_property("herd", "Workers")]
        before = sum(context_switches(pid) for pid in workers)
        result = run_load(port, 4, "close", 3)
        switches = sum(context_switches(pid) for pid in workers) - before
        self.assert_no_failures(result, sup)
        requests = int(result["requests"])
        sup.client("-i", "herd", "-d", check=0)
        self.assertEqual(sup.proc.wait(60), 0, sup.output())
        totals = exit_events(log)
        self.assertEqual(totals["workers"], 32, totals)
        print("%d connections, %.2f context switches of the workers per connection" % (requests, switches / requests))
        self.assertLess(switches / requests, 8.0)

    def test_drain_under_load_loses_nothing(self):
        # 16 workers, 16 clients (half kept alive, half a new connection per request),
        # five rolling upgrades of 4 workers a batch: every drain happens while
        # connections arrive, and not one request fails.
        port = lib.free_port()
        log = os.path.join(self.dir, "events.log")
        targets = [lib.make_target(os.path.join(self.dir, "t%d" % i), "v%d" % i, "--log", log) for i in range(6)]
        sup = self.start("--instance", "herd", "--config", notify_config(self, stable_time="0", batch="4"), "-s", targets[0],
                         "-p", str(port), "-f", "16")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=16, mode="mixed")
        lib.wait_load(port, 8)
        for t in targets[1:]:
            sup.client("-i", "herd", "-u", t, check=0)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result))[-1], "v5", result["_raw"])
        sup.client("-i", "herd", "-d", check=0)
        self.assertEqual(sup.proc.wait(60), 0, sup.output())
        totals = exit_events(log)
        self.assertEqual(totals["workers"], 16 * 6, totals)
        print("%d connections taken while draining" % totals["drain_accepts"])


if __name__ == "__main__":
    lib.main()
