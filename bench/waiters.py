"""Do clients blocked in `?wait=true` starve submissions? Many waiters, then timed submits beside them."""

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from bench.client import Connection
from bench.report import percentile

# Each waiter's program outlives the measurement, so every waiter is blocked while submits are timed.
WAITER_PROGRAM: dict[str, Any] = {"code": "import time\ntime.sleep(4)", "timeout": 5}
SETTLE_S = 1.0


@dataclass(frozen=True)
class WaitersReport:
    """Submit latency while `waiters` requests are held open by ?wait=true."""

    waiters: int
    # Waiters still held when the last submission had been timed: all of them, or the premise failed.
    held_while_timed: int
    waiter_codes: dict[int, int]
    submits: int
    submit_codes: dict[int, int]
    submit_p50_ms: float | None
    submit_p99_ms: float | None
    submit_max_ms: float

    def figures(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)

    @property
    def ok(self) -> bool:
        """Every waiter was held throughout the timing and then answered (200 with its result, or 202
        when its job was still queued behind the others at its deadline); every submission accepted."""
        return (
            self.held_while_timed == self.waiters
            and set(self.waiter_codes) <= {200, 202}
            and sum(self.waiter_codes.values()) == self.waiters
            and self.submit_codes == {202: self.submits}
        )


def measure_waiters(base_url: str, waiters: int = 100, submits: int = 50) -> WaitersReport:
    """Open `waiters` ?wait=true requests, then time `submits` plain submissions one after another,
    on one keep-alive connection as the suite's clients submit."""
    waiter_codes: list[int] = []  # appended from many threads: list.append is atomic

    def wait_for_one() -> None:
        code, _ = Connection(base_url).request("POST", "/api/v1/execute?wait=true", WAITER_PROGRAM)
        waiter_codes.append(code)

    threads = [threading.Thread(target=wait_for_one, daemon=True) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    time.sleep(SETTLE_S)
    submitter = Connection(base_url)
    latencies_ms: list[float] = []
    codes: Counter[int] = Counter()
    for _ in range(submits):
        started = time.monotonic()
        code, _ = submitter.request("POST", "/api/v1/execute", {"code": "print(1)"})
        latencies_ms.append((time.monotonic() - started) * 1000)
        codes[code] += 1
    held = sum(thread.is_alive() for thread in threads)
    submitter.close()
    for thread in threads:
        thread.join(timeout=WAITER_PROGRAM["timeout"] + 60)
    return WaitersReport(
        waiters=waiters,
        held_while_timed=held,
        waiter_codes=dict(Counter(waiter_codes)),
        submits=submits,
        submit_codes=dict(codes),
        submit_p50_ms=percentile(latencies_ms, 0.50),
        submit_p99_ms=percentile(latencies_ms, 0.99),
        submit_max_ms=max(latencies_ms),
    )
