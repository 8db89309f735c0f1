#!/usr/bin/env python3
"""Who gets which signal when a worker drains: a worker stopped with SIGSTOP is resumed
(SIGCONT after the drain signal, as systemd does after SIGTERM) and drains at once
instead of sitting out drain_timeout; kill_mode=mixed sends the drain signal to a
prefork master only, kill_mode=group (the default) to its whole process group."""

import os
import signal
import sys
import time

import lib
from test_upgrade import notify_config


def process_state(pid):
    """The one-letter state of /proc/PID/stat ("T" when stopped), or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class StoppedWorker(lib.TestCase):
    def test_stopped_worker_drains_at_once(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        # A long drain_timeout: without SIGCONT the stopped worker would be SIGKILLed
        # only after 60 s.
        conf = notify_config(self, drain_timeout="60s")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")
        old = sup.get_property("web", "Workers")[0][0]
        os.kill(old, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while process_state(old) != "T":
            self.assertLess(time.monotonic(), deadline, "worker %d never stopped" % old)
            time.sleep(0.01)  # the kernel offers no event for another process's stop

        started = time.monotonic()
        sup.client("-i", "web", "-u", v2, check=0)
        # The old worker is gone once the status has no "draining" left.
        sup.wait_status(r"^Serving generation 2 .*1/1 ready$", timeout=20)
        elapsed = time.monotonic() - started
        self.assert_pids_gone([old], timeout=5)
        out = sup.output()
        self.assertIn("Worker %d (generation 1, slot 0) exited with status 0 after draining" % old, out)
        self.assertNotIn("Killing worker %d" % old, out)
        # The SIGCONT is not logged as a second drain.
        self.assertEqual(out.count("Draining worker %d" % old), 1, out)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        print("stopped worker drained %.2f s after the upgrade began (drain_timeout 60 s)" % elapsed)


# A prefork server in miniature: the master forks one child into its process group and,
# like gunicorn's arbiter, tells it to stop with a signal of its own (SIGUSR1 here) when
# it gets SIGTERM, then waits for it. Each process records every signal it gets as a
# file ROLE-SIGNAME in RECORD_DIR.
PREFORK = r"""#!%s
import os, signal, sys, time
record_dir = sys.argv[1]
child_expects_cont = sys.argv[2] == "group"
role = "master"
seen = set()
def record(signum, frame):
    name = signal.Signals(signum).name
    seen.add(signum)
    os.close(os.open(os.path.join(record_dir, "%%s-%%s" %% (role, name)), os.O_CREAT | os.O_WRONLY, 0o644))
def wait_for(signals):
    # liveswap sends SIGCONT right after the drain signal, but the process may run in
    # between: one that exited on the first would miss the second. Wait for all that
    # are expected, for at most 10 s (a poll: pause() would race a signal that comes
    # between the check and the call). A signal that never came shows as "ROLE-timeout".
    deadline = time.monotonic() + 10
    while not signals <= seen:
        if time.monotonic() > deadline:
            os.close(os.open(os.path.join(record_dir, role + "-timeout"), os.O_CREAT | os.O_WRONLY, 0o644))
            return
        time.sleep(0.01)
for s in (signal.SIGTERM, signal.SIGCONT, signal.SIGUSR1):
    signal.signal(s, record)
child = os.fork()
if child == 0:
    role = "child"
    wait_for({signal.SIGUSR1, signal.SIGTERM, signal.SIGCONT} if child_expects_cont else {signal.SIGUSR1})
    os._exit(0)
wait_for({signal.SIGTERM, signal.SIGCONT})
try:
    os.kill(child, signal.SIGUSR1)
except ProcessLookupError:
    pass
os.waitpid(child, 0)
sys.exit(0)
""" % sys.executable


class KillMode(lib.TestCase):
    def run_prefork(self, kill_mode):
        port = lib.free_port()
        record_dir = os.path.join(self.dir, "signals")
        os.mkdir(record_dir)
        script = lib.write_file(os.path.join(self.dir, "prefork.py"), PREFORK, 0o755)
        old = lib.write_file(os.path.join(self.dir, "old"), "#!/bin/sh\nexec %s %s %s\n" % (script, record_dir, kill_mode or "group"), 0o755)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        body = "[upgrade]\nready = delay\nready_delay = 500ms\ndrain_timeout = 30s\n"
        if kill_mode:
            body += "kill_mode = %s\n" % kill_mode
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"), body)
        sup = self.start("--instance", "web", "--config", conf, "-s", old, "-p", str(port), "-f", "1")
        master = sup.get_property("web", "Workers")[0][0]
        sup.client("-i", "web", "-u", v2, check=0)
        # The master waits for its child before it exits: once it is gone, both have
        # recorded every signal they got.
        sup.wait_status(r"^Serving generation 2 .*1/1 ready$", timeout=20)
        self.assertIn("Worker %d (generation 1, slot 0) exited with status 0 after draining" % master,
                      sup.output())
        return sorted(os.listdir(record_dir)), sup, master

    def test_group_signals_every_process(self):
        got, _, _ = self.run_prefork(None)  # the default
        self.assertIn("master-SIGTERM", got)
        self.assertIn("master-SIGCONT", got)
        self.assertIn("child-SIGTERM", got)
        self.assertIn("child-SIGCONT", got)

    def test_mixed_signals_the_master_only(self):
        got, sup, master = self.run_prefork("mixed")
        # The master got both; its child heard only from its master.
        self.assertEqual(got, ["child-SIGUSR1", "master-SIGCONT", "master-SIGTERM"])
        self.assertIn("Draining worker %d (TERM to its main process only)" % master, sup.output())


if __name__ == "__main__":
    lib.main()
