"""The HTTP routes of API.md: thin views that validate, call the job queue and shape JSON."""

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError
from redis.exceptions import RedisError

from executor.jobs.announcements import offered_languages
from executor.jobs.liveness import live_workers
from executor.jobs.queue import JobAlreadyEnded, JobNotFound, LanguageNotOffered, QueueFull, Snapshot
from executor.jobs.statuses import TERMINAL_STATUSES
from executor.jobs.views import JobView
from executor.web.auth import client_owner
from executor.web.errors import APIError, unavailable, validation_error
from executor.web.schemas import Health, JobAccepted, LanguageInfo
from executor.web.services import services

api = Blueprint("api", __name__)

TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no", ""}


@api.post("/api/v1/execute")
def submit() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    """Queue one program; with ?wait=true, answer with its result when it is ready in time."""
    wait = _wait_requested()
    program = _validated_request()
    jobs = services().jobs
    owner = client_owner()
    try:
        job, view = jobs.submit_and_wait(program, owner) if wait else (jobs.submit(program, owner), None)
    except QueueFull as full:
        raise unavailable(f"The service is busy ({full}); retry shortly.") from full
    except LanguageNotOffered as missing:
        detail = {"field": "language", "message": str(missing), "type": "language_not_offered"}
        raise APIError(
            422, f"language: {missing}; GET /api/v1/languages lists those offered.", [detail]
        ) from missing
    if view is not None and view.status in TERMINAL_STATUSES:
        return _view_json(view), 200
    status_url = f"/api/v1/execute/{job.id}"
    accepted = JobAccepted(
        job_id=job.id,
        message=f"Job queued; poll {status_url} for its result.",
        status_url=status_url,
    )
    return jsonify(accepted.model_dump()), 202, {"Location": status_url}


@api.get("/api/v1/execute/<job_id>")
def poll(job_id: str) -> Response:
    """The job's status, and its result once it has ended; ?wait=true holds the answer until then.

    A poll may write: a repeat poll that comes too soon leaves its mark and is held for the rest of
    its pace (executor.jobs.pacing), and a started job whose worker died is settled as lost by the
    read that notices it (executor.jobs.liveness).
    """
    jobs = services().jobs
    if _wait_requested():
        return _view_json(jobs.wait(_find(job_id)))
    return _view_json(jobs.paced_view(_find(job_id, paced=True)))


@api.delete("/api/v1/execute/<job_id>")
def cancel(job_id: str) -> Response:
    """Cancel a job that has not ended."""
    try:
        view = services().jobs.cancel(_find(job_id))
    except JobAlreadyEnded as ended:
        raise APIError(409, f"Job {job_id} has already ended; there is nothing to cancel.") from ended
    return _view_json(view)


@api.get("/api/v1/languages")
def languages() -> Response:
    """The languages the workers have announced (API.md 1.1): what a job may be written in now."""
    client_owner()  # only to refuse callers without a valid key; languages belong to no one
    # In the registry's order (python first), then any this web process does not know, by id.
    order = {key: position for position, key in enumerate(services().languages)}
    offered = sorted(
        offered_languages(services().redis),
        key=lambda found: (order.get(found["id"], len(order)), found["id"]),
    )
    return jsonify([LanguageInfo.model_validate(found).model_dump() for found in offered])


@api.get("/health")
def health() -> tuple[Response, int]:
    """200 when Redis answers, 503 when it does not; who is working and what waits."""
    jobs = services().jobs
    try:
        live = live_workers(jobs.connection)
        report = Health(
            status="ok",
            redis="ok",
            workers=len(live),
            queued=jobs.waiting_count(),
            sandbox=", ".join(sorted(set(live.values()))) or "unknown (no live worker)",
        )
    except RedisError as error:
        report = Health(
            status="unavailable", redis=f"unreachable: {error}", workers=0, queued=0, sandbox="unknown"
        )
    return jsonify(report.model_dump()), 200 if report.status == "ok" else 503


def _find(job_id: str, *, paced: bool = False) -> Snapshot:
    """The caller's job, or 404: another client's job is as absent as one that never existed."""
    try:
        return services().jobs.find(job_id, client_owner(), paced=paced)
    except JobNotFound as missing:
        raise APIError(404, f"No job with id {job_id!r}; it never existed or has expired.") from missing


def _wait_requested() -> bool:
    """Read ?wait, refusing words that are neither true nor false."""
    word = request.args.get("wait", "false").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    detail = {"field": "wait", "message": "must be true or false", "type": "bool_parsing"}
    raise APIError(422, "wait: must be true or false", [detail])


def _validated_request() -> Any:
    """The body as a validated request model, or the matching 400, 415 or 422."""
    if not request.is_json:
        raise APIError(415, "Send the program as JSON with Content-Type: application/json.")
    try:
        body = json.loads(request.get_data(cache=False))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise APIError(400, f"The body is not valid JSON: {error}.") from error
    if not isinstance(body, dict):
        raise APIError(400, "The body must be a JSON object.")
    try:
        return services().request_model.model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from error


def _view_json(view: JobView) -> Response:
    """A job view as JSON, leaving out fields that do not apply yet.

    Written by pydantic in one pass: a view carries up to megabytes of output, which the standard
    library's encoder (behind jsonify) takes several milliseconds per MB to escape.
    """
    body = view.model_dump_json(exclude_none=view.status not in TERMINAL_STATUSES)
    return Response(body, mimetype="application/json")
