#!/usr/bin/env python3
"""Logs per worker (contract section 10) against a stand-in for journald: each worker's
stdout and stderr reach the journal on a stream of its own, connected from the worker's
side (SO_PEERCRED pid = the worker), identified as the instance; liveswap's own lines are
native journal entries with LIVESWAP_INSTANCE=, LIVESWAP_GENERATION= and WORKER_PID=;
`liveswap -u` run as ExecReload= writes only prefixed lines on the service's stream.

No journald runs on these machines, so the file re-runs itself in a private mount
namespace with a tmpfs on /run/systemd, where it serves /run/systemd/journal/stdout
(journald's stream protocol: a header of 7 lines, then log lines) and
/run/systemd/journal/socket (the native protocol: KEY=VALUE lines, or KEY, a
little-endian 64-bit size and the value). The supervisor's stdout and stderr are a stream
to the stand-in, and JOURNAL_STREAM its DEV:INO, exactly as systemd would hand them."""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import lib

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")

# Stands in for journalctl, whose command line is all liveswapctl logs makes: records its
# argv, and answers the lookup of a generation's past worker pids from $FAKE_PIDS.
FAKE_JOURNALCTL = """#!%s
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv) + "\\n")
if "--output=json" in sys.argv:
    for pid in os.environ.get("FAKE_PIDS", "").split():
        print(json.dumps({"__CURSOR": "s=1", "WORKER_PID": pid}))
else:
    print(json.dumps(sys.argv))
"""

STANDIN_FLAG = "LIVESWAP_TEST_JOURNAL_NAMESPACE"
JOURNAL_DIR = "/run/systemd/journal"


def enter_namespace():
    """Re-runs this file in a private mount namespace with /run/systemd a tmpfs of its own."""
    if os.environ.get(STANDIN_FLAG):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/systemd"], check=True)
        os.makedirs(JOURNAL_DIR)
        return
    if os.geteuid() != 0:
        lib.skip_file("needs root: the stand-in journald needs a private mount namespace")
    for tool in ("unshare", "mount"):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode != 0:
            lib.skip_file("%s is not installed" % tool)
    os.makedirs("/run/systemd", exist_ok=True)
    env = dict(os.environ, **{STANDIN_FLAG: "1"})
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable] + sys.argv, env)


def parse_native(data):
    """The fields of one datagram of journald's native protocol."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            fields[k.decode()] = v.decode(errors="replace")
            i = nl + 1
        else:
            size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            fields[line.decode()] = data[nl + 9:nl + 9 + size].decode(errors="replace")
            i = nl + 9 + size + 1
    return fields


class Stream:
    def __init__(self, conn):
        self.conn = conn
        self.pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        self.header = None
        self.lines = []


class StandIn:
    """journald's two sockets, recording what arrives; appends every line to LOG."""

    def __init__(self, log_path, stream=True, native=True):
        self.log_path = log_path
        self.lock = threading.Condition()
        self.streams = []
        self.entries = []
        self.socks = []
        if stream:
            self.stream_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.stream_sock.bind(os.path.join(JOURNAL_DIR, "stdout"))
            self.stream_sock.listen(64)
            self.socks.append(self.stream_sock)
            threading.Thread(target=self._accept, daemon=True).start()
        if native:
            self.native_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.native_sock.bind(os.path.join(JOURNAL_DIR, "socket"))
            self.socks.append(self.native_sock)
            threading.Thread(target=self._receive, daemon=True).start()

    def _log(self, text):
        with open(self.log_path, "a") as f:
            f.write(text + "\n")

    def _accept(self):
        while True:
            try:
                conn, _ = self.stream_sock.accept()
            except OSError:
                return
            s = Stream(conn)
            with self.lock:
                self.streams.append(s)
                self.lock.notify_all()
            threading.Thread(target=self._read, args=(s,), daemon=True).start()

    def _read(self, s):
        buf = b""
        while True:
            try:
                chunk = s.conn.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                text = line.decode(errors="replace")
                with self.lock:
                    if s.header is None:
                        s.lines.append(text)
                        if len(s.lines) == 7:
                            s.header, s.lines = s.lines, []
                    else:
                        s.lines.append(text)
                        self._log(text)
                    self.lock.notify_all()

    def _receive(self):
        while True:
            try:
                data = self.native_sock.recv(1 << 20)
            except OSError:
                return
            fields = parse_native(data)
            with self.lock:
                self.entries.append(fields)
                self._log("<%s>%s" % (fields.get("PRIORITY", "?"), fields.get("MESSAGE", "")))
                self.lock.notify_all()

    def wait(self, predicate, what, timeout=lib.DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = predicate()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("stand-in journald: no %s; streams %s, entries %s" % (
                        what, [(s.pid, s.header, s.lines[:4]) for s in self.streams], self.entries[-10:]))
                self.lock.wait(left)

    def stream_of(self, pid):
        return next((s for s in self.streams if s.pid == pid and s.header), None)

    def service_stream(self, identifier="liveswap"):
        """A stream as systemd connects a service's stdout and stderr: (our end, JOURNAL_STREAM)."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(os.path.join(JOURNAL_DIR, "stdout"))
        conn.sendall(("%s\n\n6\n1\n0\n0\n0\n" % identifier).encode())
        st = os.fstat(conn.fileno())
        return conn, "%d:%d" % (st.st_dev, st.st_ino)

    def close(self):
        for s in self.socks:
            s.close()
        for name in ("stdout", "socket"):
            try:
                os.unlink(os.path.join(JOURNAL_DIR, name))
            except FileNotFoundError:
                pass
        for s in self.streams:
            s.conn.close()


class JournalSupervisor(lib.Supervisor):
    """A supervisor whose stdout and stderr are a journal stream, as under systemd."""

    def __init__(self, test, args, standin, stream=None, journal_stream=None):
        self.standin = standin
        if stream is None:
            stream, journal_stream = standin.service_stream()
        self.stream = stream
        saved = subprocess.Popen

        def popen(argv, **kw):
            kw["stdout"] = kw["stderr"] = stream.fileno()
            return saved(argv, **kw)
        subprocess.Popen = popen
        standin.log_path = os.path.join(test.dir, "liveswap-%d.log" % len(test.supervisors))
        try:
            super().__init__(test, args, env={"JOURNAL_STREAM": journal_stream, "LIVESWAP_BUS": "none"})
        finally:
            subprocess.Popen = saved

    def cleanup(self):
        super().cleanup()
        self.stream.close()


WORKER = """#!/bin/sh
echo "out $$ fd1=$(readlink /proc/$$/fd/1) fd2=$(readlink /proc/$$/fd/2) js=$JOURNAL_STREAM"
echo "<3>err $$" >&2
exec '%s' --version '%s'
"""


class JournalTest(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.standin = None
        self.targets = {}
        for v in ("v1", "v2"):
            self.targets[v] = lib.write_file(os.path.join(self.dir, "server-" + v), WORKER % (lib.HTTPD, v), 0o755)

    def tearDown(self):
        super().tearDown()
        if self.standin:
            self.standin.close()

    def start_journal(self, instance="web", workers=2, **standin):
        self.standin = StandIn(os.path.join(self.dir, "journal.log"), **standin)
        port = lib.free_port()
        sup = JournalSupervisor(self, [lib.LIVESWAP, "--instance", instance, "-s", self.targets["v1"], "-p", str(port),
                                       "-f", str(workers)], self.standin)
        try:
            sup.wait_ready()
        except AssertionError:
            raise AssertionError("supervisor not ready; its log:\n" + sup.output())
        sup.port = port
        return sup

    def live_workers(self, sup, generation):
        return sorted(w[0] for w in sup.get_property(sup.instance, "Workers") if w[1] == generation)

    def check_worker_streams(self, sup, instance, pids):
        st = self.standin
        for pid in pids:
            s = st.wait(lambda: st.stream_of(pid), "stream from worker %d" % pid)
            self.assertEqual(s.header, [instance, "", "6", "1", "0", "0", "0"], "header of worker %d" % pid)
            st.wait(lambda: any(l.startswith("out %d " % pid) for l in s.lines) and "<3>err %d" % pid in s.lines,
                    "output of worker %d on its own stream" % pid)
            out = next(l for l in s.lines if l.startswith("out %d " % pid))
            m = re.search(r"fd1=socket:\[(\d+)\] fd2=socket:\[(\d+)\] js=(\d+):(\d+)", out)
            self.assertTrue(m, out)
            # stdout and stderr are the one stream, and JOURNAL_STREAM names it.
            self.assertEqual(m.group(1), m.group(2), out)
            self.assertEqual(m.group(1), m.group(4), out)
        # Nothing of the workers' output went to the supervisor's stream.
        ours = st.streams[0].lines
        self.assertFalse([l for l in ours if re.match(r"(out|<3>err) \d+", l)], ours)

    def entry(self, predicate, what):
        st = self.standin
        return st.wait(lambda: next((e for e in st.entries if predicate(e)), None), what)

    def test_streams_and_fields(self):
        sup = self.start_journal("web")
        sup.instance = "web"
        g1 = self.live_workers(sup, 1)
        self.assertEqual(len(g1), 2)
        self.check_worker_streams(sup, "web", g1)
        for pid in g1:
            e = self.entry(lambda e: re.match(r"Worker %d \(generation 1, slot \d\) started" % pid, e.get("MESSAGE", "")),
                           "entry for worker %d started" % pid)
            self.assertEqual((e["LIVESWAP_INSTANCE"], e["LIVESWAP_GENERATION"], e["WORKER_PID"], e["PRIORITY"],
                              e["SYSLOG_IDENTIFIER"]), ("web", "1", str(pid), "6", "liveswap"))

        p = sup.client("--instance", "web", "-u", self.targets["v2"], check=0)
        g2 = self.live_workers(sup, 2)
        self.assertEqual(len(g2), 2, p.stdout)
        self.check_worker_streams(sup, "web", g2)
        e = self.entry(lambda e: e.get("MESSAGE", "").startswith("Upgrade to generation 2 finished"), "upgrade entry")
        self.assertEqual((e["LIVESWAP_GENERATION"], "WORKER_PID" in e), ("2", False))
        for pid in g1:
            e = self.entry(lambda e: e.get("MESSAGE", "").startswith("Draining worker %d " % pid), "drain entry")
            self.assertEqual((e["LIVESWAP_GENERATION"], e["WORKER_PID"]), ("1", str(pid)))
            e = self.entry(lambda e: re.match(r"Worker %d \(generation 1, slot \d\) (exited|was killed)" % pid,
                                              e.get("MESSAGE", "")), "exit entry")
            self.assertEqual((e["LIVESWAP_GENERATION"], e["WORKER_PID"]), ("1", str(pid)))
        self.assertEqual(sup.stop(), 0)

    def test_no_journald(self):
        """journald's sockets missing: the workers keep the supervisor's stream (and say
        why on it), and liveswap's lines are <N> lines on it, as without a journal."""
        sup = None
        self.standin = StandIn(os.path.join(self.dir, "journal.log"), native=False)
        conn, js = self.standin.service_stream()
        os.unlink(os.path.join(JOURNAL_DIR, "stdout"))  # the connected stream stays
        port = lib.free_port()
        sup = JournalSupervisor(self, [lib.LIVESWAP, "--instance", "web", "-s", self.targets["v1"], "-p", str(port),
                                       "-f", "2"], self.standin, stream=conn, journal_stream=js)
        sup.wait_ready()
        sup.instance = "web"
        for pid in self.live_workers(sup, 1):
            sup.wait_output("out %d " % pid)
            sup.wait_output("<3>err %d" % pid)
            sup.wait_output("<4>liveswap: cannot connect worker %d to the journal (No such file or directory)" % pid)
            sup.wait_output("<6>Worker %d (generation 1, slot" % pid)
        self.assertEqual(len(self.standin.streams), 1)
        self.assertEqual(sup.stop(), 0)

    def test_reload_lines_prefixed(self):
        """liveswap -u as ExecReload=: its stdout and stderr are the service's stream."""
        sup = self.start_journal("web")
        conn, js = self.standin.service_stream()
        env = dict(sup.env, JOURNAL_STREAM=js)
        p = subprocess.run([lib.LIVESWAP, "--instance", "web", "-u", self.targets["v2"]], env=env,
                           stdin=subprocess.DEVNULL, stdout=conn.fileno(), stderr=conn.fileno(), timeout=120)
        self.assertEqual(p.returncode, 0)
        conn.close()
        st = self.standin
        s = st.wait(lambda: next((s for s in st.streams if s.pid == os.getpid() and s.header and
                                  any("serving generation 2" in l for l in s.lines)), None), "the reload's lines")
        self.assertTrue(s.lines)
        for line in s.lines:
            self.assertRegex(line, r"^<[0-7]>", s.lines)
        self.assertIn("<6>web: serving generation 2 (%s)" % self.targets["v2"], s.lines)
        self.assertEqual(sup.stop(), 0)

    def ctl(self, sup, *args, path=None, env=None):
        e = dict(sup.env if sup else os.environ, **(env or {}))
        if path is not None:
            e["PATH"] = path
        return subprocess.run([LIVESWAPCTL] + list(args), env=e, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60)

    def test_logs_command_line(self):
        sup = self.start_journal("web")
        sup.instance = "web"
        g1 = self.live_workers(sup, 1)
        sup.client("--instance", "web", "-u", self.targets["v2"], check=0)
        g2 = self.live_workers(sup, 2)
        fake = os.path.join(self.dir, "fake")
        os.makedirs(fake)
        lib.write_file(os.path.join(fake, "journalctl"), FAKE_JOURNALCTL % sys.executable, 0o755)
        log = os.path.join(self.dir, "fake.log")
        path = fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        env = {"FAKE_LOG": log, "FAKE_PIDS": " ".join(str(p) for p in g1)}

        def run(*args):
            p = self.ctl(sup, "-i", "web", "logs", *args, path=path, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            argv = json.loads(p.stdout)
            self.assertEqual(os.path.basename(argv[0]), "journalctl")
            self.assertIn(argv[1], ("--unit", "--user-unit"))
            self.assertTrue(argv[2].endswith(".service"), argv)
            return argv[3:]

        self.assertEqual(run(), [])
        self.assertEqual(run("-f", str(g2[0])), ["--follow", "_PID=%d" % g2[0]])
        # A past generation: its pids from liveswap's entries (the lookup), then OR'ed
        # with the entries about it.
        self.assertEqual(run("--generation", "1"), ["_PID=%d" % p for p in g1] + ["+", "LIVESWAP_GENERATION=1"])
        with open(log) as f:
            calls = [json.loads(l) for l in f]
        self.assertEqual(calls[-2][3:], ["LIVESWAP_GENERATION=1", "--output=json", "--output-fields=WORKER_PID",
                                         "--no-pager", "--quiet"])
        # The live generation: its pids from the Workers property.
        env["FAKE_PIDS"] = ""
        self.assertEqual(sorted(run("--generation", "2", "--follow")),
                         sorted(["--follow"] + ["_PID=%d" % p for p in g2] + ["+", "LIVESWAP_GENERATION=2"]))
        self.assertEqual(sup.stop(), 0)

    def test_logs_usage(self):
        for args, message in ((["logs", "--generation", "0"], "invalid generation '0'"),
                              (["logs", "--generation", "x"], "invalid generation 'x'"),
                              (["logs", "-5"], "unknown option"),
                              (["logs", "12x"], "invalid worker pid '12x'"),
                              (["logs", "1", "2"], "usage: liveswapctl [OPTIONS] logs"),
                              (["logs", "--generation", "2", "77"], "a PID or --generation, not both"),
                              (["status", "-f"], "-f/--follow is an option of logs only"),
                              (["logs", "--generation"], "needs an argument")):
            p = self.ctl(None, *args)
            self.assertEqual((p.returncode, p.stdout), (2, ""), args)
            self.assertIn(message, p.stderr, args)
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty)
        p = self.ctl(None, "-i", "web", "logs", path=empty)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("journalctl is not installed", p.stderr)
        if subprocess.run(["sh", "-c", "command -v journalctl"], capture_output=True).returncode == 0:
            # The real journalctl: a generation needs the supervisor's workers.
            p = self.ctl(None, "-i", "nosuch", "logs", "--generation", "1",
                         env={"XDG_RUNTIME_DIR": self.dir, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
                              "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"})
            self.assertEqual((p.returncode, p.stdout), (3, ""), p.stderr)
            self.assertIn("nosuch is not running", p.stderr)


if __name__ == "__main__":
    enter_namespace()
    lib.main()
