#!/usr/bin/env python3
"""Zero-downtime upgrades under load, for each strategy."""

import os

import lib


def notify_config(test, **extra):
    """A config file with ready=notify (the example server sends READY=1)."""
    settings = {"ready": "notify", "ready_timeout": "10s", "drain_timeout": "10s"}
    settings.update(extra)
    body = "[upgrade]\n" + "".join("%s = %s\n" % kv for kv in settings.items())
    return lib.write_file(os.path.join(test.dir, "liveswap.conf"), body)


class UpgradeUnderLoad(lib.TestCase):
    def run_upgrades(self, strategy, count, workers=4, clients=8):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, strategy=strategy)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", str(workers))
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=clients, mode="mixed")
        targets = []
        for i in range(count):
            target = v2 if i % 2 == 0 else v1
            targets.append(target)
            p = sup.client("-i", "web", "-u", target, check=0)
            self.assertIn("serving generation %d" % (i + 2), p.stdout)
        result = load.stop()
        self.assert_no_failures(result, sup)
        seen = lib.versions(result)
        self.assertIn("v1", seen, result["_raw"])
        self.assertIn("v2", seen, result["_raw"])
        final = "v2" if targets[-1] == v2 else "v1"
        status, headers, body = lib.http_get(("127.0.0.1", port))
        self.assertEqual((status, body), (200, final + "\n"))
        self.assertEqual(sup.get_property("web", "Generation"), count + 1)
        self.assertEqual(sup.get_property("web", "Target"), os.path.realpath(targets[-1]))
        workers_before = [w[0] for w in sup.get_property("web", "Workers")]
        self.assertEqual(sup.stop(), 0, sup.output())
        self.assert_pids_gone(workers_before)
        print("%s: %s requests, %s failed, versions %s, p99 %s us, max %s us" % (
            strategy, result["requests"], result["failed"], result["versions"], result.get("p99_us"),
            result.get("max_us")))
        return result

    def test_rolling_twenty_upgrades(self):
        self.run_upgrades("rolling", 20)

    def test_blue_green(self):
        self.run_upgrades("blue-green", 6)

    def test_rolling_batch_two(self):
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self, batch="2")
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "4")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=8, mode="keepalive")
        sup.client("-i", "web", "-u", v2, check=0)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_restart_strategy(self):
        """-z stops the old workers before starting new ones; the socket stays open, so
        connections wait in the backlog instead of being refused."""
        port = lib.free_port()
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        conf = notify_config(self)
        sup = self.start("--instance", "web", "--config", conf, "-s", v1, "-p", str(port), "-f", "2", "-z")
        load = lib.Load(self, "127.0.0.1:%d" % port, clients=4, mode="close")
        sup.client("-i", "web", "-u", v2, check=0)
        result = load.stop()
        self.assert_no_failures(result, sup)
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")

    def test_directory_target_and_symlink(self):
        """A directory runs its exec command; a `current` symlink is resolved at upgrade time."""
        port = lib.free_port()
        releases = os.path.join(self.dir, "releases")
        for version in ("v1", "v2"):
            lib.make_target(os.path.join(releases, version), version, name="start")
        current = os.path.join(self.dir, "current")
        os.symlink(os.path.join(releases, "v1"), current)
        conf = notify_config(self)
        sup = self.start("--instance", "app", "--config", conf, "-s", current, "-p", str(port))
        self.assertEqual(sup.get_property("app", "Target"), os.path.join(releases, "v1"))
        os.unlink(current)
        os.symlink(os.path.join(releases, "v2"), current)
        sup.client("-i", "app", "-u", check=0)  # reload: the configured target, re-resolved
        self.assertEqual(lib.http_get(("127.0.0.1", port))[2], "v2\n")
        self.assertEqual(sup.get_property("app", "Target"), os.path.join(releases, "v2"))
        self.assertEqual(sup.get_property("app", "PreviousTarget"), os.path.join(releases, "v1"))


if __name__ == "__main__":
    lib.main()
