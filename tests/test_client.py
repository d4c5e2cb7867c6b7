"""The Python client (executor.client) against the Procfile's web process under gunicorn: every
method, typed errors carrying the API's codes, retries of 503 that honour Retry-After, and the
package that `pip install .` builds."""

import http.server
import itertools
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bench.stack import announce_every_language
from devtools.local_redis import RedisServer, start_redis, stop_redis
from executor.client import Busy, Client, NotFound, Refused
from tests.stack import REPO, stop_process
from tests.test_web_server import request, start_web, web_port

__all__ = ["web_port"]  # the fixture, shared with the web server's tests


@pytest.fixture
def client(web_port: int) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{web_port}") as made:
        yield made


def test_run_returns_a_typed_result(client: Client) -> None:
    result = client.run("import sys; print(sys.stdin.read()[::-1])", stdin="olleh", timeout=5)
    assert (result.status, result.stdout, result.return_code, result.ended) == ("success", "hello\n", 0, True)
    judged = client.run("print(int(input()) * 2)", tests=[{"stdin": "2", "expected_output": "4"}])
    assert (judged.status, judged.raw["passed"], judged.tests[0]["status"]) == ("success", 1, "success")


def test_submit_get_wait_and_cancel(client: Client) -> None:
    job_id = client.submit("import time; time.sleep(30)", timeout=30)
    assert client.get(job_id).job_id == job_id
    assert client.cancel(job_id).status == "canceled"
    quick = client.submit("print('waited')")
    assert client.wait(quick).stdout == "waited\n"


def test_errors_are_typed_and_carry_the_apis_code(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.get("00000000-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(Refused) as refused:
        client.run("print(1)", timeout=10_000)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert refused.value.details[0]["field"] == "timeout"


def test_stream_yields_the_output_then_the_result(client: Client) -> None:
    job_id = client.submit("import time\nprint('one', flush=True)\ntime.sleep(0.5)\nprint('two')")
    events = list(client.stream(job_id))
    assert "".join(event.data["data"] for event in events if event.event == "stdout") == "one\ntwo\n"
    assert (events[-1].event, events[-1].data["status"]) == ("result", "success")


def test_batch_and_languages(client: Client) -> None:
    batch = client.batch([{"code": "print(1)", "ref": "a"}, {"code": "print(2)", "ref": "b"}])
    view = client.batch_status(batch["batch_id"], wait=True)
    assert (view["status"], [job["ref"] for job in view["jobs"]]) == ("completed", ["a", "b"])
    assert "python" in {language["id"] for language in client.languages()}


def test_a_503_and_a_429_are_retried_after_the_servers_retry_after() -> None:
    answers = [503, 429, 200]
    arrivals: list[float] = []

    class Busy503(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrivals.append(time.monotonic())
            status = answers.pop(0)
            code = {503: b"unavailable", 429: b"rate_limited"}.get(status)
            body = b'{"error": {"code": "' + code + b'", "message": "busy"}}' if code else b"[]"
            self.send_response(status)
            self.send_header("Retry-After", "0.3")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy503)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{server.server_address[1]}") as client:
            assert client.languages() == []
        pauses = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert len(pauses) == 2 and min(pauses) >= 0.29, pauses
        answers[:] = [503, 503]
        with (
            Client(f"http://127.0.0.1:{server.server_address[1]}", retries=1) as client,
            pytest.raises(Busy) as busy,
        ):
            client.languages()
        assert (busy.value.status, busy.value.code) == (503, "unavailable")
    finally:
        server.shutdown()
        server.server_close()


def test_a_call_made_while_redis_is_away_is_retried_until_it_answers(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The real web process answers 503 with Retry-After while its Redis is stopped; the client waits
    as told and gets its answer once Redis is back, with no error reaching the caller."""
    own_redis = start_redis(str(tmp_path / "redis"))
    announce_every_language(Redis.from_url(own_redis.url))
    restarted: list[RedisServer] = []
    back = threading.Timer(
        1.5, lambda: restarted.append(start_redis(str(tmp_path / "redis"), port=own_redis.port))
    )
    process = None
    try:
        process, port = start_web({**stack_env, "REDIS_URL": own_redis.url})
        stop_redis(own_redis)
        assert request(port, "GET", "/api/v1/languages")[0] == 503  # the premise: Redis is away
        back.start()
        began = time.monotonic()
        with Client(f"http://127.0.0.1:{port}") as client:
            offered = client.languages()
        back.join()
        assert time.monotonic() - began >= 1.4  # answered only once Redis was back
        assert "python" in {language["id"] for language in offered}
    finally:
        back.cancel()
        if back.is_alive():
            back.join()
        if process is not None:
            stop_process(process)
        for server in [own_redis, *restarted]:
            stop_redis(server)


def archive_text(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(next(name for name in archive.namelist() if name.endswith(suffix))).decode()


def test_pip_builds_a_package_whose_client_needs_none_of_the_servers_dependencies(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w", str(tmp_path)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("executor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith("METADATA"))
        requires = [
            line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist")
        ]
        assert "executor/client/client.py" in archive.namelist()
        assert "License-Expression: MIT" in archive.read(metadata).decode()
    base = [line for line in requires if "extra ==" not in line]
    assert sorted(base) == [
        "Requires-Dist: click>=8.1",
        "Requires-Dist: httpx-sse>=0.4",
        "Requires-Dist: httpx>=0.28",
        "Requires-Dist: rich>=13",
    ]
    entry_points = archive_text(wheel, "entry_points.txt")
    assert "executor = executor.client.cli:main" in entry_points
    assert any(line.startswith("Requires-Dist: flask") and 'extra == "server"' in line for line in requires)
    assert any(line.startswith("Requires-Dist: mcp") and 'extra == "mcp"' in line for line in requires)


def test_pip_install_gives_an_executor_command_that_runs_a_program(web_port: int, tmp_path: Path) -> None:
    """`pip install .` into a bare virtualenv, as a user would, then `executor run hello.py`."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    installed = subprocess.run(
        [str(tmp_path / "venv/bin/pip"), "install", "--quiet", str(REPO)],
        check=False,
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    hello = tmp_path / "hello.py"
    hello.write_text("print('hello from a pip install')\nraise SystemExit(4)")
    done = subprocess.run(
        [str(tmp_path / "venv/bin/executor"), "--url", f"http://127.0.0.1:{web_port}", "run", str(hello)],
        check=False,
        timeout=60,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (4, "hello from a pip install\n"), done.stderr
    importable = subprocess.run(
        [str(tmp_path / "venv/bin/python"), "-c", "import flask"], check=False, capture_output=True
    )
    assert importable.returncode != 0  # the client came without the server's dependencies
