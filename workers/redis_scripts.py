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
from executor.jobs.wakes import now_ms

# Take the oldest waiting id of several queues into its queue's intermediate list, as RQ's
# non-blocking LMOVE does for one, and read its job's hash in the same call. The queues come as KEYS
# from `first` on, in fours: the queue, its intermediate list, the claimant's idle set for its base
# and its base's waiting set (the queues that may hold jobs), both of `executor.jobs.routing`; the
# queues of one base share the last two, which are read and written once per call. Only the queues
# in the waiting sets are read, unless `full` is '1': then every queue's head, and the waiting sets
# are mended. With one such queue its head is taken without a look; with several, the oldest is the
# head job enqueued first, so jobs start in the order they came whatever their language (a head whose
# hash has expired goes first, and comes back with no fields).
#
# `unmark` '1' first removes the claimant's idle marks (a worker that woke by itself, whose mark no
# wake popped). When nothing is claimed, a claimant about to wait (`idle_ttl` given, ms) marks itself
# idle in each of its idle sets until `now` (ms, its clock) plus that.
_CLAIM_FUNCTION = """
local function claim(first, job_key_prefix, claimant, idle_ttl, full, unmark, now)
    local candidates, waiting, unmarked = {}, {}, {}
    for at = first, #KEYS, 4 do
        local idle, set = KEYS[at + 2], KEYS[at + 3]
        if unmark == '1' and not unmarked[idle] then
            redis.call('ZREM', idle, claimant)
            unmarked[idle] = true
        end
        if full ~= '1' and not waiting[set] then
            waiting[set] = {}
            for _, queue in ipairs(redis.call('SMEMBERS', set)) do
                waiting[set][queue] = true
            end
        end
        if full == '1' or waiting[set][KEYS[at]] then
            candidates[#candidates + 1] = at
        end
    end
    local chosen = nil
    if #candidates == 1 and full ~= '1' then
        chosen = candidates[1]
    else
        local chosen_at = nil
        for _, at in ipairs(candidates) do
            local id = redis.call('LINDEX', KEYS[at], 0)
            if id then
                if full == '1' then
                    redis.call('SADD', KEYS[at + 3], KEYS[at])
                end
                local enqueued_at = redis.call('HGET', job_key_prefix .. id, 'enqueued_at') or ''
                if not chosen or enqueued_at < chosen_at then
                    chosen, chosen_at = at, enqueued_at
                end
            else
                redis.call('SREM', KEYS[at + 3], KEYS[at])
            end
        end
    end
    if chosen then
        local id = redis.call('LMOVE', KEYS[chosen], KEYS[chosen + 1], 'LEFT', 'RIGHT')
        if id then
            return {1, KEYS[chosen], id, redis.call('HGETALL', job_key_prefix .. id)}
        end
        redis.call('SREM', KEYS[chosen + 3], KEYS[chosen])
    end
    if idle_ttl ~= '' then
        local marked = {}
        for at = first, #KEYS, 4 do
            if not marked[KEYS[at + 2]] then
                redis.call('ZADD', KEYS[at + 2], now + tonumber(idle_ttl), claimant)
                marked[KEYS[at + 2]] = true
            end
        end
    end
    return {0}
end
"""

# ARGV: the job key prefix, the claimant, the idle mark's lifetime (ms, or ''), full ('1': read
# every queue's head, not only those of the waiting sets), unmark ('1' or '0'), the claimant's clock.
CLAIM = _CLAIM_FUNCTION + "return claim(1, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]))"

# Run the commands that follow only if the job still has the expected status and owner, then (when
# given queues) claim the next job, or mark the owner idle when none waits, and then (given the
# owner's RQ key) write its RQ state idle, unless it claimed a job: it stays busy, the next job
# starting at once. Answer whether they ran, what the job's hash held and the claim. KEYS: the job,
# then optionally the queues' fours (see _CLAIM_FUNCTION). ARGV: status, owner (who also claims,
# having just finished), job key prefix, full and the idle mark's lifetime (as CLAIM's), the owner's
# clock, its RQ key (or ''), then the commands (see `executor.jobs.guarded_writes`).
FINISH = (
    _CLAIM_FUNCTION
    + RUN_COMMANDS
    + """
local found = redis.call('HMGET', KEYS[1], 'status', 'worker_name')
local status, owner = found[1], found[2]
if status ~= ARGV[1] or owner ~= ARGV[2] then
    return {0, status or '', owner or '', false}
end
run_commands(8)
local claimed = false
if #KEYS > 1 then
    claimed = claim(2, ARGV[3], ARGV[2], ARGV[5], ARGV[4], '0', tonumber(ARGV[6]))
end
if ARGV[7] ~= '' and not (claimed and claimed[1] == 1) then
    redis.call('HSET', ARGV[7], 'state', 'idle')
end
return {1, status, owner, claimed}
"""
)


# Start a claimed job: run the commands that follow unless the job was canceled since it was claimed
# (a claim ahead holds a job while another runs), in which case only drop it from the intermediate
# list. KEYS: the job, its queue's intermediate list. ARGV: the job id, then the commands. Answers
# whether the job started.
START_UNLESS_CANCELED = (
    RUN_COMMANDS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'canceled' or status == 'stopped' then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    return 0
end
run_commands(2)
return 1
"""
)


@dataclass(frozen=True)
class ClaimFrom:
    """Where the next job is claimed from: each queue's list and intermediate list, the claimant's
    idle set and the waiting set of its base, and the job key prefix."""

    queue_keys: tuple[str, ...]
    intermediate_keys: tuple[str, ...]
    idle_keys: tuple[str, ...]
    waiting_keys: tuple[str, ...]
    job_key_prefix: str

    def keys(self) -> list[str]:
        """The queues' keys in fours, as the claim takes them."""
        zipped = zip(self.queue_keys, self.intermediate_keys, self.idle_keys, self.waiting_keys, strict=True)
        return [key for four in zipped for key in four]


@dataclass(frozen=True)
class Claimed:
    """A job id taken into its queue's intermediate list, and its hash as read then (empty if it had
    expired)."""

    queue_key: str
    job_id: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class Finished:
    """What the finishing script found and did: whether it saved the result, the job's status and
    owner as found, and the next job claimed, if any (when none, the owner was marked idle if the
    call asked for it)."""

    saved: bool
    status: str
    owner: str
    next_job: Claimed | None


def claim_next(
    connection: Redis,
    source: ClaimFrom,
    claimant: str,
    *,
    idle_ttl_s: float | None,
    full: bool,
    unmark: bool = False,
) -> Claimed | None:
    """The oldest waiting job, now in its queue's intermediate list, or None (see _CLAIM_FUNCTION
    for `full` and `unmark`; with `idle_ttl_s`, a claimant that finds none is marked idle that long)."""
    args: list[str | int] = [
        source.job_key_prefix,
        claimant,
        _ttl_ms(idle_ttl_s),
        _flag(full),
        _flag(unmark),
        now_ms(),
    ]
    return _claim_reply(_registered(connection, CLAIM)(keys=source.keys(), args=args))


def finish_if_owned(
    connection: Redis,
    writes: Pipeline,
    *,
    job_key: str,
    status: str,
    owner: str,
    claim_from: ClaimFrom | None,
    full: bool = False,
    idle_ttl_s: float | None = None,
    owner_key: str = "",
) -> Finished:
    """Run the commands queued on `writes` (never executed itself) as one atomic step if the job
    still has this status and owner, and then claim the next job from `claim_from`, if given (a
    `full` claim reads every queue's head), marking the owner idle for `idle_ttl_s` if none waits;
    given `owner_key`, its RQ state is written idle unless a job was claimed."""
    keys = [job_key, *(claim_from.keys() if claim_from else [])]
    prefix = claim_from.job_key_prefix if claim_from else ""
    args = [
        status,
        owner,
        prefix,
        _flag(full),
        _ttl_ms(idle_ttl_s),
        now_ms(),
        owner_key,
        *encoded_commands(writes),
    ]
    saved, found_status, found_owner, claim = _registered(connection, FINISH)(keys=keys, args=args)
    next_job = _claim_reply(claim) if claim else None
    return Finished(bool(saved), as_text(found_status), as_text(found_owner), next_job)


def start_unless_canceled(
    connection: Redis, writes: Pipeline, *, job_key: str, intermediate_key: str, job_id: str
) -> bool:
    """Run the commands queued on `writes` (never executed itself) as one atomic step, unless the job
    was canceled; whether they ran."""
    script = _registered(connection, START_UNLESS_CANCELED)
    return bool(script(keys=[job_key, intermediate_key], args=[job_id, *encoded_commands(writes)]))


@functools.lru_cache(maxsize=16)
def _registered(connection: Redis, text: str) -> Script:
    """The script registered with `connection` once: registering hashes the text each time, a cost
    the worker would pay on every job. Bounded, since tests make many connections."""
    return connection.register_script(text)


def _claim_reply(reply: Any) -> Claimed | None:
    """The claim's answer (see _CLAIM_FUNCTION) as a record; None when nothing was claimed."""
    if reply[0] == 0:
        return None
    _, queue_key, job_id, flat = reply
    return Claimed(as_text(queue_key), as_text(job_id), dict(zip(flat[::2], flat[1::2], strict=True)))


def _ttl_ms(seconds: float | None) -> str:
    """An idle mark's lifetime as the scripts take it: ms, or '' for no mark."""
    return "" if seconds is None else str(int(seconds * 1000))


def _flag(value: bool) -> str:
    """A yes/no argument as the scripts take it."""
    return "1" if value else "0"
