"""What the client asked to run."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Program:
    """Source code with its language, standard input and command-line arguments."""

    code: str
    language: str = "python"
    stdin: str = ""
    args: tuple[str, ...] = ()
