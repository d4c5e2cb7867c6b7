"""Do clients blocked in `?wait=true` starve submissions? Many waiters, then timed submits beside them."""

import http.client
import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.report import percentile

# Each waiter's program outlives the measurement, so every waiter is blocked while submits are timed.
WAITER_PROGRAM: dict[str, Any] = {"code": "import time\ntime.sleep(4)", "timeout": 5}
SETTLE_S = 1.0


@dataclass(frozen=True)
class WaitersReport:
    """Submit latency while `waiters` requests are held open by ?wait=true."""

    waiters: int
    submits: int
    submit_codes: dict[int, int]
    submit_p50_ms: float | None
    submit_p99_ms: float | None
    submit_max_ms: float

    def figures(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


def measure_waiters(port: int, waiters: int = 100, submits: int = 50) -> WaitersReport:
    """Open `waiters` ?wait=true requests, then time `submits` plain submissions one after another."""
    threads = [
        threading.Thread(target=_post, args=(port, "/api/v1/execute?wait=true", WAITER_PROGRAM), daemon=True)
        for _ in range(waiters)
    ]
    for thread in threads:
        thread.start()
    time.sleep(SETTLE_S)
    latencies_ms: list[float] = []
    codes: dict[int, int] = {}
    for _ in range(submits):
        started = time.monotonic()
        code = _post(port, "/api/v1/execute", {"code": "print(1)"})
        latencies_ms.append((time.monotonic() - started) * 1000)
        codes[code] = codes.get(code, 0) + 1
    for thread in threads:
        thread.join(timeout=WAITER_PROGRAM["timeout"] + 60)
    return WaitersReport(
        waiters=waiters,
        submits=submits,
        submit_codes=codes,
        submit_p50_ms=percentile(latencies_ms, 0.50),
        submit_p99_ms=percentile(latencies_ms, 0.99),
        submit_max_ms=max(latencies_ms),
    )


def _post(port: int, path: str, body: dict[str, Any]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
