"""measure.py: what the benchmark observes. The load generator's per-request timeline cut
into steady and upgrade windows, /proc counters of a supervisor, and HTTP probes.

Reads only: it starts the load generator but never a supervisor or a worker.
"""

import bisect
import os
import select
import socket
import subprocess
import time

OUTCOMES = ("ok", "bad_status", "bad_response", "refused", "reset", "eof", "timeout", "connect_error")
FAILURES = OUTCOMES[1:]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def now_us():
    """CLOCK_MONOTONIC in microseconds: the load generator's clock too."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(1, int(p * len(sorted_values) + 0.999999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port, timeout=10.0):
    """The X-Version of one GET / over a fresh connection, or None when it failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head = data.partition(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")
    if not head[0].startswith("HTTP/1.") or " 200 " not in head[0] + " ":
        return None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-version":
            return value.strip()
    return ""


def wait_serving(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(port, timeout=max(0.1, deadline - time.monotonic())) is not None:
            return
        time.sleep(0.02)
    raise RuntimeError("%s did not answer on 127.0.0.1:%d within %.0f s" % (what, port, timeout))


# ---- /proc ----

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def cpu_seconds(pids):
    """CPU time of the processes (all their threads), in seconds: from schedstat, in
    nanoseconds, where the kernel has it; else user plus system time in clock ticks."""
    total = 0.0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        ns = [_read("/proc/%d/task/%s/schedstat" % (pid, tid)) for tid in tasks]
        if all(ns):
            total += sum(int(x.split()[0]) for x in ns) / 1e9
            continue
        stat = _read("/proc/%d/stat" % pid)
        if stat:
            fields = stat.rpartition(b")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def status_field(pid, name):
    text = _read("/proc/%d/status" % pid) or b""
    for line in text.decode().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def rss_kib(pids):
    return sum(status_field(pid, "VmRSS") for pid in pids)


def wakeups(pids):
    """Context switches of every thread: each time one was put to sleep or preempted."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tasks:
            text = (_read("/proc/%d/task/%s/status" % (pid, tid)) or b"").decode()
            for line in text.splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
    return total


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def children(pid):
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tasks:
        text = _read("/proc/%d/task/%s/children" % (pid, tid))
        if text:
            out.extend(int(p) for p in text.split())
    return out


def descendants(roots):
    seen, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        for child in children(pid):
            if child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


class ExitWatch:
    """A pidfd for each of PIDS (pidfd_open(2): any process, not only our children):
    wait() returns the time (now_us()) at which the last of them had exited, or None at
    DEADLINE (time.monotonic()) or where pidfds could not be opened (too many fds, a
    kernel before 5.3). A pid already gone counts as exited."""

    def __init__(self, pids):
        self.fds, self.usable = [], True
        for pid in pids:
            try:
                self.fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                pass
            except (OSError, AttributeError):
                self.usable = False
                break

    def wait(self, deadline):
        if not self.usable:
            return None
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, select.POLLIN)
        left = len(self.fds)
        while left > 0:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return None
            for fd, _ in poller.poll(timeout * 1000):
                poller.unregister(fd)
                left -= 1
        return now_us()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def runs_version(pid, tag):
    """Whether process PID is version TAG of the app: `--version TAG` in its arguments
    (the C worker) or APP_VERSION=TAG in its environment (the Node worker)."""
    args = (_read("/proc/%d/cmdline" % pid) or b"").split(b"\0")
    if tag.encode() in args:
        return True
    env = (_read("/proc/%d/environ" % pid) or b"").split(b"\0")
    return ("APP_VERSION=" + tag).encode() in env


def processes_of_version(roots, tag):
    return [pid for pid in descendants(roots) if runs_version(pid, tag)]


def sample_idle_wakeups(pids, seconds):
    """Wake-ups per minute of PIDS while nothing happens."""
    if not pids:
        return None
    before = wakeups(pids)
    time.sleep(seconds)
    return (wakeups(pids) - before) * 60.0 / seconds


# ---- load ----

class Load:
    """The load generator, from start() until stop(), writing a per-request timeline."""

    def __init__(self, loadgen, port, directory, clients, timeline=True, max_seconds=1800):
        self.until = os.path.join(directory, "load.stop")
        self.report_path = os.path.join(directory, "load.txt")
        self.timeline = os.path.join(directory, "timeline.txt") if timeline else None
        args = [loadgen, "--target", "127.0.0.1:%d" % port, "--clients", str(clients), "--mode", "mixed",
                "--until-file", self.until, "--max-seconds", str(max_seconds), "--timeout-ms", "10000",
                "--report", self.report_path]
        if self.timeline:
            args += ["--timeline", self.timeline]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.result = None

    def stop(self, timeout=60):
        with open(self.until, "w"):
            pass
        _, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError("loadgen failed (%d): %s" % (self.proc.returncode, err.strip()))
        self.result = {}
        with open(self.report_path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                self.result[key] = value
        return self.result

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def versions(result):
    out = {}
    for item in filter(None, result.get("versions", "").split(",")):
        name, _, count = item.rpartition(":")
        out[name] = int(count)
    return out


class Window:
    """Requests of one span of time: counts per outcome and the ok latencies."""

    def __init__(self):
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.latencies = []

    def add(self, outcome, latency_us):
        self.counts[outcome] += 1
        if outcome == "ok":
            self.latencies.append(latency_us)

    def merge(self, other):
        for k, v in other.counts.items():
            self.counts[k] += v
        self.latencies.extend(other.latencies)

    @property
    def failed(self):
        return sum(self.counts[k] for k in FAILURES)

    def summary(self):
        self.latencies.sort()
        lat = self.latencies
        return {"ok": self.counts["ok"], "failed": self.failed,
                "failures": {k: self.counts[k] for k in FAILURES if self.counts[k]},
                "p50_us": percentile(lat, 0.50), "p99_us": percentile(lat, 0.99),
                "p999_us": percentile(lat, 0.999), "max_us": lat[-1] if lat else 0}


def analyse(timeline, t0_us, windows, tags, measure_from_us, measure_to_us, bucket_ms=100):
    """Cuts the timeline into steady time and upgrade WINDOWS ([(start_us, end_us)], in
    order, monotonic), each from version tag TAGS[i][0] to TAGS[i][1]. A request belongs to
    the upgrade window its life overlaps, else to steady time; requests that ended before
    MEASURE_FROM_US (warm-up) are left out. Returns steady and per-window summaries, when
    in each window the new version first answered and the old one last did, the steady
    throughput, failures by client mode, and per-bucket series for the plot."""
    rel = [((a - t0_us) / 1000.0, (b - t0_us) / 1000.0) for a, b in windows]
    starts = [a for a, _ in rel]
    lo_ms, hi_ms = (measure_from_us - t0_us) / 1000.0, (measure_to_us - t0_us) / 1000.0
    steady, per_window = Window(), [Window() for _ in rel]
    failures_by_mode = {"k": 0, "c": 0}
    first_new, last_old = [None] * len(rel), [None] * len(rel)
    buckets = {}
    with open(timeline) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5:
                continue
            t_ms, latency = float(parts[0]), int(parts[1])
            if t_ms < lo_ms or t_ms > hi_ms:
                continue
            status = parts[2]
            if status.isdigit():
                outcome = "ok" if status.startswith("2") else "bad_status"
            else:
                outcome = status if status in OUTCOMES else "bad_response"
            begin_ms = t_ms - latency / 1000.0
            # The last window starting before the request ended, if the request began
            # before that window ended.
            i = bisect.bisect_right(starts, t_ms) - 1
            if i >= 0 and begin_ms <= rel[i][1]:
                per_window[i].add(outcome, latency)
                if outcome == "ok":
                    since = (t_ms - rel[i][0]) / 1000.0
                    if parts[3] == tags[i][1] and (first_new[i] is None or since < first_new[i]):
                        first_new[i] = since
                    elif parts[3] == tags[i][0] and (last_old[i] is None or since > last_old[i]):
                        last_old[i] = since
            else:
                steady.add(outcome, latency)
            if outcome != "ok":
                failures_by_mode[parts[4]] = failures_by_mode.get(parts[4], 0) + 1
            b = buckets.setdefault(int(t_ms // bucket_ms), [[], 0])
            if outcome == "ok":
                b[0].append(latency)
            else:
                b[1] += 1
    window_ms = sum(max(0.0, min(b, hi_ms) - max(a, lo_ms)) for a, b in rel)
    steady_s = max(1e-3, (hi_ms - lo_ms - window_ms) / 1000.0)
    upgrades = Window()
    for w in per_window:
        upgrades.merge(w)
    series = []
    for key in sorted(buckets):
        lat, failed = buckets[key]
        lat.sort()
        series.append((key * bucket_ms / 1000.0, percentile(lat, 0.5), percentile(lat, 0.99),
                       lat[-1] if lat else 0, failed))
    return {
        "steady": steady.summary(),
        "upgrade": upgrades.summary(),
        "windows": [dict(w.summary(), new_first_s=first_new[i], old_last_s=last_old[i])
                    for i, w in enumerate(per_window)],
        "steady_rate": steady.counts["ok"] / steady_s,
        "steady_seconds": steady_s,
        "failures_by_mode": failures_by_mode,
        "series": series,
        "windows_rel_s": [(a / 1000.0, b / 1000.0) for a, b in rel],
    }
