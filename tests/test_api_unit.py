"""The HTTP contract on fakeredis: routes, errors and job views, without workers."""

import json
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

from bench.stack import announce_every_language
from devtools.local_redis import free_port
from executor.jobs import queue as jobs_module
from executor.settings import Settings
from executor.web.app import create_app
from executor.web.services import Services

TEST_SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0", queue_name="unit", max_queue_depth=3)


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    connection = fakeredis.FakeRedis()
    announce_every_language(connection)  # as the workers of a deployment would
    yield connection
    connection.flushall()


def make_app(fake_redis: fakeredis.FakeRedis, **overrides: Any) -> Flask:
    return create_app(TEST_SETTINGS.model_copy(update=overrides), redis=fake_redis)


@pytest.fixture
def app(fake_redis: fakeredis.FakeRedis) -> Flask:
    return make_app(fake_redis)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def services_of(app: Flask) -> Services:
    found: Services = app.extensions["executor"]
    return found


def submit(client: FlaskClient, **fields: Any) -> str:
    response = client.post("/api/v1/execute", json={"code": "print('hi')", **fields})
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    return job_id


def finish(app: Flask, job_id: str, result: dict[str, Any]) -> None:
    """Do what a worker does when a program ends: store the result and mark the job finished."""
    job = Job.fetch(job_id, connection=services_of(app).redis, serializer=JSONSerializer)
    Result.create(job, Result.Type.SUCCESSFUL, ttl=60, return_value=result)
    job.set_status(JobStatus.FINISHED)


def test_submission_is_accepted_with_its_location(client: FlaskClient) -> None:
    response = client.post("/api/v1/execute", json={"code": "print('hi')"})
    body = response.get_json()
    assert response.status_code == 202
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/api/v1/execute/{body['job_id']}" == body["status_url"]
    assert uuid.UUID(body["job_id"]).version == 4
    assert body["message"]


def test_jobs_are_stored_as_json_with_a_runner_margin(app: Flask, client: FlaskClient) -> None:
    job_id = submit(client, timeout=2.5)
    raw = services_of(app).redis.hget(f"rq:job:{job_id}", "data")
    assert raw is not None
    # RQ compresses the payload; under the compression it is plain JSON, never pickle.
    function, _, _, kwargs = json.loads(zlib.decompress(raw))
    assert function == "workers.tasks.run_job"
    assert kwargs["request"]["timeout"] == 2.5
    job = Job.fetch(job_id, connection=services_of(app).redis, serializer=JSONSerializer)
    assert job.timeout == int(2.5 + jobs_module.RUN_SETUP_S) + jobs_module.RUNNER_MARGIN_S
    assert job.result_ttl == 3600


def test_a_queued_job_reports_its_position(client: FlaskClient) -> None:
    first, second = submit(client), submit(client)
    assert client.get(f"/api/v1/execute/{first}").get_json()["queue_position"] == 0
    view = client.get(f"/api/v1/execute/{second}").get_json()
    assert (view["status"], view["queue_position"]) == ("queued", 1)
    assert "stdout" not in view


def test_a_job_beyond_the_guessed_scan_still_gets_its_true_position(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "GUESSED_POSITION_SCAN", 1)
    ids = [submit(client) for _ in range(3)]
    assert client.get(f"/api/v1/execute/{ids[2]}").get_json()["queue_position"] == 2


def test_a_finished_job_shows_the_runner_result(app: Flask, client: FlaskClient) -> None:
    job_id = submit(client)
    finish(app, job_id, {"status": "failed", "stdout": "", "stderr": "Traceback", "return_code": 1})
    view = client.get(f"/api/v1/execute/{job_id}").get_json()
    assert (view["status"], view["stderr"], view["return_code"], view["language"]) == (
        "failed",
        "Traceback",
        1,
        "python",
    )
    assert view["created_at"].endswith(("Z", "+00:00"))


def test_an_unknown_job_is_not_found(client: FlaskClient) -> None:
    response = client.get(f"/api/v1/execute/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_canceling_a_queued_job_keeps_it_from_running(app: Flask, client: FlaskClient) -> None:
    job_id = submit(client)
    response = client.delete(f"/api/v1/execute/{job_id}")
    assert (response.status_code, response.get_json()["status"]) == (200, "canceled")
    assert services_of(app).jobs.waiting_count() == 0
    again = client.delete(f"/api/v1/execute/{job_id}")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "conflict")


def test_canceling_an_ended_job_is_a_conflict(app: Flask, client: FlaskClient) -> None:
    job_id = submit(client)
    finish(app, job_id, {"status": "success"})
    assert client.delete(f"/api/v1/execute/{job_id}").status_code == 409


def test_a_started_job_whose_worker_stopped_beating_is_reported_lost(app: Flask, client: FlaskClient) -> None:
    job_id = submit(client)
    job = Job.fetch(job_id, connection=services_of(app).redis, serializer=JSONSerializer)
    job.worker_name = "gone-worker"
    job.save()
    job.set_status(JobStatus.STARTED)
    view = client.get(f"/api/v1/execute/{job_id}").get_json()
    assert view["status"] == "internal_error"
    assert "worker" in view["message"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ("{", "application/json", 400, "bad_request"),
        ("[1, 2]", "application/json", 400, "bad_request"),
        ("[" * 100_000, "application/json", 400, "bad_request"),
        (b"\xff\xfe", "application/json", 400, "bad_request"),
        ("code=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"code": "x"}', "text/plain", 415, "unsupported_media_type"),
        ('{"code": ""}', "application/json", 422, "validation_error"),
        ('{"code": "x", "timout": 1}', "application/json", 422, "validation_error"),
    ],
)
def test_bad_bodies_get_clear_json_errors(
    client: FlaskClient, data: str | bytes, content_type: str, status: int, code: str
) -> None:
    response = client.post("/api/v1/execute", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["code"] == code


def test_a_validation_error_names_the_field(client: FlaskClient) -> None:
    response = client.post("/api/v1/execute", json={"code": "x", "timeout": 99})
    error = response.get_json()["error"]
    assert error["message"].startswith("timeout:")
    assert error["details"][0]["field"] == "timeout"


def test_a_bad_wait_flag_is_refused(client: FlaskClient) -> None:
    response = client.post("/api/v1/execute?wait=maybe", json={"code": "x"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "wait"


def test_an_oversized_body_is_refused(client: FlaskClient) -> None:
    body = json.dumps({"code": "x" * (TEST_SETTINGS.max_request_bytes + 1)})
    response = client.post("/api/v1/execute", data=body, content_type="application/json")
    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "payload_too_large")


def test_unknown_routes_and_wrong_methods_answer_json(client: FlaskClient) -> None:
    missing = client.get("/nowhere")
    wrong = client.put("/api/v1/execute")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.get_json()["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/execute", "/api/v1/execute?wait=true"])
def test_a_full_queue_answers_503_with_retry_after_and_keeps_nothing(
    app: Flask, client: FlaskClient, path: str
) -> None:
    for _ in range(3):
        submit(client)
    started = time.monotonic()
    response = client.post(path, json={"code": "x"})
    # A refused ?wait=true is not held for a slice of its wait (the refusal wakes its read).
    assert time.monotonic() - started < services_of(app).settings.wait_slice_ms / 1000
    assert (response.status_code, response.get_json()["error"]["code"]) == (503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert services_of(app).jobs.waiting_count() == 3
    redis = services_of(app).redis
    assert len(redis.keys("rq:job:*")) == 3
    # The refused job's wake-up entry is all that is left of it, and it expires.
    assert all(0 < redis.ttl(key) <= 10 for key in redis.keys("rq:results:*"))


def test_a_bug_answers_500_json_without_a_traceback(
    app: Flask, client: FlaskClient, monkeypatch: Any
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services_of(app).jobs, "submit", broken)
    response = client.post("/api/v1/execute", json={"code": "x"})
    assert (response.status_code, response.get_json()["error"]["code"]) == (500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)


def test_redis_away_gives_503_quickly() -> None:
    closed = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.5)
    client = create_app(closed).test_client()
    started = time.monotonic()
    submitted = client.post("/api/v1/execute", json={"code": "x"})
    polled = client.get(f"/api/v1/execute/{uuid.uuid4()}")
    health = client.get("/health")
    assert time.monotonic() - started < 2
    for response in (submitted, polled):
        assert (response.status_code, response.get_json()["error"]["code"]) == (503, "unavailable")
        assert "Retry-After" in response.headers
    assert (health.status_code, health.get_json()["status"]) == (503, "unavailable")


def test_api_keys_guard_jobs_and_keep_them_apart(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, api_keys=("alpha", "beta")).test_client()
    anonymous = client.post("/api/v1/execute", json={"code": "x"})
    assert (anonymous.status_code, anonymous.get_json()["error"]["code"]) == (401, "unauthorized")
    assert (
        client.post(
            "/api/v1/execute", json={"code": "x"}, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    alpha = {"Authorization": "Bearer alpha"}
    job_id = client.post("/api/v1/execute", json={"code": "x"}, headers=alpha).get_json()["job_id"]
    assert client.get(f"/api/v1/execute/{job_id}", headers=alpha).status_code == 200
    beta = {"Authorization": "Bearer beta"}
    assert client.get(f"/api/v1/execute/{job_id}", headers=beta).status_code == 404
    assert client.delete(f"/api/v1/execute/{job_id}", headers=beta).status_code == 404


def test_the_dashboard_asks_for_its_password(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, dashboard_password="s3cret").test_client()
    refused = client.get("/rq/")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/rq/", auth=("admin", "wrong")).status_code == 401
    assert client.get("/rq/", auth=("admin", "s3cret")).status_code == 200


def test_the_dashboard_is_closed_when_keys_are_on_without_a_password(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, api_keys=("alpha",)).test_client()
    assert client.get("/rq/").status_code == 401


def test_languages_name_the_interpreter_version(client: FlaskClient) -> None:
    languages = client.get("/api/v1/languages").get_json()
    assert languages[0]["id"] == "python"
    assert languages[0]["version"].startswith("3.")


def test_openapi_documents_every_route_from_the_request_model(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    assert set(document["paths"]) == {
        "/api/v1/execute",
        "/api/v1/execute/{job_id}",
        "/api/v1/execute/{job_id}/events",
        "/api/v1/batches",
        "/api/v1/batches/{batch_id}",
        "/api/v1/languages",
        "/health",
        "/metrics",
    }
    assert document["components"]["schemas"]["ExecuteRequest"]["properties"]["timeout"]["maximum"] == 30
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/api/v1/execute" in page.get_data(as_text=True)


def test_rq_allows_a_job_every_compile_and_every_run(fake_redis: fakeredis.FakeRedis) -> None:
    """RQ kills a runner that outlives its job's timeout: that must allow for the compile of a
    language that compiles, for each case, and for a checker program's compile and runs."""
    client = make_app(fake_redis, compile_timeout=7.0, max_queue_depth=10).test_client()
    per_run = 2 + jobs_module.RUN_SETUP_S
    three_cases = [{"stdin": str(n)} for n in range(3)]
    c_checker = {"type": "program", "code": "int main(void) { return 0; }", "language": "c"}
    for fields, longest_s in (
        ({"language": "python"}, per_run),
        ({"language": "c"}, per_run + 7),
        ({"language": "c", "tests": three_cases}, 3 * per_run + 7),
        ({"language": "python", "tests": three_cases, "checker": c_checker}, 2 * 3 * per_run + 7),
    ):
        job_id = submit(client, code="x", timeout=2, **fields)
        job = Job.fetch(job_id, connection=fake_redis, serializer=JSONSerializer)
        assert job.timeout == int(longest_s) + jobs_module.RUNNER_MARGIN_S, fields
