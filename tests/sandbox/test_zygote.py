"""The warm path's zygote (docs/warm-start.md), driven directly: what a run sees and what it cannot
reach. Needs root, bubblewrap and cgroups, as the cold path's containment tests do."""

import errno
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from executor.languages import build_languages, default_python
from executor.sandbox.backends.bwrap import WORK_DIR, zygote_command
from executor.sandbox.cgroups import CgroupLimits
from executor.sandbox.isolation import Sandbox
from executor.sandbox.launch import program_environment
from executor.sandbox.limits import MIB, Limits
from executor.sandbox.processes import count_tasks
from executor.sandbox.program import Program
from executor.sandbox.rlimits import program_rlimits
from executor.sandbox.runner import run_program
from executor.sandbox.warm import backend
from executor.sandbox.warm import zygote as zygote_module
from executor.sandbox.warm.backend import stop_zygotes
from executor.sandbox.warm.zygote import (
    ZYGOTE_MAIN,
    ZYGOTE_TASKS,
    RunRequest,
    Spare,
    Zygote,
    ZygoteFailed,
    ZygoteSetup,
    host_pid,
)
from tests.sandbox.conftest import Run
from tests.stack import PID_1, REPO

PYTHON = build_languages(default_python())["python"]
ENVIRONMENT = program_environment(PYTHON, home=WORK_DIR, tmpdir="/tmp")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the zygote runs as a worker slot does: root"
)


@dataclass(frozen=True)
class Ran:
    status: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def sandbox(bwrap_sandbox: Sandbox) -> Sandbox:
    if bwrap_sandbox.cgroups is None or bwrap_sandbox.program_uid is None:
        pytest.skip("the warm path needs the job cgroups and a program uid")
    return bwrap_sandbox


@pytest.fixture
def zygote(sandbox: Sandbox) -> Iterator[Zygote]:
    assert sandbox.program_uid is not None
    interpreter = PYTHON.command(Limits().memory_mb, ())[:-1]  # what precedes main.py
    # The worker's filter, and the test's small disk.
    setup = ZygoteSetup(sandbox.seccomp_filter, disk_bytes=32 * MIB, disk_inodes=1024)
    started = Zygote.start(
        lambda fd: zygote_command(sandbox, interpreter, PYTHON, str(ZYGOTE_MAIN), fd), setup
    )
    yield started
    started.stop()


def _request(code: str = "pass", args: tuple[str, ...] = ()) -> RunRequest:
    """A run's request, as the worker makes it (`warm.backend`)."""
    return RunRequest(
        files=(("main.py", code.encode()),),
        args=args,
        env=ENVIRONMENT,
        rlimits=program_rlimits(Limits(), 4, memory_in_cgroup=True),
    )


def warm_run(
    zygote: Zygote, sandbox: Sandbox, code: str, stdin: bytes = b"", args: tuple[str, ...] = ()
) -> Ran:
    """One run through the zygote's spare, in a cgroup of its own, as the worker makes it; its status
    is what the init reported (the program's exit code, or 128 + the signal that killed it)."""
    assert sandbox.cgroups is not None
    request = _request(code, args)
    cgroup = sandbox.cgroups.make(f"zygote-test-{uuid.uuid4().hex[:8]}", CgroupLimits(256 * MIB, 64))
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    spare = zygote.take_spare()
    try:
        cgroup.join(host_pid(spare.pidfd))
        spare.hand(request, stdin_read, stdout_write, stderr_write)
        for fd in (stdin_read, stdout_write, stderr_write):
            os.close(fd)
        os.write(stdin_write, stdin)
        os.close(stdin_write)
        collected: dict[int, bytes] = {}

        def drain(fd: int) -> None:
            with os.fdopen(fd, "rb") as stream:
                collected[fd] = stream.read()

        readers = [threading.Thread(target=drain, args=(fd,)) for fd in (stdout_read, stderr_read)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(20)
        assert select.select([spare.pidfd], [], [], 20)[0], "the run's init did not end"
        status = spare.reported_exit()
        assert status is not None
        return Ran(status, collected[stdout_read].decode(), collected[stderr_read].decode())
    finally:
        spare.close()
        cgroup.kill()
        cgroup.remove()


def test_a_run_prints_reads_its_stdin_and_ends_with_its_exit_code(zygote: Zygote, sandbox: Sandbox) -> None:
    ran = warm_run(
        zygote, sandbox, "import sys\nprint(input().upper(), sys.argv)\nsys.exit(3)", b"hi\n", ("a",)
    )
    assert (ran.status, ran.stdout) == (3, "HI ['main.py', 'a']\n")


def test_a_run_sees_its_own_pid_namespace_a_fresh_disk_uid_1000_and_no_privilege(
    zygote: Zygote, sandbox: Sandbox
) -> None:
    probe = (
        "import os\n"
        "pids = sorted(p for p in os.listdir('/proc') if p.isdigit())\n"
        "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines())\n"
        "print(pids, os.listdir('/tmp'), os.listdir('/work'), os.getuid(), os.getgid(), os.getcwd(),"
        " dict(os.environ)['HOME'], status['CapEff'], status['CapPrm'], status['CapBnd'],"
        " status['NoNewPrivs'], status['Seccomp'])\n"
    )
    ran = warm_run(zygote, sandbox, probe)
    no_capability = "0000000000000000"
    capabilities = f"{no_capability} {no_capability} {no_capability}"
    expected = f"['1', '2'] [] ['main.py'] 1000 1000 /work /work {capabilities} 1 2\n"
    assert ran.stdout == expected, ran.stderr


def test_a_run_has_the_sandbox_s_hostname_and_cannot_change_it_for_the_next(
    zygote: Zygote, sandbox: Sandbox
) -> None:
    # Runs share the zygote's uts namespace: what keeps them apart is that no program may set it.
    probe = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(os.uname().nodename, libc.sethostname(b'taken', 5), ctypes.get_errno())\n"
    )
    first = warm_run(zygote, sandbox, probe)
    second = warm_run(zygote, sandbox, probe)
    assert first.stdout == second.stdout == f"sandbox -1 {errno.EPERM}\n", first.stderr


def test_an_uncaught_exception_shows_only_the_program_s_frames_and_exits_1(
    zygote: Zygote, sandbox: Sandbox
) -> None:
    ran = warm_run(zygote, sandbox, "def f():\n    raise ValueError('boom')\nf()\n")
    assert ran.status == 1
    assert ran.stderr.startswith('Traceback (most recent call last):\n  File "/work/main.py", line 3'), (
        ran.stderr
    )
    assert "runpy" not in ran.stderr and "zygote" not in ran.stderr
    assert ran.stderr.endswith("ValueError: boom\n")


def test_nothing_a_run_leaves_reaches_the_next(zygote: Zygote, sandbox: Sandbox) -> None:
    """Files in /tmp, /work and /dev/shm, the environment, an imported and patched module and a
    process left running are all gone for the next run."""
    marker = uuid.uuid4().hex
    leave = (
        f"import os, json, subprocess\n"
        f"for place in ('/tmp', '/work', '/dev/shm'):\n"
        f"    open(os.path.join(place, '{marker}'), 'w').write('x')\n"
        f"os.environ['LEFT'] = '{marker}'\n"
        f"json.left = '{marker}'\n"
        f"subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
    )
    assert warm_run(zygote, sandbox, leave).status == 0
    look = (
        "import os, sys\n"
        f"found = [p for p in ('/tmp', '/work', '/dev/shm') if '{marker}' in os.listdir(p)]\n"
        "print(found, os.environ.get('LEFT'), 'json' in sys.modules, hasattr(__import__('json'), 'left'),"
        " sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    assert warm_run(zygote, sandbox, look).stdout == "[] None False False ['1', '2']\n"


def test_a_run_that_kills_every_process_it_can_leaves_the_zygote_serving(
    zygote: Zygote, sandbox: Sandbox
) -> None:
    kill_all = (
        "import os, signal\n"
        "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
        "print('alive', flush=True)\n"
        "os.kill(0, signal.SIGKILL)\n"  # its process group: its own, not the zygote's
    )
    ran = warm_run(zygote, sandbox, kill_all)
    assert ran.stdout == "alive\n", (ran.status, ran.stderr)  # nothing outside its namespace is in reach
    assert warm_run(zygote, sandbox, "print('next')").stdout == "next\n"


def test_a_run_has_no_fd_but_its_standard_streams(zygote: Zygote, sandbox: Sandbox) -> None:
    ran = warm_run(
        zygote, sandbox, "import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))\n"
    )
    assert ran.stdout == "[0, 1, 2, 3]\n"  # 3: the listing's own directory


def test_a_run_cannot_find_an_earlier_run_s_data_in_its_memory(zygote: Zygote, sandbox: Sandbox) -> None:
    """The zygote never reads a run's code, stdin or files: none of them is in the memory the next
    run inherits."""
    secret = uuid.uuid4().hex
    # In the code, stdin and the arguments (which travel as they are, the code hex-encoded).
    warm_run(zygote, sandbox, f"print('{secret}', input())", secret.encode() + b"\n", (secret,))
    # The marker is looked for in two halves, so the scan itself never holds it whole.
    first, second = secret[:16].encode().hex(), secret[16:].encode().hex()
    scan = (
        f"first, second = bytes.fromhex('{first}'), bytes.fromhex('{second}')\n"
        "found = 0\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "with open('/proc/self/mem', 'rb', 0) as mem:\n"
        "    for line in maps:\n"
        "        span, perms = line.split()[:2]\n"
        "        if 'r' not in perms or '[vvar' in line or '[vsyscall' in line:\n"
        "            continue\n"
        "        start, end = (int(x, 16) for x in span.split('-'))\n"
        "        try:\n"
        "            mem.seek(start)\n"
        "            chunk = mem.read(end - start)\n"
        "        except OSError:\n"
        "            continue\n"
        "        at = chunk.find(first)\n"
        "        while at != -1:\n"
        "            found += chunk[at + len(first) : at + len(first) + len(second)] == second\n"
        "            at = chunk.find(first, at + 1)\n"
        "print(found)\n"
    )
    ran = warm_run(zygote, sandbox, scan)
    assert ran.stdout == "0\n", ran.stderr


def test_a_run_ends_as_a_cold_start_does_its_threads_joined_then_its_atexit_handlers(
    zygote: Zygote, sandbox: Sandbox
) -> None:
    code = (
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('atexit'))\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    print('thread')\n"
        "threading.Thread(target=late).start()\n"
        "print('main')\n"
    )
    assert warm_run(zygote, sandbox, code).stdout == "main\nthread\natexit\n"


def test_a_run_finds_the_modules_a_cold_start_has_and_no_more(
    zygote: Zygote, sandbox: Sandbox, run_bwrap: Run
) -> None:
    """What the zygote imported for itself is gone from sys.modules; what a cold start imports is there."""
    probe = "import sys\nprint(sorted(sys.modules))\n"
    cold = run_bwrap(probe)
    assert cold.stdout and warm_run(zygote, sandbox, probe).stdout == cold.stdout


@pytest.fixture
def warm_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox with warm starts on: the runner starts python programs through a zygote, with no
    failures counted from another test."""
    monkeypatch.setattr(backend, "START_FAILURES", backend.StartFailures())
    yield replace(sandbox, warm_start=True)
    stop_zygotes()


# What a run's result says about how it ended, and its output.
ENDING = ("outcome", "stdout", "stdout_truncated", "return_code", "signal")
# (program, stdin, limits, what must be the same): each runs cold and warm, and must end the same way.
# Which limit stops a busy loop first, its CPU time or its wall time, is a race on both paths, so its
# signal is left out; so is a fork bomb's (whichever of its processes fails last writes last).
SAME_BOTH_WAYS = [
    ("print(input()[::-1])", "olleh\n", {}, ENDING),
    ("import sys\nsys.exit(3)", "", {}, ENDING),
    ("raise ValueError('boom')", "", {}, ENDING),
    ("while True:\n    pass", "", {"wall_time_s": 1.0}, ("outcome", "stdout")),
    ("x = bytearray(512 * 1024 * 1024)", "", {"memory_mb": 64}, ENDING),
    ("print('unclosed'", "", {}, ENDING),
    ("import sys\nsys.stdout.write('x' * 10_000_000)", "", {"max_output_bytes": 4096}, ENDING),
    ("import os\nwhile True:\n    os.fork()", "", {"max_processes": 16, "wall_time_s": 2.0}, ("outcome",)),
]


@pytest.mark.parametrize("case", SAME_BOTH_WAYS)
def test_the_runner_s_warm_start_ends_a_program_as_its_cold_start_does(
    sandbox: Sandbox, warm_sandbox: Sandbox, case: tuple[str, str, dict[str, Any], tuple[str, ...]]
) -> None:
    code, stdin, settings, same = case
    limits = Limits(**settings)
    cold = run_program(Program(code, stdin=stdin), limits, sandbox)
    warm = run_program(Program(code, stdin=stdin), limits, warm_sandbox)
    # It did start warm: no silent fallback to cold.
    assert backend._ZYGOTES[warm_sandbox.program_uid, "python"].runs == 1
    assert [getattr(warm, name) for name in same] == [getattr(cold, name) for name in same], (cold, warm)
    if same == ENDING:
        assert warm.stderr.splitlines()[-1:] == cold.stderr.splitlines()[-1:]
        assert "zygote" not in warm.stderr


# Programs whose peak memory a warm start must report as a cold start does: the interpreter alone,
# with some of the standard library, and with 50 MiB of its own.
MEMORY_PROBES = (
    "print('hello')",
    "import json, collections, re\nprint(json.dumps({'a': 1}))",
    "data = bytearray(50 * 1024 * 1024)\ndata[::4096] = b'1' * len(data[::4096])\nprint(len(data))",
)
# How far apart the two may be: a warm run is charged the zygote's pages it writes to (copies),
# a cold one those its interpreter's start writes, which differ by about a MiB.
MEMORY_TOLERANCE_KB = 2048


@pytest.mark.parametrize("code", MEMORY_PROBES)
def test_a_warm_run_s_memory_kb_is_a_cold_run_s(sandbox: Sandbox, warm_sandbox: Sandbox, code: str) -> None:
    """memory_kb is the run's cgroup peak on both paths (the medians of three runs each)."""

    def peak(where: Sandbox) -> float:
        found = [run_program(Program(code), Limits(), where).memory_kb for _ in range(3)]
        assert None not in found
        return statistics.median(value for value in found if value is not None)

    cold, warm = peak(sandbox), peak(warm_sandbox)
    assert backend._ZYGOTES[warm_sandbox.program_uid, "python"].runs == 3  # they did start warm
    assert abs(warm - cold) <= MEMORY_TOLERANCE_KB, (cold, warm)


def test_the_runner_starts_python_warm_where_it_may_and_cold_where_files_are_read_back(
    warm_sandbox: Sandbox,
) -> None:
    """A warm program's pid 1 is its init in the zygote (a cold one's is bubblewrap); a run whose
    files are read back afterwards starts cold."""
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"
    with_outputs = run_program(Program(PID_1, outputs=("*.txt",)), Limits(), warm_sandbox)
    assert with_outputs.stdout == "bwrap\n"


def tasks_settling_at(uid: int, expected: int) -> int:
    """The tasks of the slot's uid once they number `expected`, or after 2 s: a run's init is reaped
    by the zygote (which forked the next spare while that run went on), and a stopped zygote's
    processes end, a moment after the run or the stop returns."""
    deadline = time.monotonic() + 2
    while count_tasks(uid) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return count_tasks(uid)


FORKS_IT_CAN = (REPO / "tests" / "programs" / "fork_until_refused.py").read_text()


def test_a_cold_run_beside_its_slot_s_zygote_gets_the_whole_process_budget(warm_sandbox: Sandbox) -> None:
    """The zygote runs as the slot's uid, which RLIMIT_NPROC counts: a cold run of that uid (here, one
    whose files are read back) is allowed its tasks on top of its budget, as a warm run is."""
    limits = Limits()
    forks = Program(FORKS_IT_CAN, args=("2", "0"))
    assert run_program(forks, limits, warm_sandbox).stdout == f"{limits.max_processes - 1}\n"
    uid = warm_sandbox.program_uid
    assert uid is not None
    (zygote,) = backend._ZYGOTES.values()
    assert select.select([zygote.connection], [], [], 2)[0]  # the next run's spare is ready
    assert tasks_settling_at(uid, ZYGOTE_TASKS) == ZYGOTE_TASKS  # bubblewrap, the zygote, its spare
    cold = run_program(replace(forks, outputs=("*.txt",)), limits, warm_sandbox)
    assert cold.stdout == f"{limits.max_processes - 1}\n"


def test_stopping_a_zygote_ends_its_spare_and_leaves_nothing_of_the_slot(warm_sandbox: Sandbox) -> None:
    """A worker that stops (or replaces) its zygote leaves no spare waiting: the zygote is pid 1 of
    the namespace its spares are forked in, so they end with it."""
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"
    (zygote,) = backend._ZYGOTES.values()
    assert select.select([zygote.connection], [], [], 2)[0]  # its next spare is ready
    uid = warm_sandbox.program_uid
    assert uid is not None and tasks_settling_at(uid, ZYGOTE_TASKS) == ZYGOTE_TASKS
    stop_zygotes()
    assert tasks_settling_at(uid, 0) == 0


def test_a_run_with_another_disk_gets_a_zygote_set_up_for_it(warm_sandbox: Sandbox) -> None:
    """A zygote's spares mount their disk before their run comes, with the size its setup gave: a run
    with another disk size gets a new zygote, and still starts warm, on a disk of its own size."""
    probe = PID_1 + "disk = os.statvfs('/work')\nprint(disk.f_blocks * disk.f_frsize)\n"
    sizes = []
    zygotes = []
    for disk_mb in (16, 8):
        ran = run_program(Program(probe), Limits(max_disk_mb=disk_mb), warm_sandbox)
        (zygote,) = backend._ZYGOTES.values()
        zygotes.append(zygote)
        sizes.append(ran.stdout)
    assert sizes == [f"pytho\n{16 * MIB}\n", f"pytho\n{8 * MIB}\n"]
    assert zygotes[0] is not zygotes[1]


def test_a_zygote_that_died_is_replaced_and_its_run_starts_cold(warm_sandbox: Sandbox) -> None:
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"
    (zygote,) = backend._ZYGOTES.values()
    os.killpg(zygote.process.pid, signal.SIGKILL)
    zygote.process.wait()
    # The zygote, pid 1 of its namespace, has ended once every process in it has: its spare too.
    assert zygote.zygote_pidfd is not None and select.select([zygote.zygote_pidfd], [], [], 2)[0]
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "bwrap\n"  # cold, this once
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"  # a new zygote


def test_a_zygote_that_answers_a_run_late_is_replaced_and_its_run_starts_cold(
    warm_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spare it sent before it stopped still runs its run; the next run finds none in time."""
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"
    (zygote,) = backend._ZYGOTES.values()
    (zygote_pid,) = map(
        int, Path(f"/proc/{zygote.process.pid}/task/{zygote.process.pid}/children").read_text().split()
    )
    monkeypatch.setattr(zygote_module, "ANSWER_TIMEOUT_S", 0.3)
    assert select.select([zygote.connection], [], [], 2)[0]  # its next spare is sent
    os.kill(zygote_pid, signal.SIGSTOP)  # it will fork and send nothing more
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"  # the spare it sent
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "bwrap\n"  # cold, this once
    assert not backend._ZYGOTES and not os.path.exists(f"/proc/{zygote_pid}")  # replaced, and gone
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"  # a new zygote


def test_a_zygote_that_keeps_failing_is_tried_again_at_once_then_after_a_growing_pause(
    warm_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zygote that cannot start: each run starts cold, the first failure is retried at once, and
    from the second in a row runs start cold without trying, for a pause that doubles; a warm start
    after the pause ends the streak."""
    monkeypatch.setattr(backend, "FIRST_PAUSE_S", 0.5)
    key = (warm_sandbox.program_uid, "python")
    tries: list[int] = []

    def failing_zygote(*args: Any) -> list[str]:
        tries.append(1)
        return ["/bin/false"]

    monkeypatch.setattr(backend, "zygote_command", failing_zygote)
    for _ in range(4):
        assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "bwrap\n"
    assert len(tries) == 2  # the first try, and one at once after it; then paused
    assert 0 < backend.START_FAILURES.paused_for(key) <= 0.5
    time.sleep(backend.START_FAILURES.paused_for(key) + 0.01)
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "bwrap\n"
    assert len(tries) == 3 and 0.5 < backend.START_FAILURES.paused_for(key) <= 1.0  # twice as long
    monkeypatch.setattr(backend, "zygote_command", zygote_command)
    time.sleep(backend.START_FAILURES.paused_for(key) + 0.01)
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"
    assert backend.START_FAILURES.paused_for(key) == 0
    assert run_program(Program(PID_1), Limits(), warm_sandbox).stdout == "pytho\n"


def test_a_zygote_that_sends_anything_but_a_spare_fails_the_run() -> None:
    """Anything but a spare (a pidfd and a socket) is a failure (the runner then replaces the zygote
    and starts the run cold, as for a late one above)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_in = subprocess.Popen(["sleep", "60"], start_new_session=True)
    zygote = Zygote(stand_in, ours)
    try:
        theirs.send(b"pong")
        with pytest.raises(ZygoteFailed, match="sent b'pong' for a spare"):
            zygote.take_spare()
        theirs.close()
        with pytest.raises(ZygoteFailed, match="the zygote has gone"):
            zygote.take_spare()
    finally:
        stand_in.kill()
        zygote.stop()


def test_a_spare_s_report_is_its_exit_code_none_when_killed_and_a_failure_when_garbled() -> None:
    """The init reports `status <code>` before it exits; an init that ended without one was killed
    (only SIGKILL ends it unannounced); anything else fails the run."""
    reports = []
    for sent, closed in ((b"status 3", True), (None, False), (None, True), (b"status -1", True)):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if sent is not None:
            theirs.send(sent)
        if closed:  # as the init's end is once it has exited
            theirs.close()
        spare = Spare(os.pidfd_open(os.getpid()), ours)
        try:
            reports.append(spare.reported_exit())
        except ZygoteFailed as failure:
            reports.append(str(failure))
        finally:
            spare.close()
            theirs.close()
    assert reports == [3, None, None, "a run's init reported b'status -1'"]


def test_a_warm_program_shows_the_command_line_of_a_cold_one(
    sandbox: Sandbox, warm_sandbox: Sandbox, run_bwrap: Run
) -> None:
    """/proc/<pid>/cmdline (what `ps` and the host see) names the interpreter, main.py and its
    arguments, as a cold start's does, not the zygote's."""
    probe = "print(open('/proc/self/cmdline', 'rb').read().rstrip(bytes(1)).split(bytes(1)))\n"
    cold = run_bwrap(probe, args=("one", "two"))
    warm = run_program(Program(probe, args=("one", "two")), Limits(), warm_sandbox)
    assert "main.py" in cold.stdout and warm.stdout == cold.stdout


def test_a_zygote_is_replaced_after_its_runs(warm_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its runs share its hash seed: after RUNS_PER_ZYGOTE of them, a new zygote, a new seed."""
    monkeypatch.setattr(backend, "RUNS_PER_ZYGOTE", 2)
    probe = "print(hash('seed'))\n"
    seeds = [run_program(Program(probe), Limits(), warm_sandbox).stdout for _ in range(3)]
    assert seeds[0] == seeds[1] != seeds[2]


def test_a_run_cannot_trace_any_process(zygote: Zygote, sandbox: Sandbox) -> None:
    """PTRACE_ATTACH to every pid a run could name fails (its namespace shows only its init and
    itself, and the seccomp filter refuses ptrace), and the zygote serves on."""
    attach_all = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(sum(libc.ptrace(16, pid, 0, 0) == 0 for pid in range(1, 4097)))\n"
    )
    assert warm_run(zygote, sandbox, attach_all).stdout == "0\n"
    assert warm_run(zygote, sandbox, "print('next')").stdout == "next\n"  # the zygote serves on


def test_a_run_cannot_reach_its_init_s_memory_or_end_it_with_sigint(zygote: Zygote, sandbox: Sandbox) -> None:
    """The run's init (pid 1) shares the program's uid: non-dumpable, its memory is out of reach, and
    it ignores SIGINT, which Python's own handler would otherwise turn into its end."""
    attack = (
        "import os, signal, time\n"
        "try:\n"
        "    open('/proc/1/mem', 'r+b')\n"
        "    print('opened')\n"
        "except OSError as error:\n"
        "    print(type(error).__name__)\n"
        "os.kill(1, signal.SIGINT)\n"
        "time.sleep(0.2)\n"
        "print('init alive', flush=True)\n"
    )
    ran = warm_run(zygote, sandbox, attack)
    assert (ran.status, ran.stdout) == (0, "PermissionError\ninit alive\n"), ran.stderr
