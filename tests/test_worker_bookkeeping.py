"""RQ's records of a job, as the trimmed ExecutorWorker leaves them: what rq-dashboard and RQ rely on."""

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis
from rq import Queue, Worker, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from executor.jobs.queue import JobAlreadyEnded, JobQueue
from executor.jobs.request import execute_request_model
from executor.jobs.routing import idle_group, idle_groups, idle_workers, language_queue
from executor.jobs.serializer import JobSerializer
from executor.jobs.wakes import wake_list
from executor.languages import build_languages
from executor.metrics import figures
from executor.sandbox.result import Outcome, RunResult
from executor.settings import Settings
from tests.stack import python_queue
from workers import bookkeeping, claiming_queue, tasks
from workers import worker as worker_module
from workers.claiming_queue import ClaimingQueue
from workers.redis_scripts import Finished
from workers.worker import ExecutorJob, ExecutorWorker

Run = Callable[..., dict[str, Any]]
SETTLE_LIMIT_S = 10.0


def test_a_finished_job_leaves_the_records_rq_keeps_for_a_finished_job(
    run: Run, redis_client: Redis, settings: Settings
) -> None:
    job_id = run("print('bookkeeping')")["job_id"]
    queue = Queue(python_queue(settings), connection=redis_client, serializer=JSONSerializer)
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)

    assert job.get_status() == "finished"
    assert job_id in queue.finished_job_registry.get_job_ids()
    assert job_id not in queue.started_job_registry.get_job_ids()
    assert job.latest_result() is not None
    # Kept for result_ttl, then gone: nothing of the job outlives it.
    assert 0 < redis_client.ttl(job.key) <= settings.result_ttl
    assert 0 < redis_client.ttl(f"rq:results:{job_id}") <= settings.result_ttl
    # The execution record is removed, from the worker's set as well.
    assert list(redis_client.scan_iter(f"rq:execution:{job_id}:*")) == []
    assert not redis_client.exists(f"rq:executions:{job_id}")
    worker_key = Worker.redis_worker_namespace_prefix + job.worker_name
    worker = Worker.find_by_key(worker_key, connection=redis_client)
    assert worker is not None
    assert worker.successful_job_count >= 1
    assert not any(job_id in member.decode() for member in redis_client.smembers(f"{worker.key}:executions"))
    # The worker says idle again once it has nothing to run (other tests' jobs may keep it busy).
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while (state := redis_client.hget(worker.key, "state")) != b"idle":
        assert time.monotonic() < deadline, f"worker still {state!r} after the job"
        time.sleep(0.05)


def test_the_started_registry_records_a_running_job_and_forgets_it_after(
    client: Any, redis_client: Redis, settings: Settings
) -> None:
    queue = Queue(python_queue(settings), connection=redis_client, serializer=JSONSerializer)
    code = "import time; print('up', flush=True); time.sleep(1.5)"
    job_id = client.post("/api/v1/execute", json={"code": code}).get_json()["job_id"]
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while job_id not in queue.started_job_registry.get_job_ids():
        assert time.monotonic() < deadline, "the job never showed in the started registry"
        time.sleep(0.02)
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == "started"
    assert job.worker_name
    while job.get_status() != "finished":
        assert time.monotonic() < deadline, f"the job is still {job.get_status()!r}"
        time.sleep(0.05)
    assert job_id not in queue.started_job_registry.get_job_ids()


class InProcessWorker:
    """An ExecutorWorker run in the test process, on a queue of its own, its program stubbed or real."""

    def __init__(self, redis_client: Redis, settings: Settings) -> None:
        base = f"in-process-{uuid.uuid4().hex[:8]}"
        self.queue, self.bash_queue = (
            ClaimingQueue(language_queue(base, language), connection=redis_client, serializer=JobSerializer)
            for language in ("python", "bash")
        )
        languages = ["python", "bash"]
        self.jobs = JobQueue(
            redis_client,
            settings.model_copy(update={"queue_name": base}),
            build_languages(settings.python, tuple(languages)),
        )
        self.model = execute_request_model(settings, languages)
        # A connection of its own: the worker sets its outage retries on the connection it is given.
        self.connection = Redis.from_url(settings.redis_url)
        self.worker = ExecutorWorker(
            [base],
            connection=self.connection,
            queue_class=ClaimingQueue,
            job_class=ExecutorJob,
            serializer=JobSerializer,
        )

    def submit(self, code: str, language: str = "python") -> Job:
        return self.jobs.submit(self.model.model_validate({"code": code, "language": language}), None)

    def work(self, max_jobs: int | None = None) -> None:
        """Run the queued jobs (at most `max_jobs`), then give back the signal handlers RQ installs."""
        handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.worker.work(burst=True, max_jobs=max_jobs)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)

    def successes_recorded(self) -> int:
        """The worker's count of successful jobs, as RQ keeps it in Redis."""
        return int(self.connection.hget(self.worker.key, "successful_job_count") or 0)

    def view(self, job: Job) -> dict[str, Any]:
        return self.jobs.view(self.jobs.find(job.id, None)).model_dump()


@pytest.fixture
def in_process(
    redis_client: Redis, settings: Settings, worker_slot_given_back: None
) -> Iterator[InProcessWorker]:
    made = InProcessWorker(redis_client, settings)
    yield made
    made.connection.close()


def stub_program(monkeypatch: pytest.MonkeyPatch, while_running: Callable[[str], object]) -> None:
    """Replace the job's program run by `while_running(job_id)` and a successful result."""

    def run_job(request: dict[str, Any]) -> dict[str, Any]:
        job = get_current_job()
        assert job is not None
        while_running(job.id)
        return RunResult(Outcome.SUCCESS, stdout="ran\n", return_code=0).to_dict()

    monkeypatch.setattr(worker_module, "run_job", run_job)


def test_a_sigterm_while_the_result_is_saved_waits_for_the_job_to_settle(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stays busy until the job is settled: a stop request then ends the loop after the
    job, instead of interrupting its last steps (which would fail a job already finished)."""
    first, second = in_process.submit("print('settled')"), in_process.submit("print('settled')")
    save_result = ExecutorWorker._save_success

    def save_then_sigterm(self: ExecutorWorker, *args: Any) -> Finished:
        saved = save_result(self, *args)
        self.request_stop(signal.SIGTERM, None)  # as if SIGTERM arrived right after the save
        return saved

    monkeypatch.setattr(ExecutorWorker, "_save_success", save_then_sigterm)
    in_process.work()
    assert first.get_status() == "finished"
    # The stop request was honoured before the next job, claimed with the result and given back.
    assert second.get_status() == "queued"
    assert in_process.queue.get_job_ids() == [second.id]
    assert redis_client.llen(in_process.queue.intermediate_queue_key) == 0


def test_a_job_claimed_with_the_last_result_goes_back_to_the_head_of_the_queue(
    in_process: InProcessWorker, redis_client: Redis
) -> None:
    first, second, third = (in_process.submit(f"print({number})") for number in range(3))
    in_process.work(max_jobs=1)  # stops after the first job, having claimed the second with its result
    assert [job.get_status() for job in (first, second, third)] == ["finished", "queued", "queued"]
    assert in_process.queue.get_job_ids() == [second.id, third.id]
    assert redis_client.llen(in_process.queue.intermediate_queue_key) == 0


def test_jobs_claimed_with_the_previous_result_run_once_each_in_order(in_process: InProcessWorker) -> None:
    jobs = [in_process.submit(f"print({number})") for number in range(4)]
    in_process.work()
    views = [in_process.view(job) for job in jobs]
    assert [(view["status"], view["stdout"]) for view in views] == [("success", f"{n}\n") for n in range(4)]
    started = [view["started_at"] for view in views]
    assert started == sorted(started)


def test_jobs_of_several_languages_start_in_the_order_they_came(
    in_process: InProcessWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker serving several languages' queues takes the oldest job of any, not a queue's whole
    backlog before the next queue's."""
    started: list[str] = []
    stub_program(monkeypatch, started.append)
    languages = ["python", "bash", "bash", "python", "bash"]
    jobs = [
        in_process.submit("print(1)" if language == "python" else "echo 1", language)
        for language in languages
    ]
    in_process.work()
    assert started == [job.id for job in jobs]


def test_a_job_canceled_after_it_was_claimed_is_never_run(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim ahead holds a job while another runs: a cancel meanwhile must win."""
    ran: list[str] = []
    stub_program(monkeypatch, ran.append)
    job = in_process.submit("print('never')")
    claimed = ClaimingQueue.dequeue_any(
        [in_process.queue], None, connection=redis_client, job_class=ExecutorJob, serializer=JobSerializer
    )
    assert claimed is not None
    in_process.worker.claimed_ahead = claimed
    assert in_process.jobs.cancel(in_process.jobs.find(job.id, None)).status == "canceled"
    in_process.work()
    assert ran == []
    assert (job.get_status(), in_process.view(job)["status"]) == ("canceled", "canceled")
    assert redis_client.llen(in_process.queue.intermediate_queue_key) == 0


def test_a_cancel_that_read_the_job_before_its_worker_started_it_stops_it_and_counts_it_once(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel's poll read the job queued, and a worker started it before the cancel's write:
    the cancel must read it again, stop its program (the worker's stop flag is set), and leave the
    count of its end to the worker, which counts the result it saves as canceled."""
    counted_before = figures.read(redis_client).finished.get(("python", "canceled"), 0)
    job = in_process.submit("print('stopped')")
    read_while_queued = in_process.jobs.find(job.id, None)
    assert read_while_queued.job.get_status(refresh=False) == "queued"
    stopped: list[bool] = []

    def cancel_with_the_old_read(job_id: str) -> None:
        assert in_process.jobs.cancel(read_while_queued).status == "canceled"
        stopped.append(tasks.STOPPING.wait(SETTLE_LIMIT_S))

    stub_program(monkeypatch, cancel_with_the_old_read)
    in_process.work()
    assert stopped == [True]
    assert in_process.view(job)["status"] == "canceled"
    assert figures.read(redis_client).finished[("python", "canceled")] - counted_before == 1


def test_a_cancel_of_a_job_that_expired_after_its_poll_read_it_says_the_job_has_ended(
    in_process: InProcessWorker, redis_client: Redis
) -> None:
    """The cancel reads the job's status again; a hash gone since the poll's read is an ended job
    (answered 409), not an error of the service."""
    job = in_process.submit("print('expired')")
    read_while_queued = in_process.jobs.find(job.id, None)
    redis_client.delete(job.key)
    with pytest.raises(JobAlreadyEnded):
        in_process.jobs.cancel(read_while_queued)


def test_a_job_wakes_one_idle_worker_the_most_recently_idle_and_drops_expired_marks(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job pops one idle mark, the newest, and pushes to that worker's wake list, so the other
    idle worker sleeps on; a mark that has expired is dropped, and no one is woken for it."""
    stub_program(monkeypatch, lambda job_id: None)
    idle = idle_workers(in_process.queue.name)
    now = time.time() * 1000
    redis_client.zadd(idle, {"earlier": now + 1_000, "later": now + 2_000, "gone": now - 1})
    in_process.submit("print(1)")
    assert redis_client.lrange(wake_list("later"), 0, -1) == [b"1"]
    assert redis_client.llen(wake_list("earlier")) == 0
    assert redis_client.zrange(idle, 0, -1) == [b"gone", b"earlier"]
    in_process.submit("print(2)")
    assert redis_client.lrange(wake_list("earlier"), 0, -1) == [b"1"]
    in_process.submit("print(3)")
    assert redis_client.zcard(idle) == 0
    assert not redis_client.exists(wake_list("gone"))
    redis_client.delete(wake_list("later"), wake_list("earlier"))
    in_process.work()
    assert in_process.queue.count == 0


def test_a_worker_that_runs_only_some_languages_is_woken_through_its_group(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no idle worker that runs every language, a job's wake looks in the idle sets its
    language's group registry lists: a bash-only worker is woken for a bash job, never for python."""
    stub_program(monkeypatch, lambda job_id: None)
    group = idle_group(["bash"], ["python", "bash"])
    bash_only = idle_workers(in_process.bash_queue.name, group)
    now = time.time() * 1000
    redis_client.zadd(bash_only, {"bash-only": now + 2_000})
    redis_client.zadd(idle_groups(in_process.bash_queue.name), {bash_only: now + 10_000})
    in_process.submit("print(1)")
    assert redis_client.llen(wake_list("bash-only")) == 0
    in_process.submit("echo 1", "bash")
    assert redis_client.lrange(wake_list("bash-only"), 0, -1) == [b"1"]
    assert redis_client.zcard(bash_only) == 0
    redis_client.delete(wake_list("bash-only"), idle_groups(in_process.bash_queue.name))
    in_process.work()
    assert in_process.queue.count == in_process.bash_queue.count == 0


def test_an_idle_worker_is_woken_by_a_job_in_any_of_its_queues(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by the enqueue's wake, not by looking again later: that is made longer than the wait, so
    only a wake can end it with the job."""
    monkeypatch.setattr(claiming_queue, "LOOK_AGAIN_S", 60.0)
    threading.Timer(0.3, in_process.submit, args=["echo woken", "bash"]).start()
    claimed = ClaimingQueue.dequeue_any(
        [in_process.queue, in_process.bash_queue],
        10,
        connection=redis_client,
        job_class=ExecutorJob,
        serializer=JobSerializer,
    )
    assert claimed is not None
    job, queue = claimed
    assert (queue.name, job.meta["language"]) == (in_process.bash_queue.name, "bash")
    assert redis_client.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    redis_client.delete(queue.intermediate_queue_key)


@pytest.mark.parametrize(
    "settled_as", [{"status": "failed"}, {"worker_name": "another-worker"}], ids=["failed", "handed-over"]
)
def test_a_job_settled_as_lost_while_it_ran_keeps_that_verdict(
    in_process: InProcessWorker,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    settled_as: dict[str, str],
) -> None:
    stub_program(monkeypatch, lambda job_id: redis_client.hset(Job.key_for(job_id), mapping=settled_as))
    job = in_process.submit("print('lost')")
    in_process.work()
    found = redis_client.hmget(job.key, list(settled_as))
    assert dict(zip(settled_as, (value.decode() for value in found), strict=True)) == settled_as
    assert job.latest_result() is None
    assert in_process.successes_recorded() == 0


def test_a_job_canceled_as_its_program_ends_is_recorded_canceled(
    in_process: InProcessWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands after the program's last instruction and before the result is saved: the
    stop command comes too late to matter, the job's status in Redis decides."""
    stub_program(monkeypatch, lambda job_id: in_process.jobs.cancel(in_process.jobs.find(job_id, None)))
    job = in_process.submit("print('canceled')")
    in_process.work()
    view = in_process.view(job)
    assert (view["status"], view["message"], view["stdout"]) == (
        "canceled",
        "canceled before it finished",
        "ran\n",
    )


def test_a_job_stopped_because_its_worker_was_cut_off_from_redis_says_so(
    in_process: InProcessWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat thread's `on_lost` lands while the program runs: the program is killed, and the
    result, saved when Redis answers again, is `internal_error` saying why, not the killed program's
    own end. One that lands after the program ended leaves the result as it was."""
    stopped = in_process.submit("import time\nprint('started', flush=True)\ntime.sleep(30)")
    kept = in_process.submit("print('kept')")

    def cut_off_once_running() -> None:
        deadline = time.monotonic() + SETTLE_LIMIT_S
        while stopped.get_status(refresh=True) != "started" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the program is running
        in_process.worker.stop_cut_off_job()

    threading.Thread(target=cut_off_once_running, daemon=True).start()
    save_result = ExecutorWorker._save_success

    def save(self: ExecutorWorker, job: Job, *args: Any) -> Finished:
        if job.id == kept.id:
            self.stop_cut_off_job()  # its program has ended: too late to matter
        return save_result(self, job, *args)

    monkeypatch.setattr(ExecutorWorker, "_save_success", save)
    began = time.monotonic()
    in_process.work()
    assert time.monotonic() - began < SETTLE_LIMIT_S  # killed, not waited out
    view = in_process.view(stopped)
    assert (view["status"], view["message"]) == ("internal_error", bookkeeping.CUT_OFF_MESSAGE)
    assert in_process.view(kept)["status"] == "success"


def test_a_waiting_id_whose_job_has_expired_is_passed_over(
    in_process: InProcessWorker, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_program(monkeypatch, lambda job_id: None)
    redis_client.rpush(in_process.queue.key, str(uuid.uuid4()))  # its hash expired, or was deleted
    job = in_process.submit("print('after the expired one')")
    in_process.work()
    assert in_process.view(job)["status"] == "success"
    assert in_process.queue.count == 0


def test_a_job_claimed_ahead_is_given_back_while_workers_are_suspended(
    in_process: InProcessWorker, redis_client: Redis
) -> None:
    job = in_process.submit("print('after the pause')")
    worker = in_process.worker
    claimed = ClaimingQueue.dequeue_any(
        [in_process.queue], None, connection=redis_client, job_class=ExecutorJob, serializer=JobSerializer
    )
    assert claimed is not None
    worker.claimed_ahead = claimed
    assert in_process.queue.get_job_ids() == []
    suspend(redis_client)
    resumer = threading.Timer(0.3, resume, args=[redis_client])
    resumer.start()
    try:
        worker.check_for_suspension(burst=False)  # returns once resumed
    finally:
        resumer.join()
        redis_client.delete(worker.key)  # the suspended state RQ wrote for this never-registered worker
    assert worker.claimed_ahead is None
    assert in_process.queue.get_job_ids() == [job.id]
    assert redis_client.llen(in_process.queue.intermediate_queue_key) == 0


def test_a_result_save_retried_after_its_reply_was_lost_is_recorded_once(
    in_process: InProcessWorker,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dropped connection makes redis-py send the finishing script again after it already ran."""
    finish = bookkeeping.finish_if_owned

    def finish_twice(*args: Any, **kwargs: Any) -> Finished:
        finish(*args, **kwargs)  # ran in Redis, but its reply never arrived
        return finish(*args, **kwargs)

    monkeypatch.setattr(bookkeeping, "finish_if_owned", finish_twice)
    job = in_process.submit("print('once')")
    in_process.work()
    assert in_process.view(job)["stdout"] == "once\n"
    assert redis_client.xlen(f"rq:results:{job.id}") == 1
    assert in_process.successes_recorded() == 1
    assert "dropping its result" not in caplog.text
