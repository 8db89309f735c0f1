#!/usr/bin/env python3
"""Apps that bind their own port, unmodified (contract section 9, adopt).

Real unmodified servers — a plain Node `server.listen(PORT)` without a SIGTERM handler,
`python3 -m http.server`, nginx with a master and two workers — run under liveswap with
the preload library: their bind() adopts the passed socket, `ready = listen` makes them
ready when they listen, and the library drains them on the drain signal, so that
upgrades under new-connection and keep-alive load fail no request and no old process
waits for drain_timeout. Then the edges: an app binding [::] while the passed socket is
127.0.0.1, one binding a port that is not passed, a unix socket app, and a statically
linked app, which cannot be preloaded: its upgrade fails with the explanation.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import lib
import test_wrk

ADOPT_LIBRARY = os.environ.get("LIVESWAP_ADOPT_LIBRARY")

# The seed's hello world: no fd handling, no signal handler. /slow takes 300 ms.
NODE_APP = """const http = require('node:http');
const version = process.env.APP_VERSION || 'v1';
http.createServer((req, res) => {
  const delay = req.url.startsWith('/slow') ? 300 : 0;
  setTimeout(() => {
    res.setHeader('X-Version', version);
    res.end('hello from ' + version + '\\n');
  }, delay);
}).listen(Number(process.env.PORT), process.env.HOST);
"""

DRAIN_TIMEOUT = 30  # seconds: an old process that waited for it would show


# A server whose threads wait in a blocking accept() (the common thread-pool design: C,
# Java, Python's socketserver main thread). Answers name the version (argv[1]); /slow takes
# 3 s and makes the file argv[2] as it begins.
ACCEPT_THREADS_APP = r"""
import os, socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(16)
def serve(c):
    if b"/slow" in c.recv(4096):
        open(sys.argv[2], "w").close()
        time.sleep(3)
    body = sys.argv[1].encode() + b"\n"
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    c.close()
def accepter():
    while True:
        threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
for _ in range(2):
    threading.Thread(target=accepter, daemon=True).start()
threading.Event().wait()
"""


def blocked_in_tcp_accept(pid):
    """The threads of PID asleep in the kernel's accept() on a TCP socket."""
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                if f.read().strip() == "inet_csk_accept":
                    found.append(int(tid))
        except OSError:
            pass
    return found


def worker_pids(sup, instance):
    return [w[0] for w in sup.get_property(instance, "Workers")]


class Adopt(lib.TestCase):
    def setUp(self):
        if not ADOPT_LIBRARY:
            self.skipTest("LIVESWAP_ADOPT_LIBRARY is not set (run through meson test)")
        super().setUp()

    def node_target(self, name, version, host=""):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        lib.write_file(os.path.join(d, "app.js"), NODE_APP)
        lib.write_file(os.path.join(d, "start"), "#!/bin/sh\nAPP_VERSION=%s exec node app.js\n" % version, 0o755)
        return d

    def conf(self, port, extra=""):
        return lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[worker]\nenvironment = PORT=%d\n[upgrade]\nready = listen\nready_timeout = 20s\n"
                              "drain_timeout = %ds\n%s" % (port, DRAIN_TIMEOUT, extra))

    def upgrades_under_load(self, sup, instance, port, targets, slow=True):
        loads = [lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close"),
                 lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="keepalive")]
        if slow:
            loads.append(lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close", path="/slow"))
        lib.wait_load(port, 4)
        durations = []
        for i, target in enumerate(targets):
            old = worker_pids(sup, instance)
            p = sup.client("-u", target, check=0)
            self.assertIn("serving generation %d" % (i + 2), p.stdout)
            begun = time.monotonic()
            sup.wait_status(r"^Serving generation %d \([^)]*\): \d+/\d+ ready$" % (i + 2), timeout=DRAIN_TIMEOUT)
            self.assert_pids_gone(old, timeout=DRAIN_TIMEOUT)
            durations.append(time.monotonic() - begun)
        results = [load.stop() for load in loads]
        for r in results:
            self.assert_no_failures(r, sup)
        print("%d upgrades; drains took at most %.2fs; requests %s" % (
            len(targets), max(durations), [int(r["ok"]) for r in results]), file=sys.stderr)
        # Drained by the library, then handed the drain signal: an app without a handler
        # dies of it (its default action), at once; none was killed at drain_timeout.
        self.assertNotIn("killed by signal KILL", sup.output())
        return durations, results

    def test_node_unmodified_through_upgrades(self):
        port = lib.free_port()
        v1, v2 = self.node_target("v1", "v1"), self.node_target("v2", "v2")
        sup = self.start("--instance", "node", "--config", self.conf(port), "-s", v1, "-p", str(port), "-f", "2")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[0], 200)
        durations, results = self.upgrades_under_load(sup, "node", port, [v2, v1] * 5)
        # From the upgrade's end (the last drain began) to the old workers' exit: within
        # 2 s (1 s idle grace for the keep-alive connections), plus slack for a loaded
        # machine; without the library's drain they would wait for drain_timeout (30 s).
        self.assertLess(max(durations), 4.0, durations)
        self.assertGreater(int(results[2]["ok"]), 0)  # the 300 ms requests ran throughout
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_node_unmodified_wrk(self):
        if not shutil.which("wrk"):
            self.skipTest("wrk is not installed")
        port = lib.free_port()
        v1, v2 = self.node_target("v1", "v1"), self.node_target("v2", "v2")
        sup = self.start("--instance", "node", "--config", self.conf(port), "-s", v1, "-p", str(port), "-f", "2")
        runner = test_wrk.Wrk(methodName="run")
        runner.dir, runner.assertEqual, runner.assertNotIn, runner.assertGreater = (
            self.dir, self.assertEqual, self.assertNotIn, self.assertGreater)
        runner.addCleanup = self.addCleanup
        test_wrk.Wrk.run_upgrades(runner, sup, port, [v2, v1] * 2, 2)
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assertNotIn("killed by signal KILL", sup.output())

    def test_node_example_keepalive_rules(self):
        """examples/node/server.js (plain) through the library's drain, one connection at a
        time: the next request on a kept-alive connection is answered with Connection:
        close (the library rewrote Node's keep-alive), an idle one closes only after the
        grace period (3 s here, through LIVESWAP_IDLE_GRACE_MS)."""
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        node_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "node")
        v1, v2 = os.path.join(self.dir, "v1"), os.path.join(self.dir, "v2")
        shutil.copytree(node_dir, v1)
        shutil.copytree(node_dir, v2)
        lib.write_file(os.path.join(v2, "start"), "#!/bin/sh\nAPP_VERSION=v2 exec node server.js\n", 0o755)
        port = lib.free_port()
        conf = self.conf(port)
        # Below Node's own keepAliveTimeout (5 s since the last response, which comes
        # before the drain, stable_time and all), which would close the idle one first.
        grace_ms = 2500
        with open(conf, "a") as f:
            f.write("[worker]\nenvironment = LIVESWAP_IDLE_GRACE_MS=%d\n" % grace_ms)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")
        runner = test_wrk.KeepAliveDrain(methodName="run")
        runner.GRACE_MS = grace_ms
        for name in ("assertEqual", "assertGreaterEqual", "assertIn", "assertNotIn", "addCleanup"):
            setattr(runner, name, getattr(self, name))
        # An app without a SIGTERM handler dies of the signal the library hands on.
        test_wrk.KeepAliveDrain.check_idle_drain(runner, sup, port, "web", v2, grace_ms=grace_ms,
                                                 end="killed by signal TERM while draining")
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_python_http_server(self):
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
        port = lib.free_port()
        targets = []
        for v in ("v1", "v2"):
            d = os.path.join(self.dir, v)
            os.makedirs(d)
            lib.write_file(os.path.join(d, "index.html"), v + "\n")
            lib.write_file(os.path.join(d, "start"), "#!/bin/sh\nexec %s -m http.server %d\n" % (python, port), 0o755)
            targets.append(d)
        sup = self.start("--instance", "py", "--config", self.conf(port), "-s", targets[0], "-p", str(port),
                         "-f", "2")
        status, _, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body.strip()), (200, "v1"))
        self.upgrades_under_load(sup, "py", port, [targets[1], targets[0]] * 3, slow=False)
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_threads_blocked_in_accept_leave_the_shared_socket(self):
        """Threads asleep in accept() on the shared socket when the drain begins stay
        there after the library swaps the app's fd (a sleeping accept() holds the file it
        began on), and would take the next connections meant for the new version: served
        by old code after the drain began, or lost when the process dies with one just
        taken (python3 -m http.server, whose main thread waits in accept() once it lost a
        connection to a sibling, lost 1 request in ~12,000 so under load). The drain
        interrupts them; they then wait on the dead socket."""
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
        port = lib.free_port()
        begun = os.path.join(self.dir, "slow-begun")
        targets = []
        for v in ("v1", "v2"):
            d = os.path.join(self.dir, v)
            os.makedirs(d)
            lib.write_file(os.path.join(d, "app.py"), ACCEPT_THREADS_APP)
            lib.write_file(os.path.join(d, "start"), "#!/bin/sh\nexec %s app.py %s %s\n" % (python, v, begun), 0o755)
            targets.append(d)
        sup = self.start("--instance", "acc", "--config", self.conf(port), "-s", targets[0], "-p", str(port),
                         "-f", "1")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        [old] = worker_pids(sup, "acc")
        deadline = time.monotonic() + 10
        while len(blocked_in_tcp_accept(old)) < 2:
            self.assertLess(time.monotonic(), deadline, "the app's 2 threads never waited in accept()")
            time.sleep(0.01)  # /proc has no event to wait on; bounded above
        slow = {}
        slow_thread = threading.Thread(target=lambda: slow.update(r=lib.http_get(("127.0.0.1", port), "/slow")))
        slow_thread.start()  # holds the old worker's drain open for 3 s
        deadline = time.monotonic() + 10
        while len(blocked_in_tcp_accept(old)) < 2 or not os.path.exists(begun):
            self.assertLess(time.monotonic(), deadline, "the old worker never took /slow")
            time.sleep(0.01)
        sup.client("-u", targets[1], check=0)
        # The drain begins; then no thread of the old worker may still wait on the shared
        # socket (without the interruption they wait there for the next clients).
        deadline = time.monotonic() + 5.0
        while blocked_in_tcp_accept(old) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = blocked_in_tcp_accept(old)
        answers = [lib.http_get(("127.0.0.1", port))[2].strip() for _ in range(6)]
        slow_thread.join(15)
        self.assertEqual(left, [], "old threads still asleep in accept() on the shared socket")
        self.assertEqual(answers, ["v2"] * 6, "answered by the old version after its drain began")
        self.assertEqual(slow["r"][2], "v1\n")  # the request in flight was finished
        self.assert_pids_gone([old], timeout=DRAIN_TIMEOUT)
        self.assertNotIn("killed by signal KILL", sup.output())
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_nginx_master_and_workers(self):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not nginx:
            self.skipTest("nginx is not installed (Debian package nginx-light; scripts/setup installs it)")
        port = lib.free_port()
        os.chmod(self.dir, 0o755)  # nginx's workers run as nobody when started as root
        targets = []
        for v in ("v1", "v2"):
            d = os.path.join(self.dir, v)
            os.makedirs(os.path.join(d, "html"))
            lib.write_file(os.path.join(d, "html", "index.html"), v + "\n")
            lib.write_file(os.path.join(d, "nginx.conf"), """daemon off;
master_process on;
worker_processes 2;
pid %(d)s/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(d)s/tmp; proxy_temp_path %(d)s/tmp; fastcgi_temp_path %(d)s/tmp;
    uwsgi_temp_path %(d)s/tmp; scgi_temp_path %(d)s/tmp;
    keepalive_timeout 60s;
    server { listen 127.0.0.1:%(port)d; root %(d)s/html; add_header X-Version %(v)s; }
}
""" % {"d": d, "port": port, "v": v})
            lib.write_file(os.path.join(d, "start"), "#!/bin/sh\nexec %s -p %s -c %s/nginx.conf\n" % (nginx, d, d),
                           0o755)
            targets.append(d)
        # SIGQUIT is nginx's graceful stop; SIGTERM (fast) would have the master kill its
        # workers with SIGKILL after about 1.5 s, whatever they are doing.
        sup = self.start("--instance", "ngx", "--config", self.conf(port, "drain_signal = SIGQUIT\n"), "-s",
                         targets[0], "-p", str(port), "-f", "2")
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body.strip()), (200, "v1"))
        # The master and its workers all serve the adopted socket.
        for pid in worker_pids(sup, "ngx"):
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                children = f.read().split()
            self.assertEqual(len(children), 2, sup.output())
        self.upgrades_under_load(sup, "ngx", port, [targets[1], targets[0]] * 2, slow=False)
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_ipv6_wildcard_other_port_and_unix(self):
        """[::]:PORT adopts 127.0.0.1:PORT; a port not passed gets the app's own socket; a
        unix socket path adopts the passed one."""
        port, other = lib.free_port(), lib.free_port()
        path = os.path.join(self.dir, "app.sock")
        app = lib.write_file(os.path.join(self.dir, "app.py"), """import os, socket, sys
def serve(s, name):
    import threading
    def loop():
        while True:
            c, _ = s.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %%d\\r\\nConnection: close\\r\\n\\r\\n%%s" %% (len(name), name))
            c.close()
    threading.Thread(target=loop, daemon=True).start()
six = socket.socket(socket.AF_INET6)
six.bind(("::", %(port)d))
six.listen()
print("family after bind:", six.getsockname(), file=sys.stderr, flush=True)
mine = socket.socket(socket.AF_INET)
mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
mine.bind(("127.0.0.1", %(other)d))
mine.listen()
u = socket.socket(socket.AF_UNIX)
u.bind(%(path)r)
u.listen()
serve(six, b"six"); serve(mine, b"mine"); serve(u, b"unix")
import signal; signal.pause()
""" % {"port": port, "other": other, "path": path})
        target = lib.write_file(os.path.join(self.dir, "start"),
                                "#!/bin/sh\nexec /usr/bin/python3 %s\n" % app, 0o755)
        sup = self.start("--instance", "edges", "--config", self.conf(port), "-s", target, "-l",
                         "127.0.0.1:%d" % port, "-l", path, "-f", "1")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "six")
        self.assertEqual(lib.http_get(("127.0.0.1", other))[2], "mine")
        self.assertEqual(lib.http_get(path)[2], "unix")
        pid = worker_pids(sup, "edges")[0]
        fds = {os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)}
        self.assertEqual(len([f for f in fds if f.startswith("socket:")]), 4 + 0, fds)  # 2 passed, + own, + control
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_uninstalled_program_finds_the_library_beside_it(self):
        """README's first steps run build/src/liveswap uninstalled: the adopt library is
        the copy built beside the program, not an installed path that does not exist
        (ld.so would print an error for every worker and adopt nothing)."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        beside = os.path.join(os.path.dirname(os.path.realpath(lib.LIVESWAP)), "libliveswap-adopt.so")
        if not os.path.exists(beside):
            self.skipTest("no adopt library beside %s (not a build tree)" % lib.LIVESWAP)
        sup = self.start("--instance", "web", "-s", v1, "-p", str(port), "-f", "1",
                         env={"LIVESWAP_ADOPT_LIBRARY": ""})
        pid = worker_pids(sup, "web")[0]
        with open("/proc/%d/environ" % pid, "rb") as f:
            environ = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        self.assertEqual(environ.get(b"LD_PRELOAD"), beside.encode())
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertNotIn("cannot be preloaded", sup.output())

    def test_static_binary_explained(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler")
        src = lib.write_file(os.path.join(self.dir, "static.c"), """#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(getenv("PORT"))) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, (struct sockaddr *) &a, sizeof(a)) < 0) { perror("bind"); return 1; }
        listen(s, 16);
        for (;;) pause();
}
""")
        static = os.path.join(self.dir, "static-app")
        r = subprocess.run([cc, "-static", "-o", static, src], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cc -static does not work here: " + r.stderr)
        port = lib.free_port()
        v1 = self.node_target("v1", "v1")
        sup = self.start("--instance", "st", "--config", self.conf(port), "-s", v1, "-p", str(port), "-f", "1")
        p = sup.client("-u", static)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("statically linked", p.stdout + p.stderr)
        self.assertIn("LISTEN_FDS", p.stdout + p.stderr)
        self.assertIn("statically linked", sup.output())
        self.assertIn("Address already in use", sup.output())
        # The old code keeps serving.
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body), (200, "hello from v1\n"))
        self.assertEqual(sup.stop(), 0, sup.output())


if __name__ == "__main__":
    lib.main()
