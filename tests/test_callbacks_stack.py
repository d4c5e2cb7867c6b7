"""Signed callbacks through the real stack (API.md 1.1): the notifier process delivers each job's and
batch's view, signed and verifiable, retries a receiver that fails with the same delivery id, and
delivers within a second of a job's end while every worker is busy with a program."""

import itertools
import json
import subprocess
import time
from datetime import datetime
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from redis import Redis

from bench.stack import announce_every_language
from executor.callbacks.notifier import Notifier
from executor.callbacks.signing import verify
from executor.settings import Settings
from executor.web.app import create_app
from tests.callbacks.receiver import Receiver, receiving
from tests.callbacks.test_addresses import stub_resolver
from tests.stack import WEBHOOK_SECRET, WorkerProcesses, own_queue, poll_until, submit

Notified = subprocess.Popen[bytes]


@pytest.fixture
def receiver() -> Any:
    with receiving() as listening:
        yield listening


def view_when(client: FlaskClient, path: str, done: Any, timeout_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not done(view := client.get(path).get_json()):
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    return view


def test_a_jobs_callback_arrives_signed_and_verifiable(
    client: FlaskClient, notifier: Notified, receiver: Receiver
) -> None:
    job_id = submit(client, "print('called back')", callback_url=receiver.url())
    (arrival,) = receiver.wait_for(1)
    assert verify(WEBHOOK_SECRET, arrival.body, arrival.headers["X-Executor-Signature"])
    assert arrival.headers["X-Executor-Event"] == "job.completed"
    body = json.loads(arrival.body)
    assert (body["job_id"], body["status"], body["stdout"]) == (job_id, "success", "called back\n")
    path = f"/api/v1/execute/{job_id}"
    view = view_when(client, path, lambda view: view["callback"]["state"] == "delivered")
    assert view["callback"] == {
        "url": receiver.url(),
        "state": "delivered",
        "attempts": 1,
        "last_status": 200,
        "last_error": None,
    }


def test_a_failing_receiver_is_retried_with_growing_pauses_and_one_delivery_id(
    client: FlaskClient, notifier: Notified, receiver: Receiver
) -> None:
    receiver.scripts["/flaky"] = [500, 500]
    job_id = submit(client, "print(1)", callback_url=receiver.url("/flaky"))
    arrivals = receiver.wait_for(3)
    assert len({arrival.headers["X-Executor-Delivery"] for arrival in arrivals}) == 1
    first_pause, second_pause = (later.at - earlier.at for earlier, later in itertools.pairwise(arrivals))
    assert 0.15 <= first_pause < second_pause  # EXECUTOR_WEBHOOK_RETRY_BASE_S=0.2 here: 0.2 s, then 0.8 s
    view = view_when(
        client, f"/api/v1/execute/{job_id}", lambda view: view["callback"]["state"] == "delivered"
    )
    assert (view["callback"]["attempts"], view["callback"]["last_status"]) == (3, 200)


def test_a_batch_calls_back_once_when_its_last_job_ends(
    client: FlaskClient, notifier: Notified, receiver: Receiver
) -> None:
    jobs = [{"code": "print(1)"}, {"code": "import time; time.sleep(1); print(2)", "ref": "slow"}]
    batch = client.post(
        "/api/v1/batches", json={"jobs": jobs, "callback_url": receiver.url("/batch")}
    ).get_json()
    (arrival,) = receiver.wait_for(1)
    assert arrival.headers["X-Executor-Event"] == "batch.completed"
    assert verify(WEBHOOK_SECRET, arrival.body, arrival.headers["X-Executor-Signature"])
    body = json.loads(arrival.body)
    assert (body["batch_id"], body["status"], body["counts"]) == (
        batch["batch_id"],
        "completed",
        {"success": 2},
    )
    assert body["jobs"][1]["ref"] == "slow"
    time.sleep(0.5)
    assert len(receiver.arrivals) == 1


def test_a_callback_arrives_within_a_second_while_every_worker_runs_a_program(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis, notifier: Notified, receiver: Receiver
) -> None:
    client, _ = own_queue(settings, pool, redis_client, 1)  # one worker: the busy one
    quick = submit(client, "print('quick')", callback_url=receiver.url())
    busy = submit(client, "import time; time.sleep(10)", timeout=15)
    (arrival,) = receiver.wait_for(1, timeout_s=20)
    ended = poll_until(client, quick, {"success"})["ended_at"]
    ended_at = datetime.fromisoformat(ended.replace("Z", "+00:00")).timestamp()
    assert arrival.at - ended_at < 1.0, arrival.at - ended_at
    assert client.get(f"/api/v1/execute/{busy}").get_json()["status"] == "started"  # still busy
    client.delete(f"/api/v1/execute/{busy}")


def test_a_callback_url_is_checked_with_the_requests_other_fields(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/execute", json={"code": "print(1)", "timeout": 999, "callback_url": "http://10.0.0.1/hook"}
    )
    assert response.status_code == 422
    fields = {detail["field"] for detail in response.get_json()["error"]["details"]}
    assert fields == {"timeout", "callback_url"}


def test_without_a_webhook_secret_a_callback_url_is_refused(settings: Settings) -> None:
    bare = create_app(settings.model_copy(update={"webhook_secret": ""})).test_client()
    response = bare.post(
        "/api/v1/execute", json={"code": "print(1)", "callback_url": "http://127.0.0.1/hook"}
    )
    assert response.status_code == 422
    assert "EXECUTOR_WEBHOOK_SECRET" in response.get_json()["error"]["details"][0]["message"]


def test_a_name_that_resolves_to_a_private_address_fails_at_delivery_without_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = fakeredis.FakeRedis()
    announce_every_language(fake)
    settings = Settings(redis_url="redis://127.0.0.1:1/0", queue_name="hooks", webhook_secret="key")
    client = create_app(settings, redis=fake).test_client()
    job_id = submit(client, "print(1)", callback_url="https://hooks.example.com/hook")
    fake.hset(f"rq:job:{job_id}", "status", "canceled")  # ended
    stub_resolver(monkeypatch, {"hooks.example.com": ["93.184.216.34", "10.1.2.3"]})
    notifier = Notifier(settings, fake)
    notifier.turn()
    notifier.turn()  # nothing more: no retry
    callback = client.get(f"/api/v1/execute/{job_id}").get_json()["callback"]
    assert (callback["state"], callback["attempts"], callback["last_status"]) == ("failed", 1, None)
    assert "refused: 10.1.2.3" in callback["last_error"]
