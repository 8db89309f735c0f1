#!/usr/bin/env python3
"""Without a delegated cgroup (standalone), what a worker leaves in its process group is
killed when the worker exits: a child that ignores the drain signal does not outlive a
worker that drained, nor one that crashed (systemd's SIGKILL of a unit's leftovers, done
for each worker's process group). A daemon that called setsid() leaves the group; only a
cgroup catches it (tests/systemd, Cgroups)."""

import os
import signal

import lib
from test_upgrade import notify_config


def forking_target(directory, version, pids):
    """A worker that forks a child which stays in its process group and ignores SIGTERM
    (the drain signal), writes the child's pid to PIDS, then serves as VERSION."""
    os.makedirs(directory, exist_ok=True)
    return lib.write_file(os.path.join(directory, "server-" + version), (
        "#!/bin/sh\n"
        "sh -c 'trap \"\" TERM; exec sleep 1000' &\n"
        "echo $! >> '%s'\n"
        "exec '%s' --version '%s'\n") % (pids, lib.HTTPD, version), 0o755)


class ProcessGroup(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.pids = os.path.join(self.dir, "children")
        self.children = []

    def tearDown(self):
        # A failed check must not leave the very processes this file is about.
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super().tearDown()

    def child_of(self, count):
        self.children = lib.read_pids(self.pids, count)
        return self.children[count - 1]

    def test_children_die_with_their_worker(self):
        port = lib.free_port()
        v1 = forking_target(os.path.join(self.dir, "a"), "v1", self.pids)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "pg", "--config", notify_config(self, drain_timeout="60s"), "-s", v1,
                         "-p", str(port), "-f", "1")
        worker = lib.started_workers(sup)[0]
        child = self.child_of(1)
        self.assertEqual(os.getpgid(child), worker)

        # A crash: the child goes with the worker, and the slot's new worker has its own.
        os.kill(worker, signal.SIGKILL)
        self.assert_pids_gone([child])
        sup.wait_status(r"^Serving generation 1 .*: 1/1 ready")
        worker = lib.started_workers(sup)[-1]
        child = self.child_of(2)
        self.assertEqual(os.getpgid(child), worker)

        # A drain: the worker exits at SIGTERM, its child ignores it and is killed at the
        # worker's exit, not at drain_timeout (60 s).
        sup.client("-u", v2, check=0)
        self.assert_pids_gone([worker, child], timeout=20)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(sup.stop(), 0)


if __name__ == "__main__":
    lib.main()
