"""Live output (API.md 1.1): a job's output as the program writes it, on a Redis stream per job.

The worker publishes: the sandbox hands each piece of output to a `LivePublisher`, which buffers it
and appends what has gathered every `FLUSH_EVERY_S` from a thread of its own, so a program that
prints a lot pays no Redis round trip per write. The stream holds at most `MAX_ENTRIES` entries
and expires with the job's result. An `end` entry, written when the program's runs are over, tells
readers that the job's result follows.

The web process reads it for `GET /api/v1/execute/{id}/events` (`events`), each entry's Redis id
being the event's id, so `Last-Event-ID` resumes where a client left off.
"""

import codecs
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import Redis

LIVE_PREFIX = "executor:live:"
FLUSH_EVERY_S = 0.1
MAX_ENTRIES = 10_000
# Before any entry: the id of the `queued` status event, and where a reader starts.
FIRST_ID = "0-0"


def live_key(job_id: str) -> str:
    """The stream of a job's live output."""
    return LIVE_PREFIX + job_id


@dataclass(frozen=True)
class LiveEvent:
    """One event of the stream: its id, its SSE event name, and its data."""

    event_id: str
    name: str
    data: dict[str, Any]


class LivePublisher:
    """Gathers a job's output and appends it to the job's stream in batches, from its own thread."""

    def __init__(self, connection: Redis, job_id: str, ttl_s: int) -> None:
        self.connection = connection
        self.key = live_key(job_id)
        self.ttl_s = ttl_s
        self.lock = threading.Lock()
        # (event, data) waiting to be appended, in order.
        self.pending: list[tuple[str, dict[str, Any]]] = [("status", {"status": "started"})]
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")
        }
        self.test: int | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._flush_regularly, name=f"live {job_id}", daemon=True)

    def start(self) -> "LivePublisher":
        """Start flushing; the `started` status goes with the first flush, no round trip of its own."""
        self.thread.start()
        return self

    def output(self, stream: str, chunk: bytes) -> None:
        """Called by the sandbox with each piece of output: buffered, never sent from here."""
        text = self.decoders[stream].decode(chunk)
        if text:
            data = {"data": text, **({"test": self.test} if self.test is not None else {})}
            with self.lock:
                self.pending.append((stream, data))

    def case(self, index: int) -> None:
        """The output that follows is test case `index`'s."""
        self._flush()
        self.test = index

    def close(self) -> None:
        """Send what is left and the `end` entry (the job's result follows), in one round trip."""
        self.stopping.set()
        self.thread.join()
        with self.lock:
            self.pending.append(("end", {}))
        self._flush()

    def _flush_regularly(self) -> None:
        while not self.stopping.wait(FLUSH_EVERY_S):
            self._flush()

    def _flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        if not pending:
            return
        with self.connection.pipeline(transaction=False) as pipeline:
            for event, data in _merged(pending):
                entry = {"event": event, "data": json.dumps(data)}
                pipeline.xadd(self.key, entry, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
            pipeline.expire(self.key, self.ttl_s)
            pipeline.execute()


def events(connection: Redis, job_id: str, after: str, block_ms: int | None) -> Iterator[LiveEvent]:
    """The stream's events after the id `after`, waiting up to `block_ms` for the first (None: not
    at all)."""
    reply: Any = connection.xread({live_key(job_id): after}, count=500, block=block_ms)
    for _, entries in reply or []:
        for entry_id, fields in entries:
            name = fields[b"event"].decode()
            yield LiveEvent(entry_id.decode(), name, json.loads(fields[b"data"]))


def _merged(pending: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Consecutive pieces of one stream (and case) as one: fewer, larger entries."""
    merged: list[tuple[str, dict[str, Any]]] = []
    for event, data in pending:
        previous = merged[-1] if merged else None
        joins = previous is not None and previous[0] == event and event in ("stdout", "stderr")
        if previous is not None and joins and previous[1].get("test") == data.get("test"):
            merged[-1] = (event, {**data, "data": previous[1]["data"] + data["data"]})
        else:
            merged.append((event, data))
    return merged
