"""Files out (API.md 1.1) through the real sandbox: what matches comes back, and nothing a hostile
program leaves to mislead the collector (a link to a host file, a pipe, a link loop, a name that is
not UTF-8, thousands of files, a file still growing) crashes it, hangs it or leaks a host file."""

import base64
import time

import pytest

from executor.languages import language_version
from executor.sandbox import Limits, Outcome, Program, RunResult, Sandbox, run_program
from executor.sandbox.collect import MAX_SCANNED
from tests.sandbox.conftest import IS_ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="files out are read from the run's disk: a root worker")

MISLEADING = """
import os, subprocess, sys
os.makedirs("data", exist_ok=True)
open("out.csv", "w").write("a,b\\n1,2\\n")
open("data/x.bin", "wb").write(bytes([0, 255, 1, 254]))
os.symlink("/etc/passwd", "passwd.csv")             # a link to a host file
os.symlink("/", "root")                             # a link to the host's root
os.symlink("loop-b", "loop-a.csv"); os.symlink("loop-a.csv", "loop-b")  # a link loop
os.mkfifo("pipe.csv")                               # a pipe: opening it would block
fd = os.open(b"\\xff\\xfe.csv", os.O_CREAT | os.O_WRONLY); os.write(fd, b"x"); os.close(fd)  # not UTF-8
subprocess.Popen([sys.executable, "-c",
    "import time\\nf = open('grow.csv', 'a')\\nwhile True: f.write('x' * 65536); f.flush()"])
time.sleep(0.3)
"""


def run(
    sandbox: Sandbox, code: str, outputs: tuple[str, ...], language: str = "python", **limits: object
) -> RunResult:
    program = Program(
        code.replace("time.sleep", "__import__('time').sleep"), language=language, outputs=outputs
    )
    return run_program(program, Limits(wall_time_s=10, **limits), sandbox)  # type: ignore[arg-type]


def test_only_regular_files_inside_the_working_directory_come_back(bwrap_sandbox: Sandbox) -> None:
    began = time.monotonic()
    result = run(bwrap_sandbox, MISLEADING, ("**/*.csv", "data/*"))
    assert result.outcome is Outcome.SUCCESS, result
    assert time.monotonic() - began < 10
    files = {file["path"]: file for file in result.files or ()}
    assert set(files) - {"grow.csv"} == {"out.csv", "data/x.bin"}, sorted(files)
    assert (files["out.csv"]["encoding"], files["out.csv"]["content"]) == ("utf8", "a,b\n1,2\n")
    assert files["data/x.bin"]["encoding"] == "base64"
    assert base64.b64decode(files["data/x.bin"]["content"]) == bytes([0, 255, 1, 254])
    assert not any("root:" in file["content"] for file in files.values())
    if "grow.csv" in files:  # read once its writer was dead: within the cap, whole
        assert files["grow.csv"]["size"] <= 8 * 1024 * 1024
    assert result.files_truncated is True  # the non-UTF-8 name, or the growing file, was left out


def test_the_caps_on_files_and_bytes_leave_the_rest_out_and_say_so(bwrap_sandbox: Sandbox) -> None:
    code = "for n in range(5): open(f'f{n}.txt', 'w').write(str(n) * 100)"
    capped = run(bwrap_sandbox, code, ("*.txt",), max_output_files=2)
    assert ([file["path"] for file in capped.files or ()], capped.files_truncated) == (
        ["f0.txt", "f1.txt"],
        True,
    )
    small = run(bwrap_sandbox, code, ("*.txt",), max_output_files_bytes=250)
    assert ([file["path"] for file in small.files or ()], small.files_truncated) == (
        ["f0.txt", "f1.txt"],
        True,
    )
    whole = run(bwrap_sandbox, code, ("*.txt",))
    assert (len(whole.files or ()), whole.files_truncated) == (5, False)


def test_a_flood_of_tiny_files_is_walked_no_further_than_the_bound(bwrap_sandbox: Sandbox) -> None:
    count = MAX_SCANNED // 2 + 100  # folders and files: more entries than the walk looks at
    code = f"import os\nfor n in range({count}):\n    os.mkdir(f'd{{n}}')\n    open(f'd{{n}}/f', 'w').close()"
    began = time.monotonic()
    result = run(bwrap_sandbox, code, ("**/nothing-matches",), max_disk_mb=128)
    assert result.outcome is Outcome.SUCCESS, result
    assert (result.files, result.files_truncated) == ((), True)
    assert time.monotonic() - began < 20


def test_a_python_data_figure_left_open_comes_back_as_a_png(bwrap_sandbox: Sandbox) -> None:
    if "python-data" not in bwrap_sandbox.languages:
        pytest.skip("python-data's libraries are not installed on this host (make installs them as root)")
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "plt.figure()\n"
        "plt.bar([1, 2], [3, 4])\n"
        "print('drawn')"
    )
    result = run(bwrap_sandbox, code, (), language="python-data")
    assert (result.outcome, result.stdout) == (Outcome.SUCCESS, "drawn\n"), result
    paths = [file["path"] for file in result.files or ()]
    assert paths == ["plots/figure-1.png", "plots/figure-2.png"]
    png = base64.b64decode((result.files or ())[0]["content"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert language_version(bwrap_sandbox.languages["python-data"].version_probe) != "unknown"
