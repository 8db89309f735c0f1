#!/usr/bin/env python3
"""Thousands of workers (issue 15): 1,024 example workers start, and upgrade blue-green
and rolling, with every worker ready and none of the old ones left, within bounded waits.
Slow on a small machine (CI: 2 cores), so its meson timeout is generous."""

import os
import resource

import lib
from test_upgrade import notify_config

# Under the sanitizers each example worker carries its own shadow memory (tens of MiB of
# RSS): 2,048 of them at once would not fit in a CI machine's memory, so 256 there.
N = 256 if lib.SANITIZED else 1024

# The supervisor's peak RSS over the run (VmHWM: start, then two upgrades, 2N workers at
# a blue-green upgrade's peak), in KiB. Measured at N = 1,024 on Debian 12 (glibc 2.36,
# libsystemd 252), default and release builds: 4.4-5.6 MiB, of which about 3 MiB are the
# shared libraries' pages; 8.0-8.4 MiB blue-green (5.9-6.0 rolling) before the engine's
# action queue kept its actions in short form. The goal is 8 MiB; the bound is
# lower, so that a regression of that size fails here, and 1.4 MiB above the highest
# peak measured, for other libc and libsystemd versions. Not under the sanitizers: their shadow memory and quarantine are
# most of the RSS there.
MAX_PEAK_RSS_KIB = 7 * 1024


def raise_fd_limit(test):
    """Up to 2 fds per worker in the supervisor (control socket, pidfd): a blue-green
    upgrade of 1,024 workers holds more than 4,096, above the usual soft limit of 1024.
    For the merge: once liveswap raises its own soft limit to the hard one at startup
    (issue 15, item 3, branch scale-engine), this is no longer needed and the test should
    then run without it, to check that liveswap does it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * N + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        test.skipTest("RLIMIT_NOFILE hard limit %d is below the %d fds that %d workers need" % (hard, need, N))
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def memory_kib(pid):
    """VmHWM (the peak RSS) and VmRSS of PID, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f.read().splitlines())
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


class Scale(lib.TestCase):
    def upgrade(self, sup, strategy, target, version):
        """One upgrade of all N workers; waits (bounded) until no old worker is left."""
        old = [w[0] for w in sup.get_property("scale", "Workers")]
        self.assertEqual(len(old), N)
        p = sup.client("-i", "scale", "-u", target, timeout=600)
        self.assertEqual(p.returncode, 0, "%s upgrade: %s%s\n%s" % (strategy, p.stdout, p.stderr,
                                                                     sup.output()[-4000:]))
        self.assert_pids_gone(old, timeout=120)
        workers = sup.get_property("scale", "Workers")
        self.assertEqual(len(workers), N)
        self.assertTrue(all(w[2] == "ready" for w in workers), workers[:5])
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], version + "\n")

    def run_strategy(self, strategy):
        raise_fd_limit(self)
        self.port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, strategy=strategy, stable_time="0", ready_timeout="300s", drain_timeout="60s")
        sup = lib.Supervisor(self, [lib.LIVESWAP, "--instance", "scale", "--config", conf, "-s", v1, "-p",
                                    str(self.port), "-f", str(N)])
        sup.wait_ready(timeout=300)
        sup.wait_status(r"Serving generation 1 .*%d/%d ready$" % (N, N), timeout=300)
        self.assertEqual(len(sup.get_property("scale", "Workers")), N)
        # Slow is not lost: while 2 CPUs start or stop hundreds of workers at once (under
        # the sanitizers each costs tens of ms of CPU, LeakSanitizer's scan at exit
        # included), a request can wait over 5 s for its worker's turn: 7 s in blue-green
        # at 256 workers under ASan, 0.1 s rolling (2 such requests failed a CI check at
        # the default 5 s). A lost connection still fails: a reset or an EOF at once, or
        # a timeout after 30 s.
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=4, mode="mixed", timeout_ms=30000)
        self.upgrade(sup, strategy, v2, "v2")
        self.upgrade(sup, strategy, v1, "v1")
        result = load.stop()
        self.assert_no_failures(result, sup)
        peak, now = memory_kib(sup.proc.pid)
        print("supervisor RSS, %d workers %s: peak %d KiB, at the end %d KiB; %s requests, slowest %.1f s" % (
            N, strategy, peak, now, result["ok"], int(result["max_us"]) / 1e6))
        if not lib.SANITIZED:
            self.assertLessEqual(peak, MAX_PEAK_RSS_KIB, "the supervisor's peak RSS with %d workers" % N)
        self.assertEqual(sup.stop(timeout=120), 0, sup.output()[-4000:])

    def test_blue_green(self):
        self.run_strategy("blue-green")

    def test_rolling(self):
        self.run_strategy("rolling")


if __name__ == "__main__":
    lib.main()
