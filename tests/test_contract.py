"""docs/api.md, the contract this repository implements, and /openapi.json say the same: every route
in both, and for each route the same status codes (those the contract names for it, plus the codes
it says every /api/v1 route may answer)."""

import re
from typing import Any

import fakeredis
import pytest

from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import REPO

CONTRACT = REPO / "docs" / "api.md"
# A line that starts a route's part of the contract: a heading, a bullet or a paragraph naming it.
ROUTE_START = re.compile(r"^(?:## |- `|`)(GET|POST|DELETE|PUT|PATCH) (/[^\s`]+)")
CODE = re.compile(r"`(\d{3})(?=[ `])")
# What the contract says every /api/v1 route may answer (API keys, a rate limit, Redis away).
EVERY_API_ROUTE = {"401", "429", "503"}

Route = tuple[str, str]


def contract_routes() -> dict[Route, set[str]]:
    """Each route the contract names, with the status codes its part of the contract mentions."""
    text = CONTRACT.read_text()
    known = set(re.findall(r"^\| (\d{3}) \|", text, re.M)) | {"200", "202"}
    parts: dict[Route, list[str]] = {}
    current: Route | None = None
    for line in text.splitlines():
        if found := ROUTE_START.match(line):
            current = (found.group(1), found.group(2))
            parts.setdefault(current, [])
        elif line.startswith("#"):
            current = None
        if current is not None:
            parts[current].append(line)
    return {route: set(CODE.findall("\n".join(lines))) & known for route, lines in parts.items()}


@pytest.fixture(scope="module")
def openapi_routes() -> dict[Route, set[str]]:
    app = create_app(Settings(), redis=fakeredis.FakeRedis())
    document: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    return {
        (method.upper(), path): set(operation["responses"])
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def test_every_route_is_in_both(openapi_routes: dict[Route, set[str]]) -> None:
    assert set(contract_routes()) == set(openapi_routes)


def test_each_route_answers_the_same_codes_in_both(openapi_routes: dict[Route, set[str]]) -> None:
    for route, named in contract_routes().items():
        documented = openapi_routes[route]
        general = EVERY_API_ROUTE if route[1].startswith("/api/v1") else set()
        assert named <= documented, (
            f"{route}: the contract names {sorted(named - documented)}, OpenAPI lacks them"
        )
        assert documented <= named | general, (
            f"{route}: OpenAPI documents {sorted(documented - named - general)}, the contract does not"
        )
