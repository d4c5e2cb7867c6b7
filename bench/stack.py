"""A real stack on loopback: a private redis-server, the Procfile's web process and W Procfile workers.

Every process is started here and stopped here by its pid, in a `finally`, so an error or Ctrl-C
never leaves one behind.
"""

import contextlib
import http.client
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from bench.pool import Deadline
from bench.procstat import (
    children,
    cpu_times,
    descendants,
    reap_orphans,
    rss_mib,
    zygote_cpu_s,
    zygote_memory_mib,
)
from devtools.local_redis import RedisServer, free_port, start_redis, stop_redis
from devtools.run_local import procfile_command

REPO = Path(__file__).resolve().parent.parent
QUEUE = "bench"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
WATCH_INTERVAL_S = 0.5


class StackDied(RuntimeError):
    """A process of the stack exited while the bench was using it."""


@dataclass(frozen=True)
class StackUsage:
    """CPU seconds used so far by each role of the service, and by the programs its workers ran."""

    web_s: float
    workers_s: float
    redis_s: float
    program_s: float
    # Commands redis-server has processed since it started: the service's round trips, roughly.
    redis_commands: int

    @property
    def service_s(self) -> float:
        """The service's own CPU: gunicorn, rq workers and redis-server, without the programs."""
        return self.web_s + self.workers_s + self.redis_s


@dataclass
class Stack:
    """The running processes and the URL of the API."""

    redis: RedisServer
    web: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    base_url: str
    port: int
    log_dir: str
    client: Redis | None = None
    # What every process of the stack was started with (bench/hosts.py starts more workers with it).
    env: dict[str, str] = field(default_factory=dict)

    def web_pids(self) -> list[int]:
        """Gunicorn's master and its workers."""
        return [self.web.pid, *children(self.web.pid)]

    def usage(self) -> StackUsage:
        """Each process's utime+stime; the programs are the rq workers' reaped children (cutime+cstime),
        that is the sandbox and the program in it, and the live zygotes with the runs they reaped."""
        worker_pids = [worker.pid for worker in self.workers]
        return StackUsage(
            web_s=sum(cpu_times(pid).own_s for pid in self.web_pids()),
            workers_s=sum(cpu_times(pid).own_s for pid in worker_pids),
            redis_s=cpu_times(self.redis.process.pid).own_s,
            program_s=sum(cpu_times(pid).children_s for pid in worker_pids) + zygote_cpu_s(worker_pids),
            redis_commands=int(self.redis_client().info("stats")["total_commands_processed"]),
        )

    def redis_client(self) -> Redis:
        if self.client is None:
            self.client = Redis.from_url(self.redis.url, socket_timeout=5)
        return self.client

    def exited(self) -> str | None:
        """Which of our processes has exited, if one has: a dead worker would leave jobs queued forever."""
        for process in [self.redis.process, self.web, *self.workers]:
            if process.poll() is not None:
                return f"{_name(process)} (pid {process.pid}) exited with code {process.returncode}"
        return None

    @contextlib.contextmanager
    def watched(self, deadline: Deadline) -> Iterator[None]:
        """Cancel the run as soon as a process of the stack exits (another session's `pkill`, a crash),
        instead of polling jobs that nobody will run until every job's limit has passed."""
        stop = threading.Event()
        reasons: list[str] = []

        def watch() -> None:
            while not stop.wait(WATCH_INTERVAL_S):
                if reason := self.exited():
                    reasons.append(reason)
                    deadline.cancel()
                    return

        watcher = threading.Thread(target=watch, daemon=True, name="bench-watchdog")
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
        if reasons:
            logs = log_tails(self.log_dir)
            raise StackDied(f"{reasons[0]} during the run; its figures are not valid\n{logs}")

    def memory(self) -> dict[str, float]:
        """Resident memory in MiB: the largest rq worker, the largest zygote (a worker slot holds one
        per warm language it ran), all of gunicorn, redis-server."""
        return {
            "worker_rss_mib": max((rss_mib(worker.pid) for worker in self.workers), default=0.0),
            **zygote_memory_mib([worker.pid for worker in self.workers]),
            "web_rss_mib": sum(rss_mib(pid) for pid in self.web_pids()),
            "redis_rss_mib": rss_mib(self.redis.process.pid),
        }


@contextlib.contextmanager
def running_stack(
    workers: int,
    deadline: Deadline,
    *,
    redis_bind: Sequence[str] = (LOOPBACK,),
    settings: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Start redis, the web process and `workers` workers; stop them all on the way out, whatever happens.

    Redis listens on `redis_bind` (loopback by default); `settings` are environment variables every
    process gets on top of the bench's own.
    """
    with (
        tempfile.TemporaryDirectory(prefix="executor-bench-") as temp_dir,
        private_redis(temp_dir, redis_bind) as redis,
    ):
        started: list[subprocess.Popen[bytes]] = []
        stack: Stack | None = None
        try:
            port = free_port()
            env = {**_stack_env(redis.url, port), **(settings or {})}
            web = spawn(procfile_command("web"), env, os.path.join(temp_dir, "web-0.log"))
            started.append(web)
            pool = [
                spawn(procfile_command("worker"), env, os.path.join(temp_dir, f"worker-{n}.log"))
                for n in range(workers)
            ]
            started += pool
            stack = Stack(redis, web, pool, f"http://127.0.0.1:{port}", port, temp_dir, env=env)
            wait_ready(stack, workers, deadline)
            yield stack
        finally:
            if stack is not None and stack.client is not None:
                stack.client.close()
            for process in reversed(started):
                stop_process(process)


@contextlib.contextmanager
def private_redis(directory: str, bind: Sequence[str] = (LOOPBACK,)) -> Iterator[RedisServer]:
    """A password-protected redis-server with its data and log in `directory`, stopped on the way out."""
    with stdout_to(os.path.join(directory, "redis.log")):
        server = start_redis(os.path.join(directory, "redis"), password=secrets.token_hex(16), bind=bind)
    try:
        yield server
    finally:
        stop_redis(server)


def _stack_env(redis_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    # The config file binds 0.0.0.0; settings in this variable override it, keeping us on loopback.
    env.update(
        {
            "REDIS_URL": redis_url,
            "PORT": str(port),
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
            "EXECUTOR_QUEUE_NAME": QUEUE,
            "PYTHONPATH": str(REPO),
            # `gunicorn` and `rq` are found in the bench's own virtualenv, as `make` would find them.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


@contextlib.contextmanager
def stdout_to(path: str) -> Iterator[None]:
    """Point file descriptor 1 at `path` for a while: `start_redis` lets redis-server inherit our stdout,
    and its start-up warnings would land in the middle of the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def spawn(command: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    """Start one process of the stack in the repository, its output in `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_ready(stack: Stack, workers: int, deadline: Deadline) -> None:
    """Wait until /health answers 200 and counts every worker, or fail with the logs' last lines."""
    limit = deadline.child(READY_TIMEOUT_S)
    while not limit.expired():
        for process in [stack.web, *stack.workers]:
            if process.poll() is not None:
                raise RuntimeError(f"{_name(process)} exited early:\n{log_tails(stack.log_dir)}")
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=2)
            connection.request("GET", "/health")
            response = connection.getresponse()
            health = json.loads(response.read())
            connection.close()
            if response.status == 200 and health.get("workers") == workers:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the stack was not ready in {READY_TIMEOUT_S} s:\n{log_tails(stack.log_dir)}")


def _name(process: subprocess.Popen[bytes]) -> str:
    """The command a process was started with, for messages."""
    args = process.args
    return shlex.join(str(arg) for arg in args) if isinstance(args, list) else str(args)


def log_tails(log_dir: str, lines: int = 15) -> str:
    tails = []
    for path in sorted(Path(log_dir).glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(tails)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn and rq both shut down gracefully on it), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    helpers = children(process.pid)
    left = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        # Gunicorn's workers notice their master is gone, but a hung one would not: end them too.
        for pid in helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    reap_orphans(left)


def announce_every_language(connection: Redis) -> None:
    """Announce every language of the registry, as workers do at start: for measuring (or testing)
    the web process and the queue where no real worker runs."""
    from executor.jobs.announcements import announce, describe
    from executor.languages import build_languages, default_python

    announce(connection, [describe(language) for language in build_languages(default_python()).values()])
