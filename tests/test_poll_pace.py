"""Repeat polls of a job are paced (executor/jobs/pacing.py): on a real Redis, with real workers."""

import time
import uuid
from datetime import datetime

from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job

from executor.jobs.pacing import HOLD_FUNCTION, POLL_DUE_FIELD
from executor.jobs.statuses import TERMINAL_STATUSES
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses

PACE_MS = 100
# Long enough that a poll answered at the end of its hold, not at the job's end, shows.
STACK_PACE_MS = 1000


# The pacing function on its own, as the snapshot script calls it (with the hash's due time).
_HOLD = (
    HOLD_FUNCTION
    + f"local due = redis.call('HGET', KEYS[1], '{POLL_DUE_FIELD}')\n"
    + "return hold_poll(KEYS[1], due, tonumber(ARGV[1]), tonumber(ARGV[2]))\n"
)


def held_ms(redis_client: Redis, job_id: str, now_ms: int) -> int:
    return int(redis_client.eval(_HOLD, 1, Job.key_for(job_id), now_ms, PACE_MS))


def a_job(redis_client: Redis) -> str:
    """The id of a job hash in Redis, gone within a minute."""
    job_id = str(uuid.uuid4())
    redis_client.hset(Job.key_for(job_id), "status", "started")
    redis_client.expire(Job.key_for(job_id), 60)
    return job_id


def test_a_poll_is_held_until_one_pace_after_the_last_poll_s_answer_and_never_longer(
    redis_client: Redis,
) -> None:
    job_id, now = a_job(redis_client), int(time.time() * 1000)
    assert held_ms(redis_client, job_id, now) == 0  # the first poll of a job is answered at once
    assert held_ms(redis_client, job_id, now + 10) == PACE_MS - 10
    # A third poll while the second is held: due a pace after the second's answer, but never held
    # longer than one pace, however many polls pile up.
    assert held_ms(redis_client, job_id, now + 20) == PACE_MS
    assert held_ms(redis_client, job_id, now + 20 + 5 * PACE_MS) == 0  # a poll that came late enough
    assert held_ms(redis_client, a_job(redis_client), now + 21) == 0  # each job has its own pace


def test_polls_of_an_id_no_job_has_leave_nothing_in_redis(settings: Settings, redis_client: Redis) -> None:
    client = paced_client(settings, PACE_MS)
    made_up = str(uuid.uuid4())
    for _ in range(3):
        assert client.get(f"/api/v1/execute/{made_up}").status_code == 404
    assert not redis_client.exists(Job.key_for(made_up))


def paced_client(settings: Settings, pace_ms: int) -> FlaskClient:
    return create_app(settings.model_copy(update={"poll_pace_ms": pace_ms})).test_client()


def poll_tightly(client: FlaskClient, job_id: str) -> tuple[dict[str, object], int, float]:
    """GET the job with no pause until it is terminal; its view, the number of polls, and the
    seconds from its ended_at to the arrival of that view. Bounded in time and in count."""
    deadline = time.monotonic() + 20
    for polls in range(1, 20_000):
        view = client.get(f"/api/v1/execute/{job_id}").get_json()
        if view["status"] in TERMINAL_STATUSES:
            late_s = time.time() - datetime.fromisoformat(view["ended_at"]).timestamp()
            return view, polls, late_s
        assert time.monotonic() < deadline, "the job never ended"
    raise AssertionError("the poll loop never ended")


def submit_sleeper(client: FlaskClient, seconds: float) -> tuple[str, float]:
    code = f"import time; time.sleep({seconds}); print('up')"
    response = client.post("/api/v1/execute", json={"code": code})
    assert response.status_code == 202
    return response.get_json()["job_id"], time.monotonic()


def test_a_tight_poll_loop_is_paced_and_still_gets_the_result_as_soon_as_the_job_ends(
    settings: Settings, workers: WorkerProcesses
) -> None:
    client = paced_client(settings, STACK_PACE_MS)
    job_id, submitted = submit_sleeper(client, 0.3)
    view, polls, late_s = poll_tightly(client, job_id)
    elapsed_s = time.monotonic() - submitted
    assert view["status"] == "success" and view["stdout"] == "up\n"
    assert 2 <= polls <= elapsed_s * 1000 / STACK_PACE_MS + 2
    # The held poll wakes on the result itself, not at the end of its hold.
    assert late_s < 0.3  # where a hold sleeping out its second would answer about 0.65 s late


def test_without_a_pace_every_poll_is_answered_at_once(settings: Settings, workers: WorkerProcesses) -> None:
    client = paced_client(settings, 0)
    job_id, submitted = submit_sleeper(client, 0.5)
    _view, polls, _late = poll_tightly(client, job_id)
    assert polls > 3 * (time.monotonic() - submitted) * 1000 / PACE_MS


def test_polls_of_an_ended_job_are_never_held(settings: Settings, workers: WorkerProcesses) -> None:
    client = paced_client(settings, STACK_PACE_MS)
    job_id = client.post("/api/v1/execute?wait=true", json={"code": "print(1)"}).get_json()["job_id"]
    started = time.monotonic()
    for _ in range(3):
        assert client.get(f"/api/v1/execute/{job_id}").get_json()["status"] == "success"
    assert time.monotonic() - started < STACK_PACE_MS / 1000
