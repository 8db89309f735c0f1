#!/usr/bin/env python3
"""environment_file= against a real supervisor: read at the start and again at every
upgrade, so a reload picks up a changed file (new workers see the new value, old ones
keep theirs); combined as the supervisor's environment < the files < environment=; a bad
file refuses the upgrade with FILE:LINE and changes nothing."""

import os

import lib


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().partition("=")[::2] for e in f.read().split(b"\0") if e)


class EnvironmentFile(lib.TestCase):
    def setUp(self):
        super().setUp()
        self.v1 = lib.make_target(os.path.join(self.dir, "a"), "v1")
        self.envfile = os.path.join(self.dir, "app.env")

    def start_web(self):
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"),
                              "[worker]\n"
                              "environment_file = %s\n"
                              "environment_file = -%s/missing.env\n"
                              "environment = FROM_CONF=conf\n"
                              "[upgrade]\nready = notify\nready_timeout = 10s\ndrain_timeout = 10s\n"
                              % (self.envfile, self.dir))
        self.port = lib.free_port()
        # FROM_UNIT stands for what systemd's EnvironmentFile= of the unit put in the
        # supervisor's own environment: the files override it, environment= them.
        return self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(self.port), "-f", "2",
                          env={"LIVESWAP_BUS": "none", "FROM_UNIT": "unit", "OVERRIDDEN": "unit"})

    def worker_pids(self, sup, generation):
        return [w[0] for w in sup.get_property("web", "Workers") if w[1] == generation]

    def env_over_http(self, name):
        status, _, body = lib.http_get(("127.0.0.1", self.port), "/env?name=" + name)
        return body.strip()

    def test_reload_reads_the_file_again(self):
        lib.write_file(self.envfile, "# settings\nRELEASE_SETTING='one'\nOVERRIDDEN=file\nFROM_CONF=file\n")
        sup = self.start_web()
        old = self.worker_pids(sup, 1)
        self.assertEqual(len(old), 2)
        for pid in old:
            env = environ_of(pid)
            self.assertEqual((env["RELEASE_SETTING"], env["FROM_UNIT"], env["OVERRIDDEN"], env["FROM_CONF"]),
                             ("one", "unit", "file", "conf"))

        load = lib.Load(self, "127.0.0.1:%d" % self.port, clients=4)
        lib.write_file(self.envfile, "RELEASE_SETTING=\"two\"\nOVERRIDDEN=file\n")
        sup.client("--instance", "web", "-u", check=0)
        new = self.worker_pids(sup, 2)
        self.assertEqual(len(new), 2)
        for pid in new:
            self.assertEqual(environ_of(pid)["RELEASE_SETTING"], "two")
        self.assertEqual(self.env_over_http("RELEASE_SETTING"), "two")
        self.assert_no_failures(load.stop(), sup)

        # A bad file: the upgrade is refused with FILE:LINE, nothing changes.
        lib.write_file(self.envfile, "RELEASE_SETTING=three\nthis is not an assignment\n")
        p = sup.client("--instance", "web", "-u")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("%s:2: expected KEY=VALUE" % self.envfile, p.stderr)
        self.assertEqual(sup.get_property("web", "Generation"), 2)
        self.assertEqual(self.worker_pids(sup, 2), new)
        # Not an optional file, and gone: named, with the fix.
        os.unlink(self.envfile)
        p = sup.client("--instance", "web", "-u")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("%s: no such file (environment_file=; write it as -%s" % (self.envfile, self.envfile),
                      p.stderr)
        self.assertEqual(self.worker_pids(sup, 2), new)
        self.assertEqual(self.env_over_http("RELEASE_SETTING"), "two")

    def test_a_bad_file_at_the_start_is_a_configuration_error(self):
        lib.write_file(self.envfile, "A=1\nB='unterminated\n")
        conf = lib.write_file(os.path.join(self.dir, "liveswap.conf"), "[worker]\nenvironment_file = %s\n"
                              % self.envfile)
        sup = self.start("--instance", "web", "--config", conf, "-s", self.v1, "-p", str(lib.free_port()),
                         env={"LIVESWAP_BUS": "none"}, ready=False)
        self.assertEqual(sup.proc.wait(30), 78)
        self.assertIn("%s:2: unterminated single quote" % self.envfile, sup.output())


if __name__ == "__main__":
    lib.main()
