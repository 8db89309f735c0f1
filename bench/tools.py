"""tools.py: each way of running and upgrading the app that the benchmark compares.

A tool starts the app on 127.0.0.1:PORT, upgrades it to a version tag with the command
its users would type, names the process(es) that supervise (for RSS, CPU, wake-ups) and
stops everything it started, by pid. The C worker is deployed the way deploy tools do
it: each version is a release directory with a `start` script, and `current` is a
symlink that is repointed before the upgrade command runs. The Node worker (for PM2)
gets its version from APP_VERSION instead, as PM2's --update-env passes it.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from measure import wait_serving

# The systemd tests' private `systemd --user` manager, shared rather than written twice.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "systemd"))
import manager as systemd_manager  # noqa: E402

START_TIMEOUT = 60.0
UPGRADE_TIMEOUT = 600.0


class Env:
    """Paths shared by every run."""

    def __init__(self, root, build, pm2):
        self.root = root
        self.liveswap = os.path.join(build, "src", "liveswap")
        self.adopt_library = os.path.join(build, "src", "libliveswap-adopt.so")  # the uninstalled copy
        self.httpd = os.path.join(build, "examples", "liveswap-example-httpd")
        self.loadgen = os.path.join(build, "tests", "tools", "loadgen")
        self.floor = os.path.join(build, "bench", "liveswap-bench-floor")
        self.pm2 = pm2
        self.node_app = os.path.join(root, "examples", "node", "aware.js")
        # The plain hello world that binds its own port (liveswap adopts it).
        self.node_plain = os.path.join(root, "examples", "node", "server.js")
        self.node_wrapper = os.path.join(root, "bench", "apps", "slow-start.js")
        self.user_service = os.path.join(build, "units", "liveswap@.service.user")
        self.socket_unit = os.path.join(root, "units", "liveswap@.socket")
        self.units = None  # where the units for the systemd scenarios are, once made

    def systemd_unavailable(self):
        """Why the systemd scenarios cannot run here, or None."""
        if os.geteuid() != 0:
            return "they need root (a private systemd --user manager needs a mount namespace and a cgroup)"
        for tool in ("unshare", "systemctl"):
            if not shutil.which(tool):
                return "%s is missing" % tool
        if not os.access(systemd_manager.SYSTEMD, os.X_OK):
            return "%s is missing" % systemd_manager.SYSTEMD
        if not systemd_manager.cgroup_hierarchies():
            return "there is no writable cgroup hierarchy"
        if not os.path.exists(self.user_service):
            return "the build has no systemd units (meson -Dsystemd-units=enabled)"
        return None

    def make_units(self, directory):
        """The user units as `meson install` would install them, running this build's
        liveswap: the configured liveswap@.service with its ExecStart= directory replaced."""
        with open(self.user_service) as f:
            service = f.read()
        installed = re.search(r"^ExecStart=(\S+)/liveswap\s", service, re.M)
        if not installed:
            raise RuntimeError("%s has no ExecStart=.../liveswap line" % self.user_service)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "liveswap@.service"), "w") as f:
            f.write(service.replace(installed.group(1) + "/liveswap", self.liveswap))
        shutil.copy(self.socket_unit, directory)
        self.units = directory


class Units:
    """What tests/systemd/manager.py needs of an installation: where the user units and
    the liveswap binary are."""

    def __init__(self, env):
        self.user_units = env.units
        self.bindir = os.path.dirname(env.liveswap)


class Releases:
    """releases/TAG/start scripts for the C worker, and the `current` symlink."""

    def __init__(self, env, directory, delay_ms):
        self.env = env
        self.dir = os.path.join(directory, "releases")
        self.current = os.path.join(directory, "current")
        self.delay_ms = delay_ms
        os.makedirs(self.dir, exist_ok=True)

    def command(self, tag):
        args = [self.env.httpd, "--version", tag]
        if self.delay_ms:
            args += ["--delay-start", str(self.delay_ms)]
        return args

    def make(self, tag):
        path = os.path.join(self.dir, tag)
        if not os.path.isdir(path):
            os.makedirs(path)
            start = os.path.join(path, "start")
            with open(start, "w") as f:
                f.write("#!/bin/sh\nexec %s\n" % " ".join("'%s'" % a for a in self.command(tag)))
            os.chmod(start, 0o755)
        return path

    def point(self, tag):
        """Repoints `current` at TAG atomically, as a deploy tool does."""
        target = self.make(tag)
        tmp = self.current + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.current)


def run(args, env=None, timeout=UPGRADE_TIMEOUT):
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    message = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return r.returncode == 0, message[-1] if message else ""


def stop_process(proc, sig=signal.SIGTERM, timeout=60.0):
    """Stops a process we started, by its pid: SIG, then SIGKILL after TIMEOUT."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_liveswap_config(path, target, workers, strategy, head=None, ready="notify", stable_time=None,
                          worker_keys=None):
    with open(path, "w") as f:
        f.write("[worker]\ntarget = %s\nexec = ./start\nworkers = %d\n" % (target, workers))
        f.write("".join("%s = %s\n" % kv for kv in (worker_keys or {}).items()))
        f.write("[upgrade]\nstrategy = %s\nbatch = 1\nready = %s\nready_timeout = 120s\n"
                "drain_timeout = 60s\n" % (strategy, ready))
        if stable_time is not None:
            f.write("stable_time = %s\n" % stable_time)
        if head:
            f.write("[state]\nhead = %s\n" % head)


class Tool:
    key = ""
    label = ""
    app = "c"          # which worker: the C example (c) or the Node example (node)
    upgrades = True
    supervisor = ""    # what the supervisor columns measure

    def __init__(self, env, directory, port, delay_ms, workers):
        self.env, self.dir, self.port, self.delay_ms, self.workers = env, directory, port, delay_ms, workers
        self.releases = Releases(env, directory, delay_ms)
        self.log = open(os.path.join(directory, "tool.log"), "w")
        self.commands = []  # what a user types, for RESULTS.md

    def start(self, tag):
        raise NotImplementedError

    def upgrade(self, tag):
        raise NotImplementedError

    def supervisor_pids(self):
        return []

    def roots(self):
        """Processes under which the app's workers live."""
        return self.supervisor_pids()

    def stop(self):
        pass

    def close(self):
        self.log.close()


class SocketActivate(Tool):
    """The app alone under systemd-socket-activate: the throughput baseline."""
    upgrades = False
    supervisor = "none"

    def __init__(self, *args, app="c"):
        super().__init__(*args)
        self.app = app
        self.workers = 1
        self.key = "baseline-" + app
        self.label = "%s app alone (systemd-socket-activate)" % ("C" if app == "c" else "Node")
        self.proc = None

    def command(self, tag):
        if self.app == "c":
            return self.releases.command(tag)
        return ["node", self.env.node_wrapper]

    def spawn(self, tag):
        args = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % self.port]
        if self.app == "node":
            # It passes on only the environment it is told to.
            args += ["-E", "APP_VERSION=" + tag, "-E", "APP_SCRIPT=" + self.env.node_app,
                     "-E", "START_DELAY_MS=%d" % self.delay_ms]
        args += self.command(tag)
        self.commands = [" ".join(args)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def exited(self):
        return self.proc is not None and self.proc.poll() is not None

    def start(self, tag):
        self.spawn(tag)
        wait_serving(self.port, START_TIMEOUT, self.label)

    def roots(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        stop_process(self.proc)


class Liveswap(Tool):
    supervisor = "liveswap"

    def __init__(self, *args, strategy="rolling", stable_time=None, worker_keys=None, reload_signal=False):
        super().__init__(*args)
        self.strategy = strategy
        # SIGHUP instead of `liveswap -u` (the same reload, contract section 3): the
        # trigger the floor gets, so that the scale scenario compares the supervisors'
        # work and not also the start-up of a client process.
        self.reload_signal = reload_signal
        self.worker_keys = worker_keys  # extra [worker] keys (watchdog, memory_max)
        self.stable_time = stable_time  # None: liveswap's default (the 1 s canary)
        self.ready = "notify"
        self.key = "liveswap-" + strategy
        self.label = "liveswap %s" % ("rolling, batch 1" if strategy == "rolling" else strategy)
        self.instance = "bench"
        self.proc = None
        self.env_vars = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(self.dir, "run"),
                             XDG_STATE_HOME=os.path.join(self.dir, "state"),
                             LIVESWAP_ADOPT_LIBRARY=self.env.adopt_library)
        self.env_vars.pop("DBUS_SESSION_BUS_ADDRESS", None)
        os.makedirs(self.env_vars["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        self.config = os.path.join(self.dir, "%s.conf" % self.instance)

    def start(self, tag):
        self.releases.point(tag)
        write_liveswap_config(self.config, self.releases.current, self.workers, self.strategy,
                              head=os.path.join(self.dir, "HEAD"), ready=self.ready, stable_time=self.stable_time,
                              worker_keys=self.worker_keys)
        args = [self.env.liveswap, "--instance", self.instance, "--config", self.config,
                "--listen", "127.0.0.1:%d" % self.port]
        self.commands = [" ".join(args), "ln -sfn releases/NEW current && liveswap -i %s -u" % self.instance]
        self.proc = subprocess.Popen(args, env=self.env_vars, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        wait_serving(self.port, START_TIMEOUT, self.label)

    def upgrade(self, tag):
        self.releases.point(tag)
        if self.reload_signal:
            self.proc.send_signal(signal.SIGHUP)
            return True, ""
        return run([self.env.liveswap, "-i", self.instance, "-u"], env=self.env_vars)

    def upgrade_to(self, target):
        """An explicit target, without the symlink (the soak alternates two releases)."""
        return run([self.env.liveswap, "-i", self.instance, "-u", target], env=self.env_vars)

    def supervisor_pids(self):
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                run([self.env.liveswap, "-i", self.instance, "-d"], env=self.env_vars, timeout=90)
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
        stop_process(self.proc)


class Floor(Tool):
    """bench/floor.c: fork, exec, READY=1, SIGTERM for N workers and nothing else, run
    the same way as liveswap in the scale scenario (the same releases and wrapper, an
    upgrade when `current` is repointed, the same convergence test): the floor that
    liveswap's time per step is compared with."""
    supervisor = "floor"

    def __init__(self, *args, strategy="rolling"):
        super().__init__(*args)
        self.strategy = strategy
        self.key = "floor-" + strategy
        self.label = "floor %s" % ("rolling, batch 1" if strategy == "rolling" else strategy)
        self.proc = None

    def start(self, tag):
        self.releases.point(tag)
        args = [self.env.floor, "--listen", "127.0.0.1:%d" % self.port, "--workers", str(self.workers),
                "--current", self.releases.current, "--strategy", self.strategy]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_serving(self.port, START_TIMEOUT, self.label)

    def upgrade(self, tag):
        # Returns at once: the bench's convergence test (no old process left, the new
        # version answers) times the whole step, as it does for liveswap.
        self.releases.point(tag)
        self.proc.send_signal(signal.SIGHUP)
        return True, ""

    def supervisor_pids(self):
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def stop(self):
        stop_process(self.proc, timeout=90)


class NodeReleases(Releases):
    """releases/TAG/start scripts that run the plain Node hello world (examples/node/
    server.js, through the slow-start wrapper) on PORT: it binds the port itself."""

    def __init__(self, env, directory, delay_ms, port):
        super().__init__(env, directory, delay_ms)
        self.port = port

    def command(self, tag):
        return ["env", "APP_VERSION=" + tag, "PORT=%d" % self.port, "APP_SCRIPT=" + self.env.node_plain,
                "START_DELAY_MS=%d" % self.delay_ms, "node", self.env.node_wrapper]


class LiveswapAdoptNode(Liveswap):
    """The unmodified Node app (no LISTEN_FDS, no READY=1, no drain) under liveswap with
    adopt and ready = listen: the comparison with PM2 on the same app code."""
    app = "node"

    def __init__(self, *args):
        super().__init__(*args, strategy="rolling")
        self.key = "liveswap-adopt-node"
        self.label = "liveswap rolling, unmodified Node app (adopt, ready = listen)"
        self.releases = NodeReleases(self.env, self.dir, self.delay_ms, self.port)
        self.ready = "listen"


class ManagedTool(Tool):
    """A tool that runs under a private systemd --user manager."""

    def __init__(self, *args):
        super().__init__(*args)
        self.manager = systemd_manager.UserManager(os.path.join(self.dir, "systemd"), Units(self.env))
        self.started = False

    def start_manager(self):
        self.started = True
        self.manager.start()
        self.manager.systemctl("daemon-reload")

    def systemctl(self, *args, check=0, timeout=UPGRADE_TIMEOUT):
        return self.manager.systemctl(*args, check=check, timeout=timeout)

    def write_unit(self, name, text):
        with open(os.path.join(self.manager.unit_dir, name), "w") as f:
            f.write(text)

    def main_pid(self, unit):
        try:
            pid = int(self.manager.show(unit, "MainPID").get("MainPID") or 0)
        except ValueError:
            pid = 0
        return [pid] if pid > 0 else []

    def manager_pids(self):
        return [self.manager.proc.pid] if self.manager.proc and self.manager.proc.poll() is None else []

    def roots(self):
        return self.manager_pids()

    def stop(self):
        if not self.started:
            return
        problems = self.manager.stop()
        # In hybrid mode the manager mirrors its unified cgroup (NAME/init.scope) into
        # the name=systemd hierarchy, which manager.stop() does not know about.
        for cg in self.manager.cgroups:
            for hierarchy in systemd_manager.cgroup_hierarchies():
                mirror = os.path.join(hierarchy, os.path.basename(cg))
                for root, _dirs, _files in os.walk(mirror, topdown=False):
                    try:
                        os.rmdir(root)
                    except OSError as e:
                        problems.append("cannot remove the cgroup %s: %s" % (root, e.strerror))
        if problems:
            print("bench: %s: %s" % (self.label, "; ".join(problems)), file=sys.stderr)


class LiveswapSystemd(ManagedTool):
    supervisor = "liveswap"

    def __init__(self, *args, strategy="rolling"):
        super().__init__(*args)
        self.strategy = strategy
        self.key = "liveswap-systemd-" + strategy
        self.label = "liveswap %s under systemd" % ("rolling" if strategy == "rolling" else strategy)
        self.unit = "liveswap@bench.service"

    def start(self, tag):
        self.releases.point(tag)
        m = self.manager
        # Where the user unit looks for it (%E/liveswap/%i.conf); HEAD goes to
        # StateDirectory=, as in production.
        config = os.path.join(m.config_home, "liveswap", "bench.conf")
        os.makedirs(os.path.dirname(config), exist_ok=True)
        write_liveswap_config(config, self.releases.current, self.workers, self.strategy)
        m.drop_in("liveswap@bench.socket", "50-port", "[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n"
                  % self.port)
        m.log_to_file(self.unit)
        self.start_manager()
        self.systemctl("start", "liveswap@bench.socket")
        self.commands = ["systemctl --user start liveswap@bench.socket  (a drop-in: ListenStream=127.0.0.1:PORT)",
                         "ln -sfn releases/NEW current && systemctl --user reload liveswap@bench"]
        wait_serving(self.port, START_TIMEOUT, self.label)

    def upgrade(self, tag):
        self.releases.point(tag)
        r = self.systemctl("reload", self.unit, check=None)
        return r.returncode == 0, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""

    def supervisor_pids(self):
        return self.main_pid(self.unit)


class LiveswapSelf(LiveswapSystemd):
    """Upgrading liveswap itself (a package upgrade: the app stays). The old way restarts
    the service, which drains the workers and starts the app again while the socket unit
    queues connections; the new way re-executes the supervisor in place (liveswapctl
    reexec), workers untouched. keeps_app: the app's version never changes here."""
    keeps_app = True

    def __init__(self, *args, how="reexec"):
        super().__init__(*args, strategy="rolling")
        self.how = how
        self.key = "liveswap-self-" + how
        self.label = ("liveswap itself upgraded: liveswapctl reexec" if how == "reexec"
                      else "liveswap itself upgraded: systemctl restart liveswap@bench")

    def start(self, tag):
        super().start(tag)
        self.serving_tag = tag
        self.commands[-1] = ("liveswapctl -i bench reexec" if self.how == "reexec"
                             else "systemctl --user restart liveswap@bench")

    def upgrade(self, tag):
        if self.how == "reexec":
            r = self.manager.liveswapctl("-i", "bench", "reexec", timeout=UPGRADE_TIMEOUT)
        else:
            r = self.systemctl("restart", self.unit, check=None)
        return r.returncode == 0, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


class SystemdRestart(ManagedTool):
    """What users do today: a socket unit, a Type=notify service, systemctl restart."""
    supervisor = "systemd --user"

    def __init__(self, *args, limits="default"):
        super().__init__(*args)
        self.limits = limits
        self.workers = 1
        self.key = "systemd-restart-" + limits
        self.label = "systemctl restart, %s start limits" % ("default" if limits == "default" else "no")

    def start(self, tag):
        self.releases.point(tag)
        log = self.manager.service_log
        self.write_unit("bench-app.socket", "[Socket]\nListenStream=127.0.0.1:%d\nBacklog=4096\n" % self.port)
        unit = "[Unit]\n" + ("StartLimitIntervalSec=0\n" if self.limits == "lifted" else "")
        unit += ("[Service]\nType=notify\nExecStart=%s/start\nStandardOutput=append:%s\nStandardError=append:%s\n"
                 % (self.releases.current, log, log))
        self.write_unit("bench-app.service", unit)
        self.start_manager()
        self.systemctl("start", "bench-app.socket")
        self.commands = ["systemctl --user start bench-app.socket  (a Type=notify service%s)"
                         % (", StartLimitIntervalSec=0" if self.limits == "lifted" else ""),
                         "ln -sfn releases/NEW current && systemctl --user restart bench-app.service"]
        wait_serving(self.port, START_TIMEOUT, self.label)

    def upgrade(self, tag):
        self.releases.point(tag)
        r = self.systemctl("restart", "bench-app.service", check=None)
        return r.returncode == 0, r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""

    def supervisor_pids(self):
        return self.manager_pids()


class StartServer(Tool):
    """Server::Starter: start_server holds the socket, --restart starts a new worker,
    waits --interval (1 s by default), then signals the old one."""
    key = "start-server"
    label = "Server::Starter (start_server --restart)"
    supervisor = "start_server (perl)"

    def __init__(self, *args):
        super().__init__(*args)
        self.workers = 1  # start_server runs one server process
        self.pid_file = os.path.join(self.dir, "start_server.pid")
        self.status_file = os.path.join(self.dir, "start_server.status")
        self.proc = None

    def start(self, tag):
        self.releases.point(tag)
        args = ["start_server", "--port=127.0.0.1:%d" % self.port, "--backlog=4096",
                "--pid-file=" + self.pid_file, "--status-file=" + self.status_file,
                "--signal-on-hup=TERM", "--signal-on-term=TERM", "--", os.path.join(self.releases.current, "start")]
        self.commands = [" ".join(args).replace(self.dir + "/", ""),
                         "ln -sfn releases/NEW current && start_server --restart --pid-file=... --status-file=..."]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_serving(self.port, START_TIMEOUT, self.label)

    def upgrade(self, tag):
        self.releases.point(tag)
        return run(["start_server", "--restart", "--pid-file=" + self.pid_file, "--status-file=" + self.status_file])

    def supervisor_pids(self):
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def stop(self):
        stop_process(self.proc, timeout=90)


class Pm2(Tool):
    """PM2 cluster mode with the Node example. PM2's workers cannot inherit a socket: the
    PM2 daemon listens on the port through node:cluster and hands each connection to a
    worker, so the example listens on PORT here instead of on LISTEN_FDS."""
    key = "pm2"
    label = "PM2 cluster (pm2 reload)"
    app = "node"
    supervisor = "PM2 daemon"

    def __init__(self, *args, plain=False):
        super().__init__(*args)
        self.script = self.env.node_plain if plain else self.env.node_app
        if plain:
            self.key = "pm2-plain"
            self.label = "PM2 cluster (pm2 reload), unmodified Node app"
        self.home = os.path.join(self.dir, "pm2")
        self.env_vars = dict(os.environ, PM2_HOME=self.home)
        self.god = None

    def pm2(self, *args, env=None, timeout=UPGRADE_TIMEOUT):
        return run([self.env.pm2, *args], env=env or self.env_vars, timeout=timeout)

    def start(self, tag):
        ecosystem = os.path.join(self.dir, "ecosystem.json")
        app = {"name": "bench", "script": self.env.node_wrapper, "exec_mode": "cluster",
               "instances": self.workers, "merge_logs": True,
               "out_file": os.path.join(self.dir, "app.log"), "error_file": os.path.join(self.dir, "app.log"),
               "env": {"PORT": str(self.port), "APP_VERSION": tag, "APP_SCRIPT": self.script,
                       "START_DELAY_MS": str(self.delay_ms)}}
        with open(ecosystem, "w") as f:
            json.dump({"apps": [app]}, f, indent=2)
        self.commands = ["pm2 start ecosystem.json  (exec_mode cluster, instances %d)" % self.workers,
                         "APP_VERSION=NEW pm2 reload bench --update-env"]
        ok, message = self.pm2("start", ecosystem, timeout=START_TIMEOUT)
        self.read_god()
        if not ok:
            raise RuntimeError("pm2 start failed: %s" % message)
        wait_serving(self.port, START_TIMEOUT, self.label)

    def read_god(self):
        try:
            with open(os.path.join(self.home, "pm2.pid")) as f:
                self.god = int(f.read().strip())
        except (OSError, ValueError):
            self.god = None

    def upgrade(self, tag):
        return self.pm2("reload", "bench", "--update-env", env=dict(self.env_vars, APP_VERSION=tag))

    def supervisor_pids(self):
        return [self.god] if self.god and os.path.exists("/proc/%d" % self.god) else []

    def stop(self):
        self.read_god()  # also when start was interrupted after the daemon was spawned
        if not self.god:
            return
        self.pm2("kill", timeout=90)
        # pm2 kill ends the daemon it started; make sure of it, by its pid.
        deadline = time.monotonic() + 30
        while os.path.exists("/proc/%d" % self.god) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists("/proc/%d" % self.god):
            os.kill(self.god, signal.SIGKILL)
