"""Measure what the sandbox adds to a program's start: `python -m executor.sandbox.benchmark [runs] [uid]`.

Runs print('hello') bare (`python3 -I main.py`) and through run_program under each isolation
level, interleaved so that load on the machine hits all alike, and prints the medians.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from executor.languages import build_languages, default_python
from executor.sandbox.detect import detect_sandbox
from executor.sandbox.isolation import Isolation
from executor.sandbox.limits import Limits
from executor.sandbox.program import Program
from executor.sandbox.runner import run_program

CODE = "print('hello')\n"


def main(runs: int, program_uid: int | None) -> None:
    """Print the median and minimum start-up time of each way of running the program."""
    python = default_python()
    bwrap = detect_sandbox(build_languages(python), program_uid=program_uid, program_gid=program_uid)
    sandboxes = {"bwrap": bwrap, "rlimits-only": replace(bwrap, isolation=Isolation.RLIMITS_ONLY)}
    if bwrap.isolation != Isolation.BWRAP:
        del sandboxes["bwrap"]
    seconds: dict[str, list[float]] = {"bare": [], **{name: [] for name in sandboxes}}
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "main.py"), "w") as source:
            source.write(CODE)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([python, "-I", "main.py"], cwd=workdir, stdout=subprocess.PIPE, check=True)
            seconds["bare"].append(time.perf_counter() - started)
            for name, sandbox in sandboxes.items():
                started = time.perf_counter()
                result = run_program(Program(CODE), Limits(), sandbox)
                seconds[name].append(time.perf_counter() - started)
                assert result.stdout == "hello\n", result
    bare = statistics.median(seconds["bare"])
    for name, times in seconds.items():
        median = statistics.median(times)
        print(
            f"{name:13} median {median * 1000:6.2f} ms  min {min(times) * 1000:6.2f} ms"
            f"  added {(median - bare) * 1000:+6.2f} ms"
        )


if __name__ == "__main__":
    main(
        runs=int(sys.argv[1]) if len(sys.argv) > 1 else 50,
        program_uid=int(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
