"""The languages a program can be written in: the registry is data (`registry.toml`), checked when
loaded (`registry.py`)."""

from executor.languages.registry import (
    InvalidRegistry,
    Language,
    build_languages,
    compiles,
    default_python,
    language_version,
    source_files,
)

__all__ = [
    "InvalidRegistry",
    "Language",
    "build_languages",
    "compiles",
    "default_python",
    "language_version",
    "source_files",
]
