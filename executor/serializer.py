"""How jobs and results are written in Redis: JSON, as RQ's JSONSerializer writes it, but with orjson.

A result carries the program's whole output, and it is encoded once by the worker and decoded once by
the web process: with the standard library that is ~3 ms per MB each way on our machines, with orjson
a tenth of that. The bytes are plain JSON either way, so RQ's own JSONSerializer (and rq-dashboard)
read what this writes, and this reads what it wrote.
"""

import json
from typing import Any

import orjson


class JobSerializer:
    """`dumps` and `loads` as RQ calls them (`--serializer executor.serializer.JobSerializer`)."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        try:
            return orjson.dumps(obj)
        except TypeError:
            # orjson refuses what JSON can still carry: a lone surrogate escaped in a request's JSON
            # ("\ud800"), an integer beyond 64 bits. The standard library writes those.
            return json.dumps(obj).encode("utf-8")

    @staticmethod
    def loads(data: bytes | str) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # The escaped lone surrogates written above: valid JSON that orjson will not decode.
            return json.loads(data)
