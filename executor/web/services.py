"""What the web process shares between requests, built once by `create_app`."""

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app
from redis import Redis

from executor.jobs.batches import Batches
from executor.jobs.queue import JobQueue
from executor.jobs.request import BatchRequest, ExecuteRequest
from executor.languages import Language
from executor.settings import Settings
from executor.web.events import StreamGate


@dataclass(frozen=True)
class Services:
    """The settings and the clients every view needs."""

    settings: Settings
    redis: Redis
    # Reads live streams with a block of READ_BLOCK_MS (executor/web/events.py).
    live_reader: Redis
    stream_gate: StreamGate
    jobs: JobQueue
    batches: Batches
    languages: Mapping[str, Language]
    request_model: type[ExecuteRequest]
    batch_model: type[BatchRequest]


def services() -> Services:
    """The services of the app handling the current request."""
    found: Services = current_app.extensions["executor"]
    return found
