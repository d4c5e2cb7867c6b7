"""The queue class the worker dequeues with (see the Procfile's `--queue-class`)."""

from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.job import Job
from rq.queue import Queue

from workers.redis_scripts import claim_next


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
            prefix = job_class.redis_job_namespace_prefix
            while claimed := claim_next(connection, queue.key, queue.intermediate_queue_key, prefix):
                job_id, fields = claimed
                if fields:  # an id whose job has expired is passed over, as RQ does
                    job = job_class(job_id, connection=connection, serializer=serializer)
                    job.restore(fields)
                    return job, queue
        return super().dequeue_any(
            queues,
            timeout,
            connection=connection,
            job_class=job_class,
            serializer=serializer,
            death_penalty_class=death_penalty_class,
        )
