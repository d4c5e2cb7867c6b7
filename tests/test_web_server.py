"""The Procfile's web line under gunicorn, as a Heroku-style platform starts it: real HTTP, real errors."""

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load import run_load
from bench.pool import Deadline
from devtools.local_redis import free_port
from devtools.run_local import procfile_command
from tests.stack import REPO, WorkerProcesses, stop_process

START_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def web_port(stack_env: dict[str, str], workers: WorkerProcesses) -> Iterator[int]:
    process, port = start_web(stack_env)
    yield port
    stop_process(process)


def start_web(
    env: dict[str, str], processes: int = 1, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The Procfile's web line with `processes` gunicorn workers on a free port, once it answers
    /health (whatever the status); its stdout and stderr appended to `log` when given."""
    port = free_port()
    with open(log or os.devnull, "ab") as output:
        process = subprocess.Popen(
            procfile_command("web"),
            env={**env, "PORT": str(port), "WEB_CONCURRENCY": str(processes)},
            cwd=REPO,
            stdout=output,
            stderr=output,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            request(port, "GET", "/health")
            return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps(body) if body is not None else None
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    connection.request(method, path, body=payload, headers=all_headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    content_type = response.getheader("Content-Type", "")
    parsed = json.loads(raw) if content_type.startswith("application/json") else raw
    return response.status, dict(response.getheaders()), parsed


def test_the_procfile_web_process_serves_a_program(web_port: int) -> None:
    status, _, body = request(web_port, "POST", "/api/v1/execute?wait=true", {"code": "print('hello')"})
    assert (status, body["status"], body["stdout"]) == (200, "success", "hello\n")


def test_an_over_long_url_is_refused_as_json(web_port: int) -> None:
    status, _, body = request(web_port, "GET", "/api/v1/execute/" + "x" * 10_000)
    assert (status, body["error"]["code"]) == (414, "uri_too_long")


def test_an_over_long_header_is_refused_as_json(web_port: int) -> None:
    status, _, body = request(web_port, "GET", "/health", headers={"X-Big": "y" * 10_000})
    assert status in {400, 431}
    assert body["error"]["code"] in {"bad_request", "headers_too_large"}


def test_the_dashboard_shows_queues_workers_and_jobs(web_port: int) -> None:
    # 40 kB of output: a result the worker stores compressed, which the dashboard must still read.
    code = "print('ab' * 20000)"
    _, _, job = request(web_port, "POST", "/api/v1/execute?wait=true", {"code": code})
    for path in ("/rq/", "/rq/0/view/workers", f"/rq/0/view/job/{job['job_id']}"):
        assert request(web_port, "GET", path)[0] == 200, path
    status, _, queues = request(web_port, "GET", "/rq/0/data/queues.json")
    assert status == 200
    assert "tests.python" in {queue["name"] for queue in queues["queues"]}
    status, _, info = request(web_port, "GET", f"/rq/0/data/job/{job['job_id']}.json")
    assert (status, info["status"], info["result"]["stdout"]) == (200, "finished", "ab" * 20000 + "\n")


def test_concurrent_clients_each_get_their_own_result(web_port: int) -> None:
    """A small run of the bench's load check: every job terminal, its own output, documented codes only."""
    report = run_load(f"http://127.0.0.1:{web_port}", jobs=120, clients=20, deadline=Deadline(120))
    assert report.ok, report.figures()
    assert report.terminal == report.jobs == 120
