#!/usr/bin/env python3
"""The pre-upgrade hook: go on, refuse, replace the target, time out."""

import os

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

    def test_hook_times_out(self):
        sup = self.setup_web('exec sleep 60\n', timeout="500ms")
        p = sup.client("-i", "web", "-u", self.v2)
        self.assertEqual(p.returncode, 1)
        self.assertIn("timed out after 500 ms", p.stderr)
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v1\n")


if __name__ == "__main__":
    lib.main()
