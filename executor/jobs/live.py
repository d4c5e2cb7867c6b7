"""Live output (API.md 1.1): a job's output as the program writes it, on a Redis stream per job.

The worker publishes: the sandbox hands each piece of output to a `LivePublisher`, which buffers it
and appends what has gathered every `FLUSH_EVERY_S` from a thread of its own, so a program that
prints a lot pays no Redis round trip per write. The stream holds at most `MAX_ENTRIES` entries
and expires with the job's result. An `end` entry, written when the program's runs are over, tells
readers that the job's result follows.

A job of one run that ends before the first flush writes no stream at all (four commands and a
round trip saved on every short job): its result holds everything the stream would, and a reader
makes the same events from it (`result_events`), within the same 250 ms.

The web process reads it for `GET /api/v1/execute/{id}/events` (`events`), each entry's Redis id
being the event's id, so `Last-Event-ID` resumes where a client left off.
"""

import codecs
import json
import threading
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

    def __init__(self, connection: Redis, job_id: str, ttl_s: int, *, skip_if_short: bool) -> None:
        self.connection = connection
        # Whether a job that ends before the first flush writes nothing (see the module's docstring);
        # not for judged jobs, whose events say which case each piece of output is from.
        self.skip_if_short = skip_if_short
        self.flushed = False
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
        self._add(stream, self.decoders[stream].decode(chunk))

    def case(self, index: int) -> None:
        """The output that follows is test case `index`'s. Nothing is sent from here either: each
        piece carries its case, and `_merged` never joins two cases' pieces. A character the last
        case's output cut short is that case's (replaced), not glued to the next case's first bytes."""
        for stream, decoder in self.decoders.items():
            self._add(stream, decoder.decode(b"", final=True))
            decoder.reset()
        self.test = index

    def _add(self, stream: str, text: str) -> None:
        if text:
            data = {"data": text, **({"test": self.test} if self.test is not None else {})}
            with self.lock:
                self.pending.append((stream, data))

    def close(self) -> None:
        """Send what is left and the `end` entry (the job's result follows), in one round trip; or
        nothing, for a short job whose result tells it all."""
        self.stopping.set()
        self.thread.join()
        if self.skip_if_short and not self.flushed:
            return
        with self.lock:
            self.pending.append(("end", {}))
        self._flush()

    def _flush_regularly(self) -> None:
        while not self.stopping.wait(FLUSH_EVERY_S):
            self._flush()

    def _flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
            self.flushed = True
        if not pending:
            return
        with self.connection.pipeline(transaction=False) as pipeline:
            for event, data in _merged(pending):
                entry = {"event": event, "data": json.dumps(data)}
                pipeline.xadd(self.key, entry, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
            pipeline.expire(self.key, self.ttl_s)
            pipeline.execute()


@dataclass(frozen=True)
class LiveRead:
    """What one read of a job's live stream found: its events, and how far its result stream has
    been read (each of its entries wakes a reader once)."""

    events: list[LiveEvent]
    results_read_to: str


def read_events(
    connection: Redis, job_id: str, after: str, block_ms: int | None, results: tuple[str, str]
) -> LiveRead:
    """The stream's events after the id `after`, waiting up to `block_ms` for the first (None: not
    at all) or for an entry of the job's result stream after the given id (`results`: its key and
    that id): a short job writes no live stream, only its result, and that must wake the reader."""
    results_key, results_after = results
    reply: Any = connection.xread(
        {live_key(job_id): after, results_key: results_after}, count=500, block=block_ms
    )
    found: list[LiveEvent] = []
    for key, entries in reply or []:
        if key.decode() == results_key:
            results_after = entries[-1][0].decode()
            continue
        for entry_id, fields in entries:
            name = fields[b"event"].decode()
            found.append(LiveEvent(entry_id.decode(), name, json.loads(fields[b"data"])))
    return LiveRead(found, results_after)


def result_events(view: dict[str, Any], after: str) -> list[LiveEvent]:
    """The events of a job that ended with no live stream (`LivePublisher.skip_if_short`), made from
    its view as the stream would have held them, after the id `after`. Their ids come before any
    real entry's, so a client that reconnects with one of them resumes among them. None for a job
    that never started (canceled while queued)."""
    if not view.get("started_at"):
        return []
    made = [("status", {"status": "started"})]
    made += [(name, {"data": view[name]}) for name in ("stdout", "stderr") if view.get(name)]
    numbered = [LiveEvent(f"0-{number}", name, data) for number, (name, data) in enumerate(made, start=1)]
    return [event for event in numbered if _id_after(event.event_id, after)]


def _id_after(event_id: str, after: str) -> bool:
    """Whether a stream id comes after another (`<ms>-<seq>`, compared as numbers)."""
    return tuple(map(int, event_id.split("-"))) > tuple(map(int, after.split("-")))


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
