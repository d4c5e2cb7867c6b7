"""The worker's Lua scripts, each doing in one round trip what RQ's worker does in several.

On a busy machine a round trip costs more than its commands: the worker sleeps and is woken for
each reply (see docs/benchmark.md). What is written is still decided by RQ's own methods; the
scripts only change how many times the worker waits for Redis, and make the finish atomic.

They touch keys not declared as KEYS (the claimed job's hash, the records RQ's methods write),
which a single Redis allows and a Redis Cluster would not; RQ does not support Cluster either.
"""

import functools
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq.utils import as_text

from executor.jobs.guarded_writes import RUN_COMMANDS, encoded_commands

# Take the oldest waiting id into the intermediate list, as RQ's non-blocking LMOVE does, and read
# its job's hash in the same call. An id whose hash has expired comes back with no fields.
_CLAIM_FUNCTION = """
local function claim(queue_key, intermediate_key, job_key_prefix)
    local id = redis.call('LMOVE', queue_key, intermediate_key, 'LEFT', 'RIGHT')
    if not id then
        return false
    end
    return {id, redis.call('HGETALL', job_key_prefix .. id)}
end
"""

CLAIM = _CLAIM_FUNCTION + "return claim(KEYS[1], KEYS[2], ARGV[1])"

# Run the commands that follow only if the job still has the expected status and owner, then (when
# given the queue's keys) claim the next job. Answer whether they ran, what the job's hash held and
# the claimed job. KEYS: the job, then optionally the queue and its intermediate list. ARGV: status,
# owner, job key prefix, then the commands (see `executor.jobs.guarded_writes`).
FINISH = (
    _CLAIM_FUNCTION
    + RUN_COMMANDS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'worker_name')
if status ~= ARGV[1] or owner ~= ARGV[2] then
    return {0, status or '', owner or '', false}
end
run_commands(4)
local next_job = false
if #KEYS == 3 then
    next_job = claim(KEYS[2], KEYS[3], ARGV[3])
end
return {1, status, owner, next_job}
"""
)


# Run the commands as one atomic step, as MULTI/EXEC would, but with one reply to parse instead of
# two per command. ARGV: the commands.
RUN_ATOMICALLY = RUN_COMMANDS + "run_commands(1)"


@dataclass(frozen=True)
class ClaimFrom:
    """Where the next job is claimed from: a queue's list, its intermediate list, the job key prefix."""

    queue_key: str
    intermediate_key: str
    job_key_prefix: str


@dataclass(frozen=True)
class Claimed:
    """A job id taken into the intermediate list, and its hash as read then (empty if it had expired)."""

    job_id: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class Finished:
    """What the finishing script found and did."""

    saved: bool
    status: str
    owner: str
    next_job: Claimed | None


def claim_next(connection: Redis, source: ClaimFrom) -> Claimed | None:
    """The next waiting job, now in the intermediate list; None if none waits."""
    keys = [source.queue_key, source.intermediate_key]
    return _claimed(_registered(connection, CLAIM)(keys=keys, args=[source.job_key_prefix]))


def finish_if_owned(
    connection: Redis,
    writes: Pipeline,
    *,
    job_key: str,
    status: str,
    owner: str,
    claim_from: ClaimFrom | None,
) -> Finished:
    """Run the commands queued on `writes` (never executed itself) as one atomic step if the job
    still has this status and owner, and then claim the next job from `claim_from`, if given."""
    keys = [job_key]
    if claim_from:
        keys += [claim_from.queue_key, claim_from.intermediate_key]
    prefix = claim_from.job_key_prefix if claim_from else ""
    args = [status, owner, prefix, *encoded_commands(writes)]
    saved, found_status, found_owner, next_job = _registered(connection, FINISH)(keys=keys, args=args)
    return Finished(bool(saved), as_text(found_status), as_text(found_owner), _claimed(next_job))


def run_atomically(connection: Redis, writes: Pipeline) -> None:
    """Run the commands queued on `writes` (never executed itself) as one atomic step."""
    _registered(connection, RUN_ATOMICALLY)(args=encoded_commands(writes))


@functools.lru_cache(maxsize=16)
def _registered(connection: Redis, text: str) -> Script:
    """The script registered with `connection` once: registering hashes the text each time, a cost
    the worker would pay on every job. Bounded, since tests make many connections."""
    return connection.register_script(text)


def _claimed(reply: Any) -> Claimed | None:
    if not reply:
        return None
    job_id, flat = reply
    return Claimed(as_text(job_id), dict(zip(flat[::2], flat[1::2], strict=True)))
