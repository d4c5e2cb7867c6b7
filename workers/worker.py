"""The RQ worker and job classes that `rq worker` is started with (see the Procfile)."""

import signal
from collections.abc import Callable
from typing import Any

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.worker import SimpleWorker

from executor.jobs import RUN_JOB
from executor.sandbox import kill_running_programs
from workers.heartbeat import HeartbeatThread
from workers.tasks import run_job, worker_sandbox, worker_settings


class ForbiddenJob(Exception):
    """A job in Redis names a function other than ours; it is refused, never imported or called."""


class ExecutorJob(Job):
    """A job that can only ever call `workers.tasks.run_job`."""

    @property
    def func(self) -> Callable[..., Any]:
        if self.func_name != RUN_JOB:
            raise ForbiddenJob(f"refused to run {self.func_name!r}: this worker only runs {RUN_JOB}")
        return run_job


class ExecutorWorker(SimpleWorker):
    """Runs each job in this process, without RQ's fork per job: the program gets a fresh process anyway.

    What the forking worker gives is kept: a stop-job command kills the running program, and RQ's
    job timeout (the program's timeout plus a margin) still interrupts a runner that hung.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Decided now, so a worker that must isolate but cannot refuses to start.
        self.sandbox = worker_sandbox()
        settings = worker_settings()
        self.heartbeat_thread = HeartbeatThread(
            self.connection,
            self.name,
            self.sandbox.isolation,
            interval_s=settings.worker_heartbeat_s,
            ttl_s=settings.worker_lost_after_s,
        )

    def register_birth(self) -> None:
        super().register_birth()
        self.heartbeat_thread.start()

    def teardown(self) -> None:
        self.heartbeat_thread.stop()
        kill_running_programs()
        super().teardown()

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """There is no work horse here: stopping the job means killing its program."""
        kill_running_programs()

    def _finalize_success(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        """Label a program stopped by a cancel as canceled, whatever it was doing when it died."""
        canceled = self._stopped_job_id == job.id or job.get_status(refresh=True) in {
            JobStatus.CANCELED,
            JobStatus.STOPPED,
        }
        if canceled and isinstance(return_value, dict):
            return_value = {**return_value, "status": "canceled", "message": "canceled before it finished"}
        super()._finalize_success(job, queue, execution, return_value)
