#!/usr/bin/env python3
"""Workers held by a tracer (a debugger, LeakSanitizer's tracer in sanitizer builds). A
ptraced zombie is visible to its tracer only: its parent cannot reap it until the tracer
lets go. The supervisor must notice the exit once the tracer lets go (sd-event's child
source lost it: CI's stop that never ended), and must give up on a killed worker that a
tracer never lets go, as systemd does after its final SIGKILL, instead of waiting
forever."""

import os
import signal
import time

import lib
from test_upgrade import notify_config

# The worker's tracer. With HOLD it never waits: the worker stays in the stop of its
# SIGTERM until the SIGKILL, and then a zombie; without, it passes SIGTERM on, the worker
# exits, and the tracer lets go half a second after it is a zombie.
TRACER = r'''
# A tracee stops at each signal until its tracer passes it on (SIGTERM, SIGCONT; with
# HOLD nothing is passed on, and the worker stays in its SIGTERM's stop until the
# SIGKILL). Its exit is looked at, not waited for: waiting lets go of a zombie tracee.
for _ in range(0 if %(hold)s else 20):
    seen = os.waitid(os.P_PID, parent, os.WEXITED | os.WSTOPPED | os.WNOWAIT | 0x40000000)  # __WALL
    if seen.si_code != os.CLD_TRAPPED:
        break
    os.waitpid(parent, 0x40000000)  # takes the stop
    # PTRACE_CONT, passing a signal on (an event stop, SIGTRAP | event << 8, passes none)
    libc.ptrace(7, parent, None, ctypes.c_void_p(seen.si_status if seen.si_status < 64 else 0))
while %(hold)s or open("/proc/%%d/stat" %% parent).read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.05)  # polling /proc: nothing tells a tracer that lets its tracee run
time.sleep(0.5)
'''
# The worker itself: ready at once, and SIGTERM ignored (HOLD) or an exit.
WORKER = r'''
signal.signal(signal.SIGTERM, signal.SIG_IGN if %(hold)s else lambda *_: os._exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    time.sleep(3600)
'''


class Traced(lib.TestCase):
    def start_traced(self, hold, drain_timeout):
        """A supervisor of one traced worker; returns it, the worker's pid, and a list that
        holds the tracer's pid."""
        tracer_file = os.path.join(self.dir, "tracer.pid")
        app = lib.write_file(os.path.join(self.dir, "app"), lib.traced_program(
            tracer_file, TRACER % {"hold": hold}, WORKER % {"hold": hold}), 0o755)
        tracer = []

        def stop_tracer():
            if tracer:
                try:
                    os.kill(tracer[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.addCleanup(stop_tracer)
        conf = notify_config(self, drain_timeout=drain_timeout)
        sup = self.start("--instance", "app", "--config", conf, "-s", app, "-p", str(lib.free_port()), "-f", "1")
        worker = sup.get_property("app", "Workers")[0][0]
        with open(tracer_file) as f:
            tracer.append(int(f.read()))
        return sup, worker, tracer, stop_tracer

    def test_exit_noticed_once_the_tracer_lets_go(self):
        # The worker exits on SIGTERM while traced; its tracer lets go 0.5 s later. The
        # stop must end then, not at drain_timeout (60 s here) nor ever later.
        sup, worker, tracer, _ = self.start_traced(False, "60s")
        started = time.monotonic()
        code = sup.stop(timeout=30)
        took = time.monotonic() - started
        log = sup.output()
        self.assertEqual(code, 0, log)
        self.assertIn("Worker %d (generation 1, slot 0) exited with status 0 after draining" % worker, log)
        self.assertNotIn("Killing worker", log)
        self.assertNotIn("not reported", log)
        self.assertLess(took, 20.0, log)
        print("stopped %.1f s after SIGTERM" % took)
        self.assert_pids_gone([worker, tracer[0]])

    def test_traced_zombie_is_given_up_after_the_grace(self):
        sup, worker, tracer, stop_tracer = self.start_traced(True, "1s")
        started = time.monotonic()
        # Drain (ignored) 1 s, SIGKILL, then 10 s of grace: bounded well below the test's
        # stop timeout, which without the grace ends in "did not stop".
        code = sup.stop(timeout=60)
        took = time.monotonic() - started
        log = sup.output()
        # Killed in its SIGTERM's stop, which the kill's log line says.
        self.assertIn("Killing worker %d: it did not exit in time (a process traced by pid %d)" % (worker, tracer[0]), log)
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
