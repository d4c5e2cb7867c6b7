"""The job serializer writes plain JSON, faster, compresses what is large, and takes what orjson alone
would refuse."""

from typing import Any

import pytest
import zstandard
from rq.serializers import JSONSerializer

from executor.jobs.serializer import COMPRESS_FROM_BYTES, JobSerializer

SMALL: list[Any] = [
    {"stdout": "hello\n", "return_code": 0, "execution_time": 0.0123, "signal": None, "ok": True},
    ["workers.tasks.run_job", None, [], {"request": {"code": "print('é ✓')", "args": ["a b"]}}],
    {"stdin": "lone surrogate \ud800 escaped"},
    {"huge": 2**80},
]
LARGE: list[Any] = [
    {"stdout": "".join(f"line {i}: ✓ é\n" for i in range(20_000)), "stderr": "", "return_code": 0},
    {"stdout": "x" * 1_000_000 + "\ud800", "stderr": "y"},  # compressed after the stdlib fallback
]


@pytest.mark.parametrize("value", SMALL + LARGE)
def test_what_it_writes_reads_back_the_same(value: Any) -> None:
    assert JobSerializer.loads(JobSerializer.dumps(value)) == value


@pytest.mark.parametrize("value", SMALL)
def test_small_payloads_are_the_same_json_as_rq_s_own_serializer(value: Any) -> None:
    """rq-dashboard and RQ's tools read small jobs and results whatever their serializer."""
    assert JSONSerializer.loads(JobSerializer.dumps(value)) == value
    assert JobSerializer.loads(JSONSerializer.dumps(value)) == value


@pytest.mark.parametrize("value", LARGE)
def test_large_payloads_are_stored_as_a_smaller_zstd_frame(value: Any) -> None:
    plain = JSONSerializer.dumps(value)
    assert len(plain) >= COMPRESS_FROM_BYTES
    stored = JobSerializer.dumps(value)
    assert stored.startswith(zstandard.FRAME_HEADER)
    assert len(stored) < len(plain) / 2


@pytest.mark.parametrize("value", LARGE)
def test_large_plain_json_written_before_compression_still_reads(value: Any) -> None:
    assert JobSerializer.loads(JSONSerializer.dumps(value)) == value


def test_just_under_the_threshold_stays_plain_json() -> None:
    value = "a" * (COMPRESS_FROM_BYTES - 3)  # with its quotes, one byte under
    assert JobSerializer.dumps(value) == f'"{value}"'.encode()
    assert JobSerializer.dumps(value + "a").startswith(zstandard.FRAME_HEADER)


def test_it_writes_bytes_as_rq_expects() -> None:
    assert JobSerializer.dumps({"a": 1}) == b'{"a":1}'
