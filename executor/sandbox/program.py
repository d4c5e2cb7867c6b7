"""What the client asked to run."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Program:
    """Source code with its language, standard input, command-line arguments and files."""

    code: str
    language: str = "python"
    stdin: str = ""
    args: tuple[str, ...] = ()
    # (relative path, content): written into the working directory before the program is compiled
    # and run; the paths are checked by the request model (executor/jobs/files.py).
    files: tuple[tuple[str, bytes], ...] = ()
    # Glob patterns of the files to collect from the working directory after the run (API.md 1.1).
    outputs: tuple[str, ...] = ()
