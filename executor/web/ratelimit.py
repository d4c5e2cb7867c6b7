"""An optional per-client rate limit, counted in Redis so every web process shares it."""

from collections.abc import Callable

from flask import Flask, request
from flask_limiter import Limiter

from executor.jobs.connection import client_options
from executor.jobs.queue import owner_of
from executor.settings import Settings
from executor.web.auth import is_configured, presented_key


def _client_key(api_keys: tuple[str, ...]) -> Callable[[], str]:
    """Count per API key when the caller presents a configured one, else per address.

    Only a configured key may pick the bucket: were any Bearer token enough, a client could
    take a fresh budget with every made-up token.
    """

    def key() -> str:
        presented = presented_key()
        if presented is not None and is_configured(presented, api_keys):
            return "key:" + (owner_of(presented) or "")
        return "addr:" + (request.remote_addr or "unknown")

    return key


def init_rate_limit(app: Flask, settings: Settings) -> None:
    """Limit the API routes to EXECUTOR_RATE_LIMIT (e.g. '100/minute'); off when it is empty."""
    if not settings.rate_limit:
        return
    # Registering on the app is all it takes: the limiter hooks into every request from here on.
    Limiter(
        key_func=_client_key(settings.api_keys),
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=settings.redis_url,
        storage_options=client_options(settings),
        headers_enabled=True,
        # An outage of the limiter's store must not turn every request into an error.
        swallow_errors=True,
        default_limits_exempt_when=lambda: not request.path.startswith("/api/"),
    )
