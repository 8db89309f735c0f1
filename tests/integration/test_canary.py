#!/usr/bin/env python3
"""The canary (stable_time): a release that says READY=1 and dies a moment later is rolled
back before any old worker drains, under load, with nothing failed."""

import os

import lib
from test_upgrade import notify_config

# A release that serves and then dies 0.7 s after it started (and said READY=1): a
# sleeper left behind by the wrapper tells the example server to drain at 0.7 s, so that
# it answers what it already accepted (an abrupt _exit() would fail the requests in
# flight, which no supervisor can hide) and then exits (status 0) as soon as it is done.
# To the supervisor that is a ready worker of the new generation gone on its own.
DYING = """#!/bin/sh
(sleep 0.7; kill -TERM $$) &
exec '%s' --version v2 --idle-grace 100
"""


def arrival(sup, text):
    """When the first notify message containing TEXT arrived (time.monotonic())."""
    with sup.notify.cond:
        return next(t for t, m in zip(sup.notify.times, sup.notify.messages) if text in m)


class Canary(lib.TestCase):
    def start_web(self, **conf):
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        # stable_time is left at its default (1s): the default must catch this release.
        sup = self.start("--instance", "web", "--config", notify_config(self, **conf), "-s", self.v1,
                         "-p", str(self.port), "-f", "4")
        self.old_workers = sorted(w[0] for w in sup.get_property("web", "Workers"))
        self.load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")
        lib.wait_load(self.port, 4)
        return sup

    def test_release_dying_after_ready_is_rolled_back_under_load(self):
        sup = self.start_web()
        bad = lib.write_file(os.path.join(self.dir, "dying"), DYING % lib.HTTPD, 0o755)

        p = sup.client("-i", "web", "-u", bad)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r"upgrade to generation 2 failed, still serving generation 1: "
                                   r"worker \d+ \(generation 2\) exited with status 0")
        self.assertNotIn("before it was ready", p.stderr)

        # While the canary was ready, STATUS= said it waited; then the failure.
        waiting = sup.wait_status(r"^Upgrading to generation 2: 1/4 ready, canary stable in ")
        waited_at = arrival(sup, "canary stable in 1.0s")
        sup.wait_status(r"^Upgrade to generation 2 failed: worker \d+ \(generation 2\) exited with status 0; "
                        r"serving generation 1 .*4/4 ready$")
        died_after = arrival(sup, "STATUS=Upgrade to generation 2 failed") - waited_at
        self.assertLess(died_after, 1.0, "the canary did not die within stable_time: this tests nothing")

        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(sup.get_property("web", "Target"), os.path.realpath(self.v1))
        # The old workers never stopped: none drained, none replaced.
        self.assertEqual(sorted(w[0] for w in sup.get_property("web", "Workers")), self.old_workers)
        self.assertNotIn("after draining", sup.output())
        # Only the canary (the first batch) ever started: no next batch during the wait.
        self.assertEqual(len(lib.started_workers(sup, 2)), 1, sup.output())

        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        result = self.load.stop()
        self.assert_no_failures(result, sup)
        self.assertIn("v1", lib.versions(result), result["_raw"])
        print("canary died %.2fs after READY=1 (%s): %s requests, %s failed, versions %s, old workers untouched" % (
            died_after, waiting.split("STATUS=")[-1].split("\n")[0], result["requests"], result["failed"],
            result.get("versions")))

    def test_stable_release_goes_live_after_the_wait(self):
        """The same release without the death: it goes live, and the first old worker
        drained only after the canary had been ready for stable_time."""
        sup = self.start_web(stable_time="1500ms")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        p = sup.client("-i", "web", "-u", v2, check=0)
        self.assertIn("serving generation 2", p.stdout)
        sup.wait_status(r"^Upgrading to generation 2: 1/4 ready, canary stable in 1\.5s")
        ready_at = arrival(sup, "canary stable in 1.5s")
        # The next status after the wait: the first old worker draining.
        sup.wait_status(r"^Upgrading to generation 2: 1/4 ready, 1 draining")
        drained_at = arrival(sup, "STATUS=Upgrading to generation 2: 1/4 ready, 1 draining")
        self.assertGreaterEqual(drained_at - ready_at, 1.4)
        sup.wait_status(r"^Serving generation 2 .*4/4 ready$")
        result = self.load.stop()
        self.assert_no_failures(result, sup)
        print("stable release: first drain %.2fs after the canary was ready; %s requests, %s failed" % (
            drained_at - ready_at, result["requests"], result["failed"]))


if __name__ == "__main__":
    lib.main()
