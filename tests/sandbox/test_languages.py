"""Every language of the registry through the real sandbox: hello, stdin and arguments, a runtime
error, a compile error, a timeout, an output flood and a memory bomb; then hostile programs in C.

A language whose toolchain this host lacks is skipped, saying so; one whose toolchain is here but
that the sandbox does not offer fails (`make` installs every toolchain of the Aptfile in CI).
"""

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest

from executor.languages import Language, build_languages, default_python, language_version
from executor.sandbox import Limits, Outcome, Program, RunResult, Sandbox, run_program
from tests.sandbox.conftest import IS_ROOT, processes_with

LANGUAGES = build_languages(default_python())
CAP = 10_000

# Per language: reads a line of stdin and prints its first argument and that line; exits with 3;
# loops for ever; prints without end; allocates without end.
PROGRAMS: Mapping[str, Mapping[str, str]] = {
    "python": {
        "echo": "import sys\nprint(sys.argv[1], sys.stdin.readline().strip())",
        "error": "raise SystemExit(3)",
        "loop": "while True: pass",
        "flood": "while True: print('x' * 1000)",
        "memory": "chunks = []\nwhile True: chunks.append(bytearray(10**6))",
    },
    "python-data": {
        "echo": "import sys\nimport numpy\nprint(sys.argv[1], sys.stdin.readline().strip())",
        "error": "import numpy\nraise SystemExit(3)",
        "loop": "import numpy\nwhile True: numpy.ones(10).sum()",
        "flood": "import numpy\nwhile True: print(numpy.zeros(200))",
        "memory": "import numpy\nblocks = []\nwhile True: blocks.append(numpy.ones(10**6))",
    },
    "c": {
        "echo": (
            "#include <stdio.h>\n"
            "int main(int argc, char **argv) {\n"
            "    char line[64];\n"
            "    if (!fgets(line, sizeof line, stdin)) return 1;\n"
            '    printf("%s %s", argv[1], line);\n'
            "    return 0;\n"
            "}\n"
        ),
        "error": "int main(void) { return 3; }\n",
        "loop": "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n",
        "flood": '#include <stdio.h>\nint main(void) { for (;;) puts("xxxxxxxxxxxxxxxx"); }\n',
        "memory": (
            "#include <stdlib.h>\n#include <string.h>\n"
            "int main(void) {\n"
            "    for (;;) {\n"
            "        char *block = malloc(1 << 20);\n"
            "        if (!block) return 1;\n"
            "        memset(block, 1, 1 << 20);\n"
            "    }\n"
            "}\n"
        ),
    },
    "cpp": {
        "echo": (
            "#include <iostream>\n#include <string>\n"
            "int main(int argc, char **argv) {\n"
            "    std::string line;\n"
            "    std::getline(std::cin, line);\n"
            '    std::cout << argv[1] << " " << line << std::endl;\n'
            "}\n"
        ),
        "error": "int main() { return 3; }\n",
        "loop": "int main() { volatile unsigned long n = 0; for (;;) n = n + 1; }\n",
        "flood": '#include <iostream>\nint main() { for (;;) std::cout << "xxxxxxxx" << std::endl; }\n',
        "memory": (
            "#include <vector>\n"
            "int main() {\n"
            "    std::vector<std::vector<char>> blocks;\n"
            "    for (;;) blocks.emplace_back(1 << 20, 1);\n"
            "}\n"
        ),
    },
    "javascript": {
        "echo": (
            "const line = require('fs').readFileSync(0, 'utf8').split('\\n')[0];\n"
            "console.log(process.argv[2], line);"
        ),
        "error": "process.exit(3);",
        "loop": "for (;;) {}",
        "flood": "for (;;) console.log('x'.repeat(1000));",
        "memory": "const blocks = [];\nfor (;;) blocks.push(Buffer.alloc(1 << 20, 1));",
    },
    "bash": {
        "echo": 'read -r line\necho "$1 $line"',
        "error": "exit 3",
        "loop": "while :; do :; done",
        "flood": "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done",
        "memory": "x=aaaaaaaaaaaaaaaa\nwhile :; do x=$x$x; done",
    },
    "java": {
        "echo": (
            "import java.io.*;\n"
            "public class Main {\n"
            "    public static void main(String[] args) throws IOException {\n"
            "        String line = new BufferedReader(new InputStreamReader(System.in)).readLine();\n"
            '        System.out.println(args[0] + " " + line);\n'
            "    }\n"
            "}\n"
        ),
        "error": "public class Main { public static void main(String[] args) { System.exit(3); } }\n",
        "loop": "public class Main { public static void main(String[] a) { long n = 0; for (;;) n++; } }\n",
        "flood": (
            "public class Main {\n"
            '    public static void main(String[] args) { for (;;) System.out.println("xxxxxxxx"); }\n'
            "}\n"
        ),
        # Outside the heap, which the JVM bounds itself (test_a_java_heap_bomb_...): the cgroup's limit.
        "memory": (
            "public class Main {\n"
            "    public static void main(String[] args) throws Exception {\n"
            '        var field = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");\n'
            "        field.setAccessible(true);\n"
            "        var unsafe = (sun.misc.Unsafe) field.get(null);\n"
            "        for (;;) unsafe.setMemory(unsafe.allocateMemory(1 << 20), 1 << 20, (byte) 1);\n"
            "    }\n"
            "}\n"
        ),
    },
}
COMPILE_ERRORS = {
    "c": "int main( { return 0; }\n",
    "cpp": "int main() { return undeclared; }\n",
    "java": "public class Main { public static void main(String[] args) { undeclared(); } }\n",
}

Run = Callable[..., RunResult]
pytestmark = pytest.mark.skipif(not IS_ROOT, reason="compiled languages need a disk per job: a root worker")


def test_every_language_of_the_registry_has_its_test_programs() -> None:
    assert set(PROGRAMS) == set(LANGUAGES)
    assert set(COMPILE_ERRORS) == {key for key, language in LANGUAGES.items() if language.compiled}


def offered(sandbox: Sandbox, language_id: str) -> Language:
    """The language, where this host can run it: skipped where its toolchain is missing, failing where
    the toolchain is here but the sandbox does not offer the language."""
    chosen = LANGUAGES[language_id]
    if chosen.id not in sandbox.languages:
        if language_version(chosen.version_probe) == "unknown":
            pytest.skip(f"{chosen.id}: not installed on this host (Debian: {' '.join(chosen.packages)})")
        pytest.fail(f"{chosen.id}: its toolchain is installed, but the sandbox does not offer it")
    return chosen


@pytest.fixture(params=sorted(LANGUAGES))
def language(request: pytest.FixtureRequest, bwrap_sandbox: Sandbox) -> Language:
    """Each language, where this host can run it."""
    return offered(bwrap_sandbox, request.param)


@pytest.fixture
def run_in(language: Language, bwrap_sandbox: Sandbox) -> Run:
    def run(code: str, *, stdin: str = "", args: tuple[str, ...] = (), **limits: object) -> RunResult:
        settings: dict[str, object] = {"wall_time_s": 5.0, **limits}
        program = Program(code, language=language.id, stdin=stdin, args=args)
        return run_program(program, Limits(**settings), bwrap_sandbox)  # type: ignore[arg-type]

    return run


def test_hello_world(language: Language, run_in: Run) -> None:
    result = run_in(language.hello)
    assert (result.outcome, result.stdout) == (Outcome.SUCCESS, "hello\n"), result
    assert (result.compile_time is not None) == language.compiled


def test_stdin_and_arguments_reach_the_program(language: Language, run_in: Run) -> None:
    result = run_in(PROGRAMS[language.id]["echo"], stdin="from stdin\n", args=("first", "second"))
    assert (result.outcome, result.stdout) == (Outcome.SUCCESS, "first from stdin\n"), result


def test_a_runtime_error_fails_with_its_exit_code(language: Language, run_in: Run) -> None:
    result = run_in(PROGRAMS[language.id]["error"])
    assert (result.outcome, result.return_code) == (Outcome.FAILED, 3), result


def test_an_endless_loop_times_out(language: Language, run_in: Run) -> None:
    result = run_in(PROGRAMS[language.id]["loop"], wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT, result


def test_an_output_flood_is_cut_at_the_cap(language: Language, run_in: Run) -> None:
    result = run_in(PROGRAMS[language.id]["flood"], max_output_bytes=CAP)
    assert (result.outcome, len(result.stdout), result.stdout_truncated) == (Outcome.OUTPUT_LIMIT, CAP, True)


def test_a_memory_bomb_hits_the_memory_limit(language: Language, run_in: Run) -> None:
    result = run_in(PROGRAMS[language.id]["memory"], memory_mb=96, wall_time_s=10)
    assert result.outcome is Outcome.MEMORY_LIMIT, result
    assert result.memory_kb is not None and result.memory_kb <= 96 * 1024


def test_a_java_heap_bomb_ends_with_the_jvms_own_error_within_the_limit(bwrap_sandbox: Sandbox) -> None:
    """The JVM is told the job's memory, so its heap fills before the cgroup does: the program gets
    an OutOfMemoryError it may catch, as it would on any machine of that size."""
    offered(bwrap_sandbox, "java")
    code = (
        "import java.util.*;\n"
        "public class Main {\n"
        "    public static void main(String[] args) {\n"
        "        List<byte[]> blocks = new ArrayList<>();\n"
        "        try {\n"
        "            for (;;) blocks.add(new byte[1 << 20]);\n"
        "        } catch (OutOfMemoryError full) {\n"
        "            int held = blocks.size();\n"
        "            blocks = null;\n"
        '            System.out.println("caught after " + (held > 48 ? "more" : "less") + " than half");\n'
        "        }\n"
        "    }\n"
        "}\n"
    )
    program = Program(code, language="java")
    result = run_program(program, Limits(wall_time_s=10, memory_mb=96), bwrap_sandbox)
    assert (result.outcome, result.stdout) == (Outcome.SUCCESS, "caught after more than half\n"), result
    assert result.memory_kb is not None and result.memory_kb <= 96 * 1024


@pytest.mark.parametrize("language_id", sorted(COMPILE_ERRORS))
def test_a_compile_error_is_reported_with_the_compilers_message(
    bwrap_sandbox: Sandbox, language_id: str
) -> None:
    offered(bwrap_sandbox, language_id)
    program = Program(COMPILE_ERRORS[language_id], language=language_id)
    result = run_program(program, Limits(), bwrap_sandbox)
    assert (result.outcome, result.return_code, result.stdout) == (Outcome.COMPILE_ERROR, None, "")
    assert result.compile_output is not None and "error" in result.compile_output
    assert result.compile_time is not None and result.compile_time > 0


def c_sandbox(bwrap_sandbox: Sandbox) -> Sandbox:
    offered(bwrap_sandbox, "c")
    return bwrap_sandbox


def run_c(sandbox: Sandbox, code: str, **limits: object) -> RunResult:
    settings: dict[str, object] = {"wall_time_s": 5.0, **limits}
    return run_program(Program(code, language="c"), Limits(**settings), sandbox)  # type: ignore[arg-type]


def test_a_c_fork_bomb_is_contained_and_leaves_nothing(bwrap_sandbox: Sandbox) -> None:
    marker = uuid.uuid4().hex
    bomb = "#include <unistd.h>\nint main(int argc, char **argv) { for (;;) fork(); }\n"
    result = run_program(
        Program(bomb, language="c", args=(marker,)), Limits(wall_time_s=1), c_sandbox(bwrap_sandbox)
    )
    assert result.outcome in (Outcome.TIMEOUT, Outcome.FAILED), result
    assert processes_with(marker) == []


def test_raw_system_calls_from_c_are_refused_by_seccomp(bwrap_sandbox: Sandbox) -> None:
    code = (
        "#define _GNU_SOURCE\n#include <errno.h>\n#include <stdio.h>\n"
        "#include <sys/syscall.h>\n#include <unistd.h>\n"
        "int main(void) {\n"
        "    long traced = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);\n"
        '    printf("ptrace %ld %d\\n", traced, errno);\n'
        "    errno = 0;\n"
        "    long shared = syscall(SYS_shmget, 0, 4096, 01000);\n"
        '    printf("shmget %ld %d\\n", shared, errno);\n'
        "    return 0;\n"
        "}\n"
    )
    result = run_c(c_sandbox(bwrap_sandbox), code)
    assert result.stdout == "ptrace -1 1\nshmget -1 38\n", result  # EPERM, ENOSYS


def test_a_c_program_sees_no_environment_but_its_own(bwrap_sandbox: Sandbox) -> None:
    code = (
        "#include <dirent.h>\n#include <stdio.h>\n"
        "int main(void) {\n"
        '    DIR *proc = opendir("/proc"); struct dirent *entry; char path[300], data[4096];\n'
        "    while ((entry = readdir(proc))) {\n"
        '        snprintf(path, sizeof path, "/proc/%s/environ", entry->d_name);\n'
        '        FILE *file = fopen(path, "r"); if (!file) continue;\n'
        "        size_t size = fread(data, 1, sizeof data, file); fclose(file);\n"
        "        for (size_t i = 0; i < size; i++) putchar(data[i] ? data[i] : '\\n');\n"
        "    }\n"
        "    return 0;\n"
        "}\n"
    )
    result = run_c(c_sandbox(bwrap_sandbox), code)
    assert result.outcome is Outcome.SUCCESS, result
    names = {line.partition("=")[0] for line in result.stdout.splitlines() if line}
    assert names == {"HOME", "LANG", "PATH", "PWD", "TMPDIR"}


@pytest.mark.parametrize(
    "bomb",
    ['#include "/dev/zero"\n', '#include "main.c"\nint main(void) { return 0; }\n'],
    ids=["include-dev-zero", "include-itself"],
)
def test_a_compiler_bomb_ends_in_compile_error_or_timeout(bwrap_sandbox: Sandbox, bomb: str) -> None:
    limits = Limits(compile_time_s=3.0, compile_memory_mb=256)
    result = run_program(Program(bomb, language="c"), limits, c_sandbox(bwrap_sandbox))
    assert result.outcome in (Outcome.COMPILE_ERROR, Outcome.TIMEOUT), result
    assert result.compile_time is not None and result.compile_time < 10


def test_without_a_disk_per_job_a_compiled_language_is_refused_clearly(bwrap_sandbox: Sandbox) -> None:
    result = run_c(replace(c_sandbox(bwrap_sandbox), scratch_disks=False), "int main(void) { return 0; }\n")
    assert result.outcome is Outcome.INTERNAL_ERROR
    assert result.message is not None and "root" in result.message


def test_python_data_computes_and_plots_without_a_change_to_the_program(bwrap_sandbox: Sandbox) -> None:
    offered(bwrap_sandbox, "python-data")
    code = (
        "import os\n"
        "import matplotlib.pyplot as plt, numpy as np, pandas as pd, scipy.stats as stats\n"
        "values = np.arange(10)\n"
        "print(int(values.sum()), pd.DataFrame({'x': values}).x.mean(), round(stats.norm.cdf(0), 2))\n"
        "plt.plot(values, values ** 2)\n"
        "plt.savefig('plot.png')\n"
        "print(os.path.getsize('plot.png') > 1000)\n"
    )
    result = run_program(Program(code, language="python-data"), Limits(wall_time_s=20), bwrap_sandbox)
    assert (result.outcome, result.stdout, result.stderr) == (Outcome.SUCCESS, "45 4.5 0.5\nTrue\n", ""), (
        result
    )


def test_a_languages_host_paths_are_shown_to_its_programs_only_and_read_only(bwrap_sandbox: Sandbox) -> None:
    offered(bwrap_sandbox, "java")
    (java_config,) = LANGUAGES["java"].host_paths
    probe = f"import os\nprint(os.path.isdir({java_config!r}), os.path.exists('/etc/passwd'))\n"
    python = run_program(Program(probe, language="python"), Limits(), bwrap_sandbox)
    assert (python.outcome, python.stdout) == (Outcome.SUCCESS, "False False\n"), python
    java = (
        "import java.nio.file.*;\n"
        "public class Main {\n"
        "    public static void main(String[] args) throws Exception {\n"
        f'        Path config = Path.of("{java_config}");\n'
        '        boolean passwd = Files.exists(Path.of("/etc/passwd"));\n'
        '        System.out.println(Files.isDirectory(config) + " " + passwd);\n'
        '        try { Files.writeString(config.resolve("planted"), "x"); } catch (Exception refused) {\n'
        '            System.out.println("refused");\n'
        "        }\n"
        "    }\n"
        "}\n"
    )
    result = run_program(Program(java, language="java"), Limits(wall_time_s=10), bwrap_sandbox)
    assert (result.outcome, result.stdout) == (Outcome.SUCCESS, "true false\nrefused\n"), result
    assert not os.path.exists(f"{java_config}/planted")
