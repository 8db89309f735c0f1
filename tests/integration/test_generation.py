#!/usr/bin/env python3
"""Generation numbers are never reused: a failed candidate uses up its number, and the
highest number used survives a restart in GENERATION beside HEAD."""

import json
import os
import subprocess

import lib
from test_upgrade import notify_config


class Generation(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.port = lib.free_port()
        self.head = os.path.join(self.dir, "state", "HEAD")
        self.counter = os.path.join(self.dir, "state", "GENERATION")
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        self.bad = lib.make_target(os.path.join(self.dir, "bad"), "v2", "--crash-at-start")
        self.args = ["--instance", "web", "--config", notify_config(self), "-s", self.v1, "-p", str(self.port),
                     "-f", "2", "-H", self.head]

    def counter_file(self):
        with open(self.counter) as f:
            return f.read()

    def assert_serving(self, sup, generation):
        self.assertEqual(sup.get_property("web", "Generation"), generation)
        # What the workers themselves were told (LIVESWAP_GENERATION, echoed by the example).
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[1]["x-generation"], str(generation))
        p = subprocess.run([os.environ["LIVESWAPCTL"], "-i", "web", "--json", "status"], env=sup.env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["generation"], generation)

    def test_failed_candidate_uses_its_number_and_restart_goes_on(self):
        sup = self.start(*self.args)
        self.assert_serving(sup, 1)
        self.assertEqual(self.counter_file(), "1\n")

        # Refused before anything started: no number used.
        p = sup.client("-i", "web", "-u", os.path.join(self.dir, "missing"))
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertEqual(self.counter_file(), "1\n")

        # Generation 2 starts, fails and is rolled back: the current one stays 1.
        p = sup.client("-i", "web", "-u", self.bad)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("upgrade to generation 2 failed, still serving generation 1", p.stderr)
        self.assert_serving(sup, 1)
        self.assertEqual(self.counter_file(), "2\n")

        # The next upgrade is generation 3, not 2 again.
        p = sup.client("-i", "web", "-u", self.v2, check=0)
        self.assertIn("serving generation 3", p.stdout)
        self.assert_serving(sup, 3)
        self.assertEqual(self.counter_file(), "3\n")
        self.assertEqual(len(lib.started_workers(sup, 3)), 2)
        self.assertEqual(sup.stop(), 0)

        # A restarted supervisor goes on from there: generation 4, serving the deployed v2.
        again = self.start(*self.args)
        self.assert_serving(again, 4)
        again.wait_status(r"^Serving generation 4 \(%s\): 2/2 ready$" % os.path.realpath(self.v2))
        self.assertEqual(len(lib.started_workers(again, 4)), 2, again.output())
        self.assertEqual(lib.started_workers(again, 1), [])
        self.assertEqual(self.counter_file(), "4\n")
        self.assertEqual(lib.http_get(("127.0.0.1", self.port))[2], "v2\n")
        p = again.client("-i", "web", "-u", self.v1, check=0)
        self.assertIn("serving generation 5", p.stdout)
        print("generations: 1, 2 failed, 3; restart: 4, then 5")

    def test_corrupt_counter_is_ignored(self):
        os.makedirs(os.path.dirname(self.counter))
        lib.write_file(self.counter, "not a number\n")
        sup = self.start(*self.args)
        self.assert_serving(sup, 1)
        self.assertIn("Ignoring %s: not a generation number; numbering generations from 1" % self.counter,
                      sup.output())
        self.assertEqual(self.counter_file(), "1\n")

    def test_unwritable_counter_does_not_stop_the_start(self):
        blocker = lib.write_file(os.path.join(self.dir, "not-a-directory"), "")
        args = list(self.args)
        args[args.index(self.head)] = os.path.join(blocker, "HEAD")
        sup = self.start(*args)
        self.assert_serving(sup, 1)
        self.assertIn("Cannot record generation 1 in %s/GENERATION: Not a directory" % blocker, sup.output())


if __name__ == "__main__":
    lib.main()
