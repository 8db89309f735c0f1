#!/usr/bin/env python3
"""Hostile input: each bad request gets a clear error and changes nothing, and the
supervisor goes on serving (generation, target and worker pids unchanged, 0 failed
requests). Covers odd targets, malformed and oversized D-Bus calls sent byte by byte,
floods of connections, and broken configuration files."""

import os
import socket
import subprocess

import dbus_raw
import lib
from test_upgrade import notify_config


class Hostile(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.sup = self.start("--instance", "web", "--config", notify_config(self), "-s", self.v1, "-p",
                              str(self.port), "-f", "2")
        self.bus_path = os.path.join(self.sup.run_dir, "liveswap", "web", "bus")
        self.before = self.snapshot()
        self.load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=4)

    def snapshot(self):
        return (self.sup.get_property("web", "Generation"), self.sup.get_property("web", "Target"),
                sorted(w[0] for w in self.sup.get_property("web", "Workers")))

    def assert_nothing_changed(self):
        self.assertIsNone(self.sup.proc.poll(), self.sup.output())
        self.assertEqual(self.snapshot(), self.before)
        result = self.load.stop()
        self.assert_no_failures(result, self.sup)
        self.assertEqual(list(lib.versions(result)), ["v1"])

    def upgrade(self, target):
        """Upgrade(target) must fail with InvalidTarget; returns busctl's error text."""
        conn = dbus_raw.Connection(self.bus_path)
        try:
            self.assertEqual(conn.call(b"Upgrade", b"s", dbus_raw.string_body(target.encode()))[1],
                             "org.liveswap1.Error.InvalidTarget")
        finally:
            conn.close()
        p = self.sup.busctl("web", "call", "org.liveswap1.web", "/org/liveswap1", "org.liveswap1.Supervisor",
                            "Upgrade", "s", target)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        return p.stderr

    def test_bad_targets(self):
        d = self.dir
        lib.write_file(os.path.join(d, "plain"), "not a program\n", 0o644)
        os.symlink(os.path.join(d, "loop-b"), os.path.join(d, "loop-a"))
        os.symlink(os.path.join(d, "loop-a"), os.path.join(d, "loop-b"))
        os.makedirs(os.path.join(d, "empty dir"))
        cases = {
            os.path.join(d, "missing"): "No such file or directory",
            os.path.join(d, "plain"): "is not executable",
            os.path.join(d, "loop-a"): "Too many levels of symbolic links",
            os.path.join(d, "empty dir"): "without an executable './start'",
            "/dev/null": "neither an executable file nor a directory",
            "relative/path": "No such file or directory",
            "/" + "x" * 5000: "too long",
            os.path.join(d, "a", "..", "missing", "..", "a"): "No such file or directory",
            os.path.join(d, "a", "..", "a", ".."): "without an executable",
        }
        for target, reason in cases.items():
            with self.subTest(target=target[:80]):
                err = self.upgrade(target)
                self.assertIn("invalid target", err)
                self.assertIn(reason, err)
        self.assert_nothing_changed()

    def test_odd_but_valid_targets(self):
        """Spaces and `..` are fine: the target is resolved and recorded without them."""
        spaced = lib.make_target(os.path.join(self.dir, "my app", "rel 2"), "v2", name="start here")
        dotted = os.path.join(self.dir, "my app", "..", "my app", "rel 2", "start here")
        self.sup.client("-i", "web", "-u", dotted, check=0)
        self.assertEqual(self.sup.get_property("web", "Target"), os.path.realpath(spaced))
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v2\n")
        self.load.stop()

    def test_malformed_calls(self):
        conn = dbus_raw.Connection(self.bus_path)
        try:
            # Invalid UTF-8 in a string argument: the message is refused as a whole.
            try:
                reply = conn.call(b"Upgrade", b"s", dbus_raw.string_body(b"/tmp/\xff\xfe"))
                self.assertEqual(reply[0], dbus_raw.ERROR, reply)
            except ConnectionError:
                pass  # sd-bus may drop a peer that sends an invalid message: also fine
        finally:
            conn.close()

        conn = dbus_raw.Connection(self.bus_path)
        try:
            # A signature that does not match the arguments.
            self.assertEqual(conn.call(b"Upgrade", b"u", b"\x05\0\0\0")[1], "org.freedesktop.DBus.Error.InvalidArgs")
            # No arguments at all.
            self.assertEqual(conn.call(b"Upgrade")[1], "org.freedesktop.DBus.Error.InvalidArgs")
            self.assertEqual(conn.call(b"SetWorkers", b"s", dbus_raw.string_body(b"4"))[1],
                             "org.freedesktop.DBus.Error.InvalidArgs")
            # Out of range and unknown.
            self.assertEqual(conn.call(b"SetWorkers", b"u", b"\0\0\0\0")[1], "org.liveswap1.Error.InvalidArgument")
            self.assertEqual(conn.call(b"SetWorkers", b"u", b"\xff\xff\xff\xff")[1],
                             "org.liveswap1.Error.InvalidArgument")
            self.assertEqual(conn.call(b"Explode")[1], "org.freedesktop.DBus.Error.UnknownMethod")
            self.assertEqual(conn.call(b"Upgrade", b"s", dbus_raw.string_body(b"/x"), interface=b"org.example.Nope")[1],
                             "org.freedesktop.DBus.Error.UnknownMethod")
            self.assertEqual(conn.call(b"Get", b"ss", dbus_raw.string_body(b"org.liveswap1.Supervisor", b"Nope"),
                                       interface=b"org.freedesktop.DBus.Properties")[1],
                             "org.freedesktop.DBus.Error.UnknownProperty")
            # Oversized: a 1 MiB target and a 1 MiB message text.
            self.assertEqual(conn.call(b"Upgrade", b"s", dbus_raw.string_body(b"/" + b"a" * (1 << 20)))[1],
                             "org.liveswap1.Error.InvalidTarget")
            self.assertEqual(conn.call(b"Message", b"s", dbus_raw.string_body(b"m" * (1 << 20)))[1],
                             "org.liveswap1.Error.InvalidArgument")
            # A string with an embedded NUL.
            reply = conn.call(b"Upgrade", b"s", b"\x05\0\0\0/a\0bc\0")
            self.assertEqual(reply[0], dbus_raw.ERROR)
        except ConnectionError:
            pass  # dropped on the NUL: checked below that nothing else suffered
        finally:
            conn.close()
        self.assert_nothing_changed()

    def test_garbage_and_connection_floods(self):
        # Not D-Bus at all.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.bus_path)
            s.sendall(os.urandom(65536))
            try:
                while s.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
        # Authenticated, then a header announcing a 4 GiB body.
        conn = dbus_raw.Connection(self.bus_path)
        conn.send_raw(b"l\x01\x00\x01\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        # More connections than the supervisor accepts at once, all held open.
        held = []
        try:
            for _ in range(300):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.bus_path)
                held.append(s)
            # It still answers the ones it kept and stays alive.
            self.assertIsNone(self.sup.proc.poll())
        finally:
            for s in held:
                s.close()
        # Once they are gone, a normal client works again.
        self.assertEqual(self.sup.get_property("web", "Generation"), 1)
        self.assert_nothing_changed()

    def test_broken_config_files(self):
        """Every kind of configuration error stops the start with FILE:LINE and 78."""
        cases = [
            ("[worker]\nworkers = 0\n", 2, "workers"),
            ("[worker]\nworkers = many\n", 2, "workers"),
            ("[upgrade]\nstrategy = sideways\n", 2, "strategy"),
            ("[upgrade]\nready = maybe\n", 2, "ready"),
            ("[upgrade]\nready_timeout = soon\n", 2, "ready_timeout"),
            ("[upgrade]\ndrain_signal = SIGNOPE\n", 2, "drain_signal"),
            ("[upgrade]\nbatch = -1\n", 2, "batch"),
            ("[worker]\nexec = \"unclosed\n", 2, "exec"),
            ("[worker]\nbogus = 1\n", 2, "bogus"),
            ("[nonsense]\nx = 1\n", 1, "nonsense"),
            ("no section line\n", 1, ""),
            ("[worker]\nworkers\n", 2, ""),
            ("[worker]\ntarget = %s\n[worker\n" % self.v1, 3, ""),
            ("[worker]\n" + "x" * 400 + " = 1\n", 2, ""),
        ]
        for i, (text, line, word) in enumerate(cases):
            with self.subTest(config=text[:40]):
                path = lib.write_file(os.path.join(self.dir, "bad-%d.conf" % i), text)
                p = subprocess.run([lib.LIVESWAP, "--instance", "bad%d" % i, "--config", path, "-s", self.v1, "-p",
                                    str(lib.free_port())], env=self.sup.env, capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 78, p.stderr)
                self.assertIn("%s:%d: " % (path, line), p.stderr)
                self.assertIn(word, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assert_nothing_changed()


if __name__ == "__main__":
    lib.main()
