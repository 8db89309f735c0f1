#!/usr/bin/env python3
"""Bad input gets a clear error and changes nothing."""

import os
import subprocess

import lib
from test_upgrade import notify_config


class BadInput(lib.TestCase):
    def run_liveswap(self, *args):
        env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(self.dir, "run"),
                   XDG_STATE_HOME=os.path.join(self.dir, "state"))
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        return subprocess.run([lib.LIVESWAP] + list(args), capture_output=True, text=True, timeout=30, env=env,
                              cwd=self.dir, stdin=subprocess.DEVNULL)

    def test_missing_target_refused_before_start(self):
        port = lib.free_port()
        p = self.run_liveswap("-s", os.path.join(self.dir, "nope"), "-p", str(port))
        self.assertEqual(p.returncode, 1)
        self.assertIn("No such file or directory", p.stderr)
        with self.assertRaises(ConnectionRefusedError):
            lib.http_get(("127.0.0.1", port))

    def test_non_executable_target(self):
        path = lib.write_file(os.path.join(self.dir, "script"), "#!/bin/sh\n", 0o644)
        p = self.run_liveswap("-s", path, "-p", str(lib.free_port()))
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not executable", p.stderr)

    def test_directory_without_start(self):
        os.makedirs(os.path.join(self.dir, "app"))
        p = self.run_liveswap("-s", os.path.join(self.dir, "app"), "-p", str(lib.free_port()))
        self.assertEqual(p.returncode, 1)
        self.assertIn("directory without an executable './start'", p.stderr)

    def test_bad_config_line(self):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        conf = lib.write_file(os.path.join(self.dir, "bad.conf"),
                              "[worker]\nworkers = 2\n\n[upgrade]\nready_timeout = soon\n")
        p = self.run_liveswap("--config", conf, "-s", v1, "-p", str(lib.free_port()))
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"^%s:5: " % conf)

    def test_unknown_key(self):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        conf = lib.write_file(os.path.join(self.dir, "bad.conf"), "[worker]\nforks = 2\n")
        p = self.run_liveswap("--config", conf, "-s", v1, "-p", str(lib.free_port()))
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"^%s:2: .*forks" % conf)

    def test_bad_usage(self):
        self.assertEqual(self.run_liveswap("-f", "zero").returncode, 2)
        self.assertEqual(self.run_liveswap("--no-such-flag").returncode, 2)
        p = self.run_liveswap("-s", lib.make_target(os.path.join(self.dir, "a"), "v1"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("Nothing to listen on", p.stderr)

    def test_client_without_supervisor(self):
        p = self.run_liveswap("-i", "ghost", "-u")
        self.assertEqual(p.returncode, 3)
        self.assertIn("ghost is not running", p.stderr)

    def test_bad_upgrades_change_nothing(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        slow = lib.make_target(os.path.join(self.dir, "slow"), "v2", "--delay-start", "1500")
        conf = notify_config(self)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port))
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4)

        p = sup.client("-i", "web", "-u", os.path.join(self.dir, "missing"))
        self.assertEqual(p.returncode, 2)
        p = sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade",
                       "s", os.path.join(self.dir, "missing"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("invalid target", p.stderr)
        p = sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade",
                       "u", "5")
        self.assertNotEqual(p.returncode, 0)

        # A second upgrade while one runs gets Busy.
        p = sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor",
                       "StartUpgrade", "s", slow)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "t 2")
        p = sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade",
                       "s", v1)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already in progress", p.stderr)
        sup.wait_status(r"^Serving generation 2 ")

        # A reload with a broken config file is refused and changes nothing.
        with open(conf, "a") as f:
            f.write("bogus line\n")
        p = sup.client("-i", "web", "-u")
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:5: " % conf, p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        self.assert_no_failures(load.stop(), sup)
        self.assertIsNone(sup.proc.poll())

    def test_already_running(self):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(lib.free_port()))
        p = subprocess.run([lib.LIVESWAP, "--instance", "web", "-s", v1, "-p", str(lib.free_port())], env=sup.env,
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already running", p.stderr)
        self.assertIsNone(sup.proc.poll())


if __name__ == "__main__":
    lib.main()
