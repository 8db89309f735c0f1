#!/usr/bin/env python3
"""Shell completion (completion/): bash's functions are called as bash calls them, with
COMP_WORDS and COMP_CWORD set, and their COMPREPLY checked: commands, options, the names
of instances that a real supervisor runs (from `liveswapctl list`), files for `upgrade`
and liveswap's flags. zsh's files are parsed by zsh, and its instance helper is run
against the same supervisor."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SOURCE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
COMPLETION = os.path.join(SOURCE_ROOT, "completion")
LIVESWAPCTL = os.environ.get("LIVESWAPCTL", "liveswapctl")


class Bash(lib.TestCase):
    def complete(self, script, function, *words, env=None, cwd=None):
        """COMPREPLY of FUNCTION (from SCRIPT) for the command line WORDS, the cursor on
        the last word, one candidate a line."""
        program = ('source "$1"; shift; fn=$1; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                   'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; "$fn" "${COMP_WORDS[0]}" '
                   '"${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"; printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", program, "bash", os.path.join(COMPLETION, script),
                            function] + list(words), capture_output=True, text=True, timeout=60,
                           env=env or os.environ, cwd=cwd or self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        return [line for line in p.stdout.split("\n") if line]

    def ctl(self, *words, **kwargs):
        return self.complete("liveswapctl.bash", "_liveswapctl", LIVESWAPCTL, *words, **kwargs)

    def test_commands(self):
        self.assertEqual(sorted(self.ctl("")), sorted(
            "status upgrade reload rollback cancel restart stop message scale list reexec logs".split()))
        self.assertEqual(sorted(self.ctl("re")), ["reexec", "reload", "restart"])
        # After the instance option and its value, still a command.
        self.assertEqual(self.ctl("-i", "web", "--system", "st"), ["status", "stop"])
        # After the command, nothing for a command without arguments.
        self.assertEqual(self.ctl("status", ""), [])

    def test_options(self):
        self.assertEqual(sorted(self.ctl("--")), sorted(
            "--instance --system --user --host --json --no-wait --help --version".split()))
        self.assertEqual(self.ctl("status", "--j"), ["--json"])
        # logs has options of its own, only there.
        self.assertIn("--follow", self.ctl("logs", "--"))
        self.assertIn("--generation", self.ctl("logs", "--"))
        self.assertNotIn("--follow", self.ctl("status", "--"))

    def test_instance_names_from_a_running_supervisor(self):
        target = lib.make_target(os.path.join(self.dir, "app"), "v1")
        env = dict(os.environ)
        names = ["web-a", "web-b"]
        for name in names:
            sup = self.start("-i", name, "-s", target, "-l", os.path.join(self.dir, name + ".sock"), "-f", "1")
            env["XDG_RUNTIME_DIR"] = sup.run_dir  # every Supervisor of a test shares it
        for option in ("-i", "--instance"):
            got = self.ctl(option, "", env=env)
            for name in names:
                self.assertIn(name, got, "liveswapctl list says:\n" + subprocess.run(
                    [LIVESWAPCTL, "list"], env=env, capture_output=True, text=True, timeout=60).stdout)
            self.assertNotIn("INSTANCE", got)  # the header is not a name
        self.assertEqual(self.ctl("-i", "web-b", env=env), ["web-b"])
        self.assertEqual(self.ctl("upgrade", "-i", "web-a", env=env), ["web-a"])
        # liveswap's -i asks liveswapctl on the PATH.
        env["PATH"] = os.path.dirname(os.path.abspath(LIVESWAPCTL)) + ":" + env.get("PATH", "")
        got = self.complete("liveswap.bash", "_liveswap", "liveswap", "-i", "web", env=env)
        self.assertEqual(sorted(got), names)

    def test_upgrade_completes_paths(self):
        os.makedirs(os.path.join(self.dir, "releases", "42"))
        lib.write_file(os.path.join(self.dir, "server-v2"), "#!/bin/sh\n", 0o755)
        self.assertEqual(self.ctl("upgrade", "rel"), ["releases"])
        self.assertEqual(self.ctl("upgrade", "releases/"), ["releases/42"])
        self.assertEqual(self.ctl("--json", "upgrade", "ser"), ["server-v2"])
        # One target only; scale's count is not a path.
        self.assertEqual(self.ctl("upgrade", "server-v2", "rel"), [])
        self.assertEqual(self.ctl("scale", "rel"), [])

    def test_liveswap_flags(self):
        got = self.complete("liveswap.bash", "_liveswap", "liveswap", "--")
        for flag in ("--instance", "--config", "--listen", "--socket-mode", "--workers", "--forks", "--start",
                     "--port", "--address", "--pre-upgrade", "--start-timeout", "--head", "--adopt", "--no-adopt",
                     "--watchdog", "--memory-max", "--upgrade", "--kill", "--die", "--message", "--version",
                     "--help", "--foreground"):
            self.assertIn(flag, got)
        self.assertEqual(self.complete("liveswap.bash", "_liveswap", "liveswap", "--no"), ["--no-adopt"])
        lib.write_file(os.path.join(self.dir, "server-v1"), "#!/bin/sh\n", 0o755)
        for flag in ("-s", "--start", "-u", "-c"):
            self.assertEqual(self.complete("liveswap.bash", "_liveswap", "liveswap", flag, "ser"), ["server-v1"])
        self.assertEqual(self.complete("liveswap.bash", "_liveswap", "liveswap", "-f", "ser"), [])

    def test_every_option_of_the_programs_is_offered(self):
        """The lists in the scripts follow --help: an option added to a program and not
        to its completion fails here."""
        for program, script, function in ((LIVESWAPCTL, "liveswapctl.bash", "_liveswapctl"),
                                          (lib.LIVESWAP, "liveswap.bash", "_liveswap")):
            helptext = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=60).stdout
            # liveswapctl's -f and --generation are offered after `logs` only.
            offered = self.complete(script, function, program, "-") + self.complete(script, function, program,
                                                                                    "logs", "-")
            for option in set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", helptext)):
                self.assertIn(option, offered, "%s --help names %s" % (program, option))


@unittest.skipUnless(shutil.which("zsh"), "zsh is not installed")
class Zsh(lib.TestCase):
    def test_scripts_parse(self):
        for name in ("_liveswapctl", "_liveswap"):
            p = subprocess.run(["zsh", "-n", os.path.join(COMPLETION, name)], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual((p.returncode, p.stderr), (0, ""), name)

    def test_instance_names_from_a_running_supervisor(self):
        target = lib.make_target(os.path.join(self.dir, "app"), "v1")
        sup = self.start("-i", "zed", "-s", target, "-l", os.path.join(self.dir, "zed.sock"), "-f", "1")
        env = dict(os.environ, XDG_RUNTIME_DIR=sup.run_dir)
        # The helper that -i uses, outside the completion system: $words as zsh sets it.
        script = ('source "$1" 2>/dev/null; words=("$2" -i ""); local -a reply; '
                  '_liveswapctl_instance_names && print -l -- $reply')
        p = subprocess.run(["zsh", "-f", "-c", "_f() { %s }; _f \"$@\"" % script, "zsh",
                            os.path.join(COMPLETION, "_liveswapctl"), LIVESWAPCTL], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertIn("zed", p.stdout.split(), p.stderr)


if __name__ == "__main__":
    lib.main()
