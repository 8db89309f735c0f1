# -*- coding: utf-8 -*-
# liveswap.py: the Ansible module `liveswap`. It upgrades, reloads, rolls back or
# restarts one liveswap instance on the managed host by running `liveswapctl --json`,
# and tells Ansible the truth about it: changed when the generation changed, failed
# (with the supervisor's rollback reason) when the upgrade was rolled back. Rolling a
# release across hosts is the playbook's job (serial:, max_fail_percentage:), see
# contrib/ansible/deploy.yml and its README.
#
# No shebang, on purpose: Ansible runs a module with the host's discovered (or
# configured) interpreter, as it does its own modules, and a packaged file with a
# shebang that is not executable is a lintian warning.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: liveswap
short_description: Upgrade, reload, roll back or restart a liveswap instance
description:
  - Controls one instance of the liveswap supervisor on the managed host with
    C(liveswapctl --json).
  - With I(state=upgraded) and a I(target), upgrades the instance to that target with
    zero downtime, unless it already serves it. The comparison is on the resolved
    path, as liveswap records it, so a C(current) symlink repointed to a new release
    is an upgrade, and a second run after that is not.
  - An upgrade that fails is rolled back by the supervisor itself; the task then fails
    with the supervisor's reason. With C(serial) and C(max_fail_percentage=0) a play
    stops at the first host that rolled back.
version_added: "0.1.0"
author:
  - liveswap authors
options:
  instance:
    description:
      - The liveswap instance (C(liveswapctl -i)).
    type: str
    required: true
  target:
    description:
      - The absolute path of the executable or directory to upgrade to. Symlinks are
        resolved on the host, as liveswap resolves them.
      - Empty or not given with I(state=upgraded) means a reload (re-read the
        configuration, upgrade to the configured target resolved again).
      - Only with I(state=upgraded).
    type: path
  state:
    description:
      - C(upgraded) upgrades to I(target) when the instance does not serve it yet (a
        reload when I(target) is empty).
      - C(reloaded) always reloads, C(rolled_back) always upgrades back to the previous
        target, C(restarted) always kills and restarts every worker (not zero-downtime).
        These three report changed whenever they run.
    type: str
    choices: [upgraded, reloaded, rolled_back, restarted]
    default: upgraded
  scope:
    description:
      - Where to find the instance. C(system) is the system bus (C(liveswapctl
        --system)), C(user) the user bus of the remote user (C(--user)). C(auto) tries the
        instance's private socket, then the user bus, then the system bus.
    type: str
    choices: [system, user, auto]
    default: auto
  liveswapctl:
    description:
      - The liveswapctl program, a path or a name looked up in C(PATH).
    type: path
    default: liveswapctl
  timeout:
    description:
      - Seconds to wait for the upgrade (or reload, rollback) to finish; 0 waits as long
        as the supervisor takes (its own C(ready_timeout) bounds it).
      - When it expires, the running upgrade is cancelled (the supervisor rolls back)
        and the task fails.
    type: int
    default: 0
notes:
  - Check mode is supported. It reads the instance's state and reports what would
    change without changing it. It resolves I(target) as it is when the task runs, so
    in a check run a C(current) link that an earlier task would repoint still points to
    the old release.
  - Needs C(liveswapctl) and C(timeout) (coreutils, only when I(timeout) is set) on the
    managed host.
seealso:
  - name: liveswapctl(1)
    description: The client this module runs; its C(--json) objects and exit statuses.
    link: https://github.com/liveswap/liveswap/blob/main/man/liveswapctl.1.scd
"""

EXAMPLES = r"""
- name: Repoint current to the new release, Capistrano-style
  ansible.builtin.file:
    src: /srv/app/releases/{{ release }}
    dest: /srv/app/current
    state: link

- name: Upgrade with zero downtime (a no-op when it already serves that release)
  liveswap:
    instance: app
    target: /srv/app/current
    scope: system
  register: upgrade

- name: Re-read /etc/liveswap/app.conf and upgrade to the configured target
  liveswap:
    instance: app
    state: reloaded

- name: Go back to the previous release
  liveswap:
    instance: app
    state: rolled_back
"""

RETURN = r"""
instance:
  description: The instance.
  returned: always
  type: str
  sample: app
generation:
  description:
    - The generation the instance serves after the task (after a rollback, the old
      one). In check mode, the generation it would serve.
  returned: when the instance could be reached
  type: int
  sample: 7
previous_generation:
  description: The generation it served before the task.
  returned: when the instance could be reached
  type: int
  sample: 6
target:
  description:
    - The resolved target the instance serves after the task. In check mode, the one it
      would serve (unknown for a reload, then the current one).
  returned: when the instance could be reached
  type: str
  sample: /srv/app/releases/20240501
previous_target:
  description: The resolved target it served before the task.
  returned: when the instance could be reached
  type: str
  sample: /srv/app/releases/20240420
error:
  description:
    - On failure, liveswapctl's stable error name (C(UpgradeFailed), C(HookFailed),
      C(Busy), C(NoPrevious), C(InvalidTarget), C(NotRunning), C(AccessDenied), ...).
  returned: failure
  type: str
  sample: UpgradeFailed
exit_status:
  description:
    - On failure, liveswapctl's exit status (1 failed or rolled back, 2 invalid, 3 not
      running, 4 permission denied).
  returned: failure
  type: int
  sample: 1
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

# liveswapctl's exit statuses (liveswapctl(1), EXIT STATUS).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_ACCESS = 4
# coreutils timeout(1) when the time ran out.
EXIT_TIMED_OUT = 124

ARGUMENT_SPEC = dict(
    instance=dict(type="str", required=True),
    target=dict(type="path"),
    state=dict(type="str", default="upgraded", choices=["upgraded", "reloaded", "rolled_back", "restarted"]),
    scope=dict(type="str", default="auto", choices=["system", "user", "auto"]),
    liveswapctl=dict(type="path", default="liveswapctl"),
    timeout=dict(type="int", default=0),
)

SCOPE_FLAGS = {"system": ["--system"], "user": ["--user"], "auto": []}


class Failure(Exception):
    """A failure to report with fail_json: MSG and the fields to return with it."""

    def __init__(self, msg, **fields):
        Exception.__init__(self, msg)
        self.msg = msg
        self.fields = fields


def parse_output(rc, stdout, stderr):
    """liveswapctl --json prints one object on stdout, for failures too. Returns it;
    raises Failure for a failure object, or for output that is not one."""
    text = (stdout or "").strip()
    obj = None
    if text:
        # One object on one line; anything before it is not liveswapctl's.
        try:
            obj = json.loads(text.splitlines()[-1])
        except ValueError:
            obj = None
    if not isinstance(obj, dict):
        raise Failure("liveswapctl exited with status %d without a JSON result: %s"
                      % (rc, (stderr or stdout or "no output").strip()), exit_status=rc)
    if rc != EXIT_OK or obj.get("success") is False:
        raise Failure(obj.get("reason") or "failed (status %d)" % rc, error=obj.get("error") or "Failed",
                      exit_status=obj.get("exit_status", rc))
    return obj


class Liveswapctl:
    """Runs liveswapctl for one instance through module.run_command."""

    def __init__(self, module):
        self.module = module
        params = module.params
        program = params["liveswapctl"]
        if "/" not in program:
            program = module.get_bin_path(program, required=True)
        elif not os.access(program, os.X_OK):
            raise Failure("liveswapctl %s is not an executable file" % program)
        self.base = [program, "--json"] + SCOPE_FLAGS[params["scope"]] + ["-i", params["instance"]]
        self.timeout = params["timeout"]

    def run(self, *command, **kwargs):
        rc, stdout, stderr = self.module.run_command(self.base + list(command), **kwargs)
        return parse_output(rc, stdout, stderr)

    def status(self):
        status = self.run("status")
        for key in ("generation", "target", "state"):
            if key not in status:
                raise Failure("liveswapctl status did not report %s (a different version?)" % key)
        return status

    def wait_for(self, *command):
        """COMMAND that waits for the upgrade it starts, bounded by timeout (if set)."""
        if self.timeout <= 0:
            return self.run(*command)
        timeout = self.module.get_bin_path("timeout", required=True)
        argv = [timeout, str(self.timeout)] + self.base + list(command)
        rc, stdout, stderr = self.module.run_command(argv)
        if rc != EXIT_TIMED_OUT:
            return parse_output(rc, stdout, stderr)
        # liveswapctl is gone; the upgrade it asked for goes on in the supervisor. A host
        # that did not finish in time must not finish later behind the play's back.
        try:
            self.run("cancel")
        except Failure as e:
            if e.fields.get("exit_status") != EXIT_USAGE:  # 2: no upgrade runs any more
                raise Failure("the upgrade did not finish within %d s, and cancelling it failed: %s"
                              % (self.timeout, e.msg), error="Timeout", exit_status=EXIT_TIMED_OUT)
            raise Failure("the upgrade did not finish within %d s (it ended as it was being cancelled; "
                          "see the generation)" % self.timeout, error="Timeout", exit_status=EXIT_TIMED_OUT)
        raise Failure("the upgrade did not finish within %d s: cancelled, the instance rolls back" % self.timeout,
                      error="Timeout", exit_status=EXIT_TIMED_OUT)


def check_arguments(params):
    target = params["target"]
    if target and params["state"] != "upgraded":
        raise Failure("target is only for state=upgraded (state=%s takes none)" % params["state"])
    if target and not os.path.isabs(target):
        raise Failure("target must be an absolute path, not %s" % target)
    if params["timeout"] < 0:
        raise Failure("timeout must be 0 (no limit) or a number of seconds, not %d" % params["timeout"])
    if not params["instance"]:
        raise Failure("instance must not be empty")


def plan(params, status):
    """What the task would do to an instance in STATUS: (command, would-be target, what
    changes), or (None, None, why nothing changes)."""
    state, target = params["state"], params["target"]
    served = status["target"]
    if state == "upgraded" and target:
        # liveswap resolves symlinks at upgrade time and records the resolved path
        # (liveswap(8)): compare like with like.
        resolved = os.path.realpath(target)
        if resolved == served:
            return None, served, "%s already serves %s" % (params["instance"], served)
        return ["upgrade", resolved], resolved, "upgrade from %s to %s" % (served, resolved)
    if state in ("upgraded", "reloaded"):
        return ["reload"], served, "reload (re-read the configuration and upgrade)"
    if state == "rolled_back":
        previous = status.get("previous_target") or ""
        if not previous:
            raise Failure("%s: there is no previous target" % params["instance"], error="NoPrevious",
                          exit_status=EXIT_FAILED)
        return ["rollback"], previous, "roll back from %s to %s" % (served, previous)
    return ["restart"], served, "restart every worker"


def execute(module):
    params = module.params
    check_arguments(params)
    ctl = Liveswapctl(module)
    before = ctl.status()
    result = dict(instance=params["instance"], generation=before["generation"],
                  previous_generation=before["generation"], target=before["target"],
                  previous_target=before["target"])
    command, target, what = plan(params, before)
    result["msg"] = what
    if command is None:
        result["changed"] = False
        return result
    if module.check_mode:
        # Every one of these makes a new generation, except restart, which replaces
        # every worker of the same one (and so changes too).
        result.update(changed=True, target=target,
                      generation=before["generation"] + (command[0] != "restart"))
        result["msg"] = "would " + what
    else:
        try:
            if command[0] == "restart":
                ctl.run(*command)
                after = ctl.status()
            else:
                after = ctl.wait_for(*command)
        except Failure as e:
            # Rolled back (or refused): say what the instance serves now.
            try:
                now = ctl.status()
                e.fields.update(generation=now["generation"], target=now["target"])
            except Failure:
                pass
            e.fields.setdefault("previous_generation", before["generation"])
            e.fields.setdefault("previous_target", before["target"])
            raise
        result.update(generation=after["generation"], target=after.get("target") or target)
        result["changed"] = command[0] == "restart" or after["generation"] != before["generation"]
    if module._diff:
        result["diff"] = dict(before="target: %s\ngeneration: %d\n" % (before["target"], before["generation"]),
                              after="target: %s\ngeneration: %d\n" % (result["target"], result["generation"]))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = execute(module)
    except Failure as e:
        fields = dict(e.fields)
        fields.setdefault("instance", module.params["instance"])
        fields.setdefault("changed", False)
        module.fail_json(msg=e.msg, **fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
