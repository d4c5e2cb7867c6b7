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

# Take the oldest waiting id of several queues into its queue's intermediate list, as RQ's
# non-blocking LMOVE does for one, and read its job's hash in the same call. The queues come as KEYS
# from `first` on, in fives: the queue, its intermediate list, its doorbell (executor.jobs.routing),
# its idle workers (a sorted set scored by when each one's mark expires, ms) and its base's waiting
# set (the queues that may hold jobs); the queues of one base share the last three, which are read
# and written once per call. Only the heads of the queues in the waiting sets are read, unless
# `full` is '1': then every queue's, and the waiting sets are mended. The oldest is the
# head job enqueued first, so jobs start in the order they came whatever their language; a head
# whose hash has expired goes first, and comes back with no fields.
#
# A claimant that has just finished a job (`defer` '1') leaves the job to a worker that was idle on
# its queue first: that one was woken by the job's doorbell and is about to claim it, and taking it
# from under it would run two jobs one after the other on one worker while another sat idle. When
# nothing is claimed, the answer is the newest entry of each doorbell (a ring after it wakes the
# claimant), and a claimant about to wait (`idle_ttl` given) marks itself idle on every queue.
_CLAIM_FUNCTION = """
local function claim(first, job_key_prefix, claimant, defer, idle_ttl, full)
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local chosen, chosen_at = nil, nil
    local unmarked, waiting = {}, {}
    for at = first, #KEYS, 5 do
        local idle, set = KEYS[at + 3], KEYS[at + 4]
        if not unmarked[idle] then
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
            local id = redis.call('LINDEX', KEYS[at], 0)
            if id then
                if full == '1' then
                    redis.call('SADD', set, KEYS[at])
                end
                local enqueued_at = redis.call('HGET', job_key_prefix .. id, 'enqueued_at') or ''
                if not chosen or enqueued_at < chosen_at then
                    chosen, chosen_at = at, enqueued_at
                end
            else
                redis.call('SREM', set, KEYS[at])
            end
        end
    end
    if chosen and defer == '1' and redis.call('ZCOUNT', KEYS[chosen + 3], '(' .. now, '+inf') > 0 then
        chosen = nil
    end
    if not chosen then
        local rung, newest_of, marked = {}, {}, {}
        for at = first, #KEYS, 5 do
            local bell = KEYS[at + 2]
            if not newest_of[bell] then
                local newest = redis.call('XREVRANGE', bell, '+', '-', 'COUNT', 1)
                newest_of[bell] = newest[1] and newest[1][1] or '0-0'
            end
            rung[#rung + 1] = newest_of[bell]
            if idle_ttl ~= '' and not marked[KEYS[at + 3]] then
                redis.call('ZADD', KEYS[at + 3], now + tonumber(idle_ttl), claimant)
                marked[KEYS[at + 3]] = true
            end
        end
        return {0, rung}
    end
    local id = redis.call('LMOVE', KEYS[chosen], KEYS[chosen + 1], 'LEFT', 'RIGHT')
    return {1, KEYS[chosen], id, redis.call('HGETALL', job_key_prefix .. id)}
end
"""

# ARGV: the job key prefix, the claimant, defer ('1' or '0'), the idle mark's lifetime (ms, or ''),
# full ('1': read every queue's head, not only those of the waiting sets).
CLAIM = _CLAIM_FUNCTION + "return claim(1, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])"

# Run the commands that follow only if the job still has the expected status and owner, then (when
# given queues) claim the next job. Answer whether they ran, what the job's hash held and the claim.
# KEYS: the job, then optionally the queues' fives (see _CLAIM_FUNCTION). ARGV: status, owner (who
# also claims, having just finished), job key prefix, full (as CLAIM's), then the commands (see
# `executor.jobs.guarded_writes`).
FINISH = (
    _CLAIM_FUNCTION
    + RUN_COMMANDS
    + """
local found = redis.call('HMGET', KEYS[1], 'status', 'worker_name')
local status, owner = found[1], found[2]
if status ~= ARGV[1] or owner ~= ARGV[2] then
    return {0, status or '', owner or '', false}
end
run_commands(5)
local claimed = false
if #KEYS > 1 then
    claimed = claim(2, ARGV[3], ARGV[2], '1', '', ARGV[4])
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
    """Where the next job is claimed from: each queue's list, intermediate list and doorbell, and the
    job key prefix."""

    queue_keys: tuple[str, ...]
    intermediate_keys: tuple[str, ...]
    doorbell_keys: tuple[str, ...]
    idle_keys: tuple[str, ...]
    waiting_keys: tuple[str, ...]
    job_key_prefix: str

    def keys(self) -> list[str]:
        """The queues' keys in fives, as the claim takes them."""
        zipped = zip(
            self.queue_keys,
            self.intermediate_keys,
            self.doorbell_keys,
            self.idle_keys,
            self.waiting_keys,
            strict=True,
        )
        return [key for five in zipped for key in five]


@dataclass(frozen=True)
class Claimed:
    """A job id taken into its queue's intermediate list, and its hash as read then (empty if it had
    expired)."""

    queue_key: str
    job_id: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class NoneWaiting:
    """No job waited: the newest ring each doorbell had then, by doorbell key."""

    rung: dict[str, str]


@dataclass(frozen=True)
class Finished:
    """What the finishing script found and did."""

    saved: bool
    status: str
    owner: str
    next_job: Claimed | None


def claim_next(
    connection: Redis,
    source: ClaimFrom,
    claimant: str,
    *,
    defer: bool,
    idle_ttl_s: float | None,
    full: bool,
) -> Claimed | NoneWaiting:
    """The oldest waiting job, now in its queue's intermediate list, or the doorbells to wait on
    (see _CLAIM_FUNCTION for `defer` and `full`; with `idle_ttl_s`, the claimant is marked idle that
    long)."""
    idle_ttl = "" if idle_ttl_s is None else str(int(idle_ttl_s * 1000))
    args = [source.job_key_prefix, claimant, "1" if defer else "0", idle_ttl, "1" if full else "0"]
    reply = _registered(connection, CLAIM)(keys=source.keys(), args=args)
    return _claim_reply(reply, source)


def finish_if_owned(
    connection: Redis,
    writes: Pipeline,
    *,
    job_key: str,
    status: str,
    owner: str,
    claim_from: ClaimFrom | None,
    full: bool = False,
) -> Finished:
    """Run the commands queued on `writes` (never executed itself) as one atomic step if the job
    still has this status and owner, and then claim the next job from `claim_from`, if given (a
    `full` claim reads every queue's head)."""
    keys = [job_key, *(claim_from.keys() if claim_from else [])]
    prefix = claim_from.job_key_prefix if claim_from else ""
    args = [status, owner, prefix, "1" if full else "0", *encoded_commands(writes)]
    saved, found_status, found_owner, claim = _registered(connection, FINISH)(keys=keys, args=args)
    claimed = _claim_reply(claim, claim_from) if claim and claim_from else None
    next_job = claimed if isinstance(claimed, Claimed) else None
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


def _claim_reply(reply: Any, source: ClaimFrom) -> Claimed | NoneWaiting:
    """The claim's answer (see _CLAIM_FUNCTION) as a record."""
    if reply[0] == 0:
        rung = [as_text(entry) for entry in reply[1]]
        return NoneWaiting(dict(zip(source.doorbell_keys, rung, strict=True)))
    _, queue_key, job_id, flat = reply
    return Claimed(as_text(queue_key), as_text(job_id), dict(zip(flat[::2], flat[1::2], strict=True)))
