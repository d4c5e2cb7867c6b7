"""Repeat polls of one job are answered at most once per `EXECUTOR_POLL_PACE_MS`, and at once when
the job ends.

A client that polls in a tight loop (a `while` loop an agent wrote, or a 5 ms timer) would spend the
service's CPU on answers that say nothing new, taking it from the programs and from submissions.
So the answer to a poll is due one pace after the previous poll's answer; until then the web holds
it with a blocking read of the job's result stream, which returns as soon as the job ends. A client
that reads many jobs once each is never held. The due time is a field of the job's hash, so every
web process paces the same job alike, and it is read and written by the script that reads the poll's
snapshot (`executor.jobs.queue`), in the poll's own round trip, before the job's owner is checked: a
client that knew another client's job id could delay that client's polls by at most one pace, and
job ids are unguessable. A job that does not exist gets no due time: polls of made-up ids leave
nothing behind.
"""

# The job hash's field holding when its next poll may be answered (ms since the epoch).
POLL_DUE_FIELD = "executor_poll_due"
# A Lua function: how long (ms) a poll of the job whose hash is `job_key` is held, given the hash's
# due time (`due_text`, or nil before the first poll), the time now and the pace, in ms: until the
# previous poll's answer plus the pace, never longer than one pace. The due time then says when the
# next poll may be answered.
HOLD_FUNCTION = f"""
local function hold_poll(job_key, due_text, now, pace)
    local due = tonumber(due_text or now)
    due = math.min(math.max(due, now), now + pace)
    redis.call('HSET', job_key, '{POLL_DUE_FIELD}', due + pace)
    return due - now
end
"""
