"""Is a warm start worth building? `python -m bench.warm_prototype [runs] [rounds]` (docs/warm-start.md).

Measures, in the same run and interleaved by round, the time per run of print('hello') started:
- bare: the interpreter alone, as the sandbox starts it (`python3 -c`);
- cold: the same interpreter under a plain `bwrap --unshare-all` with /usr read-only;
- warm: the prototype of the warm path: one interpreter started once in such a bwrap, holding
  capabilities in its own user namespace only, that forks per run a child which takes fresh pid,
  mount, network, ipc and uts namespaces, forks again (the grandchild is pid 1 of its pid namespace),
  mounts a fresh /proc and /tmp, enters a user namespace of its own as uid 1000 with no capabilities,
  and runs the program's compiled code as `__main__`.

It prints each round's ms per run and the medians of the rounds' ratios. The prototype has none of the
service's plumbing (cgroup, rlimits, seccomp, files, stdin, output pipes): it answers how much the
interpreter's start weighs against the namespaces' set-up, nothing more. Needs bubblewrap.
"""

import shutil
import statistics
import subprocess
import sys
import time

PROGRAM = "print('hello')"
PYTHON = "/usr/bin/python3"
# The sandbox's filesystem, as plain as the cold path's: /usr read-only and the merged-/usr links.
FILESYSTEM = [
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
]  # fmt: skip
# The zygote's loop, standard library only (it runs under the sandbox's interpreter): `runs` runs,
# then one line, the seconds they took.
ZYGOTE = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
FRESH = 0x00020000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000  # mnt uts ipc pid net
NEWUSER = 0x10000000
def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)
def mount(source, target, kind, flags, data):
    check(libc.mount(source.encode(), target.encode(), kind.encode(), flags, data), target)
def write(path, text):
    with open(path, "w") as file:
        file.write(text)
code = compile(sys.argv[2], "/tmp/main.py", "exec")
quiet = os.open("/dev/null", os.O_WRONLY)
started = time.perf_counter()
for _ in range(int(sys.argv[1])):
    child = os.fork()
    if child == 0:
        check(libc.unshare(FRESH), "unshare")
        grandchild = os.fork()
        if grandchild == 0:
            mount("none", "/", "", 16384 | (1 << 18), None)  # MS_REC | MS_PRIVATE
            mount("proc", "/proc", "proc", 0, None)
            mount("tmpfs", "/tmp", "tmpfs", 0, b"size=1m")
            check(libc.unshare(NEWUSER), "unshare user")
            write("/proc/self/setgroups", "deny")
            write("/proc/self/uid_map", "1000 0 1")
            write("/proc/self/gid_map", "1000 0 1")
            os.setresgid(1000, 1000, 1000)
            os.setresuid(1000, 1000, 1000)
            os.dup2(quiet, 1)
            exec(code, {"__name__": "__main__"})
            sys.stdout.flush()
            os._exit(0)
        os._exit(os.waitstatus_to_exitcode(os.waitpid(grandchild, 0)[1]))
    if os.waitpid(child, 0)[1] != 0:
        raise SystemExit("a warm run failed")
print(time.perf_counter() - started)
"""


def bare_ms(runs: int) -> float:
    """ms per run of the interpreter alone."""
    return _each_ms(runs, [PYTHON, "-c", PROGRAM])


def cold_ms(bwrap: str, runs: int) -> float:
    """ms per run of the interpreter started under a plain bwrap --unshare-all."""
    return _each_ms(
        runs, [bwrap, "--unshare-all", "--die-with-parent", *FILESYSTEM, "--", PYTHON, "-c", PROGRAM]
    )


def warm_ms(bwrap: str, runs: int, program: str = PROGRAM) -> float:
    """ms per run of the prototype's forks, once its zygote has started (its start is not counted);
    a run that fails (its program raised) fails the measurement."""
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--uid", "0", "--gid", "0", "--cap-add", "ALL"]
    output = subprocess.run(
        [*argv, *FILESYSTEM, "--", PYTHON, "-c", ZYGOTE, str(runs), program],
        capture_output=True,
        check=True,
        timeout=60 + runs,
    ).stdout
    return float(output) * 1000 / runs


def _each_ms(runs: int, argv: list[str]) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, timeout=30)
    return (time.perf_counter() - started) * 1000 / runs


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        print("bubblewrap is not installed: nothing to measure", file=sys.stderr)
        return 1
    cold_over_warm, bare_over_warm = [], []
    for number in range(1, rounds + 1):
        bare, cold, warm = bare_ms(runs), cold_ms(bwrap, runs), warm_ms(bwrap, runs)
        cold_over_warm.append(cold / warm)
        bare_over_warm.append(bare / warm)
        print(f"round {number}: bare {bare:.2f} ms, cold {cold:.2f} ms, warm {warm:.2f} ms per run")
    print(
        f"medians of {rounds} rounds of {runs} runs: warm is {statistics.median(cold_over_warm):.2f}x "
        f"the cold start's runs/s and {statistics.median(bare_over_warm):.2f}x the bare interpreter's"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
