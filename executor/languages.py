"""The languages a program can be written in, and how each is started."""

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType


@dataclass(frozen=True)
class Language:
    """A language id as clients send it, and the command that runs a source file in it."""

    id: str
    name: str
    source_file: str
    executable: str
    flags: tuple[str, ...] = ()
    version_probe: tuple[str, ...] = ()

    def command(self, args: tuple[str, ...] = ()) -> list[str]:
        """The argv that runs the source file with the client's arguments."""
        return [self.executable, *self.flags, self.source_file, *args]


def default_python() -> str:
    """The system interpreter when there is one: it lives under /usr, which the sandbox can show read-only."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def build_languages(python: str) -> Mapping[str, Language]:
    """The registry of languages, keyed by id."""
    # -I: ignore PYTHON* variables and the user site; `site` stays on so exit() and quit() exist.
    python_language = Language(
        id="python",
        name="Python",
        source_file="main.py",
        executable=python,
        flags=("-I",),
        version_probe=(python, "-I", "-c", "import platform; print(platform.python_version())"),
    )
    return MappingProxyType({python_language.id: python_language})


@cache
def language_version(probe: tuple[str, ...]) -> str:
    """The version the runtime reports of itself, asked once per process."""
    try:
        completed = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"
