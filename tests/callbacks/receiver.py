"""A callback receiver on loopback, for tests: it records what arrives and answers as told."""

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Arrival:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time()


@dataclass
class Receiver:
    """Answers each path with the next status of its script (then 200), and records every arrival."""

    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    redirect_to: str = "/elsewhere"
    answer_bytes: int = 0
    # How much of the last answer reached the socket before the sender closed it, once it is known.
    answer_sent: int = 0
    answered: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Arrival]:
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < count:
            assert time.monotonic() < deadline, f"{len(self.arrivals)} of {count} callbacks arrived"
            time.sleep(0.01)
        return self.arrivals


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1, stopped at the end."""
    receiver = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.arrivals.append(Arrival(self.path, dict(self.headers.items()), body, time.time()))
            script = receiver.scripts.get(self.path, [])
            status = script.pop(0) if script else 200
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", receiver.redirect_to)
            self.send_header("Content-Length", str(receiver.answer_bytes))
            self.end_headers()
            receiver.answer_sent = 0
            chunk = b"x" * 65536
            try:
                while receiver.answer_sent < receiver.answer_bytes:
                    part = chunk[: receiver.answer_bytes - receiver.answer_sent]
                    self.wfile.write(part)
                    receiver.answer_sent += len(part)
            except OSError:
                pass  # the sender closed the connection: it read no further
            receiver.answered.set()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
