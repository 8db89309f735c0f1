#!/usr/bin/env python3
"""What the service manager is told: RELOADING=1 with MONOTONIC_USEC= at the start of
every upgrade request, the pre-upgrade hook included, and READY=1 at its end, whatever
the outcome (with Type=notify-reload a request that left either out would keep the unit
reloading until its timeout)."""

import os
import subprocess
import time

import lib
from test_upgrade import notify_config


def fields(message):
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


class Notify(lib.TestCase):
    def start_v1(self, **config):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        sup = self.start("--instance", "web", "--config", notify_config(self, **config), "-s", v1,
                         "-p", str(port), "-f", "2")
        return sup, port

    def wait_reloading(self, sup, before_usec):
        msg = sup.notify.wait_for(lambda m: "RELOADING=1" in m.split("\n"), what="RELOADING=1")
        stamp = int(fields(msg)["MONOTONIC_USEC"])
        # CLOCK_MONOTONIC, as systemd compares it with its own reload request.
        self.assertGreaterEqual(stamp, before_usec)
        self.assertLessEqual(stamp, time.monotonic_ns() // 1000)

    def wait_ready_again(self, sup, status):
        msg = sup.notify.wait_for(lambda m: "READY=1" in m.split("\n"), what="READY=1 after the request")
        self.assertRegex(fields(msg).get("STATUS", ""), status)

    def test_refused_requests_still_end_the_reload(self):
        sup, port = self.start_v1()
        # A target that does not exist, then a reload whose configuration file is broken:
        # both refused before anything changes.
        for target, status in ((os.path.join(self.dir, "missing"), r"^Upgrade refused, invalid target: "),
                               ("", r"^Reload refused, configuration not changed: .*liveswap.conf:2: ")):
            before = time.monotonic_ns() // 1000
            if target:
                sup.client("-i", "web", "-u", target, check=2)
            else:
                lib.write_file(os.path.join(self.dir, "liveswap.conf"), "[upgrade]\nready = sometimes\n")
                self.assertNotEqual(sup.client("-i", "web", "-u").returncode, 0)
            self.wait_reloading(sup, before)
            self.wait_ready_again(sup, status)
        self.assertEqual(sup.get_property("web", "Generation"), 1)

    def test_reloading_covers_the_pre_upgrade_hook(self):
        go = os.path.join(self.dir, "go")
        # The hook waits (bounded) until the test has seen RELOADING=1.
        hook = lib.write_file(os.path.join(self.dir, "hook"),
                              "#!/bin/sh\ni=0\nwhile [ ! -e '%s' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n"
                              "[ -e '%s' ]\n" % (go, go), 0o755)
        sup, port = self.start_v1(pre_upgrade=hook)
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        before = time.monotonic_ns() // 1000
        client = subprocess.Popen([lib.LIVESWAP, "-i", "web", "-u", v2], env=sup.env, cwd=self.dir,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self.wait_reloading(sup, before)
            self.assertIsNone(client.poll(), "the hook is still running, so is the upgrade")
            lib.write_file(go, "")
            self.assertEqual(client.wait(60), 0, client.stdout.read())
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            client.stdout.close()
        self.wait_ready_again(sup, r"^Serving generation 2 ")
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")


if __name__ == "__main__":
    lib.main()
