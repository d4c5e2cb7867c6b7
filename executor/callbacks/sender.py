"""One delivery attempt (API.md 1.1): resolve the name, check every address, connect to the checked
address (so a second lookup cannot swap it), POST, follow no redirect, read at most 64 KiB, all
within 5 s.

The standard library's http.client does it: it never follows a redirect, and its connection
classes let `connect` be given the address to use while TLS still checks the certificate, and
SNI still names, the URL's host.
"""

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from executor.callbacks.addresses import IPAddress, IPNetwork, RefusedAddress, check_url, resolve

ATTEMPT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Attempt:
    """How an attempt went: the receiver's status, or why there was none; and whether to retry."""

    status: int | None
    error: str
    delivered: bool
    retry: bool


def send(url: str, body: bytes, headers: Mapping[str, str], allowed: Sequence[IPNetwork]) -> Attempt:
    """POST `body` to `url` once; any 2xx is delivered."""
    try:
        host, port = check_url(url, allowed)
        address = resolve(host, port, allowed)
    except RefusedAddress as refused:
        return Attempt(None, f"refused: {refused}", delivered=False, retry=False)
    except OSError as error:
        return Attempt(None, str(error), delivered=False, retry=True)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(parts.scheme, host, port, address)
    # The socket's timeout bounds each read; this bounds the whole attempt, however slowly a
    # receiver drips its answer.
    cut = threading.Event()
    deadline = threading.Timer(ATTEMPT_TIMEOUT_S, _cut, args=[connection, cut])
    deadline.start()
    try:
        connection.request("POST", path, body=body, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as error:
        return Attempt(None, f"{type(error).__name__}: {error}", delivered=False, retry=True)
    finally:
        deadline.cancel()
        connection.close()
    if cut.is_set():  # what was read before the cut is not an answer
        return Attempt(None, f"no answer within {ATTEMPT_TIMEOUT_S:g} s", delivered=False, retry=True)
    if 200 <= response.status < 300:
        return Attempt(response.status, "", delivered=True, retry=False)
    return Attempt(response.status, f"answered {response.status}", delivered=False, retry=True)


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End an attempt that outlived its time: its next (or current) read ends at once."""
    cut.set()
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.shutdown(socket.SHUT_RDWR)


def _connection(scheme: str, host: str, port: int, address: IPAddress) -> http.client.HTTPConnection:
    if scheme == "https":
        return _PinnedHTTPSConnection(host, port, address)
    return _PinnedHTTPConnection(host, port, address)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """A connection to `address`, whatever `host` would resolve to now."""

    def __init__(self, host: str, port: int, address: IPAddress) -> None:
        super().__init__(host, port, timeout=ATTEMPT_TIMEOUT_S)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), ATTEMPT_TIMEOUT_S)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, over TLS whose certificate and SNI are the URL's host's."""

    def __init__(self, host: str, port: int, address: IPAddress) -> None:
        super().__init__(host, port, timeout=ATTEMPT_TIMEOUT_S, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((str(self.address), self.port), ATTEMPT_TIMEOUT_S)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
