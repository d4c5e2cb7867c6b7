"""Waking one idle worker: its wake list, and the Lua function that pops idle marks and pushes to it.

Kept apart from `routing.py`, which decides who is woken, so that the enqueue script
(`guarded_writes.py`) can wake workers without importing routing.
"""

import time

WAKE_PREFIX = "executor:wake:"
# Wake up to `count` idle workers that run a language: first from `idle` (the base's workers
# that run every language), then from the groups its `groups` registry lists. A popped mark that had
# expired is dropped (the worker has gone, or looks again by itself). `now` is ms of the caller's
# clock. Answers how many were woken.
WAKE_FUNCTION = f"""
local function wake(idle, groups, count, now)
    local woken = 0
    local function pop(set)
        local popped = redis.call('ZPOPMAX', set, count - woken)
        for at = 1, #popped, 2 do
            if tonumber(popped[at + 1]) > now then
                redis.call('LPUSH', '{WAKE_PREFIX}' .. popped[at], '1')
                woken = woken + 1
            end
        end
    end
    pop(idle)
    if woken < count then
        for _, set in ipairs(redis.call('ZRANGE', groups, '(' .. now, '+inf', 'BYSCORE')) do
            if woken >= count then
                break
            end
            pop(set)
        end
    end
    return woken
end
"""


def wake_list(worker_name: str) -> str:
    """The key of the list an idle worker blocks on: a push wakes it."""
    return WAKE_PREFIX + worker_name


def now_ms() -> int:
    """This host's clock in ms, as idle marks and wakes use it."""
    return int(time.time() * 1000)
