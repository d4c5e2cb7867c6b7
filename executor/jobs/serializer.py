"""How jobs and results are written in Redis: JSON written by orjson, and zstd-compressed when large.

A result carries the program's whole output, and it is encoded once by the worker and decoded once by
the web process: with the standard library that is ~3 ms per MB each way on our machines, with orjson
a tenth of that. Small payloads (most jobs and results) are plain JSON, the bytes RQ's own
JSONSerializer writes and reads.

A payload of `COMPRESS_FROM_BYTES` or more is stored as a zstd frame. RQ base64-encodes a result and
every copy of it costs CPU: Lua's copy of the finish script's arguments, the XADD, the append-only
file, the XREAD that returns it, and the base64 decode in the web process (3 ms for a 1 MB result).
Output is usually text, which zstd at level 1 shrinks 2-3x (a repeated character, thousands of
times) in about 1.5-3 ms per MB; Redis also keeps results for `EXECUTOR_RESULT_TTL`, so it holds
that much less memory. A zstd frame starts with bytes no JSON document starts with, so `loads` tells
the two apart, and JSON written before compression was added still reads.
"""

import json
from typing import Any

import orjson
import zstandard

# Below this, compression saves less than it costs (a few pages of output at most).
COMPRESS_FROM_BYTES = 16 * 1024
# Fast enough to pay for itself on text; higher levels cost 2x the time for little more.
ZSTD_LEVEL = 1


class JobSerializer:
    """`dumps` and `loads` as RQ calls them (`--serializer executor.jobs.serializer.JobSerializer`), and
    as rq-dashboard is configured to read jobs (`executor.dashboard`)."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        try:
            encoded = orjson.dumps(obj)
        except TypeError:
            # orjson refuses what JSON can still carry: a lone surrogate escaped in a request's JSON
            # ("\ud800"), an integer beyond 64 bits. The standard library writes those.
            encoded = json.dumps(obj).encode("utf-8")
        if len(encoded) < COMPRESS_FROM_BYTES:
            return encoded
        # The module's one-shot function, not a shared ZstdCompressor: those are not thread-safe,
        # and the web process serves requests from many threads.
        return zstandard.compress(encoded, ZSTD_LEVEL)

    @staticmethod
    def loads(data: bytes | str) -> Any:
        # Every zstd frame begins with FRAME_HEADER, whose first byte, "(", never begins a JSON document.
        if isinstance(data, bytes) and data.startswith(zstandard.FRAME_HEADER):
            data = zstandard.decompress(data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # The escaped lone surrogates written above: valid JSON that orjson will not decode.
            return json.loads(data)
