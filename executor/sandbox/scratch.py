"""One disk per run: a tmpfs of `max_disk_mb` with a bounded inode count, holding /work, /tmp and /dev/shm.

Three tmpfs mounts made by bwrap would each get the whole size (three times the budget), and
their inode count is not bounded by size (hundreds of thousands of empty files). A root worker
mounts one tmpfs per run on the host instead, with both bounds, and shows its three folders in
the sandbox; its pages are charged to the job's cgroup as the program writes them. A worker that
cannot mount (not root) falls back to three mounts that split the budget (see `split_sizes`).

Scratch disks are mounted under `SCRATCH_ROOT`, named as the job's cgroup is, so the sweep that
removes a dead worker's cgroups unmounts its scratch disks too.
"""

import contextlib
import ctypes
import os
import stat
from dataclasses import dataclass

from executor.sandbox.limits import MIB, Limits

SCRATCH_ROOT = "/run/executor-scratch"
FOLDERS = ("work", "tmp", "shm")
MS_NOSUID = 0x2
MS_NODEV = 0x4
MNT_DETACH = 0x2
# Files and folders a compile may leave for the runs (a Java class per file: thousands is plenty).
MAX_CARRIED_ENTRIES = 4096

_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Scratch:
    """A mounted scratch disk: its mount point on the host, and the folders shown in the sandbox."""

    mount_point: str

    def folder(self, name: str) -> str:
        """The host path of one of FOLDERS."""
        return os.path.join(self.mount_point, name)


def can_mount() -> bool:
    """Whether this process may mount scratch disks (root, in the host's mount namespace)."""
    try:
        os.makedirs(SCRATCH_ROOT, mode=0o711, exist_ok=True)
        os.chmod(SCRATCH_ROOT, 0o711)  # the program uid, running bwrap, must reach its own disk
    except OSError:
        return False
    return os.geteuid() == 0


def mount_scratch(name: str, limits: Limits, owner: tuple[int, int]) -> Scratch:
    """Mount a fresh scratch disk owned by the program's uid; undo with `unmount_scratch`."""
    scratch = Scratch(os.path.join(SCRATCH_ROOT, name))
    os.mkdir(scratch.mount_point, 0o700)
    uid, gid = owner
    options = (
        f"size={limits.max_disk_mb * MIB},nr_inodes={limits.max_disk_inodes},mode=0700,uid={uid},gid={gid}"
    )
    try:
        _mount(scratch.mount_point, options)
        for folder in FOLDERS:
            path = scratch.folder(folder)
            os.mkdir(path, 0o700)
            os.chown(path, uid, gid)
    except OSError:
        unmount_scratch(scratch)
        raise
    return scratch


def unmount_scratch(scratch: Scratch) -> None:
    """Detach the disk (freed once no process of the run holds it) and remove its mount point."""
    _LIBC.umount2(scratch.mount_point.encode(), MNT_DETACH)
    # Still mounted (the detach failed) or already gone: never fails the run; a sweep retries once
    # this worker is gone.
    with contextlib.suppress(OSError):
        os.rmdir(scratch.mount_point)


class TooMuchToCarry(ValueError):
    """The compile left more in its working directory than a run may start from."""


def carry_work(source: Scratch, target: Scratch | None, owner: tuple[int, int], limits: Limits) -> None:
    """Copy the folders and regular files of `source`'s /work into `target`'s, owned by `owner`
    (with no `target`, only check that they may be carried).

    What the compile left is hostile too: a link is never followed (as root it would read the host's
    files) and is left behind, as are pipes (a read would block) and sockets; set-id bits are
    dropped. At most MAX_CARRIED_ENTRIES files and folders and the run's disk size in bytes, else
    TooMuchToCarry: each run pays for the copy. The compile's processes are dead by now, so nothing
    changes under the walk.
    """
    budget = _CarryBudget(entries=MAX_CARRIED_ENTRIES, size=limits.max_disk_mb * MIB)
    _carry_folder(source.folder("work"), target.folder("work") if target else None, owner, budget)


@dataclass
class _CarryBudget:
    """What is left to carry."""

    entries: int
    size: int

    def spend(self, size: int) -> None:
        self.entries -= 1
        self.size -= size
        if self.entries < 0 or self.size < 0:
            raise TooMuchToCarry("the compile left more files than a run may start from")


def _carry_folder(source: str, target: str | None, owner: tuple[int, int], budget: _CarryBudget) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            destination = os.path.join(target, entry.name) if target else None
            if entry.is_dir(follow_symlinks=False):
                budget.spend(0)
                if destination:
                    os.mkdir(destination, 0o700)
                _carry_folder(entry.path, destination, owner, budget)
                if destination:
                    os.chmod(destination, entry.stat(follow_symlinks=False).st_mode & 0o777)
                    os.chown(destination, *owner)
            elif entry.is_file(follow_symlinks=False):
                _carry_file(entry.path, destination, owner, budget)


def _carry_file(source: str, destination: str | None, owner: tuple[int, int], budget: _CarryBudget) -> None:
    reading = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(reading)
        if not stat.S_ISREG(status.st_mode):
            return
        budget.spend(status.st_size)
        if destination is None:
            return
        writing = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            remaining = status.st_size
            while remaining > 0 and (sent := os.sendfile(writing, reading, None, remaining)):
                remaining -= sent
            os.fchmod(writing, status.st_mode & 0o777)
            os.fchown(writing, *owner)
        finally:
            os.close(writing)
    finally:
        os.close(reading)


def leftover_names() -> list[str]:
    """The names of the scratch disks mounted now, whoever mounted them."""
    try:
        return sorted(os.listdir(SCRATCH_ROOT))
    except FileNotFoundError:
        return []


def split_sizes(limits: Limits) -> dict[str, int]:
    """Byte sizes of three separate tmpfs mounts that share the budget, where no scratch disk can be mounted:
    half for the working directory, a quarter each for /tmp and /dev/shm."""
    total = limits.max_disk_mb * MIB
    return {"/work": total // 2, "/tmp": total // 4, "/dev/shm": total // 4}


def _mount(target: str, options: str) -> None:
    if _LIBC.mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount tmpfs on {target}: {os.strerror(error)}")
