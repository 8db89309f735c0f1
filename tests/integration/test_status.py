#!/usr/bin/env python3
"""Per-worker figures (contract section 10): `liveswapctl status` and `--json` show each
worker's memory, CPU time, uptime and restarts of its slot, read by the supervisor when
asked (the WorkerDetails property, which busctl reads peer-to-peer too), and reading
them arms no timer: an idle supervisor stays idle."""

import glob
import json
import os
import re
import signal
import sys
import time

import lib
import test_ctl

MIB = 1 << 20

# Slot 0 spins (niced, so that the machine's other work goes first) and slot 1 sleeps;
# both hold 64 MiB they have written to, so that it is resident, before they say READY=1.
WORKER = r"""#!/usr/bin/env python3
import os, socket, time
os.nice(19)
ballast = b"\x01" * (64 << 20)
path = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", "\0" + path[1:] if path.startswith("@") else path)
if os.environ.get("LIVESWAP_WORKER") == "0":
    while True:
        pass
while True:
    time.sleep(3600)
"""


class Figures(test_ctl.CtlTest):
    def start_workers(self):
        target = lib.write_file(os.path.join(self.dir, "fat"), WORKER, 0o755)
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[upgrade]\nready = notify\nready_timeout = 60s\nstable_time = 0\n")
        sup = self.start("--instance", "web", "--config", conf, "-s", target, "--listen",
                         os.path.join(self.dir, "sock"), "-f", "2", env={"LIVESWAP_BUS": "none"})
        return sup

    def json_status(self, sup):
        return json.loads(self.ok(sup, "--json", "status").stdout)

    def by_slot(self, status):
        return {w["slot"]: w for w in status["workers"] if w["state"] != "draining"}

    def wait_json(self, sup, predicate, what, timeout=60):
        """Reads status until PREDICATE holds (figures change by themselves: no event
        says so); bounded."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.json_status(sup)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                self.fail("%s: not within %ss; last status:\n%s" % (what, timeout, json.dumps(status, indent=1)))
            time.sleep(0.1)

    def timers_armed(self, pid):
        """The supervisor's timerfds that are armed (sd-event disarms one with no timer)."""
        armed = []
        for fd in glob.glob("/proc/%d/fd/*" % pid):
            try:
                if os.readlink(fd) != "anon_inode:[timerfd]":
                    continue
                with open("/proc/%d/fdinfo/%s" % (pid, os.path.basename(fd))) as f:
                    info = f.read()
            except OSError:
                continue
            m = re.search(r"it_value: \((\d+), (\d+)\)", info)
            if m and m.groups() != ("0", "0"):
                armed.append(info)
        return armed

    def all_ready(self, sup):
        return self.wait_json(sup, lambda s: [w["state"] for w in s["workers"]] == ["ready", "ready"], "all ready")

    def test_json_figures(self):
        sup = self.start_workers()
        first = self.all_ready(sup)
        workers = self.by_slot(first)
        self.assertEqual(sorted(workers), [0, 1])
        for w in workers.values():
            # Every existing key is still there, and the new ones are numbers.
            self.assertEqual(set(w) >= {"pid", "generation", "state", "target", "started_usec", "uptime_usec",
                                        "slot", "memory_bytes", "cpu_usec", "restarts"}, True, w)
            self.assertGreaterEqual(w["memory_bytes"], 64 * MIB, w)
            self.assertLess(w["memory_bytes"], 1024 * MIB, w)
            self.assertIsInstance(w["cpu_usec"], int)
            self.assertEqual(w["restarts"], 0)
            self.assertEqual(w["generation"], 1)

        # The busy worker's CPU time grows, and every uptime with it.
        busy = workers[0]
        later = self.wait_json(sup, lambda s: self.by_slot(s)[0]["cpu_usec"] >= busy["cpu_usec"] + 300000,
                               "CPU time of the busy worker grows by 0.3s")
        self.assertEqual(self.by_slot(later)[0]["pid"], busy["pid"])
        self.assertGreater(self.by_slot(later)[1]["uptime_usec"], workers[1]["uptime_usec"])

        # The same figures peer-to-peer through busctl.
        details = sup.get_property("web", "WorkerDetails")
        self.assertEqual(sorted((d[0], d[1], d[2], d[3], d[4], d[7]) for d in details),
                         sorted((w["pid"], w["generation"], w["slot"], w["state"], w["started_usec"], w["restarts"])
                                for w in later["workers"]))
        for d in details:
            self.assertGreaterEqual(d[5], 64 * MIB)
        self.assertTrue(sup.get_property("web", "Version"))

        # A worker killed with SIGKILL is replaced in its slot, which counts one restart.
        victim = self.by_slot(later)[1]["pid"]
        os.kill(victim, signal.SIGKILL)
        sup.wait_output("Worker %d (generation 1, slot 1) was killed by signal KILL" % victim)
        after = self.wait_json(sup, lambda s: self.by_slot(s).get(1, {}).get("pid") not in (None, victim) and
                               self.by_slot(s)[1]["state"] == "ready", "slot 1 refilled")
        self.assertEqual(self.by_slot(after)[1]["restarts"], 1)
        self.assertEqual(self.by_slot(after)[0]["restarts"], 0)
        self.assertGreaterEqual(self.by_slot(after)[1]["memory_bytes"], 64 * MIB)

    def test_text_table(self):
        sup = self.start_workers()
        self.all_ready(sup)
        status = self.json_status(sup)
        text = self.ok(sup, "status").stdout
        # What was there before stays as it was; the table follows after a blank line.
        head, table = text.split("\n\n")
        fields, tree = test_ctl.Status.parse_status(self, head + "\n")
        self.assertEqual(fields["Workers"], "2 desired, 2 ready, 0 draining")
        lines = table.splitlines()
        self.assertEqual(lines[0].split(), ["PID", "GEN", "SLOT", "STATE", "UPTIME", "MEMORY", "CPU", "RESTARTS"])
        rows = {}
        for line in lines[1:]:
            m = re.match(r"^ *(\d+) +1 +([01]) +ready +(\d+s|\d+min \d+s) +(\d+\.\d) MiB +(\d+\.\d\ds) +0$", line)
            self.assertTrue(m, "unexpected row %r in:\n%s" % (line, text))
            rows[int(m.group(1))] = m
            self.assertGreaterEqual(float(m.group(4)), 64.0)
        self.assertEqual(sorted(rows), sorted(w["pid"] for w in status["workers"]))
        self.assertEqual(sorted(p for p, _, _ in tree), sorted(rows))

    def test_reading_arms_no_timer(self):
        sup = self.start_workers()
        self.all_ready(sup)
        # Settled: no worker deadline, no back-off; reading the figures arms nothing.
        for _ in range(3):
            sup.get_property("web", "WorkerDetails")
            self.json_status(sup)
        self.assertEqual(self.timers_armed(sup.proc.pid), [])


if __name__ == "__main__":
    lib.main()
