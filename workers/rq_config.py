"""Settings for `rq worker -c workers.rq_config`, read from the same environment as the web process."""

from executor.jobs.connection import worker_url
from executor.settings import Settings

_settings = Settings()

REDIS_URL = worker_url(_settings.redis_url)
QUEUES = [_settings.queue_name]
