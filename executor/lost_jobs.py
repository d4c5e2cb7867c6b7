"""Jobs whose worker died: failed with a clear reason, or run once more when the operator asks.

RQ notices an abandoned job only when the job's lease runs out (its timeout plus a minute) and an
idle worker happens to clean up. Our heartbeats expire within seconds, so whoever looks at a
started job next (a poll, or any live worker's sweep) settles it, with RQ's own retry and failure
records. Settling is final: a worker that was only cut off and comes back drops its late result.
"""

import logging

from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.utils import as_text

from executor.heartbeats import alive_among, is_alive

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
        queue.started_job_registry.remove_executions(job, pipeline=pipeline)
        if job.retries_left:
            logger.warning("job %s lost its worker %s; running it again", job.id, job.worker_name)
            job.retry(queue, pipeline)
        else:
            logger.warning("job %s lost its worker %s; failing it", job.id, job.worker_name)
            record_job_failure(job, LOST_MESSAGE, pipeline)
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
