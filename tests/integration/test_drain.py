#!/usr/bin/env python3
"""Draining: in-flight requests finish across an upgrade; a worker that ignores the
drain signal is killed after drain_timeout; what a worker forked drains and dies with it."""

import os
import sys
import threading
import time

import lib
from test_upgrade import notify_config


class Drain(lib.TestCase):
    def test_inflight_requests_complete(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "2")
        results = []

        def slow():
            results.append(lib.http_get(("127.0.0.1", port), "/sleep?ms=5000", timeout=30))

        # 5 s each (longer than the 2 s asked for), so that all six are in flight at once
        # even on a loaded machine where starting the threads takes a while (3 s once
        # was not enough under ASan with a second test suite running beside it).
        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        # In flight = established and accepted by a worker.
        lib.wait_accepted(self, port, 6, timeout=10)
        started = time.monotonic()
        sup.client("-i", "web", "-u", v2, check=0)
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 6)
        for status, headers, body in results:
            self.assertEqual((status, body), (200, "v1\n"))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_ignoring_drain_signal_gets_killed(self):
        port = lib.free_port()
        stubborn = lib.make_target(os.path.join(self.dir, "a"), "v1", "--ignore-term")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, drain_timeout="1s")
        sup = self.start("--instance", "web", "--config", conf, "-s", stubborn, "-p", str(port), "-f", "1")
        old = [w[0] for w in sup.get_property("web", "Workers")]
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close")
        started = time.monotonic()
        sup.client("-i", "web", "-u", v2, check=0)
        # The stubborn worker is killed once drain_timeout has passed.
        sup.wait_status(r"Serving generation 2 .*1/1 ready$", timeout=15)
        elapsed = time.monotonic() - started
        self.assert_pids_gone(old)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertIn("Killing worker %d" % old[0], sup.output())
        result = load.stop()
        # A worker that ignores the drain signal keeps accepting until SIGKILL, and the
        # requests it holds at that instant die with it: no supervisor can finish them.
        # Each client has at most one request in flight, so at most `clients` can fail.
        self.assertGreater(int(result["ok"]), 0, result["_raw"])
        self.assertLessEqual(int(result["failed"]), 4, result["_raw"])
        print("stubborn worker killed: %s requests, %s failed" % (result["requests"], result["failed"]))


# A pre-fork server in miniature: the worker forks one child, both answer on fd 3 with
# VERSION, and the parent exits on SIGTERM without telling its child (a real master would
# forward the signal; a careless one, or a shell wrapper's child, does not). CHILD_TERM is
# "drain" (the child notes the SIGTERM and exits) or "ignore" (it would serve old code forever).
PREFORK = r"""#!%s
import os, signal, socket, sys
version, pidfile, child_term = sys.argv[1:4]
listener = socket.socket(fileno=3)
pid = os.fork()
if pid == 0:
    if child_term == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        def drained(*_):
            open(pidfile + ".child-drained", "w").close()
            os._exit(0)
        signal.signal(signal.SIGTERM, drained)
else:
    with open(pidfile + ".tmp", "w") as f:
        f.write("%%d %%d\n" %% (os.getpid(), pid))
    os.rename(pidfile + ".tmp", pidfile)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        body = (version + "\n").encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %%d\r\nConnection: close\r\n\r\n%%s" %% (len(body), body))
""" % sys.executable


class ForkingWorker(lib.TestCase):
    def run_prefork(self, child_term):
        port = lib.free_port()
        pidfile = os.path.join(self.dir, "prefork.pids")
        script = lib.write_file(os.path.join(self.dir, "prefork.py"), PREFORK, 0o755)
        old = lib.write_file(os.path.join(self.dir, "old"), "#!/bin/sh\nexec %s old %s %s\n" % (
            script, pidfile, child_term), 0o755)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nready = delay\nready_delay = 200ms\ndrain_timeout = 30s\n")
        sup = self.start("--instance", "web", "--config", conf, "-s", old, "-p", str(port), "-f", "1")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "old\n")
        deadline = time.monotonic() + 10
        while not os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker writes it right after its fork; no event to wait on
        with open(pidfile) as f:
            parent, child = (int(v) for v in f.read().split())
        sup.client("-i", "web", "-u", v2, check=0)
        # Both processes of the old worker are gone well before drain_timeout (30 s): the
        # drain signal reached the whole process group, or the leftover was killed when
        # its leader exited. Nothing of the old code answers any more.
        self.assert_pids_gone([parent, child], timeout=10)
        for _ in range(20):
            self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        return sup, parent

    def test_children_get_the_drain_signal(self):
        self.run_prefork("drain")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "prefork.pids.child-drained")))

    def test_leftover_children_are_killed_with_their_worker(self):
        # The child ignores SIGTERM: only the SIGKILL when its parent exited can have
        # ended it, long before drain_timeout.
        self.run_prefork("ignore")


if __name__ == "__main__":
    lib.main()
