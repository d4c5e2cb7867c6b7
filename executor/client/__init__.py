"""The Python client of executor's HTTP API (API.md): typed, synchronous, small.

    from executor.client import Client
    result = Client("http://localhost:8000").run("print('hello')")

It needs only httpx and httpx-sse (`pip install .` from the repository); none of the server's
dependencies.
"""

from executor.client.client import Client, Event, Result
from executor.client.errors import APIError, Busy, NotFound, Refused

__all__ = ["APIError", "Busy", "Client", "Event", "NotFound", "Refused", "Result"]
