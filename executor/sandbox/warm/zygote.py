"""The worker's side of a zygote (docs/warm-start.md): start it, check it, and run programs through it.

A `Zygote` is started once per worker slot and language, under bubblewrap as a cold run is, but with
capabilities in its own user namespace (for the namespaces and mounts each run needs) and mount
points, not tmpfs, where each run mounts its own. `Zygote.start_run` hands it a run's fds and gets
back a pidfd of the run's program, which the caller puts in the run's cgroup before releasing it.
"""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from executor.languages import Language
from executor.sandbox.backends.bwrap import DEVICE_LINKS, DEVICES, ROOT_LINKS, WORK_DIR
from executor.sandbox.rlimits import RlimitSettings

ZYGOTE_MAIN = Path(__file__).with_name("zygote_main.py")
INSIDE = "/zygote/zygote_main.py"
ANSWER_TIMEOUT_S = 2.0
PLACES = ("/work", "/tmp", "/dev/shm")


class ZygoteFailed(Exception):
    """The zygote did not answer as it should: the run goes cold, and the zygote is replaced."""


@dataclass(frozen=True)
class RunRequest:
    """What the program's run needs inside the sandbox; the zygote passes it on unread."""

    files: tuple[tuple[str, bytes], ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    rlimits: RlimitSettings
    sizes: Mapping[str, int]
    seccomp_filter: bytes

    def encoded(self) -> bytes:
        return json.dumps(
            {
                "files": [(path, data.hex()) for path, data in self.files],
                "args": list(self.args),
                "env": dict(self.env),
                "rlimits": [(int(number), soft, hard) for number, (soft, hard) in self.rlimits],
                "sizes": dict(self.sizes),
                "seccomp": self.seccomp_filter.hex(),
            }
        ).encode()


class Zygote:
    """A running zygote: its bubblewrap process and the socket to it."""

    def __init__(self, process: "subprocess.Popen[bytes]", connection: socket.socket) -> None:
        self.process = process
        self.connection = connection

    @classmethod
    def start(
        cls,
        bwrap: str,
        interpreter: Sequence[str],
        language: Language,
        prefix: Sequence[str],
        env: Mapping[str, str],
    ) -> "Zygote":
        """Start a zygote for `language` (`interpreter`: its path and flags) under `bwrap`, after the
        `prefix` that the cold path also runs bwrap under (the slot's uid, no new privileges), with
        a program's environment `env`, so that its interpreter starts as a program's would (`site`
        reads HOME, for one)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            *prefix,
            bwrap,
            "--unshare-all",
            # The zygote is pid 1 of its namespace, the monitor's only child, reaped by it on the way out.
            "--as-pid-1",
            "--die-with-parent",
            "--new-session",
            "--uid",
            "0",
            "--gid",
            "0",
            "--cap-add",
            "ALL",
            "--clearenv",
            *(arg for name, value in env.items() for arg in ("--setenv", name, value)),
            *_host_view(language),
            "--ro-bind",
            str(ZYGOTE_MAIN),
            INSIDE,
            "--remount-ro",
            "/",
            "--chdir",
            "/",
            "--",
            *interpreter,
            INSIDE,
            str(theirs.fileno()),
        ]
        with theirs:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        zygote = cls(process, ours)
        zygote.check()
        return zygote

    def check(self) -> None:
        """Ask the zygote whether it is well: ZygoteFailed unless it answers `pong` at once."""
        self.connection.send(b"ping")
        if self._answer() != b"pong":
            raise ZygoteFailed("the zygote did not answer its ping")

    def start_run(self, request: RunRequest, stdin: int, stdout: int, stderr: int, release: int) -> int:
        """Hand the zygote a run; a pidfd of the run's program (pid 1 of its namespaces), which waits
        for a byte on `release` before it does anything the program asked for."""
        with _memfd(request.encoded()) as request_fd:
            socket.send_fds(self.connection, [b"run"], [request_fd, stdin, stdout, stderr, release])
        message, fds, _, _ = socket.recv_fds(self.connection, 256, 1)
        if message != b"pidfd" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ZygoteFailed(f"the zygote answered {message!r} to a run")
        return fds[0]

    def run_status(self, timeout_s: float) -> int:
        """The wait status of the run's program, once it has ended (as its parent reports it)."""
        answer = self._answer(timeout_s)
        word, _, value = answer.partition(b" ")
        if word != b"status":
            raise ZygoteFailed(f"the zygote reported {answer!r} for a run")
        return int(value)

    def stop(self) -> None:
        """End the zygote: closing its socket ends its loop, and bwrap exits once it has; one that
        does not within a second is killed, and its namespace with it."""
        self.connection.close()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _answer(self, timeout_s: float = ANSWER_TIMEOUT_S) -> bytes:
        if not select.select([self.connection], [], [], timeout_s)[0]:
            raise ZygoteFailed(f"the zygote did not answer within {timeout_s} s")
        answer = self.connection.recv(256)
        if not answer:
            raise ZygoteFailed("the zygote has gone")
        return answer


def host_pid(pidfd: int) -> int:
    """The pid, in our own pid namespace, of the process a pidfd refers to (its fdinfo says it)."""
    for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
        if line.startswith("Pid:"):
            return int(line.split()[1])
    raise ZygoteFailed("a pidfd without a pid")


def wait_for_exit(pidfd: int, deadline: float) -> bool:
    """Whether the process of `pidfd` ended before `deadline` (time.monotonic())."""
    return bool(select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))[0])


def _host_view(language: Language) -> list[str]:
    """What a run sees of the host, as on the cold path: /usr read-only, the merged-/usr links, the
    language's own paths, a fresh /proc and a few devices; /work, /tmp and /dev/shm as bare mount
    points, where each run mounts its own."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ROOT_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in language.host_paths:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc"]
    for device in DEVICES:
        args += ["--dev-bind", device, device]
    for target, link in DEVICE_LINKS:
        args += ["--symlink", target, link]
    for place in (WORK_DIR, "/tmp", "/dev/shm"):
        args += ["--dir", place]
    return args


@contextlib.contextmanager
def _memfd(data: bytes):  # type: ignore[no-untyped-def]
    fd = os.memfd_create("run")
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)
