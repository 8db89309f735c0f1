#!/usr/bin/env python3
"""New code that fails is rolled back by itself while the old code keeps serving."""

import os

import lib
from test_upgrade import notify_config


class Rollback(lib.TestCase):
    def setup_web(self, **conf):
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v0 = lib.make_target(os.path.join(self.dir, "z"), "v0")
        # Deployed as liveswap would have left it, so that a failure can be seen to keep it.
        self.head = lib.default_head(self, "web")
        lib.deploy_head(self.head, self.v1, self.v0)
        conf = notify_config(self, **conf)
        self.sup = self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(self.port), "-f", "4")
        self.head_before = lib.head_files(self.head)
        self.old_workers = sorted(w[0] for w in self.sup.get_property("web", "Workers"))
        self.load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")
        lib.wait_load(self.port, 4)  # the 4 kept-alive clients are connected
        return self.sup

    def assert_nothing_left(self, name, result, generation=2):
        """Every worker GENERATION ever had is gone (their pids from the log: one that
        died at once never shows in Workers), HEAD and PREVIOUS are untouched, and the
        old generation serves from the workers it had plus any that replaced a drained one."""
        sup = self.sup
        new = lib.started_workers(sup, generation)
        self.assertGreater(len(new), 0, sup.output())
        # Within the drain timeout (10 s) and a margin: a new worker is stopped by drain.
        self.assert_pids_gone(new, timeout=15)
        workers = sup.get_property("web", "Workers")
        self.assertEqual(sorted(set(w[1] for w in workers)), [1], workers)
        self.assertFalse(set(new) & {w[0] for w in workers}, workers)
        self.assertEqual(lib.head_files(self.head), self.head_before, "HEAD or PREVIOUS was rewritten")
        self.assertEqual(sup.get_property("web", "PreviousTarget"), os.path.realpath(self.v0))
        print("%s: %s requests, %s failed, %d new workers all gone, HEAD intact" % (
            name, result["requests"], result["failed"], len(new)))

    def assert_rolled_back(self, bad, reason):
        sup = self.sup
        p = sup.client("-i", "web", "-u", bad)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, reason)
        sup.wait_status(r"Upgrade to generation 2 failed: .*; serving generation 1 .*4/4 ready")
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(sup.get_property("web", "Target"), os.path.realpath(self.v1))
        self.assertRegex(sup.get_property("web", "LastResult"), "^failed: worker .*" + reason)
        result = self.load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result)), ["v1"], result["_raw"])
        # Nothing of the failed generation is left running; the old workers never stopped.
        self.assert_nothing_left(self._testMethodName[len("test_"):].replace("_", " "), result)
        self.assertEqual(sorted(w[0] for w in sup.get_property("web", "Workers")), self.old_workers)

    def test_exits_at_once(self):
        self.setup_web()
        bad = lib.make_target(os.path.join(self.dir, "bad"), "v2", "--crash-at-start")
        self.assert_rolled_back(bad, r"exited with status 1 before it was ready")

    def test_never_ready(self):
        """New code stuck in its start-up (never accepting, never sending READY=1)."""
        self.setup_web(ready_timeout="1500ms")
        bad = lib.make_target(os.path.join(self.dir, "bad"), "v2", "--no-ready", "--delay-start", "600000")
        self.assert_rolled_back(bad, r"not ready within 1500 ms")

    def test_crashes_after_ready(self):
        """Batch 1: the first new worker becomes ready, serves, then crashes before the
        upgrade is over; old workers already drained are replaced from the old code."""
        self.setup_web()
        # Slot 0 crashes 300 ms after it is ready; the others take 3 s to start, so the
        # crash falls inside the upgrade whatever the machine's speed.
        bad = lib.write_file(os.path.join(self.dir, "bad"), """#!/bin/sh
if [ "$LIVESWAP_WORKER" = 0 ]; then exec '%s' --version v2 --crash-after 300; fi
exec '%s' --version v2 --delay-start 3000
""" % (lib.HTTPD, lib.HTTPD), 0o755)
        p = self.sup.client("-i", "web", "-u", bad)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("exited with status 1", p.stderr)
        self.sup.wait_status(r"^Upgrade to generation 2 failed: .*exited with status 1; "
                             r"serving generation 1 .*4/4 ready$")
        result = self.load.stop()
        self.assertEqual(self.sup.get_property("web", "Generation"), 1)
        self.assertEqual(self.sup.get_property("web", "Target"), os.path.realpath(self.v1))
        # Not 0: the new worker _exit()s in the middle of serving (--crash-after), and a
        # request it had read but not answered dies with it, an application crash no
        # supervisor can hide (the listening socket and its accept queue survive; only
        # what that one process held is lost). Each client has one request in flight at a
        # time, so at most one per client: 8.
        self.assertLessEqual(int(result["failed"]), 8, result["_raw"])
        self.assertGreater(int(result["ok"]), 0, result["_raw"])
        self.assertIn("v1", lib.versions(result), result["_raw"])
        self.assert_nothing_left("crashes after ready", result)

    def test_rollback_method_returns_to_previous(self):
        self.setup_web()
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        self.sup.client("-i", "web", "-u", v2, check=0)
        p = self.sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor",
                            "Rollback")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "t 3")
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        result = self.load.stop()
        self.assert_no_failures(result, self.sup)
        # A rollback is an upgrade: generation 2 drained away, HEAD back to v1.
        self.sup.wait_status(r"^Serving generation 3 .*4/4 ready$")
        self.assert_pids_gone(lib.started_workers(self.sup, 2), timeout=15)
        files = lib.head_files(self.head)
        self.assertEqual((files["HEAD"][0], files["PREVIOUS"][0]),
                         (os.path.realpath(self.v1) + "\n", os.path.realpath(v2) + "\n"))
        print("rollback method: %s requests, %s failed" % (result["requests"], result["failed"]))


if __name__ == "__main__":
    lib.main()
