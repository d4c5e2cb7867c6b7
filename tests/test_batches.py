"""Batches (API.md 1.1): all or nothing at submission, refs echoed, one view, ?wait=true, DELETE,
ownership per API key; on fakeredis for the submission's rules, on the real stack for the rest."""

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from redis import Redis
from redis.client import Pipeline

from bench.stack import announce_every_language
from executor.jobs.batches import BATCH_PREFIX
from executor.settings import Settings
from executor.web.app import create_app

UNIT = Settings(redis_url="redis://127.0.0.1:1/0", queue_name="batched", max_queue_depth=150)


@pytest.fixture
def fake() -> Iterator[fakeredis.FakeRedis]:
    connection = fakeredis.FakeRedis()
    announce_every_language(connection)
    yield connection
    connection.flushall()


def unit_client(fake: fakeredis.FakeRedis, **settings: Any) -> FlaskClient:
    return create_app(UNIT.model_copy(update=settings), redis=fake).test_client()


def waiting(fake: fakeredis.FakeRedis) -> int:
    return sum(fake.llen(key) for key in fake.scan_iter("rq:queue:batched.*") if b":intermediate" not in key)


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each pipeline executed and each lone command sent, from now until monkeypatch.undo()."""
    sent: list[str] = []
    for cls, method in ((Pipeline, "execute"), (Redis, "execute_command")):
        real = getattr(cls, method)

        def counted(self: Any, *args: Any, real: Any = real, name: str = method, **kwargs: Any) -> Any:
            sent.append(name)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counted)
    return sent


def test_a_batch_is_queued_in_one_round_trip_with_its_refs_echoed(
    fake: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = unit_client(fake)
    jobs = [{"code": f"print({n})", "ref": f"student-{n}"} for n in range(99)] + [
        {"code": "echo", "language": "bash"}
    ]
    client.post("/api/v1/batches", json={"jobs": jobs[-2:]})  # RQ asks each queue's Redis version once
    fake.flushall()
    announce_every_language(fake)
    round_trips = count_round_trips(monkeypatch)
    response = client.post("/api/v1/batches", json={"jobs": jobs})
    monkeypatch.undo()
    assert response.status_code == 202, response.get_json()
    assert round_trips == ["execute"]  # one pipeline, holding the one script
    body = response.get_json()
    assert body["status"] == "running" and response.headers["Location"] == body["status_url"]
    assert [job["ref"] for job in body["jobs"]] == [f"student-{n}" for n in range(99)] + [None]
    assert waiting(fake) == 100
    view = client.get(body["status_url"]).get_json()
    assert (view["status"], view["total"], view["completed"], view["counts"]) == (
        "running",
        100,
        0,
        {"queued": 100},
    )
    assert [job["ref"] for job in view["jobs"][:2]] == ["student-0", "student-1"]
    assert {job["batch_id"] for job in view["jobs"]} == {body["batch_id"]}
    one = client.get(body["jobs"][5]["status_url"]).get_json()  # each job is a job too
    assert (one["ref"], one["batch_id"], one["status"]) == ("student-5", body["batch_id"], "queued")


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([{"code": "print(1)"}, {"code": "print(2)", "timeout": 999}], "jobs[1].timeout"),
        ([{"code": "print(1)"}, {"code": ""}], "jobs[1].code"),
        ([{"code": "print(1)", "ref": "r" * 129}], "jobs[0].ref"),
        (
            [{"code": "x", "tests": [{"stdin": "1"}], "files": [{"path": "../x", "content": ""}]}],
            "jobs[0].files[0].path",
        ),
        ([], "jobs"),
        ([{"code": "print(1)"}] * 101, "jobs"),
    ],
    ids=["timeout", "empty-code", "long-ref", "file-path", "no-jobs", "too-many"],
)
def test_one_invalid_job_refuses_the_whole_batch_and_nothing_is_queued(
    fake: fakeredis.FakeRedis, jobs: list[dict[str, Any]], field: str
) -> None:
    response = unit_client(fake).post("/api/v1/batches", json={"jobs": jobs})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"] == field
    assert waiting(fake) == 0 and list(fake.scan_iter(f"{BATCH_PREFIX}*")) == []


def test_a_job_in_a_language_no_worker_offers_refuses_the_batch_naming_it(fake: fakeredis.FakeRedis) -> None:
    fake.zrem("executor:languages:offered", "bash")
    jobs = [{"code": "print(1)"}, {"code": "print(2)"}, {"code": "echo 3", "language": "bash"}]
    response = unit_client(fake).post("/api/v1/batches", json={"jobs": jobs})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "jobs[2].language"
    assert waiting(fake) == 0 and list(fake.scan_iter(f"{BATCH_PREFIX}*")) == []


def test_the_depth_limit_counts_the_whole_batch(fake: fakeredis.FakeRedis) -> None:
    client = unit_client(fake, max_queue_depth=10)
    assert client.post("/api/v1/batches", json={"jobs": [{"code": "print(1)"}] * 8}).status_code == 202
    refused = client.post("/api/v1/batches", json={"jobs": [{"code": "print(1)"}] * 3})
    assert (
        refused.status_code == 503 and "no room for 3 more job(s)" in refused.get_json()["error"]["message"]
    )
    assert waiting(fake) == 8
    assert client.post("/api/v1/batches", json={"jobs": [{"code": "print(1)"}] * 2}).status_code == 202


def test_a_batch_belongs_to_its_api_key(fake: fakeredis.FakeRedis) -> None:
    client = unit_client(fake, api_keys=("alice-key", "bob-key"))
    alice, bob = ({"Authorization": f"Bearer {key}"} for key in ("alice-key", "bob-key"))
    body = client.post("/api/v1/batches", json={"jobs": [{"code": "print(1)"}]}, headers=alice).get_json()
    assert client.get(body["status_url"], headers=alice).status_code == 200
    assert client.get(body["status_url"], headers=bob).status_code == 404
    assert client.delete(body["status_url"], headers=bob).status_code == 404
    assert client.get(body["jobs"][0]["status_url"], headers=bob).status_code == 404
    assert client.get("/api/v1/batches/no-such-batch", headers=alice).status_code == 404


def test_deleting_a_batch_cancels_every_job_not_yet_ended(fake: fakeredis.FakeRedis) -> None:
    client = unit_client(fake)
    body = client.post("/api/v1/batches", json={"jobs": [{"code": "print(1)"}] * 3}).get_json()
    view = client.delete(body["status_url"]).get_json()
    assert (view["status"], view["completed"], view["counts"]) == ("completed", 3, {"canceled": 3})
    assert waiting(fake) == 0


def test_a_hundred_submissions_are_judged_and_reported_in_one_view(client: FlaskClient) -> None:
    jobs = [{"code": f"print({n} * 2)", "expected_output": str(n * 2), "ref": f"s{n}"} for n in range(100)]
    jobs[17]["expected_output"] = "wrong"
    body = client.post("/api/v1/batches", json={"jobs": jobs}).get_json()
    began = time.monotonic()
    view = client.get(f"{body['status_url']}?wait=true").get_json()
    assert time.monotonic() - began < 60
    assert (view["status"], view["total"], view["completed"]) == ("completed", 100, 100), view["counts"]
    assert view["counts"] == {"success": 99, "wrong_answer": 1}
    assert view["jobs"][17]["ref"] == "s17" and view["jobs"][17]["status"] == "wrong_answer"


def test_a_batch_wait_is_held_until_its_last_job_ends(client: FlaskClient, redis_client: Redis) -> None:
    jobs = [{"code": "print(1)"}, {"code": "import time; time.sleep(1.5); print(2)"}]
    body = client.post("/api/v1/batches", json={"jobs": jobs}).get_json()
    view = client.get(f"{body['status_url']}?wait=true").get_json()
    assert (view["status"], [job["stdout"] for job in view["jobs"]]) == ("completed", ["1\n", "2\n"])
    assert 0 < redis_client.ttl(BATCH_PREFIX + body["batch_id"]) <= 3600  # lives as long as its results
