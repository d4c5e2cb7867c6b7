"""What one poll costs Redis, counted by Redis itself on a Redis of the test's own (INFO commandstats
counts every command, those a script runs too): 3 commands for a started or an ended job, 4 for a
waiting one (executor/jobs/queue.py, _SNAPSHOT)."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job
from rq.results import Result
from rq.utils import now, utcformat

from devtools.local_redis import RedisServer, start_redis, stop_redis
from executor.jobs.announcements import announce, describe
from executor.jobs.serializer import JobSerializer
from executor.languages import build_languages, default_python
from executor.settings import Settings
from executor.web.app import create_app

PACE_S = Settings(redis_url="redis://unused").poll_pace_ms / 1000 + 0.05


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(str(tmp_path / "redis"))
    yield server
    stop_redis(server)


def commands_of(connection: Redis, read: FlaskClient, path: str) -> dict[str, int]:
    """The commands Redis ran for one GET of `path`, by name."""

    def counts() -> dict[str, int]:
        return {name: int(stats["calls"]) for name, stats in connection.info("commandstats").items()}

    time.sleep(PACE_S)  # a poll that comes after the pace: answered at once, never held
    before = counts()
    assert read.get(path).status_code == 200
    after = counts()
    spent = {name.removeprefix("cmdstat_"): after[name] - before.get(name, 0) for name in after}
    spent["info"] -= 1  # the count's own INFO
    return {name: count for name, count in spent.items() if count}


def queued_job(server: RedisServer) -> tuple[Redis, FlaskClient, str]:
    """A connection to `server`, an app on it, and a python job it queued (no worker runs it) whose
    first poll has loaded the poll's script."""
    connection = Redis.from_url(server.url)
    announce(connection, [describe(build_languages(default_python())["python"])])
    client = create_app(Settings(redis_url=server.url, queue_name="costed")).test_client()
    job_id = client.post("/api/v1/execute", json={"code": "print(1)"}).get_json()["job_id"]
    client.get(f"/api/v1/execute/{job_id}")
    return connection, client, job_id


def test_a_poll_costs_three_commands_four_while_the_job_waits(private_redis: RedisServer) -> None:
    connection, client, job_id = queued_job(private_redis)
    path = f"/api/v1/execute/{job_id}"
    assert commands_of(connection, client, path) == {"evalsha": 1, "hgetall": 1, "lpos": 1, "hset": 1}

    job_key = Job.key_for(job_id)
    worker = f"worker-{uuid.uuid4().hex[:8]}"
    connection.hset(
        job_key, mapping={"status": "started", "started_at": utcformat(now()), "worker_name": worker}
    )
    assert commands_of(connection, client, path) == {"evalsha": 1, "hgetall": 1, "hset": 1}

    job = Job.fetch(job_id, connection=connection, serializer=JobSerializer)
    Result.create(job, Result.Type.SUCCESSFUL, ttl=60, return_value={"status": "success", "stdout": "1\n"})
    connection.hset(job_key, mapping={"status": "finished", "ended_at": utcformat(now())})
    assert commands_of(connection, client, path) == {"evalsha": 1, "hgetall": 1, "xrevrange": 1}


def test_a_poll_held_to_the_end_of_its_pace_reads_once_more_in_one_round_trip(
    private_redis: RedisServer,
) -> None:
    """A held poll is 2 round trips: its paced read (4 commands, as the poll before it), then its
    blocking read and the snapshot script in one (the XREAD, the script's call, the hash, the place),
    where a read of the hash after the XREAD and then a third round trip for the place (evalsha,
    hgetall, lpos) made 3 (executor/jobs/queue.py, JobQueue._held_view)."""
    connection, client, job_id = queued_job(private_redis)
    path = f"/api/v1/execute/{job_id}"
    time.sleep(PACE_S)
    before = {name: int(stats["calls"]) for name, stats in connection.info("commandstats").items()}
    first, held = client.get(path), client.get(path)  # the second comes at once: held for the pace
    after = {name: int(stats["calls"]) for name, stats in connection.info("commandstats").items()}
    assert first.get_json()["status"] == held.get_json()["status"] == "queued"
    assert held.get_json()["queue_position"] == 0
    spent = {name.removeprefix("cmdstat_"): after[name] - before.get(name, 0) for name in after}
    spent["info"] -= 1
    assert {name: count for name, count in spent.items() if count} == {
        "evalsha": 3,
        "hgetall": 3,
        "lpos": 3,
        "hset": 2,
        "xread": 1,
    }


def test_a_read_job_is_the_job_rq_reads(private_redis: RedisServer) -> None:
    """The poll's own Job (made from a blank one, its times parsed by fromisoformat) has every
    attribute `Job.fetch` gives it, to the same values."""
    connection = Redis.from_url(private_redis.url)
    announce(connection, [describe(build_languages(default_python())["python"])])
    settings = Settings(redis_url=private_redis.url, queue_name="restored")
    app = create_app(settings, connection)
    client = app.test_client()
    job_id = client.post("/api/v1/execute", json={"code": "print(1)"}).get_json()["job_id"]
    connection.hset(
        Job.key_for(job_id),
        mapping={"status": "started", "started_at": utcformat(now()), "last_heartbeat": utcformat(now())},
    )
    jobs = app.extensions["executor"].jobs
    read = jobs.find(job_id, None).job
    fetched = Job.fetch(job_id, connection=connection, serializer=JobSerializer)
    assert read.started_at is not None and read.started_at.tzinfo is not None
    assert vars(read) == vars(fetched)
    assert jobs._blank_job(job_id).meta is not jobs._blank_job(job_id).meta
