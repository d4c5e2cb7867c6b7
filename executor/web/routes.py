"""The HTTP routes of API.md: thin views that validate, call the job queue and shape JSON."""

import json
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, stream_with_context
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from executor.jobs.announcements import offered_languages
from executor.jobs.batches import Batch, BatchNotFound, BatchView, batch_json
from executor.jobs.liveness import live_workers
from executor.jobs.queue import JobAlreadyEnded, JobNotFound, LanguageNotOffered, QueueFull, Snapshot
from executor.jobs.request import without_ref
from executor.jobs.statuses import TERMINAL_STATUSES
from executor.jobs.views import JobView, view_json
from executor.web.auth import client_owner
from executor.web.errors import APIError, unavailable, validation_error
from executor.web.events import client_gone_check, live_events
from executor.web.schemas import BatchAccepted, BatchJobAccepted, Health, JobAccepted, LanguageInfo
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
        raise _not_offered(missing, "language") from missing
    g.job_id = job.id  # for the request's log line
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


@api.get("/api/v1/execute/<job_id>/events")
def events(job_id: str) -> Response:
    """The job's output as it is written, as server-sent events (API.md 1.1), ending with its result."""
    snapshot, owner = _find(job_id), client_owner()
    resume_from = request.headers.get("Last-Event-ID")
    shared = services()
    left = client_gone_check(request.environ.get("gunicorn.socket"))
    stream = live_events(shared.jobs, shared.live_reader, snapshot, owner, resume_from, client_left=left)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    held = shared.stream_gate.admit(lambda: stream_with_context(stream))
    return Response(held, mimetype="text/event-stream", headers=headers)


@api.delete("/api/v1/execute/<job_id>")
def cancel(job_id: str) -> Response:
    """Cancel a job that has not ended."""
    try:
        view = services().jobs.cancel(_find(job_id))
    except JobAlreadyEnded as ended:
        raise APIError(409, f"Job {job_id} has already ended; there is nothing to cancel.") from ended
    return _view_json(view)


@api.post("/api/v1/batches")
def submit_batch() -> tuple[Response, int, dict[str, str]]:
    """Queue every job of a batch, or none (API.md 1.1)."""
    current = services()
    body = _validated_request(current.batch_model)
    jobs = [(without_ref(job, current.request_model), job.ref) for job in body.jobs]
    try:
        batch = current.batches.submit(jobs, client_owner(), body.callback_url)
    except QueueFull as full:
        raise unavailable(f"The service is busy ({full}); retry shortly.") from full
    except LanguageNotOffered as missing:
        first = next(index for index, (job, _) in enumerate(jobs) if job.language == missing.language)
        raise _not_offered(missing, f"jobs[{first}].language") from missing
    g.batch_id = batch.batch_id  # for the request's log line
    status_url = f"/api/v1/batches/{batch.batch_id}"
    accepted = BatchAccepted(
        batch_id=batch.batch_id,
        status_url=status_url,
        jobs=[
            BatchJobAccepted(job_id=job_id, ref=ref, status_url=f"/api/v1/execute/{job_id}")
            for job_id, ref in zip(batch.job_ids, batch.refs, strict=True)
        ],
    )
    return jsonify(accepted.model_dump()), 202, {"Location": status_url}


@api.get("/api/v1/batches/<batch_id>")
def poll_batch(batch_id: str) -> Response:
    """The batch's counts and jobs; ?wait=true holds the answer until every job has ended (at most 60 s)."""
    batches, owner = services().batches, client_owner()
    batch = _find_batch(batch_id)
    view = batches.wait(batch, owner) if _wait_requested() else batches.view(batch, owner)
    return _batch_json(view)


@api.delete("/api/v1/batches/<batch_id>")
def cancel_batch(batch_id: str) -> Response:
    """Cancel every job of the batch that has not ended."""
    return _batch_json(services().batches.cancel(_find_batch(batch_id), client_owner()))


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


def _find_batch(batch_id: str) -> Batch:
    """The caller's batch, or 404: another client's batch is as absent as one that never existed."""
    try:
        return services().batches.find(batch_id, client_owner())
    except BatchNotFound as missing:
        raise APIError(404, f"No batch with id {batch_id!r}; it never existed or has expired.") from missing


def _not_offered(missing: LanguageNotOffered, field: str) -> APIError:
    """The 422 for a job in a language no worker offers, naming the field."""
    detail = {"field": field, "message": str(missing), "type": "language_not_offered"}
    return APIError(422, f"{field}: {missing}; GET /api/v1/languages lists those offered.", [detail])


def _wait_requested() -> bool:
    """Read ?wait, refusing words that are neither true nor false."""
    word = request.args.get("wait", "false").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    detail = {"field": "wait", "message": "must be true or false", "type": "bool_parsing"}
    raise APIError(422, "wait: must be true or false", [detail])


def _validated_request(model: type[BaseModel] | None = None) -> Any:
    """The body as a validated request model (the execute request's, unless `model` is given), or the
    matching 400, 415 or 422."""
    if not request.is_json:
        raise APIError(415, "Send the program as JSON with Content-Type: application/json.")
    try:
        body = json.loads(request.get_data(cache=False))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise APIError(400, f"The body is not valid JSON: {error}.") from error
    if not isinstance(body, dict):
        raise APIError(400, "The body must be a JSON object.")
    try:
        return (model or services().request_model).model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from error


def _batch_json(view: BatchView) -> Response:
    """A batch view as JSON."""
    return Response(batch_json(view), mimetype="application/json")


def _view_json(view: JobView) -> Response:
    """A job view as JSON."""
    return Response(view_json(view), mimetype="application/json")
