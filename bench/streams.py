"""Do open live-output streams starve submissions? Submit latency alone, then beside 200 open streams.

Both phases run against the same stack in the same round, with the same 200 jobs queued (two of
them running), so the ratio of their p99s is the figure. The streams follow those jobs, which print
for longer than a round lasts; most wait queued behind the workers, as the streams of a busy
deployment do. While they are held open the bench also reads
what they cost: the web's CPU and Redis's commands per open stream per second.
"""

import contextlib
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.client import Connection
from bench.pool import Deadline
from bench.report import percentile
from bench.stack import Stack

# Prints a line a second for longer than the measurement; canceled once it has been timed.
STREAMED_PROGRAM: dict[str, Any] = {
    "code": "import time\nfor n in range(25):\n    print('tick', n, flush=True)\n    time.sleep(1)",
    "timeout": 30,
}
OPEN_WAIT_S = 20.0
# A submission unanswered this long means the server is starved; the timing stops there.
SUBMIT_TIMEOUT_S = 10.0
SETTLE_S = 3.0
COST_WINDOW_S = 6.0
MEDIAN_KEYS = (
    "submit_p99_ms_alone",
    "submit_p99_ms_beside_streams",
    "submit_p99_ratio",
    "web_cpu_ms_per_stream_s",
    "redis_commands_per_stream_s",
)


@dataclass(frozen=True)
class Timings:
    """Submit latencies of one phase."""

    codes: dict[int, int]
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float


@dataclass(frozen=True)
class StreamsRound:
    """One round: submit latency without, then with, `streams` open event streams."""

    streams: int
    # Streams whose headers had come back before the timing began, and that were still open after it.
    opened: int
    held_while_timed: int
    stream_events: int
    alone: Timings
    beside_streams: Timings
    web_cpu_ms_per_stream_s: float
    redis_commands_per_stream_s: float

    def figures(self) -> dict[str, Any]:
        """JSON-ready figures, flat, with the p99 ratio (beside streams / alone)."""
        flat = asdict(self)
        for phase in ("alone", "beside_streams"):
            flat |= {f"submit_{key}_{phase}": value for key, value in flat.pop(phase).items()}
        beside, alone = self.beside_streams.p99_ms, self.alone.p99_ms
        return {**flat, "submit_p99_ratio": beside / alone if beside and alone else None}

    @property
    def ok(self) -> bool:
        """Every stream was open throughout the timing, and every submission was accepted."""
        submitted = sum(self.alone.codes.values())
        return (
            self.opened == self.held_while_timed == self.streams
            and self.alone.codes == {202: submitted}
            and self.beside_streams.codes == {202: submitted}
        )


class EventStream:
    """One client following a job's events on its own socket, counting what arrives. A raw socket,
    so that `close` can shut it down under the thread blocked reading it."""

    def __init__(self, base_url: str, job_id: str) -> None:
        parts = urlsplit(base_url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.job_id = job_id
        self.socket: socket.socket | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.events = 0
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        try:
            self.socket = socket.create_connection(self.address, timeout=120)
            host = f"{self.address[0]}:{self.address[1]}"
            self.socket.sendall(
                f"GET /api/v1/execute/{self.job_id}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            )
            with self.socket.makefile("rb") as lines:
                if lines.readline().split()[1:2] != [b"200"]:
                    return
                self.opened.set()
                for line in lines:
                    self.events += line.startswith(b"event:")
        except OSError:
            pass  # shut down by `close`, or the server went away: `ended` says it is over
        finally:
            self.ended.set()

    @property
    def open(self) -> bool:
        return self.opened.is_set() and not self.ended.is_set()

    def close(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)
            self.socket.close()
        self.thread.join(timeout=5)


def measure_streams(stack: Stack, deadline: Deadline, rounds: int) -> dict[str, Any]:
    """`rounds` rounds back to back; the medians of their figures, and each round's."""
    done: list[StreamsRound] = []
    for number in range(rounds):
        if deadline.expired():
            break
        _progress(f"round {number + 1} of {rounds}")
        done.append(measure_round(stack, deadline))
    figures = [round_.figures() for round_ in done]
    medians = {
        f"median_{key}": statistics.median(values)
        for key in MEDIAN_KEYS
        if (values := [figure[key] for figure in figures if figure[key] is not None])
    }
    return {**medians, "ok": bool(done) and all(round_.ok for round_ in done), "rounds": figures}


def measure_round(stack: Stack, deadline: Deadline, streams: int = 200, submits: int = 200) -> StreamsRound:
    """Time `submits` submissions alone, then open `streams` event streams and time as many again."""
    submitter = Connection(stack.base_url, timeout_s=SUBMIT_TIMEOUT_S)
    # The streamed jobs are queued (and two running) in both phases: only the open streams differ.
    streamed = [_submitted(submitter, STREAMED_PROGRAM) for _ in range(streams)]
    job_ids = list(streamed)  # canceled at the end of the round, with the timed submissions' jobs
    followers: list[EventStream] = []
    try:
        _progress(f"timing {submits} submits beside {streams} jobs, no stream open")
        alone = _timed_submits(submitter, submits, deadline, job_ids)
        _progress(f"opening {streams} streams")
        followers = [EventStream(stack.base_url, job_id) for job_id in streamed]
        opening = deadline.child(OPEN_WAIT_S)
        for follower in followers:
            follower.opened.wait(opening.remaining())
        time.sleep(min(SETTLE_S, deadline.remaining()))  # past each stream's first view
        opened = sum(follower.open for follower in followers)
        _progress(f"{opened} streams open; their cost over {COST_WINDOW_S:.0f} s, then {submits} submits")
        before, began = stack.usage(), time.monotonic()
        time.sleep(min(COST_WINDOW_S, deadline.remaining()))
        after, lasted = stack.usage(), time.monotonic() - began
        beside = _timed_submits(submitter, submits, deadline, job_ids)
        held = sum(follower.open for follower in followers)
    finally:
        for follower in followers:
            follower.close()
        _cancel(submitter, job_ids, deadline)
    per_stream_s = max(1, opened) * lasted
    return StreamsRound(
        streams=streams,
        opened=opened,
        held_while_timed=held,
        stream_events=sum(follower.events for follower in followers),
        alone=alone,
        beside_streams=beside,
        web_cpu_ms_per_stream_s=(after.web_s - before.web_s) * 1000 / per_stream_s,
        redis_commands_per_stream_s=(after.redis_commands - before.redis_commands) / per_stream_s,
    )


def _cancel(connection: Connection, job_ids: list[str], deadline: Deadline) -> None:
    """Cancel the round's jobs, so the next round starts with an empty queue; on a starved server,
    stop trying: they end by their own timeout."""
    for job_id in job_ids:
        try:
            connection.request("DELETE", f"/api/v1/execute/{job_id}")
        except OSError:
            break
        if deadline.expired():
            break
    connection.close()


def _progress(message: str) -> None:
    print(f"bench streams: {message}", file=sys.stderr, flush=True)


def _submitted(connection: Connection, program: dict[str, Any]) -> str:
    code, body = connection.request("POST", "/api/v1/execute", program)
    if code != 202:
        raise RuntimeError(f"a streamed job was refused: {code} {body}")
    return str(body["job_id"])


def _timed_submits(connection: Connection, count: int, deadline: Deadline, job_ids: list[str]) -> Timings:
    """`count` submissions of print(1) one after another on one keep-alive connection, as clients do;
    their ids are added to `job_ids`. A submission that gets no answer within the socket's timeout (a
    starved server) ends the timing, counted as code 0."""
    latencies_ms: list[float] = []
    codes: Counter[int] = Counter()
    for _ in range(count):
        started = time.monotonic()
        try:
            code, body = connection.request("POST", "/api/v1/execute", {"code": "print(1)"})
        except OSError:
            connection.close()
            code, body = 0, None
        latencies_ms.append((time.monotonic() - started) * 1000)
        codes[code] += 1
        if code == 202:
            job_ids.append(body["job_id"])
        if code == 0 or deadline.expired():
            break
    return Timings(
        codes=dict(codes),
        p50_ms=percentile(latencies_ms, 0.50),
        p99_ms=percentile(latencies_ms, 0.99),
        max_ms=max(latencies_ms),
    )
