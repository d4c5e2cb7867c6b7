"""Structured logs (EXECUTOR_LOG_FORMAT=json): every line of the web server and of a worker is a JSON
object; a request's line has its route, status, duration and job id, a job's line its id, language,
status, queue wait, run time, cpu time and memory; and no line holds a secret or a program's code,
input or output."""

import json
import uuid
from pathlib import Path
from typing import Any

from redis import Redis

from executor.jobs.routing import language_queue
from tests.stack import WorkerProcesses, stop_process
from tests.test_web_server import request, start_web

WEBHOOK_SECRET = "whsec-LOGTEST-7f3a"
API_KEY = "key-LOGTEST-91b2"
WRONG_KEY = "key-LOGTEST-wrong"
MARKS = ("CODE-LOGTEST-55", "OUTPUT-LOGTEST-66", "STDIN-LOGTEST-77", "ERR-LOGTEST-88")


def test_json_lines_with_job_ids_and_nothing_secret(
    stack_env: dict[str, str], pool: WorkerProcesses, redis_client: Redis, tmp_path: Path
) -> None:
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    env = {
        **stack_env,
        "EXECUTOR_LOG_FORMAT": "json",
        "EXECUTOR_QUEUE_NAME": queue,
        "EXECUTOR_API_KEYS": API_KEY,
        "EXECUTOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    pool.env = env
    pool.start(1, log=tmp_path / "worker.log")
    pool.wait_registered(redis_client, 1, language_queue(queue, "python"))
    web, port = start_web(env, log=tmp_path / "web.log")
    code, printed, given, err = MARKS
    program = f"import sys\n# {code}\nprint('{printed}')\nprint(input(), '{err}', file=sys.stderr)"
    try:
        status, _, view = request(
            port,
            "POST",
            "/api/v1/execute?wait=true",
            {"code": program, "stdin": given},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert (status, view["stdout"]) == (200, f"{printed}\n"), view
        refused, _, _ = request(
            port, "GET", "/api/v1/languages", headers={"Authorization": f"Bearer {WRONG_KEY}"}
        )
        assert refused == 401
    finally:
        stop_process(web)
        pool.stop_all()
    text = (tmp_path / "web.log").read_text() + (tmp_path / "worker.log").read_text()
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(
        line.get("route") == "/api/v1/execute"
        and line.get("status") == 200
        and line.get("job_id") == view["job_id"]
        and line.get("duration_ms", -1) >= 0
        for line in lines
    ), text
    (job_line,) = [line for line in lines if line.get("job_id") == view["job_id"] and "run_s" in line]
    assert (job_line["language"], job_line["status"]) == ("python", "success")
    assert job_line["queue_wait_s"] >= 0 and job_line["run_s"] > 0
    assert job_line["cpu_time_s"] > 0 and job_line["memory_kb"] > 0
    for secret in (WEBHOOK_SECRET, API_KEY, WRONG_KEY, *MARKS):
        assert secret not in text
    assert not [line for line in lines if line["logger"] == "gunicorn.access"]  # EXECUTOR_ACCESS_LOG unset


def test_gunicorns_access_lines_come_only_when_asked_for(
    stack_env: dict[str, str], workers: WorkerProcesses, tmp_path: Path
) -> None:
    web, port = start_web({**stack_env, "EXECUTOR_ACCESS_LOG": "1"}, log=tmp_path / "web.log")
    try:
        assert request(port, "GET", "/health")[0] == 200
    finally:
        stop_process(web)
    text = (tmp_path / "web.log").read_text()
    assert "gunicorn.access" in text and '"GET /health HTTP/1.1" 200' in text
