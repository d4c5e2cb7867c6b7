"""Containment through the real stack: a cancel, a lost worker and two fork bombs at once leave nothing
behind and take nothing from another job."""

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Worker
from rq.job import Job

from executor.jobs.liveness import live_workers
from executor.jobs.routing import language_queue
from executor.sandbox.cgroups import find_hierarchy
from executor.settings import Settings
from tests.stack import REPO, WorkerProcesses, own_queue, poll_until, processes_with_token, submit

ATTACK = (REPO / "tests" / "programs" / "outlive_pid1.py").read_text()
PAUSE = 34  # x86_64: the rewritten pid 1 sits in pause()
# A tree of processes carrying the token: children, and a daemon that left the session.
TREE = """
import os, sys, time
for _ in range(3):
    if os.fork() == 0:
        time.sleep(60)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print('forked', flush=True)
time.sleep(60)
"""
# Forks until refused, holds the children while the other job does the same, reports how many it got.
BOMB = (REPO / "tests" / "programs" / "fork_until_refused.py").read_text()
BOMB_ARGS = ["3", "1.5"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="job cgroups and program uids need root")


def wait_gone(token: str, within_s: float) -> list[Any]:
    """Processes carrying `token` still alive after `within_s` seconds (an empty list once all are gone)."""
    deadline = time.monotonic() + within_s
    while (left := processes_with_token(token)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def test_deleting_a_running_job_leaves_none_of_its_processes_within_a_second(
    either_client: FlaskClient,
) -> None:
    client = either_client
    token = uuid.uuid4().hex
    job_id = client.post("/api/v1/execute", json={"code": TREE, "timeout": 30, "args": [token]}).get_json()[
        "job_id"
    ]
    poll_until(client, job_id, {"started"})
    deadline = time.monotonic() + 10
    # Cold: bwrap's pid 1 (its command line holds the token too), the program, 3 children, the
    # daemon. Warm: the program (its command line written as a cold start's), 3 children, the daemon.
    while len(processes_with_token(token)) < 5:
        assert time.monotonic() < deadline, "the program never forked"
        time.sleep(0.02)
    assert client.delete(f"/api/v1/execute/{job_id}").status_code == 200
    assert wait_gone(token, within_s=1.0) == []


@needs_root
def test_a_worker_killed_after_its_program_rewrote_pid_1_leaves_nothing_within_the_lost_worker_window(
    pool: WorkerProcesses,
    settings: Settings,
    redis_client: Redis,
) -> None:
    pool.env = {**pool.env, "EXECUTOR_WARM_START": "0"}  # the attack is on bubblewrap's pid 1
    lost_client, started = own_queue(settings, pool, redis_client, 2)
    token = uuid.uuid4().hex
    job_id = submit(lost_client, ATTACK, timeout=30, args=[token])
    poll_until(lost_client, job_id, {"started"})
    deadline = time.monotonic() + 20
    while not any(_syscall(process.pid) == PAUSE for process in processes_with_token(token)):
        assert time.monotonic() < deadline, "the attack never rewrote pid 1"
        time.sleep(0.02)
    worker = Worker.find_by_key(
        Worker.redis_worker_namespace_prefix + str(Job.fetch(job_id, connection=redis_client).worker_name),
        connection=redis_client,
    )
    assert worker is not None
    (victim,) = [process for process in started if process.pid == worker.pid]
    pool.stop(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_gone(token, within_s=settings.worker_lost_after_s) == []
    # The job's cgroup too: the surviving worker sweeps it away after one of its heartbeats.
    while [name for name in find_hierarchy().job_names() if name.startswith(f"w{victim.pid}-")]:
        assert time.monotonic() - killed_at < settings.worker_lost_after_s, (
            "the job's cgroup outlived the window"
        )
        time.sleep(0.05)


@needs_root
def test_a_warm_worker_killed_mid_job_leaves_nothing_within_the_lost_worker_window(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    """The zygote dies with its worker (bubblewrap's --die-with-parent), but a run it forked is not
    its child's to end: the surviving worker's sweep kills the run's cgroup, within the window."""
    pool.env = {**pool.env, "EXECUTOR_WARM_START": "1"}
    lost_client, started = own_queue(settings, pool, redis_client, 2)
    token = uuid.uuid4().hex
    job_id = submit(lost_client, TREE, timeout=30, args=[token])
    poll_until(lost_client, job_id, {"started"})
    deadline = time.monotonic() + 10
    while len(processes_with_token(token)) < 5:  # the program, 3 children, the daemon
        assert time.monotonic() < deadline, "the program never forked"
        time.sleep(0.02)
    worker_name = Job.fetch(job_id, connection=redis_client).worker_name
    worker = Worker.find_by_key(
        Worker.redis_worker_namespace_prefix + str(worker_name), connection=redis_client
    )
    assert worker is not None
    (victim,) = [process for process in started if process.pid == worker.pid]
    pool.stop(victim, signal.SIGKILL)
    assert wait_gone(token, within_s=settings.worker_lost_after_s) == []
    assert poll_until(lost_client, job_id, {"internal_error"})["status"] == "internal_error"


def idle_live_workers(redis_client: Redis, client: FlaskClient) -> list[str]:
    """The workers of the client's queue alive (by their heartbeats) that RQ's records say are idle."""
    python_queue = language_queue(client.application.extensions["executor"].settings.queue_name, "python")
    live = live_workers(redis_client)
    return [
        worker.name
        for worker in Worker.all(connection=redis_client)
        if worker.name in live and worker.get_state() == "idle" and python_queue in worker.queue_names()
    ]


@needs_root
def test_two_fork_bombs_at_once_on_two_workers_each_get_the_whole_process_budget(
    either_client: FlaskClient, settings: Settings, redis_client: Redis
) -> None:
    client = either_client
    # The premise: two of its workers idle (an earlier test's job may still be ending on one, and its
    # processes would count against that slot's budget).
    idle_before = time.monotonic() + 30
    while len(idle_live_workers(redis_client, client)) < 2:
        assert time.monotonic() < idle_before, "fewer than two workers became idle"
        time.sleep(0.1)
    bomb = {"code": BOMB, "args": BOMB_ARGS, "timeout": 10}
    job_ids = [client.post("/api/v1/execute", json=bomb).get_json()["job_id"] for _ in range(2)]
    views = [poll_until(client, job_id, {"success", "failed", "timeout"}) for job_id in job_ids]
    # Each program is one of its own budget's processes; a budget shared by both would give 63 in all.
    assert [int(view["stdout"]) for view in views] == [settings.max_processes - 1] * 2
    first, second = (Job.fetch(job_id, connection=redis_client) for job_id in job_ids)
    assert first.worker_name != second.worker_name
    assert first.started_at and first.ended_at and second.started_at and second.ended_at
    assert first.started_at < second.ended_at and second.started_at < first.ended_at  # they overlapped


def _syscall(pid: int) -> int | None:
    try:
        first = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None
