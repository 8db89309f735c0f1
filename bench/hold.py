#!/usr/bin/env python3
"""bench/hold: load held for a long time with an upgrade every few seconds.

liveswap standalone with 4 workers of the example C server (ready=notify, rolling), the
load generator at the machine's full rate (16 clients, half keep-alive, half a new
connection per request), and `liveswap -u` alternating two versions every --every
seconds for --minutes. Writes bench/HOLD.md: requests, rate, every failure class,
upgrades done and how long they took, and the supervisor's fds and RSS at start and end.

    bench/hold [--minutes 10] [--every 5] [--build build]
"""

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_figures(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, rss


def wait_answer(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)  # start-up of the first generation; bounded by deadline
    raise SystemExit("bench/hold: the supervisor never answered")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)  # workers run from their own directory

    liveswap = os.path.join(args.build, "src", "liveswap")
    httpd = os.path.join(args.build, "examples", "liveswap-example-httpd")
    loadgen = os.path.join(args.build, "tests", "tools", "loadgen")
    work = tempfile.mkdtemp(prefix="liveswap-hold-")
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(work, "run"), XDG_STATE_HOME=os.path.join(work, "state"))
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LIVESWAP_INSTANCE"):
        env.pop(k, None)
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    targets = []
    for v in ("v1", "v2"):
        path = os.path.join(work, v)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec '%s' --version %s\n" % (httpd, v))
        os.chmod(path, 0o755)
        targets.append(path)
    conf = os.path.join(work, "hold.conf")
    with open(conf, "w") as f:
        f.write("[upgrade]\nready = notify\ndrain_timeout = 10s\n")
    port = free_port()
    sup = subprocess.Popen([liveswap, "--instance", "hold", "--config", conf, "-s", targets[0], "-p", str(port),
                            "-f", "4"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(work, "liveswap.log"), "wb"))
    load = None
    try:
        wait_answer(port, time.monotonic() + 30)
        fds0, rss0 = proc_figures(sup.pid)
        stop = os.path.join(work, "stop")
        report = os.path.join(work, "load.txt")
        seconds = args.minutes * 60
        load = subprocess.Popen([loadgen, "--target", "127.0.0.1:%d" % port, "--clients", "16", "--mode", "mixed",
                                 "--until-file", stop, "--max-seconds", str(int(seconds + 120)), "--report", report],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        durations, refused_upgrades, i = [], 0, 0
        while time.monotonic() - started < seconds:
            i += 1
            t = time.monotonic()
            p = subprocess.run([liveswap, "-i", "hold", "-u", targets[i % 2]], env=env, capture_output=True,
                               text=True, timeout=120)
            durations.append(time.monotonic() - t)
            if p.returncode != 0:
                refused_upgrades += 1
                print("upgrade %d failed: %s" % (i, p.stderr.strip()), file=sys.stderr)
            time.sleep(max(0.0, args.every - (time.monotonic() - t)))  # the schedule itself
        elapsed = time.monotonic() - started
        with open(stop, "w"):
            pass
        load.wait(120)
        fds1, rss1 = proc_figures(sup.pid)
        result = dict(line.strip().split("=", 1) for line in open(report) if "=" in line)
    finally:
        if load and load.poll() is None:
            load.kill()
            load.wait()
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(60)
        except subprocess.TimeoutExpired:  # never leave it (and its workers) behind
            sup.kill()
            sup.wait()
        if sup.returncode != 0:
            print("bench/hold: liveswap exited with status %s; its log: %s" % (sup.returncode, work),
                  file=sys.stderr)

    if not durations:
        raise SystemExit("bench/hold: no upgrade ran (--minutes too short?)")

    durations.sort()
    classes = ("ok", "failed", "refused", "reset", "eof", "timeout", "bad_status", "connect_error",
               "retried", "idle_closed")
    lines = [
        "# Load held across upgrades",
        "",
        "Generated by `bench/hold --minutes %g --every %g` on %s." % (args.minutes, args.every,
                                                                     time.strftime("%Y-%m-%d %H:%M")),
        "Machine: %d CPUs, Linux %s; the load generator shares them." % (os.cpu_count(), platform.release()),
        "",
        "liveswap standalone, 4 workers of the example C server (ready=notify, rolling batch 1);",
        "16 clients at full speed (half keep-alive, half a new connection per request);",
        "`liveswap -u` alternating two versions every %g s." % args.every,
        "",
        "| figure | value |",
        "|---|---|",
        "| duration | %.0f s |" % elapsed,
        "| requests | %s |" % result.get("requests"),
        "| rate | %.0f requests/s |" % (int(result.get("requests", 0)) / elapsed),
    ]
    lines += ["| %s | %s |" % (k, result.get(k, "0")) for k in classes]
    lines += [
        "| p50 / p99 / p99.9 / max latency | %s / %s / %s / %s us |" % (
            result.get("p50_us"), result.get("p99_us"), result.get("p999_us"), result.get("max_us")),
        "| upgrades | %d (%d failed) |" % (len(durations), refused_upgrades),
        "| upgrade time median / max | %.3f / %.3f s |" % (durations[len(durations) // 2], durations[-1]),
        "| supervisor fds start / end | %d / %d |" % (fds0, fds1),
        "| supervisor RSS start / end | %d / %d KiB |" % (rss0, rss1),
        "| versions seen | %s |" % result.get("versions"),
        "",
    ]
    out = os.path.join(ROOT, "bench", "HOLD.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result.get("failed") == "0" and refused_upgrades == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
