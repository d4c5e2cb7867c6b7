"""RQ's records of a job, as the trimmed ExecutorWorker leaves them: what rq-dashboard and RQ rely on."""

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from executor.jobs import JobQueue
from executor.models import execute_request_model
from executor.settings import Settings
from workers import tasks
from workers.worker import ExecutorJob, ExecutorWorker

Run = Callable[..., dict[str, Any]]
SETTLE_LIMIT_S = 10.0


def test_a_finished_job_leaves_the_records_rq_keeps_for_a_finished_job(
    run: Run, redis_client: Redis, settings: Settings
) -> None:
    job_id = run("print('bookkeeping')")["job_id"]
    queue = Queue(settings.queue_name, connection=redis_client, serializer=JSONSerializer)
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)

    assert job.get_status() == "finished"
    assert job_id in queue.finished_job_registry.get_job_ids()
    assert job_id not in queue.started_job_registry.get_job_ids()
    assert job.latest_result() is not None
    # Kept for result_ttl, then gone: nothing of the job outlives it.
    assert 0 < redis_client.ttl(job.key) <= settings.result_ttl
    assert 0 < redis_client.ttl(f"rq:results:{job_id}") <= settings.result_ttl
    # The execution record is removed, from the worker's set as well.
    assert list(redis_client.scan_iter(f"rq:execution:{job_id}:*")) == []
    assert not redis_client.exists(f"rq:executions:{job_id}")
    worker_key = Worker.redis_worker_namespace_prefix + job.worker_name
    worker = Worker.find_by_key(worker_key, connection=redis_client)
    assert worker is not None
    assert worker.successful_job_count >= 1
    assert not any(job_id in member.decode() for member in redis_client.smembers(f"{worker.key}:executions"))
    # The worker says idle again once it has nothing to run (other tests' jobs may keep it busy).
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while (state := redis_client.hget(worker.key, "state")) != b"idle":
        assert time.monotonic() < deadline, f"worker still {state!r} after the job"
        time.sleep(0.05)


def test_the_started_registry_records_a_running_job_and_forgets_it_after(
    client: Any, redis_client: Redis, settings: Settings
) -> None:
    queue = Queue(settings.queue_name, connection=redis_client, serializer=JSONSerializer)
    code = "import time; print('up', flush=True); time.sleep(1.5)"
    job_id = client.post("/api/v1/execute", json={"code": code}).get_json()["job_id"]
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while job_id not in queue.started_job_registry.get_job_ids():
        assert time.monotonic() < deadline, "the job never showed in the started registry"
        time.sleep(0.02)
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == "started"
    assert job.worker_name
    while job.get_status() != "finished":
        assert time.monotonic() < deadline, f"the job is still {job.get_status()!r}"
        time.sleep(0.05)
    assert job_id not in queue.started_job_registry.get_job_ids()


@pytest.fixture
def worker_in_this_process() -> Iterator[None]:
    """A worker built in the test process takes a slot for the process's life; it is given back after."""
    yield
    slot = tasks.worker_slot()
    if slot is not None:
        slot.lock_file.close()
    tasks.worker_slot.cache_clear()
    tasks.worker_sandbox.cache_clear()
    tasks.request_model.cache_clear()


@pytest.mark.usefixtures("worker_in_this_process")
def test_a_sigterm_while_the_result_is_saved_waits_for_the_job_to_settle(
    redis_client: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stays busy until the job is settled: a stop request then ends the loop after the
    job, instead of interrupting its last steps (which would fail a job already finished)."""
    queue = Queue(f"settle-{uuid.uuid4().hex[:8]}", connection=redis_client, serializer=JSONSerializer)
    jobs = JobQueue(redis_client, settings.model_copy(update={"queue_name": queue.name}))
    request = execute_request_model(settings, ["python"]).model_validate({"code": "print('settled')"})
    first, second = jobs.submit(request, None), jobs.submit(request, None)
    # A connection of its own: the worker sets its outage retries on the connection it is given.
    connection = Redis.from_url(settings.redis_url)
    worker = ExecutorWorker([queue], connection=connection, job_class=ExecutorJob, serializer=JSONSerializer)
    save_result = ExecutorWorker.handle_job_success

    def save_then_sigterm(self: ExecutorWorker, *args: Any, **kwargs: Any) -> None:
        save_result(self, *args, **kwargs)
        self.request_stop(signal.SIGTERM, None)  # as if SIGTERM arrived right after the save

    monkeypatch.setattr(ExecutorWorker, "handle_job_success", save_then_sigterm)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.work(burst=True)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        connection.close()
    assert first.get_status() == "finished"
    assert second.get_status() == "queued"  # the stop request was honoured before the next job
