"""Which queue a job waits in: one per language, so a job only ever reaches a worker that runs it.

A job in language `c` waits in the queue `<EXECUTOR_QUEUE_NAME>.c`, and a worker listens on the
queues of the languages its host ran at start (`executor.jobs.announcements`). A worker that
cannot run a language never sees its jobs, so no job waits behind one; rq-dashboard shows each
language's queue.

The queues of a base share a doorbell, a stream of at most one entry that the enqueue rings: an idle
worker blocks on it (XREAD), which, unlike popping from several lists, takes nothing, so a worker
that dies while woken loses no job (`workers/claiming_queue.py`).

A job whose language no worker announces any longer (every worker of that language gone for
`ANNOUNCEMENT_TTL_S`) would wait for ever: any live worker's sweep, or a poll, fails it instead.
"""

import logging
from collections.abc import Iterable

from redis import Redis
from redis.client import Pipeline
from rq.job import Job
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.serializers import Serializer

from executor.jobs.announcements import OFFERED, offered_ids
from executor.jobs.guarded_writes import RUN_COMMANDS, encoded_commands
from executor.jobs.statuses import INTERNAL_ERROR
from executor.metrics.figures import count_finished

logger = logging.getLogger(__name__)

DOORBELL_PREFIX = "executor:doorbell:"
IDLE_PREFIX = "executor:idle:"
WAITING_PREFIX = "executor:waiting:"
UNSERVED_MESSAGE = "NoWorker: no live worker runs {language} any longer"
# KEYS: the queue, OFFERED. ARGV: the job id, the language, then the failure's commands. Fails the
# job only if it still waits and its language is still not offered, as one step: a worker that
# claims it, or announces the language, meanwhile wins.
_FAIL_IF_UNSERVED = (
    RUN_COMMANDS
    + """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local offered_until = redis.call('ZSCORE', KEYS[2], ARGV[2])
if offered_until and tonumber(offered_until) > now then
    return 0
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
run_commands(3)
return 1
"""
)


def language_queue(base: str, language: str) -> str:
    """The name of the queue where jobs in `language` wait."""
    return f"{base}.{language}"


def language_of_queue(base: str, queue_name: str) -> str | None:
    """The language whose jobs wait in `queue_name`; None for a queue that is not one of `base`'s."""
    prefix = f"{base}."
    return queue_name[len(prefix) :] if queue_name.startswith(prefix) else None


def language_of_job(job: Job) -> str:
    """The language of a job, from the name of its queue, `<base>.<language>` (no id has a dot)."""
    return job.origin.rsplit(".", 1)[-1]


def doorbell(queue_name: str) -> str:
    """The key of the stream that wakes the workers idle on `queue_name`: one for all the languages
    of its base, so an idle worker waits on one stream and a claim reads one (a worker woken for a
    language it does not run finds nothing and waits again)."""
    return DOORBELL_PREFIX + _base_of(queue_name)


def idle_workers(queue_name: str) -> str:
    """The key of the workers idle on `queue_name`'s base, each scored by when its mark expires."""
    return IDLE_PREFIX + _base_of(queue_name)


def waiting_queues(queue_name: str) -> str:
    """The key of the set of `queue_name`'s base's queues that may hold jobs: every write that puts a
    job in a queue adds the queue (the enqueue script, `ring`), and a claim that finds one empty
    removes it, so a claim reads the heads of those queues only (a full look, now and then, reads
    every queue, for a job put back by RQ's own maintenance, which adds nothing)."""
    return WAITING_PREFIX + _base_of(queue_name)


def _base_of(queue_name: str) -> str:
    """`<base>` of a language's queue `<base>.<language>` (no language id has a dot)."""
    return queue_name.rsplit(".", 1)[0]


def ring(pipeline: Pipeline | Redis, queue_name: str) -> None:
    """Wake the workers idle on `queue_name`: a job was put back in it."""
    pipeline.sadd(waiting_queues(queue_name), Queue.redis_queue_namespace_prefix + queue_name)
    pipeline.xadd(doorbell(queue_name), {"rung": "1"}, maxlen=1, approximate=False)


def fail_if_unserved(job: Job, base: str) -> bool:
    """Fail a waiting job whose language no worker announces any longer; True when this call did."""
    language = language_of_queue(base, job.origin)
    if language is None:
        return False
    queue = Queue(job.origin, connection=job.connection, serializer=job.serializer)
    with job.connection.pipeline(transaction=False) as writes:
        record_job_failure(job, UNSERVED_MESSAGE.format(language=language), writes)
        count_finished(writes, language, INTERNAL_ERROR)
        commands = encoded_commands(writes)
    failed = job.connection.eval(_FAIL_IF_UNSERVED, 2, queue.key, OFFERED, job.id, language, *commands)
    if failed:
        logger.warning("job %s failed: no live worker runs %s any longer", job.id, language)
    return bool(failed)


def sweep_unserved(
    connection: Redis, base: str, languages: Iterable[str], serializer: Serializer
) -> list[str]:
    """Fail every job waiting for a language of `languages` that no worker announces; their ids."""
    offered = set(offered_ids(connection))
    failed = []
    for language in sorted(set(languages) - offered):
        queue = Queue(language_queue(base, language), connection=connection, serializer=serializer)
        for job_id in queue.get_job_ids():
            job = queue.fetch_job(job_id)
            if job is not None and fail_if_unserved(job, base):
                failed.append(job_id)
    return failed
