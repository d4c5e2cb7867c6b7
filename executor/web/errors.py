"""Every error as JSON of one shape, whatever raised it: the app, Werkzeug, Redis or a bug."""

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

# One stable machine word per HTTP status (API.md), plus the statuses the HTTP server can answer.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}
RETRY_AFTER_S = 1


class APIError(Exception):
    """A refusal the client can act on; the status decides the code."""

    def __init__(
        self,
        status: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON body of an error."""
    error: dict[str, Any] = {"code": ERROR_CODES.get(status, "error"), "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A Flask response carrying an error."""
    response = jsonify(error_body(status, message, details))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    """One entry per bad field, naming the field as the client spelled it."""
    details = []
    for problem in error.errors(include_url=False, include_input=False):
        field = _path(problem["loc"]) or None
        details.append({"field": field, "message": problem["msg"], "type": problem["type"]})
    return details


# Fields whose value is one of several models told apart by its `type`: pydantic puts that type in
# an error's location, which API.md's paths leave out (checker.language, not checker.program.language).
_TAGGED_UNIONS = {"checker"}


def _path(location: tuple[int | str, ...]) -> str:
    """A field's path as API.md writes it: files[2].path."""
    path = ""
    parts = list(location)
    for index, part in enumerate(parts):
        if index > 0 and parts[index - 1] in _TAGGED_UNIONS and index < len(parts) - 1:
            continue  # the tag
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validation_error(error: ValidationError) -> APIError:
    """A 422 whose message names the first bad field."""
    details = validation_details(error)
    first = details[0]
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return APIError(422, message, details)


def unavailable(reason: str) -> APIError:
    """A 503 that tells the client when to come back."""
    return APIError(503, reason, headers={"Retry-After": str(RETRY_AFTER_S)})


def register_error_handlers(app: Flask) -> None:
    """Route every exception to a JSON answer."""

    @app.errorhandler(APIError)
    def handle_api_error(error: APIError) -> Response:
        return error_response(error.status, error.message, error.details, error.headers)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {}
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        message = (error.description or error.name).rstrip(".") + "."
        return error_response(status, message, headers=headers)

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def handle_redis_down(error: Exception) -> Response:
        logger.warning("Redis unavailable: %s", error)
        failure = unavailable("The job store (Redis) cannot be reached; retry shortly.")
        return error_response(failure.status, failure.message, headers=failure.headers)

    @app.errorhandler(Exception)
    def handle_bug(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, "The service failed unexpectedly; this is a bug, please report it.")
