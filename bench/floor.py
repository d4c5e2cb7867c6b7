"""The floor: the same programs with no HTTP and no Redis, through the sandbox runner called directly,
through plain bubblewrap (the sandbox's namespaces and mounts, nothing of the runner around them),
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
from concurrent.futures import ThreadPoolExecutor
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


def sandbox_runner(workload: Workload, starter: bool = True, warm: bool = False) -> Runner:
    """`run_program` with the limits `workers.tasks.run_job` gives a request with this workload's timeout,
    starting programs cold; with `warm`, as a worker does by default (docs/warm-start.md), from a
    zygote per runner; without `starter`, bwrap is started through prlimit and setpriv instead of
    executor-start."""
    from dataclasses import replace

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
        sandbox = replace(_sandbox(index), warm_start=warm)
        if not starter:
            sandbox = replace(sandbox, starter_fd=None)
        result = run_program(program, limits, sandbox)
        if result.compile_time is not None:
            _COMPILE_SECONDS.setdefault(workload.language, []).append(result.compile_time)
        return str(result.outcome.value), str(result.stdout)

    return run


def starts_warm_here(language: str) -> bool:
    """Whether a worker with its default settings starts this language's programs warm here (the
    language, and a sandbox with bubblewrap, cgroups and a uid per slot)."""
    from dataclasses import replace

    from executor.sandbox.warm.backend import starts_warm

    sandbox = replace(_sandbox(0), warm_start=True)
    found = sandbox.languages[language]
    return starts_warm(sandbox, found, collects_files=False, compiled=found.compiled)


def warm_runner(workload: Workload) -> Runner | None:
    """The warm floor: `sandbox_runner` starting programs warm, or None where this workload's runs
    cannot start warm (`starts_warm_here`)."""
    if not starts_warm_here(workload.language):
        return None
    runner = sandbox_runner(workload, warm=True)

    def run(token: str, index: int) -> tuple[str, str]:
        return _slot_thread(index).submit(runner, token, index).result()

    return run


@cache
def _slot_thread(index: int) -> ThreadPoolExecutor:
    """The one thread, for the life of this process, that runs the warm floor's runner `index`: a
    zygote dies with the thread that started it (bubblewrap's --die-with-parent is a parent-death
    signal, which follows the thread), and the floor's runner threads end with each phase. A worker
    runs its jobs in its main thread."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"warm-floor-{index}")


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


def plain_bwrap_runner(workload: Workload) -> Runner | None:
    """The language's run command under bubblewrap alone, started as the bare runner starts it
    (`subprocess.run`, no uid switch, no rlimits, no seccomp, no cgroup, no scratch disk), or None
    for a language that compiles, which this floor does not cover.

    It has what bubblewrap itself costs in a run: every namespace (`--unshare-all`), the
    sandbox's own read-only /usr and merged-usr links, /proc, its five devices, a tmpfs /tmp and the
    job's directory as /work. The sandbox floor minus this one is what the runner adds to bwrap:
    the exec chain, the uid switch, the rlimits, the filter, the cgroup and the disk.
    """
    from executor.languages import build_languages
    from executor.sandbox import Limits
    from executor.sandbox.backends import bwrap
    from executor.sandbox.launch import program_environment
    from executor.settings import Settings

    settings = Settings()
    language = build_languages(settings.python)[workload.language]
    if language.compiled:
        return None
    command = language.command(Limits().memory_mb)
    environment = program_environment(language, home=bwrap.WORK_DIR, tmpdir="/tmp")
    fixed = [
        bwrap.installed_path(),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(bwrap.SANDBOX_UID),
        "--gid",
        str(bwrap.SANDBOX_GID),
        "--clearenv",
        *(arg for name, value in environment.items() for arg in ("--setenv", name, value)),
        "--ro-bind",
        "/usr",
        "/usr",
        *bwrap.root_links(),
        "--proc",
        "/proc",
        *(arg for device in bwrap.DEVICES for arg in ("--dev-bind", device, device)),
        "--tmpfs",
        "/tmp",
    ]

    def run(token: str, index: int) -> tuple[str, str]:
        with tempfile.TemporaryDirectory(prefix="bench-bwrap-") as directory:
            with open(os.path.join(directory, language.source_file), "w") as source:
                source.write(workload.code(token))
            argv = [*fixed, "--bind", directory, bwrap.WORK_DIR, "--chdir", bwrap.WORK_DIR, "--", *command]
            try:
                done = subprocess.run(
                    argv,
                    env={},
                    cwd="/",
                    check=False,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=workload.timeout_s,
                )
            except subprocess.TimeoutExpired:
                return "timeout", ""
        status = "success" if done.returncode == 0 else "failed"
        return status, done.stdout.decode(errors="replace")

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


def floor_ratios(
    floor: dict[str, Any],
    plain_bwrap: dict[str, Any] | None,
    bare: dict[str, Any],
    warm_floor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sandbox floor's throughput over plain bwrap's and over the bare interpreter's, and the warm
    floor's over the (cold) sandbox floor's, of one round."""

    def ratio(measured: dict[str, Any] | None, base: dict[str, Any] | None) -> float | None:
        if measured is None or base is None or not measured.get("jobs_per_s") or not base.get("jobs_per_s"):
            return None
        return float(measured["jobs_per_s"] / base["jobs_per_s"])

    return {
        "floor_to_plain_bwrap": ratio(floor, plain_bwrap),
        "floor_to_bare": ratio(floor, bare),
        "warm_floor_to_floor": ratio(warm_floor, floor),
    }


def main(argv: list[str]) -> int:
    """`python -m bench.floor [--rounds R] [--jobs N] [--clients C] [--parallel P] [--workload W]`:
    the floors alone (cold, warm where the workload starts warm, plain bwrap, bare), back to back in
    each round; per round their jobs/s, then the medians of the rounds' ratios. Exit 1 if a job
    failed or the time limit cut the run short."""
    import argparse

    from bench.measure import floor_phase
    from bench.pool import Deadline
    from bench.report import summarize
    from bench.workloads import ALL_WORKLOADS

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=main.__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2, help="runner threads, as the service's W")
    parser.add_argument("--workload", choices=sorted(ALL_WORKLOADS), default="hello")
    parser.add_argument("--time-limit", type=float, default=900.0)
    parser.add_argument(
        "--with-chain",
        action="store_true",
        help="also the sandbox floor started through prlimit and setpriv, as before executor-start",
    )
    args = parser.parse_args(argv)
    workload = ALL_WORKLOADS[args.workload]
    deadline = Deadline(args.time_limit)
    runners: dict[str, Runner | None] = {
        "floor": sandbox_runner(workload),
        "warm_floor": warm_runner(workload),
        **({"floor_chain": sandbox_runner(workload, starter=False)} if args.with_chain else {}),
        "plain_bwrap": plain_bwrap_runner(workload),
        "bare": bare_runner(workload),
    }
    rounds: list[dict[str, Any]] = []
    failed = 0
    for number in range(1, args.rounds + 1):
        figures: dict[str, Any] = {}
        for name, runner in runners.items():
            if runner is None:
                figures[name] = None
                continue
            phase = floor_phase(
                name,
                runner,
                workload,
                jobs=workload.jobs(args.jobs),
                clients=args.clients,
                parallel=args.parallel,
                deadline=deadline,
            )
            figures[name] = summarize(phase)
            failed += figures[name]["wrong_or_failed"]
        ratios = floor_ratios(
            figures["floor"], figures["plain_bwrap"], figures["bare"], figures["warm_floor"]
        )
        if args.with_chain:
            chain = floor_ratios(figures["floor_chain"], figures["plain_bwrap"], figures["bare"])
            ratios["floor_chain_to_plain_bwrap"] = chain["floor_to_plain_bwrap"]
        rounds.append(ratios)
        rates = "  ".join(
            f"{name} {found['jobs_per_s']:6.1f}" for name, found in figures.items() if found is not None
        )
        listed = "  ".join(f"{key} {value:.3f}" for key, value in ratios.items() if value is not None)
        print(f"round {number}: jobs/s {rates}  |  {listed}", flush=True)
    for key in ("floor_to_plain_bwrap", "floor_to_bare", "warm_floor_to_floor", "floor_chain_to_plain_bwrap"):
        known = [item[key] for item in rounds if item.get(key) is not None]
        if known:
            print(f"{key}: median {statistics.median(known):.3f} of {len(known)} rounds", flush=True)
    print(f"isolation {sandbox_isolation()}, cgroup step {cgroup_step_ms() or 0:.3f} ms per run")
    return 1 if failed or deadline.expired() else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
