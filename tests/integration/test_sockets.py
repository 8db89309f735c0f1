#!/usr/bin/env python3
"""Sockets passed by systemd (systemd-socket-activate) and sockets liveswap binds."""

import os
import subprocess

import lib
from test_upgrade import notify_config


class Sockets(lib.TestCase):
    def activate(self, listen, *args):
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = lib.Supervisor(self, ["systemd-socket-activate", "-l", listen, "--fdname=web", "-E", "NOTIFY_SOCKET",
                                    "-E", "XDG_RUNTIME_DIR", "-E", "XDG_STATE_HOME", "-E", "PATH", lib.LIVESWAP,
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


if __name__ == "__main__":
    lib.main()
