#!/usr/bin/env python3
"""bench.py: runs every scenario of the side-by-side benchmark and writes the results.

Each scenario starts the app with one tool, puts the same load on it, upgrades it N
times under that load with the command the tool's users would type, and records every
request (loadgen's timeline), the upgrade windows and the supervisor's /proc counters.
Every scenario runs twice: with an app that is ready at once, and with one that needs
1.5 s of start-up before it accepts anything. Then liveswap alone: upgrades of 1 to 256
workers, and a soak of many upgrades. report.py turns the results into RESULTS.md and
the plots. Invoked by bench/run, which installs and builds what this needs.

Everything it starts it stops, by pid; its files live in one temporary directory.
"""

import argparse
import resource
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure  # noqa: E402
import report  # noqa: E402
import tools  # noqa: E402

SLOW_START_MS = 1500

PROFILES = {
    "full": dict(upgrades=10, warmup=0.5, steady_pre=3.0, gap=1.0, idle=10.0, clients=64, workers=2,
                 baseline_s=8.0, ready_samples=3, scale_sizes=(16, 256, 1024),
                 scale_strategies=("rolling", "blue-green"), scale_upgrades=3, scale_loads=(0, 16),
                 soak_upgrades=1000, soak_clients=8, idle_health=20.0),
    "quick": dict(upgrades=2, warmup=0.3, steady_pre=1.0, gap=0.5, idle=2.0, clients=64, workers=2,
                  baseline_s=2.5, ready_samples=1, scale_sizes=(16, 128),
                  scale_strategies=("rolling", "blue-green"), scale_upgrades=1, scale_loads=(0, 16), soak_upgrades=30, soak_clients=8, idle_health=5.0),
}


def log(message):
    print("bench: " + message, flush=True)


class Bench:
    def __init__(self, args, env, workdir, machine_info):
        self.args, self.env, self.work = args, env, workdir
        self.p = dict(PROFILES["quick" if args.quick else "full"])
        if args.scale_sizes:
            self.p["scale_sizes"] = tuple(int(n) for n in args.scale_sizes.split(","))
        self.prefix = "r%d-" % (os.getpid() % 100000)
        self.idle_cache = {}
        self.results = {"profile": "quick" if args.quick else "full", "params": self.p,
                        "slow_start_ms": SLOW_START_MS, "machine": machine_info, "scenarios": [],
                        "skipped": [], "start_to_ready": {}, "scale": [], "soak": None, "idle_health": [],
                        "command": " ".join(["bench/run"] + (["--quick"] if args.quick else []) +
                                            (["--busy"] if args.busy else []) +
                                            (["--only", args.only] if args.only else []) +
                                            (["--scale-sizes", args.scale_sizes] if args.scale_sizes else []))}

    def wanted(self, key):
        return not self.args.only or any(key.startswith(k) for k in self.args.only.split(","))

    def directory(self, name):
        path = os.path.join(self.work, name)
        os.makedirs(path, exist_ok=True)
        return path

    # ---- the worker's own start-to-ready time ----

    def start_to_ready(self, app, delay_ms):
        samples = []
        for i in range(self.p["ready_samples"]):
            d = self.directory("ready-%s-%d-%d" % (app, delay_ms, i))
            port = measure.free_port()
            tool = tools.SocketActivate(self.env, d, port, delay_ms, 1, app=app)
            try:
                t0 = time.monotonic()
                tool.spawn(self.prefix + "ready")
                # Refused until systemd-socket-activate has bound; then the request
                # waits in the backlog until the worker accepts.
                while measure.probe(port, timeout=30) is None:
                    if tool.exited():
                        raise RuntimeError("the %s app exited at start-up; see %s" % (app, tool.log.name))
                    if time.monotonic() - t0 > 30:
                        raise RuntimeError("the %s app did not answer within 30 s" % app)
                    time.sleep(0.001)
                samples.append(time.monotonic() - t0)
            finally:
                tool.stop()
                tool.close()
        samples.sort()
        return samples[len(samples) // 2]

    # ---- one scenario ----

    def upgrade_once(self, tool, old, new):
        # The old version's processes, each watched by a pidfd: their exits are events,
        # timed to the microsecond, where a poll of /proc every 5-10 ms (itself load on
        # a small machine) made a 40 ms upgrade come out as 48, 58 or 70 ms.
        exits = measure.ExitWatch(measure.processes_of_version(tool.roots(), old)) if \
            not getattr(tool, "keeps_app", False) else None
        t0 = measure.now_us()
        ok, message = tool.upgrade(new)
        t_cmd = measure.now_us()
        # Over when the new version answers and no process of the old one is left; a
        # failed command gets a moment in case the tool recovers by itself.
        deadline = time.monotonic() + (120.0 if ok else 2.0)
        converged = False
        if exits is None:
            # liveswap itself was replaced, not the app: over when the same app answers.
            while time.monotonic() < deadline and not converged:
                converged = measure.probe(tool.port, timeout=max(0.1, deadline - time.monotonic())) == \
                    tool.serving_tag
            t_end = measure.now_us()
            return {"ok": ok, "message": message, "converged": converged, "command_s": (t_cmd - t0) / 1e6,
                    "wall_s": (t_end - t0) / 1e6, "window": (t0, t_end)}

        def over():
            processes = measure.descendants(tool.roots())
            return not any(measure.runs_version(pid, old) for pid in processes) and \
                measure.probe(tool.port, timeout=max(0.1, deadline - time.monotonic())) == new, len(processes)

        with exits:
            t_end = exits.wait(deadline)
        # The same test, by polling /proc, checks it: nothing of the old version is left
        # (one started late, say) and the new one answers. Where it holds at once, the
        # time is the last exit's.
        converged = t_end is not None and over()[0]
        while not converged and time.monotonic() < deadline:
            converged, n = over()
            t_end = measure.now_us()
            if not converged:
                # Reading /proc for hundreds of workers must not become load.
                time.sleep(0.005 + 0.0002 * n)
        if t_end is None:
            t_end = measure.now_us()
        return {"ok": ok, "message": message, "converged": converged, "command_s": (t_cmd - t0) / 1e6,
                "wall_s": (t_end - t0) / 1e6, "window": (t0, t_end)}

    def scenario(self, key, make, delay_ms):
        p = self.p
        mode = "slow" if delay_ms else "instant"
        name = "%s-%s" % (key, mode)
        d = self.directory(name)
        port = measure.free_port()
        tool = make(self.env, d, port, delay_ms, p["workers"])
        log("%s (%s start)" % (tool.label, "1.5 s" if delay_ms else "instant"))
        result = {"key": key, "label": tool.label, "app": tool.app, "mode": mode, "delay_ms": delay_ms,
                  "workers": tool.workers, "supervisor": tool.supervisor, "upgrades": []}
        load = None
        try:
            def tag(k):
                return "%s%s-v%d" % (self.prefix, mode, k)
            tool.start(tag(0))
            result["commands"] = [c.replace(d + "/", "").replace(self.env.root + "/", "")
                                  .replace(os.path.dirname(self.env.liveswap) + "/", "")
                                  .replace(os.path.dirname(self.env.httpd) + "/", "") for c in tool.commands]
            sup = tool.supervisor_pids()
            manager = tool.manager_pids() if hasattr(tool, "manager_pids") else []
            result["rss_kib_start"] = measure.rss_kib(sup)
            cpu0, mcpu0 = measure.cpu_seconds(sup), measure.cpu_seconds(manager)
            load = measure.Load(self.env.loadgen, port, d, p["clients"])
            time.sleep(p["warmup"] + p["steady_pre"])
            if tool.upgrades:
                for k in range(1, p["upgrades"] + 1):
                    u = self.upgrade_once(tool, tag(k - 1), tag(k))
                    result["upgrades"].append(u)
                    log("  upgrade %d: %s in %.2f s%s" % (k, "ok" if u["ok"] else "FAILED", u["wall_s"],
                                                          "" if u["ok"] else " (%s)" % u["message"]))
                    time.sleep(p["gap"])
            else:
                time.sleep(max(0.0, p["baseline_s"] - p["steady_pre"]))
            t_stop = measure.now_us()
            result["load"] = load.stop()
            sup = tool.supervisor_pids() or sup
            result["cpu_s"] = measure.cpu_seconds(sup) - cpu0
            result["manager_cpu_s"] = measure.cpu_seconds(manager) - mcpu0 if manager else None
            result["rss_kib_end"] = measure.rss_kib(sup)
            result["fds_end"] = sum(measure.fd_count(pid) for pid in sup)
            if sup and key not in self.idle_cache:
                time.sleep(0.5)  # let draining and lingering finish
                self.idle_cache[key] = measure.sample_idle_wakeups(sup, p["idle"])
            result["idle_wakeups_per_min"] = self.idle_cache.get(key)
            t0 = int(result["load"]["t0_monotonic_us"])
            analysis = measure.analyse(load.timeline, t0, [u["window"] for u in result["upgrades"]],
                                       [(tag(k), tag(k + 1)) for k in range(len(result["upgrades"]))],
                                       t0 + int(p["warmup"] * 1e6), t_stop)
            result["series_file"] = os.path.join(self.args.out, "series", name + ".dat")
            report.write_series(result["series_file"], analysis.pop("series"))
            result.update(analysis)
            os.unlink(load.timeline)
        except Exception as e:  # a broken peer must not stop the other scenarios
            result["error"] = "%s: %s" % (type(e).__name__, e)
            log("  failed: %s" % result["error"])
            traceback.print_exc()
        finally:
            if load:
                load.kill()
            tool.stop()
            tool.close()
        self.results["scenarios"].append(result)

    # ---- liveswap alone: idle cost of the worker health checks ----

    def idle_health(self):
        """The supervisor's idle wake-ups with the health checks off and on: the watchdog
        costs one wake-up per WATCHDOG=1 (the example server pings at half the interval),
        memory_max one sample a second; off, nothing."""
        settings = [("off", {}), ("watchdog = 2s", {"watchdog": "2s"}), ("memory_max = 1G", {"memory_max": "1G"}),
                    ("both", {"watchdog": "2s", "memory_max": "1G"})]
        for label, keys in settings:
            d = self.directory("idle-health-%d" % len(self.results["idle_health"]))
            tool = tools.Liveswap(self.env, d, measure.free_port(), 0, self.p["workers"], stable_time="0",
                                  worker_keys=keys)
            log("idle wake-ups: %s" % label)
            row = {"label": label, "workers": self.p["workers"], "seconds": self.p["idle_health"]}
            try:
                tag = "%sidle-v0" % self.prefix
                tool.start(tag)
                deadline = time.monotonic() + 60
                while len(measure.processes_of_version(tool.roots(), tag)) < self.p["workers"]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the workers did not all start within 60 s")
                    time.sleep(0.05)
                time.sleep(1.5)  # past ready_delay and the start's last notify messages
                row["wakeups_per_min"] = measure.sample_idle_wakeups(tool.supervisor_pids(), self.p["idle_health"])
                row["cpu_s"] = measure.cpu_seconds(tool.supervisor_pids())
                log("  %.0f wake-ups per minute" % row["wakeups_per_min"])
            except Exception as e:
                row["error"] = "%s: %s" % (type(e).__name__, e)
                log("  failed: %s" % row["error"])
            finally:
                tool.stop()
                tool.close()
            self.results["idle_health"].append(row)

    # ---- liveswap alone: scale and soak ----

    def scale(self, strategy, workers, clients, floor=False):
        """Upgrades of N workers, by liveswap or (FLOOR) by bench/floor.c, with CLIENTS of
        load (0: none). Rows of both go to results["scale"]; report.py divides liveswap's
        time per step (upgrade wall time / N) by the floor's."""
        p = self.p
        who = "floor" if floor else "liveswap"
        d = self.directory("scale-%s-%s-%d-%d" % (who, strategy, workers, clients))
        port = measure.free_port()
        if floor:
            tool = tools.Floor(self.env, d, port, 0, workers, strategy=strategy)
        else:
            # Spawn cost, not the canary's wait: stable_time = 0. Reloaded by SIGHUP, as
            # the floor is: a client command's own start-up is in the scenarios above.
            tool = tools.Liveswap(self.env, d, port, 0, workers, strategy=strategy, stable_time="0",
                                  reload_signal=True)
        log("scale: %s, %d workers, %s, %d clients" % (who, workers, strategy, clients))
        row = {"tool": who, "strategy": strategy, "workers": workers, "clients": clients, "upgrades": [],
               "loadavg": loadavg()}
        load = None
        try:
            def tag(k):
                return "%sscale%s%d-v%d" % (self.prefix, who, workers, k)
            t = time.monotonic()
            tool.start(tag(0))
            # Serving starts with the first ready worker: wait for all of them.
            deadline = time.monotonic() + 300
            while len(measure.processes_of_version(tool.roots(), tag(0))) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("%d workers did not all start within 300 s" % workers)
                time.sleep(0.05)
            row["start_s"] = time.monotonic() - t
            sup = tool.supervisor_pids()
            cpu0 = measure.cpu_seconds(sup)
            if clients:
                load = measure.Load(self.env.loadgen, port, d, clients, timeline=False)
                time.sleep(0.5)
            for k in range(1, scale_upgrades(p, workers) + 1):
                u = self.upgrade_once(tool, tag(k - 1), tag(k))
                u.pop("window")
                row["upgrades"].append(u)
            row["load"] = load.stop() if load else {"failed": "0", "requests": "0"}
            row["cpu_s"] = measure.cpu_seconds(sup) - cpu0
            row["rss_kib"] = measure.rss_kib(sup)
            row["fds"] = sum(measure.fd_count(pid) for pid in sup)
        except Exception as e:
            row["error"] = "%s: %s" % (type(e).__name__, e)
            log("  failed: %s" % row["error"])
        finally:
            if load:
                load.kill()
            tool.stop()
            tool.close()
        self.results["scale"].append(row)

    def soak(self):
        p = self.p
        n = p["soak_upgrades"]
        d = self.directory("soak")
        port = measure.free_port()
        # Leaks over many upgrades, not the canary's wait: stable_time = 0.
        tool = tools.Liveswap(self.env, d, port, 0, p["workers"], strategy="rolling", stable_time="0")
        log("soak: %d upgrades" % n)
        row = {"upgrades": n, "workers": p["workers"], "failed_upgrades": 0, "messages": []}
        load = None
        try:
            tags = [self.prefix + "soak-a", self.prefix + "soak-b"]
            targets = [tool.releases.make(t) for t in tags]
            tool.start(tags[0])
            sup = tool.supervisor_pids()
            row["fds_start"] = sum(measure.fd_count(pid) for pid in sup)
            row["rss_kib_start"] = measure.rss_kib(sup)
            cpu0 = measure.cpu_seconds(sup)
            load = measure.Load(self.env.loadgen, port, d, p["soak_clients"], timeline=False, max_seconds=3600)
            t = time.monotonic()
            for i in range(n):
                ok, message = tool.upgrade_to(targets[(i + 1) % 2])
                if not ok:
                    row["failed_upgrades"] += 1
                    if len(row["messages"]) < 5:
                        row["messages"].append(message)
            row["seconds"] = time.monotonic() - t
            # The end state: the last release only, every drained worker gone.
            deadline = time.monotonic() + 120
            while measure.processes_of_version(tool.roots(), tags[(n + 1) % 2]) and time.monotonic() < deadline:
                time.sleep(0.05)
            row["load"] = load.stop()
            row["cpu_s"] = measure.cpu_seconds(sup) - cpu0
            row["fds_end"] = sum(measure.fd_count(pid) for pid in sup)
            row["rss_kib_end"] = measure.rss_kib(sup)
        except Exception as e:
            row["error"] = "%s: %s" % (type(e).__name__, e)
            log("  failed: %s" % row["error"])
        finally:
            if load:
                load.kill()
            tool.stop()
            tool.close()
        self.results["soak"] = row

    # ---- everything ----

    def skip(self, what, why):
        log("skipped %s: %s" % (what, why))
        self.results["skipped"].append({"what": what, "why": why})

    def run(self):
        systemd_why = self.env.systemd_unavailable()
        if not systemd_why:
            self.env.make_units(self.directory("units"))
        node_why = None if shutil.which("node") else "node is not installed"
        pm2_why = node_why
        if not pm2_why and not (self.env.pm2 and os.access(self.env.pm2, os.X_OK)):
            pm2_why = "pm2 is not installed (bench/run installs it with npm)"
        starter_why = None if shutil.which("start_server") else "start_server (libserver-starter-perl) is missing"

        makers = [
            ("baseline-c", None, lambda *a: tools.SocketActivate(*a, app="c")),
            ("baseline-node", node_why, lambda *a: tools.SocketActivate(*a, app="node")),
            ("liveswap-rolling", None, lambda *a: tools.Liveswap(*a, strategy="rolling")),
            ("liveswap-blue-green", None, lambda *a: tools.Liveswap(*a, strategy="blue-green")),
            ("liveswap-systemd-rolling", systemd_why, lambda *a: tools.LiveswapSystemd(*a, strategy="rolling")),
            ("liveswap-systemd-blue-green", systemd_why,
             lambda *a: tools.LiveswapSystemd(*a, strategy="blue-green")),
            # Upgrading liveswap itself: in place, against restarting its service.
            ("liveswap-self-reexec", systemd_why, lambda *a: tools.LiveswapSelf(*a, how="reexec")),
            ("liveswap-self-restart", systemd_why, lambda *a: tools.LiveswapSelf(*a, how="restart")),
            ("systemd-restart-default", systemd_why, lambda *a: tools.SystemdRestart(*a, limits="default")),
            ("systemd-restart-lifted", systemd_why, lambda *a: tools.SystemdRestart(*a, limits="lifted")),
            ("start-server", starter_why, tools.StartServer),
            ("pm2", pm2_why, tools.Pm2),
            # The same unmodified Node app (binds its port, no drain) under both.
            ("liveswap-adopt-node", node_why, tools.LiveswapAdoptNode),
            ("pm2-plain", pm2_why, lambda *a: tools.Pm2(*a, plain=True)),
        ]
        for app in ("c", "node"):
            if app == "node" and not shutil.which("node"):
                continue
            for delay in (0, SLOW_START_MS):
                if self.wanted("ready") or self.wanted("baseline-" + app):
                    self.results["start_to_ready"]["%s-%d" % (app, delay)] = self.start_to_ready(app, delay)
        for delay in (0, SLOW_START_MS):
            for key, why, make in makers:
                if not self.wanted(key):
                    continue
                if why:
                    if delay == 0:
                        self.skip(key, why)
                    continue
                if key.startswith("baseline") and delay:
                    continue  # the baseline is about throughput: measured once
                self.scenario(key, make, delay)
        if self.wanted("scale"):
            # The floor right before liveswap at each point, so that both meet the same
            # machine (and the same neighbours' load) as far as one run can arrange.
            for clients in self.p["scale_loads"]:
                for strategy in self.p["scale_strategies"]:
                    for workers in self.p["scale_sizes"]:
                        self.scale(strategy, workers, clients, floor=True)
                        self.scale(strategy, workers, clients)
        if self.wanted("idle-health"):
            self.idle_health()
        if self.wanted("soak"):
            self.soak()
        return self.results


# A machine whose 1-minute load average is above this per CPU (1.0 on 2 CPUs) is busy:
# other work competes with the workers being spawned, and times per step are not those
# of a quiet machine (one run started at load average 24). bench.py waits up to
# QUIET_WAIT_S for the load to fall below it (bench/run has just built liveswap, which
# alone leaves the 1-minute average near the CPU count), then refuses to run, unless
# --busy: that run goes ahead and RESULTS.md marks every table as measured on a busy
# machine. Each scale row also records the load average at its own start.
BUSY_LOAD_PER_CPU = 0.5
QUIET_WAIT_S = 180


def busy_threshold():
    return BUSY_LOAD_PER_CPU * (os.cpu_count() or 1)


def wait_quiet(allow_busy):
    """Waits (bounded) for the 1-minute load average to fall to the threshold; returns
    the seconds waited. Exits when it does not and ALLOW_BUSY is false."""
    t0 = time.monotonic()
    if loadavg()[0] > busy_threshold():
        log("load average %.2f is above %g: waiting up to %d s for the machine to be quiet" % (
            loadavg()[0], busy_threshold(), QUIET_WAIT_S))
    while loadavg()[0] > busy_threshold() and time.monotonic() - t0 < QUIET_WAIT_S:
        time.sleep(5)  # the kernel updates the load average every 5 s
    load = loadavg()[0]
    if load > busy_threshold():
        if not allow_busy:
            sys.exit("bench: the machine is busy: 1-minute load average %.2f, above %g (%g per CPU) after %d s "
                     "of waiting; its numbers would not be a quiet machine's. Stop the other work, or run "
                     "with --busy to measure anyway (RESULTS.md then marks every table)." % (
                         load, busy_threshold(), BUSY_LOAD_PER_CPU, QUIET_WAIT_S))
        log("busy machine (load average %.2f): measuring anyway (--busy); RESULTS.md says so" % load)
    return time.monotonic() - t0


def scale_upgrades(p, workers):
    """Upgrades per scale point: 5 times as many below 100 workers, whose upgrades take
    tens of ms, where the 5-10 ms step of the convergence check (upgrade_once()) is a
    large part of one upgrade's time; their median is then of 15, not 3."""
    return p["scale_upgrades"] * (5 if workers < 100 else 1)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def buildtype(env):
    """How liveswap was compiled, from meson's record of its build directory."""
    try:
        r = subprocess.run(["meson", "introspect", "--buildoptions", os.path.dirname(os.path.dirname(env.liveswap))],
                           capture_output=True, text=True, timeout=60)
        options = {o["name"]: o["value"] for o in json.loads(r.stdout)}
        return "%s, -O%s" % (options["buildtype"], options["optimization"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return "unknown"


def machine(env):
    def first_line(args):
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=30)
            return (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not available"
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    distro = "unknown"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "memory_gib": round(mem_kib / 2**20, 1),
        "distro": distro, "liveswap": first_line([env.liveswap, "-v"]), "buildtype": buildtype(env),
        "systemd": first_line(["systemctl", "--version"]),
        "start_server": first_line(["start_server", "--version"]),
        "node": first_line(["node", "--version"]),
        "pm2": pm2_version(env.pm2),
        "load": loadavg(),
        "busy": loadavg()[0] > busy_threshold(),
        "busy_threshold": busy_threshold(),
    }


def pm2_version(pm2):
    # Not `pm2 --version`: that starts a PM2 daemon.
    package = os.path.join(os.path.dirname(os.path.realpath(pm2 or "/nonexistent")), "..", "package.json")
    try:
        with open(package) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "not available"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description="liveswap side by side with the alternatives")
    parser.add_argument("--quick", action="store_true", help="fewer upgrades and shorter runs (< 3 min)")
    parser.add_argument("--build", default=os.path.join(root, os.environ.get("BUILDDIR", "build")))
    parser.add_argument("--pm2", default=os.path.join(root, "bench", ".cache", "npm", "node_modules", ".bin", "pm2"))
    parser.add_argument("--out", default=os.path.join(root, "bench", "out"), help="raw results and plot data")
    parser.add_argument("--results", default=os.path.join(root, "bench"), help="where RESULTS.md and PNGs go")
    parser.add_argument("--only", help="comma-separated scenario key prefixes (for development; "
                        "--only scale runs the scale scenario alone)")
    parser.add_argument("--scale-sizes", help="comma-separated worker counts for the scale scenario instead of "
                        "the profile's (for development, e.g. --only scale --quick --scale-sizes 4,16)")
    parser.add_argument("--busy", action="store_true", help="run even when the machine is busy (load average "
                        "above %g per CPU); every table is then marked as measured on a busy machine" %
                        BUSY_LOAD_PER_CPU)
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    # Up to 2 fds per worker in the supervisor: 1,024 workers upgraded blue-green need
    # more than the usual soft limit of 1024. Until liveswap raises its own soft limit
    # (issue 15, item 3), the bench raises it for everything it starts.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = tools.Env(root, args.build, args.pm2)
    for path in (env.liveswap, env.httpd, env.loadgen, env.floor):
        if not os.access(path, os.X_OK):
            sys.exit("bench: %s is missing: build first (bench/run does)" % path)
    os.makedirs(os.path.join(args.out, "series"), exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    waited = wait_quiet(args.busy)
    info = machine(env)
    info["quiet_wait_s"] = round(waited)
    work = tempfile.mkdtemp(prefix="liveswap-bench.")
    started = time.monotonic()
    try:
        results = Bench(args, env, work, info).run()
    finally:
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.monotonic() - started
    results["date"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")  # report.py may run again later
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report.write(results, args.results, args.out)
    log("done in %.0f s: %s" % (results["seconds"], os.path.join(args.results, "RESULTS.md")))


if __name__ == "__main__":
    main()
