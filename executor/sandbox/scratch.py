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
from dataclasses import dataclass

from executor.sandbox.limits import MIB, Limits

SCRATCH_ROOT = "/run/executor-scratch"
FOLDERS = ("work", "tmp", "shm")
MS_NOSUID = 0x2
MS_NODEV = 0x4
MNT_DETACH = 0x2

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
