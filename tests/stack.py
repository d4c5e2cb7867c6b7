"""Helpers to start the processes of a deployment, exactly as the Procfile names them."""

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, Worker

from bench.procstat import descendants, reap_orphans
from devtools.run_local import procfile_command
from executor.jobs.routing import language_queue
from executor.settings import Settings
from executor.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT_S = 30.0
POLL_LIMIT_S = 30.0
# Placed in the workers' environment: no program may ever see it.
WORKER_SECRET = "executor-test-secret-5f2c9a"
# The key the session's callbacks are signed with.
WEBHOOK_SECRET = "executor-test-webhook-key"


class WorkerProcesses:
    """`rq worker` processes started from the Procfile line, stopped by pid at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, count: int = 1, extra_env: dict[str, str] | None = None, log: Path | None = None
    ) -> list[subprocess.Popen[bytes]]:
        """`count` workers; their stdout and stderr appended to `log` when given."""
        started = []
        for _ in range(count):
            with open(log or os.devnull, "ab") as output:
                process = subprocess.Popen(
                    procfile_command("worker"),
                    env={**self.env, **(extra_env or {})},
                    cwd=REPO,
                    stdout=output,
                    stderr=output,
                )
            started.append(process)
        self.processes.extend(started)
        return started

    def wait_registered(self, connection: Redis, count: int, queue: str | None = None) -> None:
        """Wait for `count` workers on `queue` (all queues when None); dead ones linger in RQ's registry."""
        on_queue = Queue(queue, connection=connection) if queue else None
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while Worker.count(connection=connection, queue=on_queue) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} workers registered in time")
            time.sleep(0.05)

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        stop_process(process, sig, timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            self.stop(process)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process a test started: `sig`, then SIGKILL if it has not ended within `timeout`; then
    reap what it left to this process (`bench.procstat.reap_orphans`: a killed worker's zygote)."""
    if process.poll() is not None:
        return
    left = descendants(process.pid)
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    reap_orphans(left)


def poll_until(client: FlaskClient, job_id: str, statuses: set[str]) -> dict[str, Any]:
    """Poll until the job reaches one of `statuses`, bounded in time."""
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        view: dict[str, Any] = client.get(f"/api/v1/execute/{job_id}").get_json()
        if view["status"] in statuses:
            return view
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}")


def processes_with_token(token: str) -> list[psutil.Process]:
    """Live processes whose command line carries `token` (programs get it as an argument)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if any(token in part for part in cmdline) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def submit(client: FlaskClient, code: str, **fields: Any) -> str:
    response = client.post("/api/v1/execute", json={"code": code, **fields})
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    return job_id


def python_queue(settings: Settings) -> str:
    """The queue where the python jobs of apps built with `settings` wait."""
    return language_queue(settings.queue_name, "python")


# Prints what runs as pid 1 of the program's namespace, the first 5 letters of its name: "bwrap" on
# the cold path, "pytho" on the warm one (the run's init, a fork of the zygote, docs/warm-start.md).
PID_1 = (
    "import os\n"
    "print(os.path.basename(open('/proc/1/cmdline', 'rb').read().split(bytes(1))[0].decode())[:5])\n"
)


def waiting(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """A function that submits a program through `client` with ?wait=true and returns its terminal view."""

    def submit_and_wait(code: str, **fields: Any) -> dict[str, Any]:
        response = client.post("/api/v1/execute?wait=true", json={"code": code, **fields})
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return submit_and_wait


def own_queue(
    settings: Settings, pool: WorkerProcesses, redis_client: Redis, workers: int, **updates: Any
) -> tuple[FlaskClient, list["subprocess.Popen[bytes]"]]:
    """An app and `workers` registered workers on a queue of this test alone."""
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    client = create_app(settings.model_copy(update={"queue_name": queue, **updates})).test_client()
    pool.env = {**pool.env, "EXECUTOR_QUEUE_NAME": queue}
    started = pool.start(workers)
    pool.wait_registered(redis_client, workers, language_queue(queue, "python"))
    return client, started
