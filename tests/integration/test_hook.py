#!/usr/bin/env python3
"""The pre-upgrade hook: go on, refuse, replace the target, time out."""

import os
import signal
import time

import lib
from test_upgrade import notify_config


class Hook(lib.TestCase):
    def setup_web(self, hook_body, timeout="5s"):
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        hook = lib.write_file(os.path.join(self.dir, "hook"), "#!/bin/sh\n" + hook_body, 0o755)
        conf = notify_config(self, pre_upgrade_timeout=timeout)
        self.sup = self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(self.port),
                              "--pre-upgrade", hook)
        return self.sup

    def test_hook_sees_target_and_environment(self):
        record = os.path.join(self.dir, "record")
        sup = self.setup_web('echo "$1 $LIVESWAP_INSTANCE $LIVESWAP_TARGET $LIVESWAP_PREVIOUS" > %s\n' % record)
        sup.client("-i", "web", "-u", self.v2, check=0)
        v1, v2 = os.path.realpath(self.v1), os.path.realpath(self.v2)
        with open(record) as f:
            self.assertEqual(f.read().strip(), "%s web %s %s" % (v2, v2, v1))
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v2\n")

    def test_hook_refuses(self):
        sup = self.setup_web('echo checking >&2\necho "migration 42 failed" >&2\nexit 3\n')
        p = sup.client("-i", "web", "-u", self.v2)
        self.assertEqual(p.returncode, 1)
        self.assertIn("migration 42 failed", p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")

    def test_hook_replaces_target(self):
        v3 = lib.make_target(os.path.join(self.dir, "c"), "v3")
        sup = self.setup_web('echo building\necho %s\n' % v3)
        sup.client("-i", "web", "-u", self.v2, check=0)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v3\n")

    def test_hook_prints_bad_target(self):
        sup = self.setup_web('echo /nonexistent/build\n')
        p = sup.client("-i", "web", "-u", self.v2)
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid target", p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)

    def refused_under_load(self, name, hook_body, error, reason, timeout="5s", runs=2):
        """The hook fault of HOOK_BODY refuses an upgrade, asked RUNS times (over D-Bus for
        the error name, then with `liveswap -u` for the exit status), while 8 clients load
        2 workers: no failed request, the reason everywhere, nothing changed (generation,
        target, workers, HEAD and PREVIOUS)."""
        self.port = lib.free_port()
        v0 = lib.make_target(os.path.join(self.dir, "z"), "v0")
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        head = lib.default_head(self, "web")
        lib.deploy_head(head, self.v1, v0)
        hook = lib.write_file(os.path.join(self.dir, "hook"), "#!/bin/sh\n" + hook_body, 0o755)
        conf = notify_config(self, pre_upgrade_timeout=timeout)
        sup = self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(self.port), "-f", "2",
                         "--pre-upgrade", hook)
        files = lib.head_files(head)
        props = ("Generation", "Target", "PreviousTarget", "State", "Workers")
        before = {p: sup.get_property("web", p) for p in props}
        self.assertEqual((before["Generation"], before["Target"], before["PreviousTarget"]),
                         (1, os.path.realpath(self.v1), os.path.realpath(v0)))
        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=8, mode="mixed")
        lib.wait_load(self.port, 4)  # the 4 kept-alive clients are connected

        out = lib.callstorm(sup.env, lib.private_bus(sup, "web"), "Upgrade", "s", self.v2)
        self.assertEqual(list(out), [error], out)
        self.assertRegex(out[error][1], r"^web: upgrade to generation 2 failed, still serving generation 1: " + reason)
        sup.wait_status(r"^Upgrade to generation 2 failed: %s.*; serving generation 1 .*2/2 ready" % reason)
        if runs > 1:
            p = sup.client("-i", "web", "-u", self.v2)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertRegex(p.stderr, reason)

        self.assertRegex(sup.get_property("web", "LastResult"), "^failed: " + reason)
        self.assertEqual({p: sup.get_property("web", p) for p in props}, before)
        self.assertEqual(lib.head_files(head), files, "HEAD or PREVIOUS was rewritten")
        self.assertEqual(sorted(lib.started_workers(sup)), sorted(w[0] for w in before["Workers"]),
                         "a worker was started")
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result)), ["v1"], result["_raw"])
        self.assertIsNone(sup.proc.poll())
        print("%s: %s requests, %s failed, HEAD intact, generation 1" % (name, result["requests"], result["failed"]))
        return sup

    def test_hook_fails_under_load(self):
        pids = os.path.join(self.dir, "hook-pids")
        # It leaves a child behind (holding its pipes, too): that goes with the hook.
        self.refused_under_load("hook exits 3", 'echo $$ >> %s\nsleep 60 &\necho $! >> %s\necho checking >&2\n'
                                'echo "migration 42 failed" >&2\nexit 3\n' % (pids, pids),
                                "org.liveswap1.Error.HookFailed", "pre-upgrade hook failed: migration 42 failed")
        self.assert_pids_gone(lib.read_pids(pids, 4))

    def test_hook_prints_bad_target_under_load(self):
        # HookFailed rather than InvalidTarget: the caller's own target was valid; what
        # was wrong is the hook's answer (the reason names the path it gave).
        self.refused_under_load("hook prints a bad target", "echo building\necho /nonexistent/build\n",
                                "org.liveswap1.Error.HookFailed",
                                "pre-upgrade hook gave an invalid target: .*/nonexistent/build")

    def test_hung_hook_is_killed_with_its_children(self):
        """A hook stuck past pre_upgrade_timeout, with a child of its own: the supervisor
        kills its whole process group, so neither is left behind."""
        pids = os.path.join(self.dir, "hook-pids")
        self.refused_under_load("hook hangs past 1000 ms", "sleep 60 &\necho $! >> %s\necho $$ >> %s\nwait\n"
                                % (pids, pids), "org.liveswap1.Error.HookFailed",
                                "pre-upgrade hook timed out after 1000 ms", timeout="1s")
        hung = lib.read_pids(pids, 4)  # child and hook, of each of the two runs
        self.assertEqual(len(set(hung)), 4, hung)
        self.assert_pids_gone(hung)

    def test_a_hook_held_by_a_tracer_does_not_stop_the_supervisor(self):
        """A hook killed at its timeout while a tracer holds it (a debugger attached to
        it) is a zombie its parent cannot reap until the tracer lets go. The supervisor
        gives up on it after a second and goes on: the upgrade fails as a timeout, in
        bounded time, and the supervisor answers meanwhile. (It used to wait in waitpid()
        for as long as the tracer held on, its event loop stopped.)"""
        tracer_file = os.path.join(self.dir, "tracer.pid")
        # Its tracer holds it for a minute and never waits for it: killed, the hook stays a
        # zombie that only the tracer could let go of.
        hook = lib.write_file(os.path.join(self.dir, "traced-hook"),
                              lib.traced_program(tracer_file, "time.sleep(60)", "time.sleep(60)"), 0o755)
        self.port = lib.free_port()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, pre_upgrade_timeout="1s")
        sup = self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(self.port),
                         "--pre-upgrade", hook)

        def stop_tracer():
            try:
                with open(tracer_file) as f:
                    os.kill(int(f.read()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        self.addCleanup(stop_tracer)
        started = time.monotonic()
        p = sup.client("-i", "web", "-u", self.v2)
        took = time.monotonic() - started
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("timed out after 1000 ms", p.stderr)
        # 1 s of timeout, 1 s of waiting for the zombie; the tracer holds on for 60 s.
        self.assertLess(took, 15, "the supervisor waited for the tracer")
        self.assertTrue(os.path.exists(tracer_file), "the hook was never traced")
        sup.wait_output("is still there 1000 ms after SIGKILL (a zombie traced by pid")
        self.assertEqual(sup.get_property("web", "State"), "running")
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        stop_tracer()
        self.assertEqual(sup.stop(), 0)

    def test_hook_times_out(self):
        sup = self.setup_web('exec sleep 60\n', timeout="500ms")
        p = sup.client("-i", "web", "-u", self.v2)
        self.assertEqual(p.returncode, 1)
        self.assertIn("timed out after 500 ms", p.stderr)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")


if __name__ == "__main__":
    lib.main()
