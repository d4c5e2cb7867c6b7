"""Faults on a real Redis with real workers: outages, restarts, lost workers, graceful stops."""

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Worker
from rq.job import Job

from bench.stack import announce_every_language
from devtools.local_redis import RedisServer, start_redis, stop_redis
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses, own_queue, poll_until, processes_with_token, python_queue, submit

OUTAGE_ANSWER_LIMIT_S = 2.0


def fault_env(env: dict[str, str], redis_url: str, queue: str) -> dict[str, str]:
    return {**env, "REDIS_URL": redis_url, "EXECUTOR_QUEUE_NAME": queue}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, so stopping it harms no other test."""
    server = start_redis(str(tmp_path / "redis"))
    yield server
    stop_redis(server)


def test_redis_away_gives_quick_503s_and_the_service_recovers_with_jobs_kept(
    own_redis: RedisServer, pool: WorkerProcesses, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    settings = Settings(redis_url=own_redis.url, queue_name="outage")
    client = create_app(settings).test_client()
    announce_every_language(Redis.from_url(own_redis.url))  # as the deployment's workers did before
    job_id = submit(client, "print('survived')")

    stop_redis(own_redis)
    for method, path in [
        ("post", "/api/v1/execute"),
        ("get", f"/api/v1/execute/{job_id}"),
        ("delete", f"/api/v1/execute/{job_id}"),
    ]:
        started = time.monotonic()
        response = getattr(client, method)(path, json={"code": "print(1)"})
        assert time.monotonic() - started < OUTAGE_ANSWER_LIMIT_S
        assert (response.status_code, response.get_json()["error"]["code"]) == (503, "unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/health").status_code == 503

    # Same port, same data folder: the append-only file brings the queued job back.
    restarted = start_redis(str(tmp_path / "redis"), port=own_redis.port)
    try:
        assert client.get("/health").status_code == 200
        pool.env = fault_env(stack_env, restarted.url, "outage")
        pool.start(1)
        assert poll_until(client, job_id, {"success"})["stdout"] == "survived\n"
    finally:
        pool.stop_all()
        stop_redis(restarted)


def test_a_worker_rides_out_a_redis_restart_during_a_job(
    own_redis: RedisServer, pool: WorkerProcesses, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    settings = Settings(redis_url=own_redis.url, queue_name="restart")
    client = create_app(settings).test_client()
    pool.env = fault_env(stack_env, own_redis.url, "restart")
    pool.start(1)
    pool.wait_registered(Redis.from_url(own_redis.url), 1)
    job_id = submit(client, "import time\ntime.sleep(1)\nprint('finished')", timeout=10)
    poll_until(client, job_id, {"started"})

    stop_redis(own_redis)
    time.sleep(3)  # the program ends while Redis is away; the worker must keep its result
    restarted = start_redis(str(tmp_path / "redis"), port=own_redis.port)
    try:
        view = poll_until(client, job_id, {"success", "internal_error"})
        assert (view["status"], view["stdout"]) == ("success", "finished\n")
        assert pool.processes[0].poll() is None, "the worker quit instead of riding out the outage"
        assert poll_until(client, submit(client, "print(2)"), {"success"})["stdout"] == "2\n"
    finally:
        pool.stop_all()
        stop_redis(restarted)


def test_a_job_whose_worker_is_killed_ends_internal_error_and_its_program_dies(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    lost_client, (doomed, survivor) = own_queue(settings, pool, redis_client, 2)
    token = uuid.uuid4().hex
    job_id = submit(lost_client, "import time\ntime.sleep(60)", timeout=30, args=[token])
    poll_until(lost_client, job_id, {"started"})
    worker_name = Job.fetch(job_id, connection=redis_client).worker_name
    worker = Worker.find_by_key(
        Worker.redis_worker_namespace_prefix + str(worker_name), connection=redis_client
    )
    assert worker is not None
    victim = doomed if worker.pid == doomed.pid else survivor
    pool.stop(victim, signal.SIGKILL)

    view = poll_until(lost_client, job_id, {"internal_error"})
    assert "lost" in view["message"]
    # The program died with its worker: nothing of it is left running.
    deadline = time.monotonic() + 5
    while processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_token(token) == []
    # A live worker settles the job in Redis too, so it is not `started` for RQ either.
    deadline = time.monotonic() + 30
    while Job.fetch(job_id, connection=redis_client).get_status() != "failed":
        assert time.monotonic() < deadline, "the lost job was never settled"
        time.sleep(0.2)


def test_a_lost_job_runs_again_when_the_operator_asks(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    retry_client, (first,) = own_queue(settings, pool, redis_client, 1, retry_lost_jobs=True)
    job_id = submit(retry_client, "import time\ntime.sleep(1.5)\nprint('ran')", timeout=10)
    poll_until(retry_client, job_id, {"started"})
    pool.stop(first, signal.SIGKILL)
    pool.start(1)
    view = poll_until(retry_client, job_id, {"success", "internal_error"})
    assert (view["status"], view["stdout"]) == ("success", "ran\n")


def test_sigterm_lets_the_running_job_finish_and_takes_no_new_one(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    drain_client, (worker,) = own_queue(settings, pool, redis_client, 1)
    running = submit(drain_client, "import time\ntime.sleep(1.5)\nprint('done')", timeout=10)
    poll_until(drain_client, running, {"started"})
    waiting = submit(drain_client, "print('later')")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert drain_client.get(f"/api/v1/execute/{running}").get_json()["stdout"] == "done\n"
    assert drain_client.get(f"/api/v1/execute/{waiting}").get_json()["status"] == "queued"


def test_a_short_redis_timeout_still_lets_wait_true_wait(client: FlaskClient, settings: Settings) -> None:
    """The blocking reads of ?wait=true are sliced inside the Redis timeout, whatever it is set to:
    with 0.3 s, a 1 s job is waited for and answered 200, never 503."""
    short = create_app(settings.model_copy(update={"redis_timeout": 0.3})).test_client()
    response = short.post(
        "/api/v1/execute?wait=true", json={"code": "import time\ntime.sleep(1)\nprint('ok')"}
    )
    assert (response.status_code, response.get_json()["stdout"]) == (200, "ok\n")


def test_a_queued_job_whose_wait_fails_is_answered_202_and_queued_once(
    settings: Settings, redis_client: Redis, workers: WorkerProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait that outlasts the socket timeout (forced here: slices of 1 s on a 0.3 s timeout) fails
    after the job was queued; redis-py even runs the pipeline again. The answer is still 202 with the
    job's id, and the queue holds it once: a client never has cause to submit it twice."""
    monkeypatch.setattr(Settings, "wait_slice_ms", property(lambda self: 1000))
    idle = settings.model_copy(update={"queue_name": f"nobody-{uuid.uuid4().hex[:8]}", "redis_timeout": 0.3})
    client = create_app(idle).test_client()
    began = time.monotonic()
    response = client.post("/api/v1/execute?wait=true", json={"code": "print(1)"})
    assert response.status_code == 202, response.get_json()
    assert time.monotonic() - began < 2  # the wait failed: a wait that ran out takes its 5 s + margin
    job_id = response.get_json()["job_id"]
    assert redis_client.lrange(f"rq:queue:{python_queue(idle)}", 0, -1) == [job_id.encode()]
    client.delete(f"/api/v1/execute/{job_id}")
