"""Workers name the isolation they run programs in, and can be told to refuse anything weaker."""

import os
import subprocess
import sys
import time
import uuid

from redis import Redis
from rq import Queue, Worker

from devtools.run_local import procfile_command
from executor.jobs.liveness import HEARTBEAT_PREFIX
from executor.jobs.routing import language_queue
from tests.stack import REPO, WorkerProcesses

# A PATH with the virtualenv but without /usr/bin, where bwrap lives: bubblewrap is "not installed".
NO_BWRAP_PATH = os.path.dirname(sys.executable)


def test_a_worker_that_must_isolate_refuses_to_start_without_bubblewrap(stack_env: dict[str, str]) -> None:
    env = {**stack_env, "PATH": NO_BWRAP_PATH, "EXECUTOR_REQUIRE_ISOLATION": "1"}
    finished = subprocess.run(
        procfile_command("worker"), env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode != 0
    # Logged, like every event, on stdout (executor/logs.py).
    said = finished.stdout + finished.stderr
    assert "SandboxUnavailable: bubblewrap does not work here: bwrap is not installed" in said


def test_a_worker_without_bubblewrap_runs_with_rlimits_only_and_says_so(
    stack_env: dict[str, str], redis_client: Redis
) -> None:
    queue = f"degraded-{uuid.uuid4().hex[:8]}"
    pool = WorkerProcesses({**stack_env, "PATH": NO_BWRAP_PATH, "EXECUTOR_QUEUE_NAME": queue})
    try:
        pool.start(1)
        deadline = time.monotonic() + 30
        # This worker's own heartbeat, not any live worker's: others may run with rlimits only too.
        # As root each run still gets a cgroup of its own; otherwise rlimits are all there is.
        expected = b"rlimits-only+cgroup" if os.geteuid() == 0 else b"rlimits-only"
        while _isolations_of_workers_on(queue, redis_client) != [expected]:
            assert time.monotonic() < deadline, "the degraded worker never reported its isolation"
            time.sleep(0.1)
    finally:
        pool.stop_all()


def _isolations_of_workers_on(queue: str, redis_client: Redis) -> list[bytes | None]:
    """What the heartbeats of the workers serving `queue`'s python jobs say (None before a first beat)."""
    workers = Worker.all(queue=Queue(language_queue(queue, "python"), connection=redis_client))
    return [redis_client.get(HEARTBEAT_PREFIX + worker.name) for worker in workers]
