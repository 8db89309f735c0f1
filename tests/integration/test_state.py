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
        self.assertEqual(again.get_property("web", "Generation"), 1)
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


if __name__ == "__main__":
    lib.main()
