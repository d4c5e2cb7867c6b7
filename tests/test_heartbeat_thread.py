"""The heartbeat thread's lost window: a worker cut off from Redis for longer than
EXECUTOR_WORKER_LOST_AFTER_S stops its job, since the other workers may settle it as lost from then on."""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from devtools.local_redis import free_port
from workers.heartbeat_thread import HeartbeatThread

INTERVAL_S = 0.05
TTL_S = 0.6
# How late after the window the callback may come: a wake-up of the watch thread, on a busy machine.
SLACK_S = 0.5


class Calls:
    """When the callback was called, on the monotonic clock."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> None:
        self.times.append(time.monotonic())

    def wait_for(self, count: int, limit_s: float) -> None:
        end = time.monotonic() + limit_s
        while len(self.times) < count and time.monotonic() < end:
            time.sleep(0.01)


class FlakyRedis(fakeredis.FakeRedis):
    """A Redis whose scripts (the beat is one) fail while `down` is set, as over a lost connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down = threading.Event()

    def eval(self, *args: Any, **kwargs: Any) -> Any:
        if self.down.is_set():
            raise RedisConnectionError("connection lost")
        return super().eval(*args, **kwargs)


def heartbeat(connection: Redis, on_lost: Calls) -> HeartbeatThread:
    return HeartbeatThread(
        connection,
        "cut-off",
        sandbox="bwrap",
        interval_s=INTERVAL_S,
        ttl_s=TTL_S,
        after_beat=lambda: None,
        on_lost=on_lost,
    )


@pytest.fixture
def stalled_redis() -> Iterator[Redis]:
    """A client of a server that takes the connection but never answers, as over a link that went
    down: with no socket timeout (a worker's), a command waits without an error."""
    listener = socket.create_server(("127.0.0.1", free_port()), backlog=8)
    client = Redis(host="127.0.0.1", port=listener.getsockname()[1])
    try:
        yield client
    finally:
        # Closing the listener resets the connections it never accepted: the blocked beat returns.
        listener.close()


def test_a_worker_that_cannot_reach_redis_stops_its_job_after_the_window_and_not_before() -> None:
    on_lost = Calls()
    # Nothing listens on this port: every beat fails at once.
    thread = heartbeat(Redis(port=free_port(), socket_connect_timeout=0.2), on_lost)
    started = time.monotonic()
    thread.start()
    try:
        time.sleep(TTL_S * 0.8)
        assert on_lost.times == [], "called before the key could have expired"
        on_lost.wait_for(1, TTL_S + SLACK_S)
        time.sleep(TTL_S)  # still cut off: no second call for the same lapse
    finally:
        thread.stopped.set()
    assert len(on_lost.times) == 1
    assert TTL_S <= on_lost.times[0] - started <= TTL_S + SLACK_S


def test_a_beat_blocked_on_a_dead_connection_does_not_hold_the_callback_back(stalled_redis: Redis) -> None:
    on_lost = Calls()
    thread = heartbeat(stalled_redis, on_lost)
    started = time.monotonic()
    thread.start()
    try:
        on_lost.wait_for(1, TTL_S + SLACK_S)
    finally:
        thread.stopped.set()
    assert len(on_lost.times) == 1
    assert TTL_S <= on_lost.times[0] - started <= TTL_S + SLACK_S


def test_beats_that_reach_redis_never_call_it_and_each_lapse_calls_it_once() -> None:
    redis = FlakyRedis()
    on_lost = Calls()
    thread = heartbeat(redis, on_lost)
    thread.start()
    try:
        time.sleep(TTL_S * 3)
        assert on_lost.times == [], "called while every beat reached Redis"

        redis.down.set()
        cut_off = time.monotonic()
        on_lost.wait_for(1, TTL_S + SLACK_S)
        assert len(on_lost.times) == 1
        # The last beat that reached Redis was sent at most one interval (and a beat) before the cut.
        assert TTL_S - INTERVAL_S * 2 <= on_lost.times[0] - cut_off <= TTL_S + SLACK_S

        redis.down.clear()
        time.sleep(TTL_S * 2)
        assert len(on_lost.times) == 1, "called again after the beats came back"

        redis.down.set()
        on_lost.wait_for(2, TTL_S + SLACK_S)
        assert len(on_lost.times) == 2, "a second lapse was not reported"
    finally:
        redis.down.clear()
        thread.stop()
