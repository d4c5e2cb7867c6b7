"""Repeat polls of one job are answered at most once per `EXECUTOR_POLL_PACE_MS`, and at once when
the job ends.

A client that polls in a tight loop (a `while` loop an agent wrote, or a 5 ms timer) would spend the
service's CPU on answers that say nothing new, taking it from the programs and from submissions.
So the answer to a poll is due one pace after the previous poll's answer; until then the web holds
it with a blocking read of the job's result stream, which returns as soon as the job ends. A client
that reads many jobs once each is never held. The due time lives in Redis, so every web process
paces the same job alike. It is set in the poll's own round trip, before the job's owner is
checked: a client that knew another client's job id could delay that client's polls by at most one
pace, and job ids are unguessable.
"""

import time

from redis.client import Pipeline
from rq.job import Job

# KEYS: the job's poll mark, the job's hash. ARGV: the time now and the pace, in ms. Returns how long
# this poll is held, in ms: until the previous poll's answer plus the pace, never longer than one
# pace. The mark then says when the next poll may be answered, and expires once it no longer holds
# anything. A job that does not exist gets no mark: polls of made-up ids leave nothing behind.
HOLD_UNTIL_DUE = """
if redis.call('EXISTS', KEYS[2]) == 0 then
    return 0
end
local now, pace = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = tonumber(redis.call('GET', KEYS[1]) or now)
due = math.min(math.max(due, now), now + pace)
redis.call('SET', KEYS[1], due + pace, 'PX', due + pace - now)
return due - now
"""


def poll_mark_key(job_id: str) -> str:
    """The key holding when the next poll of `job_id` may be answered (ms since the epoch)."""
    return f"executor:poll-due:{job_id}"


def queue_poll_hold(pipeline: Pipeline, job_id: str, pace_ms: int, now_ms: int | None = None) -> None:
    """Queue on `pipeline` the step whose reply is how long (ms) this poll of `job_id` is held."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    pipeline.eval(HOLD_UNTIL_DUE, 2, poll_mark_key(job_id), Job.key_for(job_id), now_ms, pace_ms)
