"""The Redis connection of the web process, and the URL the workers connect with: one TLS policy."""

import ssl
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from executor.settings import Settings


def connect(settings: Settings, blocking_reads_s: float = 0.0) -> Redis:
    """A client that fails fast when Redis is away instead of waiting forever; one whose reads may
    block for `blocking_reads_s` waits that much longer before it gives up."""
    options = client_options(settings)
    options["socket_timeout"] += blocking_reads_s
    return Redis.from_url(settings.redis_url, **options)


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
        # One connection per web thread at most; redis-py's default cap (100) would refuse threads
        # beyond it ("Too many connections") while they wait on a blocking read.
        "max_connections": settings.web_threads,
    }
    if accepts_self_signed(settings.redis_url):
        options["ssl_cert_reqs"] = ssl.CERT_NONE
    return options


def accepts_self_signed(redis_url: str) -> bool:
    """Whether the client accepts the server's self-signed certificate: for every TLS URL, since
    Heroku-style managed Redis presents one. The one place that policy is decided."""
    return redis_url.startswith("rediss://")


def worker_url(redis_url: str) -> str:
    """The URL `rq worker` connects with, the policy above spelt as a URL option (RQ takes a URL)."""
    if accepts_self_signed(redis_url) and "ssl_cert_reqs" not in redis_url:
        return redis_url + ("&" if "?" in redis_url else "?") + "ssl_cert_reqs=none"
    return redis_url
