"""One log line per request: method, route (its pattern, never the raw path with its ids), status,
duration and the job or batch it concerned. Never a body, a header or a query string: those carry
programs, their input and API keys."""

import logging
import time

from flask import Flask, Response, g, request

logger = logging.getLogger("executor.web.requests")


def log_requests(app: Flask) -> None:
    """Time each request and log it once answered (error answers included)."""

    @app.before_request
    def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        if not logger.isEnabledFor(logging.INFO):
            return response  # nothing to build the line for
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 3) if started is not None else None
        route = request.url_rule.rule if request.url_rule is not None else None
        subject = (request.view_args or {}).get("job_id") or g.get("job_id")
        batch = (request.view_args or {}).get("batch_id") or g.get("batch_id")
        logger.info(
            "%s %s %d %s ms%s",
            request.method,
            route or "(no route)",
            response.status_code,
            duration_ms,
            f" job {subject}" if subject else (f" batch {batch}" if batch else ""),
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "job_id": subject,
                "batch_id": batch,
            },
        )
        return response
