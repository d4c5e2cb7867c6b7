"""One scrape of `/metrics`: the job figures from Redis, two gauges read at scrape time, and the web
processes' request counts.

The request counts are prometheus-client's own counter. Under gunicorn each web process writes it to
files in PROMETHEUS_MULTIPROC_DIR (set by `executor/web/gunicorn_config.py`), and the scrape adds up
every process's, so any process answers for all of them. Without that directory (a single process,
as in the tests' apps) the counter lives in the process.
"""

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis

from executor.jobs.liveness import live_workers
from executor.metrics.figures import read

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
HTTP_REQUESTS = Counter(
    "executor_http_requests",
    "HTTP requests answered, by method, route and status code",
    ["method", "route", "code"],
    registry=None,
)


class JobFigures(Collector):
    """The figures kept in Redis, and the queue depth and live workers as they are now."""

    def __init__(self, connection: Redis, queue_depth: Callable[[], int]) -> None:
        self.connection = connection
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        figures = read(self.connection)
        submitted = CounterMetricFamily(
            "executor_jobs_submitted", "Jobs queued, by language", labels=["language"]
        )
        for language, count in sorted(figures.submitted.items()):
            submitted.add_metric([language], count)
        finished = CounterMetricFamily(
            "executor_jobs_finished", "Jobs ended, by language and status", labels=["language", "status"]
        )
        for (language, status), count in sorted(figures.finished.items()):
            finished.add_metric([language, status], count)
        waited = HistogramMetricFamily("executor_queue_wait_seconds", "Seconds from queued to started")
        waited.add_metric([], figures.queue_wait.buckets, figures.queue_wait.total)
        ran = HistogramMetricFamily(
            "executor_run_seconds", "Seconds from started to ended, by language", labels=["language"]
        )
        for language, histogram in sorted(figures.run.items()):
            ran.add_metric([language], histogram.buckets, histogram.total)
        callbacks = CounterMetricFamily(
            "executor_callbacks", "Callback attempts, by what became of them", labels=["state"]
        )
        for state, count in sorted(figures.callbacks.items()):
            callbacks.add_metric([state], count)
        yield from (submitted, finished, waited, ran, callbacks)
        yield GaugeMetricFamily("executor_queue_depth", "Jobs waiting for a worker", value=self.queue_depth())
        yield GaugeMetricFamily(
            "executor_workers", "Workers alive now", value=len(live_workers(self.connection))
        )


def scrape(connection: Redis, queue_depth: Callable[[], int]) -> bytes:
    """Every metric, in the Prometheus text format."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_DIR):
        MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
    registry.register(JobFigures(connection, queue_depth))
    return generate_latest(registry)
