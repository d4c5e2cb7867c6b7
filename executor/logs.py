"""How every process of the service logs: one line per event on stdout, as text (the default, for
people) or as JSON (`EXECUTOR_LOG_FORMAT=json`, for log pipelines), with the event's fields.

The JSON lines come from python-json-logger: the standard library's logging with a JSON formatter, so
every logger (ours, RQ's, gunicorn's) is formatted alike. Fields given as `extra=` become keys of the
JSON object; the text form says the same in its message. No line carries a program's code, input or
output, or a setting's value (`tests/test_logs.py`).
"""

import logging
import logging.config
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "{asctime}{levelname}{name}{message}"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def logging_config(log_format: str, access_log: bool = False) -> dict[str, Any]:
    """A `logging.config.dictConfig` for `log_format` ("text" or "json"): the root logger at INFO on
    stdout, and gunicorn's loggers through it (gunicorn takes this dict as its `logconfig_dict`).
    Gunicorn logs every request once it has such a dict; its access lines pass only with
    `access_log`, since the app logs each request itself (executor/web/request_log.py)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "fmt": JSON_FIELDS, "style": "{", "rename_fields": JSON_NAMES}
        if log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"event": formatter},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "event", "stream": "ext://sys.stdout"}
        },
        "root": {"level": "INFO", "handlers": ["stdout"]},
        # Theirs through ours: gunicorn's, and RQ's (whose CLI adds no handler once the root has one).
        "loggers": {
            **{
                name: {"level": "INFO", "handlers": [], "propagate": True}
                for name in ("gunicorn.error", "rq.worker", "rq.job")
            },
            "gunicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
        },
    }


def lean_log_records() -> None:
    """Stop filling in the fields of a log record that no line of ours prints: the calling source
    line (a walk up the stack per record), the thread's and the process's names. The logging HOWTO's
    "Optimization" section names these switches. The web process logs a line per request, so this is
    a few microseconds of every poll; `TEXT_FORMAT` and `JSON_FIELDS` use none of them."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(log_format: str) -> None:
    """Log as `logging_config` says, replacing what was set before (RQ then adds no handler of its own),
    Python's warnings included, which would otherwise be bare lines on stderr."""
    logging.config.dictConfig(logging_config(log_format))
    logging.captureWarnings(True)
