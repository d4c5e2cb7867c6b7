"""Which queue a job waits in, and which idle worker is woken for it.

A job in language `c` waits in the queue `<EXECUTOR_QUEUE_NAME>.c`, and a worker listens on the
queues of the languages its host ran at start (`executor.jobs.announcements`). A worker that
cannot run a language never sees its jobs, so no job waits behind one; rq-dashboard shows each
language's queue.

An idle worker marks itself in its base's idle set (a sorted set scored by when the mark expires)
and blocks on a wake list of its own (BLPOP). Whatever puts a job in a queue wakes one idle worker
per job, the most recently idle: it pops the worker's mark and pushes to its list. Only that worker
wakes, and a push made before it blocks is kept, so no wake is lost between a worker's look and its
wait. A worker that runs only some of the registry's languages marks itself in a set of its own
group (workers that run the same languages), which it lists, for each of its languages, in that
language's group registry: a job's wake looks there when no worker that runs every language is idle.

Idle marks and wakes use the hosts' clocks (within a second of each other, as NTP keeps them): a
clock that is off only makes a job wait for a worker's next look (`workers/claiming_queue.py`,
LOOK_AGAIN_S), never loses it.

A job whose language no worker announces any longer (every worker of that language gone for
`ANNOUNCEMENT_TTL_S`) would wait for ever: any live worker's sweep, or a poll once the job has waited
`executor.jobs.queue.SERVED_CHECK_AFTER_S`, fails it instead.
"""

import hashlib
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
from executor.jobs.wakes import WAKE_FUNCTION, now_ms
from executor.metrics.figures import count_finished

logger = logging.getLogger(__name__)

IDLE_PREFIX = "executor:idle:"
IDLE_GROUPS_PREFIX = "executor:idle-groups:"
WAITING_PREFIX = "executor:waiting:"
# KEYS: the queue's waiting set, its base's idle set, its language's group registry. ARGV: the queue's
# key, the caller's clock (ms). A job was put back in the queue: list it as waiting, wake one worker.
_RING = (
    WAKE_FUNCTION
    + """
redis.call('SADD', KEYS[1], ARGV[1])
return wake(KEYS[2], KEYS[3], 1, tonumber(ARGV[2]))
"""
)
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


def idle_workers(queue_name: str, group: str = "") -> str:
    """The key of the idle workers of `queue_name`'s base, each scored by when its mark expires (ms):
    those that run every language of the registry, or, given its `group` (`idle_group`), those of a
    group that runs only some."""
    base = IDLE_PREFIX + _base_of(queue_name)
    return f"{base}:{group}" if group else base


def idle_group(languages: Iterable[str], registry: Iterable[str]) -> str:
    """The group of workers that run `languages`: '' when that is every language of the registry
    (the base's own idle set), else a digest of them."""
    served = sorted(set(languages))
    if set(served) >= set(registry):
        return ""
    return hashlib.sha256(",".join(served).encode()).hexdigest()[:16]


def idle_groups(queue_name: str) -> str:
    """The key of the registry of idle sets whose workers run `queue_name`'s language, besides the
    base's own, each scored by when the listing expires (ms)."""
    return IDLE_GROUPS_PREFIX + queue_name


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
    """List `queue_name` as waiting and wake one of its idle workers: a job was put back in it."""
    keys = [waiting_queues(queue_name), idle_workers(queue_name), idle_groups(queue_name)]
    pipeline.eval(_RING, len(keys), *keys, Queue.redis_queue_namespace_prefix + queue_name, now_ms())


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
