"""Routing by language (API.md 1.1): a job reaches only a worker that runs its language, never waits
behind one that cannot, and never waits for ever for a language no worker runs any longer."""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from executor.jobs import announcements
from executor.jobs.announcements import announce, describe
from executor.jobs.queue import SERVED_CHECK_AFTER_S
from executor.jobs.routing import language_queue, sweep_unserved, waiting_queues
from executor.languages import build_languages, default_python
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses, own_queue, poll_until, submit
from workers.claiming_queue import claim_source
from workers.redis_scripts import Claimed, claim_next

REGISTRY = build_languages(default_python())
# Long enough for a worker that could take the job to have taken it many times over.
STAYS_QUEUED_S = 2.0


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    connection = fakeredis.FakeRedis()
    yield connection
    connection.flushall()


@pytest.fixture
def unit_client(redis: fakeredis.FakeRedis) -> FlaskClient:
    return create_app(
        Settings(redis_url="redis://127.0.0.1:1/0", queue_name="routed"), redis=redis
    ).test_client()


def withdraw(redis: fakeredis.FakeRedis, language: str) -> None:
    """As if the language's last worker had gone `ANNOUNCEMENT_TTL_S` ago."""
    redis.zadd(announcements.OFFERED, {language: 0})


def test_each_language_waits_in_a_queue_of_its_own(
    redis: fakeredis.FakeRedis, unit_client: FlaskClient
) -> None:
    announce(redis, [describe(REGISTRY["python"]), describe(REGISTRY["bash"])])
    python_job = submit(unit_client, "print(1)")
    bash_job = submit(unit_client, "echo 1", language="bash")
    assert [id.decode() for id in redis.lrange("rq:queue:routed.python", 0, -1)] == [python_job]
    assert [id.decode() for id in redis.lrange("rq:queue:routed.bash", 0, -1)] == [bash_job]
    # Each queue's own place, and the health route counts both.
    assert unit_client.get(f"/api/v1/execute/{bash_job}").get_json()["queue_position"] == 0
    assert unit_client.get("/health").get_json()["queued"] == 2


def test_the_depth_limit_counts_the_jobs_of_every_language(redis: fakeredis.FakeRedis) -> None:
    client = create_app(
        Settings(redis_url="redis://127.0.0.1:1/0", queue_name="routed", max_queue_depth=2), redis=redis
    ).test_client()
    announce(redis, [describe(REGISTRY["python"]), describe(REGISTRY["bash"])])
    submit(client, "print(1)")
    submit(client, "echo 1", language="bash")
    refused = client.post("/api/v1/execute", json={"code": "echo 2", "language": "bash"})
    assert refused.status_code == 503
    assert "2 jobs" in refused.get_json()["error"]["message"]


def test_a_poll_fails_a_job_whose_language_no_worker_runs_any_longer_once_it_has_waited(
    redis: fakeredis.FakeRedis,
) -> None:
    """A poll checks a waiting job's language once the job has waited SERVED_CHECK_AFTER_S (it was
    served when it was queued); polls are not paced here, so each is answered from its own read."""
    client = create_app(
        Settings(redis_url="redis://127.0.0.1:1/0", queue_name="routed", poll_pace_ms=0), redis=redis
    ).test_client()
    announce(redis, [describe(REGISTRY["python"]), describe(REGISTRY["bash"])])
    job_id = submit(client, "echo 1", language="bash")
    withdraw(redis, "bash")
    assert client.get(f"/api/v1/execute/{job_id}").get_json()["status"] == "queued"  # not yet checked
    waited = datetime.now(UTC) - timedelta(seconds=SERVED_CHECK_AFTER_S + 1)
    redis.hset(Job.key_for(job_id), "enqueued_at", utcformat(waited))
    view = client.get(f"/api/v1/execute/{job_id}").get_json()
    assert view["status"] == "internal_error"
    assert "no live worker runs bash any longer" in view["message"]
    assert redis.llen("rq:queue:routed.bash") == 0


def test_a_sweep_fails_only_the_jobs_of_languages_no_worker_runs(
    redis: fakeredis.FakeRedis, unit_client: FlaskClient
) -> None:
    announce(redis, [describe(REGISTRY["python"]), describe(REGISTRY["bash"])])
    python_job = submit(unit_client, "print(1)")
    bash_job = submit(unit_client, "echo 1", language="bash")
    withdraw(redis, "bash")
    assert sweep_unserved(redis, "routed", REGISTRY, JSONSerializer) == [bash_job]
    assert unit_client.get(f"/api/v1/execute/{python_job}").get_json()["status"] == "queued"
    assert unit_client.get(f"/api/v1/execute/{bash_job}").get_json()["status"] == "internal_error"
    announce(redis, [describe(REGISTRY["bash"])])  # a worker of the language returns: nothing to fail
    submit(unit_client, "echo 2", language="bash")
    assert sweep_unserved(redis, "routed", REGISTRY, JSONSerializer) == []


def test_a_job_goes_only_to_a_worker_that_runs_its_language(
    workers: WorkerProcesses, pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    """A python-only worker never takes a bash job (the session's workers announce bash), a python
    job submitted after it runs at once, and a bash worker that comes later runs it."""
    pool.env = {**pool.env, "EXECUTOR_LANGUAGES": "python"}
    client, _ = own_queue(settings, pool, redis_client, 1)
    base = pool.env["EXECUTOR_QUEUE_NAME"]
    bash_job = submit(client, "echo routed", language="bash")
    python_job = submit(client, "print('not held up')")
    assert poll_until(client, python_job, {"success"})["stdout"] == "not held up\n"
    held_until = time.monotonic() + STAYS_QUEUED_S
    while time.monotonic() < held_until:
        view = client.get(f"/api/v1/execute/{bash_job}").get_json()
        assert (view["status"], view["queue_position"]) == ("queued", 0), view
        time.sleep(0.1)
    assert (
        Worker.count(
            connection=redis_client, queue=Queue(language_queue(base, "bash"), connection=redis_client)
        )
        == 0
    )

    pool.start(1, extra_env={"EXECUTOR_LANGUAGES": "bash"})
    assert poll_until(client, bash_job, {"success", "internal_error"})["stdout"] == "routed\n"


def test_a_claim_reads_only_the_queues_its_waiting_set_names_and_a_full_look_mends_the_set(
    redis_client: Redis,
) -> None:
    """A job pushed without the enqueue script or a ring (as RQ's own maintenance puts one back) is
    not seen by an ordinary claim, whose reads are the waiting set's queues only; a full look finds
    it and adds its queue to the set, so the next ordinary claim sees that queue again."""
    base = f"waiting-{uuid.uuid4().hex[:8]}"
    queues = [Queue(language_queue(base, language), connection=redis_client) for language in ("a", "b", "c")]
    source = claim_source(queues, Job)
    job_id = str(uuid.uuid4())
    redis_client.hset(Job.key_for(job_id), mapping={"enqueued_at": "2026-12-04T00:00:00Z"})
    redis_client.rpush(queues[1].key, job_id)

    def claim(full: bool) -> Claimed | None:
        return claim_next(redis_client, source, "claimant", idle_ttl_s=None, full=full)

    assert claim(False) is None
    redis_client.rpush(queues[1].key, job_id)  # the same id twice: one for each claim below
    full = claim(True)
    assert isinstance(full, Claimed) and full.queue_key == queues[1].key
    assert redis_client.smembers(waiting_queues(queues[1].name)) == {queues[1].key.encode()}
    ordinary = claim(False)
    assert isinstance(ordinary, Claimed) and ordinary.job_id == job_id
    assert claim(False) is None  # now empty: dropped from the set
    assert redis_client.smembers(waiting_queues(queues[1].name)) == set()
    redis_client.delete(Job.key_for(job_id), queues[1].intermediate_queue_key)
