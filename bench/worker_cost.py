"""`python -m bench.worker_cost`: what the rq worker itself spends per job, with the program stubbed.

`make bench` cannot resolve a change worth a few hundred microseconds per job on a shared machine
(docs/benchmark.md); this measures the one process such a change touches. A private redis-server
gets N hello jobs, submitted as the API submits them; one ExecutorWorker in this process runs them
in burst mode with the job function replaced by a canned result, so what is timed is RQ's and our
bookkeeping: CPU and wall time per job, the Redis commands it sends, and the CPU redis-server spends
on them (a change can move work from the worker into Redis, e.g. into a script).
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from typing import Any

from redis import Redis
from rq.registry import FinishedJobRegistry

from bench.procstat import cpu_times, own_cpu_s
from bench.stack import announce_every_language, private_redis
from executor.jobs.queue import JobQueue
from executor.jobs.request import execute_request_model
from executor.jobs.routing import language_queue
from executor.jobs.serializer import JobSerializer
from executor.languages import build_languages
from executor.sandbox.result import Outcome, RunResult
from executor.settings import Settings
from workers import worker as worker_module
from workers.claiming_queue import ClaimingQueue
from workers.worker import ExecutorJob, ExecutorWorker

QUEUE_NAME = "worker-cost"


def canned_run_job(request: dict[str, Any]) -> dict[str, Any]:
    """The result a hello-world program gives, without running one."""
    return RunResult(Outcome.SUCCESS, stdout="hello\n", return_code=0).to_dict()


def executor_worker(redis_url: str, queue_name: str) -> ExecutorWorker:
    """An ExecutorWorker on `queue_name`'s language queues, as the Procfile's line makes one."""
    return ExecutorWorker(
        [queue_name],
        connection=Redis.from_url(redis_url),
        queue_class=ClaimingQueue,
        job_class=ExecutorJob,
        serializer=JobSerializer,
    )


def run_stubbed_worker(redis_url: str, queue_name: str, log_level: str) -> None:
    """Run every job waiting in `queue_name`'s language queues with one ExecutorWorker in this
    process, each job's program replaced by `canned_run_job`."""
    worker = executor_worker(redis_url, queue_name)
    real_run_job, worker_module.run_job = worker_module.run_job, canned_run_job
    try:  # `ExecutorJob.func` calls the module's `run_job`
        worker.work(burst=True, logging_level=log_level)
    finally:
        worker_module.run_job = real_run_job


def measure(jobs: int, log_level: str) -> dict[str, float]:
    """Submit `jobs` jobs, run them with the stubbed job function, and time the worker (logging to
    stderr at `log_level`)."""
    with (
        tempfile.TemporaryDirectory(prefix="executor-worker-cost-") as temp_dir,
        private_redis(temp_dir) as server,
    ):
        settings = Settings(redis_url=server.url, queue_name=QUEUE_NAME)
        connection = Redis.from_url(server.url)
        queue = JobQueue(connection, settings, build_languages(settings.python, ("python",)))
        announce_every_language(connection)
        request = execute_request_model(settings, ["python"]).model_validate({"code": "print('hello')"})
        for _ in range(jobs):
            queue.submit(request, None)
        commands_before = connection.info("stats")["total_commands_processed"]
        redis_before = cpu_times(server.process.pid).own_s
        cpu_before, wall_before = own_cpu_s(), time.perf_counter()
        run_stubbed_worker(server.url, QUEUE_NAME, log_level)
        cpu_after, wall_after = own_cpu_s(), time.perf_counter()
        redis_after = cpu_times(server.process.pid).own_s
        # The INFO that reads the counter is one command; the heartbeat thread adds a few per run.
        commands = connection.info("stats")["total_commands_processed"] - commands_before - 1
        finished = FinishedJobRegistry(language_queue(QUEUE_NAME, "python"), connection=connection).count
    return {
        "jobs": jobs,
        "finished": finished,
        "worker_cpu_ms_per_job": (cpu_after - cpu_before) * 1000 / jobs,
        "wall_ms_per_job": (wall_after - wall_before) * 1000 / jobs,
        "redis_cpu_ms_per_job": (redis_after - redis_before) * 1000 / jobs,
        "redis_commands_per_job": commands / jobs,
    }


def main(argv: list[str]) -> int:
    """Print one line for people and one JSON line; exit 1 unless every job finished."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker_cost", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to run, default 2000")
    parser.add_argument(
        "--log-level", default="INFO", help="the worker's logging level, default INFO as `rq worker` logs"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    figures = measure(args.jobs, args.log_level)
    cpu, wall = figures["worker_cpu_ms_per_job"], figures["wall_ms_per_job"]
    commands, finished = figures["redis_commands_per_job"], figures["finished"]
    redis_cpu = figures["redis_cpu_ms_per_job"]
    print(f"worker CPU {cpu:.2f} ms/job, wall {wall:.2f} ms/job,", end=" ")
    print(f"redis-server CPU {redis_cpu:.2f} ms/job, {commands:.1f} Redis commands/job,", end=" ")
    print(f"{finished}/{args.jobs} finished")
    print(json.dumps({"bench": "worker_cost", **figures}))
    return 0 if figures["finished"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
