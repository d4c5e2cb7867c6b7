"""Hostile programs through the real stack, each followed by a canary job that must still succeed."""

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from flask.testing import FlaskClient

from tests.stack import REPO, WORKER_SECRET, processes_with_token, waiting

Run = Callable[..., dict[str, Any]]


def assert_nothing_left(token: str) -> None:
    deadline = time.monotonic() + 3
    while processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_token(token) == []


@pytest.fixture
def hostile(either_client: FlaskClient) -> Iterator[Run]:
    """Run a hostile program, started cold or warm, then prove the service still runs an ordinary one."""
    runner = waiting(either_client)
    yield runner
    canary = runner("print('canary')")
    assert (canary["status"], canary["stdout"]) == ("success", "canary\n")


def test_fork_bomb_is_contained(hostile: Run) -> None:
    token = uuid.uuid4().hex
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    view = hostile(code, timeout=2, args=[token])
    assert view["status"] in {"timeout", "failed"}
    assert_nothing_left(token)


def test_a_setsid_daemon_does_not_outlive_its_job(hostile: Run) -> None:
    token = uuid.uuid4().hex
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('parent done')"
    )
    view = hostile(code, args=[token])
    assert (view["status"], view["stdout"]) == ("success", "parent done\n")
    assert_nothing_left(token)


def test_a_child_that_outlives_a_timeout_is_killed(hostile: Run) -> None:
    token = uuid.uuid4().hex
    code = "import subprocess, sys, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)"
    view = hostile(code, timeout=1, args=[token])
    assert view["status"] == "timeout"
    assert_nothing_left(token)


def test_a_memory_bomb_hits_the_memory_limit(hostile: Run) -> None:
    view = hostile("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", memory_mb=64)
    assert view["status"] == "memory_limit"


def test_cpu_burning_threads_time_out(hostile: Run) -> None:
    code = (
        "import threading\n"
        "def burn():\n    while True:\n        pass\n"
        "for _ in range(4):\n    threading.Thread(target=burn).start()"
    )
    view = hostile(code, timeout=1)
    assert view["status"] == "timeout"
    assert view["cpu_time"] > 0.1  # reported honestly; how much depends on what else the machine runs


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_an_output_flood_is_stopped_early_within_the_cap(hostile: Run, stream: str) -> None:
    view = hostile(f"import sys\nwhile True:\n    sys.{stream}.write('y' * 65536)", timeout=20)
    assert (view["status"], view[f"{stream}_truncated"]) == ("output_limit", True)
    assert len(view[stream]) == 1024 * 1024
    assert view["execution_time"] < 10


def test_a_disk_filler_is_stopped_at_the_disk_limit(hostile: Run) -> None:
    code = (
        "written = 0\n"
        "try:\n"
        "    with open('fill', 'wb') as f:\n"
        "        for _ in range(200):\n"
        "            f.write(b'z' * 2**20)\n"
        "            f.flush()\n"
        "            written += 1\n"
        "except OSError as error:\n"
        "    print('stopped', written, type(error).__name__)\n"
    )
    view = hostile(code, timeout=10)
    assert view["status"] in {"success", "failed"}
    if view["stdout"]:
        assert int(view["stdout"].split()[1]) <= 64
    else:
        assert view["signal"] == "SIGXFSZ"


def test_writes_outside_the_sandbox_fail(hostile: Run) -> None:
    targets = [
        "/etc/executor-probe",
        "/root/executor-probe",
        str(REPO / "executor-probe"),
        "/usr/executor-probe",
    ]
    code = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError:\n"
        "        print('refused', path)\n"
    )
    view = hostile(code, args=targets)
    assert "WROTE" not in view["stdout"]
    assert all(not os.path.exists(target) for target in targets)


def test_files_left_by_one_job_are_gone_for_the_next(hostile: Run) -> None:
    name = uuid.uuid4().hex
    writer = f"open('/tmp/{name}', 'w').write('x')\nopen('{name}', 'w').write('x')\nprint('left')"
    assert hostile(writer)["stdout"] == "left\n"
    reader = f"import os\nprint(os.path.exists('/tmp/{name}'), os.path.exists('{name}'))"
    assert hostile(reader)["stdout"] == "False False\n"


def test_etc_shadow_cannot_be_read(hostile: Run) -> None:
    code = "try:\n    print(len(open('/etc/shadow').read()))\nexcept OSError as e:\n    print('refused')"
    assert hostile(code)["stdout"] == "refused\n"


def test_no_secret_is_visible_in_any_environment_or_command_line(hostile: Run, redis_server: Any) -> None:
    code = (
        "import os, glob\n"
        "print(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
    )
    view = hostile(code)
    assert view["status"] == "success"
    seen = view["stdout"] + view["stderr"]
    assert "/proc/" in seen
    for secret in (WORKER_SECRET, redis_server.url, str(redis_server.port), "REDIS_URL", "EXECUTOR_"):
        assert secret not in seen


def host_addresses() -> list[str]:
    """Every IPv4 address of this machine, loopback included."""
    return sorted(
        {
            address.address
            for addresses in psutil.net_if_addrs().values()
            for address in addresses
            if address.family == socket.AF_INET
        }
    )


def test_no_tcp_connection_reaches_redis_or_the_host(hostile: Run, redis_server: Any) -> None:
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    try:
        targets = [f"127.0.0.1:{redis_server.port}"] + [
            f"{address}:{listener.getsockname()[1]}" for address in host_addresses()
        ]
        code = (
            "import socket, sys\n"
            "for target in sys.argv[1:]:\n"
            "    host, port = target.rsplit(':', 1)\n"
            "    try:\n"
            "        socket.create_connection((host, int(port)), timeout=1).close()\n"
            "        print('CONNECTED', target)\n"
            "    except OSError:\n"
            "        print('refused', target)\n"
        )
        view = hostile(code, args=targets, timeout=10)
    finally:
        listener.close()
    assert view["stdout"].count("refused") == len(targets)


def test_only_the_standard_streams_are_inherited(hostile: Run) -> None:
    view = hostile("import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))")
    assert view["stdout"] == "[0, 1, 2, 3]\n"  # 3 is the directory listing itself


@pytest.mark.parametrize(
    "code",
    ["import os\nos.kill(-1, 9)", "import os\nos.kill(os.getppid(), 9)\nimport time\ntime.sleep(1)"],
    ids=["kill-every-process", "kill-the-parent"],
)
def test_killing_everything_reachable_harms_only_the_program(hostile: Run, code: str) -> None:
    view = hostile(code, timeout=3)
    assert view["status"] in {"failed", "success", "timeout"}


def test_a_program_ignoring_sigterm_is_still_stopped_at_its_timeout(hostile: Run) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    view = hostile(code, timeout=1)
    assert view["status"] == "timeout"
    assert view["execution_time"] < 5


def test_a_segfault_is_a_failure_named_by_its_signal(hostile: Run) -> None:
    view = hostile("import ctypes\nctypes.string_at(0)")
    assert (view["status"], view["signal"]) == ("failed", "SIGSEGV")


def test_a_symlink_to_a_host_file_reads_nothing_of_the_host(hostile: Run) -> None:
    host_file = str(REPO / "README.md")
    code = (
        "import os, sys\n"
        "os.symlink(sys.argv[1], 'link')\n"
        "try:\n    print(open('link').read()[:20])\nexcept OSError:\n    print('refused')"
    )
    assert hostile(code, args=[host_file])["stdout"] == "refused\n"


def test_a_megabyte_of_stdin_arrives_whole(hostile: Run) -> None:
    view = hostile("import sys\nprint(len(sys.stdin.read()))", stdin="s" * (1024 * 1024))
    assert view["stdout"] == f"{1024 * 1024}\n"


def test_binary_output_is_decoded_with_replacement(hostile: Run) -> None:
    view = hostile("import sys\nsys.stdout.buffer.write(bytes(range(256)))")
    assert view["status"] == "success"
    assert "\ufffd" in view["stdout"]
    assert view["stdout"].startswith("\x00\x01")
