"""Gunicorn settings for the Procfile's web process, from the environment (PORT, WEB_CONCURRENCY, ...)."""

import os
import shutil
import tempfile

# The web processes count requests in files of this folder, and a scrape adds them up (see
# executor/metrics/exposition.py). prometheus-client picks that mode once, when first imported, so
# the folder is chosen here, before anything imports it; one of our own unless the operator set it.
OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="executor-metrics-")

import json  # noqa: E402  (after the folder is set, as said above)
import logging  # noqa: E402
from typing import Any  # noqa: E402

import gunicorn.glogging  # noqa: E402
import gunicorn.util  # noqa: E402
from prometheus_client import multiprocess  # noqa: E402

from executor.logs import lean_log_records, logging_config  # noqa: E402
from executor.settings import Settings  # noqa: E402
from executor.web.errors import error_body  # noqa: E402

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Threads, not processes, carry concurrency: a ?wait=true request mostly sleeps in a blocking Redis read.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
_settings = Settings()
threads = _settings.web_threads
# Gunicorn's own line per request, beside the app's (which has the route and job id), on request.
ACCESS_LOG = bool(os.environ.get("EXECUTOR_ACCESS_LOG"))
# Gunicorn's lines and the app's alike: text, or one JSON object per line (executor/logs.py).
logconfig_dict = logging_config(_settings.log_format, access_log=ACCESS_LOG)
lean_log_records()


class AccessLogger(gunicorn.glogging.Logger):  # type: ignore[misc]
    """Gunicorn's logger, building a request's access line only when `gunicorn.access` would print it.

    Gunicorn builds the line's fields (a dict of some 20 atoms, the time formatted) for every request
    as soon as any log configuration is given, ours included, and only then finds the logger's level
    (WARNING unless EXECUTOR_ACCESS_LOG) drops it: about 4 % of the web's CPU per poll
    (docs/benchmark.md, Polling clients).
    """

    @property
    def access_log_enabled(self) -> bool:
        return bool(super().access_log_enabled) and self.access_log.isEnabledFor(logging.INFO)


logger_class = AccessLogger
timeout = 60
graceful_timeout = 30
# The control socket lives at one path per user: two servers on a machine (make run beside the
# tests or the bench) would fight over it, and nothing here uses it.
control_socket_disable = True


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


def on_starting(server: Any) -> None:
    """Counts start from zero with the server: files left by an earlier one's processes are removed."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))


def child_exit(server: Any, worker: Any) -> None:
    """A web process that exited keeps its counts; prometheus-client is told it is gone."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
