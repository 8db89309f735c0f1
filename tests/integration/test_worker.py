#!/usr/bin/env python3
"""What a worker sees: its fds, its environment (contract section 2)."""

import concurrent.futures
import os
import re
import subprocess
import sys
import time

import lib
from test_upgrade import notify_config, proc_environ, start_client, workers_of

# Sends READY=1 to $NOTIFY_SOCKET from its own pid, then waits as sd_notify_barrier()
# does: the supervisor closes the fd passed with BARRIER=1 once it has read it, so when
# the pipe reads EOF the READY=1 before it has been handled. Writes "PID PGID RESULT".
READY_SENDER = r"""
import array, os, select, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1")
r, w = os.pipe()
s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
os.close(w)
done = select.select([r], [], [], 10)[0]
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d %d %s" % (os.getpid(), os.getpgrp(), "handled" if done else "timeout"))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def socket_inode(pid, fd):
    link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    if not link.startswith("socket:"):
        raise AssertionError("fd %d of %d is %s, not a socket" % (fd, pid, link))
    return link


class Worker(lib.TestCase):
    def test_only_expected_fds(self):
        port = lib.free_port()
        sock_path = os.path.join(self.dir, "web.sock")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port),
                         "--listen", sock_path, "-f", "1")
        # Two listening sockets: fds 3 and 4; the control socket: fd 5.
        status, _, body = lib.http_get(("127.0.0.1", port), "/fds")
        self.assertEqual(status, 200)
        self.assertEqual(body.split(), ["0", "1", "2", "3", "4", "5"])
        self.assertEqual(lib.http_get(sock_path, "/")[2], "v1\n")

    def test_only_expected_fds_after_upgrade(self):
        """Generation 2 is spawned while the supervisor holds more than at start (a bus
        connection from the upgrading client, generation 1's control sockets): none of
        it leaks into a worker."""
        port = lib.free_port()
        sock_path = os.path.join(self.dir, "web.sock")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port),
                         "--listen", sock_path, "-f", "2")
        old = workers_of(sup, "web", 1)
        sup.client("-i", "web", "-u", v2, check=0)
        new = workers_of(sup, "web", 2)
        self.assertEqual(len(new), 2, sup.get_property("web", "Workers"))
        # Each new worker's fds as it saw them before it opened any (GET /fds), over new
        # connections until both have answered. The example worker watches the listener
        # with EPOLLEXCLUSIVE, so the kernel wakes the first idle worker every time: one
        # request after another would all go to the same one. Eight at once keep it busy,
        # and a busy worker's connections go to the other.
        seen = {}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in range(60):
                for status, headers, body in pool.map(lambda _: lib.http_get(("127.0.0.1", port), "/fds"),
                                                      range(8)):
                    self.assertEqual(status, 200)
                    if headers["x-generation"] == "2":
                        seen[int(headers["x-pid"])] = body.split()
                if len(seen) == 2:
                    break
        self.assertEqual(sorted(seen), sorted(new), "not every generation 2 worker answered in 480 requests")
        for pid, fds in seen.items():
            self.assertEqual(fds, ["0", "1", "2", "3", "4", "5"], "worker %d" % pid)
            self.assertEqual(proc_environ(pid)["LIVESWAP_CONTROL_FD"], "5")
        # Fds 3 and 4 are the supervisor's listening sockets, shared by every worker;
        # fd 5 is a control socket of each worker's own.
        supervisor_fds = set(socket_inode(sup.proc.pid, int(fd)) for fd in os.listdir("/proc/%d/fd" % sup.proc.pid)
                             if os.readlink("/proc/%d/fd/%s" % (sup.proc.pid, fd)).startswith("socket:"))
        alive_old = [pid for pid in old if os.path.exists("/proc/%d" % pid)]
        for pid in new + alive_old:
            self.assertIn(socket_inode(pid, 3), supervisor_fds)
            self.assertIn(socket_inode(pid, 4), supervisor_fds)
        controls = [socket_inode(pid, 5) for pid in new]
        self.assertEqual(len(set(controls)), 2, controls)
        self.assertTrue(set(controls).isdisjoint(supervisor_fds))
        print("generation 2 fds: %s" % {pid: " ".join(fds) for pid, fds in seen.items()})

    def test_environment(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        conf = notify_config(self)
        with open(conf, "a") as f:
            f.write("[worker]\nenvironment = APP_MODE=production\nenvironment = GREETING=hello world\n")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "1")

        def env(name):
            return lib.http_get(("127.0.0.1", port), "/env?name=" + name)[2]

        pid = lib.http_get(("127.0.0.1", port))[1]["x-pid"]
        self.assertEqual(env("LISTEN_PID"), pid)
        self.assertEqual(env("LISTEN_FDS"), "1")
        self.assertEqual(env("LISTEN_FDNAMES"), "liveswap")
        self.assertEqual(env("NOTIFY_SOCKET"), os.path.join(sup.run_dir, "liveswap", "web", "notify"))
        self.assertEqual(env("LIVESWAP_INSTANCE"), "web")
        self.assertEqual(env("LIVESWAP_GENERATION"), "1")
        self.assertEqual(env("LIVESWAP_WORKER"), "0")
        self.assertEqual(env("LIVESWAP_CONTROL_FD"), "4")
        self.assertEqual(env("APP_MODE"), "production")
        self.assertEqual(env("GREETING"), "hello world")
        # The worker runs in its own session and process group, and started with no
        # signal blocked or ignored (the supervisor itself blocks several and ignores SIGPIPE).
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        self.assertEqual(fields[2], pid)  # pgrp
        self.assertEqual(fields[3], pid)  # session
        self.assertEqual(lib.http_get(("127.0.0.1", port), "/signals")[2], "blocked=0 ignored=0\n")

    def test_crashed_worker_is_respawned(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "2")
        victim = sup.get_property("web", "Workers")[0][0]
        os.kill(victim, 9)
        sup.wait_status(r"Serving generation 1 .*: 1/2 ready")
        sup.wait_status(r"Serving generation 1 .*: 2/2 ready$")
        pids = [w[0] for w in sup.get_property("web", "Workers")]
        self.assertNotIn(victim, pids)
        self.assertEqual(len(pids), 2)
        self.assertIn("was killed by signal KILL", sup.output())

    def test_standalone_stop_leaves_nothing(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "3")
        pids = [w[0] for w in sup.get_property("web", "Workers")]
        self.assertEqual(len(pids), 3)
        sup.client("-i", "web", "-d", check=0)
        self.assertEqual(sup.proc.wait(30), 0)
        self.assert_pids_gone(pids)
        self.assertFalse(os.path.exists(os.path.join(sup.run_dir, "liveswap", "web")))

    def test_supervisor_killed_takes_workers_along(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-f", "2")
        pids = [w[0] for w in sup.get_property("web", "Workers")]
        sup.proc.kill()
        sup.proc.wait(10)
        self.assert_pids_gone(pids)


class ReadyAttribution(lib.TestCase):
    """With ready=notify a starting worker is ready when READY=1 comes from the worker's
    pid or from a process in its process group (a start script's child, src/supervisor.c
    on_notify); from anyone else it is ignored, whoever knows the socket's path."""

    TIMEOUT_MS = 5000

    def setup_web(self):
        self.port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        conf = notify_config(self, ready_timeout="%dms" % self.TIMEOUT_MS)
        # Debug logging: the supervisor says which notify messages it ignored.
        self.sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(self.port), "-f", "1",
                              env={"LIVESWAP_LOG_LEVEL": "debug"})
        self.sender = lib.write_file(os.path.join(self.dir, "ready-sender.py"), READY_SENDER)
        return self.sup

    def silent_target(self, before_exec=""):
        """Generation 2: the example server with --no-ready (it never sends READY=1),
        after BEFORE_EXEC in its start script."""
        return lib.write_file(os.path.join(self.dir, "silent"), "#!/bin/sh\n%s\nexec '%s' --version v2 --no-ready\n"
                              % (before_exec, lib.HTTPD), 0o755)

    def new_worker(self):
        self.sup.wait_status(r"Upgrading to generation 2")
        deadline = time.monotonic() + lib.DEFAULT_TIMEOUT
        while True:
            pids = workers_of(self.sup, "web", 2)
            if pids:
                return pids[0]
            self.assertLess(time.monotonic(), deadline, "no generation 2 worker")
            time.sleep(0.02)  # a property poll: the spawn has no event of its own here

    def assert_rolled_back(self, client, *senders):
        """The upgrade failed on ready_timeout, after the READY=1 of each of SENDERS (each
        a list of the pids it may have been sent as) reached the supervisor and was ignored."""
        out, err = client.communicate(timeout=30)
        self.assertEqual(client.returncode, 1, out + err)
        self.assertIn("not ready within %d ms" % self.TIMEOUT_MS, err)
        self.assertEqual(self.sup.get_property("web", "Generation"), 1)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")
        log = self.sup.output()
        failed = log.find("Upgrade to generation 2 failed")
        self.assertGreater(failed, 0, log)
        for pids in senders:
            ignored = re.search(r"Ignoring notify message from pid (%s): not a worker" %
                                "|".join(str(p) for p in pids), log)
            self.assertIsNotNone(ignored, "no READY=1 from %s ignored:\n%s" % (pids, log))
            self.assertLess(ignored.start(), failed, log)

    def read_sender(self, path):
        deadline = time.monotonic() + lib.DEFAULT_TIMEOUT
        while not os.path.exists(path):
            self.assertLess(time.monotonic(), deadline, "the READY=1 sender did not finish")
            time.sleep(0.02)  # a file the sender renames into place; bounded
        with open(path) as f:
            pid, pgid, result = f.read().split()
        self.assertEqual(result, "handled")
        return int(pid), int(pgid)

    def test_ready_from_outside_is_ignored(self):
        sup = self.setup_web()
        client = start_client(self, sup, "-i", "web", "-u", self.silent_target())
        worker = self.new_worker()
        notify_socket = proc_environ(worker)["NOTIFY_SOCKET"]
        self.assertEqual(notify_socket, os.path.join(sup.run_dir, "liveswap", "web", "notify"))
        # systemd-notify waits (a barrier) until the supervisor has read its message. As
        # root it sends READY=1 with its parent's pid (this test's), else with its own.
        notify = subprocess.Popen(["systemd-notify", "--ready"], env=dict(os.environ, NOTIFY_SOCKET=notify_socket),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = notify.communicate(timeout=30)[0]
        self.assertEqual(notify.returncode, 0, out)
        # A process that is not a worker, in a process group of its own, also sending READY=1.
        result = os.path.join(self.dir, "outsider")
        subprocess.run([sys.executable, self.sender, result], env=dict(os.environ, NOTIFY_SOCKET=notify_socket),
                       stdin=subprocess.DEVNULL, timeout=30, check=True, start_new_session=True)
        outsider, _ = self.read_sender(result)
        self.assert_rolled_back(client, [os.getpid(), notify.pid], [outsider])
        print("READY=1 from the test (pid %d, systemd-notify %d) and from pid %d: ignored; rolled back after %d ms"
              % (os.getpid(), notify.pid, outsider, self.TIMEOUT_MS))

    def test_ready_from_worker_descendant_in_other_group_is_ignored(self):
        """A child of the worker that left its process group does not speak for it."""
        sup = self.setup_web()
        result = os.path.join(self.dir, "descendant")
        target = self.silent_target("setsid '%s' '%s' '%s' &" % (sys.executable, self.sender, result))
        client = start_client(self, sup, "-i", "web", "-u", target)
        worker = self.new_worker()
        pid, pgid = self.read_sender(result)
        self.assertNotEqual(pgid, worker)
        self.assert_rolled_back(client, [pid])

    def test_outsider_cannot_join_the_worker_group(self):
        """The group rule is safe because nobody else can get into the group: the worker
        leads a session of its own, and setpgid() cannot cross sessions."""
        sup = self.setup_web()
        worker = workers_of(sup, "web", 1)[0]
        probe = subprocess.run([sys.executable, "-c", "import os, sys\ntry:\n    os.setpgid(0, %d)\n"
                                "except PermissionError:\n    sys.exit(3)\n" % worker], timeout=30)
        self.assertEqual(probe.returncode, 3, "a process outside joined the worker's process group")

    def test_ready_from_worker_process_group_counts(self):
        """The rule's other half: a process in the worker's process group (a start
        script's background child) may send READY=1 for it."""
        sup = self.setup_web()
        result = os.path.join(self.dir, "member")
        target = self.silent_target("'%s' '%s' '%s' &" % (sys.executable, self.sender, result))
        client = start_client(self, sup, "-i", "web", "-u", target)
        out, err = client.communicate(timeout=30)
        self.assertEqual(client.returncode, 0, out + err + sup.output())
        worker = workers_of(sup, "web", 2)[0]
        pid, pgid = self.read_sender(result)
        self.assertNotEqual(pid, worker)
        self.assertEqual(pgid, worker)
        self.assertIn("Worker %d (generation 2) sent READY=1" % worker, sup.output())
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v2\n")


if __name__ == "__main__":
    lib.main()
