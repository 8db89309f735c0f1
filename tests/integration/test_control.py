#!/usr/bin/env python3
"""The control plane over D-Bus (contract section 4), through a real dbus-daemon standing
in for the user bus and through the private peer-to-peer socket: every method, property,
signal and error, the introspection data, authorisation on the caller's credentials,
1,000 concurrent upgrade requests, Message and SetWorkers under load."""

import json
import os
import queue
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import lib

CALLSTORM = os.environ.get("CALLSTORM")
NAME = "org.liveswap1.web"
PATH = "/org/liveswap1"
IFACE = "org.liveswap1.Supervisor"
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
AS_DAEMON = ["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups"]  # uid 1, another unprivileged user
AS_USER = {"nobody": AS_NOBODY, "daemon": AS_DAEMON}

METHODS = {  # name: ([(arg name, type)] in, [(arg name, type)] out)
    "Upgrade": ([("target", "s")], [("generation", "t")]),
    "StartUpgrade": ([("target", "s")], [("generation", "t")]),
    "Rollback": ([], [("generation", "t")]),
    "Cancel": ([], []),
    "Restart": ([], []),
    "Quit": ([], []),
    "Message": ([("text", "s")], [("delivered", "u")]),
    "SetWorkers": ([("count", "u")], []),
    "Reexecute": ([], []),
}
PROPERTIES = {"Instance": "s", "Generation": "t", "Target": "s", "PreviousTarget": "s", "State": "s",
              "DesiredWorkers": "u", "ReadyWorkers": "u", "DrainingWorkers": "u", "Workers": "a(utsst)",
              "LastResult": "s", "Version": "s", "WorkerDetails": "a(utustttu)", "UpgradeReadyWorkers": "u",
              "UpgradeStartingWorkers": "u", "UpgradeGeneration": "t"}
# Measured at each read (memory, CPU time): equal on both transports only in their pids.
VOLATILE = {"WorkerDetails"}


def write_config(test, control="", **upgrade):
    settings = {"ready": "notify", "ready_timeout": "10s", "drain_timeout": "10s"}
    settings.update(upgrade)
    body = "[upgrade]\n" + "".join("%s = %s\n" % kv for kv in settings.items())
    body += "[control]\n" + control
    return lib.write_file(os.path.join(test.dir, "liveswap.conf"), body)


def logging_target(directory, version, *args):
    """A target whose workers each log to log-PID (exec keeps the shell's pid)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "server-" + version)
    extra = " ".join("'%s'" % a for a in args)
    lib.write_file(path, "#!/bin/sh\nexec '%s' --version '%s' --log '%s'/log-$$ %s\n" % (lib.HTTPD, version, directory,
                                                                                         extra), 0o755)
    return path


class ControlTest(lib.TestCase):
    """A supervisor registered on a test dbus-daemon, reachable both ways."""

    def setUp(self):
        super().setUp()
        self.assertTrue(CALLSTORM, "CALLSTORM must be set (run through meson test)")
        self.bus = lib.DBusDaemon(self)
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")

    def start_web(self, *args, workers=2, control="", target=None, **upgrade):
        conf = write_config(self, control, **upgrade)
        sup = self.start("--instance", "web", "--config", conf, "-s", target or self.v1, "-p", str(self.port),
                         "-f", str(workers), *args,
                         env={"DBUS_SESSION_BUS_ADDRESS": self.bus.address, "LIVESWAP_BUS": "user"})
        sup.wait_output("Registered %s on the user bus" % NAME)
        return sup

    def socket_address(self, sup):
        return "unix:path=" + os.path.join(sup.run_dir, "liveswap", "web", "bus")

    def busctl(self, sup, via, *args, user=None):
        """busctl through the user bus ("bus") or the private socket ("socket")."""
        where = ["--user"] if via == "bus" else ["--address=" + self.socket_address(sup)]
        prefix = AS_USER[user] if user else []
        return subprocess.run(prefix + ["busctl"] + where + list(args), env=sup.env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    def get(self, sup, via, prop, user=None):
        p = self.busctl(sup, via, "--json=short", "get-property", NAME, PATH, IFACE, prop, user=user)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["data"]

    def call(self, sup, via, method, *args):
        """A call that must succeed; returns busctl's output ("t 2")."""
        p = self.busctl(sup, via, "call", NAME, PATH, IFACE, method, *args)
        self.assertEqual(p.returncode, 0, "%s %s: %s\n%s" % (method, args, p.stderr, sup.output()[-3000:]))
        return p.stdout.strip()

    def storm(self, sup, via, method, *args, calls=1, connections=1, user=None):
        """Calls with callstorm; returns {outcome: (count, first message)}: busctl does
        not print the D-Bus error name, and the contract is about names."""
        where = ["--user", "--destination", NAME] if via == "bus" else ["--address", self.socket_address(sup)]
        prefix = AS_USER[user] if user else []
        p = subprocess.run(prefix + [CALLSTORM] + where + ["--calls", str(calls), "--connections", str(connections),
                                                           method] + list(args),
                           env=sup.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = {}
        for line in p.stdout.splitlines():
            name, count, message = (line.split(" ", 2) + [""])[:3]
            out[name] = (int(count), message)
        return out

    def assert_error(self, sup, via, name, method, *args, text=None):
        out = self.storm(sup, via, method, *args)
        self.assertEqual(list(out), [name], "%s %s: %s" % (method, args, out))
        if text:
            self.assertIn(text, out[name][1])
        return out[name][1]

    def wait_property(self, sup, via, prop, predicate, timeout=lib.DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            value = self.get(sup, via, prop)
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError("%s is still %r" % (prop, value))
            time.sleep(0.05)  # a property read is the event here; bounded above

    def snapshot(self, sup):
        return {p: self.get(sup, "socket", p) for p in ("Generation", "Target", "State", "DesiredWorkers", "Workers")}


class Interface(ControlTest):
    def check_introspection(self, xml_text):
        root = ET.fromstring(xml_text)
        iface = root if root.tag == "interface" else root.find("interface[@name='%s']" % IFACE)
        self.assertIsNotNone(iface, xml_text)
        methods = {}
        for m in iface.findall("method"):
            args = [(a.get("name"), a.get("type"), a.get("direction", "in")) for a in m.findall("arg")]
            methods[m.get("name")] = ([(n, t) for n, t, d in args if d == "in"], [(n, t) for n, t, d in args if d == "out"])
        self.assertEqual(methods, METHODS)
        self.assertEqual({p.get("name"): p.get("type") for p in iface.findall("property")}, PROPERTIES)
        self.assertTrue(all(p.get("access") == "read" for p in iface.findall("property")))
        signals = {s.get("name"): [(a.get("name"), a.get("type")) for a in s.findall("arg")]
                   for s in iface.findall("signal")}
        self.assertEqual(signals, {"UpgradeFinished": [("generation", "t"), ("success", "b"), ("reason", "s")]})

    def test_introspection_shows_the_whole_interface_with_argument_names(self):
        sup = self.start_web()
        for via in ("bus", "socket"):
            p = self.busctl(sup, via, "introspect", "--xml-interface", NAME, PATH)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.check_introspection(p.stdout)
            p = self.busctl(sup, via, "introspect", NAME, PATH, IFACE)
            self.assertEqual(p.returncode, 0, p.stderr)
            for member in list(METHODS) + list(PROPERTIES) + ["UpgradeFinished"]:
                self.assertIn("." + member + " ", p.stdout)

    def test_properties_agree_on_both_transports(self):
        sup = self.start_web(workers=3)
        values = {}
        for via in ("bus", "socket"):
            values[via] = {p: self.get(sup, via, p) for p in PROPERTIES if p not in VOLATILE}
            values[via]["WorkerDetails pids"] = sorted(w[0] for w in self.get(sup, via, "WorkerDetails"))
        self.assertEqual(values["bus"], values["socket"])
        v = values["bus"]
        self.assertEqual(v["Instance"], "web")
        self.assertEqual((v["Generation"], v["State"], v["LastResult"]), (1, "running", "success"))
        self.assertEqual(v["Target"], os.path.realpath(self.v1))
        self.assertEqual(v["PreviousTarget"], "")
        self.assertEqual((v["DesiredWorkers"], v["ReadyWorkers"], v["DrainingWorkers"]), (3, 3, 0))
        self.assertEqual(len(v["Workers"]), 3)
        for pid, generation, state, target, started in v["Workers"]:
            self.assertTrue(os.path.exists("/proc/%d" % pid))
            self.assertEqual((generation, state, target), (1, "ready", os.path.realpath(self.v1)))
            self.assertGreater(started, 0)


class Methods(ControlTest):
    def exercise(self, via):
        """Every method and every error of the contract through VIA."""
        hook = lib.write_file(os.path.join(self.dir, "hook"),
                              '#!/bin/sh\ncase "$1" in *refused*) echo "not this one" >&2; exit 1;; esac\n', 0o755)
        refused = lib.make_target(os.path.join(self.dir, "refused"), "v3")
        bad = lib.write_file(os.path.join(self.dir, "bad"), "#!/bin/sh\nexit 7\n", 0o755)
        slow = lib.make_target(os.path.join(self.dir, "slow"), "v2", "--delay-start", "3000")
        sup = self.start_web("--pre-upgrade", hook)

        self.assert_error(sup, via, "org.liveswap1.Error.NoPrevious", "Rollback", text="web: ")
        self.assert_error(sup, via, "org.liveswap1.Error.InvalidArgument", "Cancel", text="no upgrade is running")
        self.assert_error(sup, via, "org.liveswap1.Error.InvalidTarget", "Upgrade", "s",
                          os.path.join(self.dir, "missing"), text="invalid target")
        self.assert_error(sup, via, "org.liveswap1.Error.InvalidArgument", "SetWorkers", "u", "0")
        self.assert_error(sup, via, "org.liveswap1.Error.InvalidArgument", "Message", "s", "")
        self.assert_error(sup, via, "org.liveswap1.Error.HookFailed", "Upgrade", "s", refused, text="not this one")

        self.assertEqual(self.call(sup, via, "Upgrade", "s", self.v2), "t 2")
        self.assertEqual(self.get(sup, via, "Target"), os.path.realpath(self.v2))
        self.assertEqual(self.get(sup, via, "PreviousTarget"), os.path.realpath(self.v1))
        reason = self.assert_error(sup, via, "org.liveswap1.Error.UpgradeFailed", "Upgrade", "s", bad)
        self.assertRegex(reason, r"^web: upgrade to generation 3 failed, still serving generation 2: .*status 7")
        self.assertEqual(self.get(sup, via, "Generation"), 2)
        self.assertRegex(self.get(sup, via, "LastResult"), "^failed: .*status 7")

        # Generation 3 failed and keeps its number: the rollback is generation 4.
        self.assertEqual(self.call(sup, via, "Rollback"), "t 4")
        self.assertEqual(self.get(sup, via, "Target"), os.path.realpath(self.v1))
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")

        # StartUpgrade answers at once; a second request while it runs gets Busy; Cancel
        # rolls it back and the generation stays.
        self.assertEqual(self.call(sup, via, "StartUpgrade", "s", slow), "t 5")
        self.assert_error(sup, via, "org.liveswap1.Error.Busy", "Upgrade", "s", self.v2, text="in progress")
        self.assert_error(sup, via, "org.liveswap1.Error.Busy", "Restart")
        self.assert_error(sup, via, "org.liveswap1.Error.Busy", "SetWorkers", "u", "3")
        self.assertEqual(self.call(sup, via, "Cancel"), "")
        sup.wait_status(r"^Upgrade to generation 5 failed: cancelled; serving generation 4 .*: 2/2 ready$")
        self.assertEqual(self.get(sup, via, "LastResult"), "failed: cancelled")
        self.assertEqual(self.get(sup, via, "Generation"), 4)

        before = {w[0] for w in self.get(sup, via, "Workers")}
        self.assertEqual(self.call(sup, via, "Restart"), "")
        workers = self.wait_property(sup, via, "Workers", lambda ws: len(ws) == 2 and
                                     all(w[2] == "ready" and w[0] not in before for w in ws))
        after = {w[0] for w in workers}

        self.assertEqual(self.call(sup, via, "Message", "s", "hello"), "u 2")
        self.assertEqual(self.call(sup, via, "SetWorkers", "u", "3"), "")
        # The last upgrade's failure stays in STATUS= until the next upgrade.
        sup.wait_status(r"; serving generation 4 .*: 3/3 ready$")
        self.assertEqual(self.get(sup, via, "DesiredWorkers"), 3)

        self.assertEqual(self.call(sup, via, "Quit"), "")
        self.assertEqual(sup.proc.wait(30), 0, sup.output())
        self.assert_pids_gone(after)

    def test_every_method_and_error_on_the_user_bus(self):
        self.exercise("bus")

    def test_every_method_and_error_on_the_private_socket(self):
        self.exercise("socket")

    def test_private_socket_is_mode_0600(self):
        sup = self.start_web()
        path = os.path.join(sup.run_dir, "liveswap", "web", "bus")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class Signals(ControlTest):
    def test_properties_changed_and_upgrade_finished_on_the_bus(self):
        sup = self.start_web()
        bad = lib.write_file(os.path.join(self.dir, "bad"), "#!/bin/sh\nexit 7\n", 0o755)
        monitor = subprocess.Popen(["busctl", "--user", "--json=short", "monitor", NAME], env=sup.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def stop_monitor():
            if monitor.poll() is None:
                monitor.kill()
            monitor.wait()
            monitor.stdout.close()
            monitor.stderr.close()
        self.addCleanup(stop_monitor)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in monitor.stdout], daemon=True).start()
        # busctl says so on stderr once the bus has made it a monitor.
        started = queue.Queue()
        threading.Thread(target=lambda: started.put(monitor.stderr.readline()), daemon=True).start()
        self.assertIn("Monitoring bus message stream", started.get(timeout=lib.DEFAULT_TIMEOUT))

        seen = []

        def wait_for(predicate, what):
            """The first message since the last mark that matches, in bus order."""
            i = 0
            while True:
                for i in range(i, len(seen)):
                    if predicate(seen[i]):
                        return seen[i]
                i = len(seen)
                try:
                    seen.append(json.loads(lines.get(timeout=lib.DEFAULT_TIMEOUT)))
                except queue.Empty:
                    raise AssertionError("busctl monitor saw no %s" % what)

        self.assertEqual(self.call(sup, "bus", "Upgrade", "s", self.v2), "t 2")
        state = wait_for(lambda m: m.get("member") == "PropertiesChanged" and
                         "State" in m["payload"]["data"][1], "PropertiesChanged of State")
        self.assertEqual(state["payload"]["data"][0], IFACE)
        self.assertEqual(state["payload"]["data"][1]["State"]["data"], "upgrading")
        changed = wait_for(lambda m: m.get("member") == "PropertiesChanged" and
                           "Generation" in m["payload"]["data"][1], "PropertiesChanged of Generation")
        self.assertEqual(changed["payload"]["data"][1]["Generation"]["data"], 2)
        finished = wait_for(lambda m: m.get("member") == "UpgradeFinished", "UpgradeFinished")
        self.assertEqual((finished["path"], finished["interface"]), (PATH, IFACE))
        self.assertEqual(finished["payload"]["data"][:2], [2, True])
        # The new Generation is announced before the upgrade is said to be finished.
        self.assertLess(seen.index(changed), seen.index(finished))

        self.busctl(sup, "bus", "call", NAME, PATH, IFACE, "Upgrade", "s", bad)
        finished = wait_for(lambda m: m.get("member") == "UpgradeFinished" and m["payload"]["data"][0] == 3,
                            "UpgradeFinished of the failure")
        generation, success, reason = finished["payload"]["data"]
        self.assertEqual((generation, success), (3, False))
        self.assertIn("status 7", reason)


class Authorisation(ControlTest):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("calling as nobody needs root (setpriv)")
        super().setUp()

    def test_nobody_is_refused_every_method_and_may_read(self):
        sup = self.start_web()
        before = self.snapshot(sup)
        calls = [("Upgrade", "s", self.v2), ("StartUpgrade", "s", self.v2), ("Rollback",), ("Cancel",),
                 ("Restart",), ("Quit",), ("Message", "s", "hi"), ("SetWorkers", "u", "5"), ("Reexecute",)]
        self.assertEqual(sorted(c[0] for c in calls), sorted(METHODS))
        for call in calls:
            out = self.storm(sup, "bus", *call, user="nobody")
            self.assertEqual(list(out), ["org.freedesktop.DBus.Error.AccessDenied"], "%s: %s" % (call, out))
            self.assertIn("may not control liveswap instance web", out["org.freedesktop.DBus.Error.AccessDenied"][1])
        for prop in PROPERTIES:
            self.get(sup, "bus", prop, user="nobody")
        self.assertEqual(self.get(sup, "bus", "Generation", user="nobody"), 1)
        p = subprocess.run(AS_NOBODY + [os.environ["LIVESWAPCTL"], "--user", "-i", "web", "scale", "5"], env=sup.env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("permission denied", p.stderr)
        self.assertEqual(self.snapshot(sup), before)
        for method in METHODS:
            self.assertIn("Refused %s from uid 65534" % method, sup.output())
        self.assertIsNone(sup.proc.poll())

    CALLS = [("Upgrade", "s", None), ("StartUpgrade", "s", None), ("Rollback",), ("Cancel",), ("Restart",),
             ("Quit",), ("Message", "s", "hi"), ("SetWorkers", "u", "5"), ("Reexecute",)]

    def calls(self, target):
        calls = [tuple(target if a is None else a for a in c) for c in self.CALLS]
        self.assertEqual(sorted(c[0] for c in calls), sorted(METHODS))
        return calls

    def open_path_to_socket(self, sup):
        """Lets other users traverse the directories down to the private socket, so that
        only the socket's own mode and then the credential check stand in their way."""
        path = os.path.join(sup.run_dir, "liveswap", "web")
        for d in (self.dir, sup.run_dir, os.path.dirname(path), path):
            os.chmod(d, 0o711)
        return os.path.join(path, "bus")

    def test_private_socket_refuses_nobody_by_mode_then_by_credentials(self):
        """Two lines of defence on the private socket: its mode 0600 keeps other users
        from connecting at all; with the mode relaxed to 0666, the supervisor's check of
        the caller's SO_PEERCRED refuses every method and still lets it read."""
        sup = self.start_web()
        bus = self.open_path_to_socket(sup)
        self.assertEqual(os.stat(bus).st_mode & 0o777, 0o600)
        p = self.busctl(sup, "socket", "get-property", NAME, PATH, IFACE, "Generation", user="nobody")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("Permission denied", p.stderr)
        self.assertNotIn("Refused", sup.output())

        os.chmod(bus, 0o666)
        before = self.snapshot(sup)
        pids = [w[0] for w in before["Workers"]]
        for call in self.calls(self.v2):
            out = self.storm(sup, "socket", *call, user="nobody")
            self.assertEqual(list(out), ["org.freedesktop.DBus.Error.AccessDenied"], "%s: %s" % (call, out))
            self.assertIn("uid 65534 may not control liveswap instance web",
                          out["org.freedesktop.DBus.Error.AccessDenied"][1])
        for prop in PROPERTIES:
            self.get(sup, "socket", prop, user="nobody")
        self.assertEqual(self.get(sup, "socket", "Generation", user="nobody"), 1)
        self.assertEqual(self.snapshot(sup), before)
        for method in METHODS:
            self.assertIn("Refused %s from uid 65534" % method, sup.output())
        self.assertIsNone(sup.proc.poll())
        self.assertTrue(all(os.path.exists("/proc/%d" % pid) for pid in pids), pids)
        self.assertEqual(sorted(lib.started_workers(sup)), sorted(pids), "a worker was started")

    def test_a_user_cannot_upgrade_another_users_instance(self):
        """A supervisor of uid A (nobody) refuses uid B (daemon) on the user bus and on its
        private socket (mode relaxed), and lets A itself upgrade on both."""
        os.chmod(self.dir, 0o755)  # the targets and the config, for nobody
        conf = write_config(self)
        state = os.path.join(self.dir, "state")

        sup = lib.Supervisor(self, AS_NOBODY + [lib.LIVESWAP, "--instance", "web", "--config", conf, "-s", self.v1,
                                                "-p", str(self.port), "-f", "2"],
                             env={"DBUS_SESSION_BUS_ADDRESS": self.bus.address, "LIVESWAP_BUS": "user",
                                  "XDG_STATE_HOME": state}, prepare=lib.hand_to_nobody(state))
        sup.wait_ready()
        sup.wait_output("Registered %s on the user bus" % NAME)
        self.assertEqual(os.stat("/proc/%d" % sup.proc.pid).st_uid, 65534)
        bus = self.open_path_to_socket(sup)
        os.chmod(bus, 0o666)
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")
        lib.wait_load(self.port, 4)
        before = self.snapshot(sup)
        for via in ("bus", "socket"):
            out = self.storm(sup, via, "Upgrade", "s", self.v2, user="daemon")
            self.assertEqual(list(out), ["org.freedesktop.DBus.Error.AccessDenied"], "%s: %s" % (via, out))
            self.assertIn("uid 1 may not control liveswap instance web",
                          out["org.freedesktop.DBus.Error.AccessDenied"][1])
        self.assertEqual(self.snapshot(sup), before)
        self.assertEqual(sup.output().count("Refused Upgrade from uid 1:"), 2, sup.output())

        self.assertEqual(self.storm(sup, "bus", "Upgrade", "s", self.v2, user="nobody"), {"ok": (1, "")})
        self.assertEqual(self.get(sup, "socket", "Generation"), 2)
        self.assertEqual(self.storm(sup, "socket", "Upgrade", "s", self.v1, user="nobody"), {"ok": (1, "")})
        self.assertEqual(self.get(sup, "socket", "Generation"), 3)
        self.assertEqual(self.get(sup, "socket", "Target"), os.path.realpath(self.v1))
        result = load.stop()
        self.assert_no_failures(result, sup)
        workers = [w[0] for w in self.get(sup, "socket", "Workers")]
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assert_pids_gone(workers)
        print("uid 1 refused, uid 65534 upgraded its own instance twice: %s requests, %s failed" % (
            result["requests"], result["failed"]))

    def check_allowed(self, control):
        sup = self.start_web(control=control)
        out = self.storm(sup, "bus", "SetWorkers", "u", "3", user="nobody")
        self.assertEqual(list(out), ["ok"], out)
        sup.wait_status(r"^Serving generation 1 .*: 3/3 ready$")
        out = self.storm(sup, "bus", "Message", "s", "hi", user="nobody")
        self.assertEqual(list(out), ["ok"], out)

    def test_allow_users_lets_nobody_in(self):
        self.check_allowed("allow_users = nobody\n")

    def test_allow_groups_lets_nogroup_in(self):
        self.check_allowed("allow_groups = nogroup\n")


class Concurrency(ControlTest):
    def test_a_thousand_concurrent_start_upgrades(self):
        slow = lib.make_target(os.path.join(self.dir, "slow"), "v2", "--delay-start", "5000")
        sup = self.start_web(workers=4)
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")
        out = self.storm(sup, "socket", "StartUpgrade", "s", slow, calls=1000, connections=20)
        self.assertEqual(out.get("ok", (0,))[0], 1, out)
        self.assertEqual(out.get("org.liveswap1.Error.Busy", (0,))[0], 999, out)
        self.assertEqual(len(out), 2, out)
        sup.wait_status(r"^Serving generation 2 .*: 4/4 ready$", timeout=120)
        self.assertEqual(self.get(sup, "socket", "Generation"), 2)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertIsNone(sup.proc.poll())
        print("1000 StartUpgrade: %s; load: %s requests, %s failed" % (out, result["requests"], result["failed"]))

    def test_message_reaches_every_worker_exactly_once(self):
        target = logging_target(os.path.join(self.dir, "logs"), "v1")
        sup = self.start_web(workers=4, target=target)
        self.assertEqual(self.call(sup, "bus", "Message", "s", "alpha"), "u 4")
        self.assertEqual(self.call(sup, "socket", "Message", "s", "beta two"), "u 4")
        pids = [w[0] for w in self.get(sup, "socket", "Workers")]
        self.assertEqual(len(pids), 4)
        for pid in pids:
            log = os.path.join(self.dir, "logs", "log-%d" % pid)
            expected = ["message alpha", "message beta two"]
            # The worker logs a message when it reads it: wait for the file to show both.
            self.wait_file_lines(log, lambda ls: [l for l in ls if l.startswith("message")] == expected)

    def wait_file_lines(self, path, predicate, timeout=lib.DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            lines = []
            if os.path.exists(path):
                with open(path) as f:
                    lines = f.read().splitlines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("%s: %s" % (path, lines))
            time.sleep(0.05)  # a log file has no event to wait on; bounded above

    def test_set_workers_up_and_down_under_load(self):
        sup = self.start_web(workers=4)
        original = {w[0] for w in self.get(sup, "socket", "Workers")}
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")

        self.assertEqual(self.call(sup, "bus", "SetWorkers", "u", "8"), "")
        sup.wait_status(r"^Serving generation 1 .*: 8/8 ready$")
        workers = self.get(sup, "socket", "Workers")
        self.assertEqual(len(workers), 8)
        self.assertTrue(original <= {w[0] for w in workers}, "scaling up replaced workers")
        self.assertEqual(self.get(sup, "socket", "DesiredWorkers"), 8)

        self.assertEqual(self.call(sup, "socket", "SetWorkers", "u", "2"), "")
        sup.wait_status(r"^Serving generation 1 .*: 2/2 ready$")
        survivors = {w[0] for w in self.get(sup, "socket", "Workers") if w[2] == "ready"}
        self.assertEqual(len(survivors), 2)
        # The newest drain first: what is left comes from the first four.
        self.assertTrue(survivors <= original, "survivors %s are not among the oldest %s" % (survivors, original))
        self.assertEqual(self.get(sup, "socket", "DesiredWorkers"), 2)
        result = load.stop()
        self.assert_no_failures(result, sup)
        print("SetWorkers 4 -> 8 -> 2: %s requests, %s failed" % (result["requests"], result["failed"]))


if __name__ == "__main__":
    lib.main()
