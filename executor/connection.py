"""The Redis connection, built the same way by the web process and the workers."""

import ssl
from typing import Any

from redis import Redis

from executor.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client that fails fast when Redis is away instead of waiting forever."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout,
        "socket_timeout": settings.redis_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_url.startswith("rediss://"):
        # Heroku-style managed Redis presents a self-signed certificate.
        options["ssl_cert_reqs"] = ssl.CERT_NONE
    return Redis.from_url(settings.redis_url, **options)
