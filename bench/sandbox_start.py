"""Measure what the sandbox adds to a program's start: `python -m bench.sandbox_start [runs] [uid]`.

Runs print('hello') bare (the interpreter as the sandbox starts it), under plain bwrap (bench.floor's
plain_bwrap_runner: its namespaces and mounts, nothing of the runner) and through run_program under
each isolation level, with and without the run's cgroup, and bwrap through prlimit and setpriv
instead of executor-start, interleaved so that load on the machine hits
all alike, and prints the medians; then the cgroup step alone (`cgroup_step_ms`), which `make bench`
reports too.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from bench.floor import plain_bwrap_runner
from bench.workloads import WORKLOADS
from executor.languages import build_languages, default_python
from executor.sandbox.cgroups import CgroupLimits
from executor.sandbox.detect import detect_sandbox
from executor.sandbox.isolation import Isolation, Sandbox
from executor.sandbox.limits import MIB, Limits
from executor.sandbox.program import Program
from executor.sandbox.run_names import next_run_name
from executor.sandbox.runner import run_program

CODE = "print('hello')\n"


def cgroup_step_ms(sandbox: Sandbox, runs: int = 200) -> float | None:
    """The median time, in ms, of what a run's cgroup costs it, or None where runs get no cgroup.

    That is: make the cgroup with its limits, move two processes in (bwrap's monitor and pid 1),
    read the job's usage, find it empty, and remove it. The two processes are forked children
    waiting on a pipe; forking and reaping them is not timed.
    """
    if sandbox.cgroups is None:
        return None
    limits = CgroupLimits(memory_bytes=Limits().memory_mb * MIB, processes=Limits().max_processes)
    timings = []
    for _ in range(runs):
        hold, release = os.pipe()
        children = [_waiting_child(hold, release) for _ in range(2)]
        started = time.perf_counter()
        cgroup = sandbox.cgroups.make(next_run_name(sandbox.run_prefix), limits)
        for pid in children:
            cgroup.join(pid)
        cgroup.usage()
        elapsed = time.perf_counter() - started
        os.close(hold)
        os.close(release)
        for pid in children:
            os.waitpid(pid, 0)
        started = time.perf_counter()
        cgroup.kill()
        cgroup.remove()
        timings.append(elapsed + time.perf_counter() - started)
    return statistics.median(timings) * 1000


def _waiting_child(hold: int, release: int) -> int:
    """A child that exits once the pipe's write end is closed everywhere."""
    pid = os.fork()
    if pid == 0:
        os.close(release)
        os.read(hold, 1)
        os._exit(0)
    return pid


def main(runs: int, program_uid: int | None) -> None:
    """Print the median and minimum start-up time of each way of running the program, then the cgroup step."""
    languages = build_languages(default_python())
    bare = languages["python"].command(Limits().memory_mb)
    detected = detect_sandbox(languages, program_uid=program_uid, program_gid=program_uid)
    # Where bubblewrap does not work, detection already chose rlimits-only.
    variants = [detected, replace(detected, isolation=Isolation.RLIMITS_ONLY)]
    if detected.cgroups is not None:
        variants += [replace(sandbox, cgroups=None) for sandbox in variants]
    sandboxes = {sandbox.level: sandbox for sandbox in variants}
    if detected.isolation == Isolation.BWRAP and detected.starter_fd is not None:
        # As before executor-start: bwrap started through prlimit and setpriv.
        sandboxes[f"{detected.level} via prlimit+setpriv"] = replace(detected, starter_fd=None)
    plain = plain_bwrap_runner(WORKLOADS["hello"]) if detected.isolation == Isolation.BWRAP else None
    seconds: dict[str, list[float]] = {"bare": [], **{level: [] for level in sandboxes}}
    if plain is not None:
        seconds["plain bwrap"] = []
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "main.py"), "w") as source:
            source.write(CODE)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(bare, cwd=workdir, stdout=subprocess.PIPE, check=True)
            seconds["bare"].append(time.perf_counter() - started)
            if plain is not None:
                started = time.perf_counter()
                status, output = plain("hello", 0)
                seconds["plain bwrap"].append(time.perf_counter() - started)
                assert status == "success", output
            for level, sandbox in sandboxes.items():
                started = time.perf_counter()
                result = run_program(Program(CODE), Limits(), sandbox)
                seconds[level].append(time.perf_counter() - started)
                assert result.stdout == "hello\n", result
    bare = statistics.median(seconds["bare"])
    for level, times in seconds.items():
        median = statistics.median(times)
        print(
            f"{level:36} median {median * 1000:6.2f} ms  min {min(times) * 1000:6.2f} ms"
            f"  added {(median - bare) * 1000:+6.2f} ms"
        )
    step = cgroup_step_ms(detected)
    print("cgroup step alone:", "no cgroups here" if step is None else f"median {step:.3f} ms per run")


if __name__ == "__main__":
    main(
        runs=int(sys.argv[1]) if len(sys.argv) > 1 else 50,
        program_uid=int(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
