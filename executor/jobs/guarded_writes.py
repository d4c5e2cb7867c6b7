"""RQ's writes, run by a Lua script only while a condition holds, so no client acts in between.

RQ's own methods still decide what is written: they are called on a pipeline that is never executed,
and its commands are handed to a script that checks the condition and runs them, atomically and in
one round trip. The web process guards a submission with the queues' depth limit; the worker guards a
result with the job's status and owner (`workers/redis_scripts.py`).
"""

from typing import Any

from redis.client import Pipeline

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

# KEYS: the job's queue, the languages offered (announcements.py), the job's result stream, read by a
# waiter in the same round trip, then every language's queue, whose lengths add up to the depth.
# ARGV: the depth limit, the job's language, 1 to wake the waiter on a refusal (0 if there is none),
# the words that ring the queue's doorbell (routing.py), then the enqueue's commands. Returns 1 when
# enqueued, 0 when the queues are full, -1 when no worker has announced the language. A refusal wakes
# the waiter at once with an entry it recognizes (and that expires), instead of leaving its read blocked.
ENQUEUE_IF_ROOM = (
    RUN_COMMANDS
    + """
local function refuse(answer)
    if ARGV[3] == '1' then
        redis.call('XADD', KEYS[3], '*', 'refused', '1')
        redis.call('EXPIRE', KEYS[3], 10)
    end
    return answer
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local offered_until = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not offered_until or tonumber(offered_until) <= now then
    return refuse(-1)
end
local waiting = 0
for at = 4, #KEYS do
    waiting = waiting + redis.call('LLEN', KEYS[at])
end
if waiting >= tonumber(ARGV[1]) then
    return refuse(0)
end
run_commands(10)
redis.call('XADD', unpack(ARGV, 4, 9))
return 1
"""
)


def encoded_commands(writes: Pipeline) -> list[Any]:
    """The commands queued on `writes` as a script's arguments (see RUN_COMMANDS)."""
    encoded: list[Any] = []
    for words, _options in writes.command_stack:
        encoded += [len(words), *words]
    return encoded
