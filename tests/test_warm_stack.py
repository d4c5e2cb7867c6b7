"""Warm starts through the whole stack (docs/warm-start.md): by default the Procfile's worker starts
Python programs from its zygote, and other languages cold; EXECUTOR_WARM_START=0 starts them all cold.
Needs root, bubblewrap and cgroups, as the warm path does."""

import os

import pytest
from redis import Redis

from executor.settings import Settings
from tests.stack import PID_1, WorkerProcesses, own_queue, poll_until, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the warm path runs as a root worker's slot does")


def test_a_worker_by_default_runs_python_warm_and_bash_cold(
    settings: Settings, pool: WorkerProcesses, redis_client: Redis
) -> None:
    pool.env = {name: value for name, value in pool.env.items() if name != "EXECUTOR_WARM_START"}
    client, _ = own_queue(settings, pool, redis_client, 1)
    warm = poll_until(client, submit(client, PID_1), {"success"})
    assert warm["stdout"] == "pytho\n"  # its init is a fork of the zygote
    second = poll_until(client, submit(client, "print(input())", stdin="again"), {"success"})
    assert second["stdout"] == "again\n"
    first_word = "read -r -d '' first < /proc/1/cmdline; echo \"${first##*/}\" | cut -c1-5"
    bash = poll_until(client, submit(client, first_word, language="bash"), {"success"})
    assert bash["stdout"] == "bwrap\n"
    # The cold run's clean-up left the zygote serving.
    assert poll_until(client, submit(client, PID_1), {"success"})["stdout"] == "pytho\n"


def test_a_worker_with_warm_starts_off_runs_python_cold(
    settings: Settings, pool: WorkerProcesses, redis_client: Redis
) -> None:
    pool.env = {**pool.env, "EXECUTOR_WARM_START": "0"}
    client, _ = own_queue(settings, pool, redis_client, 1)
    assert poll_until(client, submit(client, PID_1), {"success"})["stdout"] == "bwrap\n"
