#!/usr/bin/env python3
"""The Debian package (debian/): built with `dpkg-buildpackage -us -uc -b` from a copy of
the source tree in a temporary directory (the build writes ../*.deb and debian/ files,
so never in the tree itself), checked with lintian and by its file list; then, where that
is safe, installed, used and purged.

Installing changes the machine: it runs only as root with LIVESWAP_TEST_INSTALL_PACKAGE=1
or CI=true (CI machines are fresh), and is skipped otherwise. Installed, the package must
give `liveswap -v`, `man -w liveswap`, the liveswap group, /etc/liveswap and the units
where systemd looks; an instance is then served from the installed user units by a
private `systemd --user` (tests/systemd/manager.py) and answered on 127.0.0.1. The
package is purged at the end whatever happened, and nothing of it may be left running.

Built once per `meson test` run, by the build without sanitizers."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "systemd"))
import lib  # noqa: E402
import manager  # noqa: E402

SOURCE_ROOT = os.environ.get("LIVESWAP_SOURCE_ROOT") or os.path.join(HERE, "..", "..")
SANITIZE = os.environ.get("LIVESWAP_SANITIZE", "none") or "none"
BUILD_TIMEOUT = 600
APT_TIMEOUT = 300
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
APT_OPTIONS = ["-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120"]
SOCKET = "liveswap@t.socket"
SERVICE = "liveswap@t.service"
BUILT = None  # (directory, path of the .deb, build log)


def run(args, timeout=BUILD_TIMEOUT, **kwargs):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kwargs)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode, p.stdout[-8000:],
                                                         p.stderr[-8000:]))
    return p


def build_skip_reason():
    if SANITIZE != "none":
        return "the package is built and checked once, by the build without sanitizers"
    for tool in ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb", "fakeroot"):
        if not shutil.which(tool):
            return "%s is missing (scripts/setup installs dpkg-dev, debhelper, lintian, fakeroot)" % tool
    p = subprocess.run(["dpkg-checkbuilddeps"], cwd=SOURCE_ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        return "build dependencies are missing: %s" % p.stderr.strip()
    return None


def install_skip_reason():
    if os.geteuid() != 0:
        return "installing a package needs root"
    if not (os.environ.get("LIVESWAP_TEST_INSTALL_PACKAGE") == "1" or os.environ.get("CI") == "true"):
        return ("installs the package on this machine only with LIVESWAP_TEST_INSTALL_PACKAGE=1 or CI=true "
                "(CI machines are fresh; a developer's is not)")
    return manager.skip_reason()


def copy_tree(destination):
    """The source tree as it is (committed or not), without build directories."""
    if os.path.isdir(os.path.join(SOURCE_ROOT, ".git")) or os.path.isfile(os.path.join(SOURCE_ROOT, ".git")):
        files = run(["git", "-C", SOURCE_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).stdout
        for name in filter(None, files.split("\0")):
            source = os.path.join(SOURCE_ROOT, name)
            if not os.path.lexists(source):
                continue  # deleted in the work tree, not yet in the index
            target = os.path.join(destination, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    else:
        shutil.copytree(SOURCE_ROOT, destination, symlinks=True,
                        ignore=shutil.ignore_patterns("build*", "obj-*", "__pycache__"))


def setUpModule():
    global BUILT
    reason = build_skip_reason()
    if reason:
        raise unittest.SkipTest(reason)
    directory = tempfile.mkdtemp(prefix="liveswap-package-")
    source = os.path.join(directory, "liveswap")
    try:
        copy_tree(source)
        p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=source, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BUILD_TIMEOUT,
                           env=dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % (os.cpu_count() or 1)))
        if p.returncode != 0:
            raise AssertionError("dpkg-buildpackage failed (%d):\n%s" % (p.returncode, p.stdout[-12000:]))
        debs = glob.glob(os.path.join(directory, "liveswap_*.deb"))
        if len(debs) != 1:
            raise AssertionError("want one liveswap_*.deb in %s, found %s" % (directory, os.listdir(directory)))
        BUILT = (directory, debs[0], p.stdout)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def tearDownModule():
    if BUILT:
        shutil.rmtree(BUILT[0], ignore_errors=True)


def package_files(deb):
    """{path: type} of the .deb, paths as installed ("/usr/bin/liveswap"); type is the
    first letter of `ls -l`'s mode (d, -, l)."""
    files = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        fields = line.split()
        path = fields[5][1:].rstrip("/") or "/"
        files[path] = fields[0][0]
    return files


def multiarch():
    return run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()


class Built(unittest.TestCase):
    maxDiff = None

    def test_lintian_reports_no_error_and_no_warning(self):
        directory, deb, _ = BUILT
        changes = glob.glob(os.path.join(directory, "liveswap_*.changes"))
        p = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info"] + changes,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        self.assertEqual(p.returncode, 0, "lintian:\n%s%s" % (p.stdout, p.stderr))
        print("lintian: %s" % (p.stdout.strip() or "(nothing)"), file=sys.stderr)

    def test_the_package_holds_every_part(self):
        files = package_files(BUILT[1])
        expected = [
            "/usr/bin/liveswap", "/usr/bin/liveswapctl",
            "/usr/lib/%s/liveswap/libliveswap-adopt.so" % multiarch(),
            "/usr/lib/systemd/system/liveswap@.service", "/usr/lib/systemd/system/liveswap@.socket",
            "/usr/lib/systemd/user/liveswap@.service", "/usr/lib/systemd/user/liveswap@.socket",
            "/usr/share/dbus-1/system.d/org.liveswap1.conf",
            "/usr/lib/sysusers.d/liveswap.conf",
            "/usr/share/man/man8/liveswap.8.gz", "/usr/share/man/man5/liveswap.conf.5.gz",
            "/usr/share/man/man1/liveswapctl.1.gz",
            "/usr/share/bash-completion/completions/liveswapctl", "/usr/share/bash-completion/completions/liveswap",
            "/usr/share/zsh/vendor-completions/_liveswapctl", "/usr/share/zsh/vendor-completions/_liveswap",
            "/usr/share/doc/liveswap/copyright", "/usr/share/doc/liveswap/example.conf",
            "/usr/share/doc/liveswap/examples/httpd.c", "/usr/share/doc/liveswap/examples/node/server.js",
            "/usr/share/doc/liveswap/examples/python/start",
            "/usr/share/ansible/plugins/modules/liveswap.py",
        ]
        missing = [path for path in expected if files.get(path) != "-"]
        self.assertEqual(missing, [], "the package holds:\n" + "\n".join(sorted(files)))
        self.assertEqual(files.get("/etc/liveswap"), "d")
        # The configuration directory is the administrator's: the package puts nothing in it.
        self.assertEqual([p for p in files if p.startswith("/etc/liveswap/")], [])
        self.assertEqual([p for p in files if p.endswith("meson.build")], [])
        # Not enabled: no symlink into a .wants directory.
        self.assertEqual([p for p in files if ".wants" in p or files[p] == "l"], [])

    def test_maintainer_scripts(self):
        control = tempfile.mkdtemp(prefix="liveswap-control-")
        try:
            run(["dpkg-deb", "-e", BUILT[1], control])
            with open(os.path.join(control, "control")) as f:
                fields = f.read()
            with open(os.path.join(control, "postinst")) as f:
                postinst = f.read()
            with open(os.path.join(control, "prerm")) as f:
                prerm = f.read()
        finally:
            shutil.rmtree(control, ignore_errors=True)
        # The group is made by systemd-sysusers, which the package then depends on.
        self.assertIn("systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} liveswap.conf", postinst)
        self.assertRegex(fields, r"\nDepends:.*systemd \| systemd-standalone-sysusers")
        # Never enabled or started, never stopped on upgrade; re-executed in place instead.
        for word in ("deb-systemd-helper enable", "deb-systemd-helper --user enable", "deb-systemd-invoke start", "deb-systemd-invoke restart",
                     "deb-systemd-invoke stop"):
            self.assertNotIn(word, postinst + prerm)
        self.assertIn("liveswapctl --system -i \"$instance\" reexec", postinst)
        self.assertRegex(prerm, r"remove\)\n(.*\n)*.*systemctl --system stop 'liveswap@\*.socket' 'liveswap@\*.service'")
        # The scripts are valid sh.
        for name, text in (("postinst", postinst), ("prerm", prerm)):
            p = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True, timeout=60)
            self.assertEqual((p.returncode, p.stderr), (0, ""), name)

    def test_the_build_compiles_without_warnings(self):
        """Debian's flags (-O2, _FORTIFY_SOURCE) see more than a debug build: the package
        builds with -Dwerror=false, so a warning must fail here instead."""
        warnings = [line for line in BUILT[2].splitlines() if ": warning:" in line]
        self.assertEqual(warnings, [])


class Installed(lib.TestCase):
    """Installs the package, uses it, purges it."""

    def setUp(self):
        reason = install_skip_reason()
        if reason:
            self.skipTest(reason)
        if subprocess.run(["dpkg-query", "-W", "-f=${Status}", "liveswap"], capture_output=True,
                          text=True).stdout.endswith(" installed"):
            self.fail("a liveswap package is installed already: this test installs and purges its own "
                      "(apt-get purge liveswap first)")
        super().setUp()
        self.group_existed = subprocess.run(["getent", "group", "liveswap"], capture_output=True).returncode == 0
        # Purged whatever happens, as the last cleanup (after the manager has stopped).
        self.addCleanup(self.purge)
        run(["apt-get", "install"] + APT_OPTIONS + [BUILT[1]], timeout=APT_TIMEOUT, env=APT_ENV)

    def purge(self):
        # apt knows a purged local package no more: only what dpkg still has is purged.
        if subprocess.run(["dpkg-query", "-W", "liveswap"], capture_output=True).returncode == 0:
            run(["apt-get", "purge"] + APT_OPTIONS + ["liveswap"], timeout=APT_TIMEOUT, env=APT_ENV)

    def test_install_serve_purge(self):
        p = run(["liveswap", "-v"])
        self.assertEqual(p.stdout, "liveswap 0.1.0\n")
        self.assertEqual(shutil.which("liveswap"), "/usr/bin/liveswap")
        self.assertEqual(run(["man", "-w", "liveswap"]).stdout.strip(), "/usr/share/man/man8/liveswap.8.gz")
        self.assertEqual(run(["man", "-w", "liveswapctl"]).stdout.strip(), "/usr/share/man/man1/liveswapctl.1.gz")
        run(["getent", "group", "liveswap"])
        self.assertTrue(os.path.isdir("/etc/liveswap"))
        # The supervisor preloads the adopt library from where the package put it.
        adopt = "/usr/lib/%s/liveswap/libliveswap-adopt.so" % multiarch()
        self.assertTrue(os.path.isfile(adopt))
        with open("/usr/bin/liveswap", "rb") as f:
            self.assertIn(adopt.encode() + b"\0", f.read())
        # The units are where systemd looks (the user ones are served from below).
        for scope in ("system", "user"):
            for unit in ("liveswap@.service", "liveswap@.socket"):
                path = "/usr/lib/systemd/%s/%s" % (scope, unit)
                self.assertTrue(os.path.isfile(path), path)

        self.serve_from_the_installed_units()

        # Nothing of the package is left running (the manager and its services stopped
        # with it; a supervisor outside it would show here).
        self.purge()
        left = []
        for exe in glob.glob("/proc/[0-9]*/exe"):
            try:
                target = os.readlink(exe)
            except OSError:
                continue
            if target.startswith(("/usr/bin/liveswap", "/usr/bin/liveswapctl")):
                left.append((exe, target))
        self.assertEqual(left, [])
        for path in ("/usr/bin/liveswap", "/usr/lib/systemd/user/liveswap@.service", "/etc/liveswap", adopt):
            self.assertFalse(os.path.exists(path), path)
        self.assertNotIn("install", subprocess.run(["dpkg-query", "-W", "-f=${Status}", "liveswap"],
                                                   capture_output=True, text=True).stdout)
        if self.group_existed:
            print("the liveswap group existed before the installation: its creation was not observed",
                  file=sys.stderr)

    def serve_from_the_installed_units(self):
        user_manager = manager.UserManager(self.dir, SystemInstallation())
        try:
            user_manager.start()
            user_manager.log_to_file(SERVICE)
            port = lib.free_port()
            user_manager.drop_in(SOCKET, "50-port", "[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n" % port)
            target = lib.make_target(os.path.join(self.dir, "app"), "v1")
            config = os.path.join(user_manager.config_home, "liveswap", "t.conf")
            os.makedirs(os.path.dirname(config))
            lib.write_file(config, "[worker]\ntarget = %s\nworkers = 2\n[upgrade]\nready = notify\n" % target)
            user_manager.systemctl("start", SOCKET)
            p = run(["curl", "-sS", "--max-time", "60", "http://127.0.0.1:%d/" % port], timeout=120)
            self.assertEqual(p.stdout, "v1\n", user_manager.service_output())
            user_manager.systemctl("start", SERVICE)  # joins the start job the connection queued
            props = user_manager.show(SERVICE, "ActiveState", "MainPID", "FragmentPath", "StatusText")
            self.assertEqual(props["ActiveState"], "active", user_manager.service_output())
            self.assertEqual(props["FragmentPath"], "/usr/lib/systemd/user/liveswap@.service")
            self.assertEqual(os.readlink("/proc/%s/exe" % props["MainPID"]), "/usr/bin/liveswap")
            self.assertRegex(props["StatusText"], r"^Serving generation 1 .*: 2/2 ready")
            # The installed client finds it.
            p = user_manager.liveswapctl("-i", "t", "status")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            problems = user_manager.stop()
            self.assertEqual(problems, [])


class SystemInstallation:
    """What manager.UserManager needs of an installation: the package's directories."""
    bindir = "/usr/bin"
    user_units = "/usr/lib/systemd/user"
    system_units = "/usr/lib/systemd/system"


if __name__ == "__main__":
    lib.main()
