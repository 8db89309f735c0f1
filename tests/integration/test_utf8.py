#!/usr/bin/env python3
"""Targets and texts that are not valid UTF-8. D-Bus carries only UTF-8, so such a target
must be refused wherever it comes in (start, upgrade through a symlink, the pre-upgrade
hook), the clients must refuse to send one, and nothing the supervisor says on the bus (a
hook's stderr line as the reason) may make a property read or a reply fail: the instance
stays controllable."""

import os
import subprocess

import lib
from test_upgrade import notify_config

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")
BAD_NAME = b"bad\xff\xfename"
BAD_SHOWN = "bad\\xff\\xfename"  # how the messages show it


class Utf8(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(LIVESWAPCTL, "LIVESWAPCTL must be set (run through meson test)")
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        # A working target whose name is not UTF-8.
        self.bad_dir = os.path.join(self.dir, "c").encode()
        os.makedirs(self.bad_dir)
        self.bad = os.path.join(self.bad_dir, BAD_NAME)
        with open(self.bad, "wb") as f:
            f.write(b"#!/bin/sh\nexec '%s' --version v3\n" % lib.HTTPD.encode())
        os.chmod(self.bad, 0o755)

    def ctl(self, sup, *args):
        return subprocess.run([LIVESWAPCTL, "-i", "web"] + list(args), env=sup.env, capture_output=True,
                              timeout=120, cwd=sup.dir)

    def assert_controllable(self, sup):
        """Every property reads, and the instance stops when asked."""
        p = self.ctl(sup, "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        p = self.ctl(sup, "stop")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sup.proc.wait(lib.DEFAULT_TIMEOUT), 0)

    def web(self, **config):
        return self.start("--instance", "web", "--config", notify_config(self, **config), "-s", self.v1, "-p",
                          str(self.port))

    def test_start_refused(self):
        for how in ("command line", "config file"):
            with self.subTest(how):
                conf = notify_config(self)
                args = [lib.LIVESWAP, "--instance", "badu", "--config", conf, "-p", str(self.port)]
                if how == "command line":
                    args += ["-s", self.bad]
                else:
                    with open(conf, "ab") as f:
                        f.write(b"[worker]\ntarget = " + self.bad + b"\n")
                sup = lib.Supervisor(self, args)
                self.assertEqual(sup.proc.wait(lib.DEFAULT_TIMEOUT), 1, sup.output())
                self.assertIn("target is not valid UTF-8: %s/%s" % (self.bad_dir.decode(), BAD_SHOWN), sup.output())
                self.assertEqual(lib.started_workers(sup), [])

    def test_head_not_utf8_ignored_at_start(self):
        # A deploy tool wrote a HEAD that names a working target whose name is not UTF-8.
        head = lib.default_head(self, "web")
        os.makedirs(os.path.dirname(head))
        with open(head, "wb") as f:
            f.write(self.bad + b"\n")
        sup = self.web()
        self.assertIn("Ignoring %s: target is not valid UTF-8: %s/%s" % (head, self.bad_dir.decode(), BAD_SHOWN),
                      sup.output())
        self.assert_controllable(sup)

    def test_clients_refuse_to_send(self):
        sup = self.web()
        p = subprocess.run([lib.LIVESWAP, "-i", "web", "-u", self.bad], env=sup.env, capture_output=True,
                           timeout=120, cwd=sup.dir)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"target is not valid UTF-8 (D-Bus carries only UTF-8): " + self.bad_dir + b"/" +
                      BAD_SHOWN.encode(), p.stderr)
        p = self.ctl(sup, "upgrade", self.bad)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"target is not valid UTF-8 (D-Bus carries only UTF-8)", p.stderr)
        for p in (subprocess.run([lib.LIVESWAP, "-i", "web", "-m", b"hi\xff"], env=sup.env, capture_output=True,
                                 timeout=120), self.ctl(sup, "message", b"hi\xff")):
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"the message is not valid UTF-8 (D-Bus carries only UTF-8): hi\\xff", p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assert_controllable(sup)

    def test_upgrade_through_symlink_refused(self):
        # The request is valid UTF-8; what it resolves to is not.
        link = os.path.join(self.dir, "current")
        os.symlink(self.bad, link)
        sup = self.web()
        p = subprocess.run([lib.LIVESWAP, "-i", "web", "-u", link], env=sup.env, capture_output=True, text=True,
                           errors="replace", timeout=120)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("invalid target: resolved target is not valid UTF-8: %s/%s" % (self.bad_dir.decode(),
                                                                                   BAD_SHOWN), p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(lib.started_workers(sup, 2), [])
        self.assert_controllable(sup)

    def test_hook_prints_target_not_utf8(self):
        hook = os.path.join(self.dir, "hook").encode()
        with open(hook, "wb") as f:
            f.write(b"#!/bin/sh\necho building\necho '" + self.bad + b"'\n")
        os.chmod(hook, 0o755)
        sup = self.web(pre_upgrade=hook.decode())
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        p = self.ctl(sup, "upgrade", v2)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"pre-upgrade hook gave an invalid target: target is not valid UTF-8: " + self.bad_dir + b"/" +
                      BAD_SHOWN.encode(), p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assert_controllable(sup)

    def test_hook_stderr_not_utf8(self):
        # The refusal's reason is the hook's last stderr line, whatever its bytes.
        hook = lib.write_file(os.path.join(self.dir, "hook"), "#!/bin/sh\nprintf 'migration \\377\\376 failed\\n' >&2\n"
                              "exit 3\n", 0o755)
        sup = self.web(pre_upgrade=hook)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        p = self.ctl(sup, "upgrade", v2)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"migration \\xff\\xfe failed", p.stderr)
        self.assertIn("migration \\xff\\xfe failed", sup.get_property("web", "LastResult"))
        p = self.ctl(sup, "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"migration \\xff\\xfe failed", p.stdout)
        self.assert_controllable(sup)


if __name__ == "__main__":
    lib.main()
