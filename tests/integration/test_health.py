#!/usr/bin/env python3
"""Worker health: the per-worker watchdog and memory_max, with the real supervisor and the
example server (which sends WATCHDOG=1 from its loop when WATCHDOG_USEC asks for it).
A stopped worker is found and replaced, a release that stops pinging is rolled back, and
a leaking worker is replaced under load without a failed request."""

import os
import re
import signal
import time

import lib

HEALTH_KEYS = ("watchdog", "memory_max")


def health_config(test, **keys):
    """ready = notify (the example server sends READY=1), with the [worker] health keys."""
    upgrade = {"ready": "notify", "ready_timeout": "10s", "drain_timeout": "10s"}
    upgrade.update((k, v) for k, v in keys.items() if k not in HEALTH_KEYS)
    body = "[worker]\n" + "".join("%s = %s\n" % (k, v) for k, v in keys.items() if k in HEALTH_KEYS)
    body += "[upgrade]\n" + "".join("%s = %s\n" % kv for kv in upgrade.items())
    return lib.write_file(os.path.join(test.dir, "liveswap-%d.conf" % len(test.supervisors)), body)


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item)


def worker_pids(sup, instance="web"):
    return sorted(w[0] for w in sup.get_property(instance, "Workers"))


class Health(lib.TestCase):
    def start_web(self, target=None, workers=2, **conf):
        self.port = lib.free_port()
        self.v1 = target or lib.make_target(os.path.join(self.dir, "a"), "v1")
        return self.start("--instance", "web", "--config", health_config(self, **conf), "-s", self.v1,
                          "-p", str(self.port), "-f", str(workers))

    def test_watchdog_environment(self):
        """WATCHDOG_USEC and WATCHDOG_PID as systemd sets them: the worker's own pid, so
        that sd_watchdog_enabled() in the worker says yes; none without a watchdog, even
        when the supervisor has its own."""
        sup = self.start_web(watchdog="2s")
        for pid in worker_pids(sup):
            env = environ(pid)
            self.assertEqual(env.get("WATCHDOG_USEC"), "2000000", env)
            self.assertEqual(env.get("WATCHDOG_PID"), str(pid), env)
        sup.stop()

        # The supervisor's own watchdog variables (another pid's) never reach a worker.
        sup = self.start("--instance", "plain", "--config", health_config(self), "-s", self.v1, "-p",
                         str(lib.free_port()), "-f", "1", env={"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"})
        env = environ(worker_pids(sup, "plain")[0])
        self.assertNotIn("WATCHDOG_USEC", env)
        self.assertNotIn("WATCHDOG_PID", env)

    def test_stopped_worker_is_replaced(self):
        """A worker that pings and is then SIGSTOPped misses its 2 s watchdog: SIGABRT (and
        SIGCONT, without which a stopped process does not die), and a new worker in its
        slot, within 8 s."""
        sup = self.start_web(watchdog="2s")
        before = worker_pids(sup)
        # The pings work: the other worker outlives its first deadline (checked below).
        sup.wait_status(r"^Serving generation 1 .*: 2/2 ready$")
        victim = before[0]
        stopped_at = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        sup.wait_status(r"watchdog timeout: worker %d \(slot \d\) killed" % victim, timeout=8)
        self.assert_pids_gone([victim], timeout=max(0.1, 8 - (time.monotonic() - stopped_at)))
        sup.wait_status(r"^Serving generation 1 .*: 2/2 ready$", timeout=max(0.1, 8 - (time.monotonic() - stopped_at)))
        took = time.monotonic() - stopped_at
        self.assertLess(took, 8.0)
        self.assertGreater(took, 1.0, "found before its watchdog could expire: this tests nothing")
        after = worker_pids(sup)
        self.assertNotIn(victim, after)
        self.assertIn(before[1], after, "the other worker, which pings, is untouched")
        out = sup.output()
        self.assertRegex(out, r"Aborting worker %d \(ABRT\): watchdog timeout: worker %d \(generation 1, slot \d\) "
                              r"sent no WATCHDOG=1 for 2s" % (victim, victim))
        self.assertIn("Worker %d (generation 1, slot" % victim, out)
        self.assertRegex(out, r"Worker %d \(generation 1, slot \d\) was killed by signal ABRT" % victim)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        print("stopped worker gone and replaced %.2fs after SIGSTOP" % took)

    def test_release_that_stops_pinging_fails_upgrade(self):
        """A new release that never sends WATCHDOG=1: its canary misses the watchdog while
        the old workers serve, and the upgrade is rolled back with that reason."""
        sup = self.start_web(watchdog="2s", stable_time="5s")
        old = worker_pids(sup)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2", "--no-watchdog")
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=4, mode="mixed")
        lib.wait_load(self.port, 2)
        p = sup.client("-i", "web", "-u", v2)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r"upgrade to generation 2 failed, still serving generation 1: watchdog timeout: "
                                   r"worker \d+ \(generation 2, slot 0\) sent no WATCHDOG=1 for 2s")
        sup.wait_status(r"^Upgrade to generation 2 failed: watchdog timeout: worker \d+ \(generation 2, slot 0\) "
                        r"sent no WATCHDOG=1 for 2s; serving generation 1 .*2/2 ready$")
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(worker_pids(sup), old, "the old workers kept serving")
        result = load.stop()
        # SIGABRT is the contract (a missed watchdog means hung): the one new worker dies
        # with whatever it was serving at that instant, as under systemd. Here it is not
        # really hung, so a request it had in hand (one per client at most) is reset or
        # cut off; nothing else may fail.
        lost = int(result["reset"]) + int(result["eof"])
        self.assertEqual(int(result["failed"]), lost, "%s\n%s" % (result["_raw"], sup.output()))
        self.assertLessEqual(lost, 4, result["_raw"])
        self.assertGreater(int(result["ok"]), 0, result["_raw"])
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")

    def test_leaking_worker_replaced_without_failed_requests(self):
        """Each request leaks 64 KiB in slot 0's worker; past memory_max (64M) a new worker
        for the slot starts, becomes ready, and only then does the fat one drain. The load
        sees no failed request."""
        target = lib.write_file(os.path.join(self.dir, "leaky"), """#!/bin/sh
if [ "$LIVESWAP_WORKER" = 0 ]; then exec '%s' --version v1 --leak 65536; fi
exec '%s' --version v1
""" % (lib.HTTPD, lib.HTTPD), 0o755)
        sup = self.start_web(target=target, memory_max="64M")
        # Each client waits 10 ms per request: the leak grows by a few MiB a second,
        # bounded however fast the machine is.
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed", path="/sleep?ms=10")
        sup.wait_output("in place of worker", timeout=120)
        result = load.stop()
        self.assert_no_failures(result, sup)

        out = sup.output()
        m = re.search(r"memory_max exceeded: ([0-9.]+) MiB > 64 MiB, replacing worker (\d+) \(slot 0, "
                      r"replacement 1 within 300s\)", out)
        self.assertIsNotNone(m, out)
        fat = int(m.group(2))
        self.assertGreater(float(m.group(1)), 64)
        ready = re.search(r"memory_max: worker (\d+) is ready in place of worker %d, which drains now" % fat, out)
        self.assertIsNotNone(ready, out)
        fresh = int(ready.group(1))
        started_at = out.index("Worker %d (generation 1, slot 0) started" % fresh)
        ready_at = out.index("Worker %d (generation 1, slot 0) is ready" % fresh)
        drain_at = out.index("Draining worker %d (" % fat)
        self.assertLess(out.index(m.group(0)), started_at)
        self.assertLess(started_at, ready_at)
        self.assertLess(ready_at, drain_at, "the fat worker was signalled before its replacement was ready")
        self.assert_pids_gone([fat], timeout=30)
        print("replaced at %s MiB: %s requests, %s failed" % (m.group(1), result["requests"], result["failed"]))


if __name__ == "__main__":
    lib.main()
