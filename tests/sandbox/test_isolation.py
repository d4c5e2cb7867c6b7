"""A program sees and changes nothing of the host it should not: files, secrets, network, kernel."""

import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from executor.sandbox import Outcome, RunResult, Sandbox
from tests.sandbox.conftest import runner

Run = Callable[..., RunResult]
SECRET = "s3cr3t-7f1d2c"
REPO = str(Path(__file__).resolve().parents[2])

TRY_WRITES = """
import sys
for directory in sys.argv[1:]:
    try:
        open(directory + "/executor-test-write", "w").close()
        print(directory, "written")
    except OSError as error:
        print(directory, type(error).__name__)
"""

FIND_SECRET = """
import glob, os, sys
secret = sys.argv[1][::-1]
places = [name for name, value in os.environ.items() if secret in value]
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        if secret.encode() in open(path, "rb").read():
            places.append(path)
    except OSError:
        pass
print(places)
"""


@pytest.fixture
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets in the worker's environment, as a real worker has them."""
    monkeypatch.setenv("EXECUTOR_TEST_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:6379/0")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback where something listens."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.usefixtures("needs_program_uid")
def test_writes_to_etc_root_and_the_repository_fail(run: Run) -> None:
    result = run(TRY_WRITES, args=("/etc", "/root", REPO))
    assert "written" not in result.stdout
    assert not os.path.exists(os.path.join(REPO, "executor-test-write"))


def test_a_file_left_in_the_working_directory_is_gone_in_the_next_run(run: Run) -> None:
    run("open('left-behind', 'w').write('x')")
    result = run("import os; print(os.path.exists('left-behind'))")
    assert result.stdout == "False\n"


def test_files_left_in_tmp_and_work_are_gone_in_the_next_run_under_bubblewrap(run_bwrap: Run) -> None:
    run_bwrap("open('/tmp/left-behind', 'w').write('x'); open('/work/left-behind', 'w').write('x')")
    result = run_bwrap(
        "import os; print([os.path.exists(p) for p in ('/tmp/left-behind', '/work/left-behind')])"
    )
    assert result.stdout == "[False, False]\n"


def test_reading_etc_shadow_fails(run: Run) -> None:
    result = run("print(open('/etc/shadow').read())")
    assert result.outcome is Outcome.FAILED
    assert "Error" in result.stderr


@pytest.mark.usefixtures("needs_program_uid")
def test_a_symlink_to_a_host_file_cannot_be_read(run: Run, tmp_path: Path) -> None:
    private = tmp_path / "private.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    code = (
        "import os, sys\n"
        "for target in sys.argv[1:]:\n"
        "    os.symlink(target, 'link')\n"
        "    try: print(open('link').read())\n"
        "    except OSError as error: print(type(error).__name__)\n"
        "    os.remove('link')"
    )
    result = run(code, args=("/etc/shadow", str(private)))
    assert SECRET not in result.stdout
    assert "root:" not in result.stdout


@pytest.mark.usefixtures("needs_program_uid", "secrets_in_environment")
def test_no_secret_of_the_worker_is_visible_in_environ_or_proc(run: Run) -> None:
    # The program gets the secret reversed, so its own command line does not contain it.
    result = run(FIND_SECRET, args=(SECRET[::-1],))
    assert result.stdout == "[]\n"


def test_the_environment_is_built_from_scratch_under_bubblewrap(run_bwrap: Run) -> None:
    result = run_bwrap("import os; print(sorted(os.environ))")
    assert result.stdout == "['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']\n"


def test_a_tcp_connection_to_the_hosts_loopback_fails_under_bubblewrap(
    bwrap_sandbox: Sandbox, listener: int
) -> None:
    code = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1)\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print(type(error).__name__)"
    )
    # seccomp refuses the TCP socket itself; without the filter, the network namespace alone keeps
    # the host's loopback out of reach.
    assert runner(bwrap_sandbox)(code, args=(str(listener),)).stdout == "PermissionError\n"
    unfiltered = runner(replace(bwrap_sandbox, seccomp_filter=b""))
    assert unfiltered(code, args=(str(listener),)).stdout == "ConnectionRefusedError\n"


def test_nothing_of_the_service_is_visible_under_bubblewrap(run_bwrap: Run) -> None:
    # The test's own interpreter and environment too, unless they are the system's, under /usr.
    service = ("/root", "/home", "/etc", "/var", REPO, sys.prefix, os.path.realpath(sys.executable))
    paths = tuple(path for path in service if not f"{path}/".startswith("/usr/"))
    result = run_bwrap("import os, sys; print([p for p in sys.argv[1:] if os.path.exists(p)])", args=paths)
    assert result.stdout == "[]\n"


def test_the_program_is_an_unprivileged_user_under_bubblewrap(run_bwrap: Run) -> None:
    code = (
        "import os\n"
        "status = dict(line.split(':\\t') for line in open('/proc/self/status').read().splitlines())\n"
        "print(os.getuid(), os.getgid(), os.uname().nodename, status['CapEff'], status['CapBnd'])"
    )
    result = run_bwrap(code)
    assert result.stdout == "1000 1000 sandbox 0000000000000000 0000000000000000\n"


def test_the_program_runs_with_no_new_privileges_and_a_seccomp_filter(run: Run) -> None:
    result = run("print([l for l in open('/proc/self/status') if l.startswith(('NoNewPrivs', 'Seccomp:'))])")
    assert result.stdout == "['NoNewPrivs:\\t1\\n', 'Seccomp:\\t2\\n']\n"
