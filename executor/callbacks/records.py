"""What Redis holds of each callback (API.md 1.1), for the web process, the workers' jobs and the notifier.

A callback is named by its subject, `job:<id>` or `batch:<id>`. Its state is a hash (url, event,
delivery id, state, attempts, last status, last error) that views show. Until its subject ends it
is pending (a set per kind); then it is due (a sorted set scored by when, ms on Redis's clock). The
notifier claims due callbacks by pushing their time a lease ahead, so a notifier that dies mid-way
leaves them to be claimed again, and several notifiers never send one attempt twice at once.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from executor.metrics.figures import count_callback

PENDING = {"job": "executor:callbacks:pending-jobs", "batch": "executor:callbacks:pending-batches"}
DUE = "executor:callbacks:due"
STATE_PREFIX = "executor:callback:"
# Rung when a callback is registered, so the notifier watches its subject at once.
BELL = "executor:callbacks:bell"
# How long a callback's state is kept: past the last retry, and as long as any result.
STATE_TTL_S = 7 * 24 * 3600
EVENTS = {"job": "job.completed", "batch": "batch.completed"}

_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""
# KEYS: the pending set, DUE, the state. ARGV: the subject id, the subject, a delivery id.
_SCHEDULE = (
    _NOW
    + """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[3], 'delivery_id', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
return 1
"""
)
# KEYS: DUE. ARGV: the lease (ms), how many. The subjects due now, each pushed a lease ahead.
_CLAIM = (
    _NOW
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, subject in ipairs(due) do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), subject)
end
return due
"""
)
# KEYS: DUE, the state. ARGV: the subject, the state word, attempts, last status, last error, the
# pause before the next attempt (ms; empty: none).
_RECORD = (
    _NOW
    + """
redis.call('HSET', KEYS[2], 'state', ARGV[2], 'attempts', ARGV[3])
redis.call('HSET', KEYS[2], 'last_status', ARGV[4], 'last_error', ARGV[5])
if ARGV[6] == '' then
    redis.call('ZREM', KEYS[1], ARGV[1])
else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
end
"""
)


@dataclass(frozen=True)
class Callback:
    """One callback as its state hash holds it."""

    subject: str
    url: str
    event: str
    delivery_id: str
    attempts: int


def as_text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def subject_of(kind: str, subject_id: str) -> str:
    """The name of the callback of a job or a batch."""
    return f"{kind}:{subject_id}"


def register(writes: Pipeline, kind: str, subject_id: str, url: str) -> None:
    """Queue on `writes` the records of a new callback, pending until its subject ends."""
    key = STATE_PREFIX + subject_of(kind, subject_id)
    writes.hset(key, mapping={"url": url, "event": EVENTS[kind], "state": "pending", "attempts": 0})
    writes.expire(key, STATE_TTL_S)
    writes.sadd(PENDING[kind], subject_id)
    writes.xadd(BELL, {"registered": subject_id}, maxlen=1, approximate=False)


def schedule(connection: Redis, kind: str, subject_id: str) -> bool:
    """Make a pending callback due now, once its subject has ended; False if another did."""
    subject = subject_of(kind, subject_id)
    keys = [PENDING[kind], DUE, STATE_PREFIX + subject]
    return bool(connection.eval(_SCHEDULE, len(keys), *keys, subject_id, subject, str(uuid.uuid4())))


def claim_due(connection: Redis, lease_s: float, limit: int) -> list[Callback]:
    """The callbacks due now, claimed for `lease_s`, with their state."""
    subjects = [as_text(subject) for subject in connection.eval(_CLAIM, 1, DUE, int(lease_s * 1000), limit)]
    with connection.pipeline(transaction=False) as pipeline:
        for subject in subjects:
            pipeline.hgetall(STATE_PREFIX + subject)
        states = pipeline.execute()
    claimed = []
    for subject, state in zip(subjects, states, strict=True):
        if not state:  # expired: forget it
            connection.zrem(DUE, subject)
            continue
        fields = {as_text(key): as_text(value) for key, value in state.items()}
        claimed.append(
            Callback(subject, fields["url"], fields["event"], fields["delivery_id"], int(fields["attempts"]))
        )
    return claimed


def record(
    connection: Redis,
    callback: Callback,
    *,
    state: str,
    status: int | None,
    error: str,
    retry_in_s: float | None,
) -> None:
    """Record an attempt's outcome, and when the next is due (None: no more); counted for /metrics in
    the same round trip."""
    keys = [DUE, STATE_PREFIX + callback.subject]
    pause = "" if retry_in_s is None else str(int(retry_in_s * 1000))
    attempts = callback.attempts + 1
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.eval(
            _RECORD, len(keys), *keys, callback.subject, state, attempts, status or "", error, pause
        )
        count_callback(pipeline, state)
        pipeline.execute()


def read_state(pipeline: Pipeline, kind: str, subject_id: str) -> None:
    """Queue the read of a callback's state, for a view (see `view_of_state`)."""
    pipeline.hgetall(STATE_PREFIX + subject_of(kind, subject_id))


def view_of_state(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """A callback's state as views show it (API.md 1.1); None without a callback."""
    if not fields:
        return None
    state = {as_text(key): as_text(value) for key, value in fields.items()}
    last_status = state.get("last_status") or None
    return {
        "url": state["url"],
        "state": state["state"],
        "attempts": int(state.get("attempts", 0)),
        "last_status": int(last_status) if last_status else None,
        "last_error": state.get("last_error") or None,
    }
