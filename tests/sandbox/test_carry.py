"""What a compile leaves is carried to each run (`scratch.carry_work`), and nothing hostile with it.

The worker copies as root, so a link the compile left must never be followed (it would read a host
file into the job), a pipe never opened (the copy would block), and no set-id bit kept.
"""

import os
import stat
from pathlib import Path

import pytest

from executor.sandbox import Limits
from executor.sandbox.scratch import MAX_CARRIED_ENTRIES, Scratch, TooMuchToCarry, carry_work

OWNER = (os.getuid() + 4321, os.getgid() + 4321) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def disks(tmp_path: Path) -> tuple[Scratch, Scratch]:
    for name in ("compiled", "run"):
        (tmp_path / name / "work").mkdir(parents=True)
    return Scratch(str(tmp_path / "compiled")), Scratch(str(tmp_path / "run"))


def test_folders_and_regular_files_are_carried_and_nothing_else(tmp_path: Path) -> None:
    compiled, run = disks(tmp_path)
    work = Path(compiled.folder("work"))
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    (work / "main").write_bytes(b"\x7fELF program")
    (work / "main").chmod(0o4755)  # set-uid, as a hostile compile might leave it
    (work / "classes" / "pkg").mkdir(parents=True)
    (work / "classes" / "pkg" / "A.class").write_bytes(b"class")
    (work / "link").symlink_to(secret)
    (work / "folder-link").symlink_to(tmp_path)
    os.mkfifo(work / "pipe")
    carry_work(compiled, run, OWNER, Limits())
    carried = Path(run.folder("work"))
    assert sorted(str(path.relative_to(carried)) for path in carried.rglob("*")) == [
        "classes",
        "classes/pkg",
        "classes/pkg/A.class",
        "main",
    ]
    assert (carried / "main").read_bytes() == b"\x7fELF program"
    assert stat.S_IMODE((carried / "main").stat().st_mode) == 0o755
    assert ((carried / "main").stat().st_uid, (carried / "classes").stat().st_gid) == OWNER


def test_a_compile_that_leaves_too_many_files_is_refused(tmp_path: Path) -> None:
    compiled, run = disks(tmp_path)
    work = Path(compiled.folder("work"))
    for number in range(MAX_CARRIED_ENTRIES + 1):
        (work / f"f{number}").touch()
    with pytest.raises(TooMuchToCarry):
        carry_work(compiled, None, OWNER, Limits())
    with pytest.raises(TooMuchToCarry):
        carry_work(compiled, run, OWNER, Limits())


def test_a_compile_that_leaves_more_bytes_than_the_disk_holds_is_refused(tmp_path: Path) -> None:
    compiled, run = disks(tmp_path)
    (Path(compiled.folder("work")) / "big").write_bytes(b"x" * (2 * 1024 * 1024 + 1))
    with pytest.raises(TooMuchToCarry):
        carry_work(compiled, run, OWNER, Limits(max_disk_mb=2))
