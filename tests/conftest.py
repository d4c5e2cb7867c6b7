"""Fixtures: a real redis-server on a free port, real `rq worker` processes, and the app."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from devtools.local_redis import RedisServer, start_redis, stop_redis
from devtools.run_local import procfile_command
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import REPO, WEBHOOK_SECRET, WORKER_SECRET, WorkerProcesses, own_queue, stop_process, waiting
from workers import tasks


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
            # The Procfile's commands (rq, gunicorn) come from the virtualenv running the tests.
            "PATH": f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}",
            "EXECUTOR_TEST_SECRET": WORKER_SECRET,
            "EXECUTOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "EXECUTOR_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
            "EXECUTOR_WEBHOOK_RETRY_BASE_S": "0.2",
        }
    )
    return env


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        queue_name="tests",
        worker_heartbeat_s=0.5,
        worker_lost_after_s=3,
        webhook_secret=WEBHOOK_SECRET,
        webhook_allow_networks=("127.0.0.1/32",),
    )


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


@pytest.fixture(scope="session")
def workers(stack_env: dict[str, str], redis_client: Redis) -> Iterator[WorkerProcesses]:
    """Two real workers on the `tests` queue, for the whole session."""
    pool = WorkerProcesses(stack_env)
    try:
        pool.start(2)
        pool.wait_registered(redis_client, 2)
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def notifier(stack_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """The Procfile's notifier, delivering the session's callbacks."""
    process = subprocess.Popen(procfile_command("notifier"), env=stack_env, cwd=REPO)
    yield process
    stop_process(process)


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
    return waiting(client)


@pytest.fixture(scope="module")
def cold_client(settings: Settings, stack_env: dict[str, str], redis_client: Redis) -> Iterator[FlaskClient]:
    """An app on a queue of its own, whose two workers start every program cold
    (EXECUTOR_WARM_START=0), where the session's workers start Python programs warm by default."""
    pool = WorkerProcesses({**stack_env, "EXECUTOR_WARM_START": "0"})
    try:
        client, _ = own_queue(settings, pool, redis_client, 2)
        yield client
    finally:
        pool.stop_all()


@pytest.fixture(params=["cold", "warm"])
def either_client(request: pytest.FixtureRequest) -> FlaskClient:
    """A client whose workers start Python programs cold, then the session's, which start them warm
    (docs/warm-start.md): a test that takes it runs on both paths. The warm one is skipped where the
    warm path cannot run (not root), rather than run cold twice."""
    if request.param == "warm" and os.geteuid() != 0:
        pytest.skip("warm starts run as a root worker's slots do")
    name = "cold_client" if request.param == "cold" else "client"
    found: FlaskClient = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="session")
def stack_schema(app: Flask, workers: WorkerProcesses) -> Any:
    """The app's own OpenAPI document, loaded by schemathesis for fuzzing."""
    import schemathesis

    from executor.jobs.files import layout_problem
    from executor.languages import compiles, source_files

    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)

    settings: Settings = app.extensions["executor"].settings

    # Rules no JSON Schema can state: the paths of `files` taken together (each unique, none the
    # program's source file, none another's folder); a request's test cases with its other fields
    # (no top-level stdin, args or expected_output beside them; their timeouts within the job's
    # time); whether a callback URL may be called. Bodies breaking them get a documented 422 and are
    # left to tests/test_files_in.py, tests/test_judging_stack.py and tests/callbacks/, so that a
    # generated body the schema admits must be accepted.
    def files_fit(body: dict[str, Any], language: str | None) -> bool:
        if not isinstance(body.get("files"), list):
            return True
        paths = [file.get("path") for file in body["files"] if isinstance(file, dict)]
        return layout_problem(paths, source_files().get(language) if language else None) is None

    def cases_fit(body: dict[str, Any], language: str | None) -> bool:
        tests, timeout = body.get("tests"), body.get("timeout", 5.0)
        if not isinstance(tests, list):
            return True
        if (
            body.get("stdin")
            or body.get("args")
            or body.get("expected_output") is not None
            or body.get("outputs")
        ):
            return False
        compile_s = settings.compile_timeout if language and compiles(language) else 0.0
        return (
            not isinstance(timeout, int | float)
            or timeout * len(tests) + compile_s <= settings.max_job_seconds
        )

    @schema.hook("filter_body")
    def fields_fit_together(context: Any, body: Any) -> bool:
        if not isinstance(body, dict):
            return True
        if body.get("callback_url") is not None:
            return False
        if isinstance(body.get("jobs"), list):  # a batch: each of its jobs
            return all(fields_fit_together(context, job) for job in body["jobs"])
        language = body.get("language", "python")
        language = language if isinstance(language, str) else None
        return files_fit(body, language) and cases_fit(body, language)

    return schema


@pytest.fixture
def worker_slot_given_back() -> Iterator[None]:
    """A worker built in the test process takes a slot for the process's life; it is given back after."""
    yield
    slot = tasks.worker_slot() if tasks.worker_slot.cache_info().currsize else None
    if slot is not None:
        slot.lock_file.close()
    tasks.worker_slot.cache_clear()
    tasks.worker_sandbox.cache_clear()
    tasks.request_model.cache_clear()


@pytest.fixture
def pool(stack_env: dict[str, str]) -> Iterator[WorkerProcesses]:
    """Workers a test starts for itself (see stack.own_queue), all stopped at its end."""
    workers = WorkerProcesses(stack_env)
    yield workers
    workers.stop_all()
