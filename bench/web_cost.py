"""`python -m bench.web_cost`: what the web process itself spends per request, without HTTP.

The companion of `bench.worker_cost` for the other half of the service: the Flask app is called as
a WSGI application in this process (no gunicorn, no sockets to a client) against a private
redis-server, so what is timed is Flask, validation, RQ and redis-py, and our views. Two requests,
each N times: a poll of a finished job (`GET /api/v1/execute/<id>`, the view a `?wait=true` answer
also serves) and a submission (`POST /api/v1/execute`, answered 202). The job is finished
beforehand by a worker in this process with its program stubbed. gunicorn's own work per request
(parsing, thread hand-offs, the client's socket) comes on top and is not measured here.
"""

import argparse
import io
import json
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from flask import Flask
from redis import Redis
from werkzeug.test import EnvironBuilder

from bench.procstat import cpu_times, own_cpu_s
from bench.stack import announce_every_language, private_redis
from bench.worker_cost import run_stubbed_worker
from executor.settings import Settings
from executor.web.app import create_app

QUEUE_NAME = "web-cost"
PROGRAM = json.dumps({"code": "print('hello')", "language": "python"}).encode()


def request_caller(app: Flask, method: str, path: str, body: bytes = b"") -> Callable[[], tuple[str, bytes]]:
    """A function that sends this one request to the app and returns its status line and body. The
    WSGI environment is built once, so building it is not part of what is timed."""
    builder = EnvironBuilder(path=path, method=method, data=body, content_type="application/json")
    environ = builder.get_environ()
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = status

    def call() -> tuple[str, bytes]:
        body_read = b"".join(app({**environ, "wsgi.input": io.BytesIO(body)}, start_response))
        return answer["status"], body_read

    return call


def measure(requests: int) -> dict[str, float]:
    """Time `requests` polls of a finished job, then `requests` submissions."""
    with (
        tempfile.TemporaryDirectory(prefix="executor-web-cost-") as temp_dir,
        private_redis(temp_dir) as server,
    ):
        settings = Settings(redis_url=server.url, queue_name=QUEUE_NAME, max_queue_depth=requests + 1)
        connection = Redis.from_url(server.url)
        announce_every_language(connection)
        app = create_app(settings, connection)
        submit = request_caller(app, "POST", "/api/v1/execute", PROGRAM)
        status, body = submit()
        if not status.startswith("202"):
            raise RuntimeError(f"the first submission was answered {status}: {body!r}")
        job_id = json.loads(body)["job_id"]
        run_stubbed_worker(server.url, QUEUE_NAME, "WARNING")
        poll = request_caller(app, "GET", f"/api/v1/execute/{job_id}")
        status, body = poll()
        if json.loads(body).get("status") != "success":
            raise RuntimeError(f"the stubbed job did not finish: {status} {body!r}")
        figures: dict[str, float] = {"requests": requests}
        # Polls first: the submissions fill the queue, which a poll scans for the job's position.
        for name, call, expected in (("poll", poll, "200"), ("submit", submit, "202")):
            redis_before, cpu_before = cpu_times(server.process.pid).own_s, own_cpu_s()
            answers = [call()[0] for _ in range(requests)]
            cpu_after, redis_after = own_cpu_s(), cpu_times(server.process.pid).own_s
            figures[f"{name}_ok"] = sum(answer.startswith(expected) for answer in answers)
            figures[f"{name}_cpu_ms"] = (cpu_after - cpu_before) * 1000 / requests
            figures[f"{name}_redis_cpu_ms"] = (redis_after - redis_before) * 1000 / requests
    return figures


def main(argv: list[str]) -> int:
    """Print one line for people and one JSON line; exit 1 unless every request got its usual answer."""
    parser = argparse.ArgumentParser(prog="python -m bench.web_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests of each kind, default 3000")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    figures = measure(args.requests)
    for name in ("submit", "poll"):
        print(f"{name}: web CPU {figures[f'{name}_cpu_ms']:.3f} ms/request,", end=" ")
        print(f"redis-server CPU {figures[f'{name}_redis_cpu_ms']:.3f} ms/request,", end=" ")
        print(f"{figures[f'{name}_ok']:.0f}/{args.requests} answered as usual")
    print(json.dumps({"bench": "web_cost", **figures}))
    every_answer_usual = figures["submit_ok"] == figures["poll_ok"] == args.requests
    return 0 if every_answer_usual else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
