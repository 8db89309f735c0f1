#!/usr/bin/env python3
"""Fleets: contrib/ansible/deploy.yml itself, run by the real ansible-playbook with the
liveswap module (contrib/ansible/library), against a fleet of three hosts. Each host is
ansible_connection=local with a liveswap instance of its own (host1..host3, each on its
own port of 127.0.0.1, with its own app_root of releases/ and a `current` link).

- A good release rolls over all three, one host, then a quarter, then the rest, while
  load runs against all three ports: 0 failed requests. Run again, nothing changes.
- A release that crashes fails at the first host (the canary), which rolls back and
  points `current` back; the play stops there: the other two are never asked to
  upgrade (no request in their logs, generation and link unchanged).
- Eight hosts (batches of 1, 2, 5): a release that fails on one host of the second
  batch stops the play before the third (max_fail_percentage: 0)."""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SOURCE_ROOT = os.environ.get("LIVESWAP_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
CONTRIB = os.path.join(SOURCE_ROOT, "contrib", "ansible")
LIVESWAPCTL = os.environ.get("LIVESWAPCTL", "liveswapctl")
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook")
HOSTS = ("host1", "host2", "host3")  # the fleet of most tests
PLAYBOOK_TIMEOUT = 180

# Ready on READY=1, a short canary: the play's time is ansible's, not the upgrades'.
CONFIG = """[upgrade]
ready = notify
stable_time = 500ms
ready_timeout = 20s
drain_timeout = 10s
"""


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from ansible-playbook's PLAY RECAP."""
    out = {}
    section = output.split("PLAY RECAP", 1)[-1]
    for host, counts in re.findall(r"^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$", section, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return out


class Fleet(lib.TestCase):
    def fleet(self, count=3, crashing=("host1", "host2", "host3"), workers=2):
        """COUNT hosts, host1..hostN, each serving releases/v1 through `current`, with
        releases/v2 and releases/bad beside it (bad crashes on the hosts named in
        CRASHING, and is a good release elsewhere)."""
        self.hosts = {}
        for i in range(1, count + 1):
            name = "host%d" % i
            root = os.path.join(self.dir, name)
            for version in ("v1", "v2"):
                self.release(root, version)
            self.release(root, "bad", *(["--crash-at-start"] if name in crashing else []))
            os.symlink(os.path.join(root, "releases", "v1"), os.path.join(root, "current"))
            config = lib.write_file(os.path.join(self.dir, name + ".conf"), CONFIG)
            port = lib.free_port()
            sup = self.start("--instance", name, "--config", config, "-s", os.path.join(root, "current"),
                             "-p", str(port), "-f", str(workers))
            self.hosts[name] = dict(root=root, port=port, sup=sup)
        inventory = "[liveswap]\n" + "".join(
            "%s app_root=%s liveswap_instance=%s\n" % (name, h["root"], name) for name, h in self.hosts.items())
        inventory += ("[liveswap:vars]\nansible_connection=local\n"
                      "ansible_python_interpreter={{ ansible_playbook_python }}\n")
        self.inventory = lib.write_file(os.path.join(self.dir, "inventory.ini"), inventory)

    def release(self, root, version, *args):
        """releases/VERSION/start, Capistrano-style: the directory is the target."""
        directory = os.path.join(root, "releases", version)
        lib.make_target(directory, version, *args, name="start")

    def playbook(self, release):
        ansible_home = os.path.join(self.dir, "ansible-home")
        env = dict(self.hosts["host1"]["sup"].env)  # XDG_RUNTIME_DIR: where the instances' sockets are
        env.pop("NOTIFY_SOCKET", None)
        env.update({
            "ANSIBLE_CONFIG": lib.write_file(os.path.join(self.dir, "ansible.cfg"), "[defaults]\n"),
            "ANSIBLE_HOME": ansible_home,
            "ANSIBLE_LOCAL_TEMP": os.path.join(ansible_home, "tmp"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(ansible_home, "remote-tmp"),
            "ANSIBLE_LIBRARY": os.path.join(CONTRIB, "library"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        })
        started = time.monotonic()
        p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", self.inventory, os.path.join(CONTRIB, "deploy.yml"),
                            "-e", "release=" + release, "-e", "liveswapctl_path=" + LIVESWAPCTL],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=PLAYBOOK_TIMEOUT, cwd=self.dir)
        print("ansible-playbook release=%s: exit %d in %.1f s" % (release, p.returncode, time.monotonic() - started),
              file=sys.stderr)
        return p, recap(p.stdout)

    def generation(self, name):
        return self.hosts[name]["sup"].get_property(name, "Generation")

    def served(self, name):
        return self.hosts[name]["sup"].get_property(name, "Target")

    def link(self, name):
        return os.readlink(os.path.join(self.hosts[name]["root"], "current"))

    def test_good_release_rolls_over_the_fleet_under_load_and_a_rerun_changes_nothing(self):
        self.fleet()
        loads = [lib.Load(self, "127.0.0.1:%d" % h["port"], clients=4) for h in self.hosts.values()]
        for h in self.hosts.values():
            lib.wait_load(h["port"], 2)
        p, counts = self.playbook("v2")
        results = [load.stop() for load in loads]
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for name, result in zip(HOSTS, results):
            self.assert_no_failures(result, self.hosts[name]["sup"])
            self.assertIn("v2", lib.versions(result), "%s never served v2: %s" % (name, result["_raw"]))
        for name in HOSTS:
            self.assertEqual(self.generation(name), 2, name)
            self.assertEqual(self.served(name), os.path.join(self.hosts[name]["root"], "releases", "v2"))
            self.assertEqual(counts[name]["failed"], 0, p.stdout)
            self.assertGreaterEqual(counts[name]["changed"], 2, p.stdout)  # the link and the upgrade
        # Canary first: host1's upgrade finished before host2's began, host2's before host3's.
        order = [p.stdout.index("changed: [%s]" % name, p.stdout.index("Upgrade the instance")) for name in HOSTS]
        self.assertEqual(order, sorted(order), p.stdout)

        p, counts = self.playbook("v2")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual({name: counts[name]["changed"] for name in HOSTS}, {name: 0 for name in HOSTS}, p.stdout)
        for name in HOSTS:
            self.assertEqual(self.generation(name), 2, name)
            self.assertEqual(self.hosts[name]["sup"].output().count("Upgrade to generation"), 2,  # requested, finished
                             self.hosts[name]["sup"].output())

    def test_crashing_release_stops_at_the_canary(self):
        self.fleet()
        p, counts = self.playbook("bad")
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        canary = self.hosts["host1"]["sup"]
        self.assertEqual(counts["host1"]["failed"], 1, p.stdout)
        self.assertIn("Upgrade to generation 2 requested", canary.output())
        self.assertIn("Upgrade to generation 2 failed", canary.output())
        self.assertEqual(self.generation("host1"), 1)
        v1 = os.path.join(self.hosts["host1"]["root"], "releases", "v1")
        self.assertEqual(self.served("host1"), v1)
        self.assertEqual(self.link("host1"), v1, "current was not pointed back at the release served")
        # The rollback reason reaches the play's output.
        self.assertRegex(p.stdout, r"host1: .*(exit|crash|fail)", p.stdout)
        for name in ("host2", "host3"):
            self.assertEqual(counts.get(name, {}).get("changed", 0), 0, p.stdout)
            self.assertNotIn("Upgrade to generation", self.hosts[name]["sup"].output(), name)
            self.assertEqual(self.generation(name), 1, name)
            self.assertEqual(self.link(name), os.path.join(self.hosts[name]["root"], "releases", "v1"), name)
        self.assertNotIn("ok: [host2]", p.stdout)
        self.assertNotIn("ok: [host3]", p.stdout)

    def test_a_failure_in_a_later_batch_stops_the_play_there(self):
        """Eight hosts make batches of 1, 2 and 5. The release crashes on host2 only: the
        canary upgrades, host2 rolls back while host3 (same batch) upgrades, and
        max_fail_percentage 0 stops the play before the last batch. (With three hosts
        every batch is one host, and Ansible stops when a whole batch fails anyway.)"""
        self.fleet(count=8, crashing=("host2",), workers=1)
        p, counts = self.playbook("bad")
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(counts["host2"]["failed"], 1, p.stdout)
        for name in ("host1", "host3"):
            self.assertEqual(self.generation(name), 2, name)
            self.assertEqual(counts[name]["failed"], 0, p.stdout)
        self.assertEqual(self.generation("host2"), 1)
        for name in ("host4", "host5", "host6", "host7", "host8"):
            self.assertNotIn("Upgrade to generation", self.hosts[name]["sup"].output(), name)
            self.assertEqual(self.generation(name), 1, name)
            self.assertEqual(self.link(name), os.path.join(self.hosts[name]["root"], "releases", "v1"), name)


if __name__ == "__main__":
    if not ANSIBLE_PLAYBOOK:
        lib.skip_file("ansible-playbook is not installed (scripts/setup installs ansible-core)")
    lib.main()
