"""The Redis connection, built the same way by the web process and the workers."""

import ssl
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from executor.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client that fails fast when Redis is away instead of waiting forever."""
    return Redis.from_url(settings.redis_url, **client_options(settings))


def client_options(settings: Settings) -> dict[str, Any]:
    """Options of every client of the web process, the rate limiter's included.

    One quick retry replaces a connection that Redis closed (say, after a restart); more would
    only delay the 503 that tells the client to come back.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout,
        "socket_timeout": settings.redis_timeout,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
    }
    if settings.redis_url.startswith("rediss://"):
        # Heroku-style managed Redis presents a self-signed certificate.
        options["ssl_cert_reqs"] = ssl.CERT_NONE
    return options
