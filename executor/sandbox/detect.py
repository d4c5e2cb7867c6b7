"""Choosing the isolation once per worker: bubblewrap when it really works here, rlimits only otherwise."""

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from executor.languages import Language
from executor.sandbox.backends import bwrap
from executor.sandbox.cgroups import CgroupUnavailable, Hierarchy, favor_fast_moves, find_hierarchy
from executor.sandbox.isolation import Isolation, Sandbox, SandboxUnavailable
from executor.sandbox.leftovers import sweep_leftover_runs
from executor.sandbox.limits import Limits
from executor.sandbox.processes import kill_all_of
from executor.sandbox.program import Program
from executor.sandbox.result import Outcome
from executor.sandbox.runner import run_program
from executor.sandbox.scratch import can_mount
from executor.sandbox.seccomp import build_seccomp_filter
from executor.sandbox.starter import build_starter

_logger = logging.getLogger(__name__)
# Generous, so that only a sandbox that cannot start at all fails the probe.
_PROBE_LIMITS = Limits(wall_time_s=20.0)


def detect_sandbox(
    languages: Mapping[str, Language],
    program_uid: int | None = None,
    program_gid: int | None = None,
    require_isolation: bool = False,
) -> Sandbox:
    """Probe bubblewrap by running the reference language's hello world with the real flags and uid,
    then each language's, to offer only those that run here.

    Falls back to rlimits only, with a loud warning, unless `require_isolation` makes that an error.
    Kills whatever still runs as `program_uid` first: that uid must be this worker slot's alone.
    """
    if program_uid is not None:
        # The uid is this worker slot's alone: whatever runs as it was left by a worker that died
        # (bwrap can leave its pid 1 blocked for ever), and it would count against RLIMIT_NPROC.
        kill_all_of(program_uid)
    elif os.geteuid() == 0:
        _logger.warning(
            "the worker is root and no program uid was given: programs run as host root, "
            "and RLIMIT_NPROC does not hold for root, so fork bombs are not contained"
        )
    cgroups = _job_cgroups(require_isolation)
    candidate = Sandbox(
        isolation=Isolation.BWRAP,
        languages=languages,
        program_uid=program_uid,
        program_gid=program_gid,
        seccomp_filter=build_seccomp_filter(),
        bwrap_path=bwrap.installed_path(),
        starter_fd=build_starter(),
        cgroups=cgroups,
        scratch_disks=program_uid is not None and can_mount(),
    )
    try:
        for name in sweep_leftover_runs(candidate):
            _logger.warning("removed what the run %s of a worker that died left (its cgroup, its disk)", name)
    except OSError:
        # Not a reason to refuse to start: every heartbeat sweeps again.
        _logger.exception("could not remove what dead workers' runs left; the heartbeats' sweeps retry")
    problem = _problem(candidate) if bwrap.is_installed(candidate.bwrap_path) else "bwrap is not installed"
    if problem is None:
        _logger.info("sandbox: bubblewrap works, programs run isolated (%s)", candidate.level)
        return _offered(candidate, reference_ran=True)
    if require_isolation:
        raise SandboxUnavailable(f"bubblewrap does not work here: {problem}")
    _logger.warning(
        "SANDBOX DEGRADED: bubblewrap does not work here (%s). Programs run with rlimits and seccomp "
        "only: they can read what their uid may read on the host, use the network and see other processes.",
        problem,
    )
    fallback = replace(candidate, isolation=Isolation.RLIMITS_ONLY)
    problem = _problem(fallback)
    if problem is not None:
        _logger.error("programs cannot run here at all, even with rlimits only: %s", problem)
    return _offered(fallback, reference_ran=problem is None)


def _job_cgroups(require_isolation: bool) -> Hierarchy | None:
    """Where runs get a cgroup each; None where none can be made."""
    try:
        hierarchy = find_hierarchy()
    except CgroupUnavailable as error:
        if require_isolation:
            raise SandboxUnavailable(
                f"runs cannot get a cgroup of their own here: {error.strerror}"
            ) from error
        _logger.warning(
            "SANDBOX DEGRADED: runs cannot get a cgroup of their own here (%s). Memory is bounded per "
            "process by RLIMIT_AS only: tmpfs, shared memory and kernel memory are not bounded, and a "
            "job can take far more than its memory_mb across its processes.",
            error.strerror,
        )
        return None
    problem = favor_fast_moves()
    if problem is not None:
        _logger.warning(
            "moving each run into its cgroup waits for an RCU grace period (about 6 ms a run, and forks "
            "host-wide wait too): cgroup2's favordynmods could not be turned on (%s)",
            problem,
        )
    return hierarchy


def _problem(sandbox: Sandbox) -> str | None:
    """Why the sandbox cannot run programs here, or None when the reference language's hello world ran.

    The reference is the first language (python, unless EXECUTOR_LANGUAGES says otherwise): it
    decides the isolation; the others are then offered where their own hello world runs.
    """
    return _hello_problem(sandbox, next(iter(sandbox.languages.values())))


def _offered(sandbox: Sandbox, reference_ran: bool) -> Sandbox:
    """The sandbox with only the languages whose hello world runs in it; the others are dropped loudly
    (a toolchain this host lacks, or a compiled language without a disk per job). The reference's
    hello world is not run again when `_problem` just ran it."""
    offered = {}
    for position, (key, language) in enumerate(sandbox.languages.items()):
        problem = None if position == 0 and reference_ran else _hello_problem(sandbox, language)
        if problem is None:
            offered[key] = language
        else:
            packages = " ".join(language.packages)
            _logger.warning(
                "LANGUAGE NOT OFFERED: %s (%s); install its Debian packages (%s), see the Aptfile",
                problem,
                language.name,
                packages,
            )
    _logger.info("languages offered: %s", ", ".join(offered) or "none")
    return replace(sandbox, languages=MappingProxyType(offered))


def _hello_problem(sandbox: Sandbox, language: Language) -> str | None:
    """Why the language's hello world does not run in the sandbox, or None when it printed hello."""
    result = run_program(Program(code=language.hello, language=language.id), _PROBE_LIMITS, sandbox)
    if result.outcome is Outcome.SUCCESS and result.stdout.strip() == "hello":
        return None
    reason = (
        result.message or result.compile_output or result.stderr.strip() or f"it ended {result.outcome.value}"
    )
    return f"{language.id}: {reason.strip()[-300:]}"
