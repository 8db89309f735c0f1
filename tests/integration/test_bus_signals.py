#!/usr/bin/env python3
"""PropertiesChanged at scale (issue 15): during a blue-green upgrade of 64 workers a
client on the private socket counts the signals and their bytes. Workers (80 bytes a
worker) is only invalidated, never sent; changes that come in a burst go out as one
signal; State, Generation and the counters still come with their values, and an upgrade's
progress can be followed from UpgradeReadyWorkers alone."""

import os
import subprocess
import sys
import time

import dbus_raw
import lib

LIVESWAPCTL = os.environ.get("LIVESWAPCTL")
N = 64


def value_of(body, name, signature):
    """Whether BODY (a PropertiesChanged body) carries NAME with a value of SIGNATURE."""
    return (name.encode() + b"\0" + bytes([len(signature)]) + signature.encode() + b"\0") in body


class BusSignalsTest(lib.TestCase):
    def test_upgrade_of_64_workers(self):
        self.assertTrue(LIVESWAPCTL, "LIVESWAPCTL must be set (run through meson test)")
        config = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                                "[upgrade]\nstrategy = blue-green\nready = notify\nready_timeout = 60s\n"
                                "drain_timeout = 30s\nstable_time = 0\n")
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        v2 = lib.make_target(os.path.join(self.dir, "b"), "v2")
        sup = self.start("--instance", "big", "--config", config, "-s", v1, "--listen",
                         os.path.join(self.dir, "sock"), "-f", str(N), env={"LIVESWAP_BUS": "none"})
        conn = dbus_raw.Connection(os.path.join(sup.run_dir, "liveswap", "big", "bus"), timeout=120)
        mtype, error = conn.call(b"Hello", path=b"/org/freedesktop/DBus", interface=b"org.freedesktop.DBus",
                                 destination=b"org.freedesktop.DBus")
        self.assertEqual((mtype, error), (dbus_raw.METHOD_RETURN, None))

        started = time.monotonic()
        ctl = subprocess.Popen([LIVESWAPCTL, "-i", "big", "upgrade", v2], env=sup.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        signals, size, bodies = 0, 0, []
        try:
            while True:  # bounded by the socket's timeout and the upgrade's own bounds
                mtype, fields, body, length = conn.read_message()
                if mtype != dbus_raw.SIGNAL:
                    continue
                member = fields.get(dbus_raw.FIELD_MEMBER)
                if member == "UpgradeFinished":
                    break
                if member == "PropertiesChanged":
                    signals += 1
                    size += length
                    bodies.append(body)
            out, err = ctl.communicate(timeout=120)
        finally:
            if ctl.poll() is None:
                ctl.kill()
                ctl.wait()
            conn.close()
        self.assertEqual(ctl.returncode, 0, out + err)
        print("%d workers, blue-green: %d PropertiesChanged, %d bytes, %.2fs" %
              (N, signals, size, time.monotonic() - started), file=sys.stderr)

        # Workers is invalidated (its name in the third argument), never sent with a value.
        self.assertEqual(len([b for b in bodies if b"a(utsst)" in b]), 0, "Workers was sent with its value")
        self.assertTrue([b for b in bodies if b"Workers\0" in b and not value_of(b, "Workers", "a(utsst)")])
        # Those who follow State and Generation still get their values, never a bare
        # invalidation. (State may not differ between two signals at all: a fast upgrade
        # can fit in one loop pass, and PropertiesChanged reports what changed since the
        # last one.)
        self.assertTrue([b for b in bodies if value_of(b, "Generation", "t")])
        # The same for the counters, which may be back where they were by then.
        for b in bodies:
            if b"State\0" in b:
                self.assertTrue(value_of(b, "State", "s"), "State sent without its value")
            if b"UpgradeReadyWorkers\0" in b:
                self.assertTrue(value_of(b, "UpgradeReadyWorkers", "u"), "UpgradeReadyWorkers without its value")
        # 64 spawns, 64 READY=1 and 64 exits were one signal each or more before; bursts
        # now go out together. No signal carries a worker list, so each stays small.
        self.assertLess(signals, 2 * N, "%d signals" % signals)
        self.assertLess(size / max(signals, 1), 1024, "%d bytes in %d signals" % (size, signals))
        self.assertEqual(sup.get_property("big", "UpgradeReadyWorkers"), 0)
        self.assertEqual(sup.get_property("big", "ReadyWorkers"), N)
        # Under the sanitizers each of the 64 workers runs LeakSanitizer as it exits, which
        # on 2 CPUs takes longer than the default stop timeout: slow, not stuck.
        self.assertEqual(sup.stop(timeout=180), 0)


if __name__ == "__main__":
    lib.main()
