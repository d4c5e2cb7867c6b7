"""Warm starts through the whole stack (docs/warm-start.md): with EXECUTOR_WARM_START=1 the Procfile's
worker starts Python programs from its zygote, and other languages cold. Needs root, bubblewrap and
cgroups, as the warm path does."""

import os

import pytest
from redis import Redis

from executor.settings import Settings
from tests.stack import WorkerProcesses, own_queue, poll_until, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the warm path runs as a root worker's slot does")
# A program sees its pid: 1 when the zygote forked it (pid 1 of its own namespace), 2 when bubblewrap
# started it cold (its init is pid 1).
PID = "import os\nprint(os.getpid())\n"


def test_a_worker_with_warm_starts_on_runs_python_warm_and_bash_cold(
    settings: Settings, pool: WorkerProcesses, redis_client: Redis
) -> None:
    pool.env = {**pool.env, "EXECUTOR_WARM_START": "1"}
    client, _ = own_queue(settings, pool, redis_client, 1)
    assert poll_until(client, submit(client, PID), {"success"})["stdout"] == "1\n"  # the zygote forked it
    second = poll_until(client, submit(client, "print(input())", stdin="again"), {"success"})
    assert second["stdout"] == "again\n"
    bash = poll_until(client, submit(client, "echo $$", language="bash"), {"success"})
    assert bash["stdout"] == "2\n"
    # The cold run's clean-up left the zygote serving.
    assert poll_until(client, submit(client, PID), {"success"})["stdout"] == "1\n"
