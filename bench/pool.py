"""A global deadline, and a bounded pool of threads that each take job numbers until the work is done."""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

Sample = TypeVar("Sample")

# How often a waiting main thread wakes up, so Ctrl-C is noticed while threads work.
JOIN_SLICE_S = 0.2


class Deadline:
    """The end of the whole run; every loop asks it before it goes round again, so the run is bounded."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.canceled = threading.Event()

    def remaining(self) -> float:
        """Seconds left, never negative; zero once canceled."""
        if self.canceled.is_set():
            return 0.0
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """True when time is up or the run was interrupted."""
        return self.remaining() <= 0.0

    def cancel(self) -> None:
        """Stop every loop at its next check (Ctrl-C, an error in another thread)."""
        self.canceled.set()

    def child(self, seconds: float) -> "Deadline":
        """A shorter deadline inside this one, canceled together with it."""
        inner = Deadline(min(seconds, self.remaining()))
        inner.canceled = self.canceled
        return inner


def run_pool(
    threads: int, jobs: int, deadline: Deadline, work: Callable[[int], Sample]
) -> tuple[list[Sample], float]:
    """Run `work(index)` for indexes 0..jobs-1 on `threads` threads; the samples and the wall time taken.

    Indexes are handed out one at a time, so a slow job never holds back the others' next ones.
    A thread that raises cancels the deadline, so the others stop soon after instead of running on.
    """
    lock = threading.Lock()
    next_index = iter(range(jobs))
    samples: list[Sample] = []
    failures: list[BaseException] = []

    def take() -> int | None:
        with lock:
            return None if deadline.expired() else next(next_index, None)

    def loop() -> None:
        try:
            while (index := take()) is not None:
                sample = work(index)
                with lock:
                    samples.append(sample)
        except BaseException as error:
            failures.append(error)
            deadline.cancel()

    started = time.perf_counter()
    pool = [threading.Thread(target=loop, daemon=True, name=f"bench-{n}") for n in range(threads)]
    try:
        for thread in pool:
            thread.start()
        for thread in pool:
            while thread.is_alive():
                thread.join(JOIN_SLICE_S)
    except BaseException:
        deadline.cancel()
        raise
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return samples, elapsed
