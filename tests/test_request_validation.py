"""The request model: every rule of API.md, with the bad field named."""

from typing import Any

import pytest
from pydantic import ValidationError

from executor.jobs.request import execute_request_model
from executor.settings import Settings

Request = execute_request_model(Settings(max_code_bytes=100, max_stdin_bytes=50), ["python"])


def test_defaults_follow_the_contract() -> None:
    request = Request.model_validate({"code": "print(1)"})
    assert (request.language, request.stdin, request.timeout, request.memory_mb, request.args) == (
        "python",
        "",
        5.0,
        256,
        [],
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": ""}, "code"),
        ({}, "code"),
        ({"code": 5}, "code"),
        ({"code": "x" * 101}, "code"),
        ({"code": "é" * 51}, "code"),  # 102 bytes of UTF-8 in 51 characters
        ({"code": "\ud800"}, "code"),
        ({"code": "x", "timout": 1}, "timout"),
        ({"code": "x", "language": "cobol"}, "language"),
        ({"code": "x", "stdin": "y" * 51}, "stdin"),
        ({"code": "x", "timeout": 0}, "timeout"),
        ({"code": "x", "timeout": -1}, "timeout"),
        ({"code": "x", "timeout": 30.5}, "timeout"),
        ({"code": "x", "timeout": "5"}, "timeout"),
        ({"code": "x", "timeout": True}, "timeout"),
        ({"code": "x", "timeout": float("nan")}, "timeout"),
        ({"code": "x", "timeout": float("inf")}, "timeout"),
        ({"code": "x", "memory_mb": 15}, "memory_mb"),
        ({"code": "x", "memory_mb": 1025}, "memory_mb"),
        ({"code": "x", "memory_mb": 64.5}, "memory_mb"),
        ({"code": "x", "args": "a b"}, "args"),
        ({"code": "x", "args": [1]}, "args.0"),
        ({"code": "x", "args": ["a\0b"]}, "args.0"),
        ({"code": "x", "args": ["a"] * 65}, "args"),
    ],
)
def test_a_bad_field_is_rejected_with_its_name(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Request.model_validate(body)
    locations = {".".join(str(part) for part in error["loc"]) for error in raised.value.errors()}
    assert field in locations


def test_an_integral_number_is_an_integer_as_in_json_schema() -> None:
    assert Request.model_validate({"code": "x", "memory_mb": 64.0}).memory_mb == 64


def test_limits_are_inclusive() -> None:
    request = Request.model_validate(
        {"code": "x" * 100, "stdin": "y" * 50, "timeout": 30, "memory_mb": 1024, "args": ["a"] * 64}
    )
    assert request.timeout == 30


def test_operator_maxima_reach_the_schema() -> None:
    schema = Request.model_json_schema()
    assert schema["properties"]["timeout"]["maximum"] == 30
    assert schema["properties"]["code"]["maxLength"] == 100
    assert schema["additionalProperties"] is False
