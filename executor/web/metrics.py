"""`GET /metrics` (API.md 1.1), behind the dashboard's basic auth, and the count of every request."""

from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST

from executor.metrics.exposition import HTTP_REQUESTS, scrape
from executor.web.auth import dashboard_guard
from executor.web.services import services

metrics = Blueprint("metrics", __name__)
# A request no route matched is counted under this route, so a scan of random paths adds one series.
UNMATCHED = "<unmatched>"


@metrics.get("/metrics")
def show_metrics() -> Response:
    """Every figure, in the Prometheus text format."""
    dashboard_guard()
    jobs = services().jobs
    return Response(scrape(jobs.connection, jobs.waiting_count), content_type=CONTENT_TYPE_LATEST)


def count_requests(app: Flask) -> None:
    """Count every answer, error answers included, by method, route (its pattern) and status code.

    Each label set's counter is looked up once per process and kept: `labels()` takes a lock and
    builds its key from the label values on every call, which a poll need not pay for again."""
    counters: dict[tuple[str, str, int], Any] = {}

    @app.after_request
    def count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        key = (request.method, route, response.status_code)
        counter = counters.get(key)
        if counter is None:
            counter = counters.setdefault(key, HTTP_REQUESTS.labels(key[0], route, str(key[2])))
        counter.inc()
        return response
