"""Every override of RQ's worker internals, in one place: RQ's bookkeeping trimmed to what our jobs use.

Our jobs have no dependents, repeats, callbacks or per-job heartbeats, so a job costs two round
trips to Redis while jobs wait instead of RQ's eleven: the script that saves a result also claims
the next job (docs/benchmark.md). Checked against rq 3.0.0 (requirements.txt). An RQ upgrade must
re-read what these methods override and the private parts of RQ they touch:

- overridden: `heartbeat`, `check_for_suspension`, `set_state`, `dequeue_job_and_maintain_ttl`,
  `execute_job`, `prepare_execution`, `prepare_job_execution`, `handle_execution_ended`,
  `_save_success` (ours), `kill_horse`, `_finalize_success`;
- private attributes and methods used: `Job._result`, `Job._status`, `Job._handle_success`,
  `Worker._stopped_job_id`, `Worker._stop_requested`.

`tests/test_worker_bookkeeping.py` checks that what is written is what RQ's own methods write.
"""

import logging
import signal
import time
from typing import Any

from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from executor.jobs.liveness import execution_id
from executor.jobs.routing import language_of_job
from executor.jobs.statuses import CANCELED, INTERNAL_ERROR
from executor.metrics.figures import count_run
from executor.sandbox import kill_running_programs
from workers.claiming_queue import (
    CLAIMANT,
    FULL_LOOKS,
    IDLE_MARK_S,
    Claimant,
    claim_source,
    claimed_job,
    give_back,
)
from workers.redis_scripts import Finished, finish_if_owned, start_unless_canceled

# RQ's own worker key (for the dashboard and its bookkeeping) is renewed no more often than this.
RQ_HEARTBEAT_EVERY_S = 5.0
# `rq suspend` is noticed within this long; RQ asks Redis before every job.
SUSPENSION_CHECK_EVERY_S = 1.0
CUT_OFF_MESSAGE = (
    "WorkerCutOff: the worker lost Redis for longer than EXECUTOR_WORKER_LOST_AFTER_S while the job "
    "ran, so it stopped the program"
)
# A result saved for a job in one of these states was canceled while its program ran.
CANCELED_STATUSES = {JobStatus.CANCELED, JobStatus.STOPPED}

logger = logging.getLogger(__name__)


class CanceledBeforeStart(Exception):
    """The job claimed was canceled before it could start: it is dropped, not run."""


class TrimmedBookkeeping(SimpleWorker):
    """RQ's `SimpleWorker` writing only what our jobs need, and claiming the next job with each result."""

    # RQ logs a job's result lifespan as a third line per job; the configured TTL says it once for all.
    log_result_lifespan = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.suspension_checked_at = -SUSPENSION_CHECK_EVERY_S
        self.state_in_redis: str | None = None
        # The next job of the worker's queues and its queue, claimed with the last result; it runs
        # next, or goes back.
        self.claimed_ahead: tuple[Job, Queue] | None = None
        # Whether the last result's claim found no job and marked this worker idle: it waits first.
        self.marked_idle = False
        # Which idle set this worker marks itself in (`executor.jobs.routing.idle_group`).
        self.idle_group = ""
        # Whether the running job's program was killed because this worker was cut off from Redis.
        self.cut_off = False

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Renew RQ's worker key at most every few seconds, from the heartbeat thread and between jobs.

        RQ renews it up to four times per job, three commands each; the key lives two minutes and
        liveness is judged by our own heartbeat thread, which also renews this key while a job runs,
        so the rest were pure cost per job. A renewal with a timeout always goes through.
        """
        recent = (
            (now() - self.last_heartbeat).total_seconds() < RQ_HEARTBEAT_EVERY_S
            if self.last_heartbeat
            else False
        )
        if timeout is None and recent:
            return
        super().heartbeat(timeout, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        """Ask Redis whether `rq suspend` is in force at most once a second, not before every job."""
        if time.monotonic() - self.suspension_checked_at < SUSPENSION_CHECK_EVERY_S:
            return
        if self.claimed_ahead is not None and is_suspended(self.connection, self):
            self.give_back_claimed_job()  # not held while suspended, however long that lasts
        super().check_for_suspension(burst)
        self.suspension_checked_at = time.monotonic()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Write the state only when Redis does not hold it already, and not at all between a job and
        the one claimed with its result.

        RQ sets the same state several times per job. After a success the state was written with
        the result (see `_save_success`): idle, or left busy when the next job was claimed with it,
        which starts at once, so the idle and busy writes RQ makes in between would only flicker.
        """
        self._state = state
        if state == self.state_in_redis or (state == WorkerStatus.IDLE and self.claimed_ahead is not None):
            return
        super().set_state(state, pipeline)
        self.state_in_redis = state

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """The job claimed with the last result, if there is one; else RQ's dequeue, which waits."""
        if self.claimed_ahead is None:
            claimant = CLAIMANT.set(Claimant(self.name, self.idle_group, self.marked_idle))
            self.marked_idle = False
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            finally:
                CLAIMANT.reset(claimant)
        job, queue = self.claimed_ahead
        self.claimed_ahead = None
        job.redis_server_version = self.get_redis_server_version()
        self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)  # as RQ's
        return job, queue

    def give_back_claimed_job(self) -> None:
        """Put the job claimed ahead back at the head of its queue: this worker will not run it."""
        if self.claimed_ahead is not None:
            job, queue = self.claimed_ahead
            give_back(queue, job.id)
            self.claimed_ahead = None

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job, unless it was canceled after it was claimed: then it is dropped, never run."""
        try:
            super().execute_job(job, queue)
        except CanceledBeforeStart:
            self.log.info("Worker %s: job %s was canceled before it started", self.name, job.id)

    def prepare_execution(self, job: Job) -> Execution:
        """Mark the job started in one atomic step (RQ takes two round trips), unless it was canceled
        since it was claimed (CanceledBeforeStart).

        Of RQ's execution records only the started registry's entry is written (the dashboard lists
        running jobs from it): the execution's own hash, the job's index of its executions and the
        worker's are read by nothing of ours, and cost seven commands a job. Its id is derived from
        the worker's name (`execution_id`), so the lost-job sweep finds the entry without them. RQ's
        worker key is kept alive by the heartbeat thread (`heartbeat`), not renewed per job.
        """
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        intermediate = self.queue_named(job.origin).intermediate_queue_key
        execution = Execution(execution_id(self.name), job.id, self.connection, worker_name=self.name)
        with self.connection.pipeline(transaction=False) as writes:
            job.started_job_registry.add_execution(execution, pipeline=writes, ttl=heartbeat_ttl)
            self.set_state(WorkerStatus.BUSY, pipeline=writes)
            job.prepare_for_execution(self.name, pipeline=writes)
            writes.persist(job.key)
            writes.lrem(intermediate, 1, job.id)
            started = start_unless_canceled(
                self.connection, writes, job_key=job.key, intermediate_key=intermediate, job_id=job.id
            )
        if not started:
            self.state_in_redis = None  # the BUSY state was not written after all
            raise CanceledBeforeStart(job.id)
        self.executions[execution.id] = execution
        self.cut_off = False
        return execution

    def queue_named(self, name: str) -> Queue:
        """The worker's queue of this name: every job it runs was claimed from one of them."""
        return next(queue for queue in self.queues if queue.name == name)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Already done by `prepare_execution`, in the same script."""

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Note the end; RQ's extra heartbeat write on the job hash would be a round trip of its own."""
        job.ended_at = now()

    def _save_success(
        self, job: Job, execution: Execution, return_value: Any, expected_status: str
    ) -> Finished:
        """Save the result and mark the worker idle in Redis in one atomic step, if the job is still
        `expected_status` and this worker's, and claim the next job of its queues in the same step.

        These are the writes RQ's `handle_job_success` makes, less its WATCH on the job's dependents
        (ours never have any) and plus the idle state it writes in a round trip of its own. In memory
        the worker stays busy until RQ sets it idle after this: a SIGTERM arriving meanwhile then
        waits for the job to be settled instead of interrupting it (and failing a finished job).
        No job is claimed once a stop was asked for; one claimed before is given back on the way out.
        """
        assert job.started_at is not None and job.ended_at is not None
        job._result = return_value
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        claim_from = (
            None if self._stop_requested else claim_source(self.queues, self.job_class, self.idle_group)
        )
        with self.connection.pipeline(transaction=False) as writes:
            self.increment_successful_job_count(pipeline=writes)
            self.increment_total_working_time(job.ended_at - job.started_at, writes)
            job._handle_success(
                result_ttl,
                pipeline=writes,
                worker_name=self.name,
                execution_id=execution.id,
                execution_started_at=execution.created_at,
                execution_ended_at=job.ended_at,
            )
            writes.expire(job.key, result_ttl)  # RQ's cleanup, less its dependents' keys: ours have none
            job.started_job_registry.remove_execution(execution, pipeline=writes)
            self.executions.pop(execution.id, None)
            waited_s, ran_s = _timings(job)
            count_run(writes, language_of_job(job), return_value["status"], waited_s, ran_s)
            finished = finish_if_owned(
                self.connection,
                writes,
                job_key=job.key,
                status=expected_status,
                owner=self.name,
                claim_from=claim_from,
                full=claim_from is not None and FULL_LOOKS.due(),
                idle_ttl_s=IDLE_MARK_S,
                owner_key=self.key,
            )
        if finished.saved:
            self.state_in_redis = WorkerStatus.IDLE if finished.next_job is None else WorkerStatus.BUSY
            self.marked_idle = claim_from is not None and finished.next_job is None
        if finished.next_job is not None:
            next_job = claimed_job(finished.next_job, self.job_class, self.connection, self.serializer)
            if next_job is not None:
                self.claimed_ahead = (next_job, self.queue_named(next_job.origin))
        return finished

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """There is no work horse here: stopping the job means killing its program."""
        kill_running_programs()

    def _finalize_success(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        """Record the result, unless the job was settled elsewhere while its program ran.

        A canceled job is labeled canceled, whatever its program was doing when it died; a job
        settled as lost (failed, or handed to another worker) keeps that verdict. The check and the
        save are one step in Redis, so a cancel cannot slip in between. RQ's success callbacks,
        webhooks and `Retry` results are not handled: our jobs never have them.
        """
        self.handle_execution_ended(job, queue, 0)
        job._status = JobStatus.FINISHED
        if self._stopped_job_id == job.id:
            return_value = _as_canceled(return_value)
        elif self.cut_off:
            return_value = {**return_value, "status": INTERNAL_ERROR, "message": CUT_OFF_MESSAGE}
        found = self._save_success(job, execution, return_value, JobStatus.STARTED)
        if not found.saved and found.owner == self.name and found.status in CANCELED_STATUSES:
            canceled = _as_canceled(return_value)
            found = self._save_success(job, execution, canceled, found.status)
        # Finished and ours but not saved by this call: an earlier call saved it and its reply was lost
        # to a dropped connection, so the call was retried (see OUTAGE_RETRY).
        if found.saved or (found.owner == self.name and found.status == JobStatus.FINISHED):
            _log_finished(job, return_value)
        else:
            self.log.warning(
                "job %s was settled as %s while it ran here; dropping its result", job.id, found.status
            )


def _timings(job: Job) -> tuple[float, float]:
    """Seconds the job waited in its queue, and seconds it ran."""
    assert job.enqueued_at is not None and job.started_at is not None and job.ended_at is not None
    return (job.started_at - job.enqueued_at).total_seconds(), (job.ended_at - job.started_at).total_seconds()


def _log_finished(job: Job, result: dict[str, Any]) -> None:
    """The job's one log line: what it was and how it went, never its code, input or output."""
    waited_s, ran_s = _timings(job)
    language, status = language_of_job(job), result["status"]
    logger.info(
        "job %s (%s) %s: waited %.3f s, ran %.3f s, cpu %s s, memory %s kB",
        job.id,
        language,
        status,
        waited_s,
        ran_s,
        result.get("cpu_time"),
        result.get("memory_kb"),
        extra={
            "job_id": job.id,
            "language": language,
            "status": status,
            "queue_wait_s": round(waited_s, 6),
            "run_s": round(ran_s, 6),
            "cpu_time_s": result.get("cpu_time"),
            "memory_kb": result.get("memory_kb"),
        },
    )


def _as_canceled(result: dict[str, Any]) -> dict[str, Any]:
    """A runner's result relabeled for a job canceled while its program ran."""
    return {**result, "status": CANCELED, "message": "canceled before it finished"}
