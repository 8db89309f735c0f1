#!/usr/bin/env python3
"""start_timeout: a first generation that never becomes ready makes liveswap give up,
exit with status 1 and close its socket, so that clients are refused instead of waiting
in the backlog for ever; one that is ready in time is not affected."""

import errno
import os
import socket
import subprocess
import time

import lib
from test_upgrade import notify_config


class StartTimeout(lib.TestCase):
    def run_until_exit(self, target, *args, timeout=30):
        port = lib.free_port()
        started = time.monotonic()
        sup = self.start("--instance", "web", "-s", target, "-p", str(port), *args, ready=False)
        try:
            status = sup.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail("liveswap still running %ss after start; its log:\n%s" % (timeout, sup.output()))
        return sup, port, status, time.monotonic() - started

    def assert_refused(self, port):
        with socket.socket() as s:
            s.settimeout(5)
            code = s.connect_ex(("127.0.0.1", port))
        self.assertEqual(code, errno.ECONNREFUSED, "connect() after the exit: %s" % os.strerror(code))

    def test_never_ready_exits_and_releases_the_port(self):
        # ready=notify, and the worker never sends READY=1 (its own ready_timeout is longer).
        never = lib.make_target(os.path.join(self.dir, "a"), "v1", "--no-ready")
        conf = notify_config(self, ready_timeout="60s", drain_timeout="10s")
        sup, port, status, elapsed = self.run_until_exit(never, "--config", conf, "--start-timeout", "2s")
        out = sup.output()
        self.assertEqual(status, 1, out)
        self.assertGreaterEqual(elapsed, 1.9, out)
        self.assertIn("Start timed out: generation 1 not ready after 2s (0/2 ready, 0 crashes)", out)
        self.assertIn("exiting with status 1", out)
        self.assertRegex(sup.notify.status(), r"^Start timed out: generation 1 not ready after 2s")
        self.assert_refused(port)
        print("never-ready start gave up after %.2f s (start_timeout 2 s)" % elapsed)

    def test_crash_loop_exits_with_the_reason(self):
        crashing = lib.make_target(os.path.join(self.dir, "a"), "v1", "--crash-at-start")
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"), "[upgrade]\nstart_timeout = 2s\n")
        sup, port, status, elapsed = self.run_until_exit(crashing, "--config", conf, "-f", "1")
        out = sup.output()
        self.assertEqual(status, 1, out)
        self.assertRegex(out, r"Start timed out: generation 1 not ready after 2s \(0/1 ready, [1-9][0-9]* crash(es)?; "
                              r"last: worker [0-9]+ \(generation 1\) exited with status [1-9]")
        self.assert_refused(port)

    def test_command_line_overrides_the_file(self):
        never = lib.make_target(os.path.join(self.dir, "a"), "v1", "--no-ready")
        conf = notify_config(self, ready_timeout="60s", start_timeout="10min")
        sup, port, status, elapsed = self.run_until_exit(never, "--config", conf, "--start-timeout", "1500ms")
        self.assertEqual(status, 1, sup.output())
        self.assertIn("not ready after 1500ms", sup.output())

    def test_ready_in_time_keeps_running(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        started = time.monotonic()
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port),
                         "--start-timeout", "2s")
        # Serving well past the bound: real requests, each checked, until 1 s after it.
        while time.monotonic() < started + 3:
            self.assertIsNone(sup.proc.poll(), sup.output())
            self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertNotIn("Start timed out", sup.output())
        self.assertEqual(sup.stop(), 0)

    def test_bad_start_timeout_is_bad_usage(self):
        p = subprocess.run([lib.LIVESWAP, "-s", "/bin/true", "-p", "1", "--start-timeout", "soon"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("invalid duration 'soon' for --start-timeout", p.stderr)


if __name__ == "__main__":
    lib.main()
