"""The systemd units of deploy/systemd (docs/deploy-systemd.md): what can be checked without booting them.

- there is one unit per Procfile process type, and its ExecStart is the Procfile's command with the
  install's virtualenv in front;
- `systemd-analyze verify` accepts the units (copies pointed at this repository and its .venv), and
  the check fails on a broken unit;
- the worker runs as root, with the memory and pids controllers delegated, KillMode=control-group,
  EXECUTOR_REQUIRE_ISOLATION=1, a stop timeout above the longest job, and none of the directives
  that would break its sandbox; the web and notifier units do not run as root;
- the environment file's example names only real settings, with values Settings accepts;
- every test the guide cites exists.

No unit is started here: that takes systemd as PID 1, which this machine does not have.
"""

import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.run_local import procfile_command, procfile_commands
from executor.jobs.queue import RUNNER_MARGIN_S
from executor.sandbox.cgroups import HierarchyV2
from executor.sandbox.scratch import SCRATCH_ROOT
from executor.settings import Settings
from tests.stack import REPO
from workers.slots import SLOTS_DIR

DEPLOY = REPO / "deploy" / "systemd"
GUIDE = REPO / "docs" / "deploy-systemd.md"
# The Procfile's process types and their units.
UNITS = {
    "web": "executor-web.service",
    "worker": "executor-worker@.service",
    "notifier": "executor-notifier.service",
}
INSTALL = "/opt/executor"
VENV_BIN = f"{INSTALL}/.venv/bin/"
ENV_FILE = "/etc/executor/executor.env"
# The names the service reads without the EXECUTOR_ prefix (gunicorn_config.py and the settings' alias).
UNPREFIXED = {"REDIS_URL", "PORT", "WEB_CONCURRENCY"}
# What the environment file must let the operator fill in.
REQUIRED_IN_ENV = {
    "REDIS_URL",
    "EXECUTOR_API_KEYS",
    "EXECUTOR_DASHBOARD_PASSWORD",
    "EXECUTOR_WEBHOOK_SECRET",
    "PORT",
    "WEB_CONCURRENCY",
    "EXECUTOR_LOG_FORMAT",
}
# Directives the worker unit must not have, and what each would break.
BREAK_THE_WORKER = {
    "PrivateTmp": f"the slot locks ({SLOTS_DIR}) must be shared by the machine's workers",
    "ProtectSystem": "a mount namespace of the unit's own hides scratch disks from the other workers' sweeps",
    "ProtectHome": "a mount namespace of the unit's own",
    "PrivateMounts": "a mount namespace of the unit's own",
    "ReadOnlyPaths": "a mount namespace of the unit's own",
    "InaccessiblePaths": "a mount namespace of the unit's own",
    "TemporaryFileSystem": "a mount namespace of the unit's own",
    "ProtectControlGroups": "/sys/fs/cgroup read-only: no cgroup per run",
    "RestrictNamespaces": "bubblewrap makes user, pid, net, ipc, uts and cgroup namespaces",
    "SystemCallFilter": "the worker mounts, and bubblewrap makes namespaces",
    "CapabilityBoundingSet": "the worker mounts scratch disks and changes uid",
    "DynamicUser": "the worker must be root",
    "PrivateUsers": "the worker must be root on the host",
}
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd): the units were NOT verified",
)

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """A unit file's sections, each a list of (key, value) in order: a key may be given more than once."""
    sections: Unit = {}
    section = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: continued lines are not parsed here"
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, [])
            continue
        key, sign, value = line.partition("=")
        assert section is not None and sign, f"{path.name}:{number}: not a setting in a section: {raw!r}"
        sections[section].append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def value(unit: Unit, section: str, key: str) -> str | None:
    """The setting in force: for single-valued settings the last assignment wins."""
    found = values(unit, section, key)
    return found[-1] if found else None


def unit_of(process: str) -> Unit:
    return read_unit(DEPLOY / UNITS[process])


def environment(unit: Unit) -> dict[str, str]:
    """The unit's Environment= assignments (each line holds one or more, shell-like quoted)."""
    lines = values(unit, "Service", "Environment")
    pairs = [word.partition("=") for line in lines for word in shlex.split(line)]
    return {name: assigned for name, _, assigned in pairs}


def stand_in_account() -> tuple[str, str]:
    """`executor` when this machine has that user; else an existing unprivileged account (neither root
    nor nobody, whom systemd warns about), so that no verification depends on the user existing."""
    try:
        pwd.getpwnam("executor")
        return "executor", "executor"
    except KeyError:
        pass
    for account in pwd.getpwall():
        if 0 < account.pw_uid < 65534 and account.pw_name != "nobody":
            return account.pw_name, grp.getgrgid(account.pw_gid).gr_name
    pytest.fail("no unprivileged account on this machine to stand in for `executor`")


def copy_for_this_machine(folder: Path) -> list[Path]:
    """The units as they would be installed, with the install directory pointed at this repository
    (its .venv holds the same binaries) and `executor` replaced only if this machine has no such user;
    plus an instance of the worker template, as `systemctl enable executor-worker@1` makes it."""
    user, group = stand_in_account()
    copies = []
    for name in UNITS.values():
        text = (DEPLOY / name).read_text().replace(INSTALL, str(REPO))
        text = re.sub(r"(?m)^User=executor$", f"User={user}", text)
        text = re.sub(r"(?m)^Group=executor$", f"Group={group}", text)
        (folder / name).write_text(text)
        copies.append(folder / name)
    instance = folder / "executor-worker@1.service"
    instance.symlink_to(UNITS["worker"])
    return [*copies, instance]


def verify(folder: Path, units: list[Path]) -> tuple[int, list[str], str]:
    """systemd-analyze verify's return code, the lines of its output that are about our units, and all
    of its output. It also loads the units ours name (network-online.target, redis-server.service),
    and may warn about those or other units of this machine: such lines are not ours."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    marks = [str(folder), *(name.split("@")[0].removesuffix(".service") for name in UNITS.values())]
    ours = [line for line in output.splitlines() if any(mark in line for mark in marks)]
    return result.returncode, ours, output


def test_each_procfile_process_has_one_unit_and_there_are_no_others() -> None:
    assert set(procfile_commands()) == set(UNITS)
    # Debian's redis-server.service is used as it is (docs/deploy-systemd.md): no unit of ours for Redis.
    assert sorted(path.name for path in DEPLOY.glob("*.service")) == sorted(UNITS.values())


@pytest.mark.parametrize("process", sorted(UNITS))
def test_exec_start_is_the_procfiles_command_after_the_virtualenv(process: str) -> None:
    unit = unit_of(process)
    (command,) = values(unit, "Service", "ExecStart")
    # systemd expands $VARIABLES, %-specifiers and C-style escapes where a shell would not: with none
    # of them, systemd splits the line into the same words as shlex. No prefix (-, @, :, +, !) either.
    assert not set(command) & set("$%\\"), command
    assert command.startswith(VENV_BIN), command
    words = shlex.split(command)
    assert [words[0].removeprefix(VENV_BIN), *words[1:]] == procfile_command(process)
    # The Procfile's module paths resolve from the install directory (rq's --path ".", gunicorn's
    # chdir, python -m), and every unit reads the one environment file.
    assert value(unit, "Service", "WorkingDirectory") == INSTALL
    assert values(unit, "Service", "EnvironmentFile") == [ENV_FILE]
    assert value(unit, "Service", "Restart") == "on-failure"


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    code, ours, output = verify(tmp_path, copy_for_this_machine(tmp_path))
    assert (code, ours) == (0, []), output


@needs_systemd_analyze
def test_the_verify_check_fails_on_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not blind: a missing binary, a misspelt key and a bad value are each caught."""
    copies = copy_for_this_machine(tmp_path)
    breaks = {
        UNITS["web"]: ("/.venv/bin/gunicorn ", "/.venv/bin/gunicorn-missing "),
        UNITS["notifier"]: ("\nRestart=on-failure", "\nRestat=on-failure"),
        UNITS["worker"]: ("\nKillMode=control-group", "\nKillMode=control_group"),
    }
    for name, (old, new) in breaks.items():
        text = (tmp_path / name).read_text()
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new))
    code, ours, output = verify(tmp_path, copies)
    assert code != 0, output
    assert any("gunicorn-missing" in line and "not executable" in line for line in ours), output
    assert any("Restat" in line and UNITS["notifier"] in line for line in ours), output
    assert any("kill mode" in line and "control_group" in line for line in ours), output


def test_the_worker_runs_as_root_with_memory_and_pids_delegated_and_dies_whole() -> None:
    unit = unit_of("worker")
    assert value(unit, "Service", "User") in (None, "root")
    delegate = value(unit, "Service", "Delegate") or "no"
    assert delegate in ("yes", "true", "on", "1") or {"memory", "pids"} <= set(delegate.split())
    assert value(unit, "Service", "KillMode") == "control-group"
    assert environment(unit).get("EXECUTOR_REQUIRE_ISOLATION") == "1"


def test_the_worker_waits_for_the_longest_job_before_it_is_killed() -> None:
    """SIGTERM is rq's warm shutdown (docs/operations.md): the running job may take up to
    EXECUTOR_MAX_JOB_SECONDS plus RQ's margin over it before systemd's SIGKILL."""
    stop = value(unit_of("worker"), "Service", "TimeoutStopSec")
    assert stop is not None and stop.isdigit(), stop
    longest = Settings.model_fields["max_job_seconds"].default + RUNNER_MARGIN_S
    assert int(stop) > longest


@pytest.mark.parametrize("directive", sorted(BREAK_THE_WORKER))
def test_the_worker_has_no_directive_that_breaks_its_sandbox(directive: str) -> None:
    assert value(unit_of("worker"), "Service", directive) is None, BREAK_THE_WORKER[directive]


def test_the_worker_units_account_of_cgroups_is_what_cgroups_py_does(tmp_path: Path) -> None:
    """Run cgroups live in <root>/executor/, not under the unit's cgroup, and the folder asks for
    exactly the controllers the unit delegates; scratch disks are mounted where the unit says."""
    text = (DEPLOY / UNITS["worker"]).read_text()
    hierarchy = HierarchyV2(str(tmp_path))
    assert hierarchy.parent == str(tmp_path / "executor")
    assert "/sys/fs/cgroup/executor/" in text
    (tmp_path / "executor").mkdir()
    (tmp_path / "executor" / "cgroup.subtree_control").write_text("")
    hierarchy.prepare()
    asked = (tmp_path / "executor" / "cgroup.subtree_control").read_text().split()
    assert asked == ["+memory", "+pids"]
    assert value(unit_of("worker"), "Service", "Delegate") == "memory pids"
    assert SCRATCH_ROOT in text and os.path.basename(SLOTS_DIR) in text


@pytest.mark.parametrize("process", ["web", "notifier"])
def test_the_web_and_notifier_units_do_not_run_as_root(process: str) -> None:
    unit = unit_of(process)
    assert value(unit, "Service", "User") == "executor"
    assert value(unit, "Service", "Group") == "executor"
    assert value(unit, "Service", "NoNewPrivileges") == "yes"


def env_example() -> dict[str, str]:
    """The example environment file as systemd reads it: KEY=value lines, # comments."""
    pairs = {}
    for line in (DEPLOY / "executor.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sign, assigned = line.partition("=")
            assert sign and name == name.strip() and not name.startswith("export"), line
            pairs[name] = assigned
    return pairs


def test_the_env_example_names_real_settings_and_leaves_isolation_to_the_worker_unit() -> None:
    example = env_example()
    settings = {f"EXECUTOR_{name.upper()}" for name in Settings.model_fields}
    assert set(example) - UNPREFIXED <= settings
    assert set(example) >= REQUIRED_IN_ENV
    # EnvironmentFile= overrides Environment=: a value here would override the worker unit's.
    assert "EXECUTOR_REQUIRE_ISOLATION" not in example
    assert example["EXECUTOR_LOG_FORMAT"] == "json"


def test_settings_accept_the_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EXECUTOR_") or name in UNPREFIXED:
            monkeypatch.delenv(name)
    example = env_example()
    for name, assigned in example.items():
        monkeypatch.setenv(name, assigned)
    settings = Settings()
    assert settings.redis_url == example["REDIS_URL"]
    assert settings.api_keys == (example["EXECUTOR_API_KEYS"],)
    assert settings.log_format == "json"
    assert int(example["PORT"]) > 1023  # the web unit runs unprivileged
    assert int(example["WEB_CONCURRENCY"]) > 0


def test_every_test_the_guide_cites_exists() -> None:
    cited = re.findall(r"(tests/[\w/]+\.py)::(\w+)", GUIDE.read_text())
    assert any(path == "tests/test_deploy_systemd.py" for path, _ in cited)
    for path, name in cited:
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), re.MULTILINE), f"{path}::{name}"
