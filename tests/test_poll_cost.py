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


def test_a_poll_costs_three_commands_four_while_the_job_waits(private_redis: RedisServer) -> None:
    connection = Redis.from_url(private_redis.url)
    announce(connection, [describe(build_languages(default_python())["python"])])
    client = create_app(Settings(redis_url=private_redis.url, queue_name="costed")).test_client()
    job_id = client.post("/api/v1/execute", json={"code": "print(1)"}).get_json()["job_id"]
    path = f"/api/v1/execute/{job_id}"
    client.get(path)  # the first read loads the script
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
