"""The queue class the worker dequeues with (see the Procfile's `--queue-class`), and claimed jobs."""

from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.job import Job
from rq.queue import Queue

from workers.redis_scripts import Claimed, ClaimFrom, claim_next


class ClaimingQueue(Queue):
    """RQ's queue, whose dequeue takes a waiting job and reads its hash in one round trip (RQ: two)."""

    @classmethod
    def dequeue_any(  # noqa: PLR0917 (RQ's signature, which the worker calls)
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The next waiting job of a single queue by one script; when none waits (or several queues are
        served), RQ's own dequeue, which blocks until a job comes."""
        queues = list(queues)
        if len(queues) == 1:
            queue, job_class = queues[0], job_class or Job
            while claimed := claim_next(connection, claim_source(queue, job_class)):
                job = claimed_job(claimed, job_class, connection, serializer)
                if job is not None:
                    return job, queue
        return super().dequeue_any(
            queues,
            timeout,
            connection=connection,
            job_class=job_class,
            serializer=serializer,
            death_penalty_class=death_penalty_class,
        )


def claim_source(queue: Queue, job_class: type[Job]) -> ClaimFrom:
    """The keys a script claims the next job of `queue` with."""
    return ClaimFrom(queue.key, queue.intermediate_queue_key, job_class.redis_job_namespace_prefix)


def claimed_job(claimed: Claimed, job_class: type[Job], connection: Redis, serializer: Any) -> Job | None:
    """The claimed job as its hash describes it; None for an id whose job has expired, which is
    passed over as RQ does (its maintenance clears the id from the intermediate list)."""
    if not claimed.fields:
        return None
    job = job_class(claimed.job_id, connection=connection, serializer=serializer)
    job.restore(claimed.fields)
    return job


def give_back(queue: Queue, job_id: str) -> None:
    """Return a claimed job that will not run here to the head of its queue, for another worker."""
    with queue.connection.pipeline() as pipeline:
        pipeline.lrem(queue.intermediate_queue_key, 1, job_id)
        pipeline.lpush(queue.key, job_id)
        pipeline.execute()
