"""The client's errors: each carries the API's error `code` (API.md), its message and details."""

from typing import Any


class APIError(Exception):
    """The service answered with an error: its HTTP status, `code`, message and details."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Refused(APIError):
    """The request is not valid (400, 413, 415, 422): retrying it unchanged cannot help."""


class NotFound(APIError):
    """No such job or batch for this API key (404)."""


class Busy(APIError):
    """The service stayed busy or unavailable (429, 503) through every retry."""


def error_for(status: int, body: Any) -> APIError:
    """The typed error of an error answer."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code, message = error.get("code", "unknown"), error.get("message", "")
    details = error.get("details") or []
    kind = {404: NotFound, 429: Busy, 503: Busy}.get(status, Refused if 400 <= status < 500 else APIError)
    return kind(status, code, message, details)
