"""`GET /api/v1/execute/{id}/events` (API.md 1.1): a job's live output as server-sent events.

Each event's id is its entry's id in the job's live stream (`executor.jobs.live`); the `queued`
status, before any entry, has the id `0-0`, and the `result` the id of the last entry, so a client
that reconnects with `Last-Event-ID` gets exactly what it missed.

An open stream holds one of the web process's threads (gunicorn's gthread worker) for as long as it
is open, so `StreamGate` admits at most `EXECUTOR_MAX_STREAMS` per process and refuses more with a
503: the other threads stay free for submissions; a stream whose client has left ends at its next
quiet read, giving its slot back. An idle stream costs one blocking read of its
live stream every `READ_BLOCK_MS` on a client whose socket timeout allows for the block, then a read
of the job's status field (has it ended without an `end` entry, canceled while queued?), and every
`WHOLE_VIEW_EVERY` quiet reads its whole view, which settles a job whose worker was lost.
"""

import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from redis import Redis

from executor.jobs.live import FIRST_ID, read_events, result_events
from executor.jobs.queue import JobQueue, Snapshot, result_stream
from executor.jobs.statuses import QUEUED, TERMINAL_STATUSES
from executor.jobs.views import view_json
from executor.web.errors import unavailable

READ_BLOCK_MS = 2000
# Every this many quiet reads (about 10 s), the job's whole view rather than its status field.
WHOLE_VIEW_EVERY = 5
KEEP_ALIVE_S = 15.0
_STREAM_ID = re.compile(r"^\d+-\d+$")


class StreamGate:
    """At most `limit` streams open at once in this web process; one more is refused at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots = threading.BoundedSemaphore(limit)

    def admit(self, open_stream: Callable[[], Iterator[str]]) -> Iterable[str]:
        """The stream `open_stream` makes, holding a slot until the server closes it (at its end or
        the client's leaving); a 503 when every slot is taken, before any stream is made."""
        if not self.slots.acquire(blocking=False):
            raise unavailable(
                f"This web process already serves {self.limit} event streams; retry later, "
                "or poll GET /api/v1/execute/<id>."
            )
        try:
            return _Held(open_stream(), self.slots.release)
        except BaseException:
            self.slots.release()
            raise


class _Held:
    """An iterable whose `close`, which every WSGI server calls, also gives its slot back (once)."""

    def __init__(self, stream: Iterator[str], release: Callable[[], None]) -> None:
        self.stream = stream
        self.release = release
        self.released = False

    def __iter__(self) -> Iterator[str]:
        return self.stream

    def close(self) -> None:
        try:
            close = getattr(self.stream, "close", None)
            if close is not None:
                close()
        finally:
            if not self.released:
                self.released = True
                self.release()


def live_events(
    jobs: JobQueue,
    reader: Redis,
    snapshot: Snapshot,
    owner: str | None,
    resume_from: str | None,
    *,
    client_left: Callable[[], bool],
) -> Iterator[str]:
    """The events of the job, from after `resume_from` (a Last-Event-ID) or from the first; the live
    stream is read through `reader`, whose reads may block for READ_BLOCK_MS. Ends early, with no
    result, once `client_left` says the client has closed its connection."""
    cursor = resume_from if resume_from and _STREAM_ID.match(resume_from) else FIRST_ID
    view = jobs.view(snapshot)
    if cursor == FIRST_ID and view.status == QUEUED:
        yield _event(FIRST_ID, "status", {"status": QUEUED, "queue_position": view.queue_position})
    written_at = time.monotonic()
    ended = view.status in TERMINAL_STATUSES
    quiet_reads = 0
    # The result stream wakes a read too: a short job ends without writing its live stream.
    results = (result_stream(snapshot.job.id), FIRST_ID if not ended else "$")
    # Whether the live stream has held anything (a resumed client's id is one of its entries');
    # if not once the job has ended, the events are made from the result.
    streamed = not cursor.startswith("0-")
    while True:
        # Once the job has ended, what the stream still holds is read without waiting, then the result.
        read = read_events(reader, snapshot.job.id, cursor, None if ended else READ_BLOCK_MS, results)
        results = (results[0], read.results_read_to)
        for event in read.events:
            cursor, streamed = event.event_id, True
            if event.name == "end":
                ended = True
                continue
            yield _event(event.event_id, event.name, event.data)
            written_at = time.monotonic()
        if ended and not read.events:
            break
        if (
            not read.events
        ):  # quiet for a whole block, or the result came: has the client gone, or the job ended?
            if client_left():
                return
            quiet_reads += 1
            ended = _ended(jobs, snapshot.job.id, owner, whole_view=quiet_reads % WHOLE_VIEW_EVERY == 0)
        if time.monotonic() - written_at > KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            written_at = time.monotonic()
    if streamed:
        yield from _result(jobs, snapshot.job.id, owner, cursor)
    else:
        yield from _made_from_result(jobs, snapshot.job.id, owner, cursor)


def client_gone_check(client: socket.socket | None) -> Callable[[], bool]:
    """Whether the client of a stream has closed its connection: its socket reads as at its end (a
    peek, so nothing it sent is taken). A stream that only waits writes nothing for up to
    KEEP_ALIVE_S, and a write to a closed connection may even succeed once; without this look its
    thread and slot would stay taken that long, or twice that. Without the socket (a server other
    than gunicorn), never."""
    if client is None:
        return lambda: False

    def gone() -> bool:
        # poll, not select: select refuses an fd of 1024 or more, which a busy process reaches.
        watch = select.poll()
        watch.register(client, select.POLLIN | select.POLLHUP)
        try:
            if not watch.poll(0):
                return False
            return client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:  # reset, or the socket closed under us: the client is gone
            return True

    return gone


def _ended(jobs: JobQueue, job_id: str, owner: str | None, *, whole_view: bool) -> bool:
    """Whether the job has ended: its status field (one command), or now and then its whole view,
    which also settles a job whose worker was lost or whose language lost its workers."""
    if whole_view:
        return jobs.view(jobs.find(job_id, owner)).status in TERMINAL_STATUSES
    return not jobs.running_among([job_id])


def _made_from_result(jobs: JobQueue, job_id: str, owner: str | None, cursor: str) -> Iterator[str]:
    """The events of a job that ended without writing its live stream, made from its result, then
    the result (`executor.jobs.live.result_events`)."""
    view = jobs.wait(jobs.find(job_id, owner))
    for event in result_events(view.model_dump(), cursor):
        cursor = event.event_id
        yield _event(event.event_id, event.name, event.data)
    yield f"id: {cursor}\nevent: result\ndata: {view_json(view)}\n\n"


def _result(jobs: JobQueue, job_id: str, owner: str | None, cursor: str) -> Iterator[str]:
    """The result event, once the job's result is there (it follows the stream's end at once): the
    queue's own wait, a blocking read of the result stream, not a poll."""
    view = jobs.wait(jobs.find(job_id, owner))
    yield f"id: {cursor}\nevent: result\ndata: {view_json(view)}\n\n"


def _event(event_id: str, name: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
