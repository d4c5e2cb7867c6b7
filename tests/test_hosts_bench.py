"""`python -m bench --hosts`, small: two emulated hosts (network namespaces) sharing one Redis share the
jobs, and a host whose link goes down mid-job loses the job, kills its program, and comes back."""

import pytest

from bench.hosts import HostsOptions, cannot_emulate, run_hosts
from bench.pool import Deadline

# A short lost window keeps the test fast; the settings allow it (lost-after >= 2 x heartbeat).
HEARTBEAT_S = 0.5
LOST_AFTER_S = 2.0
JOBS = 20


def test_two_hosts_share_jobs_and_one_cut_off_mid_job_loses_it_kills_its_program_and_returns() -> None:
    if reason := cannot_emulate():
        pytest.skip(reason)
    options = HostsOptions(
        2,
        spread_jobs=JOBS,
        throughput_jobs_per_worker=5,
        heartbeat_s=HEARTBEAT_S,
        lost_after_s=LOST_AFTER_S,
        languages="python",
    )
    document = run_hosts(options, Deadline(100))

    assert not document["deadline_hit"]
    spread = document["spread"]
    assert spread["ok"] == JOBS, (spread["failures"], spread)
    assert sum(spread["jobs_per_host"].values()) == JOBS
    assert all(count > 0 for count in spread["jobs_per_host"].values()), spread["jobs_per_host"]
    two_hosts = document["throughput"]["summary"][1]
    # 0.2 s sleeps leave the cores free: a second host adds workers, not contention.
    assert two_hosts["failed"] == 0 and two_hosts["ratio_to_one_host"] > 1.2, document["throughput"]

    lost = document["link_down"]
    # Settled internal_error (WorkerLost) within lost-after plus a sweep; every process of its sandbox
    # gone from /proc by then, killed by its own worker; the host's workers beat and run a job again
    # once the link is up, and their late result does not overwrite the verdict.
    assert lost["documented_window_s"] == LOST_AFTER_S + HEARTBEAT_S
    assert lost["message"].find("WorkerLost") >= 0, lost
    assert all(lost["checks"].values()), lost
