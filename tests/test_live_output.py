"""Live output (API.md 1.1): server-sent events in the order written, each within 250 ms of being
written, resumable with Last-Event-ID, ending with the result; and at once for an ended job."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
from flask.testing import FlaskClient
from redis import Redis

from executor.jobs.live import FIRST_ID, LivePublisher, live_key, read_events
from tests.stack import stop_process, submit

# Prints a number with the time it was written, three times, a second apart; first it waits half a
# second, so the test's stream is open before the first line (a line written earlier is replayed).
TIMED = (
    "import sys, time\n"
    "time.sleep(0.5)\n"
    "for n in range(3):\n"
    "    print(n, time.time(), flush=True)\n"
    "    print('err', n, file=sys.stderr, flush=True)\n"
    "    time.sleep(1)\n"
)


def events(client: FlaskClient, job_id: str, last_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Each event as it arrives, with the time it arrived."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    response = client.get(f"/api/v1/execute/{job_id}/events", headers=headers, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    pending = ""
    for chunk in response.response:
        pending += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in pending:
            block, pending = pending.split("\n\n", 1)
            if block.startswith(":"):
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            yield {
                "id": fields["id"],
                "event": fields["event"],
                "data": json.loads(fields["data"]),
                "at": time.time(),
            }


def test_output_arrives_in_order_within_250_ms_and_the_result_ends_the_stream(client: FlaskClient) -> None:
    job_id = submit(client, TIMED, timeout=10)
    seen = list(events(client, job_id))
    names = [event["event"] for event in seen]
    assert names[-1] == "result" and seen[-1]["data"]["status"] == "success"
    assert "started" in [event["data"].get("status") for event in seen if event["event"] == "status"]
    stdout = [event for event in seen if event["event"] == "stdout"]
    lines = [line for event in stdout for line in event["data"]["data"].splitlines()]
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    for event in stdout:  # each piece: how long after its program wrote it
        written = float(event["data"]["data"].split()[1])
        assert event["at"] - written < 0.25, event["at"] - written
    assert (
        "".join(event["data"]["data"] for event in seen if event["event"] == "stderr")
        == "err 0\nerr 1\nerr 2\n"
    )


def test_a_client_that_reconnects_with_last_event_id_gets_only_what_it_missed(client: FlaskClient) -> None:
    job_id = submit(client, TIMED, timeout=10)
    first = list(events(client, job_id))
    outputs = [event for event in first if event["event"] in ("stdout", "stderr")]
    resumed = list(events(client, job_id, last_id=outputs[0]["id"]))
    assert [event["id"] for event in resumed if event["event"] != "result"] == [
        event["id"] for event in first[first.index(outputs[0]) + 1 :] if event["event"] != "result"
    ]
    assert resumed[-1]["event"] == "result"


def test_an_ended_job_answers_with_its_events_and_result_at_once(client: FlaskClient, run: Any) -> None:
    job_id = run("print('done')")["job_id"]
    began = time.monotonic()
    seen = list(events(client, job_id))
    assert time.monotonic() - began < 1
    assert seen[-1]["event"] == "result" and seen[-1]["data"]["stdout"] == "done\n"


def test_a_short_job_writes_no_live_stream_and_its_events_are_made_from_its_result(
    client: FlaskClient, run: Any, redis_client: Redis
) -> None:
    """A one-run job that ends before the first flush writes nothing to Redis for its live output;
    a stream of it gets the same events from its result, with ids that resume among them."""
    job_id = run("import sys\nprint('out')\nprint('err', file=sys.stderr)")["job_id"]
    assert not redis_client.exists(live_key(job_id))
    seen = list(events(client, job_id))
    assert [(event["event"], event["id"]) for event in seen] == [
        ("status", "0-1"),
        ("stdout", "0-2"),
        ("stderr", "0-3"),
        ("result", "0-3"),
    ]
    assert (seen[0]["data"], seen[1]["data"], seen[2]["data"]) == (
        {"status": "started"},
        {"data": "out\n"},
        {"data": "err\n"},
    )
    assert [event["event"] for event in events(client, job_id, last_id="0-2")] == ["stderr", "result"]


def test_a_stream_open_while_a_short_job_runs_ends_with_it(client: FlaskClient) -> None:
    """The job's result wakes the stream's blocked read, which its live stream, never written, cannot."""
    job_id = submit(client, "import time\ntime.sleep(0.03)\nprint('quick')", timeout=10)
    began = time.monotonic()
    seen = list(events(client, job_id))
    assert time.monotonic() - began < 1.5  # a read blocks 2 s: not waited out
    assert [event["event"] for event in seen][-2:] == ["stdout", "result"]
    assert seen[-1]["data"]["stdout"] == "quick\n"


def test_a_queued_job_starts_with_its_queue_status(client: FlaskClient, settings: Any) -> None:
    from executor.web.app import create_app

    idle = create_app(settings.model_copy(update={"queue_name": "nobody-streams-here"})).test_client()
    job_id = submit(idle, "print(1)")
    response = idle.get(f"/api/v1/execute/{job_id}/events", buffered=False)
    try:
        first = next(iter(response.response))
        text = first.decode() if isinstance(first, bytes) else first
        assert text.startswith("id: 0-0\nevent: status\n") and '"queued"' in text
    finally:
        response.close()
        idle.delete(f"/api/v1/execute/{job_id}")


def test_an_unknown_job_streams_nothing(client: FlaskClient) -> None:
    assert client.get("/api/v1/execute/00000000-0000-4000-8000-000000000000/events").status_code == 404


def test_the_output_of_each_test_case_says_which_case_it_is(client: FlaskClient) -> None:
    tests = [{"stdin": "first", "expected_output": "first"}, {"stdin": "second", "expected_output": "second"}]
    job_id = submit(client, "print(input())", tests=tests)
    seen = list(events(client, job_id))
    outputs = [(event["data"]["test"], event["data"]["data"]) for event in seen if event["event"] == "stdout"]
    assert outputs == [(0, "first\n"), (1, "second\n")]
    assert seen[-1]["data"]["passed"] == 2


def test_a_queued_job_canceled_ends_its_stream_with_the_result(settings: Any) -> None:
    """No worker ever writes an `end` entry for a job canceled in the queue: the stream sees the
    status after one quiet read and ends with the canceled result."""
    from executor.web.app import create_app
    from executor.web.events import READ_BLOCK_MS

    idle = create_app(settings.model_copy(update={"queue_name": "nobody-streams-here"})).test_client()
    job_id = submit(idle, "print(1)")
    threading.Timer(0.5, lambda: idle.delete(f"/api/v1/execute/{job_id}")).start()
    began = time.monotonic()
    seen = list(events(idle, job_id))
    assert [event["event"] for event in seen] == ["status", "result"]
    assert seen[-1]["data"]["status"] == "canceled"
    assert time.monotonic() - began < 0.5 + 2 * READ_BLOCK_MS / 1000


def test_streams_beyond_the_limit_are_refused_until_one_closes(settings: Any, workers: Any) -> None:
    """At most EXECUTOR_MAX_STREAMS open at once per web process: one more gets a 503 with
    Retry-After (the threads left serve everything else), and a stream that ends gives its slot back."""
    from executor.web.app import create_app

    app = create_app(settings.model_copy(update={"max_streams": 1, "web_threads": 2}))
    client = app.test_client()
    job_id = submit(client, "import time\nprint('a', flush=True)\ntime.sleep(1)", timeout=5)
    first = client.get(f"/api/v1/execute/{job_id}/events", buffered=False)
    assert first.status_code == 200
    refused = client.get(f"/api/v1/execute/{job_id}/events")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (503, "unavailable")
    assert int(refused.headers["Retry-After"]) >= 1
    assert b"event: result" in b"".join(
        chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in first.response
    )
    first.close()
    assert [event["event"] for event in events(client, job_id)][-1] == "result"


def test_more_streams_than_redis_pys_default_pool_all_reach_their_result(
    settings: Any, workers: Any, redis_client: Any
) -> None:
    """110 streams blocked in reads at once in one web process: each holds a Redis connection, past
    redis-py's default pool of 100, and every one still ends with the job's result."""
    from executor.web.app import create_app

    app = create_app(
        settings.model_copy(
            update={"queue_name": "nobody-streams-here", "web_threads": 150, "max_streams": 120}
        )
    )
    client = app.test_client()
    job_id = submit(client, "print(1)")
    endings: list[str] = []

    def follow() -> None:
        try:
            endings.append(list(events(client, job_id))[-1]["data"]["status"])
        except Exception as error:
            endings.append(repr(error))

    followers = [threading.Thread(target=follow) for _ in range(110)]
    for thread in followers:
        thread.start()
    # The premise: more than 100 reads blocked at once (the session's 2 idle workers may be 2 of them).
    deadline = time.monotonic() + 20
    while redis_client.info("clients")["blocked_clients"] < 110:
        assert time.monotonic() < deadline, "the streams never all blocked at once"
        time.sleep(0.05)
    client.delete(f"/api/v1/execute/{job_id}")
    for thread in followers:
        thread.join(timeout=30)
    assert endings == ["canceled"] * 110


def test_a_client_that_leaves_gives_its_stream_slot_back_within_a_read(
    stack_env: dict[str, str], workers: Any
) -> None:
    """Under gunicorn, a stream whose client has gone ends at its next quiet read, a block later at
    most, though its job prints nothing and no keep-alive is due for KEEP_ALIVE_S: then a new stream
    is admitted again."""
    from executor.web.events import KEEP_ALIVE_S, READ_BLOCK_MS
    from tests.test_web_server import request, start_web

    env = {**stack_env, "EXECUTOR_QUEUE_NAME": "nobody-streams-here", "EXECUTOR_MAX_STREAMS": "1"}
    web, port = start_web({**env, "EXECUTOR_WEB_THREADS": "4"})
    try:
        status, _, accepted = request(port, "POST", "/api/v1/execute", {"code": "print(1)"})
        assert status == 202
        path = f"/api/v1/execute/{accepted['job_id']}/events"
        leaving = socket.create_connection(("127.0.0.1", port), timeout=10)
        leaving.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert leaving.recv(4096).startswith(b"HTTP/1.1 200")
        leaving.close()
        left_at = time.monotonic()
        assert _stream_status(port, path) == 503  # its slot is still held
        while (answer := _stream_status(port, path)) == 503:
            assert time.monotonic() - left_at < 2 * READ_BLOCK_MS / 1000 + 2 < KEEP_ALIVE_S
            time.sleep(0.5)
        assert answer == 200
        request(port, "DELETE", f"/api/v1/execute/{accepted['job_id']}")
    finally:
        stop_process(web)


def _stream_status(port: int, path: str) -> int:
    """The status a new stream gets; the stream itself is closed at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return int(connection.recv(4096).split(b" ", 2)[1])


def test_each_case_s_output_keeps_its_own_characters_and_costs_no_round_trip_of_its_own() -> None:
    """A case boundary sends nothing by itself (the pieces carry their case, and the publisher's
    flushes batch many cases), and a character cut at the end of one case's output stays that
    case's, replaced, rather than joining the next case's first bytes."""
    connection = fakeredis.FakeRedis()
    publisher = LivePublisher(connection, "job", 60, skip_if_short=False)
    for index, chunk in enumerate((b"caf\xc3", b"\xa9 ok\n", b"last\n")):
        publisher.case(index)
        publisher.output("stdout", chunk)
    # Its flushing thread is not started yet: nothing may have been sent.
    assert not connection.exists(live_key("job"))
    publisher.start()
    publisher.close()
    read = read_events(connection, "job", FIRST_ID, None, ("results", "0-0"))
    outputs = [(event.data["test"], event.data["data"]) for event in read.events if event.name == "stdout"]
    assert outputs == [(0, "caf\ufffd"), (1, "\ufffd ok\n"), (2, "last\n")]
    assert [event.name for event in read.events] == ["status", "stdout", "stdout", "stdout", "end"]
