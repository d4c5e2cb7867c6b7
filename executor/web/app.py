"""`create_app`: the one way to build the web application."""

from flask import Flask
from redis import Redis

from executor.jobs.batches import Batches
from executor.jobs.connection import connect
from executor.jobs.queue import JobQueue
from executor.jobs.request import batch_request_model, execute_request_model
from executor.languages import build_languages
from executor.settings import Settings
from executor.web.dashboard import mount_dashboard
from executor.web.docs_page import docs
from executor.web.errors import register_error_handlers
from executor.web.events import READ_BLOCK_MS, StreamGate
from executor.web.landing import landing
from executor.web.metrics import count_requests, metrics
from executor.web.ratelimit import init_rate_limit
from executor.web.request_log import log_requests
from executor.web.routes import api
from executor.web.services import Services


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> Flask:
    """Build the app from explicit settings, or from the environment when none are given.

    `redis` replaces the client built from the settings: tests pass fakeredis through it.
    """
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Twice the block: with hundreds of streams, a thread may get the CPU back well after its reply came.
    live_reader = redis or connect(settings, blocking_reads_s=2 * READ_BLOCK_MS / 1000)
    redis = redis or connect(settings)
    languages = build_languages(settings.python, settings.languages)
    jobs = JobQueue(redis, settings, languages)
    request_model = execute_request_model(settings, languages.keys())
    app.extensions["executor"] = Services(
        settings=settings,
        redis=redis,
        live_reader=live_reader,
        stream_gate=StreamGate(settings.max_streams),
        jobs=jobs,
        batches=Batches(jobs),
        languages=languages,
        request_model=request_model,
        batch_model=batch_request_model(settings, request_model),
    )
    register_error_handlers(app)
    init_rate_limit(app, settings)
    app.register_blueprint(api)
    app.register_blueprint(docs)
    app.register_blueprint(landing)
    app.register_blueprint(metrics)
    count_requests(app)
    log_requests(app)
    mount_dashboard(app, settings)
    return app
