"""`/metrics` (API.md 1.1): exact across web processes and workers, the figures' arithmetic, and the
dashboard's password in front of it."""

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from executor.metrics import figures
from executor.metrics.exposition import scrape
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses, stop_process, submit
from tests.test_web_server import request, start_web

JOBS = 20
BOOT_TIMEOUT_S = 60


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in scraped.items() if sample == name and wanted <= found)


@pytest.fixture
def two_web_processes(
    stack_env: dict[str, str], workers: WorkerProcesses, tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    """A server of two processes, and the folder where each keeps its request counts."""
    counts = tmp_path / "metrics"
    process, port = start_web({**stack_env, "PROMETHEUS_MULTIPROC_DIR": str(counts)}, processes=2)
    # The server answers as soon as its first process has booted; the second may still be importing
    # the app on a loaded machine, and the test's requests would then all go to the first.
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while len(processes_that_counted(counts)) < 2:
            assert time.monotonic() < deadline, "the second web process served nothing"
            request(port, "GET", "/health")
        yield port, counts
    finally:
        stop_process(process)


def processes_that_counted(counts: Path) -> set[str]:
    """The pids of the web processes that have counted a request: each writes files of its own."""
    return {name.rsplit("_", 1)[-1] for name in os.listdir(counts) if name.startswith("counter_")}


def scraped_over_http(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, _, body = request(port, "GET", "/metrics")
    assert status == 200
    return samples(body.decode())


def test_k_jobs_through_two_web_processes_and_two_workers_count_exactly_k(
    two_web_processes: tuple[int, Path],
) -> None:
    port, counts = two_web_processes
    before = scraped_over_http(port)
    job_ids = []
    for _ in range(JOBS):  # a new connection each: the two processes share the accepting
        status, _, body = request(port, "POST", "/api/v1/execute", {"code": "print(1)"})
        assert status == 202
        job_ids.append(body["job_id"])
    for job_id in job_ids:
        status, _, body = request(port, "GET", f"/api/v1/execute/{job_id}?wait=true")
        assert (status, body["status"]) == (200, "success")
    # Every scrape, whichever process answers it, counts what all of them served.
    for _ in range(6):
        after = scraped_over_http(port)
        assert (
            total(after, "executor_jobs_submitted_total") - total(before, "executor_jobs_submitted_total")
            == JOBS
        )
        assert (
            total(after, "executor_jobs_finished_total", status="success")
            - total(before, "executor_jobs_finished_total", status="success")
            == JOBS
        )
        posted = {"method": "POST", "route": "/api/v1/execute", "code": "202"}
        assert (
            total(after, "executor_http_requests_total", **posted)
            - total(before, "executor_http_requests_total", **posted)
            == JOBS
        )
        assert (
            total(after, "executor_run_seconds_count", language="python")
            - total(before, "executor_run_seconds_count", language="python")
            == JOBS
        )
    assert total(after, "executor_workers") >= 2
    # Both processes served requests: each wrote counts of its own, which every scrape added up.
    assert len(processes_that_counted(counts)) == 2


def test_a_job_canceled_in_the_queue_is_counted_canceled(
    settings: Settings, workers: WorkerProcesses
) -> None:
    idle = create_app(settings.model_copy(update={"queue_name": "nobody-counts-here"})).test_client()
    before = samples(idle.get("/metrics").get_data(as_text=True))
    job_id = submit(idle, "print(1)")
    assert idle.delete(f"/api/v1/execute/{job_id}").status_code == 200
    after = samples(idle.get("/metrics").get_data(as_text=True))
    counted = total(after, "executor_jobs_finished_total", language="python", status="canceled")
    assert counted - total(before, "executor_jobs_finished_total", language="python", status="canceled") == 1


def test_histograms_are_cumulative_and_counts_add_up() -> None:
    connection = fakeredis.FakeRedis()
    with connection.pipeline(transaction=False) as writes:
        figures.count_submitted(writes, ["python", "python", "c"])
        figures.count_run(writes, "python", "success", queue_wait_s=0.003, run_s=0.02)
        figures.count_run(writes, "python", "timeout", queue_wait_s=7.0, run_s=1000.0)
        figures.count_callback(writes, "delivered")
        writes.execute()
    scraped = samples(scrape(connection, lambda: 4).decode())
    assert scraped[("executor_jobs_submitted_total", frozenset({("language", "python")}))] == 2
    assert total(scraped, "executor_jobs_finished_total", language="python") == 2
    assert scraped[("executor_queue_wait_seconds_bucket", frozenset({("le", "0.005")}))] == 1
    assert scraped[("executor_queue_wait_seconds_bucket", frozenset({("le", "5.0")}))] == 1
    assert scraped[("executor_queue_wait_seconds_bucket", frozenset({("le", "10.0")}))] == 2
    assert scraped[("executor_queue_wait_seconds_sum", frozenset())] == pytest.approx(7.003)
    over = frozenset({("language", "python"), ("le", "+Inf")})
    assert scraped[("executor_run_seconds_bucket", over)] == 2  # 1000 s: past every bound
    assert scraped[("executor_callbacks_total", frozenset({("state", "delivered")}))] == 1
    assert scraped[("executor_queue_depth", frozenset())] == 4


def test_metrics_are_behind_the_dashboards_password(settings: Settings) -> None:
    guarded: FlaskClient = create_app(
        settings.model_copy(update={"dashboard_password": "s3cret"})
    ).test_client()
    assert guarded.get("/metrics").status_code == 401
    token = base64.b64encode(b"admin:s3cret").decode()
    answer = guarded.get("/metrics", headers={"Authorization": f"Basic {token}"})
    assert answer.status_code == 200 and b"executor_jobs_finished_total" in answer.data
