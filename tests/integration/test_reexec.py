#!/usr/bin/env python3
"""Reexec (contract section 11): the supervisor replaces its own program in place. The
same process, sockets and workers carry on under load with no failed request; deadlines,
back-off and exits during the exec carry over; a program that cannot run is refused and
the old image goes on; an unreadable hand-over drains the previous workers cleanly."""

import os
import re
import signal
import subprocess
import tempfile
import time

import lib
from test_upgrade import notify_config

LIVESWAPCTL = os.environ.get("LIVESWAPCTL", "liveswapctl")

# A worker that serves like the example server and, on the control message "exit-in-exec",
# waits until its supervisor has exec'd (its command line then carries --handover) and
# exits with status 7: an exit the old image cannot have seen.
EXITING_WORKER = r"""#!%s
import os, socket, sys, threading, time
listener = socket.socket(fileno=3)
def serve():
    while True:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nvx\n")
threading.Thread(target=serve, daemon=True).start()
control = socket.socket(fileno=int(os.environ["LIVESWAP_CONTROL_FD"]))
count = 0
while True:
    text = control.recv(4096)
    if not text:
        os._exit(0)
    if text.strip() == b"exit-in-exec":
        for _ in range(30000):
            with open("/proc/%%d/cmdline" %% os.getppid(), "rb") as f:
                if b"--handover" in f.read():
                    os._exit(7)
            time.sleep(0.001)
        os._exit(8)
"""


def worker_slot(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    return int(env[b"LIVESWAP_WORKER"])


def worker_pids(sup, instance="web"):
    return sorted(w[0] for w in sup.get_property(instance, "Workers"))


class Reexec(lib.TestCase):
    def ctl(self, sup, *args, timeout=120):
        return subprocess.run([LIVESWAPCTL, "-i", "web"] + list(args), env=sup.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def reexec(self, sup, expect_rc=0):
        p = self.ctl(sup, "reexec")
        self.assertEqual(p.returncode, expect_rc, "reexec: %s%s\n%s" % (p.stdout, p.stderr, sup.output()[-4000:]))
        return p

    def properties(self, sup):
        return {name: sup.get_property("web", name)
                for name in ("Generation", "Target", "PreviousTarget", "State", "DesiredWorkers", "ReadyWorkers",
                             "Workers", "LastResult", "Instance")}

    def test_five_reexecs_under_load(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "3")
        before = self.properties(sup)
        fds = lib.settled_fd_count(sup.proc.pid)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        lib.wait_load(port, 4)
        for i in range(5):
            p = self.reexec(sup)
            self.assertRegex(p.stdout, r"^web: re-executed: liveswap \S+ -> liveswap \S+\n$")
            self.assertIsNone(sup.proc.poll())
            self.assertEqual(self.properties(sup), before, "after reexec %d" % (i + 1))
        self.assertEqual(sup.output().count("took over from liveswap"), 5)
        # No fd and no worker gained or lost across five execs.
        self.assertEqual(lib.settled_fd_count(sup.proc.pid), fds)
        # Afterwards an upgrade works, and a rollback returns to the target from before.
        sup.client("-i", "web", "-u", v2, check=0)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        p = self.ctl(sup, "rollback")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sup.get_property("web", "Target"), before["Target"])
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(sup.stop(), 0)
        print("5 reexecs, an upgrade and a rollback: %s requests, %s failed" % (result["requests"], result["failed"]))

    def test_drain_deadline_fires_after_reexec(self):
        port = lib.free_port()
        stubborn = lib.make_target(os.path.join(self.dir, "a"), "v1", "--ignore-term")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self, drain_timeout="4s", stable_time="0"),
                         "-s", stubborn, "-p", str(port), "-f", "1")
        old = worker_pids(sup)
        sup.client("-i", "web", "-u", v2, check=0)
        drained = time.monotonic()
        sup.wait_output("Draining worker %d" % old[0])
        self.assertEqual(sup.get_property("web", "DrainingWorkers"), 1)
        self.reexec(sup)
        self.assertEqual(sup.get_property("web", "DrainingWorkers"), 1)
        # The SIGKILL at drain_timeout comes from the new image's timer.
        self.assert_pids_gone(old, timeout=15)
        elapsed = time.monotonic() - drained
        self.assertGreaterEqual(elapsed, 3.5)
        self.assertLess(elapsed, 12)
        out = sup.output()
        self.assertLess(out.index("took over from"), out.index("Killing worker %d" % old[0]))

    def test_crash_loop_backoff_carries_over(self):
        port = lib.free_port()
        flag = os.path.join(self.dir, "break-slot-1")
        target = lib.write_file(os.path.join(self.dir, "app"), """#!/bin/sh
if [ "$LIVESWAP_WORKER" = 1 ] && [ -e '%s' ]; then exit 3; fi
exec '%s' --version v1
""" % (flag, lib.HTTPD), 0o755)
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", target, "-p", str(port),
                         "-f", "2")
        lib.write_file(flag, "")
        victim = next(w[0] for w in sup.get_property("web", "Workers") if worker_slot(w[0]) == 1)
        os.kill(victim, 9)
        sup.wait_status(r"worker 1 crashed 4 times in a row")
        self.reexec(sup)
        # The count goes on from where it was (a fresh engine would say 1), and so does
        # the back-off (after 4 crashes: 800 ms and more, never 100 ms again).
        status = sup.wait_status(r"worker 1 crashed [5-9] times in a row, restarting in")
        self.assertNotRegex(status, r"crashed [1-3] times")
        os.unlink(flag)
        sup.wait_status(r"Serving generation 1 .*: 2/2 ready$", timeout=60)

    def test_worker_exiting_during_the_exec_is_replaced(self):
        port = lib.free_port()
        target = lib.write_file(os.path.join(self.dir, "app"), EXITING_WORKER % "/usr/bin/python3", 0o755)
        sup = self.start("--instance", "web", "--config", notify_config(self, ready="delay", ready_delay="200ms"),
                         "-s", target, "-p", str(port), "-f", "2")
        before = worker_pids(sup)
        sup.client("-i", "web", "-m", "exit-in-exec", check=0)
        self.reexec(sup)
        sup.wait_output("exited with status 7")
        # Full strength again: a STATUS= of the new image's after the replacements.
        full = re.compile(r"^STATUS=Serving generation 1 .*: 2/2 ready$", re.M)
        sup.notify.wait_for(lambda m: "STATUS=Re-executed" in m, what="STATUS=Re-executed")
        sup.notify.wait_for(lambda m: full.search(m), what="2/2 ready after the replacements")
        after = worker_pids(sup)
        self.assertEqual(len(after), 2)
        self.assertEqual(len(set(after) - set(before)), 2, "both workers exited in the exec and were replaced")
        out = sup.output()
        self.assertLess(out.index("took over from"), out.index("exited with status 7"))
        self.assertNotIn("exited with status 8", out)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "vx\n")
        self.assertEqual(sup.stop(), 0)

    def test_missing_program_is_refused(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "-s", v1, "-p", str(port), "-f", "1",
                         env={"LIVESWAP_PROGRAM": os.path.join(self.dir, "no-such-liveswap")})
        before = worker_pids(sup)
        out = lib.callstorm(sup.env, lib.private_bus(sup, "web"), "Reexecute")
        self.assertEqual(list(out), ["org.liveswap1.Error.ReexecFailed"], out)
        p = self.reexec(sup, expect_rc=1)
        self.assertIn("no-such-liveswap", p.stderr)
        self.assertEqual(worker_pids(sup), before)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertNotIn("took over from", sup.output())

    def test_busy_during_an_upgrade(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        go = os.path.join(self.dir, "go")
        hook = lib.write_file(os.path.join(self.dir, "hook"),
                              "#!/bin/sh\ni=0\nwhile [ ! -e '%s' ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n"
                              % go, 0o755)
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "1",
                         "--pre-upgrade", hook)
        p = self.ctl(sup, "--no-wait", "upgrade", v2)
        self.assertEqual(p.returncode, 0, p.stderr)
        sup.wait_output("Running the pre-upgrade hook")
        out = lib.callstorm(sup.env, lib.private_bus(sup, "web"), "Reexecute")
        self.assertEqual(list(out), ["org.liveswap1.Error.Busy"], out)
        p = self.reexec(sup, expect_rc=1)
        self.assertIn("upgrade is in progress", p.stderr)
        lib.write_file(go, "")
        sup.wait_status(r"Serving generation 2 .*1/1 ready$")
        self.reexec(sup)

    def test_sigusr2(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "-s", v1, "-p", str(port), "-f", "2")
        before = worker_pids(sup)
        os.kill(sup.proc.pid, signal.SIGUSR2)
        sup.wait_output("took over from liveswap")
        sup.notify.wait_for(lambda m: "STATUS=Re-executed liveswap" in m, what="STATUS=Re-executed")
        self.assertEqual(worker_pids(sup), before)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")

    def test_unreadable_handover_drains_the_old_workers(self):
        """A hand-over in a format this program does not read (as after a downgrade): the
        new image starts afresh on the same sockets and drains the previous image's
        workers once its own are ready. No request fails, nothing is orphaned."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "2",
                         env={"LIVESWAP_TEST_HANDOVER_VERSION": "999"})
        old = worker_pids(sup)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="mixed")
        lib.wait_load(port, 4)
        self.reexec(sup)
        sup.wait_output("this program reads versions")
        sup.wait_output("The previous image's workers are gone")
        self.assert_pids_gone(old)
        new = worker_pids(sup)
        self.assertEqual(len(new), 2)
        self.assertFalse(set(new) & set(old))
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        self.assertIsNone(sup.proc.poll())
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(sup.stop(), 0)
        self.assert_pids_gone(old + new)

    def test_reexec_into_another_build(self):
        """From this build to a second build of the same tree with another version string
        (an older hand-over read by a newer program): Version changes, nothing else."""
        source = os.environ.get("LIVESWAP_SOURCE_ROOT")
        if not source:
            self.skipTest("LIVESWAP_SOURCE_ROOT is not set (run through meson test)")
        build = tempfile.mkdtemp(prefix="liveswap-build-v2-")
        self.addCleanup(subprocess.run, ["rm", "-rf", build])
        options = ["-Dversion-suffix=+reexec-test", "-Dtests=disabled", "-Dman-pages=disabled"]
        sanitize = os.environ.get("LIVESWAP_SANITIZE", "none")
        if sanitize and sanitize != "none":
            options += ["-Db_sanitize=" + sanitize, "-Db_lundef=false"]
        for cmd in (["meson", "setup", build, source] + options, ["ninja", "-C", build, "src/liveswap"]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        other = os.path.join(build, "src", "liveswap")
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "-s", v1, "-p", str(port), "-f", "2", env={"LIVESWAP_PROGRAM": other})
        version = sup.get_property("web", "Version")
        before = worker_pids(sup)
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="mixed")
        p = self.reexec(sup)
        self.assertEqual(p.stdout, "web: re-executed: liveswap %s -> liveswap %s+reexec-test\n" % (version, version))
        self.assertEqual(sup.get_property("web", "Version"), version + "+reexec-test")
        self.assertEqual(worker_pids(sup), before)
        self.assertEqual(os.readlink("/proc/%d/exe" % sup.proc.pid), other)
        result = load.stop()
        self.assert_no_failures(result, sup)


if __name__ == "__main__":
    lib.main()
