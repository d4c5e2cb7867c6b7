"""`Client`: every route of API.md as a method, with retries of 429 and 503 that honour Retry-After.

Built on httpx (connection reuse, timeouts) and httpx-sse (server-sent events), so neither HTTP nor
SSE parsing is written here.
"""

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse

from executor.client.errors import Busy, error_for

RETRIED_STATUSES = {429, 503}
TERMINAL = {
    "success",
    "failed",
    "timeout",
    "memory_limit",
    "output_limit",
    "compile_error",
    "wrong_answer",
    "canceled",
    "internal_error",
}


@dataclass(frozen=True)
class Result:
    """A job as the API shows it; `raw` holds every field, the common ones are attributes."""

    job_id: str
    status: str
    stdout: str = ""
    stderr: str = ""
    return_code: int | None = None
    execution_time: float | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def of(cls, view: Mapping[str, Any]) -> "Result":
        return cls(
            job_id=view["job_id"],
            status=view["status"],
            stdout=view.get("stdout") or "",
            stderr=view.get("stderr") or "",
            return_code=view.get("return_code"),
            execution_time=view.get("execution_time"),
            files=list(view.get("files") or []),
            tests=list(view.get("tests") or []),
            raw=dict(view),
        )


@dataclass(frozen=True)
class Event:
    """One server-sent event of a job: `status`, `stdout`, `stderr` or `result`, with its data."""

    id: str
    event: str
    data: Any


class Client:
    """A deployment of executor at `url`, called with `api_key` when it has API keys."""

    def __init__(
        self, url: str, api_key: str | None = None, *, retries: int = 5, timeout_s: float = 60.0
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.retries = retries

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def run(
        self,
        code: str,
        *,
        language: str = "python",
        stdin: str = "",
        files: Sequence[Mapping[str, Any]] = (),
        tests: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Result:
        """Run a program and return its result: submitted with ?wait=true, then waited for. Fields
        not given take the server's defaults."""
        request: dict[str, Any] = {"code": code, "language": language, **fields}
        given = {"stdin": stdin or None, "files": list(files) or None, "tests": tests, "timeout": timeout}
        request |= {name: value for name, value in given.items() if value is not None}
        view = self._call("POST", "/api/v1/execute", json=request, params={"wait": "true"})
        result = Result.of(view)
        return result if result.ended else self.wait(result.job_id)

    def submit(self, code: str, *, language: str = "python", **fields: Any) -> str:
        """Queue a program; its job id."""
        body = {"code": code, "language": language, **fields}
        return str(self._call("POST", "/api/v1/execute", json=body)["job_id"])

    def get(self, job_id: str) -> Result:
        """The job as it is now."""
        return Result.of(self._call("GET", f"/api/v1/execute/{job_id}"))

    def wait(self, job_id: str) -> Result:
        """The job once it has ended (each call held by the server until then, or a while)."""
        while not (
            result := Result.of(self._call("GET", f"/api/v1/execute/{job_id}", params={"wait": "true"}))
        ).ended:
            continue
        return result

    def cancel(self, job_id: str) -> Result:
        """Cancel a job that has not ended."""
        return Result.of(self._call("DELETE", f"/api/v1/execute/{job_id}"))

    def stream(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events as they come, ending with `result` (whose data is the job's view)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with connect_sse(self.http, "GET", f"/api/v1/execute/{job_id}/events", headers=headers) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise error_for(source.response.status_code, source.response.json())
            for sse in source.iter_sse():
                yield Event(sse.id, sse.event, sse.json())

    def batch(self, jobs: Sequence[Mapping[str, Any]], **fields: Any) -> dict[str, Any]:
        """Queue a batch (all or none); its id, status URL and jobs."""
        answer: dict[str, Any] = self._call("POST", "/api/v1/batches", json={"jobs": list(jobs), **fields})
        return answer

    def batch_status(self, batch_id: str, *, wait: bool = False) -> dict[str, Any]:
        """A batch's counts and jobs; with `wait`, once every job has ended (at most a minute)."""
        params = {"wait": "true"} if wait else None
        answer: dict[str, Any] = self._call("GET", f"/api/v1/batches/{batch_id}", params=params)
        return answer

    def languages(self) -> list[dict[str, Any]]:
        """The languages the workers offer now."""
        answer: list[dict[str, Any]] = self._call("GET", "/api/v1/languages")
        return answer

    def _call(self, method: str, path: str, **options: Any) -> Any:
        """One API call, retried on 429 and 503 after the server's Retry-After (else growing pauses)."""
        for attempt in range(self.retries + 1):
            response = self.http.request(method, path, **options)
            if response.status_code not in RETRIED_STATUSES or attempt == self.retries:
                break
            time.sleep(_pause(response, attempt))
        body = response.json() if response.content else None
        if response.status_code >= 400:
            error = error_for(response.status_code, body)
            if response.status_code in RETRIED_STATUSES:
                raise Busy(error.status, error.code, error.message, error.details)
            raise error
        return body


def _pause(response: httpx.Response, attempt: int) -> float:
    """The server's Retry-After, in seconds, or 0.5 s doubling per attempt."""
    try:
        return min(30.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return min(30.0, 0.5 * 2**attempt)
