#!/usr/bin/env python3
"""What a SIGKILLed supervisor leaves behind (without systemd's cgroup to clean up).

A worker started by a wrapper script without `exec` is a shell whose child is the server.
The shell dies with the supervisor (PR_SET_PDEATHSIG), but the server is reparented and
keeps serving old code on the port. The next start of the same instance must stop it and
come up serving the new code, and must never touch a process whose pid merely matches
an old record."""

import os
import signal
import subprocess
import time

import lib

INSTANCE = "orphans"
LIVESWAPCTL = os.environ.get("LIVESWAPCTL", "liveswapctl")
SLOT = 128  # LEFTOVERS_SLOT_SIZE


def stat_fields(pid):
    """/proc/PID/stat's fields from 3 (state) on, as a list (index 0 = field 3), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def session_of(pid):
    fields = stat_fields(pid)
    return int(fields[3]) if fields else None


def start_time(pid):
    return int(stat_fields(pid)[19])


def alive(pid):
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def processes_in_sessions(sessions):
    """Live processes whose session id is one of SESSIONS."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(int(name))
            if fields and fields[0] not in ("Z", "X") and int(fields[3]) in sessions:
                out.append(int(name))
    return out


def wrapper_target(directory, version):
    """A worker that is a shell with the server as its child: no `exec`. LISTEN_PID names
    the shell, so the server takes its socket (fd 3) the Server::Starter way instead. Like
    most apps (`node server.js`) it ignores the control socket: the example server would
    otherwise drain by itself when the supervisor's end closes."""
    os.makedirs(directory, exist_ok=True)
    return lib.write_file(os.path.join(directory, "server-" + version),
                          "#!/bin/sh\nunset LIVESWAP_CONTROL_FD\nSERVER_STARTER_PORT=socket=3 '%s' --version '%s'\n" % (lib.HTTPD, version),
                          0o755)


class Leftovers(lib.TestCase):
    def records_dir(self):
        """Where the supervisors of this test (XDG_RUNTIME_DIR=<dir>/run) keep records."""
        return os.path.join(self.dir, "run", "liveswap", INSTANCE, "workers")

    def recorded(self):
        """The pids recorded: one per taken slot of the records file (128 bytes each,
        "PID START GENERATION BOOT_ID\n" and NULs; a free slot starts with a NUL), and
        one per file of its own (the format of earlier versions, still read)."""
        pids = []
        for name in os.listdir(self.records_dir()):
            if name != "slots":
                pids.append(int(name))
                continue
            with open(os.path.join(self.records_dir(), name), "rb") as f:
                data = f.read()
            self.assertEqual(len(data) % SLOT, 0, "the records file is made of whole slots")
            for i in range(0, len(data), SLOT):
                slot = data[i:i + SLOT]
                if slot[0] != 0:
                    text = slot.rstrip(b"\0").decode()
                    self.assertRegex(text, r"^[1-9][0-9]* [0-9]+ [0-9]+ [0-9a-f-]{36}\n$")
                    pids.append(int(text.split()[0]))
        return sorted(pids)

    def tearDown(self):
        """Every process left in the sessions of the workers of this test's supervisors
        is killed by pid: a failed check must not leave the very orphans this file is
        about. (Before lib's tearDown, which removes the logs that name the workers.)"""
        workers = set()
        for sup in self.supervisors:
            if sup.proc.poll() is None:
                sup.proc.kill()
                sup.proc.wait()
            workers.update(lib.started_workers(sup))
        for pid in processes_in_sessions(workers):
            os.kill(pid, signal.SIGKILL)
        super().tearDown()

    def test_restart_after_sigkill_stops_the_old_code(self):
        port = lib.free_port()
        v1 = wrapper_target(os.path.join(self.dir, "a"), "v1")
        v2 = wrapper_target(os.path.join(self.dir, "b"), "v2")
        args = ["--instance", INSTANCE, "-p", str(port), "-f", "2"]
        old = self.start(*(args + ["-s", v1]))
        shells = lib.started_workers(old)
        self.assertEqual(len(shells), 2)
        # The servers are the shells' children, in the shells' sessions.
        servers = self.wait_servers(shells)
        # One file of slots for all of them, not a file each: see leftovers.h.
        self.assertEqual(os.listdir(self.records_dir()), ["slots"])
        self.assertEqual(self.recorded(), sorted(shells))

        old.proc.kill()
        old.proc.wait(lib.DEFAULT_TIMEOUT)
        self.assert_pids_gone(shells)
        # The scenario: the shells died with the supervisor, their children did not, and
        # the old code still answers on the port with nobody supervising it.
        self.assertTrue(all(alive(p) for p in servers), servers)
        status, _, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body), (200, "v1\n"))

        started = time.monotonic()
        new = self.start(*(args + ["-s", v2]))
        print("new supervisor ready %.2f s after its start" % (time.monotonic() - started))
        self.assertLess(time.monotonic() - started, 15)
        self.assert_pids_gone(servers)
        self.assertEqual(processes_in_sessions(shells), [])
        out = new.output()
        self.assertIn("left by a previous run of this instance (worker", out)
        for _ in range(20):
            self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        # The old records are gone; the new workers have theirs.
        self.assertEqual(self.recorded(), sorted(lib.started_workers(new)))
        self.assertEqual(new.stop(), 0)
        self.assertFalse(os.path.exists(self.records_dir()), "records left after a clean stop")

    def test_records_follow_the_workers_across_a_reexec(self):
        """The new image of a reexec takes over the records of the old one's workers: an
        upgrade after it frees their slots and records the new workers. (Had it lost track
        of them, their records would stay, and a later start would look for leftovers of
        workers long gone.)"""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", INSTANCE, "-p", str(port), "-f", "2", "-s", v1)
        old = sorted(w[0] for w in sup.get_property(INSTANCE, "Workers"))
        self.assertEqual(self.recorded(), old)
        p = subprocess.run([LIVESWAPCTL, "-i", INSTANCE, "reexec"], env=sup.env, capture_output=True, text=True,
                           timeout=lib.DEFAULT_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.recorded(), old)
        self.assertEqual(sup.client("-i", INSTANCE, "-u", v2).returncode, 0)
        new = sorted(w[0] for w in sup.get_property(INSTANCE, "Workers") if w[1] == 2)
        self.assertEqual(len(new), 2)
        # A record is freed before its worker is reaped: once /proc has no trace of the
        # old workers, their records are gone.
        deadline = time.monotonic() + lib.DEFAULT_TIMEOUT
        while any(os.path.exists("/proc/%d" % pid) for pid in old):
            self.assertLess(time.monotonic(), deadline, "the old workers were not reaped")
            time.sleep(0.02)  # a reap in another process has no event to wait on; bounded
        self.assertEqual(self.recorded(), new)
        self.assertEqual(sup.stop(), 0)
        self.assertFalse(os.path.exists(self.records_dir()), "records left after a clean stop")

    def wait_servers(self, shells, timeout=lib.DEFAULT_TIMEOUT):
        """The shells' children, once each shell has started its server."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p in processes_in_sessions(shells) if p not in shells]
            if len(found) >= len(shells):
                return found
            if time.monotonic() > deadline:
                raise AssertionError("the wrapper scripts did not start their servers: %s" % found)
            time.sleep(0.02)  # a fork in another process has no event to wait on; bounded

    def fake_record(self, pid, started, generation=1, slot=None):
        """A record as a previous run would have left it: in SLOT of the records file, or
        (SLOT None) in a file of its own, as earlier versions kept them."""
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
        os.makedirs(self.records_dir(), exist_ok=True)
        text = "%d %d %s\n" % (started, generation, boot_id)
        if slot is None:
            lib.write_file(os.path.join(self.records_dir(), str(pid)), text)
            return
        path = os.path.join(self.records_dir(), "slots")
        with open(path, "r+b" if os.path.exists(path) else "wb") as f:
            f.seek(slot * SLOT)
            f.write(("%d %s" % (pid, text)).encode().ljust(SLOT, b"\0"))

    def unrelated_session(self):
        """A session leader (sh) with a child (sleep) in its session, as an old worker
        and its leftover would be, but started by the test."""
        proc = subprocess.Popen(["sh", "-c", "sleep 120 & wait"], start_new_session=True)
        self.addCleanup(lambda: (proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL), proc.wait()))
        child = self.wait_servers([proc.pid])
        return proc, child

    def test_a_reused_pid_is_left_alone(self):
        """A record whose pid now belongs to another process (its start time differs) is
        not the worker: neither that process nor its session is touched."""
        port = lib.free_port()
        v1 = wrapper_target(os.path.join(self.dir, "a"), "v1")
        proc, children = self.unrelated_session()
        self.fake_record(proc.pid, start_time(proc.pid) - 1)

        sup = self.start("--instance", INSTANCE, "-p", str(port), "-f", "1", "-s", v1)
        self.assertNotIn("left by a previous run", sup.output())
        self.assertTrue(alive(proc.pid) and all(alive(p) for p in children))
        self.assertNotIn(proc.pid, self.recorded(), "the stale record was kept")
        self.assertEqual(sup.stop(), 0)
        self.assertTrue(alive(proc.pid) and all(alive(p) for p in children))

    def test_a_surviving_worker_is_stopped(self):
        """The same record with the right start time is the worker itself: it and its
        session are stopped (the positive twin of the test above)."""
        port = lib.free_port()
        v1 = wrapper_target(os.path.join(self.dir, "a"), "v1")
        proc, children = self.unrelated_session()
        self.fake_record(proc.pid, start_time(proc.pid), generation=7, slot=2)

        sup = self.start("--instance", INSTANCE, "-p", str(port), "-f", "1", "-s", v1)
        self.assertIn("Stopping 2 processes left by a previous run of this instance (worker %d, generation 7)"
                      % proc.pid, sup.output())
        self.assertIsNotNone(proc.wait(lib.DEFAULT_TIMEOUT))
        self.assert_pids_gone(children)
        self.assertEqual(sup.stop(), 0)

    def test_a_second_supervisor_of_a_running_instance_touches_nothing(self):
        """A live supervisor's workers are not leftovers (its bus socket answers, and it
        holds the records' lock)."""
        port = lib.free_port()
        v1 = wrapper_target(os.path.join(self.dir, "a"), "v1")
        first = self.start("--instance", INSTANCE, "-p", str(port), "-f", "1", "-s", v1)
        workers = lib.started_workers(first)
        second = self.start("--instance", INSTANCE, "-p", str(lib.free_port()), "-f", "1", "-s", v1, ready=False)
        self.assertNotEqual(second.proc.wait(lib.DEFAULT_TIMEOUT), 0)
        self.assertIn("already running", second.output())
        self.assertNotIn("left by a previous run", second.output())
        self.assertTrue(all(alive(p) for p in workers))
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertEqual(first.stop(), 0)


if __name__ == "__main__":
    lib.main()
