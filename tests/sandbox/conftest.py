"""Fixtures for runner tests: real sandboxes of both isolation levels, and a way to run code in them."""

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from executor.languages import Language, build_languages, default_python
from executor.sandbox import (
    Isolation,
    Limits,
    Program,
    RunResult,
    Sandbox,
    detect_sandbox,
    run_program,
)
from executor.sandbox.cgroups import find_hierarchy
from executor.sandbox.processes import process_table
from executor.sandbox.scratch import can_mount
from executor.sandbox.seccomp import build_seccomp_filter
from executor.sandbox.warm.backend import stop_zygotes

# Host uids programs run as when the tests run as root, apart from any a real worker uses. Two test
# runs at once on one machine need bases of their own: a sandbox kills whatever runs as its uid.
TEST_UID_BASE = int(os.environ.get("EXECUTOR_TEST_UID_BASE", "62900"))
BWRAP_UID = TEST_UID_BASE
RLIMITS_ONLY_UID = TEST_UID_BASE + 1
IS_ROOT = os.geteuid() == 0

Run = Callable[..., RunResult]
# Forks children that hold still until a fork is refused (at most 50), then prints how many it got.
COUNT_FORKS = (
    "import os, time\n"
    "started = 0\n"
    "try:\n"
    "    for _ in range(50):\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(5)\n"
    "            os._exit(0)\n"
    "        started += 1\n"
    "except OSError:\n"
    "    pass\n"
    "print(started)"
)


def program_uid(uid: int) -> int | None:
    """The uid to run programs as: only root can switch to one."""
    return uid if IS_ROOT else None


def processes_with(marker: str) -> list[int]:
    """Pids of the processes, of any uid, whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                if marker.encode() in cmdline.read():
                    found.append(int(name))
        except (NotADirectoryError, FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


@pytest.fixture
def find_processes() -> Callable[[str], list[int]]:
    """processes_with, for tests (which do not import the conftest)."""
    return processes_with


@pytest.fixture(scope="session")
def languages() -> Mapping[str, Language]:
    """The languages a worker would offer."""
    return build_languages(default_python())


@pytest.fixture(scope="session")
def bwrap_sandbox(languages: Mapping[str, Language]) -> Sandbox:
    """A bubblewrap sandbox: skipped where bubblewrap is not installed, failing where it is but does not
    work (or, as root, where runs cannot get their cgroup): a broken install must not pass as a skip."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed here (make install installs it where it can)")
    uid = program_uid(BWRAP_UID)
    # Root requires the full level; a user without a delegated cgroup gets bubblewrap alone.
    sandbox = detect_sandbox(languages, uid, uid, require_isolation=IS_ROOT)
    assert sandbox.isolation == Isolation.BWRAP, "bubblewrap is installed but does not work here"
    return sandbox


@pytest.fixture(scope="session")
def rlimits_only_sandbox(languages: Mapping[str, Language]) -> Sandbox:
    """The fallback sandbox, built directly: on this machine detection would choose bubblewrap."""
    uid = program_uid(RLIMITS_ONLY_UID)
    return Sandbox(
        Isolation.RLIMITS_ONLY,
        languages,
        uid,
        uid,
        build_seccomp_filter(),
        cgroups=find_hierarchy() if IS_ROOT else None,
        scratch_disks=IS_ROOT and can_mount(),
    )


@pytest.fixture(params=[Isolation.BWRAP, "bwrap-warm", Isolation.RLIMITS_ONLY], ids=str)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Each test taking this runs once per isolation level, and under bubblewrap once more with its
    Python programs started warm (docs/warm-start.md; root only)."""
    name = "rlimits_only_sandbox" if request.param is Isolation.RLIMITS_ONLY else "bwrap_sandbox"
    chosen: Sandbox = request.getfixturevalue(name)
    if request.param != "bwrap-warm":
        yield chosen
        return
    if not IS_ROOT:
        pytest.skip("warm starts run as a root worker's slots do")
    log = request.getfixturevalue("caplog")
    yield replace(chosen, warm_start=True)
    stop_zygotes()
    # The warm runs did start warm: a fallback to cold would compare the cold path with itself.
    assert not [record for record in log.records if "warm start failed" in record.getMessage()]


def runner(sandbox: Sandbox) -> Run:
    """run(code, stdin=..., args=..., **limits): one program with short limits by default."""

    def run(code: str, *, stdin: str = "", args: tuple[str, ...] = (), **limits: Any) -> RunResult:
        settings = {"wall_time_s": 5.0, **limits}
        return run_program(Program(code, stdin=stdin, args=args), Limits(**settings), sandbox)

    return run


@pytest.fixture
def run(sandbox: Sandbox) -> Run:
    """Run code in the parametrized sandbox."""
    return runner(sandbox)


@pytest.fixture
def run_bwrap(bwrap_sandbox: Sandbox) -> Run:
    """Run code under bubblewrap only, for what the fallback cannot promise."""
    return runner(bwrap_sandbox)


@pytest.fixture
def needs_program_uid(sandbox: Sandbox) -> None:
    """Skip what rlimits-only cannot promise when programs share the worker's uid (not root)."""
    if sandbox.isolation == Isolation.RLIMITS_ONLY and sandbox.program_uid is None:
        pytest.skip("rlimits-only without a program uid (worker not root) runs programs as the worker's user")


@pytest.fixture(autouse=True)
def no_process_outlives_its_run() -> Iterator[None]:
    """After every test, nothing runs as the programs' uids: each run killed and reaped its tree."""
    yield
    if IS_ROOT:
        left = [info.pid for uid in (BWRAP_UID, RLIMITS_ONLY_UID) for info in process_table(uid)]
        assert left == [], f"processes outlived their run: {left}"
