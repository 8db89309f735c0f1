#!/usr/bin/env python3
"""The example workers under other supervisors, as bench/ runs them: the C worker takes
Server::Starter's sockets (SERVER_STARTER_PORT), the Node worker listens on PORT for
PM2's cluster mode. Each is started the way that supervisor starts it, serves, and
drains on SIGTERM. And the Node worker under liveswap itself, on the sockets it passes."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import lib

NODE_DIR = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "node"))
NODE_APP = os.path.join(NODE_DIR, "aware.js")


def listener(family=socket.AF_INET, address=("127.0.0.1", 0)):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(address)
    s.listen(64)
    return s


def readline(stream, timeout=lib.DEFAULT_TIMEOUT):
    """One line from STREAM, or an AssertionError after TIMEOUT (readline alone blocks
    for as long as the writer stays silent with the pipe open)."""
    line = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        raise AssertionError("no line within %ss" % timeout)
    return line[0]


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
        line = readline(proc.stderr)
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

    def test_node_under_liveswap_upgrades_under_load(self):
        """examples/node as liveswap runs it: a directory target started by its own
        ./start, serving on the passed fds 3 and 4 (listen({fd})), ready by ready_delay
        (it cannot send READY=1), upgraded under load with nothing failed."""
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        port = lib.free_port()
        sock_path = os.path.join(self.dir, "node.sock")
        v1 = os.path.join(self.dir, "node-v1")  # aware.js, APP_VERSION unset (v1)
        shutil.copytree(NODE_DIR, v1)
        lib.write_file(os.path.join(v1, "start"), "#!/bin/sh\nexec node aware.js\n", 0o755)
        v2 = os.path.join(self.dir, "node-v2")
        shutil.copytree(NODE_DIR, v2)
        lib.write_file(os.path.join(v2, "start"), "#!/bin/sh\nAPP_VERSION=v2 exec node aware.js\n", 0o755)
        conf = lib.write_file(os.path.join(self.dir, "node.conf"),
                              "[upgrade]\nready = delay\nready_delay = 1s\ndrain_timeout = 20s\n")
        # PORT names another port: served on LISTEN_FDS, nothing may listen there.
        decoy = lib.free_port()
        sup = self.start("--instance", "node", "--config", conf, "-s", v1, "-p", str(port), "--listen", sock_path,
                         "-f", "2", env={"PORT": str(decoy)})
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, headers["x-version"], headers["x-generation"], body), (200, "v1", "1", "v1\n"))
        self.assertEqual(lib.http_get(sock_path)[2], "v1\n")  # fd 4
        with self.assertRaises(ConnectionRefusedError):
            lib.http_get(("127.0.0.1", decoy))
        for pid in [w[0] for w in sup.get_property("node", "Workers")]:
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), v1)
            # Said once both fds listen; a worker may be ready (by delay) before that.
            sup.wait_output("aware.js v1: pid %d serving on 2 socket(s)" % pid)

        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        targets = [v2, v1, v2]
        for i, target in enumerate(targets):
            p = sup.client("-i", "node", "-u", target, check=0)
            self.assertIn("serving generation %d" % (i + 2), p.stdout)
        result = load.stop()
        self.assert_no_failures(result, sup)
        seen = lib.versions(result)
        self.assertEqual(sorted(seen), ["v1", "v2"], result["_raw"])
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(lib.http_get(sock_path)[2], "v2\n")
        workers = sup.get_property("node", "Workers")
        current = [w[0] for w in workers if w[1] == 4]
        self.assertEqual(len(current), 2, workers)
        for pid in current:
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), v2)
            sup.wait_output("aware.js v2: pid %d serving on 2 socket(s)" % pid)
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assert_pids_gone([w[0] for w in workers])
        print("node under liveswap, %d upgrades: %s requests, %s failed, versions %s, p99 %s us, max %s us" % (
            len(targets), result["requests"], result["failed"], result["versions"], result.get("p99_us"),
            result.get("max_us")))


if __name__ == "__main__":
    lib.main()
