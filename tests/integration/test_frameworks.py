#!/usr/bin/env python3
"""Real application servers from Debian packages, unmodified, under liveswap as
examples/ sets them up: gunicorn (LISTEN_FDS with its LISTEN_PID check, READY=1) and
puma (LISTEN_FDS, --bind-to-activated-sockets). Each serves through upgrades back and
forth under load with no failed request, and each new generation's code answers."""

import os
import shutil

import lib

EXAMPLES = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))


def release(test, example, version):
    """A copy of examples/EXAMPLE as a release directory answering VERSION."""
    path = os.path.join(test.dir, "releases", version)
    shutil.copytree(os.path.join(EXAMPLES, example), path)
    lib.write_file(os.path.join(path, "VERSION"), version + "\n")
    return path


class Frameworks(lib.TestCase):
    def upgrade_under_load(self, example, upgrades=4):
        if not shutil.which(example):
            self.skipTest("%s is not installed (scripts/setup installs it)" % example)
        v1, v2 = release(self, example, "v1"), release(self, example, "v2")
        port = lib.free_port()
        sup = self.start("--instance", example, "--config", os.path.join(EXAMPLES, example, "liveswap.conf"),
                         "-s", v1, "-p", str(port), "-f", "2", env={"LIVESWAP_BUS": "none"})
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v1\n")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8)
        lib.wait_load(port, 4)
        for i, target in enumerate([v2, v1] * (upgrades // 2)):
            sup.client("--instance", example, "-u", target, check=0)
            self.assertEqual(sup.get_property(example, "Generation"), i + 2)
            self.assertEqual(lib.http_get(("127.0.0.1", port))[2], os.path.basename(target) + "\n")
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(set(lib.versions(result)), {"v1", "v2"}, result["_raw"])
        self.assertEqual(sup.stop(), 0)

    def test_gunicorn(self):
        self.upgrade_under_load("gunicorn")

    def test_puma(self):
        self.upgrade_under_load("puma")


if __name__ == "__main__":
    lib.main()
