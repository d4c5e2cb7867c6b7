"""Worker slots: a distinct host uid for each worker process on a machine, when workers run as root.

RLIMIT_NPROC counts processes per uid, so two workers sharing one uid would share one budget and
one job's fork bomb could stop another job's forks. A slot is held by an exclusive lock on a file
for the life of the worker process, so it is released even when the worker is killed.
"""

import fcntl
import os
import tempfile
from dataclasses import dataclass
from typing import IO

SLOTS_DIR = os.path.join(tempfile.gettempdir(), "executor-worker-slots")


class NoFreeSlot(Exception):
    """Every slot on this machine is held by a live worker."""


@dataclass(frozen=True)
class Slot:
    """A held slot: its number, its uid and the open lock file that keeps it."""

    number: int
    uid: int
    lock_file: IO[bytes]


def acquire_slot(uid_base: int, slots: int) -> Slot:
    """Take the first free slot; the lock lasts as long as this process keeps the file open."""
    os.makedirs(SLOTS_DIR, mode=0o700, exist_ok=True)
    for number in range(slots):
        lock_file = open(os.path.join(SLOTS_DIR, f"slot-{number}.lock"), "wb")  # noqa: SIM115
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        return Slot(number=number, uid=uid_base + number, lock_file=lock_file)
    raise NoFreeSlot(f"all {slots} worker slots in {SLOTS_DIR} are taken")
