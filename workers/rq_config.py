"""Settings for `rq worker -c workers.rq_config`, read from the same environment as the web process."""

from executor.settings import Settings

_settings = Settings()

REDIS_URL = _settings.redis_url
if REDIS_URL.startswith("rediss://") and "ssl_cert_reqs" not in REDIS_URL:
    # Heroku-style managed Redis presents a self-signed certificate.
    REDIS_URL += ("&" if "?" in REDIS_URL else "?") + "ssl_cert_reqs=none"
QUEUES = [_settings.queue_name]
