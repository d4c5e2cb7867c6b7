"""Each run's cgroup: made with the run's limits, holding every process of the run, read and removed after.

cgroup v1 is what this machine (and CI) has, so it is tested for real; v2 is tested on the parts
that do not need the kernel (finding it in the mount table, reading its files), see docs/sandbox.md.
"""

import ctypes
import os
import threading
import time
from pathlib import Path

import pytest

from executor.sandbox import Limits, Program, RunResult, Sandbox, run_program
from executor.sandbox.cgroups import HierarchyV1, HierarchyV2, JobCgroupV2, favor_fast_moves, find_hierarchy
from executor.sandbox.isolation import Isolation
from executor.sandbox.limits import MIB
from executor.sandbox.seccomp import build_seccomp_filter
from tests.sandbox.conftest import COUNT_FORKS, IS_ROOT, Run

needs_root = pytest.mark.skipif(not IS_ROOT, reason="job cgroups need root")
MS_REMOUNT = 32
# Three children and the program, holding still while the test looks at the run's cgroup.
FAMILY = (
    "import os, time\n"
    "for _ in range(3):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(2)\n"
    "        os._exit(0)\n"
    "time.sleep(1)\n"
    "print('done')"
)


def read_job_cgroup_while_running(
    sandbox: Sandbox, code: str, limits: Limits
) -> tuple[RunResult, dict[str, str]]:
    """Run `code`, and read the run's memory and pids cgroup files (v1) once its processes are in."""
    assert isinstance(sandbox.cgroups, HierarchyV1)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(run_program(Program(code), limits, sandbox)))
    before = set(sandbox.cgroups.job_names())
    runner.start()
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while runner.is_alive() and time.monotonic() < deadline:
        for name in set(sandbox.cgroups.job_names()) - before:
            if not name.startswith(sandbox.run_prefix):
                continue
            memory = Path(sandbox.cgroups.parents["memory"], name)
            pids = Path(sandbox.cgroups.parents["pids"], name)
            try:
                found = {
                    "procs": (pids / "cgroup.procs").read_text(),
                    "pids.max": (pids / "pids.max").read_text().strip(),
                    "memory.limit": (memory / "memory.limit_in_bytes").read_text().strip(),
                    "tcp.limit": (memory / "memory.kmem.tcp.limit_in_bytes").read_text().strip(),
                }
            except FileNotFoundError:
                continue
            if len(found["procs"].split()) > len(seen.get("procs", "").split()):
                seen = found
        time.sleep(0.02)
    runner.join()
    return results[0], seen


@needs_root
def test_every_process_of_a_bwrap_run_is_in_its_cgroup_with_the_run_s_limits(bwrap_sandbox: Sandbox) -> None:
    result, seen = read_job_cgroup_while_running(
        bwrap_sandbox, FAMILY, Limits(memory_mb=48, max_processes=20)
    )
    assert result.stdout == "done\n"
    # bwrap's monitor and pid 1, the program and its three children.
    assert len(seen["procs"].split()) == 6, seen
    assert seen["pids.max"] == "22"  # the budget, plus bwrap's two
    assert int(seen["memory.limit"]) == 48 * MIB
    assert int(seen["tcp.limit"]) == 12 * MIB


@needs_root
def test_the_run_s_cgroup_is_gone_once_the_run_returns(run: Run, sandbox: Sandbox) -> None:
    assert sandbox.cgroups is not None
    run("import os\nif os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(30)")
    assert [name for name in sandbox.cgroups.job_names() if name.startswith(sandbox.run_prefix)] == []


@needs_root
def test_the_cgroup_alone_holds_the_process_budget_where_no_rlimit_can(bwrap_sandbox: Sandbox) -> None:
    # Programs of a root worker without a program uid run as root, which RLIMIT_NPROC does not bind.
    as_root = Sandbox(
        Isolation.RLIMITS_ONLY,
        bwrap_sandbox.languages,
        seccomp_filter=build_seccomp_filter(),
        cgroups=bwrap_sandbox.cgroups,
    )
    result = run_program(Program(COUNT_FORKS), Limits(max_processes=10), as_root)
    assert result.stdout == "9\n"  # the program is one of the ten


@needs_root
def test_cpu_time_and_peak_memory_are_the_whole_job_s(run: Run) -> None:
    # Two processes, each holding 24 MiB and burning 0.2 s of CPU: only the job as a whole has both sums.
    code = (
        "import os, time\n"
        "child = os.fork()\n"
        "block = bytearray(24 * 2**20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "while time.process_time() < 0.2: pass\n"
        "time.sleep(0.3)\n"
        "if child: os.waitpid(child, 0)\n"
    )
    result = run(code, memory_mb=256)
    assert result.cpu_time >= 0.4
    assert result.memory_kb is not None and result.memory_kb >= 48 * 1024


def test_cgroup_v2_is_found_in_the_mount_table_and_preferred(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "executor").mkdir()
    (root / "executor" / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"30 1 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n"
        "31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    )
    hierarchy = find_hierarchy(str(mountinfo))
    assert isinstance(hierarchy, HierarchyV2)
    assert hierarchy.parent == str(root / "executor")
    assert (root / "executor" / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_cgroup_v1_is_used_where_v2_has_no_memory_controller(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("hugetlb\n")  # as on this machine: v2 mounted, but empty
    lines = [f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw"]
    for number, controller in enumerate(("memory", "pids", "cpu,cpuacct", "freezer")):
        (tmp_path / controller).mkdir()
        lines.append(
            f"{40 + number} 1 0:{40 + number} / {tmp_path / controller} rw - cgroup cgroup rw,{controller}"
        )
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("\n".join(lines) + "\n")
    hierarchy = find_hierarchy(str(mountinfo))
    assert isinstance(hierarchy, HierarchyV1)
    assert hierarchy.parents["cpuacct"] == str(tmp_path / "cpu,cpuacct" / "executor")
    assert os.path.isdir(hierarchy.parents["freezer"])


def test_a_v2_job_s_usage_is_read_from_its_files_and_its_kill_is_one_write(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n")
    (tmp_path / "memory.peak").write_text(f"{40 * MIB}\n")
    (tmp_path / "cgroup.kill").write_text("")
    job = JobCgroupV2({"": str(tmp_path)})
    usage = job.usage()
    assert (usage.cpu_time_s, usage.memory_peak_kb, usage.oom_kills) == (1.5, 40 * 1024, 1)
    job._kill_all()
    assert (tmp_path / "cgroup.kill").read_text() == "1"


def cgroup2_mounts() -> dict[str, list[str]]:
    """Every cgroup2 mount point, with its options, from the mount table."""
    lines = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return {
        fields[4]: fields[fields.index("-") + 3].split(",")
        for fields in lines
        if fields[fields.index("-") + 1] == "cgroup2"
    }


@needs_root
def test_cgroup2_favordynmods_is_turned_on_where_it_was_off() -> None:
    if not cgroup2_mounts():
        pytest.skip("no cgroup2 mount here")
    target = next(iter(cgroup2_mounts()))
    # A remount without the flag turns it off (the kernel applies the flags it is given).
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mount(b"cgroup2", target.encode(), b"cgroup2", MS_REMOUNT, b"") == 0, ctypes.get_errno()
    assert "favordynmods" not in cgroup2_mounts()[target]
    assert favor_fast_moves() is None
    assert "favordynmods" in cgroup2_mounts()[target]
