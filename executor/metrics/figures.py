"""The job figures of `/metrics`, kept in Redis, so they are exact across every web process and every
worker on every host: a worker's figures would be lost with it, and workers behind a PaaS cannot be
scraped one by one.

Each figure is written inside a write the service makes anyway: a submission's count inside the
enqueue script (counted only when the job is queued), a job's end inside the worker's finish script
(counted only when its result is saved), and the rare ends decided elsewhere (canceled in the queue,
lost, unserved) in the pipeline that settles them. So a job costs Redis a few more commands in
round trips it already makes, and no round trip of its own.

Histograms are kept as plain per-bucket counts (one HINCRBY per observation rather than one per
bucket at or above it) and made cumulative when read.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

SUBMITTED = "executor:metrics:submitted"
FINISHED = "executor:metrics:finished"
QUEUE_WAIT = "executor:metrics:queue_wait"
RUN = "executor:metrics:run"
CALLBACKS = "executor:metrics:callbacks"
KEYS = (SUBMITTED, FINISHED, QUEUE_WAIT, RUN, CALLBACKS)
# Upper bounds, in seconds, of the histograms' buckets (+Inf is implied).
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
RUN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Separates the labels within a hash field; no language id or status contains it.
SEPARATOR = "|"


def count_submitted(writes: Pipeline, languages: Iterable[str]) -> None:
    """One job submitted per language given (a batch gives one per job)."""
    for language in languages:
        writes.hincrby(SUBMITTED, language, 1)


def count_finished(writes: Pipeline, language: str, status: str) -> None:
    """A job ended with `status` without running to a result (canceled in the queue, lost, unserved)."""
    writes.hincrby(FINISHED, _field(language, status), 1)


def count_run(writes: Pipeline, language: str, status: str, queue_wait_s: float, run_s: float) -> None:
    """A job a worker ran to its result: its end, how long it waited, how long it ran."""
    count_finished(writes, language, status)
    _observe(writes, QUEUE_WAIT, "", queue_wait_s, QUEUE_WAIT_BUCKETS)
    _observe(writes, RUN, language, run_s, RUN_BUCKETS)


def count_callback(writes: Pipeline | Redis, state: str) -> None:
    """A callback delivered, retried or given up (the notifier's states)."""
    writes.hincrby(CALLBACKS, state, 1)


@dataclass(frozen=True)
class Histogram:
    """One label set's histogram: cumulative bucket counts by upper bound, the sum and the count."""

    buckets: list[tuple[str, float]]
    total: float


@dataclass(frozen=True)
class Figures:
    """Every figure, as read in one round trip."""

    submitted: dict[str, float]
    finished: dict[tuple[str, str], float]
    queue_wait: Histogram
    run: dict[str, Histogram]
    callbacks: dict[str, float]


def read(connection: Redis) -> Figures:
    """The figures as they are now."""
    with connection.pipeline(transaction=False) as pipeline:
        for key in KEYS:
            pipeline.hgetall(key)
        submitted, finished, queue_wait, run, callbacks = (_decoded(reply) for reply in pipeline.execute())
    return Figures(
        submitted={label: count for (label, _), count in submitted.items()},
        finished=finished,
        queue_wait=_histogram({part: value for (_, part), value in queue_wait.items()}, QUEUE_WAIT_BUCKETS),
        run={
            language: _histogram(
                {part: value for (label, part), value in run.items() if label == language}, RUN_BUCKETS
            )
            for language in sorted({label for label, _ in run})
        },
        callbacks={label: count for (label, _), count in callbacks.items()},
    )


def _observe(writes: Pipeline, key: str, label: str, value: float, bounds: Sequence[float]) -> None:
    bucket = next((index for index, bound in enumerate(bounds) if value <= bound), len(bounds))
    writes.hincrby(key, _field(label, f"b{bucket}"), 1)
    writes.hincrbyfloat(key, _field(label, "sum"), value)


def _histogram(parts: Mapping[str, float], bounds: Sequence[float]) -> Histogram:
    """Cumulative buckets from per-bucket counts; the count is the +Inf bucket's."""
    running, buckets = 0.0, []
    for index, bound in enumerate([*bounds, float("inf")]):
        running += parts.get(f"b{index}", 0.0)
        buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
    return Histogram(buckets=buckets, total=parts.get("sum", 0.0))


def _field(label: str, part: str) -> str:
    return f"{label}{SEPARATOR}{part}"


def _decoded(reply: Any) -> dict[tuple[str, str], float]:
    """A hash's fields as (label, part) pairs (a field without the separator is a label alone)."""
    decoded = {}
    for key, value in (reply or {}).items():
        label, _, part = (key.decode() if isinstance(key, bytes) else key).partition(SEPARATOR)
        decoded[(label, part)] = float(value)
    return decoded
