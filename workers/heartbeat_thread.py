"""A thread that keeps this worker's heartbeat key alive, even while a program runs, and notices when
it can no longer keep it alive."""

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from executor.jobs.liveness import beat, forget

logger = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    """Renews the key every `interval_s`, then runs `after_beat` (the lost-job sweep); calls `on_lost`
    once the key may have expired.

    A job runs in the worker's main thread, which is busy meanwhile: RQ's own beat cannot run.

    Once no beat has reached Redis for `ttl_s`, the other workers may settle this worker's job as
    lost, so `on_lost` (the worker kills its running program) must run then, or a job reported lost
    would still be running here. A beat cannot tell this by itself failing: the worker's connection
    retries every command for about two minutes (`workers/worker.py`: OUTAGE_RETRY), and over a link
    that went down a command waits on TCP without an error at all. So a watch thread of its own
    measures the time since the last beat that Redis answered, counted from when that beat was sent:
    the key was set after that, so it expires no earlier than `ttl_s` later.
    """

    def __init__(
        self,
        connection: Redis,
        worker_name: str,
        *,
        sandbox: str,
        interval_s: float,
        ttl_s: float,
        after_beat: Callable[[], object],
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{worker_name}", daemon=True)
        self.connection = connection
        self.worker_name = worker_name
        self.sandbox = sandbox
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.after_beat = after_beat
        self.on_lost = on_lost
        self.stopped = threading.Event()
        # When the last beat that Redis answered was sent (monotonic clock); read by the watch thread.
        self.last_beat_sent = time.monotonic()
        self.watch = threading.Thread(target=self._watch_for_lapse, daemon=True, name=f"lapse-{worker_name}")

    def run(self) -> None:
        """Beat until stopped; an outage is logged once and ridden out, and nothing `after_beat`
        raises stops the beating (a thread that died would make a live worker look lost)."""
        self.last_beat_sent = time.monotonic()
        if self.on_lost is not None:
            self.watch.start()
        healthy = True
        while not self.stopped.is_set():
            sent = time.monotonic()
            try:
                beat(self.connection, self.worker_name, self.sandbox, self.ttl_s)
                self.last_beat_sent = sent
                self.after_beat()
                healthy = True
            except RedisError as error:
                if healthy:
                    logger.warning("heartbeat failed, Redis unavailable: %s", error)
                healthy = False
            except Exception:
                logger.exception("the work after a heartbeat failed; the next beat tries again")
            self.stopped.wait(self.interval_s)

    def _watch_for_lapse(self) -> None:
        """Call `on_lost` once each time `ttl_s` passes without a beat answered, whatever the beating
        thread is blocked in; an error in it is logged, and the watch goes on."""
        assert self.on_lost is not None
        reported = None  # the last_beat_sent whose lapse was reported
        while not self.stopped.is_set():
            since = self.last_beat_sent
            left = since + self.ttl_s - time.monotonic()
            if left > 0:
                self.stopped.wait(left)
                continue
            if reported != since:
                reported = since
                logger.error(
                    "no heartbeat reached Redis for %.1f s: this worker's job may be settled as lost "
                    "by now, so its running program is killed",
                    self.ttl_s,
                )
                try:
                    self.on_lost()
                except Exception:
                    logger.exception("could not stop the running program of a worker cut off from Redis")
            self.stopped.wait(min(self.interval_s, self.ttl_s))

    def stop(self) -> None:
        """Stop beating and withdraw the key, so the worker is not mistaken for a lost one."""
        self.stopped.set()
        self.join(timeout=self.interval_s + 1)
        try:
            forget(self.connection, self.worker_name)
        except RedisError:
            logger.warning("could not withdraw the heartbeat; it expires by itself")
