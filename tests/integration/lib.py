"""Shared helpers for liveswap's integration tests.

Every test runs the real liveswap binary with real workers (the example HTTP server) on
real sockets bound to 127.0.0.1 or unix sockets in a private temporary directory. Waits
are on events — sd_notify messages the supervisor sends to a notify socket the test owns
(exactly as systemd would receive them), D-Bus replies, files — and every wait is bounded.
Every process a test starts is stopped by its pid.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

LIVESWAP = os.environ.get("LIVESWAP", "liveswap")
HTTPD = os.environ.get("HTTPD")
LOADGEN = os.environ.get("LOADGEN")

DEFAULT_TIMEOUT = 30.0
# Under the sanitizers every worker runs LeakSanitizer as it exits: a stop of many workers
# on 2 CPUs is slow there, not stuck.
SANITIZED = os.environ.get("LIVESWAP_SANITIZE", "none") not in ("", "none")
STOP_TIMEOUT = DEFAULT_TIMEOUT * (4 if SANITIZED else 1)
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     # the supervisor's own check that no worker exit went unnoticed (child-watch.h)
                     "but its exit was not reported")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fd_count(pid, seconds=2.0):
    """The fewest fds over SECONDS: the connection of the client that asked for the last
    upgrade (or read a property) may not be closed yet when its reply arrives, and must not
    count as a leak (nor inflate the baseline)."""
    deadline = time.monotonic() + seconds
    fewest = fd_count(pid)
    while time.monotonic() < deadline:
        time.sleep(0.05)  # sampling /proc: a closed connection has no event here
        fewest = min(fewest, fd_count(pid))
    return fewest


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (bound with SO_REUSEADDR later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def traced_program(tracer_file, tracer, traced):
    """A Python program that a child of its own, in a session of its own (out of reach of
    a kill of the program's process group), seizes with ptrace: the child writes its pid
    to TRACER_FILE and runs TRACER (code, with `parent`, `libc` and `os` at hand) while
    the program goes on with TRACED once it is traced. A test of what a tracer does to a
    worker or a hook: a traced zombie is not reapable by its parent until the tracer lets
    go of it."""
    def indent(code, by):
        return "".join(by + line + "\n" for line in textwrap.dedent(code).strip("\n").splitlines())
    return ("#!%s\n" % sys.executable +
            "import ctypes, os, signal, socket, sys, time\n"
            "parent = os.getpid()\n"
            "r, w = os.pipe()\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n"
            "    ok = libc.ptrace(0x4206, parent, None, None) == 0  # PTRACE_SEIZE: no stop, no wait\n"
            "    with open(%r, 'w') as f:\n"
            "        f.write(str(os.getpid()))\n"
            "    os.rename(%r, %r)\n"
            "    os.write(w, b'y' if ok else b'n')\n" % (tracer_file + ".tmp", tracer_file + ".tmp", tracer_file) +
            indent(tracer, "    ") +
            "    os._exit(0)  # a tracer's exit lets go of its tracees\n"
            "if os.read(r, 1) != b'y':\n"
            "    sys.exit('ptrace failed')\n" +
            indent(traced, ""))


def write_file(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def make_target(directory, version, *args, name=None):
    """An executable target that runs the example server as VERSION with extra ARGS."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name or ("server-" + version))
    quoted = " ".join("'%s'" % a for a in args)
    write_file(path, "#!/bin/sh\nexec '%s' --version '%s' %s\n" % (HTTPD, version, quoted), 0o755)
    return path


def http_get(address, path="/", timeout=10.0):
    """One GET over a fresh connection; returns (status, headers, body)."""
    if isinstance(address, str):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(address)
        conn.sendall(("GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body.decode(errors="replace")


class NotifyListener:
    """A notify socket like systemd's: collects READY=1/STATUS=/RELOADING=1 messages.

    A thread reads the socket all the time, as systemd does: an unread datagram socket
    fills after net.unix.max_dgram_qlen messages (10 by default) and would then block
    the supervisor's sd_notify() calls."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.times = []  # time.monotonic() at each message's arrival, for timing tests
        self.consumed = 0  # messages before this index were matched by an earlier wait
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:  # shut down by close()
                return
            with self.cond:
                self.times.append(time.monotonic())
                self.messages.append(data.decode(errors="replace"))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout=DEFAULT_TIMEOUT, what="notify message"):
        """Waits until predicate(message) holds for a message not matched by an earlier
        wait; returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(self.consumed, len(self.messages)):
                    if predicate(self.messages[i]):
                        self.consumed = i + 1
                        return self.messages[i]
                self.consumed = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s; got: %r" % (what, self.messages[-5:]))
                self.cond.wait(left)

    def status(self):
        with self.cond:
            for m in reversed(self.messages):
                for line in reversed(m.split("\n")):
                    if line.startswith("STATUS="):
                        return line[len("STATUS="):]
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class Supervisor:
    """A liveswap process under test, with its own runtime and state directories."""

    def __init__(self, test, args, env=None, workdir=None, prepare=None):
        self.test = test
        self.dir = workdir or test.dir
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.notify = NotifyListener(os.path.join(self.dir, "notify-%d" % len(test.supervisors)))
        self.log_path = os.path.join(self.dir, "liveswap-%d.log" % len(test.supervisors))
        self.env = dict(os.environ)
        self.env.update({
            "XDG_RUNTIME_DIR": self.run_dir,
            "XDG_STATE_HOME": os.path.join(self.dir, "state"),
            "NOTIFY_SOCKET": self.notify.path,
        })
        for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "RUNTIME_DIRECTORY", "STATE_DIRECTORY",
                  "LIVESWAP_INSTANCE"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.log = open(self.log_path, "ab")
        if prepare:
            prepare(self)  # e.g. hand the directories and sockets to another user
        self.proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        test.supervisors.append(self)

    def wait_ready(self, timeout=DEFAULT_TIMEOUT):
        self.notify.wait_for(lambda m: "READY=1" in m.split("\n"), timeout, "READY=1")

    def wait_status(self, pattern, timeout=DEFAULT_TIMEOUT):
        rx = re.compile(pattern)
        current = self.notify.status()
        if current and rx.search(current):
            return current
        try:
            return self.notify.wait_for(lambda m: any(l.startswith("STATUS=") and rx.search(l[len("STATUS="):])
                                                      for l in m.split("\n")),
                                        timeout, "STATUS matching %r" % pattern)
        except AssertionError as e:
            # The supervisor's log says why the state never came (a CI log is all there is).
            raise AssertionError("%s\nsupervisor log (last 60 lines):\n%s"
                                 % (e, "\n".join(self.output().splitlines()[-60:]))) from None

    def wait_output(self, text, timeout=DEFAULT_TIMEOUT):
        """Waits until the supervisor's log (stdout and stderr) contains TEXT."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("no %r in the log:\n%s" % (text, self.output()))
            time.sleep(0.02)  # a log file offers no event to wait on; bounded above

    def client(self, *args, timeout=120, check=None):
        """Runs `liveswap ARGS` as a client of this supervisor; returns CompletedProcess."""
        p = subprocess.run([LIVESWAP] + list(args), env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout, cwd=self.dir)
        if check is not None:
            self.test.assertEqual(p.returncode, check, "liveswap %s: %s%s" % (args, p.stdout, p.stderr))
        return p

    def busctl(self, instance, *args, timeout=120):
        bus = os.path.join(self.run_dir, "liveswap", instance, "bus")
        return subprocess.run(["busctl", "--address=unix:path=" + bus] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def get_property(self, instance, name):
        # Peer-to-peer there is no broker to route by name: any destination reaches us.
        p = self.busctl(instance, "--json=short", "get-property", "org.liveswap1." + instance, "/org/liveswap1",
                        "org.liveswap1.Supervisor", name)
        if p.returncode != 0:
            raise AssertionError("get-property %s: %s" % (name, p.stderr))
        return json.loads(p.stdout)["data"]

    def stop(self, timeout=STOP_TIMEOUT):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Last, so that a log's tail (CI shows 40 lines) says what was left and why.
            killed = [int(p) for p in re.findall(r"Killing worker (\d+)", self.output())]
            left = process_report(self.proc.pid, killed)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("liveswap did not stop within %ss; its log:\n%s\nits processes then:\n%s" %
                                 (timeout, self.output()[-6000:], left))

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.notify.close()


class Load:
    """The load generator, running until stop() is called (bounded by max_seconds)."""

    def __init__(self, test, target, clients=8, mode="mixed", path="/", max_seconds=300, timeout_ms=5000):
        self.test = test
        self.until = os.path.join(test.dir, "stop-load-%d" % len(test.loads))
        self.report = os.path.join(test.dir, "load-%d.txt" % len(test.loads))
        self.proc = subprocess.Popen([LOADGEN, "--target", target, "--clients", str(clients), "--mode", mode,
                                      "--path", path, "--until-file", self.until, "--max-seconds",
                                      str(max_seconds), "--timeout-ms", str(timeout_ms), "--report", self.report],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.loads.append(self)
        self.result = None

    def stop(self, timeout=60):
        write_file(self.until, "")
        out, err = self.proc.communicate(timeout=timeout)
        self.result = {}
        for line in out.splitlines():
            k, _, v = line.partition("=")
            self.result[k] = v
        self.result["_raw"] = out + err
        return self.result

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def versions(result):
    """{"v1": 120, "v2": 80} from loadgen's versions=v1:120,v2:80 (first-seen order kept)."""
    out = {}
    for item in filter(None, result.get("versions", "").split(",")):
        name, _, count = item.rpartition(":")
        out[name] = int(count)
    return out


class DBusDaemon:
    """A real dbus-daemon for one test, standing in for the user (session) bus.

    Its policy lets every user connect, own names and send anything, as a permissive
    session bus would, so that the supervisor's own credential checks are what refuses
    callers. The socket lives in a directory of its own that other users can traverse,
    so that a test can call as `nobody`. Stopped by its pid through test.addCleanup."""

    CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""

    def __init__(self, test, timeout=DEFAULT_TIMEOUT):
        self.dir = tempfile.mkdtemp(prefix="liveswap-bus-")
        os.chmod(self.dir, 0o755)
        config = write_file(os.path.join(self.dir, "bus.conf"), self.CONFIG % os.path.join(self.dir, "bus"))
        self.log = open(os.path.join(test.dir, "dbus-daemon.log"), "ab")
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=" + config, "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, text=True)
        test.addCleanup(self.stop)
        # The daemon prints its address once it listens: that line is the readiness event.
        ready = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].strip():
            raise AssertionError("dbus-daemon did not start within %ss" % timeout)
        self.address = ready[0].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEFAULT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.assertTrue(HTTPD and LOADGEN, "HTTPD and LOADGEN must be set (run through meson test)")
        self.dir = tempfile.mkdtemp(prefix="liveswap-test-")
        self.supervisors = []
        self.loads = []

    def tearDown(self):
        for load in self.loads:
            load.cleanup()
        for sup in self.supervisors:
            sup.cleanup()
        # Under ASan/UBSan (meson -Db_sanitize=...) a report from the supervisor or a worker
        # lands in the supervisor's log without necessarily changing an exit status.
        for sup in self.supervisors:
            out = sup.output()
            for marker in SANITIZER_MARKERS:
                if marker in out:
                    self.fail("sanitizer report in %s:\n%s" % (sup.log_path, out[-6000:]))
        if os.environ.get("LIVESWAP_KEEP_TEST_DIR"):
            print("test directory kept: %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *args, env=None, ready=True):
        sup = Supervisor(self, [LIVESWAP] + list(args), env=env)
        if ready:
            try:
                sup.wait_ready()
            except AssertionError:
                raise AssertionError("supervisor not ready; its log:\n" + sup.output())
        return sup

    def assert_no_failures(self, result, sup=None):
        failed = int(result.get("failed", "-1"))
        if failed != 0:
            # The load's numbers last: a CI log shows only the tail.
            self.fail("%d failed requests\nsupervisor log:\n%s\nthe load:\n%s" %
                      (failed, sup.output() if sup else "", result["_raw"]))
        self.assertGreater(int(result["ok"]), 0, result["_raw"])

    def assert_pids_gone(self, pids, timeout=10.0):
        """No process of PIDS is left (orphans would show here)."""
        deadline = time.monotonic() + timeout
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if os.path.exists("/proc/%d" % p) and not _zombie(p)]
            if alive:
                time.sleep(0.05)  # polling /proc: a process exit has no event to wait on here
        self.assertEqual(alive, [], "processes left behind")


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return "(%s)" % e.strerror


def process_report(root, extra=()):
    """ROOT and every process below it, and EXTRA (pids it killed, wherever they are now),
    one line each, with what a hang is made of: the state of each thread, its parent, who
    traces it (LeakSanitizer's tracer, gdb), and where in the kernel it waits."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read("/proc/%s/stat" % name)
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 2:
                children.setdefault(int(fields[1]), []).append(int(name))
    # Popped from the end: ROOT's tree first, then EXTRA alone (not what is below it).
    lines, todo, seen = [], [(p, -1) for p in extra if p != root] + [(root, 0)], set()
    while todo and len(lines) < 200:
        pid, depth = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        status = dict(l.split(":\t", 1) for l in _read("/proc/%d/status" % pid).splitlines() if ":\t" in l)
        threads = []
        try:
            for tid in sorted(os.listdir("/proc/%d/task" % pid))[:8]:
                stat = _read("/proc/%d/task/%s/stat" % (pid, tid))
                threads.append("%s:%s@%s" % (tid, stat[stat.rfind(")") + 2:][:1],
                                              _read("/proc/%d/task/%s/wchan" % (pid, tid)).strip() or "-"))
        except OSError:
            pass
        cmd = _read("/proc/%d/cmdline" % pid).replace("\0", " ").strip()[:100]
        lines.append("%s%d %s ppid=%s tracer=%s threads=[%s] %s" % (
            "  " * max(depth, 0), pid, status.get("State", "?").strip(), status.get("PPid", "?").strip(),
            status.get("TracerPid", "?").strip(),
            " ".join(threads), cmd))
        if depth >= 0:
            todo.extend((c, depth + 1) for c in children.get(pid, []))
    return "\n".join(lines)


def tcp_counts(port):
    """(connections established to PORT, connections waiting in its accept queue): for a
    listening socket, /proc/net/tcp's rx_queue is the accept queue length."""
    established, queued = 0, 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) != port:
                continue
            if fields[3] == "01":
                established += 1
            elif fields[3] == "0A":
                queued += int(fields[4].split(":")[1], 16)
    return established, queued


def wait_accepted(test, port, count, timeout=DEFAULT_TIMEOUT):
    """Until COUNT connections to PORT are established and none waits in the accept queue,
    i.e. workers accepted them all. The kernel offers no event for that: a bounded poll."""
    deadline = time.monotonic() + timeout
    while True:
        established, queued = tcp_counts(port)
        if established >= count and queued == 0:
            return
        if time.monotonic() > deadline:
            test.fail("%d connections to port %d never all accepted: %d established, %d in the accept queue"
                      % (count, port, established, queued))
        time.sleep(0.02)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# What meson test reads from a test's exit status: 77 is SKIP (unittest.main alone would
# exit 0, so a file whose every test skipped would pass as OK, having checked nothing).
EXIT_SKIP = 77


def main():
    """Runs the file's tests as unittest.main() would and exits as meson reads it: 1 when a
    test failed or errored (or none ran at all), 77 (SKIP) when every test that ran was
    skipped, 0 otherwise. The skip reasons are repeated at the end, one line each, so a
    file that passed with some of its tests skipped still says what it did not check."""
    program = unittest.main(verbosity=2, exit=False)
    result = program.result
    # A skip in setUpClass/setUpModule is recorded on a placeholder, not a TestCase,
    # and the tests it covers are not counted in testsRun.
    skipped_tests = sum(1 for test, _ in result.skipped if isinstance(test, unittest.TestCase))
    for test, reason in result.skipped:
        print("SKIP %s: %s" % (test.id(), reason), file=sys.stderr)
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun - skipped_tests > 0:
        sys.exit(0)
    if result.skipped:
        sys.exit(EXIT_SKIP)
    print("FAIL: no test ran", file=sys.stderr)
    sys.exit(1)


def skip_file(reason):
    """Skips the whole file before any test runs (the machine cannot run any of them)."""
    print("SKIP: %s" % reason, file=sys.stderr)
    sys.exit(EXIT_SKIP)


# ---- helpers for the fault matrix (HEAD intact, no process left, error names) ----

def default_head(test, instance):
    """Where a Supervisor of TEST keeps INSTANCE's HEAD when no -H/head= is given:
    $XDG_STATE_HOME/liveswap/<instance>/HEAD (Supervisor sets XDG_STATE_HOME)."""
    return os.path.join(test.dir, "state", "liveswap", instance, "HEAD")


def deploy_head(head, current, previous=None):
    """HEAD (and PREVIOUS) as liveswap writes them, before the supervisor starts: it
    starts from HEAD, so a test can then check that a failed upgrade leaves both alone."""
    os.makedirs(os.path.dirname(head), exist_ok=True)
    write_file(head, os.path.realpath(current) + "\n")
    if previous:
        write_file(os.path.join(os.path.dirname(head), "PREVIOUS"), os.path.realpath(previous) + "\n")


def head_files(head):
    """{name: (content, inode, mtime_ns)} of HEAD and PREVIOUS beside it (None if absent):
    liveswap replaces them by rename, so any rewrite shows in the inode."""
    out = {}
    for path in (head, os.path.join(os.path.dirname(head), "PREVIOUS")):
        try:
            with open(path) as f:
                st = os.fstat(f.fileno())
                out[os.path.basename(path)] = (f.read(), st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            out[os.path.basename(path)] = None
    return out


def started_workers(sup, generation=None):
    """Pids of every worker the supervisor's log says it started (of GENERATION only if
    given), in order: short-lived workers a Workers property read could miss are here."""
    rx = re.compile(r"Worker (\d+) \(generation (\d+), slot \d+\) started")
    return [int(pid) for pid, gen in rx.findall(sup.output()) if generation is None or int(gen) == generation]


def read_pids(path, count, timeout=DEFAULT_TIMEOUT):
    """The first COUNT pids in PATH (one a line), waiting until a script has written them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                pids = [int(l) for l in f.read().split()]
        except (FileNotFoundError, ValueError):
            pids = []
        if len(pids) >= count:
            return pids[:count]
        if time.monotonic() > deadline:
            raise AssertionError("%s holds %s, not %d pids" % (path, pids, count))
        time.sleep(0.02)  # a file written by a shell script has no event to wait on; bounded


def callstorm(env, address, method, *args, destination=None, prefix=(), calls=1, connections=1, timeout=300):
    """Calls METHOD on the supervisor at ADDRESS (a D-Bus address; None for the user bus,
    where DESTINATION names it) with the callstorm tool, as PREFIX (e.g. setpriv) says;
    returns {outcome: (count, first message)}, outcome "ok" or the D-Bus error name
    (busctl does not print error names, and the contract is about them)."""
    where = ["--address", address] if address else ["--user", "--destination", destination]
    p = subprocess.run(list(prefix) + [os.environ["CALLSTORM"]] + where +
                       ["--calls", str(calls), "--connections", str(connections), method] + list(args),
                       env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError("callstorm %s %s: %s" % (method, args, p.stderr))
    out = {}
    for line in p.stdout.splitlines():
        name, count, message = (line.split(" ", 2) + [""])[:3]
        out[name] = (int(count), message)
    return out


def private_bus(sup, instance):
    """The D-Bus address of INSTANCE's private socket under SUP's runtime directory."""
    return "unix:path=" + os.path.join(sup.run_dir, "liveswap", instance, "bus")


def wait_load(port, connections, timeout=DEFAULT_TIMEOUT):
    """Waits until the load has CONNECTIONS connections open to PORT (the kept-alive
    clients of a mixed Load), so that a fault that follows lands under load."""
    def established():
        with open("/proc/net/tcp") as f:
            return sum(1 for line in f.readlines()[1:]
                       if int(line.split()[1].split(":")[1], 16) == port and line.split()[3] == "01")

    deadline = time.monotonic() + timeout
    while established() < connections:
        if time.monotonic() > deadline:
            raise AssertionError("the load did not open %d connections to port %d" % (connections, port))
        time.sleep(0.01)  # /proc/net/tcp has no event to wait on; bounded above


def hand_to_nobody(state):
    """A Supervisor prepare= hook for a supervisor run as nobody: its runtime directory
    and STATE are nobody's, and the test's notify socket takes anyone (as systemd's does)."""
    def prepare(sup):
        for path in (sup.run_dir, state):
            os.makedirs(path, exist_ok=True)
            os.chown(path, 65534, 65534)
        os.chmod(sup.notify.path, 0o777)
    return prepare
