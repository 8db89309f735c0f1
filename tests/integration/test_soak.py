#!/usr/bin/env python3
"""Nothing leaks across upgrades: valgrind finds no error and no leak in the supervisor
through 100 upgrades, and after 1,000 upgrades its fd count is the same and its memory
the same within noise."""

import os
import shutil
import time
import unittest

import lib
from test_upgrade import notify_config

# These measure leaks over hundreds of upgrades, not the canary: without it each upgrade
# is a second shorter (1000 upgrades would otherwise wait 1000 s more for nothing).
NO_CANARY = {"stable_time": "0"}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# ASan's allocator keeps freed memory in quarantine (RSS grows by design) and valgrind
# cannot run an ASan binary: these measure the plain build only.
SANITIZED = os.environ.get("LIVESWAP_SANITIZE", "none") not in ("", "none")


@unittest.skipIf(SANITIZED, "memory is measured on the build without sanitizers")
class Soak(lib.TestCase):
    def targets(self):
        return (lib.make_target(os.path.join(self.dir, "a"), "v1"),
                lib.make_target(os.path.join(self.dir, "b"), "v2"))

    def upgrade_many(self, sup, count, v1, v2):
        for i in range(count):
            sup.client("-i", "web", "-u", v2 if i % 2 == 0 else v1, check=0)

    def test_valgrind_hundred_upgrades(self):
        valgrind = shutil.which("valgrind")
        if not valgrind:
            self.skipTest("valgrind is not installed")
        port = lib.free_port()
        v1, v2 = self.targets()
        vlog = os.path.join(self.dir, "valgrind.log")
        # Only the supervisor runs under valgrind: workers are exec'd normally.
        sup = lib.Supervisor(self, [valgrind, "--quiet", "--error-exitcode=99", "--leak-check=full",
                                    "--show-leak-kinds=definite,indirect,possible",
                                    "--errors-for-leak-kinds=definite,indirect,possible", "--log-file=" + vlog,
                                    lib.LIVESWAP, "--instance", "web", "--config", notify_config(self, **NO_CANARY),
                                    "-s", v1,
                                    "-p", str(port), "-f", "2"])
        sup.wait_ready(timeout=120)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4)
        self.upgrade_many(sup, 100, v1, v2)
        result = load.stop()
        self.assert_no_failures(result, sup)
        status = sup.stop(timeout=120)
        with open(vlog) as f:
            report = f.read()
        self.assertEqual(status, 0, "valgrind found errors or leaks:\n" + report)
        # Errors and leaks are the "==PID==" lines; valgrind 3.19's "--PID-- WARNING:
        # unhandled syscall 434" (pidfd_open, which sd-event then does without) is not one.
        findings = [line for line in report.splitlines() if line.startswith("==")]
        self.assertEqual(findings, [], report)
        print("valgrind: 100 upgrades, %s requests, %s failed, 0 errors, 0 leaks" % (result["requests"],
                                                                                    result["failed"]))

    def test_thousand_upgrades_same_fds_and_memory(self):
        port = lib.free_port()
        v1, v2 = self.targets()
        sup = self.start("--instance", "web", "--config", notify_config(self, **NO_CANARY), "-s", v1, "-p", str(port),
                         "-f", "2")
        pid = sup.proc.pid
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, max_seconds=900)
        # Warm up first: allocator arenas and sd-event's tables reach their working size.
        self.upgrade_many(sup, 20, v1, v2)
        sup.wait_status(r"^Serving generation 21 .*2/2 ready$")
        fds_before, rss_before = lib.settled_fd_count(pid), rss_kib(pid)
        self.upgrade_many(sup, 1000, v1, v2)
        sup.wait_status(r"^Serving generation 1021 .*2/2 ready$")
        fds_after, rss_after = lib.settled_fd_count(pid), rss_kib(pid)
        result = load.stop()
        self.assert_no_failures(result, sup)
        print("1000 upgrades: fds %d -> %d, RSS %d -> %d KiB, %s requests, %s failed" % (
            fds_before, fds_after, rss_before, rss_after, result["requests"], result["failed"]))
        self.assertEqual(fds_after, fds_before)
        # A leak of even 100 bytes an upgrade would show as ~100 KiB here.
        self.assertLessEqual(rss_after - rss_before, 64, "RSS grew from %d to %d KiB" % (rss_before, rss_after))


if __name__ == "__main__":
    lib.main()
