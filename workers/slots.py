"""Worker slots: a distinct host uid for each worker process on a machine, when workers run as root.

RLIMIT_NPROC counts processes per uid, so two workers sharing one uid would share one budget and
one job's fork bomb could stop another job's forks. A slot is held by an exclusive lock on a file
for the life of the worker process, so it is released even when the worker is killed.

The folder is in the shared temporary directory, where another local user could have made it first
and planted links to files a root worker would then open: it is used only when it belongs to this
user and no one else may write in it, and lock files are never opened through a symbolic link.
"""

import fcntl
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import IO

SLOTS_DIR = os.path.join(tempfile.gettempdir(), "executor-worker-slots")


class NoFreeSlot(Exception):
    """Every slot on this machine is held by a live worker."""


class UnsafeSlotsDir(Exception):
    """The slots folder or a lock file in it could have been planted by someone else."""


@dataclass(frozen=True)
class Slot:
    """A held slot: its number, its uid and the open lock file that keeps it."""

    number: int
    uid: int
    lock_file: IO[bytes]


def acquire_slot(uid_base: int, slots: int) -> Slot:
    """Take the first free slot; the lock lasts as long as this process keeps the file open."""
    os.makedirs(SLOTS_DIR, mode=0o700, exist_ok=True)
    _check_owned(SLOTS_DIR)
    for number in range(slots):
        lock_file = _open_lock_file(os.path.join(SLOTS_DIR, f"slot-{number}.lock"))
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        return Slot(number=number, uid=uid_base + number, lock_file=lock_file)
    raise NoFreeSlot(f"all {slots} worker slots in {SLOTS_DIR} are taken")


def _check_owned(folder: str) -> None:
    """Refuse a folder that is a link, is someone else's, or that others may write in."""
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        raise UnsafeSlotsDir(
            f"refusing to use {folder}: it must be a folder owned by uid {os.geteuid()} that only "
            f"its owner may write in (found uid {found.st_uid}, mode {stat.filemode(found.st_mode)}); "
            "remove it and start the worker again"
        )


def _open_lock_file(path: str) -> IO[bytes]:
    """The lock file, created if missing, never truncated and never reached through a link."""
    try:
        return open(path, "ab", opener=_no_follow)
    except OSError as error:
        raise UnsafeSlotsDir(f"refusing to use {path}: {error.strerror}; remove it") from error


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o600)
