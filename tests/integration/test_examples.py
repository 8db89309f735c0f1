#!/usr/bin/env python3
"""The example workers under other supervisors, as bench/ runs them: the C worker takes
Server::Starter's sockets (SERVER_STARTER_PORT), the Node worker listens on PORT for
PM2's cluster mode. Each is started the way that supervisor starts it, serves, and
drains on SIGTERM."""

import os
import shutil
import signal
import socket
import subprocess
import time

import lib

NODE_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "node", "server.js")


def listener(family=socket.AF_INET, address=("127.0.0.1", 0)):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(address)
    s.listen(64)
    return s


class Examples(lib.TestCase):
    def spawn(self, args, env, pass_fds=()):
        # Nothing of a supervisor's own protocol: only what the other supervisor passes.
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("LISTEN_", "LIVESWAP_", "NOTIFY_SOCKET", "SERVER_STARTER_"))}
        clean.update(env)
        proc = subprocess.Popen(args, env=clean, pass_fds=pass_fds, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.kill, proc)
        return proc

    @staticmethod
    def kill(proc):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def assert_drains(self, proc):
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)

    def test_httpd_serves_server_starter_sockets(self):
        # start_server leaves each socket at whatever fd it got and names it ADDR=FD;
        # a unix path may itself contain '='.
        tcp = listener()
        port = tcp.getsockname()[1]
        path = os.path.join(self.dir, "a=b.sock")
        unix = listener(socket.AF_UNIX, path)
        spec = "127.0.0.1:%d=%d;%s=%d" % (port, tcp.fileno(), path, unix.fileno())
        proc = self.spawn([lib.HTTPD, "--version", "starter"], {"SERVER_STARTER_PORT": spec},
                          pass_fds=(tcp.fileno(), unix.fileno()))
        tcp.close()
        unix.close()
        # The requests wait in the backlogs until the worker accepts.
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "starter\n")
        self.assertEqual(lib.http_get(path)[2], "starter\n")
        self.assert_drains(proc)

    def test_httpd_refuses_server_starter_port_without_fds(self):
        proc = self.spawn([lib.HTTPD], {"SERVER_STARTER_PORT": "127.0.0.1:80=x;8080"})
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn('SERVER_STARTER_PORT item "127.0.0.1:80=x" has no fd number', err)
        self.assertIn("no listening sockets were passed", err)

    def test_httpd_prefers_listen_fds(self):
        # Under liveswap or systemd LISTEN_FDS wins, whatever else the environment says.
        port = lib.free_port()
        proc = self.spawn(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
                           "-E", "SERVER_STARTER_PORT=127.0.0.1:1=99", lib.HTTPD, "--version", "fds"], {})
        # Refused until systemd-socket-activate has bound the port.
        deadline = time.monotonic() + 30
        while True:
            try:
                body = lib.http_get(("127.0.0.1", port))[2]
                break
            except ConnectionRefusedError:
                if proc.poll() is not None:
                    self.fail("systemd-socket-activate exited: %s" % proc.communicate()[1])
                self.assertLess(time.monotonic(), deadline, "systemd-socket-activate did not bind")
                time.sleep(0.02)  # no event tells when it has bound
        self.assertEqual(body, "fds\n")
        self.assert_drains(proc)

    def test_node_listens_on_port(self):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        port = lib.free_port()
        proc = self.spawn(["node", NODE_APP], {"PORT": str(port), "APP_VERSION": "pm2"})
        # Node binds after it has loaded: wait for its start-up line.
        line = proc.stderr.readline()
        self.assertIn("serving on 1 socket(s)", line)
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, headers["x-version"], body), (200, "pm2", "pm2\n"))
        self.assert_drains(proc)

    def test_node_without_sockets_or_port_says_why(self):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        proc = self.spawn(["node", NODE_APP], {})
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("PORT is not set", err)


if __name__ == "__main__":
    lib.main()
