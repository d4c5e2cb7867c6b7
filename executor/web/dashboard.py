"""rq-dashboard mounted at /rq, behind basic auth when a password is set."""

import rq_dashboard
import rq_dashboard.web
from flask import Flask, request

from executor.jobs.serializer import JobSerializer
from executor.settings import Settings
from executor.web.auth import dashboard_guard

DASHBOARD_PREFIX = "/rq"


def mount_dashboard(app: Flask, settings: Settings) -> None:
    """Serve the dashboard from the web process, reading the same Redis as the queue."""
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    # Our jobs are JSON, not pickle; the dashboard reads them with the serializer set here.
    rq_dashboard.web.config.serializer = JobSerializer
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PREFIX)

    # The blueprint object is shared by every app in the process, so the guard is the app's.
    @app.before_request
    def guard_dashboard() -> None:
        if request.blueprint == rq_dashboard.blueprint.name:
            dashboard_guard()
