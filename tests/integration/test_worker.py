#!/usr/bin/env python3
"""What a worker sees: its fds, its environment (contract section 2)."""

import os

import lib
from test_upgrade import notify_config


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
        # The worker runs in its own process group, and started with no signal blocked or
        # ignored (the supervisor itself blocks several and ignores SIGPIPE).
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        self.assertEqual(fields[2], pid)  # pgrp
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


if __name__ == "__main__":
    lib.main()
