"""RQ's writes, run by a Lua script only while a condition holds, so no client acts in between.

RQ's own methods still decide what is written: they are called on a pipeline that is never executed,
and its commands are handed to a script that checks the condition and runs them, atomically and in
one round trip. The web process guards a submission with the queues' depth limit; the worker guards a
result with the job's status and owner (`workers/redis_scripts.py`).
"""

from collections.abc import Callable, Sequence
from typing import Any

from redis.client import Pipeline

from executor.jobs.wakes import WAKE_FUNCTION

# A Lua function that runs the commands passed in ARGV from `at` on, each as its number of words
# followed by the words.
RUN_COMMANDS = """
local function run_commands(at)
    while at <= #ARGV do
        local words = tonumber(ARGV[at])
        redis.call(unpack(ARGV, at + 1, at + words))
        at = at + words + 1
    end
end
"""

# Enqueue one job or a batch (RQ's enqueue commands, and a batch's record), all or nothing, and wake
# an idle worker for each job (routing.py).
# KEYS: the languages offered (announcements.py), the result stream a waiter reads in the same round
# trip, the first job's hash, the queues' waiting set, whose queues' lengths add up to the depth, and
# the base's idle set (routing.py). ARGV: the depth limit, how many jobs, 1 to wake the waiter on a
# refusal (else 0), the web's clock (ms), the number of languages, then for each language: its id, its
# queue's key, its number of jobs and its group registry; then the commands. Answers {1}, {0} when the
# queues have no room for every job, or {-1, language} for the first language no worker has
# announced. A refusal wakes the waiter at once with an entry it recognizes (and that expires),
# instead of leaving its read blocked. Idempotent: the client library runs a pipeline again after a
# timeout, and job ids are new UUIDs, so a first job that exists means this very call ran already; it
# answers {1} without queuing anything twice.
#
# The depth is the length of the queues in the waiting set: every enqueue adds its queue, and only a
# claim that finds a queue empty removes it, so a queue missing from it holds no job, except one put
# back by RQ's own maintenance until a worker's full look (within a second) adds it again.
ENQUEUE_IF_ROOM = (
    RUN_COMMANDS
    + WAKE_FUNCTION
    + """
local function refuse(answer, detail)
    if ARGV[3] == '1' then
        redis.call('XADD', KEYS[2], '*', 'refused', '1')
        redis.call('EXPIRE', KEYS[2], 10)
    end
    return {answer, detail or ''}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
    return {1}
end
local now = tonumber(ARGV[4])
local last = 5 + 4 * tonumber(ARGV[5])
for at = 6, last, 4 do
    local offered_until = redis.call('ZSCORE', KEYS[1], ARGV[at])
    if not offered_until or tonumber(offered_until) <= now then
        return refuse(-1, ARGV[at])
    end
end
local waiting, listed = 0, {}
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    waiting = waiting + redis.call('LLEN', queue)
    listed[queue] = true
end
if waiting + tonumber(ARGV[2]) > tonumber(ARGV[1]) then
    return refuse(0)
end
run_commands(last + 1)
for at = 6, last, 4 do
    if not listed[ARGV[at + 1]] then
        redis.call('SADD', KEYS[4], ARGV[at + 1])
    end
    wake(KEYS[5], ARGV[at + 3], tonumber(ARGV[at + 2]), now)
end
return {1}
"""
)


def encoded_commands(
    writes: Pipeline, *, leave_out: Callable[[tuple[Any, ...]], bool] | None = None
) -> list[Any]:
    """The commands queued on `writes` as a script's arguments (see RUN_COMMANDS), less those that
    `leave_out` names. Adjacent HSETs of one key become one: RQ writes a job's status and then its
    other fields, two commands where one does the same (a field set twice keeps the later value)."""
    stack: list[list[Any]] = []
    for words, _options in writes.command_stack:
        if leave_out is not None and leave_out(words):
            continue
        previous = stack[-1] if stack else None
        if previous is not None and _is_hset(previous) and _is_hset(words) and previous[1] == words[1]:
            previous += words[2:]
        else:
            stack.append(list(words))
    encoded: list[Any] = []
    for words in stack:
        encoded += [len(words), *words]
    return encoded


def _is_hset(words: Sequence[Any]) -> bool:
    """Whether a queued command is an HSET (redis-py queues the name as given: `HSET`)."""
    return str(words[0]).upper() == "HSET"
