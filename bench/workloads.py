"""The programs the benchmark runs; each prints a token unique to its job, so outputs cannot be mixed up."""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

OUTPUT_BYTES = 1_000_000


@dataclass(frozen=True)
class Workload:
    """A program template, the timeout it is sent with, and how to recognise its job's own output."""

    name: str
    template: str
    timeout_s: float
    expected: Callable[[str], str]
    # The 1 s CPU loop runs a fraction of --jobs, or it alone would take most of the time limit.
    jobs_divisor: int = 1
    language: str = "python"

    def code(self, token: str) -> str:
        """The program of the job that owns `token`."""
        return self.template.replace("TOKEN", token)

    def check(self, stdout: str, token: str) -> bool:
        """True when `stdout` is exactly what this job's program prints."""
        return stdout == self.expected(token)

    def jobs(self, requested: int) -> int:
        """How many jobs this workload runs when --jobs asks for `requested`."""
        return max(1, requested // self.jobs_divisor)


def new_token() -> str:
    """A token no other job prints."""
    return uuid.uuid4().hex


_CPU_LOOP = """\
import time
end = time.process_time() + 1.0
n = 0
while time.process_time() < end:
    for i in range(10000):
        n += i
print('TOKEN')
"""

_FILLER = OUTPUT_BYTES - len(new_token()) - 1
# Hex digits of random bytes seeded by the token: zstd shrinks them 2x, as it does ordinary printed
# text (`output` repeats one character, which it shrinks thousands of times), and they cost the
# program as little as `output`'s filler.
_HEX_BYTES = _FILLER // 2


def _text_output(token: str) -> str:
    return f"{token}\n" + random.Random(token).randbytes(_HEX_BYTES).hex()


WORKLOADS = {
    "hello": Workload("hello", "print('hello', 'TOKEN')", 5.0, lambda token: f"hello {token}\n"),
    "sleep": Workload(
        "sleep", "import time\ntime.sleep(0.2)\nprint('TOKEN')", 5.0, lambda token: f"{token}\n"
    ),
    "cpu": Workload("cpu", _CPU_LOOP, 10.0, lambda token: f"{token}\n", jobs_divisor=5),
    "output": Workload(
        "output",
        f"import sys\nsys.stdout.write('TOKEN\\n' + 'x' * {_FILLER})",
        5.0,
        lambda token: f"{token}\n" + "x" * _FILLER,
    ),
    "text": Workload(
        "text",
        "import random, sys\n"
        f"sys.stdout.write('TOKEN\\n' + random.Random('TOKEN').randbytes({_HEX_BYTES}).hex())",
        5.0,
        _text_output,
    ),
}

# Hello world in every language of the registry (`--workload languages`), each printing its token.
_HELLO_IN = {
    "c": '#include <stdio.h>\nint main(void) { puts("hello TOKEN"); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello TOKEN" << std::endl; }\n',
    "javascript": "console.log('hello TOKEN');",
    "bash": "echo hello TOKEN",
    "python-data": "import numpy\nprint('hello', 'TOKEN')",
    "java": 'class Main { public static void main(String[] a) { System.out.println("hello TOKEN"); } }\n',
}
LANGUAGE_WORKLOADS = {
    f"hello-{language}": Workload(
        f"hello-{language}", code, 10.0, lambda token: f"hello {token}\n", language=language
    )
    for language, code in _HELLO_IN.items()
}
ALL_WORKLOADS = {**WORKLOADS, **LANGUAGE_WORKLOADS}
