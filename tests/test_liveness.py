"""Worker liveness: heartbeats that expire, and the live workers read without scanning the keyspace."""

import time
from typing import Any

import fakeredis

from executor.jobs.liveness import LIVE_WORKERS, alive_among, beat, forget, live_workers
from workers.heartbeat_thread import HeartbeatThread


class CountingRedis(fakeredis.FakeRedis):
    """A fake Redis that records the name of every command it is sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


def test_live_workers_are_read_with_their_levels_and_without_a_keyspace_scan() -> None:
    redis = CountingRedis()
    for number in range(200):  # other keys, which a scan would have to walk
        redis.set(f"rq:job:{number}", "x")
    beat(redis, "alpha", "bwrap+cgroup", ttl_s=10)
    beat(redis, "beta", "rlimits-only", ttl_s=10)
    redis.commands.clear()
    assert live_workers(redis) == {"alpha": "bwrap+cgroup", "beta": "rlimits-only"}
    assert "SCAN" not in redis.commands and "KEYS" not in redis.commands
    assert len(redis.commands) == 2


def test_a_worker_that_stops_beating_is_no_longer_live_and_leaves_the_set() -> None:
    redis = fakeredis.FakeRedis()
    beat(redis, "gone", "bwrap", ttl_s=0.05)
    beat(redis, "here", "bwrap", ttl_s=10)
    time.sleep(0.1)
    assert live_workers(redis) == {"here": "bwrap"}
    assert alive_among(redis, ["gone", "here"]) == {"here"}
    beat(redis, "here", "bwrap", ttl_s=10)  # every beat forgets the expired ones
    assert redis.zrange(LIVE_WORKERS, 0, -1) == [b"here"]


def test_a_worker_that_stops_cleanly_is_forgotten_at_once() -> None:
    redis = fakeredis.FakeRedis()
    beat(redis, "leaving", "bwrap", ttl_s=10)
    forget(redis, "leaving")
    assert live_workers(redis) == {}
    assert redis.zcard(LIVE_WORKERS) == 0


def test_the_heartbeat_thread_keeps_beating_when_the_work_after_a_beat_fails() -> None:
    redis = fakeredis.FakeRedis()
    calls: list[float] = []

    def failing_sweep() -> None:
        calls.append(time.monotonic())
        raise FileNotFoundError("a leftover another worker removed meanwhile")

    thread = HeartbeatThread(
        redis, "steady", sandbox="bwrap", interval_s=0.02, ttl_s=5, after_beat=failing_sweep
    )
    thread.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    alive = thread.is_alive()
    thread.stop()
    assert len(calls) >= 3 and alive  # a thread that died on the first failure would have stopped at 1
