#!/usr/bin/env python3
"""Zero-downtime upgrades under load, for each strategy."""

import os
import re
import subprocess
import time

import lib


def notify_config(test, **extra):
    """A config file with ready=notify (the example server sends READY=1)."""
    settings = {"ready": "notify", "ready_timeout": "10s", "drain_timeout": "10s"}
    settings.update(extra)
    body = "[upgrade]\n" + "".join("%s = %s\n" % kv for kv in settings.items())
    return lib.write_file(os.path.join(test.dir, "liveswap.conf"), body)


def start_client(test, sup, *args):
    """`liveswap ARGS` against SUP in the background (an upgrade the test watches while it
    runs); stopped by its pid at cleanup if it is still running."""
    proc = subprocess.Popen([lib.LIVESWAP] + list(args), env=sup.env, cwd=sup.dir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    test.addCleanup(stop)
    return proc


def upgrade_started(sup):
    """Waits for the supervisor's RELOADING=1; returns its MONOTONIC_USEC in seconds, on
    the clock time.monotonic() reads (CLOCK_MONOTONIC)."""
    msg = sup.notify.wait_for(lambda m: "RELOADING=1" in m.split("\n"), what="RELOADING=1")
    return int(re.search(r"^MONOTONIC_USEC=(\d+)$", msg, re.M).group(1)) / 1e6


def workers_of(sup, instance, generation):
    """The pids of GENERATION's workers, from the Workers property."""
    return [w[0] for w in sup.get_property(instance, "Workers") if w[1] == generation]


def proc_cwd(pid):
    return os.readlink("/proc/%d/cwd" % pid)


def proc_cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def proc_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().partition("=")[::2] for e in f.read().split(b"\0") if e)


class UpgradeUnderLoad(lib.TestCase):
    def run_upgrades(self, strategy, count, workers=4, clients=8):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, strategy=strategy)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", str(workers))
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=clients, mode="mixed")
        targets = []
        for i in range(count):
            target = v2 if i % 2 == 0 else v1
            targets.append(target)
            p = sup.client("-i", "web", "-u", target, check=0)
            self.assertIn("serving generation %d" % (i + 2), p.stdout)
        result = load.stop()
        self.assert_no_failures(result, sup)
        seen = lib.versions(result)
        self.assertIn("v1", seen, result["_raw"])
        self.assertIn("v2", seen, result["_raw"])
        final = "v2" if targets[-1] == v2 else "v1"
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body), (200, final + "\n"))
        self.assertEqual(sup.get_property("web", "Generation"), count + 1)
        self.assertEqual(sup.get_property("web", "Target"), os.path.realpath(targets[-1]))
        workers_before = [w[0] for w in sup.get_property("web", "Workers")]
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assert_pids_gone(workers_before)
        print("%s: %s requests, %s failed, versions %s, p99 %s us, max %s us" % (
            strategy, result["requests"], result["failed"], result["versions"], result.get("p99_us"),
            result.get("max_us")))
        return result

    def test_rolling_twenty_upgrades(self):
        self.run_upgrades("rolling", 20)

    def test_blue_green(self):
        self.run_upgrades("blue-green", 6)

    def test_rolling_batch_two(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, batch="2")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "4")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="keepalive")
        sup.client("-i", "web", "-u", v2, check=0)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_many_workers_old_ones_slow_to_drain(self):
        """Nine workers, rolling one at a time, and old workers that ignore the drain
        signal, so all nine stay in the table until drain_timeout: the 17th worker is
        started while the supervisor handles a READY=1 (with STATUS=, as the example
        sends), and the table grows under it. Under ASan this caught a use of the moved
        table (the CI failure of 2026-12-01); here it must end with generation 2 and every
        old worker killed once drain_timeout passed."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1", "--ignore-term")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, drain_timeout="5s")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "9")
        old = workers_of(sup, "web", 1)
        self.assertEqual(len(old), 9)
        p = sup.client("-i", "web", "-u", v2, check=0)
        self.assertIn("serving generation 2", p.stdout)
        self.assert_pids_gone(old, timeout=15)
        self.assertEqual(len(workers_of(sup, "web", 2)), 9)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(sup.stop(), 0, sup.output())

    def test_restart_strategy(self):
        """-z stops the old workers before starting new ones; the socket stays open, so
        connections wait in the backlog instead of being refused."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "2", "-z")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close")
        sup.client("-i", "web", "-u", v2, check=0)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_directory_target_and_symlink(self):
        """A directory runs its exec command; a `current` symlink is resolved at upgrade time."""
        port = lib.free_port()
        releases = os.path.join(self.dir, "releases")
        for version in ("v1", "v2"):
            lib.make_target(os.path.join(releases, version), version, name="start")
        current = os.path.join(self.dir, "current")
        os.symlink(os.path.join(releases, "v1"), current)
        conf = notify_config(self)
        sup = self.start("--instance", "app", "--config", conf, "-s", current, "-p", str(port))
        self.assertEqual(sup.get_property("app", "Target"), os.path.join(releases, "v1"))
        os.unlink(current)
        os.symlink(os.path.join(releases, "v2"), current)
        sup.client("-i", "app", "-u", check=0)  # reload: the configured target, re-resolved
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(sup.get_property("app", "Target"), os.path.join(releases, "v2"))
        self.assertEqual(sup.get_property("app", "PreviousTarget"), os.path.join(releases, "v1"))


class DirectoryExec(lib.TestCase):
    """A directory target runs its `exec` command inside it (contract section 3): a
    relative program path resolves inside the directory, a bare name through PATH, and
    the default is ./start. The worker's cwd is the directory."""

    def exec_config(self, exec_line=None):
        conf = notify_config(self)
        if exec_line is not None:
            with open(conf, "a") as f:
                f.write("[worker]\nexec = %s\n" % exec_line)
        return conf

    def assert_worker(self, sup, generation, directory, argv, port):
        pids = workers_of(sup, "app", generation)
        self.assertEqual(len(pids), 1, sup.get_property("app", "Workers"))
        pid = pids[0]
        self.assertEqual(proc_cwd(pid), os.path.realpath(directory))
        self.assertEqual(proc_cmdline(pid), argv)
        self.assertEqual(os.path.realpath("/proc/%d/exe" % pid), os.path.realpath(lib.HTTPD))
        self.assertEqual(sup.get_property("app", "Target"), os.path.realpath(directory))
        return pid

    def test_relative_program_with_quoted_arguments(self):
        port = lib.free_port()
        releases = os.path.join(self.dir, "releases")
        for release in ("1", "2"):
            os.makedirs(os.path.join(releases, release, "bin"))
            lib.write_file(os.path.join(releases, release, "bin", "server"),
                           "#!/bin/sh\nexport RELEASE=%s\nexec '%s' \"$@\"\n" % (release, lib.HTTPD), 0o755)
        conf = self.exec_config('bin/server --version "v 1"')
        sup = self.start("--instance", "app", "--config", conf, "-s", os.path.join(releases, "1"), "-p", str(port),
                         "-f", "1")
        # "v 1" is one argument: the shell-like quoting is undone, the space kept.
        pid = self.assert_worker(sup, 1, os.path.join(releases, "1"), [lib.HTTPD, "--version", "v 1"], port)
        self.assertEqual(proc_environ(pid)["RELEASE"], "1")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v 1\n")
        # The same exec in the next release runs that release's bin/server.
        sup.client("-i", "app", "-u", os.path.join(releases, "2"), check=0)
        pid = self.assert_worker(sup, 2, os.path.join(releases, "2"), [lib.HTTPD, "--version", "v 1"], port)
        self.assertEqual(proc_environ(pid)["RELEASE"], "2")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v 1\n")
        print("exec = bin/server --version \"v 1\": argv %r, cwd %s" % (proc_cmdline(pid), proc_cwd(pid)))

    def test_bare_name_through_path(self):
        port = lib.free_port()
        on_path = os.path.join(self.dir, "on-path")
        os.makedirs(on_path)
        lib.write_file(os.path.join(on_path, "liveswap-test-app"),
                       "#!/bin/sh\nexec '%s' --version \"$1\"\n" % lib.HTTPD, 0o755)
        app = os.path.join(self.dir, "app")
        os.makedirs(app)
        # A program of the same name inside the directory is not what a bare name means.
        lib.write_file(os.path.join(app, "liveswap-test-app"),
                       "#!/bin/sh\nexec '%s' --version wrong\n" % lib.HTTPD, 0o755)
        conf = self.exec_config("liveswap-test-app 'v 2'")
        sup = self.start("--instance", "app", "--config", conf, "-s", app, "-p", str(port), "-f", "1",
                         env={"PATH": on_path + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")})
        self.assert_worker(sup, 1, app, [lib.HTTPD, "--version", "v 2"], port)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v 2\n")

    def test_default_start(self):
        port = lib.free_port()
        app = os.path.join(self.dir, "app")
        os.makedirs(app)
        lib.write_file(os.path.join(app, "start"), "#!/bin/sh\nexec '%s' --version v3\n" % lib.HTTPD, 0o755)
        # Run from elsewhere: ./start is found in the target, not in the supervisor's cwd.
        sup = self.start("--instance", "app", "--config", self.exec_config(), "-s", app, "-p", str(port), "-f", "1")
        self.assertNotEqual(os.path.realpath(sup.dir), os.path.realpath(app))
        self.assert_worker(sup, 1, app, [lib.HTTPD, "--version", "v3"], port)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v3\n")


class ReadyDelay(lib.TestCase):
    """ready = delay (the default): a worker is ready once it has stayed alive for
    ready_delay; one that exits before that has failed."""

    DELAY = 2.0

    def start_web(self, port):
        # No ready= line: delay is the default. v1 never sends READY=1 either.
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nready_delay = %dms\nready_timeout = 30s\ndrain_timeout = 10s\n"
                              % (self.DELAY * 1000))
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1", "--no-ready")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")
        return sup, v1

    def test_ready_after_delay_without_notification(self):
        port = lib.free_port()
        sup, _ = self.start_web(port)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2", "--no-ready")
        client = start_client(self, sup, "-i", "web", "-u", v2)
        started = upgrade_started(sup)
        # Not finished (no READY=1 from the supervisor) until ready_delay has passed. The
        # margin only allows for this thread waking late; a READY=1 seen before the
        # deadline was sent before it.
        with self.assertRaises(AssertionError):
            sup.notify.wait_for(lambda m: "READY=1" in m.split("\n"),
                                timeout=started + self.DELAY - 0.1 - time.monotonic(), what="READY=1")
        self.assertIsNone(client.poll(), "the upgrade finished before ready_delay")
        sup.wait_ready(timeout=20)
        finished = time.monotonic()
        out, err = client.communicate(timeout=30)
        self.assertEqual(client.returncode, 0, out + err)
        self.assertGreaterEqual(finished - started, self.DELAY)
        self.assertLess(finished - started, self.DELAY + 10, "ready long after ready_delay")
        # The worker the supervisor started after the upgrade began is the one that counted.
        workers = sup.get_property("web", "Workers")
        new = [w for w in workers if w[1] == 2]
        self.assertEqual([w[2] for w in new], ["ready"], workers)
        self.assertGreaterEqual(new[0][4] / 1e6, started)
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        print("ready = delay (%.1f s): generation 2 ready %.2f s after the upgrade began" %
              (self.DELAY, finished - started))

    def test_exit_before_delay_rolls_back(self):
        port = lib.free_port()
        sup, v1 = self.start_web(port)
        bad = lib.make_target(os.path.join(self.dir, "bad"), "v2", "--no-ready", "--crash-after", "300")
        client = start_client(self, sup, "-i", "web", "-u", bad)
        started = upgrade_started(sup)
        sup.wait_status(r"Upgrade to generation 2 failed: .*; serving generation 1")
        failed = time.monotonic()
        out, err = client.communicate(timeout=30)
        self.assertEqual(client.returncode, 1, out + err)
        self.assertRegex(err, r"exited with status 1 before it was ready")
        # Rolled back on the exit, not at the end of ready_delay.
        self.assertLess(failed - started, self.DELAY)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(sup.get_property("web", "Target"), os.path.realpath(v1))
        self.assertEqual(sorted(set(w[1] for w in sup.get_property("web", "Workers"))), [1])
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        print("ready = delay: a worker that exited after 300 ms rolled back %.2f s after the upgrade began" %
              (failed - started))


if __name__ == "__main__":
    lib.main()
