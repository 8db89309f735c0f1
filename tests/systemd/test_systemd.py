#!/usr/bin/env python3
"""liveswap installed by `meson install` and run by a real systemd service manager: socket
activation, `systemctl reload` as a zero-downtime upgrade, the user bus, a failed reload,
stop with requests in flight, restart with the socket kept, and the installed units and
man pages themselves. See manager.py for the private `systemd --user` it uses."""

import grp
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import lib  # noqa: E402
import manager  # noqa: E402

SERVICE = "liveswap@t.service"
SOCKET = "liveswap@t.socket"
INSTALLATION = None


def process_environ(pid):
    with open("/proc/%s/environ" % pid, "rb") as f:
        return dict(v.decode(errors="replace").split("=", 1) for v in f.read().split(b"\0") if b"=" in v)


def mount_options(pid):
    """{mount point: per-mount options} of PID's mount namespace; the last mount on a
    point is the one that is visible."""
    mounts = {}
    with open("/proc/%s/mountinfo" % pid) as f:
        for line in f:
            fields = line.split()
            mounts[fields[4].replace("\\040", " ")] = fields[5].split(",")
    return mounts


def setUpModule():
    global INSTALLATION
    INSTALLATION = manager.Installation().install()


class SystemdTestCase(lib.TestCase):
    workers = 2

    def setUp(self):
        super().setUp()
        self.manager = manager.UserManager(self.dir, INSTALLATION)
        try:
            self.manager.start()
        except BaseException:
            self.manager.stop()  # its problems matter less than why it did not start
            super().tearDown()
            raise
        self.manager.log_to_file(SERVICE)
        self.app = os.path.join(self.dir, "app")
        self.v1 = lib.make_target(self.app, "v1")
        self.v2 = lib.make_target(self.app, "v2")
        # A deploy tool's `current` link: reloads follow it.
        self.current = os.path.join(self.app, "current")
        self.point_current(self.v1)

    def tearDown(self):
        try:
            self._stop_manager()
        finally:
            super().tearDown()

    def _stop_manager(self):
        problems = self.manager.stop()
        # After the stop: LeakSanitizer reports when the supervisor exits.
        reports = self.manager.sanitizer_reports()
        if reports:
            problems.append("sanitizer report:\n" + reports)
        if problems:
            raise AssertionError("; ".join(problems))

    # ---- helpers ----

    def point_current(self, target):
        tmp = self.current + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.current)  # atomic, as a deploy tool does it

    def write_config(self, **upgrade):
        settings = {"ready": "notify", "ready_timeout": "20s", "drain_timeout": "10s"}
        settings.update(upgrade)
        path = os.path.join(self.manager.config_home, "liveswap", "t.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lib.write_file(path, "[worker]\ntarget = %s\nworkers = %d\n\n[upgrade]\n%s" % (
            self.current, self.workers, "".join("%s = %s\n" % kv for kv in settings.items())))
        return path

    def listen_on_port(self):
        """The drop-in liveswap(8) documents for a TCP port."""
        port = lib.free_port()
        self.manager.drop_in(SOCKET, "50-port", "[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n" % port)
        return port

    def assert_status(self, pattern, unit=SERVICE):
        text = self.manager.status_text(unit)
        self.assertRegex(text, pattern, "service log:\n" + self.manager.service_output())
        return text

    def serving(self, generation, target):
        return r"^Serving generation %d \(%s\): %d/%d ready" % (generation, re.escape(os.path.realpath(target)),
                                                                  self.workers, self.workers)

    def wait_status(self, pattern, timeout=60):
        """The status after a change systemctl did not wait for (SIGHUP, a crash)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.manager.status_text()
            if re.search(pattern, text):
                return text
            time.sleep(0.05)  # the manager offers no wait on StatusText; bounded poll
        self.fail("StatusText never matched %r; last %r\n%s" % (pattern, text, self.manager.service_output()))

    def report(self, name, result):
        print("%s: %s requests, %s failed, %s refused, versions %s, p99 %s us, max %s us" % (
            name, result["requests"], result["failed"], result.get("refused"), result["versions"],
            result.get("p99_us"), result.get("max_us")))


class Activation(SystemdTestCase):
    def test_first_connection_starts_the_service(self):
        self.write_config()
        self.manager.systemctl("start", SOCKET)
        self.assertEqual(self.manager.show(SERVICE, "ActiveState")["ActiveState"], "inactive")
        sock = os.path.join(self.manager.run_dir, "liveswap", "t.sock")  # %t/liveswap/%i.sock
        status, headers, body = lib.http_get(sock, timeout=60)
        self.assertEqual((status, body), (200, "v1\n"), self.manager.service_output())
        # A worker may answer before systemd has READY=1 (the unit still `activating`);
        # `systemctl start` joins the start job the connection queued and waits for its end.
        started = self.manager.show(SERVICE, "ActiveState", "MainPID")
        self.assertIn(started["ActiveState"], ("activating", "active"))
        self.assertNotEqual(started["MainPID"], "0")
        self.manager.systemctl("start", SERVICE)

        props = self.manager.show(SERVICE, "ActiveState", "SubState", "Type", "NotifyAccess", "MainPID",
                                  "StatusText", "TriggeredBy")
        self.assertEqual(props["ActiveState"], "active")
        self.assertEqual(props["MainPID"], started["MainPID"], "started by the connection, not by systemctl")
        self.assertEqual(props["Type"], "notify")
        self.assertEqual(props["NotifyAccess"], "main")
        self.assertIn(SOCKET, props["TriggeredBy"])
        self.assertRegex(props["StatusText"], self.serving(1, self.v1) + "$")
        # The supervisor took the socket from systemd and its control socket went into
        # RuntimeDirectory=, where `liveswap -u` (ExecReload=) looks for it.
        self.assertTrue(os.path.exists(os.path.join(self.manager.run_dir, "liveswap", "t", "bus")))
        with open("/proc/%s/environ" % props["MainPID"], "rb") as f:
            environ = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        self.assertEqual(environ.get(b"LISTEN_FDS"), b"1")
        self.assertEqual(int(headers["x-generation"]), 1)

    def test_missing_configuration_fails_clearly(self):
        p = self.manager.systemctl("start", SERVICE, check=None)
        self.assertNotEqual(p.returncode, 0)
        props = self.manager.show(SERVICE, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        # 78 (EX_CONFIG) is in RestartPreventExitStatus=: no restart loop.
        self.assertEqual((props["ActiveState"], props["Result"], props["ExecMainStatus"], props["NRestarts"]),
                         ("failed", "exit-code", "78", "0"))
        self.assertIn("<3>Cannot start instance t: its configuration file %s does not exist" % os.path.join(
            self.manager.config_home, "liveswap", "t.conf"), self.manager.service_output())


class Reload(SystemdTestCase):
    def test_ten_reloads_under_load(self):
        self.write_config()
        port = self.listen_on_port()
        # WATCHDOG=1 is sent when WatchdogSec= is set; a missing ping would kill it.
        self.manager.drop_in(SERVICE, "50-watchdog", "[Service]\nWatchdogSec=3s\n")
        self.manager.systemctl("start", SOCKET)
        self.manager.systemctl("start", SERVICE)  # without waiting for a connection
        self.assert_status(self.serving(1, self.v1) + "$")
        started = self.manager.show(SERVICE, "ExecMainStartTimestampMonotonic", "MainPID")

        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        for i in range(10):
            target = self.v2 if i % 2 == 0 else self.v1
            self.point_current(target)
            self.manager.systemctl("reload", SERVICE)
            # Current when `systemctl reload` returns: READY=1 and STATUS= go together.
            self.assert_status(self.serving(i + 2, target))
        # SIGHUP is a reload too (what Type=notify-reload sends on systemd 253+).
        self.point_current(self.v2)
        self.manager.systemctl("kill", "--kill-who=main", "--signal=SIGHUP", SERVICE)
        self.wait_status(self.serving(12, self.v2))
        result = load.stop()

        self.assert_no_failures(result)
        seen = lib.versions(result)
        self.assertIn("v1", seen, result["_raw"])
        self.assertIn("v2", seen, result["_raw"])
        after = self.manager.show(SERVICE, "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
        self.assertEqual(after["ActiveState"], "active")
        self.assertEqual(after["MainPID"], started["MainPID"], "the supervisor was never restarted")
        self.assertEqual(after["NRestarts"], "0")
        self.assertGreater(int(after["WatchdogTimestampMonotonic"]), int(started["ExecMainStartTimestampMonotonic"]),
                           "no WATCHDOG=1 seen")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        log = self.manager.service_output()
        self.assertIn("Upgrade to generation 11 finished", log)
        self.assertIn("Received SIGHUP: reloading", log)
        self.report("10 reloads + SIGHUP", result)

    def test_sighup_reload_is_seen_by_systemd(self):
        """RELOADING=1 puts the unit into `reloading` for as long as the upgrade runs, and
        READY=1 ends it: what Type=notify-reload relies on."""
        self.write_config()
        self.manager.systemctl("start", SOCKET, SERVICE)
        slow = lib.write_file(os.path.join(self.app, "slow-v2"), "#!/bin/sh\nsleep 2\nexec '%s'\n" % self.v2,
                              0o755)
        self.point_current(slow)
        self.manager.systemctl("kill", "--kill-who=main", "--signal=SIGHUP", SERVICE)
        states = set()
        deadline = time.monotonic() + 60
        # systemd offers no wait on a state change to a client: a bounded poll.
        while time.monotonic() < deadline:
            props = self.manager.show(SERVICE, "ActiveState", "StatusText")
            states.add(props["ActiveState"])
            if props["ActiveState"] == "active" and props["StatusText"].startswith("Serving generation 2 "):
                break
            time.sleep(0.05)
        self.assertIn("reloading", states, "RELOADING=1 not seen by systemd")
        self.assert_status(self.serving(2, slow))
        self.assertEqual(self.manager.show(SERVICE, "ActiveState")["ActiveState"], "active")

    def test_failed_reload_keeps_the_old_version(self):
        self.write_config()
        port = self.listen_on_port()
        self.manager.systemctl("start", SOCKET, SERVICE)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")

        # New code that dies at once: rolled back, and `systemctl reload` says so.
        bad = lib.write_file(os.path.join(self.app, "crashes"), "#!/bin/sh\necho 'cannot open database' >&2\nexit 3\n",
                             0o755)
        self.point_current(bad)
        p = self.manager.systemctl("reload", SERVICE, check=None)
        self.assertNotEqual(p.returncode, 0, "a rolled-back reload must fail")
        self.assert_status(r"^Upgrade to generation 2 failed: worker \d+ \(generation 2\) exited with status 3 before "
                           r"it was ready; s" + self.serving(1, self.v1)[2:])
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")

        # A target that cannot even start: refused before anything changes, and said so.
        self.point_current(lib.write_file(os.path.join(self.app, "not-executable"), "#!/bin/sh\n", 0o644))
        p = self.manager.systemctl("reload", SERVICE, check=None)
        self.assertNotEqual(p.returncode, 0)
        self.assert_status(r"^Upgrade refused, invalid target: .*/current is not executable; " +
                           "s" + self.serving(1, self.v1)[2:])

        # A broken configuration file: the reload is refused, the settings stay.
        config = self.write_config(strategy="sideways")
        p = self.manager.systemctl("reload", SERVICE, check=None)
        self.assertNotEqual(p.returncode, 0)
        self.assert_status(r"^Reload refused, configuration not changed: %s:\d+: " % re.escape(config))

        props = self.manager.show(SERVICE, "ActiveState", "SubState", "NRestarts")
        self.assertEqual((props["ActiveState"], props["SubState"], props["NRestarts"]), ("active", "running", "0"))
        self.write_config()
        self.point_current(self.v2)
        self.manager.systemctl("reload", SERVICE)
        # The failure is no longer shown; the last old worker may still be draining. The
        # failed generation 2 used up its number.
        self.assert_status(self.serving(3, self.v2) + r"(, 1 draining)?$")
        result = load.stop()
        self.assert_no_failures(result)
        log = self.manager.service_output()
        self.assertRegex(log, r"<3>Upgrade to generation 2 failed: worker \d+ \(generation 2\) exited with status 3")
        self.assertIn("<4>upgrade refused, invalid target", log)
        self.report("failed reloads", result)


class Bus(SystemdTestCase):
    def test_busctl_upgrade_on_the_user_bus(self):
        self.write_config()
        self.manager.systemctl("start", "dbus.socket")
        self.manager.systemctl("start", SOCKET, SERVICE)
        sock = os.path.join(self.manager.run_dir, "liveswap", "t.sock")

        p = self.manager.busctl("call", "org.liveswap1.t", "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade",
                                "s", self.v2)
        self.assertEqual(p.returncode, 0, p.stderr + self.manager.service_output())
        self.assertEqual(p.stdout.strip(), "t 2")
        self.assert_status(self.serving(2, self.v2))
        self.assertEqual(lib.http_get(sock)[2], "v2\n")
        p = self.manager.busctl("get-property", "org.liveswap1.t", "/org/liveswap1", "org.liveswap1.Supervisor",
                                "Target")
        self.assertEqual(p.stdout.strip(), 's "%s"' % os.path.realpath(self.v2))

        # A bad target over the bus: the error names it, nothing changes.
        p = self.manager.busctl("call", "org.liveswap1.t", "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade",
                                "s", os.path.join(self.app, "missing"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("missing", p.stderr)
        self.assertEqual(lib.http_get(sock)[2], "v2\n")


class Stop(SystemdTestCase):
    def slow_requests(self, port, count, ms):
        results = []

        def request():
            try:
                status, headers, body = lib.http_get(("127.0.0.1", port), "/sleep?ms=%d" % ms, timeout=60)
                results.append((status, body))
            except (OSError, IndexError, ValueError) as e:  # cut off: no complete response
                results.append(repr(e))

        threads = [threading.Thread(target=request) for _ in range(count)]
        for t in threads:
            t.start()
        try:
            lib.wait_accepted(self, port, count, timeout=30)  # in flight = accepted by a worker
        except AssertionError as e:
            for t in threads:
                t.join(timeout=5)
            raise AssertionError("%s; results: %s; service log:\n%s" % (e, results, self.manager.service_output()))
        return threads, results

    def test_stop_lets_requests_finish(self):
        self.write_config(drain_timeout="10s")
        port = self.listen_on_port()
        self.manager.systemctl("start", SOCKET, SERVICE)
        threads, results = self.slow_requests(port, 6, 3000)  # 3 s: all six in flight at once, even under ASan

        stopped = []
        stopper = threading.Thread(target=lambda: stopped.append(self.manager.systemctl("stop", SOCKET, SERVICE)))
        started = time.monotonic()
        stopper.start()
        # STATUS= shows the drain while it lasts (a bounded poll: nothing to wait on).
        seen = set()
        while stopper.is_alive() and time.monotonic() - started < 30:
            text = self.manager.status_text()
            if text.startswith("Stopping:"):
                seen.add(text)
            time.sleep(0.05)
        stopper.join(60)
        elapsed = time.monotonic() - started
        for t in threads:
            t.join(60)
        self.assertEqual(len(stopped), 1, "systemctl stop failed (see above)")

        self.assertEqual(results, [(200, "v1\n")] * 6)
        self.assertLess(elapsed, 10, "the stop took longer than drain_timeout")
        self.assertGreater(elapsed, 0.5, "the stop did not wait for the requests")
        # A worker that holds none of the requests is gone at once; one that does is not.
        self.assertTrue(seen & {"Stopping: 1 worker draining", "Stopping: 2 workers draining"}, seen)
        props = self.manager.show(SERVICE, "ActiveState", "Result", "ExecMainStatus")
        self.assertEqual((props["ActiveState"], props["Result"], props["ExecMainStatus"]), ("inactive", "success", "0"))
        log = self.manager.service_output()
        self.assertEqual(log.count("exited with status 0 after draining"), 2, log)
        print("stop: 6 requests of 3 s in flight, all answered; the stop took %.2fs" % elapsed)

    def test_stop_extends_the_stop_timeout(self):
        """A drain longer than TimeoutStopSec=: STOPPING=1 with EXTEND_TIMEOUT_USEC= keeps
        systemd from killing the requests at the timeout."""
        self.write_config(drain_timeout="30s")
        port = self.listen_on_port()
        self.manager.drop_in(SERVICE, "50-timeout", "[Service]\nTimeoutStopSec=2s\n")
        self.manager.systemctl("start", SOCKET, SERVICE)
        threads, results = self.slow_requests(port, 3, 6000)
        started = time.monotonic()
        self.manager.systemctl("stop", SOCKET, SERVICE)
        elapsed = time.monotonic() - started
        for t in threads:
            t.join(60)
        self.assertEqual(results, [(200, "v1\n")] * 3)
        self.assertGreater(elapsed, 2.5, "the requests cannot have finished this early")
        props = self.manager.show(SERVICE, "Result", "ExecMainStatus")
        self.assertEqual((props["Result"], props["ExecMainStatus"]), ("success", "0"))
        print("stop with TimeoutStopSec=2s: 3 requests of 6 s answered; the stop took %.2fs" % elapsed)


class Restart(SystemdTestCase):
    def test_restart_keeps_the_socket_and_the_deployed_version(self):
        self.write_config()
        port = self.listen_on_port()
        self.manager.systemctl("start", SOCKET, SERVICE)
        # Deployed by hand, not by the configuration: HEAD records it.
        p = self.manager.liveswap("-i", "t", "-u", self.v2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("serving generation 2", p.stdout)
        first = self.manager.show(SERVICE, "MainPID")["MainPID"]

        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        # Numbers go on across restarts (GENERATION beside HEAD): 3, 4, 5.
        for generation in range(3, 6):
            self.manager.systemctl("restart", SERVICE)
            self.assert_status(self.serving(generation, self.v2))
            self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        result = load.stop()
        self.assertEqual(result.get("refused"), "0", result["_raw"])
        self.assert_no_failures(result)
        self.assertEqual(list(lib.versions(result)), ["v2"], result["_raw"])
        self.assertNotEqual(self.manager.show(SERVICE, "MainPID")["MainPID"], first)
        self.assertEqual(self.manager.show(SOCKET, "ActiveState")["ActiveState"], "active")
        self.report("3 restarts", result)


    def test_supervisor_killed_socket_stays_open(self):
        """SIGKILL to the supervisor: its workers die with it (nothing is left to drain
        them), but the socket belongs to systemd, so connections queue instead of being
        refused, Restart=on-failure brings the service back and HEAD's version serves."""
        self.write_config()
        port = self.listen_on_port()
        self.manager.systemctl("start", SOCKET, SERVICE)
        p = self.manager.liveswap("-i", "t", "-u", self.v2)
        self.assertEqual(p.returncode, 0, p.stderr)
        first = self.manager.show(SERVICE, "MainPID")["MainPID"]
        # The upgrade is over once the old workers were told to drain; one may still be
        # exiting. Polling /proc (an exit of another's child has no event to wait on).
        deadline = time.monotonic() + 30
        while True:
            workers = [int(pid) for pid in subprocess.run(["pgrep", "-P", first], capture_output=True,
                                                          text=True).stdout.split()]
            if len(workers) == self.workers or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(workers), self.workers)

        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        os.kill(int(first), 9)
        self.assert_pids_gone(workers)
        deadline = time.monotonic() + 60
        while self.manager.show(SERVICE, "MainPID")["MainPID"] in ("0", first):
            self.assertLess(time.monotonic(), deadline, self.manager.service_output())
            time.sleep(0.05)  # the manager offers no wait on a restart; bounded poll
        self.wait_status(self.serving(3, self.v2))  # numbers go on after generation 2
        result = load.stop()
        self.assertEqual(result.get("refused"), "0", result["_raw"])
        # Requests the killed workers held at that instant die with them; every client
        # has at most one in flight. Everything that arrived later queued and was served.
        self.assertLessEqual(int(result["failed"]), 8, result["_raw"])
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertGreaterEqual(int(self.manager.show(SERVICE, "NRestarts")["NRestarts"]), 1)
        self.report("supervisor SIGKILL", result)


class Units(SystemdTestCase):
    """The settings of the installed liveswap@.service (contract section 7), as the
    manager loaded them, and in effect on the running supervisor."""

    # units/liveswap@.service.in; both flavours share them.
    SETTINGS = {"Type": "notify", "NotifyAccess": "main", "KillMode": "mixed", "Restart": "on-failure",
                "TimeoutStopUSec": "1min 30s", "TimeoutStartUSec": "2min", "RestartPreventExitStatus": "2 78",
                "StateDirectory": "liveswap/t", "RuntimeDirectory": "liveswap/t", "Delegate": "yes"}
    # The system flavour's hardening (units/meson.build); the user flavour has none. Not
    # ProtectControlGroups=: it would make the delegated cgroup read-only (below).
    HARDENING = ("ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "LockPersonality")

    def assert_settings(self, unit):
        props = self.manager.show(unit, *self.SETTINGS, "ExecReload")
        self.assertEqual({k: props[k] for k in self.SETTINGS}, self.SETTINGS, unit)
        self.assertIn("argv[]=%s --instance t -u ;" % os.path.join(INSTALLATION.bindir, "liveswap"),
                      props["ExecReload"])

    def test_settings_directories_and_head(self):
        self.write_config()
        self.manager.systemctl("start", SOCKET, SERVICE)
        self.assert_settings(SERVICE)
        props = self.manager.show(SERVICE, "MainPID", *self.HARDENING)
        self.assertEqual({k: props[k] for k in self.HARDENING}, dict.fromkeys(self.HARDENING, "no"),
                         "user units get no sandboxing (it would imply PrivateUsers=)")

        environ = process_environ(props["MainPID"])
        runtime = os.path.join(self.manager.run_dir, "liveswap", "t")
        self.assertEqual(environ.get("RUNTIME_DIRECTORY"), runtime)
        self.assertTrue(os.path.exists(os.path.join(runtime, "bus")))
        # systemd 252 puts a user unit's StateDirectory= under $XDG_CONFIG_HOME, later
        # releases under $XDG_STATE_HOME: either, but never where liveswap falls back to.
        state = environ.get("STATE_DIRECTORY")
        self.assertIn(state, (os.path.join(self.manager.config_home, "liveswap", "t"),
                              os.path.join(self.manager.env["XDG_STATE_HOME"], "liveswap", "t")), environ)
        self.assertTrue(os.path.isdir(state))
        self.assertEqual(environ.get("XDG_STATE_HOME"), self.manager.fallback_state_home)

        self.point_current(self.v2)
        self.manager.systemctl("reload", SERVICE)
        self.assert_status(self.serving(2, self.v2))
        with open(os.path.join(state, "HEAD")) as f:
            self.assertEqual(f.read(), os.path.realpath(self.v2) + "\n")
        with open(os.path.join(state, "PREVIOUS")) as f:
            self.assertEqual(f.read(), os.path.realpath(self.v1) + "\n")
        self.assertFalse(os.path.exists(self.manager.fallback_state_home), "HEAD went to the fallback")

        # RuntimeDirectory= goes with the service, StateDirectory= stays.
        self.manager.systemctl("stop", SOCKET, SERVICE)
        self.assertFalse(os.path.exists(runtime))
        self.assertTrue(os.path.exists(os.path.join(state, "HEAD")))

    def test_system_unit_hardening_is_in_effect(self):
        """The system flavour, loaded by this manager under another name: systemd reports
        its hardening, the supervisor and its workers run under it, and upgrades work."""
        unit = "liveswap-system@t.service"
        shutil.copy(os.path.join(INSTALLATION.system_units, "liveswap@.service"),
                    os.path.join(self.manager.unit_dir, "liveswap-system@.service"))
        port = lib.free_port()
        # Its configuration file is under the prefix's /etc: the test's instead, and a port,
        # since the socket unit of this name hands its socket to liveswap@t.service.
        self.manager.drop_in(unit, "50-test", "[Service]\nExecStart=\nExecStart=%s --instance %%i --config %s "
                             "--listen 127.0.0.1:%d\nEnvironment=XDG_STATE_HOME=%s\n" % (
                                 os.path.join(INSTALLATION.bindir, "liveswap"), self.write_config(), port,
                                 self.manager.fallback_state_home))
        self.manager.log_to_file(unit)
        probe = os.path.join(self.dir, "probe")
        # What a worker finds: setarch changes the personality, which LockPersonality= forbids.
        self.assertTrue(shutil.which("setarch"), "setarch is missing (util-linux)")
        probed = lib.write_file(os.path.join(self.app, "probed"), "#!/bin/sh\n"
                                "if setarch -R true 2>> '%s.err'; then echo personality=changed; "
                                "else echo personality=locked; fi >> '%s'\nexec '%s'\n" % (probe, probe, self.v2),
                                0o755)
        self.manager.systemctl("start", unit)
        self.assert_settings(unit)
        props = self.manager.show(unit, "MainPID", *self.HARDENING)
        self.assertEqual({k: props[k] for k in self.HARDENING}, dict.fromkeys(self.HARDENING, "yes"))
        self.assert_status(self.serving(1, self.v1), unit)

        pid = props["MainPID"]
        with open("/proc/%s/status" % pid) as f:
            status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        bounding = int(status["CapBnd"], 16)
        self.assertFalse(bounding & (1 << 16), "CAP_SYS_MODULE kept: ProtectKernelModules= not in effect")
        self.assertFalse(bounding & (1 << 34), "CAP_SYSLOG kept: ProtectKernelLogs= not in effect")
        self.assertEqual(status["Seccomp"].strip(), "2", "no seccomp filter")
        mounts = mount_options(pid)
        self.assertIn("ro", mounts.get("/proc/sys", ()), "ProtectKernelTunables= not in effect")
        self.assertIn("ro", mounts.get("/sys", ()), "ProtectKernelTunables= not in effect")
        # Delegation works under this hardening: the supervisor moved into its cgroup.
        self.assertEqual(self.manager.show(unit, "ProtectControlGroups")["ProtectControlGroups"], "no")
        self.assertTrue(all(p.endswith("/liveswap-system@t.service/supervisor")
                            for p in proc_cgroups(pid).values()), proc_cgroups(pid))
        self.assertIn("/proc/kmsg", mounts, "ProtectKernelLogs= not in effect")
        if os.path.isdir("/usr/lib/modules"):
            self.assertTrue({"/usr/lib/modules", "/lib/modules"} & set(mounts), "ProtectKernelModules= not in effect")

        # An upgrade under the hardening: its workers run under it too.
        self.point_current(probed)
        self.manager.systemctl("reload", unit)
        self.assert_status(self.serving(2, probed), unit)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        with open(probe) as f:
            self.assertEqual(f.read(), "personality=locked\n" * self.workers, "LockPersonality= not in effect")
        with open(probe + ".err") as f:
            self.assertIn("Operation not permitted", f.read())  # refused, not missing
        self.assertFalse(os.path.exists(self.manager.fallback_state_home))

        # Why the units leave ProtectControlGroups= out: on systemd 252 it mounts all of
        # /sys/fs/cgroup read-only, the delegated subtree too, and liveswap falls back to
        # process groups (and says so).
        self.manager.drop_in(unit, "60-protect", "[Service]\nProtectControlGroups=yes\n")
        self.manager.systemctl("daemon-reload")
        self.manager.systemctl("restart", unit)
        self.assert_status(r"^Serving generation 3 ", unit)
        pid = self.manager.show(unit, "MainPID")["MainPID"]
        mounts = mount_options(pid)
        cgroups = [m for m in mounts if m == "/sys/fs/cgroup" or m.startswith("/sys/fs/cgroup/")]
        self.assertTrue(cgroups)
        for m in cgroups:
            self.assertIn("ro", mounts[m], "ProtectControlGroups= not in effect on %s" % m)
        self.assertTrue(all(p.endswith("/liveswap-system@t.service") for p in proc_cgroups(pid).values()),
                        proc_cgroups(pid))
        self.assertRegex(self.manager.service_output(), r"Delegate=yes, but \S+ cannot be written \(Read-only")


def proc_cgroups(pid, missing=None):
    """{hierarchy: path} of PID: "" for cgroup v2, "name=systemd" for the named v1 one.
    With MISSING, a process already gone has that path everywhere instead of raising."""
    found = {}
    try:
        with open("/proc/%s/cgroup" % pid) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        if missing is None:
            raise
        return {"": missing, "name=systemd": missing}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in ("", "name=systemd"):
            found[controllers] = path
    return found


def child_pids(pid):
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                           text=True).stdout.split()]


class Cgroups(SystemdTestCase):
    """Delegate=yes (contract section 10): the supervisor in <unit>/supervisor, each worker
    in <unit>/generation-G/worker-ID in every hierarchy systemd tracks the unit in (the
    v2 one, and name=systemd on a hybrid host, which systemctl status reads there), and
    whatever a worker leaves behind is killed with its cgroup."""

    def unit_dirs(self):
        """The service's cgroup directory in each hierarchy of the manager."""
        path = self.manager.show(SERVICE, "ControlGroup")["ControlGroup"]
        self.assertTrue(path.endswith("/liveswap@t.service"), path)
        manager_path = os.path.basename(self.manager.cgroups[0])
        return [os.path.join(os.path.dirname(cg), path.lstrip("/")) for cg in self.manager.cgroups
                if os.path.basename(cg) == manager_path]

    def subdirs(self, directory):
        # .control is systemd's own, for ExecReload= (a delegated unit's control processes).
        return sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))
                      and d != ".control")

    def wait_subdirs(self, directory, want, timeout=30):
        deadline = time.monotonic() + timeout
        while self.subdirs(directory) != want and time.monotonic() < deadline:
            time.sleep(0.05)  # cgroupfs gives no event for a removed directory; bounded poll
        self.assertEqual(self.subdirs(directory), want, "%s\n%s" % (list(os.walk(directory)),
                                                                    self.manager.service_output()))

    def test_tree_status_and_a_daemon_killed_with_its_worker(self):
        self.write_config()
        # A worker that double-forks a daemon which leaves its session (setsid), then
        # serves; the daemon writes its pid where the test finds it.
        daemons = os.path.join(self.dir, "daemons")
        os.makedirs(daemons)
        daemonizing = lib.write_file(os.path.join(self.app, "daemonizing"), (
            "#!/bin/sh\n"
            "( setsid sh -c 'echo $$ > %s/$$.tmp; mv %s/$$.tmp %s/w-$$; exec sleep 1000' & )\n"
            "exec '%s'\n") % (daemons, daemons, daemons, self.v2), 0o755)
        self.manager.systemctl("start", SOCKET, SERVICE)
        units = self.unit_dirs()
        self.assertEqual(len(units), len(self.manager.cgroups))
        main = self.manager.show(SERVICE, "MainPID")["MainPID"]
        unit_path = self.manager.show(SERVICE, "ControlGroup")["ControlGroup"]

        # The supervisor in its child cgroup, each worker in generation-1/worker-ID, in
        # every hierarchy alike.
        self.assertEqual(set(proc_cgroups(main).values()), {unit_path + "/supervisor"}, proc_cgroups(main))
        workers = child_pids(main)
        self.assertEqual(len(workers), self.workers)
        names = set()
        for pid in workers:
            paths = set(proc_cgroups(pid).values())
            self.assertEqual(len(paths), 1, proc_cgroups(pid))
            path = paths.pop()
            self.assertRegex(path, r"^%s/generation-1/worker-\d+$" % re.escape(unit_path))
            names.add(os.path.basename(path))
        self.assertEqual(len(names), self.workers, "one cgroup per worker")
        for unit in units:
            self.assertEqual(self.subdirs(unit), ["generation-1", "supervisor"], unit)
            self.assertEqual(self.subdirs(os.path.join(unit, "generation-1")), sorted(names), unit)
        status = self.manager.systemctl("status", SERVICE).stdout
        for name in ["supervisor", "generation-1"] + sorted(names):
            self.assertRegex(status, r"(?m)^ +[│├└─ ]*%s$" % name, status)
        self.assertRegex(status, r"(?m)^ +[│├└─ ]*─%s " % main, status)

        # Generation 2 daemonizes: each worker leaves a daemon in a session of its own.
        self.point_current(daemonizing)
        self.manager.systemctl("reload", SERVICE)
        self.assert_status(self.serving(2, daemonizing))
        deadline = time.monotonic() + 30
        while len(os.listdir(daemons)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.05)  # the daemons write their pid files; bounded poll
        found = {}
        for name in os.listdir(daemons):
            if not name.endswith(".tmp"):
                found[int(name.split("-")[1])] = name
        self.assertEqual(len(found), self.workers, os.listdir(daemons))
        # Generation 1's workers may be exiting meanwhile: a pid gone is not one of them.
        workers2 = [pid for pid in child_pids(main) if "/generation-2/" in proc_cgroups(pid, missing="")[""]]
        self.assertEqual(len(workers2), self.workers)
        for daemon in found:
            self.assertEqual(os.getsid(daemon), daemon, "the daemon left its worker's session")
            self.assertRegex(proc_cgroups(daemon)[""], r"/generation-2/worker-\d+$")
        for unit in units:
            self.wait_subdirs(unit, ["generation-2", "supervisor"])  # generation 1 drained

        # A worker killed: its daemon dies with its cgroup, which goes too; the slot is refilled.
        victim = workers2[0]
        victim_cgroup = proc_cgroups(victim)[""]
        daemon = next(d for d in found if proc_cgroups(d)[""] == victim_cgroup)
        os.kill(victim, 9)
        self.assert_pids_gone([daemon])
        for unit in units:
            self.assertFalse(os.path.exists(os.path.join(unit, os.path.relpath(victim_cgroup, unit_path))))
        self.wait_status(self.serving(2, daemonizing))

        # Drained workers: their daemons go with them, and so does generation 2's cgroup.
        left = [d for d in found if d != daemon]
        self.point_current(self.v1)
        self.manager.systemctl("reload", SERVICE)
        self.assert_status(self.serving(3, self.v1))
        self.assert_pids_gone(left)
        for unit in units:
            self.wait_subdirs(unit, ["generation-3", "supervisor"])

        # After a stop nothing of the tree is left in any hierarchy.
        self.manager.systemctl("stop", SOCKET, SERVICE)
        for unit in units:
            self.assertFalse(os.path.exists(unit), unit)
        self.assertIn("Delegated cgroup", self.manager.service_output())


class Sanitizers(SystemdTestCase):
    def test_sanitizer_build_is_tested_as_one(self):
        """Under -Db_sanitize= the installed binaries are sanitized and the supervisor gets
        ASAN_OPTIONS/UBSAN_OPTIONS; every test scans the service log (tearDown)."""
        if manager.SANITIZE == "none":
            self.skipTest("not a sanitizer build (LIVESWAP_SANITIZE=%s)" % manager.SANITIZE)
        liveswap = os.path.join(INSTALLATION.bindir, "liveswap")
        libraries = subprocess.run(["ldd", liveswap], capture_output=True, text=True, timeout=60).stdout
        for name, lib_name in (("address", "libasan"), ("undefined", "libubsan")):
            if name in manager.SANITIZE.split(","):
                self.assertIn(lib_name, libraries, "the installed liveswap is no %s sanitizer build" % name)
        self.write_config()
        self.manager.systemctl("start", SOCKET, SERVICE)
        pid = self.manager.show(SERVICE, "MainPID")["MainPID"]
        worker = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()[0]
        for who in (pid, worker):
            environ = process_environ(who)
            for k, v in manager.sanitizer_environment().items():
                self.assertEqual(environ.get(k), v, "pid %s" % who)


class Ctl(SystemdTestCase):
    def status(self):
        p = self.manager.liveswapctl("--user", "-i", "t", "status")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "● t - liveswap supervisor", p.stdout)
        fields = dict(m.groups() for m in re.finditer(r"(?m)^ *([A-Z][A-Za-z ]+): (.*)$", p.stdout))
        workers = re.findall(r"(?m)^ +[├└]─(\d+) generation (\d+), (starting|ready|draining), ", p.stdout)
        return fields, workers

    def test_liveswapctl_reload_and_status_on_the_user_bus(self):
        self.write_config()
        self.manager.systemctl("start", "dbus.socket")
        self.manager.systemctl("start", SOCKET, SERVICE)
        pid = self.manager.show(SERVICE, "MainPID")["MainPID"]
        fields, workers = self.status()
        self.assertEqual((fields["State"], fields["Main PID"], fields["Generation"], fields["Control"]),
                         ("running", pid, "1", "the user bus"))

        self.point_current(self.v2)
        p = self.manager.liveswapctl("--user", "-i", "t", "reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.manager.service_output())
        self.assertEqual(p.stdout, "t: serving generation 2 (%s)\n" % os.path.realpath(self.v2))
        fields, workers = self.status()
        self.assertEqual((fields["Generation"], fields["Target"]), ("2", os.path.realpath(self.v2)))
        self.assertEqual([w[1:] for w in workers if w[2] != "draining"], [("2", "ready")] * self.workers)
        status = json.loads(self.manager.liveswapctl("--user", "-i", "t", "--json", "status").stdout)
        self.assertEqual((status["generation"], status["pid"]), (2, int(pid)))
        # systemd sees the upgrade liveswapctl made.
        self.assert_status(self.serving(2, self.v2))

        bad = lib.write_file(os.path.join(self.app, "crashes"), "#!/bin/sh\nexit 3\n", 0o755)
        self.point_current(bad)
        p = self.manager.liveswapctl("--user", "-i", "t", "reload")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"(?m)^liveswapctl: t: upgrade to generation 3 failed, still serving generation 2: "
                                   r"worker \d+ \(generation 3\) exited with status 3")
        fields, workers = self.status()
        self.assertEqual((fields["Generation"], fields["Target"]), ("2", os.path.realpath(self.v2)))
        self.assertTrue(fields["Last result"].startswith("failed"), fields)
        self.assertEqual(lib.http_get(os.path.join(self.manager.run_dir, "liveswap", "t.sock"))[2], "v2\n")
        props = self.manager.show(SERVICE, "ActiveState", "MainPID", "NRestarts")
        self.assertEqual((props["ActiveState"], props["MainPID"], props["NRestarts"]), ("active", pid, "0"))


class Reexec(SystemdTestCase):
    def test_reexec_keeps_main_pid_and_workers(self):
        """liveswapctl reexec under systemd: the same MainPID, the unit stays active, the
        workers and the socket carry on under load, and a reload works afterwards."""
        self.write_config()
        port = self.listen_on_port()
        self.manager.systemctl("start", "dbus.socket")
        self.manager.systemctl("start", SOCKET, SERVICE)
        self.assert_status(self.serving(1, self.v1) + "$")
        before = self.manager.show(SERVICE, "MainPID", "ActiveState")
        workers = sorted(subprocess.run(["pgrep", "-P", before["MainPID"]], capture_output=True,
                                        text=True).stdout.split())
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        for transport in ("--user", None, "--user"):
            args = ([transport] if transport else []) + ["-i", "t", "reexec"]
            p = self.manager.liveswapctl(*args)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.manager.service_output())
            self.assertRegex(p.stdout, r"^t: re-executed: liveswap \S+ -> liveswap \S+\n$")
            after = self.manager.show(SERVICE, "MainPID", "ActiveState", "NRestarts")
            self.assertEqual((after["MainPID"], after["ActiveState"], after["NRestarts"]),
                             (before["MainPID"], "active", "0"))
        self.assertEqual(sorted(subprocess.run(["pgrep", "-P", before["MainPID"]], capture_output=True,
                                               text=True).stdout.split()), workers)
        self.wait_status(r"^Re-executed liveswap ")
        self.point_current(self.v2)
        self.manager.systemctl("reload", SERVICE)
        self.assert_status(self.serving(2, self.v2))
        result = load.stop()
        self.assert_no_failures(result)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(self.manager.show(SERVICE, "MainPID")["MainPID"], before["MainPID"])
        self.assertEqual(self.manager.service_output().count("took over from liveswap"), 3)
        self.report("3 reexecs + reload", result)

class Installed(SystemdTestCase):
    def test_units_verify(self):
        # verify also runs `man` on each Documentation= page: the installed ones.
        env = dict(self.manager.env, MANPATH=INSTALLATION.mandir)
        for mode, units in (("--user", INSTALLATION.user_units), ("--system", INSTALLATION.system_units)):
            p = subprocess.run(["systemd-analyze", mode, "verify", "--man=yes", SERVICE, SOCKET], capture_output=True,
                               text=True, env=dict(env, SYSTEMD_UNIT_PATH=units + ":"), timeout=120)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), "systemd-analyze %s verify" % mode)
        with open(os.path.join(INSTALLATION.user_units, "liveswap@.service")) as f:
            user = f.read()
        with open(os.path.join(INSTALLATION.system_units, "liveswap@.service")) as f:
            system = f.read()
        liveswap = os.path.join(INSTALLATION.bindir, "liveswap")
        self.assertIn("ExecStart=%s --instance %%i --config %%E/liveswap/%%i.conf\n" % liveswap, user)
        self.assertIn("ExecStart=%s --instance %%i --config %s/etc/liveswap/%%i.conf\n" % (
            liveswap, INSTALLATION.prefix), system)
        self.assertTrue(os.path.exists(os.path.join(INSTALLATION.datadir, "dbus-1", "system.d",
                                                    "org.liveswap1.conf")))
        self.assertTrue(os.path.exists(os.path.join(INSTALLATION.datadir, "doc", "liveswap", "example.conf")))

    def test_man_pages_render(self):
        pages = {"man8/liveswap.8": ["WORKER PROTOCOL", "UPGRADES", "SYSTEMD", "ListenStream=0.0.0.0:8080"],
                 "man5/liveswap.conf.5": ["[worker]", "drain_timeout"],
                 "man1/liveswapctl.1": ["reload"]}
        env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8")
        for page, words in pages.items():
            path = os.path.join(INSTALLATION.mandir, page)
            p = subprocess.run(["man", "--warnings", "-P", "cat", "-l", path], capture_output=True, text=True,
                               env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "", "%s: troff warnings" % page)
            text = re.sub(".\x08", "", p.stdout)  # bold and underline are overstrikes
            for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] + words:
                self.assertIn(heading, text, page)


class Policy(lib.TestCase):
    """The installed D-Bus policy on a real dbus-daemon configured as a system bus is
    (default deny for method calls, as Debian's system.conf): root owns the name and
    calls methods, so does the liveswap group, anyone else only reads properties."""

    BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%(socket)s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>%(policy)s</include>
</busconfig>
"""

    def setUp(self):
        super().setUp()
        self.gid = self.liveswap_gid()  # before the daemon reads the policy, which names it
        os.chmod(self.dir, 0o755)  # the unprivileged caller must reach the bus socket
        self.socket = os.path.join(self.dir, "system_bus_socket")
        config = lib.write_file(os.path.join(self.dir, "system.conf"), self.BUS_CONFIG % {
            "socket": self.socket,
            "policy": os.path.join(INSTALLATION.datadir, "dbus-1", "system.d", "org.liveswap1.conf")})
        self.daemon = subprocess.Popen(["dbus-daemon", "--nofork", "--nopidfile", "--print-address",
                                        "--config-file", config], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        # It prints its address once it listens. A daemon that fails exits and closes
        # stdout, so the read cannot block for ever.
        self.address = self.daemon.stdout.readline().strip()
        if not self.address:
            self.daemon.wait(30)
            self.fail("dbus-daemon did not start with the installed policy: %s" % self.daemon.stderr.read())

    def tearDown(self):
        try:
            super().tearDown()  # the supervisor first, while its bus is there
        finally:
            self.daemon.terminate()
            self.daemon.wait(30)
            self.daemon.stdout.close()
            self.daemon.stderr.close()

    def caller(self, user, groups):
        """setpriv for a caller USER with supplementary GROUPS (gids) only, or [] for root."""
        if not user:
            return []
        return ["setpriv", "--reuid=" + user, "--regid=nogroup"] + (
            ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"])

    def busctl(self, *args, user=None, groups=()):
        return subprocess.run(self.caller(user, groups) + ["busctl", "--address=" + self.address] + list(args),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def dbus_send(self, destination, method, *args, user=None, groups=()):
        """dbus-send shows who refused a call (busctl shows only "Access denied")."""
        return subprocess.run(self.caller(user, groups) + [
            "dbus-send", "--bus=" + self.address, "--print-reply", "--dest=" + destination, "/org/liveswap1",
            method] + list(args), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def start_supervisor(self, instance, **control):
        """A system-bus supervisor for INSTANCE with a [control] section of CONTROL."""
        app = os.path.join(self.dir, "app-" + instance)
        v1 = lib.make_target(app, "v1")
        config = lib.write_file(os.path.join(self.dir, instance + ".conf"), "[worker]\ntarget = %s\n\n[control]\n%s" % (
            v1, "".join("%s = %s\n" % kv for kv in control.items())))
        sup = lib.Supervisor(self, [os.path.join(INSTALLATION.bindir, "liveswap"), "--instance", instance, "--config",
                                    config, "-p", str(lib.free_port())],
                             env={"LIVESWAP_BUS": "system", "DBUS_SYSTEM_BUS_ADDRESS": self.address})
        sup.wait_ready()
        sup.wait_output("Registered org.liveswap1.%s on the system bus" % instance)
        sup.v2 = lib.make_target(app, "v2")
        return sup

    def liveswap_gid(self):
        """The liveswap group the policy names, created (as a system group) when absent:
        dbus-daemon resolves the name when it reads the policy."""
        try:
            return grp.getgrnam("liveswap").gr_gid
        except KeyError:
            pass
        if not shutil.which("groupadd"):
            self.skipTest("no group liveswap and no groupadd to create it")
        p = subprocess.run(["groupadd", "--system", "liveswap"], capture_output=True, text=True, timeout=60)
        if p.returncode not in (0, 9):  # 9: made meanwhile by another run
            self.fail("groupadd --system liveswap: %s" % p.stderr)
        return grp.getgrnam("liveswap").gr_gid

    def methods(self, destination, user):
        """The methods of org.liveswap1.Supervisor, introspected as USER."""
        p = self.busctl("introspect", destination, "/org/liveswap1", "org.liveswap1.Supervisor", user=user)
        self.assertEqual(p.returncode, 0, p.stderr)
        found = {}
        for line in p.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0].startswith(".") and fields[1] == "method":
                found[fields[0][1:]] = "" if fields[2] == "-" else fields[2]
        return found

    def test_root_owns_and_calls_others_read(self):
        sup = self.start_supervisor("p")
        name = "org.liveswap1.p"
        get = ["get-property", name, "/org/liveswap1", "org.liveswap1.Supervisor", "Generation"]

        p = self.busctl("call", name, "/org/liveswap1", "org.liveswap1.Supervisor", "Message", "s", "hello")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "u 2"), p.stderr)
        # Anyone reads: Get, GetAll, Introspect.
        p = self.busctl(*get, user="nobody")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "t 1"), p.stderr)
        p = self.dbus_send(name, "org.freedesktop.DBus.Properties.GetAll", "string:org.liveswap1.Supervisor",
                           user="nobody")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('string "Generation"', p.stdout)
        methods = self.methods(name, "nobody")
        # Contract section 4: every one of them is refused to nobody, by the bus.
        self.assertLessEqual({"Upgrade", "StartUpgrade", "Rollback", "Cancel", "Restart", "Quit", "Message",
                              "SetWorkers"}, set(methods), methods)
        arguments = {"": [], "s": ["string:" + sup.v2], "u": ["uint32:3"]}
        refused = []
        for method, signature in sorted(methods.items()):
            self.assertIn(signature, arguments, "no test arguments for %s(%s)" % (method, signature))
            p = self.dbus_send(name, "org.liveswap1.Supervisor." + method, *arguments[signature], user="nobody")
            self.assertNotEqual(p.returncode, 0, "%s: %s" % (method, p.stdout))
            self.assertIn("org.freedesktop.DBus.Error.AccessDenied: Rejected send message", p.stderr, method)
            refused.append(method)
        p = self.dbus_send(name, "org.freedesktop.DBus.Properties.Set", "string:org.liveswap1.Supervisor",
                           "string:Target", "variant:string:" + sup.v2, user="nobody")
        self.assertIn("org.freedesktop.DBus.Error.AccessDenied: Rejected send message", p.stderr)
        # Nothing of it happened.
        p = self.busctl(*get, user="nobody")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "t 1"), p.stderr)
        self.assertIsNone(sup.proc.poll())
        self.assertEqual(self.daemon.poll(), None)
        print("policy: nobody reads, and is refused by the bus: %s" % " ".join(refused))

    def test_liveswap_group_calls_methods(self):
        """A member of the liveswap group passes the bus policy; the supervisor lets it in
        when the configuration allows the group (allow_groups), and refuses it otherwise."""
        gid = self.gid
        sup = self.start_supervisor("g", allow_groups="liveswap")
        name = "org.liveswap1.g"
        p = self.busctl("call", name, "/org/liveswap1", "org.liveswap1.Supervisor", "Message", "s", "hello",
                        user="nobody", groups=[gid])
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "u 2"), p.stderr + sup.output())
        p = self.busctl("call", name, "/org/liveswap1", "org.liveswap1.Supervisor", "Upgrade", "s", sup.v2,
                        user="nobody", groups=[gid])
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "t 2"), p.stderr + sup.output())
        p = self.busctl("call", name, "/org/liveswap1", "org.liveswap1.Supervisor", "SetWorkers", "u", "3",
                        user="nobody", groups=[gid])
        self.assertEqual(p.returncode, 0, p.stderr + sup.output())
        sup.wait_status(r"^Serving generation 2 .*: 3/3 ready$")
        # Without the group, the bus refuses.
        p = self.dbus_send(name, "org.liveswap1.Supervisor.Message", "string:hello", user="nobody")
        self.assertIn("org.freedesktop.DBus.Error.AccessDenied: Rejected send message", p.stderr)

        # The bus policy is only the outer fence: without allow_groups the supervisor refuses.
        self.start_supervisor("q")
        p = self.dbus_send("org.liveswap1.q", "org.liveswap1.Supervisor.Message", "string:hello", user="nobody",
                           groups=[gid])
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("org.freedesktop.DBus.Error.AccessDenied", p.stderr)
        self.assertNotIn("Rejected send message", p.stderr, "refused by the bus, not by the supervisor")
        self.assertEqual(self.daemon.poll(), None)


if __name__ == "__main__":
    reason = manager.skip_reason()
    if reason:
        lib.skip_file(reason)
    lib.main()
