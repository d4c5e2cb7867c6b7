"""Jobs on the RQ queue as the web process sees them: submit, read, wait for and cancel them.

A job waits in its language's queue (`routing.py`). A read is one round trip for what a view needs
(`find`), the view is built by `views.py`, a repeat poll's hold comes from `pacing.py`, a started job
whose worker died is settled on the way by `liveness.py`, and a waiting one whose language no worker
runs any longer by `routing.py`.
"""

import contextlib
import copy
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis, RedisError
from redis.client import Pipeline
from redis.exceptions import NoScriptError, WatchError
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.results import Result
from rq.utils import as_text, str_to_date, utcformat

from executor.callbacks import records as callbacks
from executor.jobs.announcements import OFFERED
from executor.jobs.guarded_writes import ENQUEUE_IF_ROOM, encoded_commands
from executor.jobs.liveness import HEARTBEAT_PREFIX, settle_if_lost
from executor.jobs.pacing import HOLD_FUNCTION, POLL_DUE_FIELD
from executor.jobs.request import RUN_JOB, ExecuteRequest
from executor.jobs.routing import (
    fail_if_unserved,
    idle_groups,
    idle_workers,
    language_of_job,
    language_queue,
    waiting_queues,
)
from executor.jobs.serializer import JobSerializer
from executor.jobs.statuses import CANCELED, TERMINAL_STATUSES
from executor.jobs.views import UNFINISHED_STATUSES, WAITING_STATUSES, CallbackView, JobView, view_of
from executor.jobs.wakes import now_ms
from executor.judging.checkers import ProgramChecker
from executor.languages import Language
from executor.metrics.figures import count_finished, count_submitted
from executor.settings import Settings

# Room for sandbox set-up and result collection: RQ only ever kills a runner that hung, never a program.
RUNNER_MARGIN_S = 15
# A run's set-up and clean-up (its cgroup and disk), generously: a job of 100 cases has 100.
RUN_SETUP_S = 0.5
WAIT_MARGIN_S = 2.0
# A poll asks for the queue position before it knows the job is queued: that guess scans at most
# this much of the queue, so polls of started or ended jobs stay cheap however deep the queue is.
GUESSED_POSITION_SCAN = 1000
# A queued job's language is checked to be still served (routing.py) once it has waited this long: it
# was when it was queued, and the workers' sweeps check every job anyway while any worker lives.
SERVED_CHECK_AFTER_S = 10.0
# What a read of a job needs, in one script whose commands depend on the job's status: its hash; for
# a waiting job its place in its queue and, once it has waited SERVED_CHECK_AFTER_S, whether its
# language is still served; for a started one, once it has run longer than the lost window (it
# cannot be lost before), whether its worker still beats; for an ended one its newest result. A paced
# read of an unfinished job also learns how long it is held (`executor.jobs.pacing`). So a poll is 3
# commands (the call, the hash, and the place or the pace or the result), and 4 for a waiting job.
# KEYS: the job's hash, OFFERED, the job's result stream. ARGV: the job id, RQ's queue key prefix, the
# queues' base name, how far to scan the queue (0: all), the web's clock and the pace (ms; pace 0:
# not paced), the times (RQ's format, which sorts as text) before which a waiting job was enqueued
# for its served check and a started one started for its liveness check, the heartbeat key prefix,
# and 1 when the caller reads the newest result itself (a held poll's blocking read has it), else 0.
# Answers {} for no job, else {hash, place, served (1 or 0), newest result, alive (1 or 0), held ms}.
_SNAPSHOT = (
    HOLD_FUNCTION
    + """
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
    return {}
end
local job = {}
for at = 1, #flat, 2 do
    job[flat[at]] = flat[at + 1]
end
local waiting = {"""
    + ", ".join(f"['{status.value}'] = true" for status in sorted(WAITING_STATUSES))
    + """}
local status, now, pace = job['status'], tonumber(ARGV[5]), tonumber(ARGV[6])
local place, served, newest, alive, held = false, 1, false, 1, 0
if waiting[status] then
    local origin = job['origin'] or ''
    place = redis.call('LPOS', ARGV[2] .. origin, ARGV[1], 'MAXLEN', ARGV[4])
    local base = ARGV[3] .. '.'
    if (job['enqueued_at'] or '') < ARGV[7] and string.sub(origin, 1, #base) == base then
        local offered_until = redis.call('ZSCORE', KEYS[2], string.sub(origin, #base + 1))
        served = (offered_until and tonumber(offered_until) > now) and 1 or 0
    end
elseif status == 'started' then
    if (job['started_at'] or '') < ARGV[8] and job['worker_name'] then
        alive = redis.call('EXISTS', ARGV[9] .. job['worker_name'])
    end
elseif ARGV[10] ~= '1' then
    newest = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
end
if pace > 0 and not newest then
    held = hold_poll(KEYS[1], job['"""
    + POLL_DUE_FIELD
    + """'], now, pace)
end
return {flat, place, served, newest, alive, held}
"""
)


@dataclass(frozen=True)
class Snapshot:
    """A job as one poll read it: its hash, its place in the queue and its newest result, and how
    long a poll of it is to be held (see `executor.jobs.pacing`)."""

    job: Job
    queue_position: int | None
    result: Result | None
    hold_s: float = 0.0
    # False for a waiting job whose language no worker announces any longer.
    served: bool = True
    # False for a started job whose worker is known to beat: no need to ask whether it was lost.
    maybe_lost: bool = True


# The owner the notifier reads every job as: it delivers to whoever submitted.
ANY_OWNER = "any owner: the service itself"


class JobNotFound(Exception):
    """No job has this id for this client, or it has expired."""


class JobAlreadyEnded(Exception):
    """The job is terminal, so it cannot be canceled."""


class LanguageNotOffered(Exception):
    """No live worker has announced the job's language (executor.jobs.announcements)."""

    def __init__(self, language: str) -> None:
        super().__init__(f"no worker offers the language {language!r} now")
        self.language = language


class QueueFull(Exception):
    """The queues hold as many jobs as the operator allows."""


def owner_of(api_key: str | None) -> str | None:
    """A digest of the client's key, so Redis never holds the key itself."""
    if api_key is None:
        return None
    return hashlib.sha256(api_key.encode()).hexdigest()


class JobQueue:
    """The execution queue as the web process sees it."""

    def __init__(self, connection: Redis, settings: Settings, languages: Mapping[str, Language]) -> None:
        self.connection = connection
        self.settings = settings
        self.compiled = {key for key, language in languages.items() if language.compiled}
        self._snapshot_script = connection.register_script(_SNAPSHOT)
        self._blank = vars(Job(connection=connection, serializer=JobSerializer))
        self._blank_containers = [
            name for name, value in self._blank.items() if isinstance(value, list | dict | set)
        ]
        self.queues = {
            language: Queue(
                language_queue(settings.queue_name, language), connection=connection, serializer=JobSerializer
            )
            for language in languages
        }

    def submit(self, request: ExecuteRequest, owner: str | None) -> Job:
        """Put a program on the queue unless it is full, checked and done in one atomic step."""
        (job,) = self.submit_many([(request, {})], owner)
        return job

    def submit_many(
        self,
        entries: Sequence[tuple[ExecuteRequest, dict[str, Any]]],
        owner: str | None,
        record: Callable[[Pipeline, list[Job]], None] | None = None,
    ) -> list[Job]:
        """Put programs on the queues, each with its extra `meta`, all or none, in one atomic step and
        one round trip; `record` adds writes of its own to that step, knowing the jobs (a batch's
        record)."""
        with self.connection.pipeline(transaction=False) as pipeline:
            jobs = self._enqueue_if_room(entries, owner, pipeline, wake_waiter=False, record=record)
            (answer,) = pipeline.execute()
        _refuse_unless(answer, self.settings.max_queue_depth, len(entries))
        return jobs

    def submit_and_wait(self, request: ExecuteRequest, owner: str | None) -> tuple[Job, JobView | None]:
        """Put a program on the queue and wait for it as `wait` does; the enqueue and the first wait
        share one round trip, since a waiter has nothing to do in between. No view (the caller answers
        202) when the job was queued but Redis failed while it was waited for."""
        deadline = _wait_deadline(request.timeout * _runs(request))
        with self.connection.pipeline(transaction=False) as pipeline:
            (job,) = self._enqueue_if_room([(request, {})], owner, pipeline, wake_waiter=True)
            _read_result(pipeline, job, deadline, self.settings.wait_slice_ms)
            try:
                answer, reply, fields = pipeline.execute()
            except RedisError:
                if not self._exists(job):
                    raise
                return job, None
        _refuse_unless(answer, self.settings.max_queue_depth, 1)
        job = _restored(job, fields)
        try:
            return job, self._wait_from(job, self._unless_waiting(job, reply), deadline)
        except RedisError:
            return job, None

    def _exists(self, job: Job) -> bool:
        """Whether a job whose submission lost its answer was queued: then its id is the answer (202),
        never an error that would make its client submit it twice. Unknown (Redis away): the error."""
        return bool(self.connection.exists(job.key))

    def find(self, job_id: str, owner: str | None, *, paced: bool = False) -> Snapshot:
        """The client's job with this id, read with what its view needs in one round trip.

        A poll needs the job's hash and, depending on its status, its place in the queue or its
        newest result: asking for all three at once costs less than a second round trip. A `paced`
        read (a plain poll) also learns in that round trip how long its answer is to be held.
        """
        if not _is_uuid(job_id):
            raise JobNotFound(f"no job {job_id}")  # every id we hand out is a UUID
        pace_ms = self.settings.poll_pace_ms if paced else 0
        return self._snapshot(job_id, owner, self._read_snapshot(self.connection, job_id, pace_ms=pace_ms))

    def find_many(self, job_ids: Sequence[str], owner: str | None) -> list[Snapshot]:
        """The client's jobs with these ids, as `find` reads one, all in one round trip
        (`_queue_snapshot`), and once more after loading the script where Redis has lost it (a
        restart)."""
        for attempt in range(2):
            with self.connection.pipeline(transaction=False) as pipeline:
                for job_id in job_ids:
                    self._queue_snapshot(pipeline, job_id)
                try:
                    replies = pipeline.execute()
                    break
                except NoScriptError:
                    if attempt:
                        raise
                    self.connection.script_load(_SNAPSHOT)
        return [self._snapshot(job_id, owner, reply) for job_id, reply in zip(job_ids, replies, strict=True)]

    def view(self, snapshot: Snapshot) -> JobView:
        """The job as the client sees it."""
        if not snapshot.served:  # the view's own read of the place settles it
            return self._view_of(snapshot.job, snapshot.result)
        return self._view_of(
            snapshot.job, snapshot.result, snapshot.queue_position, maybe_lost=snapshot.maybe_lost
        )

    def paced_view(self, snapshot: Snapshot) -> JobView:
        """The job as a poll sees it: at once, or, for a repeat poll of an unfinished job that came
        too soon, once its hold has passed or the job has ended, whichever is first (see
        `executor.jobs.pacing`). A held poll builds its view only from what it reads after the hold
        (a lost worker is noticed then), not also from what it read before."""
        if snapshot.hold_s <= 0 or snapshot.job.get_status(refresh=False) not in UNFINISHED_STATUSES:
            return self.view(snapshot)
        return self._held_view(snapshot.job.id, time.monotonic() + snapshot.hold_s)

    def _held_view(self, job_id: str, deadline: float) -> JobView:
        """The view of a held poll: a blocking read of the job's result stream until the deadline,
        and in the same round trip, run by Redis as soon as that read returns, the snapshot script
        (unpaced), which reads whatever the view then needs: the job's place in the queue while it
        waits, its worker's heartbeat when it has run long, its hash. So a poll held to the end of its
        pace is 2 round trips, not 3 or 4 (`tests/test_poll_cost.py`). The script leaves out the
        newest result, which the blocking read has just returned. The owner was checked by the poll's
        first read."""
        while True:
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            with self.connection.pipeline(transaction=False) as pipeline:
                pipeline.xread(
                    {result_stream(job_id): "0-0"}, block=min(remaining_ms, self.settings.wait_slice_ms)
                )
                # The poll's first read ran the script a moment ago, so it is loaded.
                self._queue_snapshot(pipeline, job_id, result_read=True)
                try:
                    reply, read = pipeline.execute()
                except NoScriptError:  # Redis lost its scripts since (a restart): read it unpiped
                    reply, read = None, self._read_snapshot(self.connection, job_id)
            snapshot = self._snapshot(job_id, ANY_OWNER, read)
            if reply:
                snapshot = replace(snapshot, result=_latest_result(snapshot.job, reply))
            if (
                snapshot.job.get_status(refresh=False) not in UNFINISHED_STATUSES
                or time.monotonic() >= deadline
            ):
                return self.view(snapshot)

    def wait(self, snapshot: Snapshot) -> JobView:
        """The job once terminal, or as it is when its timeout plus a margin has passed (API.md: a
        compiled job's compile shares that margin, so a client's wait is bounded by its own timeout).

        A blocking read of the job's result stream returns as soon as the worker writes the result,
        and its reply is the result itself: no polling, and no second read of it. The worker writes
        the result and the job's status in one step, so the hash read after it agrees.
        """
        job = snapshot.job
        deadline = _wait_deadline(job.meta["timeout"])
        view = None if job.get_status(refresh=False) in WAITING_STATUSES else self.view(snapshot)
        return self._wait_from(job, view, deadline)

    def cancel(self, snapshot: Snapshot) -> JobView:
        """Stop a job: a queued one never runs, a started one's program is killed."""
        job = snapshot.job
        if self.view(snapshot).status in TERMINAL_STATUSES:
            raise JobAlreadyEnded(f"job {job.id} has already ended")
        if self._mark_canceled(job) == JobStatus.STARTED:
            # If it ended since, the worker still relabels it canceled.
            with contextlib.suppress(InvalidJobOperation):
                send_stop_job_command(self.connection, job.id, serializer=JobSerializer)
        return self._view_of(job)

    def _mark_canceled(self, job: Job) -> str | None:
        """Mark the job canceled and return the status it had; JobAlreadyEnded if it had ended.

        The status is read again here, not taken from the poll's snapshot: a worker may have
        started the job since. Read and write are one transaction watched on the job's hash, so a
        start landing between them makes it read again. A job that had not started never runs
        (the worker's start script drops a canceled job) and is counted canceled here; a started
        one is counted by its worker, when it saves the result relabeled canceled. A job whose hash
        has expired since the poll read it (RQ's InvalidJobOperation) has ended too.
        """
        with self.connection.pipeline() as transaction:
            while True:
                try:
                    transaction.watch(job.key)
                    status = job.get_status(refresh=True)
                    if status not in UNFINISHED_STATUSES:
                        raise JobAlreadyEnded(f"job {job.id} has already ended")
                    transaction.multi()
                    job.cancel(pipeline=transaction)
                    if status != JobStatus.STARTED:
                        count_finished(transaction, language_of_job(job), CANCELED)
                    transaction.execute()
                    return status
                except WatchError:
                    continue
                except InvalidJobOperation as error:
                    raise JobAlreadyEnded(f"job {job.id} has already ended") from error

    def running_among(self, job_ids: Sequence[str]) -> list[str]:
        """The jobs of `job_ids` that have not ended (an expired one has), read in one round trip."""
        with self.connection.pipeline(transaction=False) as pipeline:
            for job_id in job_ids:
                pipeline.hget(Job.key_for(job_id), "status")
            statuses = pipeline.execute()
        return [
            job_id
            for job_id, status in zip(job_ids, statuses, strict=True)
            if status is not None and as_text(status) in UNFINISHED_STATUSES
        ]

    def waiting_count(self) -> int:
        """Jobs waiting for a worker, in every language's queue."""
        with self.connection.pipeline(transaction=False) as pipeline:
            for queue in self.queues.values():
                pipeline.llen(queue.key)
            return sum(pipeline.execute())

    def _enqueue_if_room(
        self,
        entries: Sequence[tuple[ExecuteRequest, dict[str, Any]]],
        owner: str | None,
        pipeline: Pipeline,
        *,
        wake_waiter: bool,
        record: Callable[[Pipeline, list[Job]], None] | None = None,
    ) -> list[Job]:
        """Queue on `pipeline` the script that enqueues the jobs unless the queues lack room for them
        all (see `executor.jobs.guarded_writes`); with `wake_waiter`, a refusal also ends the read of
        the (single) job's result that follows it in the pipeline."""
        with self.connection.pipeline(transaction=False) as writes:
            jobs = [self._enqueue_call(request, owner, meta, writes) for request, meta in entries]
            for job, (request, _) in zip(jobs, entries, strict=True):
                if request.callback_url:
                    callbacks.register(writes, "job", job.id, request.callback_url)
            if record is not None:
                record(writes, jobs)
            count_submitted(writes, [request.language for request, _ in entries])
            commands = encoded_commands(writes, leave_out=_registers_queue)
        counts = Counter(request.language for request, _ in entries)
        languages = sorted(counts)
        first = jobs[0]
        base_queue = self.queues[languages[0]].name  # one base: every queue's
        keys = [
            OFFERED,
            result_stream(first.id),
            first.key,
            waiting_queues(base_queue),
            idle_workers(base_queue),
        ]
        arguments = [
            self.settings.max_queue_depth,
            len(jobs),
            int(wake_waiter),
            now_ms(),
            len(languages),
            *(
                word
                for language in languages
                for word in (
                    language,
                    self.queues[language].key,
                    counts[language],
                    idle_groups(self.queues[language].name),
                )
            ),
            *commands,
        ]
        pipeline.eval(ENQUEUE_IF_ROOM, len(keys), *keys, *arguments)
        return jobs

    def _enqueue_call(
        self, request: ExecuteRequest, owner: str | None, meta: dict[str, Any], writes: Pipeline
    ) -> Job:
        """RQ's enqueue of one job, queued on `writes` (never executed itself)."""
        return self.queues[request.language].enqueue_call(
            RUN_JOB,
            # The worker has no use for the callback, which the notifier delivers.
            kwargs={"request": request.model_dump(exclude={"callback_url"})},
            job_id=str(uuid.uuid4()),
            timeout=int(self._longest_s(request)) + RUNNER_MARGIN_S,
            result_ttl=self.settings.result_ttl,
            failure_ttl=self.settings.result_ttl,
            description=f"{request.language} program, {len(request.code.encode())} bytes",
            # What a waiter allows for: every case's timeout.
            meta={
                "owner": owner,
                "language": request.language,
                "timeout": request.timeout * _runs(request),
                "callback_url": request.callback_url,
                **meta,
            },
            # One more run if its worker is lost (or the runner fails), when the operator wants it.
            retry=Retry(max=1) if self.settings.retry_lost_jobs else None,
            pipeline=writes,
        )

    def _longest_s(self, request: ExecuteRequest) -> float:
        """The longest the job's programs may take: each case's run (and its checker program's), each
        compile, and the sandbox's set-up of each. RQ's timeout allows for it, so RQ never kills a
        runner whose programs all keep to their limits."""
        runs = _runs(request)
        checker = request.checker
        programs = [request.language, *([checker.language] if isinstance(checker, ProgramChecker) else [])]
        compile_s = sum(self.settings.compile_timeout for language in programs if language in self.compiled)
        return runs * len(programs) * (request.timeout + RUN_SETUP_S) + compile_s

    def _wait_from(self, job: Job, view: JobView | None, deadline: float) -> JobView:
        """Read the job's result stream until the view is terminal or the deadline has passed."""
        while view is None or view.status not in TERMINAL_STATUSES:
            if time.monotonic() >= deadline:
                return view or self._view_of(job)  # as last read: still waiting
            with self.connection.pipeline(transaction=False) as pipeline:
                _read_result(pipeline, job, deadline, self.settings.wait_slice_ms)
                reply, fields = pipeline.execute()
            job = _restored(job, fields)
            view = self._unless_waiting(job, reply)
        return view

    def _unless_waiting(self, job: Job, reply: Any) -> JobView | None:
        """The view of a job that has left the queue, with the result from an XREAD reply on its
        result stream; None while it waits, so a waiter does not look up its queue position every slice."""
        if job.get_status(refresh=False) in WAITING_STATUSES:
            return None
        return self._view_of(job, _latest_result(job, reply))

    def _read_snapshot(
        self, client: Redis | Pipeline, job_id: str, *, pace_ms: int = 0, full: bool = False
    ) -> Any:
        """Run (or queue, on a pipeline) the script that reads what a snapshot is made of (_SNAPSHOT);
        a `full` read scans the whole queue for a waiting job's place, and checks that its language
        is served however long it has waited. One read is not piped: a pipeline asks Redis whether
        its scripts exist before it runs them, a command more."""
        keys, arguments = self._snapshot_call(job_id, pace_ms=pace_ms, full=full)
        return self._snapshot_script(keys=keys, args=arguments, client=client)

    def _queue_snapshot(self, pipeline: Pipeline, job_id: str, *, result_read: bool = False) -> None:
        """Queue the snapshot script on `pipeline` as a bare EVALSHA: a Script on a pipeline first asks
        Redis whether it exists, a round trip more. The caller handles NoScriptError (a restarted
        Redis has lost its scripts)."""
        keys, arguments = self._snapshot_call(job_id, result_read=result_read)
        pipeline.evalsha(self._snapshot_script.sha, len(keys), *keys, *arguments)

    def _snapshot_call(
        self, job_id: str, *, pace_ms: int = 0, full: bool = False, result_read: bool = False
    ) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of the snapshot script (_SNAPSHOT) for this read."""
        keys = [Job.key_for(job_id), OFFERED, result_stream(job_id)]
        now = datetime.now(UTC)
        arguments: list[str | int] = [
            job_id,
            Queue.redis_queue_namespace_prefix,
            self.settings.queue_name,
            0 if full else GUESSED_POSITION_SCAN,
            int(now.timestamp() * 1000),
            pace_ms,
            utcformat(now - timedelta(seconds=0 if full else SERVED_CHECK_AFTER_S)),
            utcformat(now - timedelta(seconds=self.settings.worker_lost_after_s)),
            HEARTBEAT_PREFIX,
            int(result_read),
        ]
        return keys, arguments

    def _snapshot(self, job_id: str, owner: str | None, reply: list[Any]) -> Snapshot:
        """A snapshot from the reply to `_read_snapshot`; JobNotFound for another client's job."""
        fields, position, served, newest, alive, held_ms = reply or [[], None, 1, None, 1, 0]
        job = _restored(self._blank_job(job_id), _pairs(fields))
        if owner is not ANY_OWNER and job.meta.get("owner") != owner:
            raise JobNotFound(f"no job {job_id}")
        result = _result_of(job, (newest[0][0], _pairs(newest[0][1]))) if newest else None
        return Snapshot(
            job, position, result, hold_s=int(held_ms) / 1000, served=bool(served), maybe_lost=not alive
        )

    def _blank_job(self, job_id: str) -> Job:
        """A Job with this id and nothing read yet, as `Job(job_id, connection, serializer)` makes one,
        for `_restored` to fill. Made from the attributes of one such Job made at start: `Job.__init__`
        checks the serializer against RQ's runtime protocol, which costs a poll about 10 µs, every
        time (`tests/test_poll_cost.py` checks the two agree). The id is a UUID (`find` checked it)."""
        job = Job.__new__(Job)
        vars(job).update(self._blank)
        for name in self._blank_containers:  # a list or dict of its own, as `Job.__init__` makes
            setattr(job, name, copy.copy(self._blank[name]))
        job._id = job_id
        return job

    def _refetch(self, job: Job) -> Job:
        return Job.fetch(job.id, connection=self.connection, serializer=JobSerializer)

    def _view_of(
        self,
        job: Job,
        result: Result | None = None,
        queue_position: int | None = None,
        *,
        maybe_lost: bool = True,
    ) -> JobView:
        """The view of a job as fetched, after the reads its status calls for; `result` and
        `queue_position` save reads when already held, and a started job not `maybe_lost` is known
        to have a live worker.

        A started job whose worker stopped beating, or a waiting one whose language no worker runs
        any longer, is settled here, by whichever reader sees it first (see
        `executor.jobs.liveness` and `executor.jobs.routing`): a poll can write that verdict.
        """
        status = job.get_status(refresh=False)
        if status in WAITING_STATUSES and queue_position is None:
            # Not read, beyond the guessed scan, or between lists: ask, and whether it is served.
            reply = self._read_snapshot(self.connection, job.id, full=True)
            if not reply:
                raise JobNotFound(f"job {job.id} has expired")
            _, queue_position, served, *_ = reply
            if not served and fail_if_unserved(job, self.settings.queue_name):
                return self._view_of(self._refetch(job))
        elif (
            status == JobStatus.STARTED
            and maybe_lost
            and settle_if_lost(job, self.settings.worker_lost_after_s)
        ):
            return self._view_of(self._refetch(job))
        elif status not in UNFINISHED_STATUSES and result is None:
            result = job.latest_result()
        view = view_of(job, result, queue_position)
        if not job.meta.get("callback_url"):
            return view
        return view.model_copy(update={"callback": self.callback_of("job", job.id)})

    def callback_of(self, kind: str, subject_id: str) -> CallbackView | None:
        """A callback's delivery as views show it."""
        with self.connection.pipeline(transaction=False) as pipeline:
            callbacks.read_state(pipeline, kind, subject_id)
            (fields,) = pipeline.execute()
        state = callbacks.view_of_state(fields)
        return CallbackView.model_validate(state) if state else None


def _refuse_unless(answer: list[Any], depth: int, count: int) -> None:
    """Raise what the enqueue script's answer refused (see `executor.jobs.guarded_writes`)."""
    if answer[0] == -1:
        raise LanguageNotOffered(as_text(answer[1]))
    if not answer[0]:
        raise QueueFull(f"the queues have no room for {count} more job(s): their maximum is {depth} jobs")


def result_stream(job_id: str) -> str:
    """The key of the stream RQ writes a job's results to: a reader blocks on it to learn the end."""
    return Result.get_key(job_id)


def _registers_queue(words: tuple[Any, ...]) -> bool:
    """Whether a command of RQ's enqueue adds its queue to RQ's set of queues: the workers keep the
    queues they serve there (`workers.worker`), so an enqueue need not repeat it every time."""
    return str(words[0]).upper() == "SADD" and words[1] == Queue.redis_queues_keys


def _runs(request: ExecuteRequest) -> int:
    """How many times the program runs: once per test case, or once."""
    return len(request.tests or ()) or 1


def _wait_deadline(timeout_s: float) -> float:
    """When a wait gives up: the program's own timeout plus a margin for queueing and start-up."""
    return time.monotonic() + float(timeout_s) + WAIT_MARGIN_S


def _read_result(pipeline: Pipeline, job: Job, deadline: float, slice_ms: int) -> None:
    """Queue a blocking read of the job's result stream, then a read of its hash, which Redis answers
    as soon as the XREAD returns. Sliced, so each call returns well inside the socket timeout and an
    outage shows quickly."""
    remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
    pipeline.xread({result_stream(job.id): "0-0"}, block=min(remaining_ms, slice_ms))
    pipeline.hgetall(job.key)


def _restored(job: Job, fields: dict[bytes, bytes]) -> Job:
    """`job`, updated in place to what its hash, just read, says (as `Job.refresh` does with its own
    read): a new Job per read would cost a Job's construction every time a view is served.

    RQ's `restore` parses each of the hash's times with `strptime`, about 5 µs apiece, and every poll
    restores three to five of them (twice for a held poll); `datetime.fromisoformat` reads RQ's format
    (its trailing Z included, since Python 3.11) in a tenth of a microsecond, to the same value. So the
    times are left out of what RQ parses and set here (`tests/test_poll_cost.py`).
    """
    if not fields:
        raise JobNotFound(f"job {job.id} has expired")
    times = {name: value for name in _TIME_FIELDS if (value := fields.get(name))}
    job.restore({name: value for name, value in fields.items() if name not in times} if times else fields)
    for name, value in times.items():
        setattr(job, name.decode(), _rq_time(value))
    return job


# The job hash's times, as `Job.restore` reads them (each set only when present and not empty).
_TIME_FIELDS = (b"created_at", b"enqueued_at", b"started_at", b"ended_at", b"last_heartbeat")


def _rq_time(value: bytes) -> datetime:
    """One of RQ's stored times ("2026-12-05T00:31:28.076123Z"), as `rq.utils.str_to_date` reads it:
    an aware UTC datetime. Anything `fromisoformat` does not read goes to RQ's own parser."""
    try:
        moment = datetime.fromisoformat(value.decode())
    except ValueError:
        return str_to_date(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _latest_result(job: Job, reply: Any) -> Result | None:
    """The newest result in an XREAD reply on the job's result stream, if there is one."""
    if not reply:
        return None
    return _result_of(job, reply[0][1][-1])


def _result_of(job: Job, entry: tuple[bytes, dict[bytes, bytes]]) -> Result:
    """A result from one entry of the job's result stream, as RQ reads it."""
    result_id, payload = entry
    return Result.restore(
        job.id, as_text(result_id), payload, connection=job.connection, serializer=JobSerializer
    )


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash as a script returns it, field and value in turn, as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
