#!/usr/bin/env python3
"""wrk through upgrades: keep-alive clients that never retry see no error.

wrk keeps every connection alive, writes the next request the moment a response is
complete and counts a connection the server closes under it as a read or write error
(it reconnects, but never resends). So it sees the HTTP/1.1 keep-alive race that our
own loadgen retries and counts apart: a worker that closes an idle keep-alive connection
just as the client sends its next request. A worker that drains as liveswap(8)
describes (Connection: close on the next response of every kept-alive connection, an
idle one closed only after a grace period of real idleness, a lingering close) leaves
wrk with 0 socket errors and 0 non-2xx responses; before the examples drained so, each
upgrade cost them 20 to 40 read errors here (issue 9: 461 in 2.8 M requests over 10
upgrades).

wrk is the Debian package `wrk` (scripts/setup installs it); its tests are skipped when it
is missing. The Node case also needs node (scripts/setup installs nodejs).

KeepAliveDrain checks the same rules one connection at a time, without wrk: a request
sent on a kept-alive connection after its worker began to drain is answered (with
Connection: close), and an idle one is closed only after the grace period. And
LoadgenRace checks that our own load generator counts the race it retries as its own
class, never as ok."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import lib

NODE_DIR = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "node"))
CONNECTIONS = 32  # the issue used 64; this machine has 2 cores shared with other work
MIN_REQUESTS = 2000  # far below what a run makes, far above "wrk never got going"

# Counts the X-Version of every response per wrk thread and prints them at the end, so
# the test can check that both versions answered, i.e. that the requests straddled the
# upgrades. (A thread's globals live in its own Lua state; done() collects them.)
VERSIONS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) versions = {} end
function response(status, headers, body)
  local v = headers["X-Version"] or "-"
  versions[v] = (versions[v] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for v, n in pairs(t:get("versions")) do total[v] = (total[v] or 0) + n end
  end
  for v, n in pairs(total) do io.write(string.format("version %s %d\\n", v, n)) end
end
"""


def parse_wrk(out):
    """{requests, socket_errors: {connect,read,write,timeout}, non_2xx, versions: {v: n}}."""
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    result = {"requests": int(m.group(1)) if m else 0, "socket_errors": {}, "non_2xx": 0, "versions": {}}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        result["non_2xx"] = int(m.group(1))
    for v, n in re.findall(r"^version (\S+) (\d+)$", out, re.M):
        result["versions"][v] = int(n)
    return result


class Wrk(lib.TestCase):
    def setUp(self):
        if not shutil.which("wrk"):
            self.skipTest("wrk is not installed (Debian package wrk; scripts/setup installs it)")
        super().setUp()

    def start_wrk(self, port):
        script = lib.write_file(os.path.join(self.dir, "versions.lua"), VERSIONS_LUA)
        # Runs until SIGINT (then wrk prints its report as after -d); -d only bounds a
        # test that dies on the way. A long --timeout: a loaded machine is slow, not broken.
        proc = subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", "600s", "--timeout", "20s",
                                 "-s", script, "http://127.0.0.1:%d/" % port],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self.addCleanup(stop)
        return proc

    def stop_wrk(self, proc):
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        return out

    def run_upgrades(self, sup, port, targets, workers):
        wrk = self.start_wrk(port)
        # Every connection established and accepted: the load is on before the first drain.
        lib.wait_load(port, CONNECTIONS)
        for i, target in enumerate(targets):
            p = sup.client("-u", target, check=0)  # returns once the new generation is live
            self.assertIn("serving generation %d" % (i + 2), p.stdout)
            # Then the old workers drain under the load, to the end: the STATUS that no
            # longer says "draining". Each drain is whole, none overlaps the next upgrade.
            sup.wait_status(r"^Serving generation %d \([^)]*\): %d/%d ready$" % (i + 2, workers, workers))
        out = self.stop_wrk(wrk)
        result = parse_wrk(out)
        print("wrk -c %d through %d upgrades: %d requests, socket errors %s, non-2xx %d, versions %s" % (
            CONNECTIONS, len(targets), result["requests"], result["socket_errors"] or "none", result["non_2xx"],
            result["versions"]), file=sys.stderr)
        self.assertEqual([n for n in result["socket_errors"].values() if n], [], out + sup.output())
        self.assertEqual(result["non_2xx"], 0, out)
        self.assertNotIn("Non-2xx", out)
        self.assertGreater(result["requests"], MIN_REQUESTS, out)
        # Both versions answered: the requests ran through the upgrades, not beside them.
        self.assertEqual(sorted(result["versions"]), ["v1", "v2"], out)
        self.assertEqual(sum(result["versions"].values()), result["requests"], out)
        return result

    def test_c_example_keepalive_through_upgrades(self):
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nready = notify\nready_timeout = 20s\ndrain_timeout = 30s\n")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        port = lib.free_port()
        sup = self.start("--config", conf, "-s", v1, "-p", str(port), "-f", "2")
        targets = [v2, v1] * 5  # 10 upgrades, as in the issue
        self.run_upgrades(sup, port, targets, 2)
        self.assertEqual(sup.stop(), 0, sup.output())
        # Every drained worker exited by itself, none was killed at drain_timeout.
        self.assertNotIn("while draining", sup.output())

    def test_node_example_keepalive_through_upgrades(self):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        # The socket-activation-aware example (aware.js) and its own drain; test_adopt
        # runs the plain server.js through the library's.
        v1 = os.path.join(self.dir, "node-v1")
        shutil.copytree(NODE_DIR, v1)
        lib.write_file(os.path.join(v1, "start"), "#!/bin/sh\nexec node aware.js\n", 0o755)
        v2 = os.path.join(self.dir, "node-v2")
        shutil.copytree(NODE_DIR, v2)
        lib.write_file(os.path.join(v2, "start"), "#!/bin/sh\nAPP_VERSION=v2 exec node aware.js\n", 0o755)
        # aware.js sends no READY=1 (Node cannot without a library): ready by delay.
        conf = lib.write_file(os.path.join(self.dir, "node.conf"),
                              "[upgrade]\nready = delay\nready_delay = 1s\ndrain_timeout = 30s\n")
        port = lib.free_port()
        sup = self.start("--instance", "node", "--config", conf, "-s", v1, "-p", str(port), "-f", "2")
        for pid in [w[0] for w in sup.get_property("node", "Workers")]:
            sup.wait_output("aware.js v1: pid %d serving on 1 socket(s)" % pid)
        targets = [v2, v1] * 2
        self.run_upgrades(sup, port, targets, 2)
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assertNotIn("while draining", sup.output())


def read_response(conn):
    """One response (Content-Length framed) from CONN: (status, headers, body, rest)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise AssertionError("connection closed after %r" % data)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        if not chunk:
            raise AssertionError("connection closed in the body")
        body += chunk
    return int(lines[0].split()[1]), headers, body.decode()


class KeepAliveDrain(lib.TestCase):
    GRACE_MS = 5000  # --idle-grace: generous, so that a loaded machine cannot outrun it

    def check_idle_drain(self, sup, port, instance, v2, grace_ms=GRACE_MS, end="exited with status 0 after draining"):
        """Two kept-alive connections to SUP's one worker, each with a request answered,
        then an upgrade to V2: the next request on one is answered by the draining
        worker with Connection: close; the other, idle, closes only after the grace."""
        request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
        busy, idle = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
        self.addCleanup(busy.close)
        self.addCleanup(idle.close)
        for conn in (busy, idle):
            conn.settimeout(30)
            conn.sendall(request)
            status, headers, body = read_response(conn)
            self.assertEqual((status, body, headers.get("connection", "keep-alive")), (200, "v1\n", "keep-alive"))
        old = sup.get_property(instance, "Workers")[0][0]

        sup.client("-i", instance, "-u", v2, check=0)
        sup.wait_output("Draining worker %d" % old)  # logged as the drain signal is sent
        drained = time.monotonic()
        # The client sends its next request on the kept-alive connection only now: a
        # worker that closed idle connections at once has closed it (or does so as the
        # request arrives) and the client reads nothing, or a reset.
        busy.sendall(request)
        status, headers, body = read_response(busy)
        self.assertEqual((status, body, headers.get("connection")), (200, "v1\n", "close"))
        self.assertEqual(busy.recv(1), b"")  # then the worker closes it
        # The idle one stays open for the grace period, then closes without a reset.
        self.assertEqual(idle.recv(1), b"")
        self.assertGreaterEqual(time.monotonic() - drained, grace_ms / 1000 * 0.9)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        sup.wait_status(r"^Serving generation 2 \([^)]*\): 1/1 ready$")
        self.assertIn(end, sup.output())
        self.assertNotIn("killed by signal KILL", sup.output())

    def test_c_example(self):
        port = lib.free_port()
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nready = notify\ndrain_timeout = 30s\n")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1", "--idle-grace", str(self.GRACE_MS))
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")
        self.check_idle_drain(sup, port, "web", v2)

    def test_node_example(self):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        v1, v2 = os.path.join(self.dir, "node-v1"), os.path.join(self.dir, "node-v2")
        shutil.copytree(NODE_DIR, v1)
        shutil.copytree(NODE_DIR, v2)
        # Node closes a kept-alive connection by itself once it has been idle for its
        # keepAliveTimeout (5 s) since its last response, which came before the drain:
        # the grace must end before that, so the drain here starts soon after it.
        grace_ms = 2500
        lib.write_file(os.path.join(v1, "start"), "#!/bin/sh\nexec node aware.js --idle-grace %d\n" % grace_ms,
                       0o755)
        lib.write_file(os.path.join(v2, "start"), "#!/bin/sh\nAPP_VERSION=v2 exec node aware.js\n", 0o755)
        conf = lib.write_file(os.path.join(self.dir, "node.conf"),
                              "[upgrade]\nready = delay\nready_delay = 200ms\nstable_time = 0\ndrain_timeout = 30s\n")
        port = lib.free_port()
        sup = self.start("--instance", "node", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")
        pid = sup.get_property("node", "Workers")[0][0]
        sup.wait_output("aware.js v1: pid %d serving on 1 socket(s)" % pid)
        self.check_idle_drain(sup, port, "node", v2, grace_ms)


class LoadgenRace(lib.TestCase):
    def test_retried_race_is_its_own_class(self):
        """A server that answers the first request on each connection (keep-alive) and
        closes at the second without a byte of answer: the race, every time. loadgen
        retries each such request once on a new connection, where it is answered, and
        counts it as retried: neither ok nor failed."""
        srv = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(srv.close)
        self.addCleanup(srv.shutdown, socket.SHUT_RDWR)  # first: wakes the accept() below

        def serve(conn):
            buf, served = b"", 0
            with conn:
                while True:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        buf = buf.partition(b"\r\n\r\n")[2]
                        if served == 1:
                            return  # closed under the second request
                        served += 1
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Version: r\r\n\r\nok\n")

        def accept():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return  # closed at cleanup
                threading.Thread(target=serve, args=(conn,), daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()

        out = subprocess.run([lib.LOADGEN, "--target", "127.0.0.1:%d" % srv.getsockname()[1], "--clients", "2",
                              "--mode", "keepalive", "--duration", "1"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        result = dict(line.partition("=")[::2] for line in out.splitlines())
        requests, ok, retried = int(result["requests"]), int(result["ok"]), int(result["retried"])
        self.assertEqual(result["failed"], "0", out)
        self.assertEqual(ok, 2, out)  # the first request of each client only
        self.assertGreater(retried, 10, out)
        self.assertEqual(ok + retried, requests, out)
        self.assertEqual(result["versions"], "r:%d" % requests, out)


if __name__ == "__main__":
    lib.main()
