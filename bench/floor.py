"""The floor: the same programs with no HTTP and no Redis, through the sandbox runner called directly,
and through the bare interpreter (started as the sandbox starts it, with no sandbox at all).

Like the service, the floor has `clients` callers but only `parallel` runners (the service's W workers)
fed from one FIFO queue, so its latency includes the same wait in line and its throughput the same cap.
"""

import os
import queue
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bench.pool import Deadline, run_pool
from bench.samples import JobSample
from bench.workloads import Workload, new_token

# A runner takes a job's token and its own index among the runners, and returns the job's terminal
# status word and its stdout.
Runner = Callable[[str, int], tuple[str, str]]


@cache
def _sandbox(index: int) -> Any:
    """The sandbox as a worker process detects it, for the floor's runner `index`.

    As root, each runner runs its programs as a uid of its own, as each worker does with its slot's:
    the sandbox counts (and, at the end of a run, kills) everything of its uid. The floor's uids lie
    just past the workers' slots.
    """
    from executor.languages import build_languages
    from executor.sandbox import detect_sandbox
    from executor.settings import Settings

    settings = Settings()
    uid = settings.sandbox_uid_base + settings.sandbox_slots + index if os.geteuid() == 0 else None
    return detect_sandbox(build_languages(settings.python), program_uid=uid, program_gid=uid)


def sandbox_isolation() -> str:
    """The isolation level the floor's (and, on this machine, the workers') sandbox uses."""
    return str(_sandbox(0).level)


def cgroup_step_ms() -> float | None:
    """What a run's cgroup costs it, median ms (None without cgroups); the floor's runs pay it too."""
    from bench.sandbox_start import cgroup_step_ms as measure

    step: float | None = measure(_sandbox(0))
    return step


# The compile times of the floor's jobs, by language: what compiling costs a job, in this run.
_COMPILE_SECONDS: dict[str, list[float]] = {}


def compile_ms() -> dict[str, float]:
    """The median compile time per job of each compiled language the floor ran, in ms."""
    return {language: statistics.median(times) * 1000 for language, times in _COMPILE_SECONDS.items()}


def sandbox_runner(workload: Workload) -> Runner:
    """`run_program` with the limits `workers.tasks.run_job` gives a request with this workload's timeout."""
    from executor.jobs.request import execute_request_model
    from executor.sandbox import Program, run_program
    from executor.settings import Settings
    from workers.tasks import limits_for

    settings = Settings()
    request = execute_request_model(settings, [workload.language]).model_validate(
        {"code": "pass", "language": workload.language, "timeout": workload.timeout_s}
    )
    limits = limits_for(request, settings)

    def run(token: str, index: int) -> tuple[str, str]:
        program = Program(code=workload.code(token), language=workload.language)
        result = run_program(program, limits, _sandbox(index))
        if result.compile_time is not None:
            _COMPILE_SECONDS.setdefault(workload.language, []).append(result.compile_time)
        return str(result.outcome.value), str(result.stdout)

    return run


def bare_runner(workload: Workload) -> Runner:
    """The language's own commands (compile, if it compiles, then run) started directly on its
    source file in a fresh directory, with the environment the sandbox gives it and no sandbox."""
    from executor.languages import build_languages
    from executor.sandbox import Limits
    from executor.sandbox.launch import program_environment
    from executor.settings import Settings

    settings = Settings()
    language = build_languages(settings.python)[workload.language]

    def run(token: str, index: int) -> tuple[str, str]:
        with tempfile.TemporaryDirectory(prefix="bench-bare-") as directory:
            # The sandbox's own environment, built from scratch: the host's (NODE_EXTRA_CA_CERTS,
            # say) would make a runtime do work at start that the sandboxed one does not.
            environment = program_environment(language, home=directory, tmpdir=directory)
            with open(os.path.join(directory, language.source_file), "w") as source:
                source.write(workload.code(token))
            try:
                limits = Limits(compile_memory_mb=settings.compile_memory_mb)  # a request's default memory
                compile_commands = (
                    [language.compile_command(limits.compile_memory_mb)] if language.compiled else []
                )
                for command in [*compile_commands, language.command(limits.memory_mb)]:
                    done = subprocess.run(
                        command,
                        cwd=directory,
                        env=environment,
                        check=False,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=workload.timeout_s,
                    )
                    if done.returncode != 0:
                        return "failed", done.stdout.decode(errors="replace")
            except subprocess.TimeoutExpired:
                return "timeout", ""
        return "success", done.stdout.decode(errors="replace")

    return run


@dataclass
class _Request:
    """A job handed from a client thread to a runner thread, and the answer handed back."""

    token: str
    answered: threading.Event = field(default_factory=threading.Event)
    status: str = "unanswered"
    stdout: str = ""


def run_floor(
    runner: Runner, workload: Workload, *, jobs: int, clients: int, parallel: int, deadline: Deadline
) -> tuple[list[JobSample], float]:
    """`clients` threads hand jobs to `parallel` runner threads through one FIFO queue, as the service's
    clients hand them to its W workers through Redis; a sample times a job from hand-over to answer."""
    requests: queue.Queue[_Request | None] = queue.Queue()
    runners = [
        threading.Thread(target=_serve, args=(runner, requests, index), daemon=True)
        for index in range(parallel)
    ]
    for thread in runners:
        thread.start()

    def work(index: int) -> JobSample:
        request = _Request(new_token())
        started = time.perf_counter()
        requests.put(request)
        while not request.answered.wait(0.2):
            if deadline.expired():
                return JobSample(False, "deadline", time.perf_counter() - started)
        ok = request.status == "success" and workload.check(request.stdout, request.token)
        return JobSample(ok, request.status, time.perf_counter() - started)

    try:
        return run_pool(clients, jobs, deadline, work)
    finally:
        for _ in runners:
            requests.put(None)


def _serve(runner: Runner, requests: "queue.Queue[_Request | None]", index: int) -> None:
    """Run queued jobs one at a time until the stop sentinel comes."""
    while (request := requests.get()) is not None:
        try:
            request.status, request.stdout = runner(request.token, index)
        except Exception as error:
            request.status = f"error: {error!r}"
        finally:
            request.answered.set()
