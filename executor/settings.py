"""Every knob of the service, read from the environment by one pydantic model."""

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from executor.languages import default_python

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration shared by the web process and the workers; see the README's table."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", extra="ignore", frozen=True)

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "EXECUTOR_REDIS_URL")
    )
    # Seconds before a Redis call gives up, so an outage becomes a quick 503 and never a hang.
    redis_timeout: float = Field(0.75, ge=0.01)
    queue_name: str = "code_execution"
    result_ttl: int = Field(3600, gt=0)
    max_queue_depth: int = Field(10_000, gt=0)

    max_code_bytes: int = Field(65536, gt=0)
    max_stdin_bytes: int = Field(MIB, ge=0)
    max_timeout: float = Field(30.0, gt=0)
    max_memory_mb: int = Field(1024, ge=16)
    max_output_bytes: int = Field(MIB, gt=0)
    max_processes: int = Field(64, gt=0)
    max_disk_mb: int = Field(64, gt=0)
    max_args: int = Field(64, ge=0)
    max_files: int = Field(32, ge=0)
    max_files_bytes: int = Field(4 * MIB, ge=0)
    # Files out (API.md 1.1): files collected after a run, and their bytes together.
    max_output_files: int = Field(32, ge=0)
    max_output_files_bytes: int = Field(8 * MIB, ge=0)
    # Judging (API.md 1.1): cases per job, the job's whole time (its cases' timeouts and its compile),
    # the cases' stdin and expected output together, and how much of each case's output is shown.
    max_tests: int = Field(100, gt=0)
    max_job_seconds: float = Field(300.0, gt=0)
    max_tests_bytes: int = Field(16 * MIB, ge=0)
    case_output_bytes: int = Field(8192, ge=0)
    # Jobs per batch (API.md 1.1).
    max_batch: int = Field(100, gt=0)
    # Signed callbacks (API.md 1.1): the HMAC key (none: callback_url is refused), the networks a
    # callback may reach although they are private, and the first pause between attempts (x4 each).
    webhook_secret: str = ""
    webhook_allow_networks: Annotated[tuple[str, ...], NoDecode] = ()
    webhook_retry_base_s: float = Field(1.0, gt=0)

    python: str = Field(default_factory=default_python)
    # The registry's languages this host offers (executor/languages/registry.toml); empty: all of them.
    languages: Annotated[tuple[str, ...], NoDecode] = ()
    compile_timeout: float = Field(10.0, gt=0)
    compile_memory_mb: int = Field(512, ge=16)
    require_isolation: bool = False
    # Python programs start from a zygote instead of a fresh interpreter where the sandbox allows it
    # (docs/warm-start.md); EXECUTOR_WARM_START=0 starts every program cold.
    warm_start: bool = True
    # Host uids [sandbox_uid_base, sandbox_uid_base + sandbox_slots) run programs when the worker is root.
    sandbox_uid_base: int = Field(62000, gt=1000)
    sandbox_slots: int = Field(64, gt=0)
    retry_lost_jobs: bool = False
    # A repeat poll of a job within this many ms of the last one's answer is held until then, or
    # until the job ends (executor/jobs/pacing.py); 0 answers every poll at once.
    poll_pace_ms: int = Field(50, ge=0, le=5000)
    # A started job whose worker sent no heartbeat for this long is reported lost.
    worker_heartbeat_s: float = Field(2.0, gt=0)
    worker_lost_after_s: float = Field(10.0, gt=0)

    # Threads per gunicorn process, and how many of them live-output streams may hold at once: the
    # rest stay free for submissions and polls however many clients follow their jobs' output.
    web_threads: int = Field(256, gt=0)
    max_streams: int = Field(192, gt=0)

    # One line per event on stdout: "text" for people, "json" for log pipelines (executor/logs.py).
    log_format: Literal["text", "json"] = "text"

    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    rate_limit: str = ""
    dashboard_user: str = "admin"
    dashboard_password: str = ""

    @field_validator("api_keys", "languages", "webhook_allow_networks", mode="before")
    @classmethod
    def split_list(cls, value: object) -> object:
        """Accept the comma-separated list an environment variable can hold."""
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @model_validator(mode="after")
    def no_setting_breaks_another(self) -> "Settings":
        """Refuse, at start, values that are each valid but together break the service."""
        if self.max_streams >= self.web_threads:
            raise ValueError(
                f"EXECUTOR_MAX_STREAMS ({self.max_streams}) must be below EXECUTOR_WEB_THREADS "
                f"({self.web_threads}), so that open streams leave threads for other requests"
            )
        if self.worker_heartbeat_s * 2 > self.worker_lost_after_s:
            raise ValueError(
                f"EXECUTOR_WORKER_LOST_AFTER_S ({self.worker_lost_after_s}) must be at least twice "
                f"EXECUTOR_WORKER_HEARTBEAT_S ({self.worker_heartbeat_s}): one late heartbeat would "
                "report a running job lost"
            )
        if self.result_ttl < self.max_job_seconds:
            raise ValueError(
                f"EXECUTOR_RESULT_TTL ({self.result_ttl} s) must be at least EXECUTOR_MAX_JOB_SECONDS "
                f"({self.max_job_seconds} s): a result could expire before its client's wait ends"
            )
        return self

    @property
    def wait_slice_ms(self) -> int:
        """The longest one blocking read may wait: well inside the Redis socket timeout (2/3 of it,
        at most 500 ms), so a wait never times out its own connection and an outage shows quickly."""
        return max(1, min(500, int(self.redis_timeout * 1000 * 2 / 3)))

    @property
    def max_request_bytes(self) -> int:
        """The largest body worth parsing: program, checker program, stdin, files and cases at their
        maxima, JSON-escaped."""
        return (
            6 * (2 * self.max_code_bytes + self.max_stdin_bytes + self.max_files_bytes + self.max_tests_bytes)
            + 64 * 1024
        )
