"""One measured phase: the service through HTTP, or the floor through the runner, with its CPU and memory."""

import os
import resource
import sys
from functools import partial

from bench.client import run_clients
from bench.floor import Runner, run_floor
from bench.pool import Deadline
from bench.procstat import idle_s, own_cpu_s, zygote_cpu_s
from bench.report import Phase
from bench.stack import Stack
from bench.workloads import Workload

# Figure name -> StackUsage attribute, each in CPU ms per job.
CPU_FIGURES = {
    "overhead_cpu_ms_per_job": "service_s",
    "web_cpu_ms_per_job": "web_s",
    "worker_cpu_ms_per_job": "workers_s",
    "redis_cpu_ms_per_job": "redis_s",
    "program_cpu_ms_per_job": "program_s",
}


def service_phase(
    stack: Stack,
    workload: Workload,
    *,
    jobs: int,
    clients: int,
    mode: str,
    poll_interval_s: float,
    deadline: Deadline,
) -> Phase:
    """`jobs` jobs from `clients` HTTP clients; CPU of the stack's processes and of this (client) process."""
    _progress(f"service {workload.name} {mode} W={len(stack.workers)} C={clients} jobs={jobs}")
    drive = partial(
        run_clients,
        stack.base_url,
        workload,
        clients=clients,
        mode=mode,
        poll_interval_s=poll_interval_s,
        deadline=deadline,
    )
    with stack.watched(deadline):
        # Not timed: loads what the first requests of each gunicorn process and worker load lazily.
        drive(jobs=len(stack.workers) * 2)
        before, client_before, idle_before = stack.usage(), own_cpu_s(resource.RUSAGE_SELF), idle_s()
        samples, elapsed = drive(jobs=jobs)
        after, client_after, idle_after = stack.usage(), own_cpu_s(resource.RUSAGE_SELF), idle_s()
    done = max(1, len(samples))
    per_job = {
        key: (getattr(after, attribute) - getattr(before, attribute)) * 1000 / done
        for key, attribute in CPU_FIGURES.items()
    }
    resources = {
        **per_job,
        # The INFO calls that read these counters add 2 commands per phase: noise, not worth removing.
        "redis_commands_per_job": (after.redis_commands - before.redis_commands) / done,
        "client_cpu_ms_per_job": (client_after - client_before) * 1000 / done,
        "idle_cores": (idle_after - idle_before) / elapsed if elapsed > 0 else None,
        **stack.memory(),
    }
    return Phase(samples, elapsed, jobs, resources)


def floor_phase(
    name: str,
    runner: Runner,
    workload: Workload,
    *,
    jobs: int,
    clients: int,
    parallel: int,
    deadline: Deadline,
) -> Phase:
    """Direct runs from `clients` threads, `parallel` at a time; CPU of this process and its children."""
    _progress(f"{name} {workload.name} parallel={parallel} C={clients} jobs={jobs}")
    run_floor(runner, workload, jobs=parallel, clients=parallel, parallel=parallel, deadline=deadline)
    own_before, children_before = own_cpu_s(resource.RUSAGE_SELF), _programs_cpu_s()
    idle_before = idle_s()
    samples, elapsed = run_floor(
        runner, workload, jobs=jobs, clients=clients, parallel=parallel, deadline=deadline
    )
    own_after, children_after = own_cpu_s(resource.RUSAGE_SELF), _programs_cpu_s()
    idle_after = idle_s()
    done = max(1, len(samples))
    resources = {
        "overhead_cpu_ms_per_job": (own_after - own_before) * 1000 / done,
        "program_cpu_ms_per_job": (children_after - children_before) * 1000 / done,
        "idle_cores": (idle_after - idle_before) / elapsed if elapsed > 0 else None,
    }
    return Phase(samples, elapsed, jobs, resources)


def _programs_cpu_s() -> float:
    """CPU of the floor's programs: this process's reaped children, and its live zygotes with theirs."""
    return own_cpu_s(resource.RUSAGE_CHILDREN) + zygote_cpu_s([os.getpid()])


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
