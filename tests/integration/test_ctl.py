#!/usr/bin/env python3
"""liveswapctl (contract section 5) against real supervisors: exit codes 0 to 4, status
checked against the properties, --json that parses, list across private sockets and a
real dbus-daemon, the commands, live progress, and liveswap -u/-k/-d/-m sharing it all."""

import json
import os
import re
import subprocess

import lib

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")


def notify_config(test, **extra):
    settings = {"ready": "notify", "ready_timeout": "10s", "drain_timeout": "10s"}
    settings.update(extra)
    body = "[upgrade]\n" + "".join("%s = %s\n" % kv for kv in settings.items())
    return lib.write_file(os.path.join(test.dir, "liveswap.conf"), body)


class CtlTest(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(LIVESWAPCTL, "LIVESWAPCTL must be set (run through meson test)")
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        self.bad = lib.write_file(os.path.join(self.dir, "bad"), "#!/bin/sh\nexit 7\n", 0o755)

    def start_web(self, instance="web", workers=2, bus=None, **config):
        env = {"LIVESWAP_BUS": "none"}
        if bus:
            env = {"LIVESWAP_BUS": "user", "DBUS_SESSION_BUS_ADDRESS": bus.address}
        port = lib.free_port()
        sup = self.start("--instance", instance, "--config", notify_config(self, **config), "-s", self.v1, "-p",
                         str(port), "-f", str(workers), env=env)
        sup.port = port
        if bus:
            sup.wait_output("Registered org.liveswap1.%s on the user bus" % instance)
        return sup

    def ctl(self, sup, *args, env=None, cwd=None, timeout=120):
        """Runs liveswapctl with the supervisor's environment (its XDG_RUNTIME_DIR)."""
        e = dict(sup.env)
        e.update(env or {})
        return subprocess.run([LIVESWAPCTL] + list(args), env=e, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd or self.dir, stdin=subprocess.DEVNULL)

    def ok(self, sup, *args, **kw):
        p = self.ctl(sup, *args, **kw)
        self.assertEqual(p.returncode, 0, "liveswapctl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p


class ExitCodes(CtlTest):
    def test_upgrade_exit_codes(self):
        sup = self.start_web()
        load = lib.Load(self, "127.0.0.1:%d" % sup.port, clients=4)

        p = self.ok(sup, "upgrade", self.v2)
        self.assertEqual(p.stdout, "web: serving generation 2 (%s)\n" % os.path.realpath(self.v2))
        # Progress as plain lines, since stderr is no terminal.
        self.assertRegex(p.stderr, r"(?m)^web: upgrading to generation 2: \d/2 ready, \d starting, \d draining$")

        p = self.ctl(sup, "upgrade", self.bad)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"(?m)^liveswapctl: web: upgrade to generation 3 failed, still serving generation 2: "
                                   r"worker \d+ \(generation 3\) exited with status 7")
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        self.assertEqual(sup.get_property("web", "UpgradeGeneration"), 0)

        # The failure used 3 up: the progress names the generation being built, 4, not
        # the current one plus one (UpgradeGeneration).
        p = self.ok(sup, "upgrade", self.v1)
        self.assertEqual(p.stdout, "web: serving generation 4 (%s)\n" % os.path.realpath(self.v1))
        self.assertRegex(p.stderr, r"(?m)^web: upgrading to generation 4: \d/2 ready")
        self.assertNotIn("generation 3", p.stderr)

        p = self.ctl(sup, "-i", "ghost", "upgrade", self.v2)
        self.assertEqual(p.returncode, 3)
        self.assertIn("liveswap instance ghost is not running", p.stderr)
        p = self.ctl(sup, "upgrade", os.path.join(self.dir, "missing"))
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr, r"^liveswapctl: web: .*invalid target: .*missing")
        for usage in (["frobnicate"], ["upgrade", "a", "b"], ["scale"], ["scale", "zero"], ["message"],
                      ["--no-such-option", "status"], ["message", ""]):
            p = self.ctl(sup, *usage)
            self.assertEqual(p.returncode, 2, "%s: %s" % (usage, p.stderr))
            self.assertTrue(p.stderr.startswith("liveswapctl: "), p.stderr)

        # Busy: another upgrade is running.
        slow = lib.make_target(os.path.join(self.dir, "slow"), "v1", "--delay-start", "2000")
        self.ok(sup, "--no-wait", "upgrade", slow)
        p = self.ctl(sup, "upgrade", self.v1)
        self.assertEqual(p.returncode, 1)
        self.assertIn("web: an upgrade is already in progress", p.stderr)
        sup.wait_status(r"^Serving generation 5 ")  # generation 3 failed and keeps its number
        self.assert_no_failures(load.stop(), sup)

    def test_relative_target_is_taken_from_the_callers_directory(self):
        sup = self.start_web()
        p = self.ok(sup, "upgrade", "./server-v2", cwd=os.path.dirname(self.v2))
        self.assertIn("serving generation 2 (%s)" % os.path.realpath(self.v2), p.stdout)
        self.assertEqual(lib.http_get(("127.0.0.1", sup.port))[2], "v2\n")

    def test_rollback_cancel_restart_scale_message_stop(self):
        sup = self.start_web()
        p = self.ctl(sup, "rollback")
        self.assertEqual(p.returncode, 1)
        self.assertIn("web: there is no previous target", p.stderr)
        p = self.ctl(sup, "cancel")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no upgrade is running", p.stderr)

        self.ok(sup, "upgrade", self.v2)
        p = self.ok(sup, "rollback")
        self.assertEqual(p.stdout, "web: serving generation 3 (%s)\n" % os.path.realpath(self.v1))
        self.assertEqual(sup.get_property("web", "PreviousTarget"), os.path.realpath(self.v2))

        slow = lib.make_target(os.path.join(self.dir, "slow"), "v2", "--delay-start", "3000")
        p = self.ok(sup, "--no-wait", "upgrade", slow)
        self.assertEqual(p.stdout, "web: upgrade to generation 4 started\n")
        p = self.ok(sup, "cancel")
        self.assertEqual(p.stdout, "web: upgrade cancelled, rolling back\n")
        sup.wait_status(r"^Upgrade to generation 4 failed: cancelled; serving generation 3 .*: 2/2 ready$")
        self.assertEqual(sup.get_property("web", "LastResult"), "failed: cancelled")

        before = {w[0] for w in sup.get_property("web", "Workers")}
        self.assertEqual(self.ok(sup, "restart").stdout, "web: restarting every worker\n")
        self.assertEqual(self.ok(sup, "message", "hello").stdout, "web: delivered to 2 workers\n")
        self.assertEqual(self.ok(sup, "scale", "3").stdout, "web: scaling to 3 workers\n")
        sup.wait_status(r"; serving generation 3 .*: 3/3 ready$")  # the cancel is still shown
        after = {w[0] for w in sup.get_property("web", "Workers")}
        self.assertFalse(before & after)
        self.assertEqual(len(after), 3)

        p = self.ok(sup, "stop")
        self.assertEqual(p.stdout, "web: stopped\n")
        self.assertRegex(p.stderr, r"(?m)^web: stopping: \d workers? draining$")
        self.assertEqual(sup.proc.wait(30), 0)
        self.assert_pids_gone(after)
        p = self.ctl(sup, "status")
        self.assertEqual(p.returncode, 3)
        self.assertIn("no running liveswap instance found", p.stderr)

    def test_progress_on_a_terminal_is_one_line(self):
        sup = self.start_web()
        # script(1) gives liveswapctl a terminal; its output is the terminal's.
        p = subprocess.run(["script", "-qec", "%s upgrade %s" % (LIVESWAPCTL, self.v2), "/dev/null"], env=sup.env,
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("\r\x1b[Kweb: upgrading to generation 2: ", out)
        self.assertRegex(out, r"\r\x1b\[Kweb: serving generation 2 \(.*\)\r?\n$")
        self.assertNotIn("\nweb: upgrading", out.replace("\r\n", "\n"))  # never a line of its own


class Status(CtlTest):
    def parse_status(self, text):
        # The per-worker figures follow after a blank line (test_status.py checks them).
        lines = text.split("\n\n")[0].splitlines()
        self.assertEqual(lines[0], "● web - liveswap supervisor")
        fields, workers = {}, []
        for line in lines[1:]:
            m = re.match(r"^ *([A-Z][A-Za-z ]+): (.*)$", line)
            if m:
                fields[m.group(1)] = m.group(2)
                continue
            m = re.match(r"^ {13}[├└]─(\d+) generation (\d+), (starting|ready|draining), up (\S+( \S+)?)$", line)
            self.assertTrue(m, "unexpected line %r in:\n%s" % (line, text))
            workers.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        self.assertTrue(lines[-1].lstrip().startswith("└─"), text)
        return fields, workers

    def test_status_shows_the_real_state(self):
        sup = self.start_web(workers=3)
        self.ok(sup, "upgrade", self.v2)
        p = self.ok(sup, "status")
        fields, workers = self.parse_status(p.stdout)
        self.assertEqual(fields["State"], "running")
        self.assertEqual(int(fields["Main PID"]), sup.proc.pid)
        self.assertEqual(int(fields["Generation"]), sup.get_property("web", "Generation"))
        self.assertEqual(fields["Target"], sup.get_property("web", "Target"))
        self.assertEqual(fields["Previous"], sup.get_property("web", "PreviousTarget"))
        self.assertEqual(fields["Last result"], sup.get_property("web", "LastResult"))
        self.assertEqual(fields["Control"], "the private socket %s/liveswap/web/bus" % sup.run_dir)
        self.assertEqual(fields["Workers"], "3 desired, 3 ready, 0 draining")
        self.assertEqual(sorted(workers), sorted((w[0], w[1], w[2]) for w in sup.get_property("web", "Workers")))
        # The default command is status.
        self.assertEqual(self.ok(sup).stdout.splitlines()[:3], p.stdout.splitlines()[:3])

    def test_json_status_parses_and_matches(self):
        sup = self.start_web()
        status = json.loads(self.ok(sup, "--json", "status").stdout)
        self.assertEqual((status["instance"], status["pid"]), ("web", sup.proc.pid))
        self.assertEqual(status["generation"], sup.get_property("web", "Generation"))
        self.assertEqual(status["target"], sup.get_property("web", "Target"))
        self.assertEqual((status["state"], status["desired_workers"], status["ready_workers"]), ("running", 2, 2))
        self.assertEqual(sorted((w["pid"], w["generation"], w["state"], w["target"], w["started_usec"])
                                for w in status["workers"]),
                         sorted(tuple(w) for w in sup.get_property("web", "Workers")))
        self.assertTrue(all(w["uptime_usec"] >= 0 for w in status["workers"]))
        result = json.loads(self.ok(sup, "--json", "upgrade", self.v2).stdout)
        self.assertEqual(result, {"instance": "web", "success": True, "generation": 2,
                                  "target": os.path.realpath(self.v2)})
        self.assertEqual(json.loads(self.ok(sup, "--json", "message", "x").stdout)["delivered"], 2)


class Discovery(CtlTest):
    def test_list_and_instance_choice_across_sockets_and_the_user_bus(self):
        bus = lib.DBusDaemon(self)
        web = self.start_web(bus=bus)
        # A second instance on a private socket only, in the same runtime directory.
        other = lib.Supervisor(self, [lib.LIVESWAP, "--instance", "api", "--config", notify_config(self), "-s",
                                      self.v2, "-p", str(lib.free_port())],
                               env={"LIVESWAP_BUS": "none"}, workdir=self.dir)
        other.wait_ready()

        listing = json.loads(self.ok(web, "--json", "list").stdout)
        by_name = {i["instance"]: i for i in listing["instances"]}
        self.assertEqual(sorted(by_name), ["api", "web"])
        self.assertEqual(by_name["web"]["via"], ["socket", "user"])
        self.assertEqual(by_name["api"]["via"], ["socket"])
        self.assertEqual(by_name["api"]["socket"], os.path.join(web.run_dir, "liveswap", "api", "bus"))
        self.assertEqual((by_name["web"]["state"], by_name["web"]["generation"]), ("running", 1))
        self.assertEqual(by_name["api"]["target"], os.path.realpath(self.v2))

        text = self.ok(web, "list").stdout.splitlines()
        self.assertRegex(text[0], r"^INSTANCE +STATE +GENERATION +WORKERS +TARGET +VIA$")
        self.assertRegex(text[1], r"^api +running +1 +2/2 +\S+ +private socket ")
        self.assertRegex(text[2], r"^web +running +1 +2/2 +\S+ +private socket .*, user bus$")
        self.assertEqual(text[-1], "2 instances listed.")

        user = json.loads(self.ok(web, "--user", "--json", "list").stdout)
        self.assertEqual([i["instance"] for i in user["instances"]], ["web"])

        # Two running: the instance must be named, by -i or $LIVESWAP_INSTANCE.
        p = self.ctl(web, "status")
        self.assertEqual(p.returncode, 2)
        self.assertIn("several liveswap instances are running; pick one with -i: api web", p.stderr)
        self.assertIn("● api - ", self.ok(web, "-i", "api", "status").stdout)
        self.assertIn("● api - ", self.ok(web, "status", env={"LIVESWAP_INSTANCE": "api"}).stdout)

        # Through the user bus, explicitly or when the private socket is not where the
        # client looks.
        status = json.loads(self.ok(web, "--user", "--json", "status").stdout)
        self.assertEqual((status["instance"], status["control"]), ("web", "the user bus"))
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.makedirs(elsewhere)
        status = json.loads(self.ok(web, "-i", "web", "--json", "status", env={"XDG_RUNTIME_DIR": elsewhere}).stdout)
        self.assertEqual(status["control"], "the user bus")
        p = self.ok(web, "--user", "upgrade", self.v2)
        self.assertIn("web: serving generation 2", p.stdout)
        self.assertEqual(self.ok(web, "--user", "-i", "web", "stop").stdout, "web: stopped\n")
        self.assertEqual(web.proc.wait(30), 0)
        p = self.ctl(web, "--user", "-i", "api", "status")
        self.assertEqual(p.returncode, 3)
        self.assertIn("api: liveswap instance api is not running on the user bus", p.stderr)


class Remote(CtlTest):
    def test_host_through_ssh_and_the_stdio_bridge(self):
        """-H HOST is sd-bus's SSH transport: `ssh HOST systemd-stdio-bridge`, then the
        remote system bus. An `ssh` first on PATH stands in for the real one (sd-bus runs
        it by name): it runs the bridge here, on a real dbus-daemon acting as that host's
        system bus, and records how it was called."""
        bus = lib.DBusDaemon(self)
        port = lib.free_port()
        web = self.start("--instance", "web", "--config", notify_config(self), "-s", self.v1, "-p", str(port),
                         env={"LIVESWAP_BUS": "system", "DBUS_SYSTEM_BUS_ADDRESS": bus.address})
        web.wait_output("Registered org.liveswap1.web on the system bus")
        calls = os.path.join(self.dir, "ssh-calls")
        fake, broken = os.path.join(self.dir, "fake-ssh"), os.path.join(self.dir, "broken-ssh")
        os.makedirs(fake)
        os.makedirs(broken)
        lib.write_file(os.path.join(fake, "ssh"), "#!/bin/sh\necho \"$*\" >> '%s'\n"
                       "exec systemd-stdio-bridge --bus-path='%s'\n" % (calls, bus.address), 0o755)
        lib.write_file(os.path.join(broken, "ssh"), "#!/bin/sh\necho 'ssh: no route to host' >&2\nexit 255\n", 0o755)
        # Nothing local to find: no private socket where the client looks.
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.makedirs(elsewhere)
        env = {"PATH": fake + ":" + os.environ["PATH"], "XDG_RUNTIME_DIR": elsewhere}
        status = json.loads(self.ok(web, "-H", "deploy@web1.example", "-i", "web", "--json", "status", env=env).stdout)
        self.assertEqual((status["instance"], status["generation"]), ("web", 1))
        self.assertIn("web1.example", status["control"])
        p = self.ok(web, "-H", "deploy@web1.example", "-i", "web", "upgrade", self.v2, env=env)
        self.assertIn("web: serving generation 2", p.stdout)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        with open(calls) as f:
            seen = f.read()
        self.assertIn("deploy@web1.example", seen)
        self.assertIn("systemd-stdio-bridge", seen)
        # An unreachable host is exit status 3 with one clear line.
        p = self.ctl(web, "-H", "web2.example", "-i", "web", "status",
                     env={"PATH": broken + ":" + os.environ["PATH"], "XDG_RUNTIME_DIR": elsewhere})
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("web2.example", p.stderr)


class SeedClient(CtlTest):
    def test_liveswap_client_flags_share_liveswapctl(self):
        sup = self.start_web()
        p = sup.client("-i", "web", "-u", self.v2, check=0)
        self.assertEqual(p.stdout, "web: serving generation 2 (%s)\n" % os.path.realpath(self.v2))
        self.assertRegex(p.stderr, r"(?m)^web: upgrading to generation 2: ")
        p = sup.client("-i", "web", "-u", self.bad)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"(?m)^liveswap: web: upgrade to generation 3 failed, still serving generation 2: ")
        p = sup.client("-i", "web", "-m", "hi", check=0)
        self.assertEqual(p.stdout, "web: delivered to 2 workers\n")
        p = sup.client("-i", "web", "-k", check=0)
        self.assertEqual(p.stdout, "web: restarting every worker\n")
        p = sup.client("-i", "web", "-d", check=0)
        self.assertEqual(p.stdout, "web: stopped\n")
        self.assertEqual(sup.proc.wait(30), 0)


if __name__ == "__main__":
    lib.main()
