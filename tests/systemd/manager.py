"""A private systemd user manager for liveswap's systemd tests, and the installed tree
it runs.

liveswap is installed with `meson install` into a prefix of its own (a build of the same
source with that prefix, so that the units' ExecStart= paths are the installed ones),
and a real `systemd --user` runs on it: in a private mount namespace (with a tmpfs on
/run/systemd, so that it believes the system booted with systemd), in a cgroup of its
own (so that it manages only its subtree), with its runtime and configuration
directories in the test's temporary directory. Its units come from the prefix through
$SYSTEMD_UNIT_PATH, test drop-ins from $XDG_CONFIG_HOME/systemd/user. There is no
journald: services log to a file through a drop-in.

Everything it starts is stopped by pid: the manager by `systemctl --user exit` (SIGKILL
if it does not go), then whatever is left in its cgroups, and the cgroups are removed.
"""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from lib import SANITIZER_MARKERS  # noqa: E402  the integration suite's, so both scan alike

SOURCE_ROOT = os.environ.get("LIVESWAP_SOURCE_ROOT", "")
BUILD_ROOT = os.environ.get("LIVESWAP_BUILD_ROOT", "")
SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = "/sys/fs/cgroup"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# meson's b_sanitize of the build under test ("none" without sanitizers).
SANITIZE = os.environ.get("LIVESWAP_SANITIZE", "none") or "none"
# What scripts/test exports, unless the caller set its own.
SANITIZER_DEFAULTS = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:verify_asan_link_order=0",
                      "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}

_counter = itertools.count()


def skip_reason():
    """Why this machine cannot run a private user manager, or None."""
    if os.geteuid() != 0:
        return "needs root: a private systemd --user manager needs a mount namespace and its own cgroup"
    if not os.access(SYSTEMD, os.X_OK):
        return "%s is missing (install systemd)" % SYSTEMD
    for tool in ("systemctl", "busctl", "systemd-analyze", "unshare", "setpriv", "man", "dbus-daemon", "dbus-send"):
        if not shutil.which(tool):
            return "%s is missing" % tool
    if not os.path.exists("/usr/lib/systemd/user/dbus.socket"):
        return "no user bus unit dbus.socket (install dbus-user-session)"
    if not cgroup_hierarchies():
        return "no writable cgroup hierarchy under %s" % CGROUP_ROOT
    if not (SOURCE_ROOT and BUILD_ROOT):
        return "LIVESWAP_SOURCE_ROOT and LIVESWAP_BUILD_ROOT are not set (run through meson test)"
    return None


def cgroup_hierarchies():
    """Where a cgroup of our own goes: the unified hierarchy alone (cgroup v2), or the
    systemd named hierarchy plus the unified one when mounted (hybrid, as here)."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        return [CGROUP_ROOT]
    found = [os.path.join(CGROUP_ROOT, h) for h in ("systemd", "unified")
             if os.path.exists(os.path.join(CGROUP_ROOT, h, "cgroup.procs"))]
    return found if any(h.endswith("/systemd") for h in found) else []


def sanitizer_environment():
    """ASAN_OPTIONS and UBSAN_OPTIONS for a sanitizer build (empty otherwise): the caller's,
    else scripts/test's. The user manager passes its environment on to every service, so
    the supervisor, its workers and ExecReload= get them."""
    if SANITIZE == "none":
        return {}
    return {k: os.environ.get(k) or v for k, v in SANITIZER_DEFAULTS.items()}


def run(args, timeout=600, **kwargs):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kwargs)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


class Installation:
    """liveswap installed with `meson install` into BUILD_ROOT/systemd-test/prefix. The
    build directory next to it is kept between runs (only what changed is rebuilt); the
    prefix is installed afresh every time."""

    def __init__(self):
        base = os.path.join(BUILD_ROOT, "systemd-test")
        self.build = os.path.join(base, "build")
        self.prefix = os.path.join(base, "prefix")
        self.bindir = os.path.join(self.prefix, "bin")
        self.user_units = os.path.join(self.prefix, "lib", "systemd", "user")
        self.system_units = os.path.join(self.prefix, "lib", "systemd", "system")
        self.mandir = os.path.join(self.prefix, "share", "man")
        self.datadir = os.path.join(self.prefix, "share")

    def install(self):
        started = time.monotonic()
        if not os.path.exists(os.path.join(self.build, "build.ninja")):
            shutil.rmtree(self.build, ignore_errors=True)
            # The options of the build under test, so that a sanitizer build is tested
            # as one; every part this suite checks is required, not left to auto.
            options = ["-Dbuildtype=" + os.environ.get("LIVESWAP_BUILDTYPE", "debug")]
            sanitize = os.environ.get("LIVESWAP_SANITIZE", "none")
            if sanitize and sanitize != "none":
                options.append("-Db_sanitize=" + sanitize)
            run(["meson", "setup", "--prefix", self.prefix, "-Dtests=disabled", "-Dsystemd-units=enabled",
                 "-Ddbus-policy=enabled", "-Dman-pages=enabled"] + options + [self.build, SOURCE_ROOT])
        shutil.rmtree(self.prefix, ignore_errors=True)
        run(["meson", "install", "-C", self.build, "--quiet"])
        print("installed into %s in %.1fs" % (self.prefix, time.monotonic() - started), file=sys.stderr)
        return self


class UserManager:
    """A private `systemd --user`, its directories under DIRECTORY."""

    def __init__(self, directory, installation):
        self.dir = directory
        self.installation = installation
        self.run_dir = os.path.join(directory, "run")
        self.config_home = os.path.join(directory, "config")
        self.home = os.path.join(directory, "home")
        self.log_path = os.path.join(directory, "manager.log")
        self.service_log = os.path.join(directory, "service.log")
        for d in (self.run_dir, self.config_home, self.home):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.unit_dir = os.path.join(self.config_home, "systemd", "user")
        os.makedirs(self.unit_dir, exist_ok=True)
        self.proc = None
        # The same path in every hierarchy: systemd assumes it and creates its subtree
        # there in each of them.
        name = "liveswap-test.%d.%d" % (os.getpid(), next(_counter))
        self.cgroups = [os.path.join(h, name) for h in cgroup_hierarchies()]
        # What the manager and every client sees: nothing of the caller's session.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": self.run_dir,
            "XDG_CONFIG_HOME": self.config_home,
            "XDG_STATE_HOME": os.path.join(self.home, ".local", "state"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
        }
        self.env.update(sanitizer_environment())
        # Where liveswap would put HEAD without $STATE_DIRECTORY: set for the services by
        # a drop-in (start()), apart from where systemd puts StateDirectory= (252:
        # $XDG_CONFIG_HOME, newer: the manager's $XDG_STATE_HOME), so that the fallback
        # cannot stand in for a missing StateDirectory=.
        self.fallback_state_home = os.path.join(directory, "fallback-state")
        # Output of the liveswap clients run here, scanned for sanitizer reports too.
        self.client_output = []

    def start(self):
        self.drop_in("liveswap@.service", "40-fallback-state",
                     "[Service]\nEnvironment=XDG_STATE_HOME=%s\n" % self.fallback_state_home)
        for cg in self.cgroups:
            os.mkdir(cg)
        env = dict(self.env)
        # The installed units first; the trailing colon keeps the default search path
        # (dbus.socket, targets, and the drop-ins under $XDG_CONFIG_HOME).
        env["SYSTEMD_UNIT_PATH"] = self.installation.user_units + ":"
        env["CGROUPS"] = " ".join(self.cgroups)
        script = ('set -e\n'
                  'for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs"; done\n'
                  '[ -d /run/systemd ] || mkdir -p /run/systemd\n'
                  'mount -t tmpfs -o mode=0755 tmpfs /run/systemd\n'
                  'mkdir /run/systemd/system\n'
                  # What PID 1 makes at boot (make_inaccessible_nodes()): the nodes that
                  # InaccessiblePaths= and ProtectKernelTunables=/Logs= mount over files,
                  # else the system unit's hardening fails with 226/NAMESPACE here.
                  'i=/run/systemd/inaccessible\n'
                  'mkdir $i && mkdir -m 0000 $i/dir\n'
                  ': > $i/reg\n'
                  'mkfifo $i/fifo\n'
                  'mknod $i/chr c 0 0\n'
                  'mknod $i/blk b 0 0\n'
                  '%s -c "import socket; socket.socket(socket.AF_UNIX).bind(\'$i/sock\')"\n'
                  'chmod 0000 $i/reg $i/fifo $i/chr $i/blk $i/sock\n'
                  'unset CGROUPS\n'
                  'exec %s --user\n' % (sys.executable, SYSTEMD))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.home, start_new_session=True)
        private = os.path.join(self.run_dir, "systemd", "private")
        deadline = time.monotonic() + START_TIMEOUT
        # The manager gives no other sign that it listens; a socket file is polled.
        while not os.path.exists(private):
            if self.proc.poll() is not None:
                raise AssertionError("systemd --user exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("systemd --user did not come up in %ds:\n%s" % (START_TIMEOUT, self.log()))
            time.sleep(0.02)
        self.systemctl("is-system-running", "--wait", check=None, timeout=START_TIMEOUT)
        return self

    def stop(self):
        """Stops the manager and everything in its cgroups; never raises before all of it
        was tried. Returns a list of problems (empty when all went well)."""
        problems = []
        if self.proc and self.proc.poll() is None:
            try:
                self.systemctl("exit", check=None, timeout=30)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append("systemd --user did not exit in %ds: killed" % STOP_TIMEOUT)
                self.proc.kill()
                self.proc.wait()
        left = self._kill_leftovers()
        if left:
            problems.append("processes left in the manager's cgroup: %s" % left)
        for cg in self.cgroups:
            if not self._remove_cgroup(cg):
                problems.append("cannot remove the cgroup %s" % cg)
        return problems

    def _pids(self, cg):
        pids = set()
        for root, dirs, files in os.walk(cg):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        pids.discard(os.getpid())
        return pids

    def _kill_leftovers(self):
        killed = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = set()
            for cg in self.cgroups:
                pids |= self._pids(cg)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)  # the kernel empties cgroup.procs when they are reaped
        return sorted(killed)

    @staticmethod
    def _remove_cgroup(cg):
        deadline = time.monotonic() + 10
        while os.path.isdir(cg):
            for root, dirs, files in os.walk(cg, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                return False
            if os.path.isdir(cg):
                time.sleep(0.05)  # a dying process may still hold it
        return True

    # ---- clients ----

    def systemctl(self, *args, check=0, timeout=180):
        p = subprocess.run(["systemctl", "--user"] + list(args), env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check is not None and p.returncode != check:
            raise AssertionError("systemctl --user %s exited with %d (want %d):\n%s%s\n--- service log:\n%s" % (
                " ".join(args), p.returncode, check, p.stdout, p.stderr, self.service_output()))
        return p

    def show(self, unit, *properties):
        p = self.systemctl("show", "-p", ",".join(properties), unit)
        values = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition("=")
            values[k] = v
        return values

    def status_text(self, unit="liveswap@t.service"):
        return self.show(unit, "StatusText")["StatusText"]

    def busctl(self, *args, timeout=180):
        return subprocess.run(["busctl", "--user"] + list(args), env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def liveswap(self, *args, timeout=180):
        """The installed liveswap as a client, as a user of this manager would run it."""
        return self._client("liveswap", args, timeout)

    def liveswapctl(self, *args, timeout=180):
        """The installed liveswapctl, as a user of this manager would run it."""
        return self._client("liveswapctl", args, timeout)

    def _client(self, name, args, timeout):
        p = subprocess.run([os.path.join(self.installation.bindir, name)] + list(args), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        self.client_output.append("$ %s %s\n%s%s" % (name, " ".join(args), p.stdout, p.stderr))
        return p

    def sanitizer_reports(self):
        """The service log and the clients' output when either holds an ASan, LSan or
        UBSan report (the markers of tests/integration/lib.py), else None."""
        found = []
        for name, text in [("service log %s" % self.service_log, self.service_output())] + [
                ("client output", out) for out in self.client_output]:
            if any(marker in text for marker in SANITIZER_MARKERS):
                found.append("--- %s:\n%s" % (name, text[-6000:]))
        return "\n".join(found) or None

    # ---- configuration ----

    def drop_in(self, unit, name, text):
        d = os.path.join(self.unit_dir, unit + ".d")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name + ".conf"), "w") as f:
            f.write(text)

    def log_to_file(self, unit):
        self.drop_in(unit, "50-log", "[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n" % (
            self.service_log, self.service_log))

    def service_output(self):
        try:
            with open(self.service_log, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no service log)"

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no manager log)"
