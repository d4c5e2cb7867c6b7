"""`python -m executor.callbacks.notifier` (the Procfile's `notifier`): delivers callbacks as jobs end.

A process of its own, so a delivery never waits for a worker busy with a program. Each turn it
makes due the callbacks of jobs and batches that have ended, sends those due (each attempt signed,
its outcome recorded, a failure retried after 1, 4, 16, 64 and 256 s times
EXECUTOR_WEBHOOK_RETRY_BASE_S, then marked failed), and waits on the pending jobs' result streams
and the registrations' bell for at most `TURN_S`: a job's end is noticed at once, and one that
writes no result (a queued job canceled) within a turn. Any number may run: due callbacks are
claimed, so each attempt is made once.
"""

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from executor.callbacks import records
from executor.callbacks.addresses import allowed_networks
from executor.callbacks.records import Callback
from executor.callbacks.sender import send
from executor.callbacks.signing import SIGNATURE_HEADER, signature
from executor.jobs.batches import Batches, BatchNotFound, batch_json
from executor.jobs.connection import connect
from executor.jobs.queue import ANY_OWNER, JobNotFound, JobQueue, result_stream
from executor.jobs.views import view_json
from executor.languages import build_languages
from executor.logs import configure_logging
from executor.settings import Settings

logger = logging.getLogger(__name__)

TURN_S = 0.25
ATTEMPTS = 6  # the first, and five retries
LEASE_S = 60.0  # longer than an attempt: a claimed callback is retried only if its notifier died
CLAIM_AT_ONCE = 20


class Notifier:
    """Notices ends and delivers callbacks, one turn at a time."""

    def __init__(self, settings: Settings, connection: Redis) -> None:
        self.settings = settings
        self.connection = connection
        self.jobs = JobQueue(connection, settings, build_languages(settings.python, settings.languages))
        self.batches = Batches(self.jobs)
        self.allowed = allowed_networks(settings.webhook_allow_networks)
        self.bell_seen = "0-0"

    def turn(self) -> None:
        """One turn: schedule what ended, send what is due, then wait a little for more."""
        watched = self.schedule_ended()
        for callback in records.claim_due(self.connection, LEASE_S, CLAIM_AT_ONCE):
            self.deliver(callback)
        self.wait(watched)

    def schedule_ended(self) -> list[str]:
        """Make due the callbacks whose job or batch has ended; the ids of the jobs still running."""
        job_ids = sorted(
            records.as_text(job_id) for job_id in self.connection.smembers(records.PENDING["job"])
        )
        batch_ids = sorted(
            records.as_text(batch) for batch in self.connection.smembers(records.PENDING["batch"])
        )
        members = {batch_id: self._batch_jobs(batch_id) for batch_id in batch_ids}
        # Every job watched, read in one round trip: which have not ended.
        watched = sorted({*job_ids, *(job_id for ids in members.values() for job_id in ids)})
        running = set(self.jobs.running_among(watched))
        for job_id in job_ids:
            if job_id not in running:
                records.schedule(self.connection, "job", job_id)
        for batch_id, ids in members.items():
            if running.isdisjoint(ids):
                records.schedule(self.connection, "batch", batch_id)
        return sorted(running)

    def deliver(self, callback: Callback) -> None:
        """One attempt of `callback`, signed, and its outcome recorded."""
        kind, subject_id = callback.subject.split(":", 1)
        try:
            body = self._body(kind, subject_id).encode()
        except (JobNotFound, BatchNotFound) as gone:
            records.record(
                self.connection, callback, state="failed", status=None, error=str(gone), retry_in_s=None
            )
            return
        headers = {
            "X-Executor-Event": callback.event,
            "X-Executor-Delivery": callback.delivery_id,
            SIGNATURE_HEADER: signature(self.settings.webhook_secret, body, int(time.time())),
        }
        attempt = send(callback.url, body, headers, self.allowed)
        attempts = callback.attempts + 1
        if attempt.delivered:
            state, retry_in = "delivered", None
        elif attempt.retry and attempts < ATTEMPTS:
            state, retry_in = "pending", self.settings.webhook_retry_base_s * 4 ** (attempts - 1)
        else:
            state, retry_in = "failed", None
        logger.info(
            "callback %s to %s: attempt %d, %s %s",
            callback.subject,
            callback.url,
            attempts,
            state,
            attempt.error,
        )
        records.record(
            self.connection,
            callback,
            state=state,
            status=attempt.status,
            error=attempt.error,
            retry_in_s=retry_in,
        )

    def wait(self, running: list[str]) -> None:
        """Until a running job writes its result, a callback is registered, or a turn has passed."""
        streams: dict[str, str] = {records.BELL: self.bell_seen}
        streams |= {result_stream(job_id): "0-0" for job_id in running}
        reply: Any = self.connection.xread(streams, block=int(TURN_S * 1000))  # type: ignore[arg-type]
        for stream, entries in reply or []:
            if records.as_text(stream) == records.BELL and entries:
                self.bell_seen = records.as_text(entries[-1][0])

    def _body(self, kind: str, subject_id: str) -> str:
        if kind == "job":
            return view_json(self.jobs.view(self.jobs.find(subject_id, ANY_OWNER)))
        return batch_json(self.batches.view(self.batches.find(subject_id, ANY_OWNER), ANY_OWNER))

    def _batch_jobs(self, batch_id: str) -> list[str]:
        """A batch's jobs; none once its record has expired (its callback then fails: nothing to send)."""
        try:
            return self.batches.find(batch_id, ANY_OWNER).job_ids
        except BatchNotFound:
            return []


def main() -> int:
    """Deliver until SIGTERM or SIGINT; a Redis outage is waited out."""
    settings = Settings()
    configure_logging(settings.log_format)
    notifier = Notifier(settings, connect(settings))
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("notifier delivering callbacks")
    while not stopping.is_set():
        try:
            notifier.turn()
        except RedisError as error:
            logger.warning("Redis is unavailable (%s); trying again in a second", error)
            stopping.wait(1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
