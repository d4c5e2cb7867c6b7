"""`GET /api/v1/execute/{id}/events` (API.md 1.1): a job's live output as server-sent events.

Each event's id is its entry's id in the job's live stream (`executor.jobs.live`); the `queued`
status, before any entry, has the id `0-0`, and the `result` the id of the last entry, so a client
that reconnects with `Last-Event-ID` gets exactly what it missed. An open stream holds one of the
web process's threads (gunicorn's gthread worker) for as long as it is open.
"""

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from executor.jobs.live import FIRST_ID, events
from executor.jobs.queue import JobQueue, Snapshot
from executor.jobs.statuses import QUEUED, TERMINAL_STATUSES
from executor.jobs.views import view_json

# A read waits this long for output: under the Redis client's socket timeout.
READ_BLOCK_MS = 500
KEEP_ALIVE_S = 15.0
_STREAM_ID = re.compile(r"^\d+-\d+$")


def live_events(
    jobs: JobQueue, snapshot: Snapshot, owner: str | None, resume_from: str | None
) -> Iterator[str]:
    """The events of the job, from after `resume_from` (a Last-Event-ID) or from the first."""
    cursor = resume_from if resume_from and _STREAM_ID.match(resume_from) else FIRST_ID
    view = jobs.view(snapshot)
    if cursor == FIRST_ID and view.status == QUEUED:
        yield _event(FIRST_ID, "status", {"status": QUEUED, "queue_position": view.queue_position})
    written_at = time.monotonic()
    ended = view.status in TERMINAL_STATUSES
    while True:
        # Once the job has ended, what the stream still holds is read without waiting, then the result.
        batch = list(events(jobs.connection, snapshot.job.id, cursor, None if ended else READ_BLOCK_MS))
        for event in batch:
            cursor = event.event_id
            if event.name == "end":
                ended = True
                continue
            yield _event(event.event_id, event.name, event.data)
            written_at = time.monotonic()
        if ended and not batch:
            break
        ended = ended or jobs.view(jobs.find(snapshot.job.id, owner)).status in TERMINAL_STATUSES
        if time.monotonic() - written_at > KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            written_at = time.monotonic()
    yield from _result(jobs, snapshot.job.id, owner, cursor)


def _result(jobs: JobQueue, job_id: str, owner: str | None, cursor: str) -> Iterator[str]:
    """The result event, once the job's result is there (it follows the stream's end at once): the
    queue's own wait, a blocking read of the result stream, not a poll."""
    view = jobs.wait(jobs.find(job_id, owner))
    yield f"id: {cursor}\nevent: result\ndata: {view_json(view)}\n\n"


def _event(event_id: str, name: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
