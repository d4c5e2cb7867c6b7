"""Worker liveness in Redis: keys that expire unless the worker keeps renewing them.

RQ's own worker key lives for the job's timeout plus a minute, far too long to notice a dead
worker quickly, so each worker also renews a short-lived key of ours, holding its isolation level.
"""

from redis import Redis
from rq.utils import as_text

HEARTBEAT_PREFIX = "executor:heartbeat:"


def beat(connection: Redis, worker_name: str, sandbox: str, ttl_s: float) -> None:
    """Say that this worker is alive, and which isolation it runs programs in."""
    connection.set(HEARTBEAT_PREFIX + worker_name, sandbox, px=int(ttl_s * 1000))


def forget(connection: Redis, worker_name: str) -> None:
    """Withdraw a worker that is stopping cleanly."""
    connection.delete(HEARTBEAT_PREFIX + worker_name)


def is_alive(connection: Redis, worker_name: str) -> bool:
    """Whether the worker renewed its heartbeat recently."""
    return worker_name in alive_among(connection, [worker_name])


def alive_among(connection: Redis, worker_names: list[str]) -> set[str]:
    """The workers of `worker_names` that renewed their heartbeat recently, in one round trip."""
    if not worker_names:
        return set()
    values = connection.mget([HEARTBEAT_PREFIX + name for name in worker_names])
    return {name for name, value in zip(worker_names, values, strict=True) if value is not None}


def sandboxes_in_use(connection: Redis) -> list[str]:
    """The isolation levels of the live workers, without repeats."""
    keys = list(connection.scan_iter(match=HEARTBEAT_PREFIX + "*", count=1000))
    values = connection.mget(keys) if keys else []
    return sorted({as_text(value) for value in values if value is not None})
