#!/usr/bin/env python3
"""Sockets passed by systemd (systemd-socket-activate) and sockets liveswap binds."""

import os
import stat
import subprocess

import lib
from test_upgrade import notify_config


class Sockets(lib.TestCase):
    def activate(self, listen, *args):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = lib.Supervisor(self, ["systemd-socket-activate", "-l", listen, "--fdname=web", "-E", "NOTIFY_SOCKET",
                                    "-E", "XDG_RUNTIME_DIR", "-E", "XDG_STATE_HOME", "-E", "PATH",
                                    # Sanitized workers get the adopt library preloaded: they need
                                    # the sanitizer options scripts/test sets (empty otherwise).
                                    "-E", "ASAN_OPTIONS", "-E", "UBSAN_OPTIONS", "-E", "LIVESWAP_ADOPT_LIBRARY",
                                    lib.LIVESWAP,
                                    "--instance", "web", "--config", notify_config(self), "-s", v1, *args])
        sup.wait_output("Listening on")  # systemd-socket-activate has bound the socket
        return sup, v2

    def test_tcp_from_systemd(self):
        port = lib.free_port()
        other = lib.free_port()
        # -p is ignored when systemd passes sockets.
        sup, v2 = self.activate("127.0.0.1:%d" % port, "-p", str(other))
        # systemd-socket-activate execs liveswap on the first connection: make one.
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body), (200, "v1\n"))
        sup.wait_ready()
        self.assertIn("ignoring --listen/--port", sup.output())
        self.assertEqual(lib.http_get(("127.0.0.1", port), "/env?name=LISTEN_FDNAMES")[2], "web")
        with self.assertRaises(ConnectionRefusedError):
            lib.http_get(("127.0.0.1", other))
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4)
        sup.client("-i", "web", "-u", v2, check=0)
        self.assert_no_failures(load.stop(), sup)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_unix_from_systemd(self):
        path = os.path.join(self.dir, "web.sock")
        sup, v2 = self.activate(path)
        self.assertEqual(lib.http_get(path)[2], "v1\n")
        sup.wait_ready()
        load = lib.Load(self, "unix:" + path, clients=4)
        sup.client("-i", "web", "-u", v2, check=0)
        self.assert_no_failures(load.stop(), sup)
        self.assertEqual(lib.http_get(path)[2], "v2\n")

    def test_port_flag(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-a", "127.0.0.1")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")

    def test_listen_ipv6_and_unix(self):
        port = lib.free_port()
        path = os.path.join(self.dir, "s.sock")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "--listen", "[::1]:%d" % port,
                   "--listen", path)
        self.assertEqual(lib.http_get(path)[2], "v1\n")
        out = subprocess.run(["curl", "-sS", "-g", "http://[::1]:%d/" % port], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 7 and "Address family" in out.stderr:
            self.skipTest("no IPv6 loopback on this machine")
        self.assertEqual(out.stdout, "v1\n", out.stderr)

    def test_unix_socket_file_removed_on_exit(self):
        path = os.path.join(self.dir, "s.sock")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "--listen", path)
        self.assertEqual(lib.http_get(path)[2], "v1\n")
        self.assertEqual(sup.stop(), 0)
        self.assertFalse(os.path.lexists(path), "the socket file was left behind")

    def test_port_in_use(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        first = self.start("--instance", "one", "--config", notify_config(self), "-s", v1, "-p", str(port))
        second = self.start("--instance", "two", "--config", notify_config(self), "-s", v1, "-p", str(port),
                            ready=False)
        self.assertEqual(second.proc.wait(10), 1)
        self.assertIn("Cannot bind", second.output())
        self.assertIn("Address already in use", second.output())
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertIsNone(first.proc.poll())

    def start_unix(self, *args, config=None, umask=0o077):
        """liveswap listening on a unix socket it binds itself, started under UMASK (the
        tighter the umask, the clearer that the mode does not come from it)."""
        path = os.path.join(self.dir, "s.sock")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        saved = os.umask(umask)
        try:
            self.start("--instance", "web", "--config", config or notify_config(self), "-s", v1, "--listen", path,
                       *args)
        finally:
            os.umask(saved)
        self.assertEqual(lib.http_get(path)[2], "v1\n")
        return stat.S_IMODE(os.stat(path).st_mode)

    def mode_config(self, mode):
        conf = notify_config(self)
        with open(conf, "a") as f:
            f.write("[socket]\nsocket_mode = %s\n" % mode)
        return conf

    def test_unix_socket_mode_default(self):
        # Anyone may connect, as with systemd's SocketMode= default; not 0777 & ~umask.
        self.assertEqual(self.start_unix(), 0o666)

    def test_unix_socket_mode_flag(self):
        self.assertEqual(self.start_unix("--socket-mode", "0600", umask=0o000), 0o600)

    def test_unix_socket_mode_config_and_flag_over_it(self):
        self.assertEqual(self.start_unix(config=self.mode_config("0640")), 0o640)
        for sup in self.supervisors:
            self.assertEqual(sup.stop(), 0)
        self.assertEqual(self.start_unix("--socket-mode", "660", config=self.mode_config("0640")), 0o660)

    def test_unix_socket_mode_bad(self):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        path = os.path.join(self.dir, "s.sock")
        for bad in ("999", "0x1b6", "1777", "", "rw-rw-rw-"):
            p = subprocess.run([lib.LIVESWAP, "--instance", "web", "-s", v1, "--listen", path, "--socket-mode", bad],
                               capture_output=True, text=True, timeout=30, cwd=self.dir)
            self.assertEqual(p.returncode, 2, "%r: %s" % (bad, p.stderr))
            self.assertIn("invalid socket mode '%s'" % bad, p.stderr)
        conf = lib.write_file(os.path.join(self.dir, "bad.conf"), "[worker]\nworkers = 2\n[socket]\nsocket_mode = 888\n")
        p = subprocess.run([lib.LIVESWAP, "--config", conf, "-s", v1, "--listen", path], capture_output=True,
                           text=True, timeout=30, cwd=self.dir)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertRegex(p.stderr, r"^%s:4: invalid socket_mode '888'" % conf)
        self.assertFalse(os.path.lexists(path), "a refused start left a socket behind")

    def test_unix_socket_mode_leaves_systemd_sockets_alone(self):
        path = os.path.join(self.dir, "web.sock")
        sup, _ = self.activate(path, "--socket-mode", "0600")
        before = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(lib.http_get(path)[2], "v1\n")
        sup.wait_ready()
        self.assertNotEqual(before, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), before)


if __name__ == "__main__":
    lib.main()
