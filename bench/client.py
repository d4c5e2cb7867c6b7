"""HTTP clients of the API: stdlib threads, each with one keep-alive connection, timing every job."""

import http.client
import json
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bench.pool import Deadline, run_pool
from bench.samples import JobSample
from bench.workloads import Workload, new_token
from executor.jobs.statuses import TERMINAL_STATUSES

SOCKET_TIMEOUT_S = 60.0
# A job may wait behind every other client's job before it runs; past this it is reported lost.
JOB_LIMIT_S = 120.0


class Connection:
    """One HTTP/1.1 keep-alive connection, reopened when the server has closed it while idle."""

    def __init__(self, base_url: str, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        self.timeout_s = timeout_s
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.connection: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """The status and the decoded JSON body of one request."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in range(2):
            reused = self.connection is not None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # Only a reused connection may have been closed by the server's keep-alive timeout
                # before it read the request; a fresh one failing is a real error.
                if not reused or attempt == 1:
                    raise
                self.reconnects += 1
                continue
            if response.will_close:
                self.close()
            return response.status, json.loads(data) if data else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the socket; the next request opens a new one."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_job(
    connection: Connection, workload: Workload, wait: bool, poll_interval_s: float, deadline: Deadline
) -> JobSample:
    """Submit one job (with ?wait=true, or then poll GET) and time it until its terminal result arrives."""
    token = new_token()
    body = {"code": workload.code(token), "language": workload.language, "timeout": workload.timeout_s}
    codes: list[int] = []
    reconnects_before = connection.reconnects
    started = time.perf_counter()
    try:
        path = "/api/v1/execute?wait=true" if wait else "/api/v1/execute"
        code, view = connection.request("POST", path, body)
        submit_s = time.perf_counter() - started
        codes.append(code)
        polls = 0
        if code == 202:
            view, polls = _poll(connection, view["job_id"], poll_interval_s, deadline, codes)
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
        connection.close()
        return JobSample(False, "error", time.perf_counter() - started, http_codes=codes, error=repr(error))
    arrived = time.time()
    latency_s = time.perf_counter() - started
    status = view.get("status", "none") if isinstance(view, dict) else "none"
    if status not in TERMINAL_STATUSES:
        return JobSample(False, f"not terminal ({status})", latency_s, submit_s, polls, http_codes=codes)
    ok = status == "success" and workload.check(view.get("stdout", ""), token)
    return JobSample(
        ok=ok,
        status=status,
        latency_s=latency_s,
        # With ?wait=true the POST is the whole job (or a wait held until its deadline, then polled),
        # so it is no submit latency.
        submit_s=None if wait else submit_s,
        polls=polls,
        answer_delay_s=_answer_delay(view, arrived),
        http_codes=codes,
        reconnects=connection.reconnects - reconnects_before,
        error=None if ok else _failure_detail(view),
    )


def _failure_detail(view: dict[str, Any]) -> str:
    """What a job that did not succeed with its own output said about itself, in one short line."""
    said = (
        view.get("message")
        or (view.get("stderr") or "").strip()[-160:]
        or f"stdout {view.get('stdout')!r:.60}"
    )
    return (
        f"{view.get('status')} (return code {view.get('return_code')}, signal {view.get('signal')}): {said}"
    )


def _poll(
    connection: Connection, job_id: str, interval_s: float, deadline: Deadline, codes: list[int]
) -> tuple[Any, int]:
    """GET the job every `interval_s` until it is terminal; bounded in count and in time."""
    limit = deadline.child(JOB_LIMIT_S)
    max_polls = int(JOB_LIMIT_S / max(interval_s, 0.001)) + 1
    view: Any = None
    for polls in range(1, max_polls + 1):
        if limit.expired():
            return view, polls - 1
        time.sleep(interval_s)
        code, view = connection.request("GET", f"/api/v1/execute/{job_id}")
        codes.append(code)
        if code == 200 and view.get("status") in TERMINAL_STATUSES:
            return view, polls
        if code == 404:
            return view, polls
    return view, max_polls


def _answer_delay(view: dict[str, Any], arrived: float) -> float | None:
    """Seconds from the job's end (its ended_at) to the arrival of the answer; one clock, one machine."""
    ended_at = view.get("ended_at")
    if not ended_at:
        return None
    return arrived - datetime.fromisoformat(ended_at).timestamp()


def run_clients(
    base_url: str,
    workload: Workload,
    *,
    jobs: int,
    clients: int,
    mode: str,
    poll_interval_s: float,
    deadline: Deadline,
) -> tuple[list[JobSample], float]:
    """`clients` threads, each on its own connection, run `jobs` jobs between them.

    `mode` is "wait" (POST ?wait=true), "poll" (POST, then GET until terminal) or "mixed" (alternate).
    """
    local = threading.local()
    opened: list[Connection] = []

    def work(index: int) -> JobSample:
        if not hasattr(local, "connection"):
            local.connection = Connection(base_url)
            opened.append(local.connection)
        wait = mode == "wait" or (mode == "mixed" and index % 2 == 0)
        return run_job(local.connection, workload, wait, poll_interval_s, deadline)

    try:
        return run_pool(clients, jobs, deadline, work)
    finally:
        for connection in opened:
            connection.close()
