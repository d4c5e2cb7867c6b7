"""Gunicorn settings for the Procfile's web process, from the environment (PORT, WEB_CONCURRENCY, ...)."""

import json
import os

import gunicorn.util

from executor.settings import Settings
from executor.web.errors import error_body

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Threads, not processes, carry concurrency: a ?wait=true request mostly sleeps in a blocking Redis read.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = Settings().web_threads
timeout = 60
graceful_timeout = 30
# The control socket lives at one path per user: two servers on a machine (make run beside the
# tests or the bench) would fight over it, and nothing here uses it.
control_socket_disable = True
accesslog = "-" if os.environ.get("EXECUTOR_ACCESS_LOG") else None


def _write_json_error(sock: object, status_int: int, reason: str, mesg: str) -> None:
    """Gunicorn's own refusals (over-long URL or header, bad request line) as JSON, never HTML."""
    body = json.dumps(error_body(status_int, f"{reason}: {mesg}" if mesg else f"{reason}.")).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    gunicorn.util.write_nonblock(sock, head + body)  # type: ignore[attr-defined]


# Gunicorn has no hook for the body of errors it raises before the app runs; this is its one writer.
gunicorn.util.write_error = _write_json_error
