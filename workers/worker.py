"""The RQ worker and job classes that `rq worker` is started with (see the Procfile)."""

import signal
from collections.abc import Callable, Sequence
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq.job import Job
from rq.queue import Queue

from executor.jobs.announcements import announce, describe
from executor.jobs.liveness import sweep_lost_jobs
from executor.jobs.request import RUN_JOB
from executor.jobs.routing import idle_group, idle_groups, idle_workers, language_queue, sweep_unserved
from executor.jobs.wakes import now_ms, wake_list
from executor.languages import build_languages
from executor.sandbox import kill_running_programs, sweep_leftover_runs
from executor.sandbox.warm.backend import stop_zygotes
from workers.bookkeeping import TrimmedBookkeeping
from workers.heartbeat_thread import HeartbeatThread
from workers.tasks import STOPPING, run_job, worker_sandbox, worker_settings

# A Redis outage shorter than about two minutes is ridden out: every command is retried with backoff,
# so a result computed during the outage is written when Redis returns instead of being lost.
OUTAGE_RETRY = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=70)


class ForbiddenJob(Exception):
    """A job in Redis names a function other than ours; it is refused, never imported or called."""


class ExecutorJob(Job):
    """A job that can only ever call `workers.tasks.run_job`."""

    @property
    def func(self) -> Callable[..., Any]:
        if self.func_name != RUN_JOB:
            raise ForbiddenJob(f"refused to run {self.func_name!r}: this worker only runs {RUN_JOB}")
        return run_job


class ExecutorWorker(TrimmedBookkeeping):
    """Runs each job in this process, without RQ's fork per job: the program gets a fresh process anyway.

    What the forking worker gives is kept: a stop-job command kills the running program, and RQ's
    job timeout (the program's timeout plus a margin) still interrupts a runner that hung. How RQ's
    own bookkeeping is trimmed is `workers/bookkeeping.py`; this class adds the sandbox, the
    languages' queues, liveness and the sweeps.

    The queues it is given are bases: it serves each base's queue of every language its host runs
    (`executor.jobs.routing`), so `rq worker code_execution` on a host that runs python and c
    listens on `code_execution.python` and `code_execution.c`.
    """

    def __init__(self, queues: Sequence[str | Queue] | str | Queue, *args: Any, **kwargs: Any) -> None:
        # Decided first, so a worker that must isolate but cannot refuses to start, and so the queues
        # are those of the languages this host runs.
        self.sandbox = worker_sandbox()
        self.bases = [queue if isinstance(queue, str) else queue.name for queue in _as_list(queues)]
        served = [language_queue(base, key) for base in self.bases for key in self.sandbox.languages]
        super().__init__(served, *args, **kwargs)
        self.connection.set_retry(OUTAGE_RETRY)
        settings = worker_settings()
        self.registry_languages = list(build_languages(settings.python))
        self.idle_group = idle_group(self.sandbox.languages, self.registry_languages)
        self.lost_after_s = settings.worker_lost_after_s
        self.heartbeat_thread = HeartbeatThread(
            self.connection,
            self.name,
            sandbox=self.sandbox.level,
            interval_s=settings.worker_heartbeat_s,
            ttl_s=settings.worker_lost_after_s,
            after_beat=self.after_heartbeat,
            # Cut off from Redis for the lost window: stop the job (its program, its remaining test
            # cases), since the other workers may settle it as lost from then on.
            on_lost=self.stop_cut_off_job,
        )
        self.languages = [describe(language) for language in self.sandbox.languages.values()]

    def after_heartbeat(self) -> None:
        """Announce this host's languages again, renew RQ's worker key, settle the jobs of workers
        that died on every queue this worker serves, fail those waiting for a language no worker runs
        any longer, and remove what dead workers' runs left on this host (processes, cgroups, disks)."""
        self.announce()
        self.heartbeat()  # RQ's worker key, which no job renews (workers/bookkeeping.py)
        for name in sweep_leftover_runs(self.sandbox):
            self.log.warning("removed what run %s of a worker that died had left on this host", name)
        for queue in self.queues:
            sweep_lost_jobs(queue, self.lost_after_s)
        for base in self.bases:
            sweep_unserved(self.connection, base, self.registry_languages, self.serializer)

    def announce(self) -> None:
        """Say which languages this host runs, list the queues served in RQ's set of queues (for the
        dashboard and `rq info`: the enqueue leaves that to the workers), and, for a worker that runs
        only some of the registry's languages, its group's idle set in each of its languages'
        registries (`executor.jobs.routing`)."""
        announce(self.connection, self.languages)
        with self.connection.pipeline(transaction=False) as pipeline:
            pipeline.sadd(Queue.redis_queues_keys, *(queue.key for queue in self.queues))
            if self.idle_group:  # a wake for a job of one of its languages looks in its group's set
                listed_until = now_ms() + int(2 * self.lost_after_s * 1000)
                for queue in self.queues:
                    pipeline.zadd(
                        idle_groups(queue.name), {idle_workers(queue.name, self.idle_group): listed_until}
                    )
            pipeline.execute()

    def register_birth(self) -> None:
        super().register_birth()
        self.announce()
        self.heartbeat_thread.start()

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop the job: its running program is killed, and its remaining test cases are skipped."""
        STOPPING.set()
        super().kill_horse(sig)

    def stop_cut_off_job(self) -> None:
        """No heartbeat has reached Redis for the lost window (the heartbeat thread's `on_lost`): any
        worker may settle this worker's job as lost from now on, so its program is killed and its
        remaining cases skipped. A result saved once Redis answers again then says why
        (`CUT_OFF_MESSAGE`), rather than passing the kill off as the program's own end; a job whose
        programs had all ended keeps its result."""
        STOPPING.set()
        if kill_running_programs():
            self.cut_off = True

    def teardown(self) -> None:
        # This host's own first, whatever Redis answers below: no program, and no zygote, outlives
        # the worker (a zygote left to die with it would be reaped by someone else, or no one).
        kill_running_programs()
        stop_zygotes()
        self.give_back_claimed_job()
        with self.connection.pipeline(transaction=False) as pipeline:
            for idle in {idle_workers(queue.name, self.idle_group) for queue in self.queues}:
                pipeline.zrem(idle, self.name)  # a wake would be lost on it
            pipeline.delete(wake_list(self.name))
            pipeline.execute()
        self.heartbeat_thread.stop()
        super().teardown()


def _as_list(queues: Sequence[str | Queue] | str | Queue) -> list[str | Queue]:
    """The queues as RQ accepts them: one, or several."""
    return [queues] if isinstance(queues, str | Queue) else list(queues)
