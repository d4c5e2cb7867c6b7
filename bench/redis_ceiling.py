"""`python -m bench.redis_ceiling`: how many jobs/s one Redis core can carry, and a check of it.

One Redis serves every web process and every worker of a deployment, so its CPU per job bounds the
whole service: at 100 % of its one core, jobs/s = 1000 / (Redis CPU ms per job). The figure comes
from the service's own command mix, without HTTP and without sandboxes: `POST ?wait=true` through
the Flask app called in-process (the enqueue script and the blocking read of the result), and
ExecutorWorkers with the program stubbed (claim, start and finish scripts, metrics, heartbeats).

- *estimate*: one submitter and one worker, one job at a time; Redis CPU per job;
- *check*: several submitter processes and several worker processes at once, as a deployment
  scales out. If Redis's CPU per job holds under that concurrency, the ceiling projected from the
  estimate stands; Redis's utilisation and the jobs/s it served are reported beside it.

On a small machine the Python processes fill the cores long before Redis does, so the check shows
whether the cost per job stays put as load grows, not Redis at 100 %.
"""

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from bench.procstat import cpu_times
from bench.stack import announce_every_language, private_redis
from bench.worker_cost import canned_run_job, executor_worker
from executor.settings import Settings
from executor.web.app import create_app
from workers import worker as worker_module

QUEUE_NAME = "redis-ceiling"
PROGRAM = {"code": "print('hello')", "language": "python"}
# A worker with nothing to do for this long has seen the phase's last job.
WORKER_IDLE_EXIT_S = 3


@dataclass(frozen=True)
class Phase:
    """What Redis spent on one phase's jobs."""

    submitters: int
    workers: int
    jobs: int
    answered_200: int
    seconds: float
    redis_cpu_s: float
    redis_commands: int

    @property
    def redis_cpu_ms_per_job(self) -> float:
        return self.redis_cpu_s * 1000 / self.jobs

    def figures(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "jobs_per_s": self.jobs / self.seconds,
            "redis_cpu_ms_per_job": self.redis_cpu_ms_per_job,
            "redis_commands_per_job": self.redis_commands / self.jobs,
            "redis_utilisation": self.redis_cpu_s / self.seconds,
            "jobs_per_s_per_redis_core": 1000 / self.redis_cpu_ms_per_job,
        }


def submit(redis_url: str, jobs: int, answers: Any) -> None:
    """Submit `jobs` hello jobs one after another with ?wait=true through the app, in-process."""
    client = create_app(Settings(redis_url=redis_url, queue_name=QUEUE_NAME)).test_client()
    ok = 0
    for _ in range(jobs):
        response = client.post("/api/v1/execute?wait=true", json=PROGRAM)
        ok += response.status_code == 200
    answers.put(ok)


def work(redis_url: str) -> None:
    """Run jobs with the program stubbed until none has come for WORKER_IDLE_EXIT_S."""
    worker = executor_worker(redis_url, QUEUE_NAME)
    worker_module.run_job = canned_run_job  # this process is the worker's alone
    worker.work(burst=False, max_idle_time=WORKER_IDLE_EXIT_S, logging_level="WARNING")


def run_phase(redis_url: str, redis_pid: int, submitters: int, workers: int, jobs: int) -> Phase:
    """`jobs` jobs from `submitters` processes run by `workers` processes; Redis's CPU over it."""
    connection = Redis.from_url(redis_url)
    answers: Any = multiprocessing.Queue()
    working = [multiprocessing.Process(target=work, args=(redis_url,)) for _ in range(workers)]
    for process in working:
        process.start()
    time.sleep(2)  # the workers have started and registered
    commands_before = int(connection.info("stats")["total_commands_processed"])
    cpu_before, began = cpu_times(redis_pid).own_s, time.monotonic()
    submitting = [
        multiprocessing.Process(target=submit, args=(redis_url, jobs // submitters, answers))
        for _ in range(submitters)
    ]
    for process in submitting:
        process.start()
    answered = sum(answers.get(timeout=600) for _ in submitting)
    seconds = time.monotonic() - began
    cpu_after = cpu_times(redis_pid).own_s
    commands = int(connection.info("stats")["total_commands_processed"]) - commands_before
    for process in [*submitting, *working]:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    done = jobs // submitters * submitters
    return Phase(submitters, workers, done, answered, seconds, cpu_after - cpu_before, commands)


def measure(jobs: int, processes: int) -> dict[str, Any]:
    """The estimate (1 submitter, 1 worker) and the check (`processes` of each), on a private Redis.
    The worker-idle wait at a phase's end is outside the timed part: it starts at the first submit
    and ends with the last answer."""
    with (
        tempfile.TemporaryDirectory(prefix="executor-redis-ceiling-") as temp_dir,
        private_redis(temp_dir) as server,
    ):
        announce_every_language(Redis.from_url(server.url))
        estimate = run_phase(server.url, server.process.pid, 1, 1, jobs)
        check = run_phase(server.url, server.process.pid, processes, processes, jobs)
    return {
        "estimate": estimate.figures(),
        "check": check.figures(),
        "check_over_estimate_cpu_per_job": check.redis_cpu_ms_per_job / estimate.redis_cpu_ms_per_job,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_ceiling", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per phase, default 2000")
    parser.add_argument("--processes", type=int, default=4, help="submitters and workers in the check")
    args = parser.parse_args(argv)
    if args.jobs < args.processes or args.processes < 1:
        parser.error("--processes must be >= 1 and --jobs >= --processes")
    figures = measure(args.jobs, args.processes)
    for name in ("estimate", "check"):
        phase = figures[name]
        print(
            f"{name}: {phase['submitters']} submitter(s), {phase['workers']} worker(s), "
            f"{phase['jobs']} jobs at {phase['jobs_per_s']:.0f} jobs/s; Redis "
            f"{phase['redis_cpu_ms_per_job']:.3f} ms CPU and {phase['redis_commands_per_job']:.1f} commands "
            f"per job, {phase['redis_utilisation']:.0%} of a core; one core carries "
            f"{phase['jobs_per_s_per_redis_core']:.0f} jobs/s"
        )
    print(json.dumps({"bench": "redis_ceiling", **figures}))
    answered = figures["estimate"]["answered_200"] + figures["check"]["answered_200"]
    return 0 if answered == figures["estimate"]["jobs"] + figures["check"]["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
