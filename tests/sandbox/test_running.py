"""A program runs, reads its input and arguments, and its output and exit come back as they were."""

from collections.abc import Callable
from dataclasses import replace

from executor.languages import Language
from executor.sandbox import Limits, Outcome, Program, RunResult, Sandbox, run_program

Run = Callable[..., RunResult]


def test_hello_world_succeeds(run: Run) -> None:
    result = run("print('hello')")
    assert result.outcome is Outcome.SUCCESS
    assert (result.stdout, result.stderr) == ("hello\n", "")
    assert (result.return_code, result.signal) == (0, None)
    assert 0 < result.execution_time < 5
    assert result.cpu_time > 0


def test_peak_memory_is_the_programs_own_under_bubblewrap(run_bwrap: Run) -> None:
    result = run_bwrap("x = bytearray(50 * 1024 * 1024)")
    assert result.memory_kb is not None
    assert 50 * 1024 < result.memory_kb < 100 * 1024


def test_stdin_reaches_the_program(run: Run) -> None:
    result = run("import sys; sys.stdout.write(sys.stdin.read())", stdin="héllo\nwörld")
    assert result.stdout == "héllo\nwörld"


def test_arguments_follow_the_source_file(run: Run) -> None:
    result = run("import sys; print(sys.argv[1:])", args=("a b", "--x", "ü"))
    assert result.stdout == "['a b', '--x', 'ü']\n"


def test_a_non_zero_exit_code_fails_with_that_code(run: Run) -> None:
    result = run("import sys; sys.exit(3)")
    assert result.outcome is Outcome.FAILED
    assert (result.return_code, result.signal) == (3, None)


def test_an_exception_fails_with_its_traceback_in_stderr(run: Run) -> None:
    result = run("1 / 0")
    assert result.outcome is Outcome.FAILED
    assert result.return_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_segfault_fails_with_sigsegv(run: Run) -> None:
    result = run("import ctypes; ctypes.string_at(0)")
    assert result.outcome is Outcome.FAILED
    assert (result.return_code, result.signal) == (None, "SIGSEGV")


def test_a_megabyte_of_stdin_echoed_while_read_does_not_deadlock(run: Run) -> None:
    data = "".join(f"line {number:08d}\n" for number in range(75_000))
    assert len(data) > 1024 * 1024
    echo = "import sys\nfor line in sys.stdin: sys.stdout.write(line)"
    result = run(echo, stdin=data, max_output_bytes=2 * len(data))
    assert result.outcome is Outcome.SUCCESS
    assert result.stdout == data


def test_stdin_the_program_never_reads_does_not_block_the_run(run: Run) -> None:
    result = run("print('done')", stdin="x" * (1024 * 1024))
    assert result.outcome is Outcome.SUCCESS
    assert result.stdout == "done\n"


def test_binary_output_is_decoded_with_replacement_characters(run: Run) -> None:
    result = run("import sys; sys.stdout.buffer.write(b'ok\\xff\\xfe')")
    assert result.stdout == "ok\ufffd\ufffd"


def test_unknown_language_is_an_internal_error(sandbox: Sandbox) -> None:
    result = run_program(Program("print(1)", language="cobol"), Limits(), sandbox)
    assert result.outcome is Outcome.INTERNAL_ERROR
    assert result.message is not None
    assert "cobol" in result.message


def test_results_are_json_ready_with_the_outcome_as_status(run: Run) -> None:
    fields = run("print(1)").to_dict()
    assert fields["status"] == "success"
    assert isinstance(fields["memory_kb"], int | None)


def test_a_sandbox_that_cannot_start_the_interpreter_is_an_internal_error(sandbox: Sandbox) -> None:
    broken = Language(
        id="python", name="Python", source_file="main.py", run=("/nonexistent/bin/python3", "main.py")
    )
    result = run_program(Program("print(1)"), Limits(), replace(sandbox, languages={"python": broken}))
    assert result.outcome is Outcome.INTERNAL_ERROR
    assert result.message is not None
    assert "nonexistent" in result.message
