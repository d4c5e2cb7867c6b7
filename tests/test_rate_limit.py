"""The optional per-client rate limit, counted in the real Redis."""

import uuid

from flask.testing import FlaskClient

from executor.app import create_app
from executor.settings import Settings


def limited_client(settings: Settings, **updates: object) -> FlaskClient:
    limited = settings.model_copy(
        update={"rate_limit": "2/minute", "queue_name": f"limited-{uuid.uuid4().hex}", **updates}
    )
    return create_app(limited).test_client()


def test_a_client_over_its_rate_limit_gets_429_with_retry_after(settings: Settings) -> None:
    alpha, beta = uuid.uuid4().hex, uuid.uuid4().hex
    client = limited_client(settings, api_keys=(alpha, beta))
    key = {"Authorization": f"Bearer {alpha}"}
    statuses = [client.get("/api/v1/languages", headers=key).status_code for _ in range(3)]
    response = client.get("/api/v1/languages", headers=key)
    assert statuses == [200, 200, 429]
    assert (response.status_code, response.get_json()["error"]["code"]) == (429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    # Another client has a budget of its own, and the health check is never limited.
    assert client.get("/api/v1/languages", headers={"Authorization": f"Bearer {beta}"}).status_code == 200
    assert all(client.get("/health").status_code == 200 for _ in range(3))


def test_made_up_tokens_do_not_buy_a_fresh_budget(settings: Settings) -> None:
    client = limited_client(settings)
    address = {"REMOTE_ADDR": f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
    statuses = [
        client.get(
            "/api/v1/languages",
            headers={"Authorization": f"Bearer {uuid.uuid4().hex}"},
            environ_base=address,
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
