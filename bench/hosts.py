"""`python -m bench --hosts N`: N worker hosts sharing one Redis, each a network namespace of this machine.

A deployment spreads its workers over machines that reach one Redis over a network, and the failure
that only that brings is a machine cut off from Redis while its program runs. Each emulated host is a
network namespace joined to the root namespace by a veth pair (a /30 of its own), whose workers (the
Procfile's `worker` line) also get a private /tmp (worker slots are lock files there, one set per
machine), a hostname, and program uids of their own. Redis and the web process run in the root
namespace; Redis listens on loopback and on the root end of each host's link, nowhere else, behind the
stack's random password.
The hosts share this machine's cores, so throughput over hosts measures what one Redis and the claiming
of jobs cost as hosts are added (0.2 s sleeps leave the cores free), not what more machines would add.

Measured: how jobs spread over the hosts; 0.2 s sleeps' throughput with 1..N hosts as a ratio to one
host, in the same run; Redis commands and bytes per job; and a host whose link goes down mid-job: its
job settled lost within EXECUTOR_WORKER_LOST_AFTER_S plus a sweep, its program killed by its own worker
(`workers/heartbeat_thread.py`), and its workers back by themselves once the link is up again.

Everything created here is named `exh<pid>-…` and removed by that name on the way out.
"""

import contextlib
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis import Redis
from rq.job import Job

from bench.client import JOB_LIMIT_S, Connection
from bench.pool import Deadline, run_pool
from bench.report import json_line, percentile
from bench.stack import LOOPBACK, READY_TIMEOUT_S, REPO, Stack, log_tails, running_stack, spawn, stop_process
from bench.suite import machine
from bench.workloads import WORKLOADS, Workload, new_token
from devtools.run_local import procfile_command
from executor.jobs.liveness import HEARTBEAT_PREFIX, alive_among, live_workers
from executor.jobs.statuses import INTERNAL_ERROR, TERMINAL_STATUSES
from executor.settings import Settings

# Enough concurrent clients to keep every worker busy while the previous answer travels back.
CLIENTS_PER_WORKER = 4
# A throughput phase with k hosts runs this many jobs per worker (about 7 s of 0.2 s sleeps).
THROUGHPUT_JOBS_PER_WORKER = 30
SPREAD_JOBS = 120
# The job whose host loses its link: it must still be running when the window has passed.
LONG_PROGRAM = "import time\ntime.sleep(30)\nprint('not killed')"
LONG_TIMEOUT_S = 30.0
# Past the documented window (lost-after plus one sweep), for a poll's pace and the watch's wake-up.
WINDOW_SLACK_S = 1.0
# The workers of a host that comes back wait on TCP's retransmission back-off, which doubles up to the
# time the link was down: a host is back, or reported not back, within that time plus this much.
RECOVERY_SLACK_S = 20.0
POLL_S = 0.05
# Host n runs programs as uids UID_BASE + UID_RANGE * n + slot (a worker's slot is below UID_RANGE).
UID_BASE = 63000
UID_RANGE = 100
# What a worker logs when its heartbeat thread stops its job (workers/heartbeat_thread.py).
LAPSE_LOG_LINE = "no heartbeat reached Redis for"
IP_TIMEOUT_S = 10.0


class CannotEmulate(RuntimeError):
    """This machine cannot make network namespaces for us (not root, or no `ip netns`)."""


@dataclass(frozen=True)
class HostsOptions:
    """What to run: N hosts of W workers, how many jobs, how many rounds of the throughput phases."""

    hosts: int
    workers_per_host: int = 1
    spread_jobs: int = SPREAD_JOBS
    # 0 skips the throughput phases (the CI test).
    throughput_jobs_per_worker: int = THROUGHPUT_JOBS_PER_WORKER
    rounds: int = 1
    # None: the service's defaults (or the environment's EXECUTOR_WORKER_* settings).
    heartbeat_s: float | None = None
    lost_after_s: float | None = None
    # EXECUTOR_LANGUAGES for every process; None: every language this machine has.
    languages: str | None = None


@dataclass
class Host:
    """One emulated machine: its namespace, its link and the workers running in it."""

    number: int
    namespace: str
    outer: str  # the link's end in the root namespace, which "unplugging" takes down
    inner: str
    network: ipaddress.IPv4Network
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The hostname its workers see, and the prefix of their worker names."""
        return f"host{self.number}"

    @property
    def outer_address(self) -> str:
        """Where its workers reach Redis."""
        return str(self.network[1])

    @property
    def inner_address(self) -> str:
        return str(self.network[2])


@dataclass(frozen=True)
class Done:
    """One job as a client saw it."""

    ok: bool
    job_id: str | None
    latency_s: float
    status: str


def cannot_emulate() -> str | None:
    """Why hosts cannot be emulated here, or None when they can."""
    if os.geteuid() != 0:
        return "emulating hosts needs root (network namespaces, veth links, mounts)"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: iproute2 / util-linux)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False, timeout=IP_TIMEOUT_S)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.decode(errors='replace').strip()}"
    return None


def host_of(worker_name: str | None) -> str:
    """The host a worker name belongs to (`host2-w0-…` → `host2`)."""
    return (worker_name or "nobody").partition("-")[0]


def _ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, check=False, timeout=IP_TIMEOUT_S)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")


def _free_block(count: int) -> list[ipaddress.IPv4Network]:
    """A /30 per host in a 10.x.0.0/16 that no route or address of this machine touches."""
    listed = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"],
        capture_output=True,
        check=True,
        timeout=IP_TIMEOUT_S,
    )
    routes = json.loads(listed.stdout or b"[]")
    taken = [
        ipaddress.ip_network(route["dst"], strict=False)
        for route in routes
        if route.get("dst", "default") not in ("default", "")
    ]
    start = os.getpid() % 50
    for offset in range(50):
        block = ipaddress.IPv4Network(f"10.{200 + (start + offset) % 50}.0.0/16")
        if not any(block.overlaps(network) for network in taken):
            return [ipaddress.IPv4Network(f"{block[0] + 256 * number}/30") for number in range(1, count + 1)]
    raise CannotEmulate("every 10.200-249.0.0/16 block is in use on this machine")


@contextlib.contextmanager
def host_links(count: int) -> Iterator[list[Host]]:
    """`count` namespaces, each with its link up; every one removed by its name on the way out."""
    prefix = f"exh{os.getpid()}-"
    hosts: list[Host] = []
    try:
        for number, network in enumerate(_free_block(count), 1):
            host = Host(number, f"{prefix}host{number}", f"{prefix}{number}o", f"{prefix}{number}i", network)
            hosts.append(host)  # before it exists: a half-made host is removed too
            _ip("netns", "add", host.namespace)
            _ip(
                "link", "add", host.outer, "type", "veth", "peer", "name", host.inner, "netns", host.namespace
            )
            _ip("addr", "add", f"{host.outer_address}/30", "dev", host.outer)
            _ip("link", "set", host.outer, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.inner_address}/30", "dev", host.inner)
            _ip("-n", host.namespace, "link", "set", host.inner, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        yield hosts
    finally:
        for host in hosts:
            _ip("link", "del", host.outer, check=False)  # takes its peer with it
            _ip("netns", "del", host.namespace, check=False)


# The host's own /tmp: a fresh tmpfs in a mount namespace of its own. A repository under /tmp (a CI
# checkout) would vanish under it, so it is bound to /mnt first (a mount point every Debian has, and
# only in this namespace), then bound back at its own path on the new /tmp.
_PRIVATE_TMP = """set -e
case "$REPO" in /tmp/*) mount --bind "$REPO" /mnt ;; esac
mount -t tmpfs -o mode=1777 tmpfs /tmp
case "$REPO" in /tmp/*) mkdir -p "$REPO" && mount --bind /mnt "$REPO" ;; esac
hostname "$0"
exec "$@"
"""


def _worker_command(host: Host, worker_name: str) -> list[str]:
    """The Procfile's worker line in the host's network namespace, with a mount namespace of its own
    holding a fresh /tmp, and the host's hostname; `exec` keeps the worker's pid the one we started."""
    return [
        "nsenter", f"--net=/run/netns/{host.namespace}",
        "unshare", "--mount", "--uts", "--propagation", "private",
        "env", f"REPO={REPO}", "sh", "-c", _PRIVATE_TMP, host.name,
        *procfile_command("worker"), "--name", worker_name,
    ]  # fmt: skip


def start_host(stack: Stack, host: Host, workers: int, deadline: Deadline) -> None:
    """Start the host's workers, reaching Redis through its link, and wait until each has beaten."""
    url = stack.redis.url
    assert f"@{LOOPBACK}:" in url
    env = {
        **stack.env,
        "REDIS_URL": url.replace(f"@{LOOPBACK}:", f"@{host.outer_address}:"),
        "TMPDIR": "/tmp",
        # Machines have process tables of their own; these hosts share this one, where a run's clean-up
        # kills every process of its program uid: each host runs programs under uids of its own.
        "EXECUTOR_SANDBOX_UID_BASE": str(UID_BASE + UID_RANGE * host.number),
        "EXECUTOR_SANDBOX_SLOTS": str(UID_RANGE),
    }
    for number in range(workers):
        # A fresh name each start: RQ refuses a name that a worker of the same name still holds.
        name = f"{host.name}-w{number}-{secrets.token_hex(2)}"
        log = os.path.join(stack.log_dir, f"{name}.log")
        host.workers[name] = spawn(_worker_command(host, name), env, log)
    stack.workers = [*stack.workers, *host.workers.values()]
    limit = deadline.child(READY_TIMEOUT_S)
    while not limit.expired():
        for name, process in host.workers.items():
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited early:\n{log_tails(stack.log_dir)}")
        if set(host.workers) <= set(live_workers(stack.redis_client())):
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"{host.name}'s workers did not beat in {READY_TIMEOUT_S} s:\n{log_tails(stack.log_dir)}"
    )


def stop_host(stack: Stack, host: Host) -> None:
    """Stop the host's workers (a warm shutdown), first taking them off the stack's watch."""
    stack.workers = [worker for worker in stack.workers if worker not in host.workers.values()]
    for process in host.workers.values():
        stop_process(process)
    host.workers.clear()


def _run_one(connection: Connection, workload: Workload, deadline: Deadline) -> Done:
    """POST ?wait=true, then GET ?wait=true until the job ends; bounded by the job limit."""
    token = new_token()
    body = {"code": workload.code(token), "language": workload.language, "timeout": workload.timeout_s}
    started = time.perf_counter()
    limit = deadline.child(JOB_LIMIT_S)
    try:
        code, view = connection.request("POST", "/api/v1/execute?wait=true", body)
        job_id = view.get("job_id") if isinstance(view, dict) else None
        while code == 202 and job_id and not limit.expired():
            code, view = connection.request("GET", f"/api/v1/execute/{job_id}?wait=true")
    except (OSError, http.client.HTTPException, ValueError) as error:
        connection.close()
        return Done(False, None, time.perf_counter() - started, f"error {error!r:.80}")
    status = str(view.get("status")) if isinstance(view, dict) else f"HTTP {code}"
    ok = code == 200 and status == "success" and workload.check(view.get("stdout", ""), token)
    return Done(ok, job_id, time.perf_counter() - started, status)


def run_clients(
    base_url: str, workload: Workload, jobs: int, clients: int, deadline: Deadline
) -> tuple[list[Done], float]:
    """`clients` threads, each with a keep-alive connection, run `jobs` jobs between them."""
    local = threading.local()
    opened: list[Connection] = []

    def work(index: int) -> Done:
        if not hasattr(local, "connection"):
            local.connection = Connection(base_url)
            opened.append(local.connection)
        return _run_one(local.connection, workload, deadline)

    try:
        return run_pool(clients, jobs, deadline, work)
    finally:
        for connection in opened:
            connection.close()


def _redis_totals(client: Redis) -> tuple[int, int]:
    """Commands processed and bytes in and out, since redis-server started."""
    stats = client.info("stats")
    return int(stats["total_commands_processed"]), int(stats["total_net_input_bytes"]) + int(
        stats["total_net_output_bytes"]
    )


def owners(client: Redis, job_ids: list[str]) -> list[str | None]:
    """The worker that ran each job, from its RQ hash; one round trip."""
    with client.pipeline(transaction=False) as pipeline:
        for job_id in job_ids:
            pipeline.hget(Job.key_for(job_id), "worker_name")
        return [owner.decode() if owner else None for owner in pipeline.execute()]


def run_phase(
    stack: Stack, hosts: list[Host], workload: Workload, jobs: int, deadline: Deadline
) -> dict[str, Any]:
    """One measured phase on the hosts that have workers now: throughput, spread, Redis per job."""
    running = [host for host in hosts if host.workers]
    workers = sum(len(host.workers) for host in running)
    client = stack.redis_client()
    commands_before, bytes_before = _redis_totals(client)
    done, elapsed = run_clients(stack.base_url, workload, jobs, CLIENTS_PER_WORKER * workers, deadline)
    commands_after, bytes_after = _redis_totals(client)
    ran_on = Counter(host_of(owner) for owner in owners(client, [job.job_id for job in done if job.job_id]))
    ok = sum(job.ok for job in done)
    latency = percentile([job.latency_s for job in done if job.ok], 0.5)
    return {
        "hosts": len(running),
        "workers": workers,
        "clients": CLIENTS_PER_WORKER * workers,
        "jobs": jobs,
        "ok": ok,
        "failures": dict(Counter(job.status for job in done if not job.ok)),
        "jobs_per_s": ok / elapsed if elapsed > 0 else 0.0,
        "latency_p50_ms": None if latency is None else latency * 1000,
        "jobs_per_host": {host.name: ran_on.get(host.name, 0) for host in hosts},
        # Commands and bytes of the whole phase, heartbeats and sweeps included, over its jobs.
        "redis_commands_per_job": (commands_after - commands_before) / max(1, len(done)),
        "redis_bytes_per_job": (bytes_after - bytes_before) / max(1, len(done)),
    }


def measure_throughput(
    stack: Stack, hosts: list[Host], options: HostsOptions, deadline: Deadline
) -> dict[str, Any]:
    """0.2 s sleeps with 1, 2, … N hosts, hosts started one by one in each round (host 1 runs first);
    each round's rates are divided by its own one-host rate, and the medians over rounds reported."""
    rounds: list[list[dict[str, Any]]] = []
    for _ in range(options.rounds):
        for host in hosts[1:]:
            stop_host(stack, host)
        phases = []
        for count, host in enumerate(hosts, 1):
            if not host.workers:
                start_host(stack, host, options.workers_per_host, deadline)
            jobs = options.throughput_jobs_per_worker * options.workers_per_host * count
            phases.append(run_phase(stack, hosts, WORKLOADS["sleep"], jobs, deadline))
            _progress(f"sleep 0.2 s, {count} host(s): {phases[-1]['jobs_per_s']:.2f} jobs/s")
        rounds.append(phases)
    summary = []
    for index in range(len(hosts)):
        per_round = [phases[index] for phases in rounds]
        ratios = [
            phase["jobs_per_s"] / phases[0]["jobs_per_s"]
            for phase, phases in zip(per_round, rounds, strict=True)
            if phases[0]["jobs_per_s"]
        ]
        summary.append(
            {
                "hosts": index + 1,
                "jobs_per_s": statistics.median(phase["jobs_per_s"] for phase in per_round),
                "ratio_to_one_host": statistics.median(ratios) if ratios else None,
                "round_ratios": ratios,
                "redis_commands_per_job": statistics.median(
                    phase["redis_commands_per_job"] for phase in per_round
                ),
                "redis_bytes_per_job": statistics.median(phase["redis_bytes_per_job"] for phase in per_round),
                "failed": sum(phase["jobs"] - phase["ok"] for phase in per_round),
            }
        )
    return {"summary": summary, "rounds": rounds}


@dataclass
class Sandboxed:
    """The processes a worker runs a program in, told apart from later processes that reuse a pid by
    their start times: its descendants in a cgroup other than the worker's own, the run's (bubblewrap's
    and the program's on the cold path; the run's init and the program on the warm one, whose
    zygote, long-lived, stays in the worker's cgroup)."""

    started: dict[int, float]
    program_pid: int | None

    @classmethod
    def of(cls, worker_pid: int) -> "Sandboxed":
        started, program = {}, None
        own_cgroup = _cgroup_of(worker_pid)
        for process in psutil.Process(worker_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                if _cgroup_of(process.pid) == own_cgroup:
                    continue
                started[process.pid] = process.create_time()
                if any(arg.endswith("main.py") for arg in process.cmdline()):
                    program = process.pid
        return cls(started, program)

    def alive(self) -> list[int]:
        """Those of them still in /proc, a zombie included."""
        found = []
        for pid, created in self.started.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).create_time() == created:
                    found.append(pid)
        return found


def _cgroup_of(pid: int) -> str:
    """The cgroups a process is in, as /proc says."""
    return Path(f"/proc/{pid}/cgroup").read_text()


def _job_field(client: Redis, job_id: str, name: str) -> str | None:
    value = client.hget(Job.key_for(job_id), name)
    return value.decode() if isinstance(value, bytes) else None


def _running_program(
    stack: Stack, hosts: list[Host], job_id: str, deadline: Deadline
) -> tuple[Host, str, Sandboxed]:
    """Wait until the job runs and its program is up; its host, its worker and its processes."""
    limit = deadline.child(READY_TIMEOUT_S)
    while not limit.expired():
        owner = _job_field(stack.redis_client(), job_id, "worker_name")
        host = next((host for host in hosts if owner in host.workers), None)
        if host is not None and owner is not None:
            sandboxed = Sandboxed.of(host.workers[owner].pid)
            if sandboxed.program_pid is not None:
                return host, owner, sandboxed
        time.sleep(POLL_S)
    raise RuntimeError(f"job {job_id} did not start on an emulated host in {READY_TIMEOUT_S} s")


def _watch_cut_off(
    connection: Connection, job_id: str, sandboxed: Sandboxed, limit: Deadline
) -> dict[str, Any]:
    """From the moment the link is down: poll the job until it is settled, and the sandbox until its
    processes are gone, whichever takes longer; seconds since the cut for each."""
    cut = time.monotonic()
    figures: dict[str, Any] = {"settled_after_s": None, "program_gone_after_s": None}
    while not limit.expired():
        if figures["settled_after_s"] is None:
            code, view = connection.request("GET", f"/api/v1/execute/{job_id}")
            if code == 200 and view.get("status") in TERMINAL_STATUSES:
                figures.update(settled_after_s=time.monotonic() - cut, status=view["status"])
                figures["message"] = (view.get("message") or "")[:80]
        if figures["program_gone_after_s"] is None and not sandboxed.alive():
            figures["program_gone_after_s"] = time.monotonic() - cut
        if None not in (figures["settled_after_s"], figures["program_gone_after_s"]):
            break
        time.sleep(POLL_S)
    figures["still_alive_pids"] = sandboxed.alive()
    return figures


def _recovery(stack: Stack, hosts: list[Host], host: Host, limit: Deadline) -> dict[str, Any]:
    """From the moment the link is up: when every worker of the host beats again, and when a job
    (one of a burst as large as every worker twice over) runs on the host again."""
    up = time.monotonic()
    figures: dict[str, Any] = {"heartbeat_back_after_s": None, "job_on_host_after_s": None}
    client = stack.redis_client()
    while not limit.expired() and figures["heartbeat_back_after_s"] is None:
        if alive_among(client, list(host.workers)) == set(host.workers):
            figures["heartbeat_back_after_s"] = time.monotonic() - up
        time.sleep(POLL_S)
    burst = 2 * sum(len(each.workers) for each in hosts)
    while not limit.expired() and figures["job_on_host_after_s"] is None:
        done, _ = run_clients(stack.base_url, WORKLOADS["sleep"], burst, burst, limit)
        if host.name in {
            host_of(owner) for owner in owners(client, [job.job_id for job in done if job.job_id])
        }:
            figures["job_on_host_after_s"] = time.monotonic() - up
    return figures


def link_down(
    stack: Stack, hosts: list[Host], window: tuple[float, float], deadline: Deadline
) -> dict[str, Any]:
    """Take down the link of the host running a long job; see what becomes of the job, its program and
    the host. `window` is (heartbeat, lost-after) in seconds."""
    heartbeat_s, lost_after_s = window
    connection = Connection(stack.base_url)
    try:
        code, view = connection.request(
            "POST", "/api/v1/execute", {"code": LONG_PROGRAM, "timeout": LONG_TIMEOUT_S}
        )
        if code != 202:
            raise RuntimeError(f"the long job was refused: {code} {view}")
        job_id = view["job_id"]
        host, owner, sandboxed = _running_program(stack, hosts, job_id, deadline)
        _progress(f"job {job_id} runs on {owner}; taking {host.outer} down")
        documented = lost_after_s + heartbeat_s
        # When the worker's heartbeat key expires if no beat comes: the earliest a sweep may settle.
        expires_ms = stack.redis_client().pttl(HEARTBEAT_PREFIX + owner)
        _ip("link", "set", host.outer, "down")
        try:
            down_at = time.monotonic()
            cut_off = _watch_cut_off(
                connection, job_id, sandboxed, deadline.child(documented + WINDOW_SLACK_S + 5)
            )
        finally:
            _ip("link", "set", host.outer, "up")
        down_s = time.monotonic() - down_at
        _progress(f"{host.outer} up again after {down_s:.1f} s")
        recovery = _recovery(stack, hosts, host, deadline.child(down_s + RECOVERY_SLACK_S))
        code, view = connection.request("GET", f"/api/v1/execute/{job_id}")
    finally:
        connection.close()
    figures = {
        "host": host.name,
        "worker": owner,
        "documented_window_s": documented,
        "key_expired_after_s": expires_ms / 1000,
        **cut_off,
        "link_down_s": down_s,
        **recovery,
        "recovery_limit_s": down_s + RECOVERY_SLACK_S,
        "status_after_recovery": view.get("status") if code == 200 else f"HTTP {code}",
        # Its own worker killed it (workers/heartbeat_thread.py), not a sweep of a dead worker's run.
        "worker_logged_lapse": LAPSE_LOG_LINE in _read(os.path.join(stack.log_dir, f"{owner}.log")),
    }
    figures["checks"] = _verdicts(figures)
    return figures


def _verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    """What the scenario must show, each as one yes or no."""
    within = figures["documented_window_s"] + WINDOW_SLACK_S

    def by(key: str, limit: float) -> bool:
        return figures.get(key) is not None and figures[key] <= limit

    return {
        "settled_lost_within_window": figures.get("status") == INTERNAL_ERROR
        and by("settled_after_s", within),
        "program_gone_within_window": by("program_gone_after_s", within) and not figures["still_alive_pids"],
        "heartbeat_back": by("heartbeat_back_after_s", figures["recovery_limit_s"]),
        "job_on_host_again": by("job_on_host_after_s", figures["recovery_limit_s"]),
        "lost_verdict_kept": figures["status_after_recovery"] == INTERNAL_ERROR,
        "killed_by_its_own_worker": figures["worker_logged_lapse"],
    }


def _settings(options: HostsOptions) -> tuple[dict[str, str], tuple[float, float]]:
    """The environment every process gets, and the (heartbeat, lost-after) window it sets."""
    defaults = Settings()
    window = (
        options.heartbeat_s or defaults.worker_heartbeat_s,
        options.lost_after_s or defaults.worker_lost_after_s,
    )
    env = {"EXECUTOR_WORKER_HEARTBEAT_S": str(window[0]), "EXECUTOR_WORKER_LOST_AFTER_S": str(window[1])}
    if options.languages is not None:
        env["EXECUTOR_LANGUAGES"] = options.languages
    return env, window


def run_hosts(options: HostsOptions, deadline: Deadline) -> dict[str, Any]:
    """The whole measurement; every namespace, link and process it made is gone when it returns."""
    if reason := cannot_emulate():
        raise CannotEmulate(reason)
    env, window = _settings(options)
    document: dict[str, Any] = {
        "hosts": options.hosts,
        "workers_per_host": options.workers_per_host,
        "heartbeat_s": window[0],
        "lost_after_s": window[1],
    }
    with host_links(options.hosts) as hosts:
        bind = (LOOPBACK, *(host.outer_address for host in hosts))
        with running_stack(0, deadline, redis_bind=bind, settings=env) as stack, stack.watched(deadline):
            try:
                start_host(stack, hosts[0], options.workers_per_host, deadline)
                if options.throughput_jobs_per_worker:
                    document["throughput"] = measure_throughput(stack, hosts, options, deadline)
                for host in hosts:
                    if not host.workers:
                        start_host(stack, host, options.workers_per_host, deadline)
                document["spread"] = run_phase(
                    stack, hosts, WORKLOADS["hello"], options.spread_jobs, deadline
                )
                _progress(
                    f"spread of {options.spread_jobs} hello jobs: {document['spread']['jobs_per_host']}"
                )
                document["link_down"] = link_down(stack, hosts, window, deadline)
            finally:
                for host in hosts:
                    stop_host(stack, host)
    document["deadline_hit"] = deadline.expired()
    return document


def _read(path: str) -> str:
    with open(path, errors="replace") as log:
        return log.read()


def _progress(message: str) -> None:
    print(f"  [hosts] {message}", flush=True)


# The link-down figures printed for people, in this order (the JSON line has them all).
SHOWN_LINK_FIGURES = (
    "status",
    "key_expired_after_s",
    "settled_after_s",
    "program_gone_after_s",
    "link_down_s",
    "heartbeat_back_after_s",
    "job_on_host_after_s",
    "status_after_recovery",
)


def report(document: dict[str, Any]) -> bool:
    """Print the figures for people, then the JSON line; True when every job and every check passed."""
    print(f"== hosts · {document['hosts']} hosts of {document['workers_per_host']} worker(s) · one Redis")
    for phase in (document.get("throughput") or {}).get("summary", []):
        ratio = phase["ratio_to_one_host"]
        print(
            f"sleep 0.2 s, {phase['hosts']} host(s): {phase['jobs_per_s']:6.2f} jobs/s, "
            f"ratio to one host {ratio if ratio is None else round(ratio, 2)}, " + _redis_figures(phase)
        )
    spread = document["spread"]
    print(
        f"hello, {spread['jobs']} jobs: {spread['ok']} ok, per host {spread['jobs_per_host']}, "
        + _redis_figures(spread)
    )
    lost = document["link_down"]
    print(f"link down under {lost['worker']}'s job (documented window {lost['documented_window_s']:.1f} s):")
    for key in SHOWN_LINK_FIGURES:
        value = lost.get(key)
        print(f"  {key:28} {round(value, 2) if isinstance(value, float) else value}")
    for check, passed in lost["checks"].items():
        print(f"  check {check:40} {'passed' if passed else 'FAILED'}")
    print(json_line({"bench": "executor-hosts", "machine": machine(), **document}), flush=True)
    failed = spread["ok"] < spread["jobs"] or any(
        phase["failed"] for phase in (document.get("throughput") or {}).get("summary", [])
    )
    return not (failed or document["deadline_hit"] or not all(lost["checks"].values()))


def _redis_figures(phase: dict[str, Any]) -> str:
    return (
        f"{phase['redis_commands_per_job']:.1f} Redis commands and "
        f"{phase['redis_bytes_per_job']:.0f} bytes per job"
    )
