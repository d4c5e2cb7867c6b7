"""The worker's side of a zygote (docs/warm-start.md): start it, check it, and take the spare inits it
keeps ready.

A `Zygote` is started once per worker slot and language, by the command `backends.bwrap` gives for
it and set up with what all its runs share (`ZygoteSetup`). `Zygote.take_spare` gets the init it has
forked and made ready ahead of the next run: a `Spare`, which the caller puts in the run's cgroup
before it hands the spare the run (`Spare.hand`).
"""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from executor.sandbox.launch import memfd_holding
from executor.sandbox.rlimits import RlimitSettings

ZYGOTE_MAIN = Path(__file__).with_name("zygote_main.py")
ANSWER_TIMEOUT_S = 2.0
# The tasks a zygote runs as its slot's uid between runs: bubblewrap's, the zygote's and its spare's
# (while a run goes on, that run's init too).
ZYGOTE_TASKS = 3


class ZygoteFailed(Exception):
    """The zygote did not answer as it should: the run goes cold, and the zygote is replaced."""


@dataclass(frozen=True)
class ZygoteSetup:
    """What every run of a zygote shares, which its spares are made ready with ahead of their runs:
    a zygote serves only runs with these."""

    seccomp_filter: bytes
    # The runs' disk, one tmpfs holding /work, /tmp and /dev/shm: its size and its inode count.
    disk_bytes: int
    disk_inodes: int

    def encoded(self) -> bytes:
        return json.dumps(
            {
                "seccomp": self.seccomp_filter.hex(),
                "disk": {"bytes": self.disk_bytes, "inodes": self.disk_inodes},
            }
        ).encode()


@dataclass(frozen=True)
class RunRequest:
    """What the program's run needs inside the sandbox, sent to its init; the zygote never sees it."""

    files: tuple[tuple[str, bytes], ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    rlimits: RlimitSettings

    def encoded(self) -> bytes:
        return json.dumps(
            {
                "files": [(path, data.hex()) for path, data in self.files],
                "args": list(self.args),
                "env": dict(self.env),
                "rlimits": [(int(number), soft, hard) for number, (soft, hard) in self.rlimits],
            }
        ).encode()


class Zygote:
    """A running zygote: its bubblewrap process and the socket to it."""

    def __init__(
        self, process: "subprocess.Popen[bytes]", connection: socket.socket, setup: ZygoteSetup | None = None
    ) -> None:
        self.process = process
        self.connection = connection
        # What its runs share (None until it is set up).
        self.setup = setup
        # A pidfd of the zygote itself (bubblewrap's child): if bubblewrap dies first, the zygote is
        # reparented to this worker (a subreaper), which must reap it.
        self.zygote_pidfd: int | None = None
        # How many runs it has forked.
        self.runs = 0

    @classmethod
    def start(cls, command_for: Callable[[int], list[str]], setup: ZygoteSetup) -> "Zygote":
        """Start a zygote with the command `command_for` gives for the fd of its end of the socket
        (`backends.bwrap.zygote_command`), set it up for its runs, and check that it answers."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            process = subprocess.Popen(
                command_for(theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        zygote = cls(process, ours, setup)
        try:
            with contextlib.ExitStack() as cleanup:
                setup_fd = memfd_holding("zygote-setup", setup.encoded(), cleanup)
                socket.send_fds(zygote.connection, [b"setup"], [setup_fd])
            zygote._await("did not answer its setup")
            if zygote.connection.recv(64) != b"ready":
                raise ZygoteFailed("the zygote did not answer its setup")
            (pid,) = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            zygote.zygote_pidfd = os.pidfd_open(int(pid))
        except (ZygoteFailed, OSError, ValueError) as error:
            zygote.stop()
            raise ZygoteFailed(f"the zygote did not start: {error}") from error
        return zygote

    def take_spare(self) -> "Spare":
        """The init the zygote has forked ahead for the next run: ZygoteFailed unless it comes within
        ANSWER_TIMEOUT_S. The zygote is told to make the next one ready meanwhile."""
        self._await("had no spare for a run")
        message, fds, _, _ = socket.recv_fds(self.connection, 64, 2)
        if message != b"spare" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise ZygoteFailed(
                f"the zygote sent {message!r} for a spare" if message else "the zygote has gone"
            )
        spare = Spare(fds[0], socket.socket(fileno=fds[1]))
        try:
            self.connection.send(b"next")  # the next run's spare is made ready while this one runs
        except OSError as error:
            spare.close()
            raise ZygoteFailed(f"the zygote has gone: {error}") from error
        return spare

    def stop(self) -> None:
        """End the zygote: closing its socket ends its loop, and bwrap exits once it has; one that
        does not within a second is killed, and its namespace with it. A zygote that outlived
        bubblewrap (killed first) is reaped here."""
        self.connection.close()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.zygote_pidfd is not None:
            with contextlib.suppress(ChildProcessError):  # bubblewrap reaped it, as it should
                os.waitid(os.P_PIDFD, self.zygote_pidfd, os.WEXITED)
            os.close(self.zygote_pidfd)
            self.zygote_pidfd = None

    def _await(self, what: str) -> None:
        """ZygoteFailed ("the zygote `what`") unless it says something within ANSWER_TIMEOUT_S."""
        if not select.select([self.connection], [], [], ANSWER_TIMEOUT_S)[0]:
            raise ZygoteFailed(f"the zygote {what} within {ANSWER_TIMEOUT_S} s")


class Spare:
    """A run's init, forked by the zygote ahead of the run: a pidfd of it, and the socket it waits on
    for its run and reports the program's end on."""

    def __init__(self, pidfd: int, channel: socket.socket) -> None:
        self.pidfd = pidfd
        self.channel = channel

    def hand(self, request: RunRequest, stdin: int, stdout: int, stderr: int) -> None:
        """Send the init its run, once it is in the run's cgroup: from here on it runs the program."""
        with contextlib.ExitStack() as cleanup:
            request_fd = memfd_holding("run", request.encoded(), cleanup)
            socket.send_fds(self.channel, [b"run"], [request_fd, stdin, stdout, stderr])

    def reported_exit(self) -> int | None:
        """What the init reported once its program ended (its exit code, or 128 + the signal that
        killed it), or None if it ended without a report: killed, which only SIGKILL does (the
        worker's, or the cgroup's OOM killer). Read once the init has exited."""
        try:
            report = self.channel.recv(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, ConnectionResetError):  # reset: killed before it read its run
            return None
        if not report:  # the init's end of the socket closed with nothing in it
            return None
        word, _, value = report.partition(b" ")
        if word != b"status" or not value.isdigit():
            raise ZygoteFailed(f"a run's init reported {report!r}")
        return int(value)

    def close(self) -> None:
        """Give the init up: it ends when its socket closes, if it has not had its run."""
        os.close(self.pidfd)
        self.channel.close()


def host_pid(pidfd: int) -> int:
    """The pid, in our own pid namespace, of the process a pidfd refers to (its fdinfo says it)."""
    for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
        if line.startswith("Pid:"):
            return int(line.split()[1])
    raise ZygoteFailed("a pidfd without a pid")
