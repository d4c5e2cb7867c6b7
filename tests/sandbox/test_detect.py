"""Detection picks bubblewrap where it works, and says so loudly when it falls back."""

import errno
import logging
import os
from collections.abc import Mapping

import pytest

from executor.languages import Language
from executor.sandbox import Isolation, Sandbox, SandboxUnavailable, detect, detect_sandbox
from executor.sandbox.cgroups import CgroupUnavailable


def test_bubblewrap_is_chosen_where_it_works(bwrap_sandbox: Sandbox) -> None:
    assert bwrap_sandbox.isolation == Isolation.BWRAP
    assert bwrap_sandbox.seccomp_filter
    assert bwrap_sandbox.bwrap_path.endswith("/bwrap")


def test_without_bubblewrap_detection_falls_back_to_rlimits_only_with_a_warning(
    languages: Mapping[str, Language], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with caplog.at_level(logging.WARNING, logger="executor.sandbox"):
        sandbox = detect_sandbox(languages)
    assert sandbox.isolation == Isolation.RLIMITS_ONLY
    assert "SANDBOX DEGRADED" in caplog.text
    assert "bwrap is not installed" in caplog.text


def test_without_bubblewrap_required_isolation_is_an_error(
    languages: Mapping[str, Language], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
        detect_sandbox(languages, require_isolation=True)


def test_a_sandbox_that_cannot_run_anything_is_reported_as_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    broken = Language("python", "Python", source_file="main.py", run=("/nonexistent/bin/python3", "main.py"))
    with caplog.at_level(logging.WARNING, logger="executor.sandbox"):
        sandbox = detect_sandbox({"python": broken})
    assert sandbox.isolation == Isolation.RLIMITS_ONLY
    assert "cannot run here at all" in caplog.text


def _no_cgroups() -> None:
    raise CgroupUnavailable(errno.EACCES, "cannot make job cgroups: permission denied")


def test_without_job_cgroups_bubblewrap_runs_alone_and_says_so_loudly(
    languages: Mapping[str, Language], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As for a worker that is not root, or on a host that delegates no cgroup to it.
    monkeypatch.setattr(detect, "find_hierarchy", _no_cgroups)
    with caplog.at_level(logging.WARNING, logger="executor.sandbox"):
        sandbox = detect_sandbox(languages)
    assert (sandbox.cgroups, sandbox.level) == (None, sandbox.isolation)
    assert "SANDBOX DEGRADED: runs cannot get a cgroup of their own here" in caplog.text


def test_without_job_cgroups_required_isolation_is_an_error(
    languages: Mapping[str, Language], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect, "find_hierarchy", _no_cgroups)
    with pytest.raises(SandboxUnavailable, match="runs cannot get a cgroup of their own here"):
        detect_sandbox(languages, require_isolation=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="job cgroups need root")
def test_as_root_with_bubblewrap_the_level_is_bwrap_plus_cgroup(bwrap_sandbox: Sandbox) -> None:
    assert bwrap_sandbox.level == "bwrap+cgroup"


def test_a_language_whose_hello_world_does_not_run_is_not_offered_and_said_so(
    languages: Mapping[str, Language], caplog: pytest.LogCaptureFixture
) -> None:
    missing = Language(
        "cobol",
        "COBOL",
        source_file="main.cob",
        run=("/nonexistent/cobc", "main.cob"),
        packages=("gnucobol",),
    )
    with caplog.at_level(logging.WARNING, logger="executor.sandbox"):
        sandbox = detect_sandbox({"python": languages["python"], "cobol": missing})
    assert list(sandbox.languages) == ["python"]
    assert "LANGUAGE NOT OFFERED: cobol" in caplog.text
    assert "gnucobol" in caplog.text
