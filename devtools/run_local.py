"""`make run`: Redis (private, unless REDIS_URL is set), web and workers, all stopped by one Ctrl-C."""

import os
import secrets
import shlex
import sys
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager

from devtools.local_redis import RedisServer, start_redis, stop_redis

DATA_DIR = os.path.join("data", "redis")
LOCAL_REDIS_PORT = 6399
PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_commands() -> dict[str, str]:
    """The Procfile's process types and their command lines."""
    return dict(parse_procfile(PROCFILE.read_text()).processes)


def procfile_command(name: str) -> list[str]:
    """One of the Procfile's commands as arguments: the bench and the tests start processes with it,
    exactly as a deployment does."""
    return shlex.split(procfile_commands()[name])


def _local_password() -> str:
    """A password kept beside the data, so the private Redis is not open even on loopback."""
    path = os.path.join(DATA_DIR, "password")
    if not os.path.exists(path):
        os.makedirs(DATA_DIR, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as file:
            file.write(secrets.token_hex(24))
    with open(path) as file:
        return file.read().strip()


def main() -> int:
    """Start everything in the Procfile, plus a private Redis when REDIS_URL is not set."""
    env = dict(os.environ)
    env.setdefault("PORT", "8000")
    redis: RedisServer | None = None
    if not env.get("REDIS_URL"):
        redis = start_redis(DATA_DIR, port=LOCAL_REDIS_PORT, password=_local_password())
        env["REDIS_URL"] = redis.url
        print(f"private Redis on 127.0.0.1:{LOCAL_REDIS_PORT}, data in {DATA_DIR}/", flush=True)
    manager = Manager()
    workers = int(env.get("EXECUTOR_WORKERS", "2"))
    for name, command in procfile_commands().items():
        copies = workers if name == "worker" else 1
        for index in range(1, copies + 1):
            manager.add_process(f"{name}.{index}", command, env=env)
    print(
        f"API on http://localhost:{env['PORT']}/ , dashboard on http://localhost:{env['PORT']}/rq", flush=True
    )
    try:
        manager.loop()
    finally:
        if redis is not None:
            stop_redis(redis)
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
