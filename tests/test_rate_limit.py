"""The optional per-client rate limit, counted in the real Redis."""

import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from executor.settings import Settings
from executor.web.app import create_app

ALPHA, BETA = uuid.uuid4().hex, uuid.uuid4().hex


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[FlaskClient]:
    """One app for the module; its Redis pools (the limiter's and the queue's) are closed with it."""
    limited = settings.model_copy(
        update={
            "rate_limit": "2/minute",
            "queue_name": f"limited-{uuid.uuid4().hex}",
            "api_keys": (ALPHA, BETA),
        }
    )
    app = create_app(limited)
    yield app.test_client()
    for limiter in app.extensions["limiter"]:
        limiter.storage.storage.close()
    app.extensions["executor"].redis.close()


def test_a_client_over_its_rate_limit_gets_429_with_retry_after(client: FlaskClient) -> None:
    key = {"Authorization": f"Bearer {ALPHA}"}
    statuses = [client.get("/api/v1/languages", headers=key).status_code for _ in range(3)]
    response = client.get("/api/v1/languages", headers=key)
    assert statuses == [200, 200, 429]
    assert (response.status_code, response.get_json()["error"]["code"]) == (429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    # Another client has a budget of its own, and the health check is never limited.
    assert client.get("/api/v1/languages", headers={"Authorization": f"Bearer {BETA}"}).status_code == 200
    assert all(client.get("/health").status_code == 200 for _ in range(3))


def test_made_up_tokens_do_not_buy_a_fresh_budget(client: FlaskClient) -> None:
    address = {"REMOTE_ADDR": f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
    statuses = [
        client.get(
            "/api/v1/languages", headers={"Authorization": f"Bearer {uuid.uuid4().hex}"}, environ_base=address
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
