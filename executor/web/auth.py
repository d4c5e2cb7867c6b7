"""Who is calling: optional API keys, and the basic-auth guard of the dashboard."""

import hmac

from flask import request

from executor.jobs.queue import owner_of
from executor.web.errors import APIError
from executor.web.services import services


def presented_key() -> str | None:
    """The key the caller sends as 'Authorization: Bearer <key>', if it sends one."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return presented if scheme.lower() == "bearer" and presented else None


def is_configured(presented: str, keys: tuple[str, ...]) -> bool:
    """Whether `presented` is one of `keys`, compared with every key in constant time, so timing
    does not reveal a near match."""
    matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in keys]
    return any(matches)


def client_owner() -> str | None:
    """The digest of the caller's valid API key, None when keys are off; 401 otherwise."""
    keys = services().settings.api_keys
    if not keys:
        return None
    presented = presented_key()
    if presented is None:
        raise APIError(
            401,
            "Send your API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="executor"'},
        )
    if not is_configured(presented, keys):
        raise APIError(
            401, "This API key is not valid.", headers={"WWW-Authenticate": 'Bearer realm="executor"'}
        )
    return owner_of(presented)


def dashboard_guard() -> None:
    """Ask for the dashboard's password when one is set; refuse the dashboard when keys are on without it."""
    settings = services().settings
    challenge = {"WWW-Authenticate": 'Basic realm="executor dashboard"'}
    if not settings.dashboard_password:
        if settings.api_keys:
            raise APIError(
                401,
                "The dashboard is closed: API keys are on, so set EXECUTOR_DASHBOARD_PASSWORD to open it.",
                headers=challenge,
            )
        return
    credentials = request.authorization
    valid = (
        credentials is not None
        and credentials.type == "basic"
        and hmac.compare_digest((credentials.username or "").encode(), settings.dashboard_user.encode())
        and hmac.compare_digest((credentials.password or "").encode(), settings.dashboard_password.encode())
    )
    if not valid:
        raise APIError(401, "The dashboard needs its user name and password.", headers=challenge)
