"""Batches (API.md 1.1): many jobs submitted in one call, all or none, and read, waited for and
canceled together.

A batch is a record in Redis (its owner and its jobs' ids and refs), written by the same script that
enqueues its jobs (`guarded_writes.py`), so a batch exists exactly when all its jobs do. Each job is
also an ordinary job, whose view carries its `batch_id` and `ref`. The record lives until
`result_ttl` after a view first finds every job ended (its jobs' results live as long), and at most
`BATCH_TTL_S`.
"""

import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field
from redis.client import Pipeline
from rq.job import Job
from rq.utils import as_text

from executor.callbacks import records as callbacks
from executor.jobs.queue import ANY_OWNER, JobAlreadyEnded, JobNotFound, JobQueue, Snapshot, result_stream
from executor.jobs.request import ExecuteRequest
from executor.jobs.statuses import TERMINAL_STATUSES
from executor.jobs.views import CallbackView, JobView, view_json

BATCH_PREFIX = "executor:batch:"
BATCH_TTL_S = 7 * 24 * 3600
# The longest `?wait=true` holds a batch's answer (API.md 1.1).
BATCH_WAIT_S = 60.0


class BatchNotFound(Exception):
    """No batch has this id for this client, or it has expired."""


@dataclass(frozen=True)
class Batch:
    """A batch as its record holds it."""

    batch_id: str
    job_ids: list[str]
    refs: list[str | None]
    has_callback: bool = False


class BatchView(BaseModel):
    """A batch as clients see it: its counts, and each job's view in submission order."""

    batch_id: str
    status: str
    total: int
    completed: int
    counts: dict[str, int]
    callback: CallbackView | None = Field(None, exclude_if=lambda value: value is None)
    jobs: list[JobView]


class Batches:
    """The batches, on top of the job queue."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs
        self.connection = jobs.connection

    def submit(
        self,
        requests: Sequence[tuple[ExecuteRequest, str | None]],
        owner: str | None,
        callback_url: str | None = None,
    ) -> Batch:
        """Queue every job of the batch (each request with its ref) and the batch's record (and
        callback), or none."""
        batch_id = str(uuid.uuid4())
        refs = [ref for _, ref in requests]
        entries = [(request, {"batch_id": batch_id, "ref": ref}) for request, ref in requests]

        def record(writes: Pipeline, jobs: list[Job]) -> None:
            key = BATCH_PREFIX + batch_id
            job_ids = json.dumps([job.id for job in jobs])
            writes.hset(
                key,
                mapping={
                    "owner": owner or "",
                    "jobs": job_ids,
                    "refs": json.dumps(refs),
                    "callback": callback_url or "",
                },
            )
            writes.expire(key, BATCH_TTL_S)
            if callback_url:
                callbacks.register(writes, "batch", batch_id, callback_url)

        jobs = self.jobs.submit_many(entries, owner, record=record)
        return Batch(batch_id, [job.id for job in jobs], refs, bool(callback_url))

    def find(self, batch_id: str, owner: str | None) -> Batch:
        """The client's batch with this id; another client's is as absent as one that never existed."""
        fields = self.connection.hgetall(BATCH_PREFIX + batch_id)
        if not fields or (owner is not ANY_OWNER and as_text(fields[b"owner"]) != (owner or "")):
            raise BatchNotFound(f"no batch {batch_id}")
        has_callback = bool(fields.get(b"callback"))
        return Batch(batch_id, json.loads(fields[b"jobs"]), json.loads(fields[b"refs"]), has_callback)

    def view(self, batch: Batch, owner: str | None) -> BatchView:
        """The batch's counts and its jobs' views, read in one round trip (and a settling read for a
        job whose worker was lost, as a poll of it would)."""
        return self._view_of(batch, self._snapshots(batch, owner))

    def wait(self, batch: Batch, owner: str | None) -> BatchView:
        """The batch once every job has ended, or as it is after BATCH_WAIT_S: a blocking read of the
        unfinished jobs' result streams wakes as soon as one ends, never a sleep."""
        deadline = time.monotonic() + BATCH_WAIT_S
        while True:
            snapshots = self._snapshots(batch, owner)
            view = self._view_of(batch, snapshots)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if view.status == "completed" or remaining_ms <= 0:
                return view
            unfinished = [job.job_id for job in view.jobs if job.status not in TERMINAL_STATUSES]
            streams = {result_stream(job_id): "0-0" for job_id in unfinished}
            self.connection.xread(streams, block=max(1, min(remaining_ms, self.jobs.settings.wait_slice_ms)))  # type: ignore[arg-type]

    def cancel(self, batch: Batch, owner: str | None) -> BatchView:
        """Cancel every job of the batch that has not ended, then view it."""
        for snapshot in self._snapshots(batch, owner):
            try:
                self.jobs.cancel(snapshot)
            except JobAlreadyEnded:
                continue
        return self.view(batch, owner)

    def _snapshots(self, batch: Batch, owner: str | None) -> list[Snapshot]:
        try:
            return self.jobs.find_many(batch.job_ids, owner)
        except JobNotFound as expired:
            raise BatchNotFound(f"batch {batch.batch_id} has expired") from expired

    def _view_of(self, batch: Batch, snapshots: list[Snapshot]) -> BatchView:
        views = [self.jobs.view(snapshot) for snapshot in snapshots]
        counts = Counter(view.status for view in views)
        completed = sum(count for status, count in counts.items() if status in TERMINAL_STATUSES)
        status = "completed" if completed == len(views) else "running"
        if status == "completed":  # the record now lives as long as its jobs' results
            self.connection.expire(BATCH_PREFIX + batch.batch_id, self.jobs.settings.result_ttl, lt=True)
        return BatchView(
            batch_id=batch.batch_id,
            status=status,
            total=len(views),
            completed=completed,
            counts=dict(sorted(counts.items())),
            callback=self.jobs.callback_of("batch", batch.batch_id) if batch.has_callback else None,
            jobs=views,
        )


def batch_json(view: BatchView) -> str:
    """A batch view's JSON, each job as `view_json` writes one (and never parsed again: the jobs'
    output may be megabytes): what the API answers, and what a callback sends."""
    head = view.model_dump_json(exclude={"jobs"})
    jobs = ",".join(view_json(job) for job in view.jobs)
    return f'{head[:-1]}, "jobs": [{jobs}]}}'
