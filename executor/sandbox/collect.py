"""Files out (API.md 1.1): the regular files a run left in its working directory that match the
patterns asked for, read by the worker once every process of the run is dead.

What the program left is hostile. The walk never follows a link (a link to a host file would be
read as root), never opens anything but a regular file (a pipe would block it), stops after
`MAX_SCANNED` entries (a million tiny files would hold the worker), reads no file past what the
caps leave (one still growing would never end), and skips a name that is not UTF-8, which JSON
cannot carry. Patterns are matched by wcmatch, which knows `**` across folders.
"""

import base64
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wcmatch import glob

from executor.sandbox.limits import Limits

# Entries looked at, at most, whatever the patterns: a bound on the walk's time.
MAX_SCANNED = 20_000
_FLAGS = glob.GLOBSTAR | glob.DOTGLOB


@dataclass(frozen=True)
class Collected:
    """The files collected, sorted by path, and whether the caps (or a file that was not a plain
    file by the time it was opened) left some out."""

    files: tuple[dict[str, Any], ...]
    truncated: bool


def collect(work_dir: str, patterns: Sequence[str], limits: Limits) -> Collected:
    """The regular files under `work_dir` matching `patterns`, within the run's file caps."""
    matching, truncated = [], False
    for relative, scanned in _walk(work_dir):
        if scanned > MAX_SCANNED:
            truncated = True
            break
        if relative is not None and glob.globmatch(relative, list(patterns), flags=_FLAGS):
            matching.append(relative)
    files: list[dict[str, Any]] = []
    budget = limits.max_output_files_bytes
    for relative in sorted(matching):
        if len(files) == limits.max_output_files:
            truncated = True
            break
        data = _read(os.path.join(work_dir, relative), budget)
        if data is None:
            truncated = True
            continue
        budget -= len(data)
        files.append(_entry(relative, data))
    return Collected(tuple(files), truncated)


def _walk(root: str, prefix: str = "", seen: list[int] | None = None) -> Iterator[tuple[str | None, int]]:
    """(relative path of each regular file, entries seen so far), links and special files skipped;
    (None, count) for entries that are not files, so the caller can stop a walk that runs long."""
    seen = seen if seen is not None else [0]
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        seen[0] += 1
        relative = f"{prefix}{entry.name}"
        if not _utf8(relative):
            yield None, seen[0]
        elif entry.is_dir(follow_symlinks=False):
            yield None, seen[0]
            yield from _walk(entry.path, f"{relative}/", seen)
        elif entry.is_file(follow_symlinks=False):
            yield relative, seen[0]
        else:
            yield None, seen[0]
        if seen[0] > MAX_SCANNED:
            return


def _read(path: str, budget: int) -> bytes | None:
    """The file's bytes if it is still a regular file that fits in `budget`; None otherwise."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > budget:
            return None
        with os.fdopen(os.dup(descriptor), "rb") as file:
            data = file.read(budget + 1)
    finally:
        os.close(descriptor)
    return data if len(data) <= budget else None


def _entry(path: str, data: bytes) -> dict[str, Any]:
    """A file as the result lists it: UTF-8 text when it is, else base64."""
    try:
        return {"path": path, "size": len(data), "encoding": "utf8", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "path": path,
            "size": len(data),
            "encoding": "base64",
            "content": base64.b64encode(data).decode(),
        }


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by os as surrogates
        return False
    return True
