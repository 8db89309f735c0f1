#!/usr/bin/env python3
"""A killed worker that is never reaped: SIGKILL cannot be refused, but a zombie held by a
tracer that does not wait for it (a debugger, LeakSanitizer's tracer) stays, and so does
a process stuck in the kernel. Like systemd after its final SIGKILL, the supervisor gives
up on it after a grace period and says what holds it, instead of waiting forever."""

import os
import signal
import sys
import time

import lib
from test_upgrade import notify_config

# The worker: a child in a session of its own (out of reach of the kill of the worker's
# process group) seizes it with ptrace and then never waits; the worker says READY=1 and
# ignores SIGTERM, so that the stop ends in SIGKILL.
WORKER = r'''#!%(python)s
import ctypes, os, signal, socket, sys, time
parent = os.getpid()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    ok = libc.ptrace(0x4206, parent, None, None) == 0  # PTRACE_SEIZE: no stop, no wait
    with open(%(tracer_file)r + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(%(tracer_file)r + ".tmp", %(tracer_file)r)
    os.write(w, b"y" if ok else b"n")
    while True:
        time.sleep(3600)
if os.read(r, 1) != b"y":
    sys.exit("ptrace failed")
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    time.sleep(3600)
'''


class Unkillable(lib.TestCase):
    def test_traced_zombie_is_given_up_after_the_grace(self):
        tracer_file = os.path.join(self.dir, "tracer.pid")
        app = lib.write_file(os.path.join(self.dir, "app"), WORKER % {"python": sys.executable,
                                                                      "tracer_file": tracer_file}, 0o755)
        tracer = []

        def stop_tracer():
            if tracer:
                try:
                    os.kill(tracer[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.addCleanup(stop_tracer)
        conf = notify_config(self, drain_timeout="1s")
        sup = self.start("--instance", "app", "--config", conf, "-s", app, "-p", str(lib.free_port()), "-f", "1")
        worker = sup.get_property("app", "Workers")[0][0]
        with open(tracer_file) as f:
            tracer.append(int(f.read()))
        started = time.monotonic()
        # Drain (ignored) 1 s, SIGKILL, then 10 s of grace: bounded well below the test's
        # stop timeout, which without the grace ends in "did not stop".
        code = sup.stop(timeout=60)
        took = time.monotonic() - started
        log = sup.output()
        self.assertIn("Killing worker %d" % worker, log)
        self.assertRegex(log, r"Worker %d is still there 10 s after SIGKILL \(a zombie traced by pid %d\): "
                              r"giving up on it" % (worker, tracer[0]))
        self.assertEqual(code, 1, log)
        self.assertGreaterEqual(took, 10.0)
        print("stopped %.1f s after SIGTERM, exit status %d" % (took, code))
        # Once its tracer is gone, the zombie is released (to init, the supervisor being
        # gone): nothing is left.
        stop_tracer()
        self.assert_pids_gone([worker, tracer[0]])


if __name__ == "__main__":
    lib.main()
