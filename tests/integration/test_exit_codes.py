#!/usr/bin/env python3
"""The client's outcomes (contract section 5) against real supervisors: one exit code per
meaning (0 done, 1 failed or rolled back, 2 bad usage or invalid argument, 3 not running
or unreachable, 4 permission denied) for liveswapctl and liveswap -u/-k/-d/-m; --json
printing exactly one object on stdout for failures too; a permission message that names
the setting which would allow the caller, on the private socket and on a system-like bus
with the project's own D-Bus policy; and a client that leaves no half-made connection in
the supervisor's log."""

import json
import os
import subprocess
import tempfile
import shutil

import lib

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PROBE_NOISE = "Cannot set up a control connection"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_config(test, control=""):
    body = "[upgrade]\nready = notify\nready_timeout = 10s\ndrain_timeout = 10s\n[control]\n" + control
    return lib.write_file(os.path.join(test.dir, "liveswap.conf"), body)


class SystemLikeBus(lib.DBusDaemon):
    """A dbus-daemon with a system bus's default policy (nothing may be called or owned
    unless allowed) plus liveswap's own policy file from dbus/, as installed."""

    CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%%s</listen>
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
  </policy>
  <include>%s</include>
</busconfig>
""" % os.path.join(REPO, "dbus", "org.liveswap1.conf")


class ExitCodeTest(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(LIVESWAPCTL, "LIVESWAPCTL must be set (run through meson test)")
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        self.bad = lib.write_file(os.path.join(self.dir, "bad"), "#!/bin/sh\nexit 7\n", 0o755)

    def start_web(self, control="", env=None):
        e = {"LIVESWAP_BUS": "none"}
        e.update(env or {})
        self.port = lib.free_port()
        return self.start("--instance", "web", "--config", write_config(self, control), "-s", self.v1, "-p",
                          str(self.port), "-f", "2", env=e)

    def ctl(self, sup, *args, user=None, env=None):
        e = dict(sup.env)
        e.update(env or {})
        prefix = AS_NOBODY if user == "nobody" else []
        return subprocess.run(prefix + [LIVESWAPCTL] + list(args), env=e, capture_output=True, text=True,
                              timeout=120, cwd="/", stdin=subprocess.DEVNULL)

    def assert_json_failure(self, p, code, error, reason=None):
        """Exactly one JSON object on stdout, naming the failure; the exit code matches."""
        self.assertEqual(p.returncode, code, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        obj = json.loads(lines[0])
        self.assertEqual(obj["success"], False, obj)
        self.assertEqual(obj["error"], error, obj)
        self.assertEqual(obj["exit_status"], code, obj)
        self.assertTrue(obj["reason"], obj)
        if reason:
            self.assertIn(reason, obj["reason"])
        return obj

    def open_path_to_socket(self, sup):
        """Lets other users traverse the directories down to the private socket."""
        path = os.path.join(sup.run_dir, "liveswap", "web")
        for d in (self.dir, sup.run_dir, os.path.dirname(path), path):
            os.chmod(d, 0o711)
        return os.path.join(path, "bus")


class ExitCodes(ExitCodeTest):
    def test_each_exit_code_and_its_json_object(self):
        sup = self.start_web()
        # 1: refused for a reason of state.
        self.assert_json_failure(self.ctl(sup, "--json", "rollback"), 1, "NoPrevious")
        # 0, with --json as before.
        p = self.ctl(sup, "--json", "upgrade", self.v2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(json.loads(p.stdout)["success"])
        # 1: rolled back, with the reason on stderr and in the object.
        p = self.ctl(sup, "upgrade", self.bad)
        self.assertEqual(p.returncode, 1, p.stderr)
        obj = self.assert_json_failure(self.ctl(sup, "--json", "upgrade", self.bad), 1, "UpgradeFailed",
                                       "exited with status 7")
        self.assertEqual(obj["instance"], "web")
        # 2: a bad target, bad usage.
        missing = os.path.join(self.dir, "missing")
        self.assertEqual(self.ctl(sup, "upgrade", missing).returncode, 2)
        self.assert_json_failure(self.ctl(sup, "--json", "upgrade", missing), 2, "InvalidTarget", missing)
        for usage in (["frobnicate"], ["scale", "zero"], ["--no-such-option", "status"], ["message", ""],
                      ["upgrade", "a", "b"]):
            p = self.ctl(sup, *usage)
            self.assertEqual((p.returncode, p.stdout), (2, ""), usage)
            self.assert_json_failure(self.ctl(sup, *usage, "--json") if usage[0] != "--no-such-option"
                                     else self.ctl(sup, "--json", *usage), 2, "Usage")
        self.assert_json_failure(self.ctl(sup, "--json", "cancel"), 2, "InvalidArgument", "no upgrade is running")
        # 3: not running: an instance that never ran, one whose socket was left behind.
        self.assertEqual(self.ctl(sup, "-i", "ghost", "status").returncode, 3)
        self.assert_json_failure(self.ctl(sup, "--json", "-i", "ghost", "upgrade", self.v2), 3, "NotRunning",
                                 "ghost is not running")
        # The seed-compatible client flags share the codes.
        self.assertEqual(sup.client("--instance", "web", "-u", missing).returncode, 2)
        self.assertEqual(sup.client("--instance", "web", "-u", self.bad).returncode, 1)
        self.assertEqual(sup.client("--instance", "ghost", "-u", self.v2).returncode, 3)
        self.assertEqual(sup.client("--instance", "ghost", "-k").returncode, 3)
        self.assertEqual(sup.client("--instance", "ghost", "-m", "hi").returncode, 3)
        self.assertEqual(sup.client("--instance", "web", "-m", "hi").returncode, 0)
        self.assertEqual(sup.client("--instance", "web", "-d").returncode, 0)
        self.assertEqual(sup.proc.wait(30), 0)
        p = self.ctl(sup, "status")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assert_json_failure(self.ctl(sup, "--json", "status"), 3, "NotRunning")
        self.assertEqual(sup.client("--instance", "web", "-d").returncode, 3)

    def test_stale_socket_is_not_running(self):
        sup = self.start_web()
        sup.proc.kill()  # leaves its socket file behind
        sup.proc.wait()
        p = self.ctl(sup, "-i", "web", "status")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("left over from a supervisor that is gone", p.stderr)
        self.assert_json_failure(self.ctl(sup, "--json", "-i", "web", "restart"), 3, "NotRunning")

    def test_busy_is_failed(self):
        sup = self.start_web()
        slow = lib.make_target(os.path.join(self.dir, "slow"), "v2", "--delay-start", "3000")
        self.assertEqual(self.ctl(sup, "--no-wait", "upgrade", slow).returncode, 0)
        self.assert_json_failure(self.ctl(sup, "--json", "upgrade", self.v2), 1, "Busy")
        sup.wait_status(r"^Serving generation 2 ")


class PermissionDenied(ExitCodeTest):
    def test_private_socket_by_mode(self):
        """Mode 0600: nobody cannot connect; told which user may, and what else to do."""
        sup = self.start_web()
        bus = self.open_path_to_socket(sup)
        p = self.ctl(sup, "-i", "web", "restart", user="nobody")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("permission denied: the control socket %s is open only to its owner (uid 0)" % bus, p.stderr)
        self.assertIn("allow_users=", p.stderr)
        self.assert_json_failure(self.ctl(sup, "--json", "-i", "web", "restart", user="nobody"), 4, "AccessDenied")
        # liveswap -k as nobody: the same code.
        p = subprocess.run(AS_NOBODY + [lib.LIVESWAP, "--instance", "web", "-k"], env=sup.env, capture_output=True,
                           text=True, timeout=60, cwd="/")
        self.assertEqual(p.returncode, 4, p.stderr)

    def test_private_socket_by_credentials_names_the_setting(self):
        """The socket opened to all: the supervisor's own check refuses, and its answer
        names allow_users=/allow_groups= and the configuration file."""
        sup = self.start_web()
        os.chmod(self.open_path_to_socket(sup), 0o666)
        p = self.ctl(sup, "-i", "web", "scale", "5", user="nobody")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("permission denied: uid 65534 may not control liveswap instance web: allow_users= or "
                      "allow_groups= in [control] of %s would allow it" % os.path.join(self.dir, "liveswap.conf"),
                      p.stderr)
        self.assert_json_failure(self.ctl(sup, "--json", "-i", "web", "upgrade", self.v2, user="nobody"), 4,
                                 "AccessDenied", "allow_users=")
        # Reading is open, and an allowed user gets through.
        self.assertEqual(self.ctl(sup, "-i", "web", "status", user="nobody").returncode, 0)
        self.assertEqual(sup.get_property("web", "DesiredWorkers"), 2)

    def test_system_bus_policy_is_explained_not_dumped(self):
        bus = SystemLikeBus(self)
        sup = self.start_web(env={"LIVESWAP_BUS": "system", "DBUS_SYSTEM_BUS_ADDRESS": bus.address})
        sup.wait_output("Registered org.liveswap1.web on the system bus")
        env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
        p = self.ctl(sup, "--system", "-i", "web", "restart", user="nobody", env=env)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertNotIn("Rejected send message", p.stderr)  # dbus-daemon's rule dump
        self.assertIn("permission denied by the D-Bus policy of the system bus", p.stderr)
        self.assertIn("allow_users= or allow_groups= in [control]", p.stderr)
        self.assertLess(len(p.stderr), 400, p.stderr)
        self.assert_json_failure(self.ctl(sup, "--json", "--system", "-i", "web", "stop", user="nobody", env=env), 4,
                                 "AccessDenied")
        # Reading stays open to everyone, as the policy says.
        self.assertEqual(self.ctl(sup, "--system", "-i", "web", "status", user="nobody", env=env).returncode, 0)
        self.assertIsNone(sup.proc.poll())


class QuietClient(ExitCodeTest):
    def test_status_leaves_no_half_made_connection(self):
        """liveswapctl found the instance by connecting, closed, then connected again:
        the supervisor logged a reset for every status. Now one connection, whole."""
        sup = self.start_web()
        for i in range(20):
            p = self.ctl(sup, "status")  # no -i: the instance is found by looking
            self.assertEqual(p.returncode, 0, p.stderr)
        for i in range(5):
            self.assertEqual(self.ctl(sup, "list").returncode, 0)
            self.assertEqual(self.ctl(sup, "-i", "web", "--json", "status").returncode, 0)
        # A probe's connection is accepted (and its failure logged) before the client's
        # next one, which the supervisor has answered: every such line is written by now.
        self.assertNotIn(PROBE_NOISE, sup.output())

    def test_restart_is_logged_as_a_restart(self):
        sup = self.start_web()
        self.assertEqual(self.ctl(sup, "restart").returncode, 0)
        sup.wait_output("for the restart")
        out = sup.output()
        self.assertNotIn("did not exit in time", out)
        self.assertRegex(out, r"(?m)^<6>Killing worker \d+: restart requested$")
        self.assertRegex(out, r"(?m)^<6>Worker \d+ \(generation 1, slot \d\) was killed by signal KILL for the restart$")
        self.assertNotRegex(out, r"(?m)^<4>Killing worker")

    def test_startup_line_on_a_terminal_names_the_program_once(self):
        port = lib.free_port()
        run = tempfile.mkdtemp(prefix="liveswap-tty-")
        self.addCleanup(shutil.rmtree, run, True)
        out = os.path.join(self.dir, "tty.log")
        env = dict(os.environ, XDG_RUNTIME_DIR=run, XDG_STATE_HOME=run, LIVESWAP_BUS="none")
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        cmd = "%s --instance tty -s %s -p %d -f 1" % (lib.LIVESWAP, self.v1, port)
        proc = subprocess.Popen(["script", "-qfec", cmd, out], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = lib.time.monotonic() + lib.DEFAULT_TIMEOUT
            text = ""
            while "Serving generation 1 " not in text:
                self.assertLess(lib.time.monotonic(), deadline, text)
                lib.time.sleep(0.05)  # script(1) writes a file: no event to wait on; bounded
                if os.path.exists(out):
                    with open(out, errors="replace") as f:
                        text = f.read()
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        self.assertIn("liveswap: Starting instance tty (version ", text)
        self.assertNotIn("liveswap: liveswap", text)


if __name__ == "__main__":
    lib.main()
