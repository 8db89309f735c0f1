#!/usr/bin/env python3
"""Draining: in-flight requests finish across an upgrade; a worker that ignores the
drain signal is killed after drain_timeout."""

import os
import threading
import time

import lib
from test_upgrade import notify_config


class Drain(lib.TestCase):
    def test_inflight_requests_complete(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "2")
        results = []

        def slow():
            results.append(lib.http_get(("127.0.0.1", port), "/sleep?ms=2000", timeout=30))

        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        # In flight = established and accepted by a worker (the listening socket's accept
        # queue is empty). The kernel offers no event for that, so poll it, bounded.
        deadline = time.monotonic() + 10
        while not lib.accepted(port, 6) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(lib.accepted(port, 6))
        started = time.monotonic()
        sup.client("-i", "web", "-u", v2, check=0)
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 6)
        for status, headers, body in results:
            self.assertEqual((status, body), (200, "v1\n"))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_ignoring_drain_signal_gets_killed(self):
        port = lib.free_port()
        stubborn = lib.make_target(os.path.join(self.dir, "a"), "v1", "--ignore-term")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, drain_timeout="1s")
        sup = self.start("--instance", "web", "--config", conf, "-s", stubborn, "-p", str(port), "-f", "1")
        old = [w[0] for w in sup.get_property("web", "Workers")]
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close")
        started = time.monotonic()
        sup.client("-i", "web", "-u", v2, check=0)
        # The stubborn worker is killed once drain_timeout has passed.
        sup.wait_status(r"Serving generation 2 .*1/1 ready$", timeout=15)
        elapsed = time.monotonic() - started
        self.assert_pids_gone(old)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertIn("Killing worker %d" % old[0], sup.output())
        result = load.stop()
        # A worker that ignores the drain signal keeps accepting until SIGKILL, and the
        # requests it holds at that instant die with it: no supervisor can finish them.
        # Each client has at most one request in flight, so at most `clients` can fail.
        self.assertGreater(int(result["ok"]), 0, result["_raw"])
        self.assertLessEqual(int(result["failed"]), 4, result["_raw"])
        print("stubborn worker killed: %s requests, %s failed" % (result["requests"], result["failed"]))


if __name__ == "__main__":
    lib.main()
