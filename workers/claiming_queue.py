"""The queue class the worker dequeues with (see the Procfile's `--queue-class`), and claimed jobs."""

import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.queue import Queue

from executor.jobs.routing import idle_workers, ring, waiting_queues
from executor.jobs.wakes import wake_list
from workers.redis_scripts import Claimed, ClaimFrom, claim_next

# An idle worker looks at its queues at least this often even if no wake comes: a job put back by
# RQ's own maintenance wakes none, and a woken worker may have died before it claimed.
LOOK_AGAIN_S = 1.0
# An idle mark lasts this long: twice the longest a worker waits between looks, each of which renews it.
IDLE_MARK_S = 2 * LOOK_AGAIN_S


@dataclass(frozen=True)
class Claimant:
    """Who claims: the worker's name (its wake list's), its idle group (`executor.jobs.routing`), and
    whether it is marked idle already (its last result's claim found no job): it then waits first."""

    name: str = ""
    group: str = ""
    marked_idle: bool = False


# Set by the worker around RQ's dequeue, which calls `dequeue_any` with a signature of RQ's own.
CLAIMANT: ContextVar[Claimant | None] = ContextVar("claimant", default=None)


class ClaimingQueue(Queue):
    """RQ's queue, whose dequeue takes the oldest job waiting in any of the worker's queues into its
    intermediate list and reads its hash in one round trip (RQ: two, and none of that for several
    queues, which it pops from, so a worker dying just then would lose the job)."""

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
        """The oldest waiting job and its queue. When none waits: None at once without a `timeout`
        (RQ's burst mode), else wait to be woken (`executor.jobs.routing`), looking again every
        LOOK_AGAIN_S, and raise DequeueTimeout, as RQ's own dequeue does, once `timeout` seconds
        have passed with none."""
        queues = list(queues)
        by_key = {queue.key: queue for queue in queues}
        job_class = job_class or Job
        claimant = CLAIMANT.get() or Claimant()
        source = claim_source(queues, job_class, claimant.group)
        deadline = None if timeout is None else time.monotonic() + timeout
        idle_ttl_s = None if deadline is None else IDLE_MARK_S
        # Marked idle by its last result's claim, which found no job: a job since has woken it.
        look, unmark = not claimant.marked_idle or deadline is None, False
        while True:
            if look:
                claimed = claim_next(
                    connection,
                    source,
                    claimant.name,
                    idle_ttl_s=idle_ttl_s,
                    full=FULL_LOOKS.due(),
                    unmark=unmark,
                )
                if claimed is not None:
                    job = claimed_job(claimed, job_class, connection, serializer)
                    if job is not None:
                        return job, by_key[claimed.queue_key]
                    continue
                if deadline is None:
                    return None
            assert deadline is not None  # burst mode returned above: it always looks
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, list(by_key))
            # A wake pops the mark, but a push left over from a wake this worker beat to its job does
            # not, and a worker that looks by itself keeps its mark: the claim after a wait removes it.
            # (BLPOP's timeout 0 would block for ever: never below 10 ms.)
            wait_s = max(0.01, min(remaining, LOOK_AGAIN_S))
            connection.blpop([wake_list(claimant.name)], timeout=wait_s)
            look, unmark = True, True


class FullLooks:
    """When a claim reads every queue's head rather than only those of the waiting sets: at most
    once per LOOK_AGAIN_S in each worker process, so a job put back without a ring (RQ's own
    maintenance) is found within that, while other claims read only the queues that hold jobs."""

    def __init__(self) -> None:
        self.last = -LOOK_AGAIN_S

    def due(self) -> bool:
        """Whether this claim is to be a full one (and, if so, it is counted as done)."""
        now = time.monotonic()
        if now - self.last < LOOK_AGAIN_S:
            return False
        self.last = now
        return True


# One per worker process: RQ runs one worker per process.
FULL_LOOKS = FullLooks()


def claim_source(queues: Sequence[Queue], job_class: type[Job], group: str = "") -> ClaimFrom:
    """The keys a script claims the next job of any of `queues` with, for a worker of `group`."""
    return ClaimFrom(
        queue_keys=tuple(queue.key for queue in queues),
        intermediate_keys=tuple(queue.intermediate_queue_key for queue in queues),
        idle_keys=tuple(idle_workers(queue.name, group) for queue in queues),
        waiting_keys=tuple(waiting_queues(queue.name) for queue in queues),
        job_key_prefix=job_class.redis_job_namespace_prefix,
    )


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
        ring(pipeline, queue.name)
        pipeline.execute()
