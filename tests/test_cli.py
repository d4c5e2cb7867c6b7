"""The `executor` command line against the Procfile's web process: exit codes, output streamed live
on a terminal, `--json`, test verdicts, and the other commands; with and without a terminal."""

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from executor.languages import build_languages, default_python, language_version
from tests.stack import REPO
from tests.test_web_server import web_port

__all__ = ["web_port"]  # the fixture, shared with the web server's tests

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="files out are read from the run's disk: a root worker"
)


def cli(port: int, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command run as a process without a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "executor.client.cli", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "EXECUTOR_URL": f"http://127.0.0.1:{port}", "PYTHONPATH": str(REPO)},
    )


def test_run_prints_the_output_and_exits_with_the_programs_code(web_port: int, tmp_path: Path) -> None:
    program = tmp_path / "exits.py"
    program.write_text(
        "import sys\nprint('out', sys.argv[1], input())\nprint('err', file=sys.stderr)\nsys.exit(3)"
    )
    done = cli(web_port, "run", str(program), "--arg", "A", "--stdin", "-", stdin="from stdin\n")
    assert (done.returncode, done.stdout) == (3, "out A from stdin\n"), done.stderr
    assert done.stderr.startswith("err\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="compiled languages need a root worker")
def test_a_c_program_by_its_extension_and_a_compile_error(web_port: int, tmp_path: Path) -> None:
    hello = tmp_path / "hello.c"
    hello.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    done = cli(web_port, "run", str(hello))
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    hello.write_text("int main( {")
    broken = cli(web_port, "run", str(hello))
    assert broken.returncode == 1 and "compile_error" in broken.stderr


def test_json_and_test_verdicts(web_port: int, tmp_path: Path) -> None:
    program = tmp_path / "double.py"
    program.write_text("print(int(input()) * 2)")
    cases = tmp_path / "cases"
    cases.mkdir()
    for name, given, expected in (("one", "1", "2"), ("two", "2", "5")):
        (cases / f"{name}.in").write_text(given)
        (cases / f"{name}.out").write_text(expected)
    done = cli(web_port, "run", str(program), "--tests", str(cases))
    assert done.returncode == 1
    assert "test one: success" in done.stderr and "test two: wrong_answer" in done.stderr
    as_json = cli(web_port, "run", str(program), "--tests", str(cases), "--json")
    assert json.loads(as_json.stdout)["passed"] == 1


@needs_root
def test_files_asked_for_are_reported_and_saved(web_port: int, tmp_path: Path) -> None:
    program = tmp_path / "writes.py"
    program.write_text("open('r.csv', 'w').write('x,y\\n')\nopen('skip.txt', 'w').write('no')")
    done = cli(web_port, "run", str(program), "--output", "*.csv", "--save", str(tmp_path / "got"))
    assert done.returncode == 0, done.stderr
    assert "received r.csv (4 bytes)" in done.stderr
    assert [path.name for path in (tmp_path / "got").iterdir()] == ["r.csv"]
    assert (tmp_path / "got" / "r.csv").read_text() == "x,y\n"


@needs_root
def test_a_python_data_plot_comes_back_as_a_png(web_port: int, tmp_path: Path) -> None:
    if language_version(build_languages(default_python())["python-data"].version_probe) == "unknown":
        pytest.skip("python-data's libraries are not installed on this host (make installs them as root)")
    program = tmp_path / "plot.py"
    program.write_text("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])")
    done = cli(web_port, "run", str(program), "--language", "python-data", "--save", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "received plots/figure-1.png" in done.stderr
    assert (tmp_path / "plots" / "figure-1.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_other_commands(web_port: int, tmp_path: Path) -> None:
    assert "python" in cli(web_port, "languages").stdout
    missing = cli(web_port, "status", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 1 and "404 not_found" in missing.stderr
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text("print(1)")
    second.write_text("raise SystemExit(2)")
    batch = cli(web_port, "batch", str(first), str(second))
    assert (batch.returncode, batch.stdout) == (1, "a.py: success\nb.py: failed\n")
    unknown = tmp_path / "notes.txt"
    unknown.write_text("x")
    assert cli(web_port, "run", str(unknown)).returncode == 2  # a usage error: no language


def test_on_a_terminal_the_output_is_shown_while_the_program_runs(web_port: int, tmp_path: Path) -> None:
    program = tmp_path / "slow.py"
    program.write_text("import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "executor.client.cli", "run", str(program)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=REPO,
        env={**os.environ, "EXECUTOR_URL": f"http://127.0.0.1:{web_port}", "PYTHONPATH": str(REPO)},
    )
    os.close(terminal)
    seen, first_at, second_at = b"", None, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                seen += os.read(controller, 4096)
            except OSError:
                break
        if first_at is None and b"first" in seen:
            first_at = time.monotonic()
            assert process.poll() is None  # shown before the program ended
        if second_at is None and b"second" in seen:
            second_at = time.monotonic()
        if process.poll() is not None and not ready:
            break
    os.close(controller)
    assert process.wait(timeout=10) == 0
    assert first_at is not None and second_at is not None
    assert second_at - first_at >= 1.5  # each line as it was written, 2 s apart, not all at the end
