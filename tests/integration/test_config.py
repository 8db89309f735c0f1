#!/usr/bin/env python3
"""The configuration file as the real binary reads it: a stop while a big file is being
parsed at start-up, and long lines reaching a worker intact."""

import os
import signal
import time

import lib
from test_upgrade import notify_config

CONFIG_FILE_MAX = 16 << 20  # config.h


def huge_config(directory, line, tail=""):
    """A file just under the size limit, [worker] and then LINE % i for i = 0, 1, ...
    (about 690,000 environment= lines), then TAIL: the most work a start can be asked
    to do."""
    path = os.path.join(directory, "huge.conf")
    count = (CONFIG_FILE_MAX - 100 - len(tail)) // len(line % 0)
    with open(path, "w") as f:
        f.write("[worker]\n")
        f.write("".join(line % i for i in range(count)))
        f.write(tail)
    return path


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def freeze_while_reading(pid, path, timeout=lib.DEFAULT_TIMEOUT):
    """Stops PID with SIGSTOP as soon as it has PATH open; returns the file offset it had
    reached then, or None if it never had the file open while we looked (it read it all
    in between, or exited)."""
    deadline = time.monotonic() + timeout
    fd = None
    while fd is None:
        if time.monotonic() > deadline:
            raise AssertionError("liveswap never opened %s" % path)
        try:
            for name in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, name)) == path:
                        fd = name
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            return None  # exited
        if fd is None:
            time.sleep(0.001)  # /proc offers no event to wait on; bounded by the deadline
    os.kill(pid, signal.SIGSTOP)
    while proc_state(pid) not in ("T", "Z"):
        if time.monotonic() > deadline:
            raise AssertionError("liveswap did not stop")
        time.sleep(0.001)
    try:
        with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
            return int(f.read().split("pos:")[1].split()[0])
    except (FileNotFoundError, IndexError):
        return None  # closed between the listing and the stop: parsing had ended


class Config(lib.TestCase):
    def stop_while_parsing(self, sig):
        # Every name different (a search per line took 20 minutes over these), and a bad
        # last line, so that a liveswap that does read it all exits 78 on its own.
        conf = huge_config(self.dir, "environment = V%07d=x\n", "workers = x\n")
        size = os.path.getsize(conf)
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        # Parsing takes a fraction of a second: catch it under way (a few tries on a busy
        # machine), which the file offset proves.
        for attempt in range(10):
            sup = lib.Supervisor(self, [lib.LIVESWAP, "--instance", "big", "--config", conf, "-s", v1, "-p",
                                        str(lib.free_port())])
            pos = freeze_while_reading(sup.proc.pid, conf)
            if pos is not None and pos < size:
                break
            os.kill(sup.proc.pid, signal.SIGCONT)
            self.assertEqual(sup.proc.wait(60), 78, sup.output())
        else:
            self.fail("never caught liveswap while it was reading its configuration")

        sup.proc.send_signal(sig)
        os.kill(sup.proc.pid, signal.SIGCONT)
        start = time.monotonic()
        try:
            status = sup.proc.wait(10)
        except Exception:
            raise AssertionError("liveswap was still running 10 s after %s at byte %d of %d of its configuration"
                                 % (signal.Signals(sig).name, pos, size))
        # The signal's own default action: nothing was started, nothing is left behind.
        self.assertEqual(status, -sig, sup.output())
        self.assertLess(time.monotonic() - start, 10)
        self.assertFalse(os.path.exists(os.path.join(sup.run_dir, "liveswap", "big")))
        self.assertNotIn("Starting", sup.output())

    def test_sigterm_while_parsing(self):
        self.stop_while_parsing(signal.SIGTERM)

    def test_sigint_while_parsing(self):
        self.stop_while_parsing(signal.SIGINT)

    def test_huge_config_starts(self):
        # The largest file allowed starts at once. (One name set 690,000 times: 690,000
        # different ones would be more than execve() takes.)
        conf = huge_config(self.dir, "environment = V=%07d\n", "[upgrade]\nready = notify\nready_timeout = 30s\n")
        with open(conf) as f:
            last = f.read().rsplit("V=", 1)[1].split()[0]
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        port = lib.free_port()
        start = time.monotonic()
        sup = self.start("--instance", "big", "--config", conf, "-s", v1, "-p", str(port))
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(lib.http_get(("127.0.0.1", port), "/env?name=V")[2], last)
        with open(conf, "a") as f:
            f.write("; one byte too many" + "x" * (CONFIG_FILE_MAX - os.path.getsize(conf)) + "\n")
        p = sup.client("-i", "big", "-u")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("file too large (at most 16 MiB)", p.stdout + p.stderr)

    def test_long_values_reach_the_worker(self):
        # A DATABASE_URL and a command line far beyond inih's own 200-byte lines.
        url = "postgres://app:" + "p" * 6000 + "@db/app?sslmode=require;x=1"
        v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        conf = lib.write_file(os.path.join(self.dir, "long.conf"),
                              "[worker]\nenvironment = DATABASE_URL=%s ; the database\n"
                              "[upgrade]\nready = notify\nready_timeout = 30s\n" % url)
        port = lib.free_port()
        self.start("--instance", "long", "--config", conf, "-s", v1, "-p", str(port))
        self.assertEqual(lib.http_get(("127.0.0.1", port), "/env?name=DATABASE_URL")[2], url)


if __name__ == "__main__":
    lib.main()
