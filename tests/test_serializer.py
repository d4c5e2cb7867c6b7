"""The job serializer writes plain JSON, faster, and takes what orjson alone would refuse."""

from typing import Any

import pytest
from rq.serializers import JSONSerializer

from executor.serializer import JobSerializer

SAMPLES: list[Any] = [
    {"stdout": "hello\n", "return_code": 0, "execution_time": 0.0123, "signal": None, "ok": True},
    ["workers.tasks.run_job", None, [], {"request": {"code": "print('é ✓')", "args": ["a b"]}}],
    {"stdin": "lone surrogate \ud800 escaped"},
    {"huge": 2**80},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_what_it_writes_reads_back_the_same(value: Any) -> None:
    assert JobSerializer.loads(JobSerializer.dumps(value)) == value


@pytest.mark.parametrize("value", SAMPLES)
def test_it_speaks_the_same_json_as_rq_s_own_serializer(value: Any) -> None:
    """Jobs written before the switch, and rq-dashboard reading ours, keep working."""
    assert JSONSerializer.loads(JobSerializer.dumps(value)) == value
    assert JobSerializer.loads(JSONSerializer.dumps(value)) == value


def test_it_writes_bytes_as_rq_expects() -> None:
    assert JobSerializer.dumps({"a": 1}) == b'{"a":1}'
