"""Fixtures: a real redis-server on a free port, real `rq worker` processes, and the app."""

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Worker

from executor.app import create_app
from executor.local_redis import RedisServer, start_redis, stop_redis
from executor.settings import Settings

REPO = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT_S = 30.0


def procfile_command(name: str) -> list[str]:
    """A command of the Procfile, so the tests start processes exactly as a deployment does."""
    for line in (REPO / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return shlex.split(command)
    raise KeyError(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of our own, on a free loopback port."""
    server = start_redis(str(tmp_path_factory.mktemp("redis")))
    yield server
    stop_redis(server)


@pytest.fixture(scope="session")
def stack_env(redis_server: RedisServer) -> dict[str, str]:
    """The environment the web and worker processes of the test stack get."""
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "EXECUTOR_QUEUE_NAME": "tests",
            "EXECUTOR_WORKER_HEARTBEAT_S": "0.5",
            "EXECUTOR_WORKER_LOST_AFTER_S": "3",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


class WorkerProcesses:
    """`rq worker` processes started from the Procfile line, stopped by pid at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, extra_env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            process = subprocess.Popen(
                procfile_command("worker"),
                env={**self.env, **(extra_env or {})},
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append(process)
        self.processes.extend(started)
        return started

    def wait_registered(self, connection: Redis, count: int) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while Worker.count(connection=connection) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} workers registered in time")
            time.sleep(0.05)

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            self.stop(process)


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        queue_name="tests",
        worker_heartbeat_s=0.5,
        worker_lost_after_s=3,
    )


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


@pytest.fixture(scope="session")
def workers(stack_env: dict[str, str], redis_client: Redis) -> Iterator[WorkerProcesses]:
    """Two real workers on the `tests` queue, for the whole session."""
    pool = WorkerProcesses(stack_env)
    pool.start(2)
    pool.wait_registered(redis_client, 2)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask, workers: WorkerProcesses) -> FlaskClient:
    """A client of the app, with workers behind it."""
    return app.test_client()


@pytest.fixture
def run(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Submit a program with ?wait=true and return its terminal view."""

    def submit_and_wait(code: str, **fields: Any) -> dict[str, Any]:
        response = client.post("/api/v1/execute?wait=true", json={"code": code, **fields})
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return submit_and_wait
