"""The whole path on a real Redis with real `rq worker` processes: every status word of API.md."""

import base64
import os
import shutil
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import zstandard
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import poll_until, python_queue

Run = Callable[..., dict[str, Any]]


def test_hello_world_runs_to_success(run: Run) -> None:
    view = run("print('hello')")
    assert (view["status"], view["stdout"], view["stderr"], view["return_code"]) == (
        "success",
        "hello\n",
        "",
        0,
    )
    assert view["signal"] is None
    assert view["execution_time"] > 0
    assert view["memory_kb"] > 0
    assert view["started_at"] <= view["ended_at"]


def test_a_submitted_job_can_be_polled_to_its_result(client: FlaskClient) -> None:
    job_id = client.post("/api/v1/execute", json={"code": "print(6 * 7)"}).get_json()["job_id"]
    view = poll_until(client, job_id, {"success"})
    assert view["stdout"] == "42\n"


def test_stdin_and_arguments_reach_the_program(run: Run) -> None:
    code = "import sys; print(sys.argv[1:], sys.stdin.read().upper())"
    view = run(code, stdin="shout", args=["a", "b c"])
    assert view["stdout"] == "['a', 'b c'] SHOUT\n"


def test_an_exception_is_a_failed_job_with_its_traceback(run: Run) -> None:
    view = run("raise ValueError('boom')")
    assert (view["status"], view["return_code"]) == ("failed", 1)
    assert "ValueError: boom" in view["stderr"]


def test_a_crash_by_signal_is_failed_with_the_signal_name(run: Run) -> None:
    view = run("import os, signal; os.kill(os.getpid(), signal.SIGABRT)")
    assert (view["status"], view["return_code"], view["signal"]) == ("failed", None, "SIGABRT")


def test_a_sleeping_program_times_out(run: Run) -> None:
    view = run("import time; time.sleep(30)", timeout=0.5)
    assert view["status"] == "timeout"
    assert view["execution_time"] < 5


def test_a_memory_hog_hits_the_memory_limit(run: Run) -> None:
    view = run("block = bytearray(200 * 1024 * 1024)", memory_mb=64)
    assert view["status"] == "memory_limit"


def test_an_output_flood_hits_the_output_limit(run: Run) -> None:
    view = run("import sys\nwhile True: sys.stdout.write('x' * 65536)", timeout=10)
    assert (view["status"], view["stdout_truncated"]) == ("output_limit", True)
    assert len(view["stdout"]) == 1024 * 1024


def test_large_input_and_output_arrive_whole_and_are_stored_compressed(
    client: FlaskClient, redis_client: Redis
) -> None:
    stdin = "".join(f"line {i}\n" for i in range(50_000))
    code = "import sys\nfor line in sys.stdin: print(line.upper(), end='')"
    response = client.post("/api/v1/execute?wait=true", json={"code": code, "stdin": stdin})
    view = response.get_json()
    assert (view["status"], view["stdout"]) == ("success", stdin.upper())
    job_id = view["job_id"]
    job_data = zlib.decompress(redis_client.hget(Job.key_for(job_id), "data"))  # RQ's own zlib
    assert job_data.startswith(zstandard.FRAME_HEADER) and len(job_data) < len(stdin) / 2
    ((_, entry),) = redis_client.xrevrange(Result.get_key(job_id), count=1)
    stored_result = base64.b64decode(entry[b"return_value"])  # RQ's own base64
    assert stored_result.startswith(zstandard.FRAME_HEADER) and len(stored_result) < len(stdin) / 2


def test_a_running_job_reports_started_and_can_be_canceled(client: FlaskClient, run: Run) -> None:
    code = "import time\nprint('begun', flush=True)\ntime.sleep(30)"
    job_id = client.post("/api/v1/execute", json={"code": code, "timeout": 30}).get_json()["job_id"]
    poll_until(client, job_id, {"started"})
    canceled = client.delete(f"/api/v1/execute/{job_id}")
    assert (canceled.status_code, canceled.get_json()["status"]) == (200, "canceled")
    view = poll_until(client, job_id, {"canceled"})
    # The program really died: the worker is free for the next job long before the 30 s sleep ends.
    assert run("print('next')")["stdout"] == "next\n"
    assert poll_until(client, job_id, {"canceled"})["status"] == "canceled"
    assert view["status"] == "canceled"


def test_canceling_an_ended_job_is_a_conflict(client: FlaskClient, run: Run) -> None:
    job_id = run("print(1)")["job_id"]
    response = client.delete(f"/api/v1/execute/{job_id}")
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "conflict")


def test_a_job_without_a_worker_stays_queued_and_cancels_cleanly(settings: Settings, workers: Any) -> None:
    idle = create_app(settings.model_copy(update={"queue_name": "nobody-works-here"})).test_client()
    first = idle.post("/api/v1/execute", json={"code": "print(1)"}).get_json()["job_id"]
    second = idle.post("/api/v1/execute", json={"code": "print(2)"}).get_json()["job_id"]
    view = idle.get(f"/api/v1/execute/{second}").get_json()
    assert (view["status"], view["queue_position"]) == ("queued", 1)
    assert idle.delete(f"/api/v1/execute/{first}").get_json()["status"] == "canceled"
    assert idle.get(f"/api/v1/execute/{second}").get_json()["queue_position"] == 0


def test_a_job_forged_in_redis_naming_another_function_is_refused(
    client: FlaskClient, redis_client: Redis, settings: Settings, tmp_path: Any
) -> None:
    marker = tmp_path / "forged-ran"
    queue = Queue(python_queue(settings), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("os.system", f"touch {marker}", job_id=str(uuid.uuid4()), meta={"owner": None})
    view = poll_until(client, job.id, {"internal_error"})
    assert "refused" in view["message"]
    assert not os.path.exists(marker)


def test_a_forged_job_with_limits_beyond_the_operator_maxima_is_refused(
    client: FlaskClient, redis_client: Redis, settings: Settings
) -> None:
    queue = Queue(python_queue(settings), connection=redis_client, serializer=JSONSerializer)
    request = {
        "code": "print(1)",
        "timeout": 10_000,
        "memory_mb": 256,
        "language": "python",
        "stdin": "",
        "args": [],
    }
    job = queue.enqueue(
        "workers.tasks.run_job", request=request, job_id=str(uuid.uuid4()), meta={"owner": None}
    )
    assert poll_until(client, job.id, {"internal_error"})["status"] == "internal_error"


def test_health_counts_workers_and_names_the_sandbox(client: FlaskClient) -> None:
    health = client.get("/health").get_json()
    assert health["status"] == "ok"
    assert health["workers"] >= 2
    # Other tests start degraded workers too; their heartbeats may still be alive for a few seconds.
    isolation = "bwrap" if shutil.which("bwrap") else "rlimits-only"
    # Root workers give every run a cgroup of its own: the full level, as CI runs it.
    level = f"{isolation}+cgroup" if os.geteuid() == 0 else isolation
    assert level in health["sandbox"].split(", ")


def test_concurrent_jobs_on_different_workers_do_not_disturb_each_other(client: FlaskClient) -> None:
    code = "import sys, time\ntime.sleep(0.5)\nprint(sys.argv[1])"
    job_ids = [
        client.post("/api/v1/execute", json={"code": code, "args": [str(index)]}).get_json()["job_id"]
        for index in range(6)
    ]
    views = [poll_until(client, job_id, {"success", "failed", "internal_error"}) for job_id in job_ids]
    assert [(view["status"], view["stdout"]) for view in views] == [("success", f"{i}\n") for i in range(6)]


def test_a_poll_with_wait_holds_the_answer_until_the_job_ends(client: FlaskClient) -> None:
    job_id = client.post(
        "/api/v1/execute", json={"code": "import time\ntime.sleep(0.3)\nprint('late')"}
    ).get_json()["job_id"]
    view = client.get(f"/api/v1/execute/{job_id}?wait=true").get_json()
    assert (view["status"], view["stdout"]) == ("success", "late\n")
