"""Languages as the workers announce them (API.md 1.1): listed, required at submission, and expiring."""

import time
from collections.abc import Iterator

import fakeredis
import pytest
from flask.testing import FlaskClient

from executor.jobs import announcements
from executor.jobs.announcements import announce, describe, offered_languages
from executor.languages import build_languages, default_python
from executor.settings import Settings
from executor.web.app import create_app

REGISTRY = build_languages(default_python())


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    connection = fakeredis.FakeRedis()
    yield connection
    connection.flushall()


@pytest.fixture
def client(redis: fakeredis.FakeRedis) -> FlaskClient:
    return create_app(
        Settings(redis_url="redis://127.0.0.1:1/0", queue_name="announce"), redis=redis
    ).test_client()


def test_a_language_no_worker_announced_is_refused_at_submission(
    redis: fakeredis.FakeRedis, client: FlaskClient
) -> None:
    announce(redis, [describe(REGISTRY["python"])])
    assert client.post("/api/v1/execute", json={"code": "print(1)"}).status_code == 202
    refused = client.post("/api/v1/execute", json={"code": "echo 1", "language": "bash"})
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["details"][0]["field"] == "language"
    assert "no worker offers the language 'bash'" in error["message"]
    assert redis.llen("rq:queue:announce.python") == 1  # the refused job was never written
    assert redis.llen("rq:queue:announce.bash") == 0


def test_the_languages_route_lists_what_workers_announced_python_first(
    redis: fakeredis.FakeRedis, client: FlaskClient
) -> None:
    assert client.get("/api/v1/languages").get_json() == []
    announce(redis, [describe(REGISTRY["c"]), describe(REGISTRY["python"])])
    listing = client.get("/api/v1/languages").get_json()
    assert [item["id"] for item in listing] == ["python", "c"]
    assert listing[1] == {
        "id": "c",
        "name": "C",
        "version": describe(REGISTRY["c"])["version"],
        "compiled": True,
        "source_file": "main.c",
        "packages": [],
    }


def test_an_announcement_expires_and_is_renewed_by_the_next(
    redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(announcements, "ANNOUNCEMENT_TTL_S", -1)  # already expired when made
    announce(redis, [describe(REGISTRY["bash"])])
    assert offered_languages(redis) == []
    monkeypatch.setattr(announcements, "ANNOUNCEMENT_TTL_S", 60)
    announce(redis, [describe(REGISTRY["bash"])])
    assert [found["id"] for found in offered_languages(redis)] == ["bash"]


def test_a_waiting_submission_in_a_language_not_offered_answers_at_once(
    redis: fakeredis.FakeRedis, client: FlaskClient
) -> None:
    started = time.monotonic()
    response = client.post("/api/v1/execute?wait=true", json={"code": "print(1)", "timeout": 10})
    assert response.status_code == 422
    assert time.monotonic() - started < 2  # not after the job's timeout: the refusal wakes the wait
