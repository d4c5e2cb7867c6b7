"""Worker liveness: heartbeats that expire unless renewed, and the settling of jobs whose worker died.

RQ's own worker key lives for the job's timeout plus a minute, far too long to notice a dead worker
quickly, so each worker also renews a short-lived key of ours holding its isolation level, and its
name in one sorted set scored by when it expires, so `/health` reads the live workers without
scanning the keyspace. Clocks are Redis's own (TIME, inside the scripts), never a host's.

RQ notices an abandoned job only when the job's lease runs out (its timeout plus a minute) and an
idle worker happens to clean up. Our heartbeats expire within seconds, so whoever looks at a
started job next (a poll, or any live worker's sweep) settles it, with RQ's own retry and failure
records. Settling is final: a worker that was only cut off and comes back drops its late result.
"""

import hashlib
import logging

from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.utils import as_text

from executor.jobs.routing import language_of_job, ring
from executor.jobs.statuses import INTERNAL_ERROR
from executor.jobs.wakes import WAKE_PREFIX
from executor.metrics.figures import count_finished

HEARTBEAT_PREFIX = "executor:heartbeat:"
# Every worker that has beaten, scored by when its heartbeat expires (ms, Redis's clock).
LIVE_WORKERS = "executor:live-workers"
# KEYS: the worker's heartbeat, the set. ARGV: its name, its level, the TTL in ms. Also forgets the
# workers whose heartbeats have expired, and their wake lists (executor.jobs.wakes), so the set holds
# at most the workers of the last TTL.
_BEAT = f"""
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
    redis.call('DEL', '{WAKE_PREFIX}' .. gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
"""
# KEYS: the set. Returns the names of the workers whose heartbeats have not expired.
_LIVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""


def execution_id(worker_name: str) -> str:
    """The id of a job's execution by this worker in RQ's started registry (`<job>:<execution>`):
    derived from the name, so whoever settles the job finds the entry from the job's `worker_name`
    alone (the workers write no other execution record, `workers/bookkeeping.py`), and free of the
    colon that separates the two ids, which a worker's name may hold. A worker runs one job at a
    time, and a job at most once per worker (a lost one runs again elsewhere, if at all)."""
    return hashlib.sha256(worker_name.encode()).hexdigest()[:32]


def beat(connection: Redis, worker_name: str, level: str, ttl_s: float) -> None:
    """Say that this worker is alive, and which isolation level it runs programs in."""
    connection.eval(
        _BEAT, 2, HEARTBEAT_PREFIX + worker_name, LIVE_WORKERS, worker_name, level, int(ttl_s * 1000)
    )


def forget(connection: Redis, worker_name: str) -> None:
    """Withdraw a worker that is stopping cleanly."""
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.delete(HEARTBEAT_PREFIX + worker_name)
        pipeline.zrem(LIVE_WORKERS, worker_name)
        pipeline.execute()


def is_alive(connection: Redis, worker_name: str) -> bool:
    """Whether the worker renewed its heartbeat recently."""
    return worker_name in alive_among(connection, [worker_name])


def alive_among(connection: Redis, worker_names: list[str]) -> set[str]:
    """The workers of `worker_names` that renewed their heartbeat recently, in one round trip."""
    if not worker_names:
        return set()
    values = connection.mget([HEARTBEAT_PREFIX + name for name in worker_names])
    return {name for name, value in zip(worker_names, values, strict=True) if value is not None}


def live_workers(connection: Redis) -> dict[str, str]:
    """Each live worker's name and isolation level, in two round trips whatever the size of Redis."""
    names = [as_text(name) for name in connection.eval(_LIVE, 1, LIVE_WORKERS)]
    levels = connection.mget([HEARTBEAT_PREFIX + name for name in names]) if names else []
    return {name: as_text(level) for name, level in zip(names, levels, strict=True) if level is not None}


logger = logging.getLogger(__name__)

LOST_MESSAGE = "WorkerLost: the worker running this job was lost (killed, or its machine went away)"
# Held while one process settles a lost job, so it is never settled twice.
CLAIM_TTL_S = 60


def settle_if_lost(job: Job, lost_after_s: float) -> bool:
    """Fail or retry a started job whose worker stopped beating; True when this call settled it."""
    if job.get_status(refresh=False) != JobStatus.STARTED or not job.worker_name:
        return False
    connection = job.connection
    if is_alive(connection, job.worker_name) or _restarted_recently(connection, lost_after_s):
        return False
    claim = f"executor:lost-claim:{job.id}:{job.retries_left}"
    if not connection.set(claim, "settling", nx=True, ex=CLAIM_TTL_S):
        return False
    queue = Queue(job.origin, connection=connection, serializer=job.serializer)
    with connection.pipeline() as pipeline:
        pipeline.zrem(queue.started_job_registry.key, f"{job.id}:{execution_id(job.worker_name)}")
        if job.retries_left:
            logger.warning("job %s lost its worker %s; running it again", job.id, job.worker_name)
            job.retry(queue, pipeline)
            ring(pipeline, queue.name)
        else:
            logger.warning("job %s lost its worker %s; failing it", job.id, job.worker_name)
            record_job_failure(job, LOST_MESSAGE, pipeline)
            count_finished(pipeline, language_of_job(job), INTERNAL_ERROR)
        pipeline.execute()
    return True


def sweep_lost_jobs(queue: Queue, lost_after_s: float) -> list[str]:
    """Settle every lost job of `queue`, so none waits for a client to poll it; return their ids.

    Every worker sweeps every heartbeat, so after the registry, the started jobs' owners and their
    heartbeats are read in two round trips whatever the number of jobs; a job is read whole, and
    settled, only when its worker has gone silent.
    """
    try:
        job_ids = queue.started_job_registry.get_job_ids(cleanup=False)
        with queue.connection.pipeline(transaction=False) as pipeline:
            for job_id in job_ids:
                pipeline.hget(queue.job_class.key_for(job_id), "worker_name")
            owners = [as_text(owner) if owner else None for owner in pipeline.execute()]
        alive = alive_among(queue.connection, sorted({owner for owner in owners if owner}))
    except RedisError:
        logger.warning("could not read the started jobs of %s; the next sweep tries again", queue.name)
        return []
    settled = []
    for job_id, owner in zip(job_ids, owners, strict=True):
        if owner in alive:
            continue
        try:
            job = queue.fetch_job(job_id)
            if job is not None and settle_if_lost(job, lost_after_s):
                settled.append(job_id)
        except RedisError:
            logger.warning("could not settle lost job %s; the next sweep tries again", job_id)
    return settled


def _restarted_recently(connection: Redis, lost_after_s: float) -> bool:
    """Heartbeats lapse while Redis is down; after a restart, give live workers time to beat again.

    Where INFO is disabled (some managed Redis), a restart cannot be seen and is not assumed.
    """
    try:
        uptime = connection.info("server").get("uptime_in_seconds")
    except ResponseError:
        return False
    return uptime is not None and float(uptime) < lost_after_s
