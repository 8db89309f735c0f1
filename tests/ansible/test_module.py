#!/usr/bin/env python3
"""Unit tests of the Ansible module contrib/ansible/library/liveswap.py: its arguments,
what it runs and how it reads liveswapctl's --json output, in the manner of Ansible's
own module tests (units/modules/utils.py): the module's main() runs with arguments
given through set_module_args(), exit_json/fail_json raise instead of exiting, and
only AnsibleModule.run_command is replaced, by a fake liveswapctl that answers with
the JSON objects liveswapctl(1) documents. tests/integration/test_ansible.py runs the
module for real.

Run: python3 -m unittest tests/ansible/test_module.py, or as a script (meson test
--suite unit). ansible-core is Debian's package, importable from Debian's python3 only:
when the python3 first on PATH (a pyenv one, say) cannot import it, this re-runs itself
with ansible-playbook's interpreter."""

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock


def _ansible_python():
    """The interpreter ansible-playbook runs with (its #! line), or None."""
    path = shutil.which("ansible-playbook")
    if not path:
        return None
    with open(path, "rb") as f:
        line = f.readline().decode(errors="replace")
    if not line.startswith("#!"):
        return None
    words = line[2:].split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0] if words else None


try:
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
except ImportError:
    interpreter = _ansible_python()
    # Run again by the Python that has ansible: as a script, or under python3 -m unittest.
    command_line = getattr(sys, "orig_argv", [])
    again = command_line[1:] if __name__ == "__main__" or command_line[1:3] == ["-m", "unittest"] else None
    if again and interpreter and os.path.realpath(interpreter) != os.path.realpath(sys.executable) \
            and not os.environ.get("LIVESWAP_ANSIBLE_REEXEC"):
        os.environ["LIVESWAP_ANSIBLE_REEXEC"] = "1"
        os.execv(interpreter, [interpreter] + again)
    if __name__ == "__main__":
        print("SKIP: ansible-core is not installed (scripts/setup installs it)", file=sys.stderr)
        sys.exit(77)
    raise unittest.SkipTest("ansible is not importable from %s (ansible-core installs it for %s)"
                            % (sys.executable, interpreter or "Debian's python3"))

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_PATH = os.path.join(HERE, "..", "..", "contrib", "ansible", "library", "liveswap.py")
_spec = importlib.util.spec_from_file_location("liveswap_module", MODULE_PATH)
liveswap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(liveswap)


# ---- Ansible's module test helpers (as in ansible's test/units/modules/utils.py) ----

def set_module_args(args):
    args = dict(args)
    args.setdefault("_ansible_remote_tmp", "/tmp")
    args.setdefault("_ansible_keep_remote_files", False)
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def exit_json(*args, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def fail_json(*args, **kwargs):
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


def get_bin_path(self, name, required=False, opt_dirs=None):
    return "/usr/bin/" + name


# ---- a fake liveswapctl ----

def status_json(generation=3, target="/srv/app/releases/a", previous="/srv/app/releases/z", state="running"):
    return json.dumps({"instance": "app", "state": state, "pid": 42, "generation": generation, "target": target,
                       "previous_target": previous, "last_result": "success", "desired_workers": 2,
                       "ready_workers": 2, "draining_workers": 0, "control": "the private socket /run/x/bus",
                       "workers": []}) + "\n"


def failure_json(error, reason, status):
    return json.dumps({"instance": "app", "success": False, "error": error, "reason": reason,
                       "exit_status": status}) + "\n"


class FakeLiveswapctl:
    """Answers run_command by the liveswapctl command in the argv (the word after the
    options): RESPONSES maps it to a list of (rc, stdout, stderr), used in turn."""

    def __init__(self, **responses):
        self.responses = {k: list(v) for k, v in responses.items()}
        self.calls = []

    def command(self, argv):
        i = argv.index("-i")
        return argv[i + 2] if i + 2 < len(argv) else None

    def __call__(self, argv, *args, **kwargs):
        self.calls.append(list(argv))
        name = self.command(argv)
        queue = self.responses.get(name)
        if not queue:
            raise AssertionError("unexpected liveswapctl call %r" % argv)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def commands(self):
        return [self.command(argv) for argv in self.calls]


class ModuleTest(unittest.TestCase):
    def setUp(self):
        patcher = mock.patch.multiple(basic.AnsibleModule, exit_json=exit_json, fail_json=fail_json,
                                      get_bin_path=get_bin_path)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.dir = tempfile.mkdtemp(prefix="liveswap-ansible-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_module(self, args, fake, check_mode=False):
        """main() with ARGS and FAKE as run_command: ("exit"|"fail", result)."""
        if check_mode:
            args = dict(args, _ansible_check_mode=True)
        set_module_args(args)
        with mock.patch.object(basic.AnsibleModule, "run_command", side_effect=fake):
            try:
                liveswap.main()
            except AnsibleExitJson as e:
                return "exit", e.args[0]
            except AnsibleFailJson as e:
                return "fail", e.args[0]
        self.fail("main() neither exited nor failed")

    def releases(self):
        """releases/a, releases/b and current -> releases/b under a temporary app root."""
        root = os.path.realpath(self.dir)
        for name in ("a", "b"):
            os.makedirs(os.path.join(root, "releases", name))
        current = os.path.join(root, "current")
        os.symlink(os.path.join(root, "releases", "b"), current)
        return root, current

    # ---- arguments ----

    def test_instance_is_required(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("instance", result["msg"])
        self.assertEqual(fake.calls, [])

    def test_state_must_be_a_known_one(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({"instance": "app", "state": "upgrade"}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("state", result["msg"])
        self.assertEqual(fake.calls, [])

    def test_scope_must_be_a_known_one(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({"instance": "app", "scope": "session"}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("scope", result["msg"])

    def test_target_only_with_upgraded(self):
        for state in ("reloaded", "rolled_back", "restarted"):
            fake = FakeLiveswapctl()
            how, result = self.run_module({"instance": "app", "state": state, "target": "/srv/app/current"}, fake)
            self.assertEqual(how, "fail", state)
            self.assertIn("target is only for state=upgraded", result["msg"])
            self.assertEqual(fake.calls, [], "nothing is run for bad arguments")

    def test_relative_target_is_refused(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({"instance": "app", "target": "releases/b"}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("absolute path", result["msg"])
        self.assertEqual(fake.calls, [])

    def test_negative_timeout_is_refused(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({"instance": "app", "target": "/x", "timeout": -1}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("timeout", result["msg"])
        self.assertEqual(fake.calls, [])

    def test_liveswapctl_path_must_be_executable(self):
        fake = FakeLiveswapctl()
        how, result = self.run_module({"instance": "app", "liveswapctl": os.path.join(self.dir, "nope")}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("not an executable", result["msg"])
        self.assertEqual(fake.calls, [])

    def test_scope_and_instance_reach_liveswapctl(self):
        for scope, flags in (("system", ["--system"]), ("user", ["--user"]), ("auto", [])):
            fake = FakeLiveswapctl(status=[(0, status_json(), "")], reload=[
                (0, '{"instance":"app","success":true,"generation":4,"target":"/srv/app/releases/a"}\n', "")])
            how, result = self.run_module({"instance": "app", "scope": scope, "state": "reloaded"}, fake)
            self.assertEqual(how, "exit", result)
            for argv in fake.calls:
                self.assertEqual(argv[:2 + len(flags) + 2], ["/usr/bin/liveswapctl", "--json"] + flags + ["-i", "app"])

    # ---- upgrades and idempotence ----

    def test_upgrade_to_a_repointed_link_resolves_it(self):
        root, current = self.releases()
        a, b = os.path.join(root, "releases", "a"), os.path.join(root, "releases", "b")
        upgraded = json.dumps({"instance": "app", "success": True, "generation": 4, "target": b}) + "\n"
        fake = FakeLiveswapctl(status=[(0, status_json(3, a), ""), (0, status_json(4, b, a), "")],
                               upgrade=[(0, upgraded, "")])
        how, result = self.run_module({"instance": "app", "target": current}, fake)
        self.assertEqual(how, "exit", result)
        self.assertEqual(fake.commands(), ["status", "upgrade"])
        self.assertEqual(fake.calls[1][-2:], ["upgrade", b], "liveswap records the resolved path: ask for that")
        self.assertTrue(result["changed"])
        self.assertEqual((result["generation"], result["previous_generation"]), (4, 3))
        self.assertEqual((result["target"], result["previous_target"]), (b, a))

    def test_no_op_when_the_link_resolves_to_what_runs(self):
        root, current = self.releases()
        b = os.path.join(root, "releases", "b")
        fake = FakeLiveswapctl(status=[(0, status_json(4, b), "")])
        how, result = self.run_module({"instance": "app", "target": current}, fake)
        self.assertEqual(how, "exit", result)
        self.assertEqual(fake.commands(), ["status"])
        self.assertFalse(result["changed"])
        self.assertEqual((result["generation"], result["previous_generation"], result["target"]), (4, 4, b))

    def test_no_op_when_the_release_itself_runs(self):
        root, _ = self.releases()
        b = os.path.join(root, "releases", "b")
        fake = FakeLiveswapctl(status=[(0, status_json(4, b), "")])
        how, result = self.run_module({"instance": "app", "target": b + "/"}, fake)
        self.assertEqual(how, "exit", result)
        self.assertFalse(result["changed"])

    def test_check_mode_reports_the_upgrade_without_making_it(self):
        root, current = self.releases()
        a, b = os.path.join(root, "releases", "a"), os.path.join(root, "releases", "b")
        fake = FakeLiveswapctl(status=[(0, status_json(3, a), "")])
        how, result = self.run_module({"instance": "app", "target": current}, fake, check_mode=True)
        self.assertEqual(how, "exit", result)
        self.assertEqual(fake.commands(), ["status"])
        self.assertTrue(result["changed"])
        self.assertEqual((result["generation"], result["previous_generation"], result["target"]), (4, 3, b))

    def test_check_mode_no_op(self):
        root, current = self.releases()
        fake = FakeLiveswapctl(status=[(0, status_json(3, os.path.join(root, "releases", "b")), "")])
        how, result = self.run_module({"instance": "app", "target": current}, fake, check_mode=True)
        self.assertEqual(how, "exit", result)
        self.assertFalse(result["changed"])

    def test_empty_target_reloads(self):
        reloaded = '{"instance":"app","success":true,"generation":4,"target":"/srv/app/releases/a"}\n'
        fake = FakeLiveswapctl(status=[(0, status_json(), "")], reload=[(0, reloaded, "")])
        how, result = self.run_module({"instance": "app", "target": ""}, fake)
        self.assertEqual(how, "exit", result)
        self.assertEqual(fake.commands(), ["status", "reload"])
        self.assertTrue(result["changed"])
        self.assertEqual(result["generation"], 4)

    # ---- failures ----

    def test_rolled_back_upgrade_fails_with_the_reason(self):
        root, current = self.releases()
        a = os.path.join(root, "releases", "a")
        reason = "upgrade to generation 4 failed, still serving generation 3: worker 9 exited with status 1"
        fake = FakeLiveswapctl(status=[(0, status_json(3, a), "")],
                               upgrade=[(1, failure_json("UpgradeFailed", reason, 1), "liveswapctl: " + reason)])
        how, result = self.run_module({"instance": "app", "target": current}, fake)
        self.assertEqual(how, "fail", result)
        self.assertEqual(result["msg"], reason)
        self.assertEqual((result["error"], result["exit_status"]), ("UpgradeFailed", 1))
        self.assertFalse(result["changed"])
        self.assertEqual((result["generation"], result["previous_generation"], result["target"]), (3, 3, a))
        self.assertEqual(fake.commands(), ["status", "upgrade", "status"])

    def test_not_running(self):
        reason = "app is not running (no /run/liveswap/app/bus, and not on the user or system bus)"
        fake = FakeLiveswapctl(status=[(3, failure_json("NotRunning", reason, 3), "")])
        how, result = self.run_module({"instance": "app", "target": "/srv/app/current"}, fake)
        self.assertEqual(how, "fail")
        self.assertEqual((result["msg"], result["error"], result["exit_status"]), (reason, "NotRunning", 3))
        self.assertEqual(fake.commands(), ["status"])

    def test_permission_denied(self):
        fake = FakeLiveswapctl(status=[(0, status_json(), "")],
                               reload=[(4, failure_json("AccessDenied", "permission denied: ...", 4), "")])
        how, result = self.run_module({"instance": "app", "state": "reloaded"}, fake)
        self.assertEqual(how, "fail")
        self.assertEqual((result["error"], result["exit_status"]), ("AccessDenied", 4))

    def test_output_that_is_not_json(self):
        fake = FakeLiveswapctl(status=[(1, "", "liveswapctl: unknown option '--json'\n")])
        how, result = self.run_module({"instance": "app"}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("without a JSON result", result["msg"])
        self.assertIn("unknown option", result["msg"])

    def test_status_without_the_properties(self):
        fake = FakeLiveswapctl(status=[(0, '{"instance":"app","state":"running"}\n', "")])
        how, result = self.run_module({"instance": "app", "state": "reloaded"}, fake)
        self.assertEqual(how, "fail")
        self.assertIn("did not report generation", result["msg"])

    def test_timeout_cancels_the_upgrade(self):
        root, current = self.releases()
        fake = FakeLiveswapctl(status=[(0, status_json(3, os.path.join(root, "releases", "a")), "")],
                               upgrade=[(124, "", "")],
                               cancel=[(0, '{"instance":"app","cancelled":true}\n', "")])
        how, result = self.run_module({"instance": "app", "target": current, "timeout": 30}, fake)
        self.assertEqual(how, "fail", result)
        self.assertIn("did not finish within 30 s", result["msg"])
        self.assertEqual(result["error"], "Timeout")
        self.assertEqual(fake.commands(), ["status", "upgrade", "cancel", "status"])
        self.assertEqual(fake.calls[1][:3], ["/usr/bin/timeout", "30", "/usr/bin/liveswapctl"])

    # ---- the other states ----

    def test_rollback(self):
        rolled = '{"instance":"app","success":true,"generation":4,"target":"/srv/app/releases/z"}\n'
        fake = FakeLiveswapctl(status=[(0, status_json(), "")], rollback=[(0, rolled, "")])
        how, result = self.run_module({"instance": "app", "state": "rolled_back"}, fake)
        self.assertEqual(how, "exit", result)
        self.assertTrue(result["changed"])
        self.assertEqual((result["generation"], result["target"]), (4, "/srv/app/releases/z"))

    def test_rollback_without_a_previous_target(self):
        fake = FakeLiveswapctl(status=[(0, status_json(previous=""), "")])
        for check_mode in (False, True):
            how, result = self.run_module({"instance": "app", "state": "rolled_back"}, fake, check_mode)
            self.assertEqual(how, "fail")
            self.assertEqual(result["error"], "NoPrevious")
        self.assertEqual(fake.commands(), ["status", "status"])

    def test_restart_changes_without_a_new_generation(self):
        fake = FakeLiveswapctl(status=[(0, status_json(), "")],
                               restart=[(0, '{"instance":"app","restarting":true}\n', "")])
        how, result = self.run_module({"instance": "app", "state": "restarted"}, fake)
        self.assertEqual(how, "exit", result)
        self.assertTrue(result["changed"])
        self.assertEqual(result["generation"], 3)
        self.assertEqual(fake.commands(), ["status", "restart", "status"])


class Documentation(unittest.TestCase):
    def test_documented_options_are_the_argument_spec(self):
        import yaml  # ansible-core depends on PyYAML
        doc = yaml.safe_load(liveswap.DOCUMENTATION)
        self.assertEqual(set(doc["options"]), set(liveswap.ARGUMENT_SPEC))
        for name, spec in liveswap.ARGUMENT_SPEC.items():
            self.assertEqual(doc["options"][name].get("type"), spec["type"], name)
            self.assertEqual(doc["options"][name].get("default"), spec.get("default"), name)
            self.assertEqual(doc["options"][name].get("choices"), spec.get("choices"), name)
            self.assertEqual(bool(doc["options"][name].get("required")), bool(spec.get("required")), name)
        yaml.safe_load(liveswap.EXAMPLES)
        self.assertTrue({"generation", "previous_generation", "target"} <= set(yaml.safe_load(liveswap.RETURN)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
