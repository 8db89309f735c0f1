#!/usr/bin/env python3
"""The open-file limit (issue 15): each worker holds 2 of the supervisor's fds, so the
supervisor raises its soft RLIMIT_NOFILE to the hard limit, gives workers the original
soft limit back, says in its log how many workers fit, and refuses a start, a SetWorkers
or an upgrade that cannot fit, with the number, instead of failing halfway with EMFILE.
Run under `prlimit --nofile=64:128`, where only a few dozen workers fit."""

import os
import re
import subprocess

import lib

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")
SOFT, HARD = 64, 128


def limits_target(directory, version):
    """The example server behind a wrapper that records the open-file limit it was given
    (the example server raises its own soft limit once it runs)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "server-" + version)
    lib.write_file(path, "#!/bin/sh\ngrep '^Max open files' /proc/$$/limits > '%s/limits-'$$\n"
                   "exec '%s' --version '%s'\n" % (directory, lib.HTTPD, version), 0o755)
    return path


class FdLimitTest(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(LIVESWAPCTL, "LIVESWAPCTL must be set (run through meson test)")
        self.workers_dir = os.path.join(self.dir, "w")
        self.v1 = limits_target(self.workers_dir, "v1")
        self.config = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                                     "[upgrade]\nready = notify\nready_timeout = 20s\ndrain_timeout = 10s\n"
                                     "stable_time = 0\n")

    def run_supervisor(self, workers, ready=True):
        sup = lib.Supervisor(self, ["prlimit", "--nofile=%d:%d" % (SOFT, HARD), lib.LIVESWAP, "--instance", "fd",
                                    "--config", self.config, "-s", self.v1, "--listen",
                                    os.path.join(self.dir, "sock"), "-f", str(workers)],
                             env={"LIVESWAP_BUS": "none"})
        if ready:
            sup.wait_ready()
        return sup

    def ctl(self, sup, *args):
        return subprocess.run([LIVESWAPCTL, "-i", "fd"] + list(args), env=sup.env, capture_output=True, text=True,
                              timeout=120)

    def allowed(self, sup):
        m = re.search(r"Open file limit %d \(raised from %d, which workers get\): room for (\d+) workers" %
                      (HARD, SOFT), sup.output())
        self.assertTrue(m, sup.output())
        return int(m.group(1))

    def test_start_beyond_the_limit_is_a_config_error(self):
        sup = self.run_supervisor(100, ready=False)
        self.assertEqual(sup.proc.wait(30), 78, sup.output())
        allowed = self.allowed(sup)
        self.assertLess(allowed, 100)
        self.assertIn("workers=100 does not fit the open file limit: RLIMIT_NOFILE %d allows at most %d workers"
                      % (HARD, allowed), sup.output())
        self.assertNotIn("started", sup.output())  # refused before the first fork

    def test_scale_and_upgrade_within_and_beyond_the_limit(self):
        sup = self.run_supervisor(4)
        allowed = self.allowed(sup)
        self.assertGreater(allowed, 8)
        # The supervisor runs with the hard limit; its workers got the original back.
        with open("/proc/%d/limits" % sup.proc.pid) as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], [str(HARD), str(HARD)])
        recorded = [n for n in os.listdir(self.workers_dir) if n.startswith("limits-")]
        self.assertEqual(len(recorded), 4)
        for name in recorded:
            with open(os.path.join(self.workers_dir, name)) as f:
                self.assertEqual(f.read().split()[3:5], [str(SOFT), str(HARD)], name)

        # Beyond the limit: refused with the number, nothing changed.
        p = self.ctl(sup, "scale", str(allowed + 1))
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("cannot scale to %d workers: the open file limit (%d) allows %d at once" %
                      (allowed + 1, HARD, allowed), p.stderr)
        self.assertEqual(sup.get_property("fd", "DesiredWorkers"), 4)

        # Within it: done, every worker ready (none failed with EMFILE).
        half = allowed // 2
        p = self.ctl(sup, "scale", str(half))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        sup.wait_status(r"Serving generation 1 .*: %d/%d ready$" % (half, half))

        # A blue-green upgrade needs the old and the new generation at once: 2 * half fits.
        p = self.ctl(sup, "upgrade", self.v1)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(sup.get_property("fd", "Generation"), 2)
        sup.wait_status(r"Serving generation 2 .*: %d/%d ready$" % (half, half))

        # One more worker and the next upgrade could not hold both generations: refused
        # before anything starts (InvalidArgument, exit 2), and the generation stays.
        p = self.ctl(sup, "scale", str(half + 1))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        sup.wait_status(r"Serving generation 2 .*: %d/%d ready$" % (half + 1, half + 1))
        p = self.ctl(sup, "upgrade", self.v1)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r"upgrade refused, nothing changed: workers=%d with strategy rolling needs room "
                                   r"for \d+ workers at once \(\d+ running\), but the open file limit \(%d\) allows %d"
                         % (half + 1, HARD, allowed))
        self.assertEqual(sup.get_property("fd", "Generation"), 2)
        self.assertNotIn("Too many open files", sup.output())
        self.assertEqual(sup.stop(), 0)


if __name__ == "__main__":
    lib.main()
