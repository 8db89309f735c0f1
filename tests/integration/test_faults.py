#!/usr/bin/env python3
"""The fault matrix, standalone: each fault under continuous load, with the failed-request
count reported. A crash loop, a state directory that cannot be written, running out of
file descriptors, and running out of processes must each give a clear error while the
running code goes on serving with no failed request and no process left behind."""

import os
import shutil
import subprocess

import lib
from test_upgrade import notify_config


def worker_slot(pid):
    """LIVESWAP_WORKER of a running worker, from its environment."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        for item in f.read().split(b"\0"):
            if item.startswith(b"LIVESWAP_WORKER="):
                return int(item.split(b"=", 1)[1])
    return None


class Faults(lib.TestCase):
    def report(self, name, result):
        print("%s: %s requests, %s failed" % (name, result["requests"], result["failed"]))

    def test_crash_loop_outside_an_upgrade(self):
        """A worker that keeps crashing is restarted with back-off shown in STATUS=, while
        the others serve; once it starts again, full strength comes back."""
        port = lib.free_port()
        flag = os.path.join(self.dir, "break-slot-1")
        target = lib.write_file(os.path.join(self.dir, "app"), """#!/bin/sh
if [ "$LIVESWAP_WORKER" = 1 ] && [ -e '%s' ]; then echo "slot 1 cannot start" >&2; exit 3; fi
exec '%s' --version v1
""" % (flag, lib.HTTPD), 0o755)
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", target, "-p", str(port),
                         "-f", "4")
        lib.write_file(flag, "")
        victim = next(w[0] for w in sup.get_property("web", "Workers") if worker_slot(w[0]) == 1)
        # The kill itself takes the victim's in-flight requests with it (an application
        # crash no supervisor can hide), so the load starts once the loop is under way.
        os.kill(victim, 9)
        sup.wait_status(r"worker 1 crashed 2 times in a row")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8)
        status = sup.wait_status(r"Serving generation 1 .*: 3/4 ready; worker 1 crashed 4 times in a row, "
                                 r"restarting in [0-9.]+s")
        self.assertIsNone(sup.proc.poll())
        os.unlink(flag)
        sup.wait_status(r"Serving generation 1 .*: 4/4 ready$", timeout=60)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertIn("exited with status 3", sup.output())
        self.report("crash loop", result)
        print("status during the loop: %s" % status)

    def test_old_worker_dies_mid_drain(self):
        """Old workers that die at once on SIGTERM, with connections open (a naive
        server): an exit while draining is what draining is for, so the upgrade goes on,
        nothing is respawned or rolled back, and only what those workers held at that
        instant is lost."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1", "--die-on-term")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "4")
        old = [w[0] for w in sup.get_property("web", "Workers")]
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="keepalive")
        sup.client("-i", "web", "-u", v2, check=0)
        sup.wait_status(r"^Serving generation 2 .*4/4 ready$")
        self.assert_pids_gone(old)
        result = load.stop()
        workers = sup.get_property("web", "Workers")
        self.assertEqual(sorted(set(w[1] for w in workers)), [2], workers)
        self.assertEqual(len(workers), 4)
        self.assertEqual(sup.get_property("web", "LastResult"), "success")
        self.assertEqual(sup.output().count("was killed by signal TERM while draining"), 4, sup.output())
        # Each client has at most one request in flight on the worker that dies under it.
        self.assertLessEqual(int(result["failed"]), 8, result["_raw"])
        self.assertGreater(int(result["ok"]), 0)
        self.report("old workers die mid-drain", result)

    def refused_on_unusable_state(self, name, script, cause, seed_head=True):
        """A supervisor in a private mount namespace where SCRIPT (run with the state
        directory and v1's path) made its state directory unusable, then execs liveswap:
        under load, an upgrade is refused up front naming CAUSE, nothing changes, and the
        old HEAD is intact (read through the supervisor's own mount namespace)."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare for a private mount")
        port = lib.free_port()
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        head = os.path.join(state, "HEAD")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        if seed_head:
            lib.write_file(head, os.path.realpath(v1) + "\n")
        # It execs liveswap, so the pid is the supervisor's. -s v2: HEAD (v1) must win.
        sup = lib.Supervisor(self, ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                    script + ' && shift 2 && exec "$@"', "sh", state, os.path.realpath(v1),
                                    lib.LIVESWAP, "--instance", "web", "--config", notify_config(self),
                                    "-s", v2, "-p", str(port), "-H", head])
        sup.wait_ready()
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n", "HEAD did not win")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8)
        p = sup.client("-i", "web", "-u", v2)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("nothing changed: cannot record it in %s: %s" % (head, cause), p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        with open("/proc/%d/root%s" % (sup.proc.pid, head)) as f:
            self.assertEqual(f.read(), os.path.realpath(v1) + "\n")
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result)), ["v1"])
        self.report(name, result)

    def test_unwritable_state_refuses_the_upgrade(self):
        """HEAD lives on a read-only mount."""
        self.refused_on_unusable_state("read-only state", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"',
                                       "Read-only file system")

    def test_full_state_directory_refuses_the_upgrade(self):
        """HEAD lives on a full file system (a 64 KiB tmpfs, filled)."""
        self.refused_on_unusable_state(
            "full state directory", 'mount -t tmpfs -o size=64k tmpfs "$1" && printf "%s\\n" "$2" > "$1/HEAD" && '
            '{ dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null; [ -s "$1/filler" ]; }',
            "No space left on device", seed_head=False)

    def test_out_of_file_descriptors(self):
        """RLIMIT_NOFILE too low for a blue-green upgrade's new workers: the upgrade fails
        with EMFILE in words and rolls back; the old workers serve throughout."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, strategy="blue-green")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "4")
        # Lower the limit of the running supervisor to what it uses now plus one worker's
        # worth (a control socket and a pidfd each): the second new worker cannot start.
        used = len(os.listdir("/proc/%d/fd" % sup.proc.pid))
        subprocess.run(["prlimit", "--pid", str(sup.proc.pid), "--nofile=%d:" % (used + 3)], check=True)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8)
        p = sup.client("-i", "web", "-u", v2)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("Too many open files", p.stderr)
        sup.wait_status(r"Upgrade to generation 2 failed: .*Too many open files.*; serving generation 1 .*4/4 ready")
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result)), ["v1"], result["_raw"])
        self.assertIsNone(sup.proc.poll())
        # With the limit back, the same upgrade goes through.
        subprocess.run(["prlimit", "--pid", str(sup.proc.pid), "--nofile=1024:"], check=True)
        sup.client("-i", "web", "-u", v2, check=0)
        self.report("fd exhaustion", result)

    def test_out_of_processes(self):
        """fork() fails (RLIMIT_NPROC of an unprivileged supervisor): the upgrade fails with
        the cause in words and rolls back; serving goes on."""
        if os.geteuid() != 0:
            self.skipTest("needs root to run the supervisor as nobody")
        port = lib.free_port()
        os.chmod(self.dir, 0o755)
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, strategy="blue-green")
        # nobody owns no other process here; count them anyway so the limit is exact.
        others = len(subprocess.run(["pgrep", "-u", "nobody"], capture_output=True, text=True).stdout.split())
        state = os.path.join(self.dir, "state")

        # Room for the supervisor, its 2 workers and one more: blue-green needs two more.
        # (Lowering one's own soft limit needs no privilege; prlimit then execs liveswap.)
        sup = lib.Supervisor(self, ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    "prlimit", "--nproc=%d:" % (others + 4), lib.LIVESWAP, "--instance", "web", "--config", conf, "-s", v1, "-p", str(port),
                                    "-f", "2"], env={"XDG_STATE_HOME": state}, prepare=lib.hand_to_nobody(state))
        sup.wait_ready()
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8)
        p = sup.client("-i", "web", "-u", v2)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("Resource temporarily unavailable", p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 1)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(list(lib.versions(result)), ["v1"], result["_raw"])
        self.assertIsNone(sup.proc.poll())
        self.report("fork failure", result)


if __name__ == "__main__":
    lib.main()
