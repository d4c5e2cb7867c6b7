"""Two Lua scripts that each do in one round trip what RQ's worker does in two.

On a busy machine a round trip costs more than its commands: the worker sleeps and is woken for
each reply (see docs/benchmark.md). What is written is still decided by RQ's own methods; the
scripts only change how many times the worker waits for Redis, and make the finish atomic.

Both touch keys they learn while running (the claimed job's hash, the written job's records),
which a single Redis allows and a Redis Cluster would not; RQ does not support Cluster either.
"""

from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.utils import as_text

# Take the oldest waiting id into the intermediate list, as RQ's non-blocking LMOVE does, and read
# its job's hash in the same call. An id whose hash has expired comes back with no fields.
CLAIM = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then
    return false
end
return {id, redis.call('HGETALL', ARGV[1] .. id)}
"""

# Run the commands that follow only if the job still has the expected status and owner; either
# way, answer whether they ran and what the job's hash held. ARGV: status, owner, then each
# command as its number of words followed by the words.
GUARDED = """
local status = redis.call('HGET', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'worker_name')
if status ~= ARGV[1] or owner ~= ARGV[2] then
    return {0, status or '', owner or ''}
end
local at = 3
while at <= #ARGV do
    local words = tonumber(ARGV[at])
    redis.call(unpack(ARGV, at + 1, at + words))
    at = at + words + 1
end
return {1, status, owner}
"""


def claim_next(
    connection: Redis, queue_key: str, intermediate_key: str, job_key_prefix: str
) -> tuple[str, dict[bytes, bytes]] | None:
    """The next waiting job's id and hash, now in the intermediate list; None if none waits."""
    reply = connection.register_script(CLAIM)(keys=[queue_key, intermediate_key], args=[job_key_prefix])
    if not reply:
        return None
    job_id, flat = reply
    return as_text(job_id), dict(zip(flat[::2], flat[1::2], strict=True))


def run_if_owned(
    connection: Redis, job_key: str, status: str, owner: str, writes: Pipeline
) -> tuple[bool, str, str]:
    """Run the commands queued on `writes` (never executed itself) as one atomic step, if the job
    still has this status and owner; whether they ran, and the status and owner found."""
    args: list[Any] = [status, owner]
    for words, _options in writes.command_stack:
        args += [len(words), *words]
    applied, found_status, found_owner = connection.register_script(GUARDED)(keys=[job_key], args=args)
    return bool(applied), as_text(found_status), as_text(found_owner)
