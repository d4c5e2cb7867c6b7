"""Configuration from the environment, as a Heroku-style platform provides it."""

import importlib
import ssl

import pytest

from executor.jobs.connection import client_options
from executor.settings import Settings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("EXECUTOR_API_KEYS", " alpha, beta ,")
    monkeypatch.setenv("EXECUTOR_MAX_TIMEOUT", "12.5")
    settings = Settings()
    assert (settings.redis_url, settings.api_keys, settings.max_timeout) == (
        "redis://example:6379/3",
        ("alpha", "beta"),
        12.5,
    )


def test_a_bad_setting_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_MAX_MEMORY_MB", "8")
    with pytest.raises(ValueError, match="max_memory_mb"):
        Settings()


def test_streams_may_not_take_every_web_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_WEB_THREADS", "64")
    monkeypatch.setenv("EXECUTOR_MAX_STREAMS", "64")
    with pytest.raises(ValueError, match="EXECUTOR_MAX_STREAMS"):
        Settings()
    monkeypatch.setenv("EXECUTOR_MAX_STREAMS", "63")
    assert Settings().max_streams == 63


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"EXECUTOR_WORKER_HEARTBEAT_S": "6", "EXECUTOR_WORKER_LOST_AFTER_S": "10"}, "WORKER_LOST_AFTER_S"),
        ({"EXECUTOR_RESULT_TTL": "60", "EXECUTOR_MAX_JOB_SECONDS": "300"}, "RESULT_TTL"),
    ],
    ids=["heartbeat-too-slow", "result-outlived-by-its-wait"],
)
def test_settings_that_would_break_each_other_are_refused(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str
) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=named):
        Settings()


@pytest.mark.parametrize(("timeout", "slice_ms"), [(0.75, 500), (5.0, 500), (0.3, 200), (0.01, 6)])
def test_a_blocking_read_waits_well_inside_the_redis_timeout(timeout: float, slice_ms: int) -> None:
    assert Settings(redis_timeout=timeout).wait_slice_ms == slice_ms


def test_managed_rediss_urls_accept_self_signed_certificates() -> None:
    assert client_options(Settings(redis_url="rediss://h:6380"))["ssl_cert_reqs"] == ssl.CERT_NONE
    assert "ssl_cert_reqs" not in client_options(Settings(redis_url="redis://h:6379"))


def test_the_worker_config_passes_rediss_certificate_relaxation_in_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@h:6380/0")
    monkeypatch.setenv("EXECUTOR_QUEUE_NAME", "jobs")
    # The config sets up the worker process's logging; this process keeps pytest's.
    monkeypatch.setattr("executor.logs.configure_logging", lambda log_format: None)
    import workers.rq_config

    config = importlib.reload(workers.rq_config)
    assert config.REDIS_URL == "rediss://:pw@h:6380/0?ssl_cert_reqs=none"
    assert config.QUEUES == ["jobs"]
