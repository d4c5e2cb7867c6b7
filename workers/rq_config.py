"""Settings for `rq worker -c workers.rq_config`, read from the same environment as the web process."""

from executor.jobs.connection import worker_url
from executor.logs import configure_logging
from executor.settings import Settings

_settings = Settings()
# Read by the rq CLI before it sets up logging: with a handler on the root, it adds none of its own.
configure_logging(_settings.log_format)

REDIS_URL = worker_url(_settings.redis_url)
QUEUES = [_settings.queue_name]
