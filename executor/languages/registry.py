"""The registry of languages: `registry.toml` read, checked and turned into `Language` records.

The registry is data: a language is an entry there and its Debian packages in the Aptfile. Each
entry is checked by a pydantic model when loaded, so a mistake stops the process that loads it with
a message naming the entry and the field, before any program runs.
"""

import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

REGISTRY = Path(__file__).with_name("registry.toml")
PYTHON_PLACEHOLDER = "{python}"
# Stands, inside any word of `run` or `compile`, for the stage's memory limit in MiB: a runtime that
# sizes itself from the machine (the JVM's heap) is told the job's size instead.
MEMORY_PLACEHOLDER = "{memory_mb}"

_Word = Annotated[str, StringConstraints(min_length=1)]
_FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
_HostPath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9_.+-]+)+$")]


class InvalidRegistry(ValueError):
    """The registry has a mistake; the message names the entry and what is wrong."""


class _Entry(BaseModel):
    """One entry of registry.toml, as written there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Word
    source_file: _FileName
    compile: tuple[_Word, ...] | None = Field(None, min_length=1)
    run: tuple[_Word, ...] = Field(min_length=1)
    version: tuple[_Word, ...] = Field(min_length=1)
    hello: _Word
    packages: tuple[_Word, ...] = ()
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")], str] = {}
    libraries: _FileName | None = None
    host_paths: tuple[_HostPath, ...] = ()
    collect: tuple[_Word, ...] = ()


@dataclass(frozen=True)
class Language:
    """A language id as clients send it, and how a program in it is compiled and run."""

    id: str
    name: str
    source_file: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    version_probe: tuple[str, ...] = ()
    hello: str = ""
    packages: tuple[str, ...] = ()
    # Variables the program gets besides the sandbox's own environment.
    env: tuple[tuple[str, str], ...] = ()
    # The libraries it offers, with their pinned versions (name, version).
    libraries: tuple[tuple[str, str], ...] = ()
    # Host directories outside /usr the toolchain reads, shown read-only in the sandbox.
    host_paths: tuple[str, ...] = ()
    # Files every run collects, whatever the request asks (glob patterns, as `outputs`).
    collect: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        """Whether a program is compiled once before it runs."""
        return self.compile is not None

    def command(self, memory_mb: int, args: tuple[str, ...] = ()) -> list[str]:
        """The argv that runs the program with the client's arguments, under `memory_mb`."""
        return [*_with_memory(self.run, memory_mb), *args]

    def compile_command(self, memory_mb: int) -> list[str]:
        """The argv that compiles the program under `memory_mb`; a language that compiles only."""
        assert self.compile is not None
        return _with_memory(self.compile, memory_mb)


def default_python() -> str:
    """The system interpreter when there is one: it lives under /usr, which the sandbox can show read-only."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def build_languages(python: str, chosen: tuple[str, ...] = ()) -> Mapping[str, Language]:
    """The languages of the registry, keyed by id: those `chosen` (every one when empty)."""
    registry = load_registry(REGISTRY.read_text(), python)
    unknown = sorted(set(chosen) - set(registry))
    if unknown:
        raise InvalidRegistry(
            f"EXECUTOR_LANGUAGES names {', '.join(unknown)}, which {REGISTRY.name} does not have "
            f"(it has {', '.join(registry)})"
        )
    return MappingProxyType(
        {key: language for key, language in registry.items() if not chosen or key in chosen}
    )


def load_registry(text: str, python: str) -> dict[str, Language]:
    """Every entry of a registry's TOML text, checked; raises InvalidRegistry naming the first mistake."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidRegistry(f"{REGISTRY.name} is not valid TOML: {error}") from error
    languages = {}
    for key, value in table.items():
        try:
            entry = _Entry.model_validate(value)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                for problem in error.errors()
            )
            raise InvalidRegistry(f"{REGISTRY.name}, language {key!r}: {problems}") from error
        languages[key] = Language(
            id=key,
            name=entry.name,
            source_file=entry.source_file,
            run=_with_python(entry.run, python),
            compile=_with_python(entry.compile, python) if entry.compile else None,
            version_probe=_with_python(entry.version, python),
            hello=entry.hello,
            packages=entry.packages,
            env=tuple(sorted(entry.env.items())),
            libraries=_pinned(entry.libraries) if entry.libraries else (),
            host_paths=entry.host_paths,
            collect=entry.collect,
        )
    return languages


@cache
def source_files() -> Mapping[str, str]:
    """Each language's source file by id, as the registry says (no interpreter needed to know it)."""
    return MappingProxyType({key: language.source_file for key, language in _as_written().items()})


def compiles(language_id: str) -> bool:
    """Whether the registry's language of this id is compiled before it runs."""
    language = _as_written().get(language_id)
    return language is not None and language.compiled


@cache
def _as_written() -> Mapping[str, Language]:
    """The registry's languages, with the interpreter placeholder as written."""
    return MappingProxyType(load_registry(REGISTRY.read_text(), PYTHON_PLACEHOLDER))


@cache
def language_version(probe: tuple[str, ...]) -> str:
    """The version the runtime reports of itself, asked once per process; "unknown" where it is missing."""
    try:
        completed = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def _pinned(file_name: str) -> tuple[tuple[str, str], ...]:
    """The `name==version` lines of a requirements file beside the registry."""
    pins = []
    for line in REGISTRY.with_name(file_name).read_text().splitlines():
        name, separator, version = line.partition("#")[0].strip().partition("==")
        if separator:
            pins.append((name, version))
    return tuple(pins)


def _with_python(argv: tuple[str, ...], python: str) -> tuple[str, ...]:
    return tuple(python if word == PYTHON_PLACEHOLDER else word for word in argv)


def _with_memory(argv: tuple[str, ...], memory_mb: int) -> list[str]:
    return [word.replace(MEMORY_PLACEHOLDER, str(memory_mb)) for word in argv]
