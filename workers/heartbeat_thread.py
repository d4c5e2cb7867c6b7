"""A thread that keeps this worker's heartbeat key alive, even while a program runs."""

import logging
import threading
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from executor.jobs.liveness import beat, forget

logger = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    """Renews the key every `interval_s`, then runs `after_beat` (the lost-job sweep).

    A job runs in the worker's main thread, which is busy meanwhile: RQ's own beat cannot run.
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
    ) -> None:
        super().__init__(name=f"heartbeat-{worker_name}", daemon=True)
        self.connection = connection
        self.worker_name = worker_name
        self.sandbox = sandbox
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.after_beat = after_beat
        self.stopped = threading.Event()

    def run(self) -> None:
        """Beat until stopped; an outage is logged once and ridden out, and nothing `after_beat`
        raises stops the beating (a thread that died would make a live worker look lost)."""
        healthy = True
        while not self.stopped.is_set():
            try:
                beat(self.connection, self.worker_name, self.sandbox, self.ttl_s)
                self.after_beat()
                healthy = True
            except RedisError as error:
                if healthy:
                    logger.warning("heartbeat failed, Redis unavailable: %s", error)
                healthy = False
            except Exception:
                logger.exception("the work after a heartbeat failed; the next beat tries again")
            self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        """Stop beating and withdraw the key, so the worker is not mistaken for a lost one."""
        self.stopped.set()
        self.join(timeout=self.interval_s + 1)
        try:
            forget(self.connection, self.worker_name)
        except RedisError:
            logger.warning("could not withdraw the heartbeat; it expires by itself")
