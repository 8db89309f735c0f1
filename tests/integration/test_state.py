#!/usr/bin/env python3
"""HEAD state: what was deployed survives a restart; a deploy tool may rewrite HEAD."""

import os

import lib
from test_upgrade import notify_config


class State(lib.TestCase):
    def test_restart_serves_upgraded_version(self):
        port = lib.free_port()
        head = os.path.join(self.dir, "state", "HEAD")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        args = ["--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-H", head]
        sup = self.start(*args)
        sup.client("-i", "web", "-u", v2, check=0)
        with open(head) as f:
            self.assertEqual(f.read(), os.path.realpath(v2) + "\n")
        with open(os.path.join(self.dir, "state", "PREVIOUS")) as f:
            self.assertEqual(f.read(), os.path.realpath(v1) + "\n")
        self.assertEqual(sup.stop(), 0)

        again = self.start(*args)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        # Numbers are never reused: generations 1 and 2 ran before the restart.
        self.assertEqual(again.get_property("web", "Generation"), 3)
        self.assertEqual(again.get_property("web", "PreviousTarget"), os.path.realpath(v1))
        self.assertIn("Starting the deployed target", again.output())

    def test_default_head_location(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--config", notify_config(self), "-s", v1, "-p", str(port))
        # Instance defaults to the target's base name; HEAD to $XDG_STATE_HOME/liveswap/<instance>/HEAD.
        sup.client("-u", v2, check=0)
        with open(os.path.join(self.dir, "state", "liveswap", "server-v1", "HEAD")) as f:
            self.assertEqual(f.read().strip(), os.path.realpath(v2))

    def test_head_rewritten_by_deploy_tool(self):
        port = lib.free_port()
        head = os.path.join(self.dir, "HEAD")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v3 = lib.make_target(os.path.join(self.dir, "c"), "v3")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-H", head)
        lib.write_file(head, v3 + "\n")
        sup.client("-i", "web", "-u", check=0)  # reload picks up HEAD
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v3\n")
        # Reload again: HEAD is now liveswap's own record, so the configured target wins.
        sup.client("-i", "web", "-u", check=0)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")

    def test_invalid_head_is_ignored(self):
        port = lib.free_port()
        head = os.path.join(self.dir, "HEAD")
        lib.write_file(head, "/nonexistent/release\n")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self), "-s", v1, "-p", str(port), "-H", head)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertIn("Ignoring %s" % head, sup.output())
        # The stale HEAD does not count as a deploy: a reload goes to the configured
        # target (and records it), instead of being refused on the stale one.
        sup.client("-i", "web", "-u", check=0)
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        with open(head) as f:
            self.assertEqual(f.read(), os.path.realpath(v1) + "\n")
        # A deploy tool's later rewrite is still followed.
        v3 = lib.make_target(os.path.join(self.dir, "c"), "v3")
        lib.write_file(head, v3 + "\n")
        sup.client("-i", "web", "-u", check=0)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v3\n")

    def quick_start(self, app, port, shared):
        """`liveswap -s ./server -p PORT -f 1` run from the directory APP, as the quick start
        says, with the runtime and state directories of SHARED: the default instance of
        both apps is "server", so they share one state directory."""
        sup = lib.Supervisor(self, [lib.LIVESWAP, "--config", notify_config(self), "-s", "./server", "-p", str(port),
                                    "-f", "1"],
                             env={"XDG_RUNTIME_DIR": os.path.join(shared, "run"),
                                  "XDG_STATE_HOME": os.path.join(shared, "state")},
                             workdir=app)
        sup.run_dir = os.path.join(shared, "run")  # where get_property() finds the bus
        try:
            sup.wait_ready()
        except AssertionError:
            raise AssertionError("supervisor not ready; its log:\n" + sup.output())
        return sup

    def test_two_apps_called_server_share_a_state_directory(self):
        shared = os.path.join(self.dir, "shared")
        os.makedirs(os.path.join(shared, "run"), mode=0o700)
        app_a, app_b = os.path.join(self.dir, "appA"), os.path.join(self.dir, "appB")
        lib.make_target(app_a, "A1", name="server")
        lib.make_target(app_a, "A2", name="server-v2")
        lib.make_target(app_b, "B1", name="server")
        head = os.path.join(shared, "state", "liveswap", "server", "HEAD")
        port_a, port_b = lib.free_port(), lib.free_port()

        a = self.quick_start(app_a, port_a, shared)
        a.client("-u", "./server-v2", check=0)
        a.client("-d", check=0)
        self.assertEqual(a.proc.wait(lib.DEFAULT_TIMEOUT), 0)
        with open(head) as f:
            self.assertEqual(f.read(), os.path.join(os.path.realpath(app_a), "server-v2") + "\n")

        # The reboot case: the same app, started the same way, keeps what was deployed.
        again = self.quick_start(app_a, port_a, shared)
        self.assertEqual(lib.http_get(("127.0.0.1", port_a))[2], "A2\n")
        self.assertIn("Starting the deployed target", again.output())
        again.client("-d", check=0)
        self.assertEqual(again.proc.wait(lib.DEFAULT_TIMEOUT), 0)

        # Another app that is also ./server: appA's HEAD is not its code.
        b = self.quick_start(app_b, port_b, shared)
        self.assertEqual(lib.http_get(("127.0.0.1", port_b))[2], "B1\n")
        self.assertIn("Ignoring HEAD %s" % head, b.output())
        self.assertIn("deployed from another configuration (instance server, target %s/server), "
                      "not this one (instance server, target %s/server)" % (app_a, app_b), b.output())
        self.assertNotIn("Starting the deployed target", b.output())
        # Ignored once is ignored for good: a reload goes to appB's own target, not to appA's HEAD.
        b.client("-u", check=0)
        # GENERATION is shared with the state directory: appA used 1 to 3, appB went on
        # from there (4, then 5). Numbers stay unique; nothing else is taken from appA.
        self.assertEqual(b.get_property("server", "Generation"), 5)
        self.assertEqual(lib.http_get(("127.0.0.1", port_b))[2], "B1\n")
        with open(head) as f:
            self.assertEqual(f.read(), os.path.join(os.path.realpath(app_b), "server") + "\n")

    def test_head_from_another_instance_is_ignored(self):
        # One HEAD file given to two instances (-H): the other one's upgrade is not ours.
        port = lib.free_port()
        head = os.path.join(self.dir, "HEAD")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "one", "--config", notify_config(self), "-s", v1, "-p", str(port), "-H", head)
        sup.client("-i", "one", "-u", v2, check=0)
        self.assertEqual(sup.stop(), 0)
        other = self.start("--instance", "two", "--config", notify_config(self), "-s", v1, "-p", str(port), "-H",
                           head)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        self.assertIn("deployed from another configuration (instance one, target %s)" % v1, other.output())


if __name__ == "__main__":
    lib.main()
