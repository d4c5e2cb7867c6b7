"""Feeding stdin and collecting capped stdout and stderr, in one thread, while watching the clock."""

import os
import selectors
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import FileIO

_CHUNK = 65536
# Told each piece of output as it is read, within the cap: "stdout" or "stderr", and the bytes.
OutputListener = Callable[[str, bytes], None]
# Once the child has exited and its tree was killed, the pipes close at once; this bounds the wait
# for a writer that escaped the kill (possible only without a pid namespace).
_DRAIN_GRACE_S = 0.5
# How long a program stopped on a limit may take to die before the whole tree is killed outright.
_KILL_GRACE_S = 1.0


@dataclass
class CappedOutput:
    """The bytes of one stream up to a cap, and whether the program wrote more than that."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> bytes:
        """Keep what fits under the cap, and return it; `truncated` once the stream has gone over it."""
        room = self.cap - len(self.data)
        kept = chunk[:room]
        self.data += kept
        self.truncated = self.truncated or len(chunk) > room
        return kept


@dataclass
class Exchange:
    """What the loop saw: the output, when the child exited, and why it stopped the program if it did."""

    stdout: CappedOutput
    stderr: CappedOutput
    exited_at: float | None = None
    timed_out: bool = False
    output_exceeded: bool = False


@dataclass(frozen=True)
class Pipes:
    """Our ends of the child's standard streams."""

    stdin: FileIO
    stdout: FileIO
    stderr: FileIO


class StreamLoop:
    """One exchange with a running program: what is still to write, to read, and until when.

    `end_program` is called on the deadline and on output over the cap; `kill_tree` once the child
    has exited (so that nothing it left behind keeps the pipes open), or when ending the program
    did not make it exit in time.
    """

    def __init__(
        self,
        *,
        pidfd: int,
        pipes: Pipes,
        stdin_data: bytes,
        deadline: float,
        output_cap: int,
        end_program: Callable[[], None],
        kill_tree: Callable[[], None],
        listeners: Mapping[int, Callable[[bytes], None]],
        on_output: OutputListener | None = None,
    ) -> None:
        self._selector = selectors.DefaultSelector()
        self._pidfd = pidfd
        self._stdin = pipes.stdin
        # Its number, until it is closed: after that the number may name another fd.
        self._stdin_fd = pipes.stdin.fileno()
        self._pending = memoryview(stdin_data)
        self._deadline = deadline
        self._end_program = end_program
        self._kill_tree = kill_tree
        self._seen = Exchange(CappedOutput(output_cap), CappedOutput(output_cap))
        self._outputs = {pipes.stdout.fileno(): self._seen.stdout, pipes.stderr.fileno(): self._seen.stderr}
        self._listeners = listeners
        self._on_output = on_output
        self._names = {pipes.stdout.fileno(): "stdout", pipes.stderr.fileno(): "stderr"}
        self._drain_until: float | None = None
        self._kill_at: float | None = None

    def run(self) -> Exchange:
        """Run the program's I/O until it has exited and its pipes are drained, stopping it on a limit.

        Closes stdin once it is written, and the selector when done.
        """
        try:
            return self._serve_until_done()
        finally:
            self._selector.close()
            self._stdin.close()

    def _serve_until_done(self) -> Exchange:
        """Serve events until the child has exited and everything is read (or the drain grace is over)."""
        self._selector.register(self._pidfd, selectors.EVENT_READ)
        for fd in (*self._outputs, *self._listeners):
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ)
        if self._pending:
            os.set_blocking(self._stdin_fd, False)
            self._selector.register(self._stdin_fd, selectors.EVENT_WRITE)
        else:
            self._close_stdin()
        while self._seen.exited_at is None or self._selector.get_map():
            timeout = self._check_clock()
            if timeout is not None and timeout <= 0:
                break
            for key, _ in self._selector.select(timeout):
                self._serve(key.fd)
        return self._seen

    def _check_clock(self) -> float | None:
        """Act on the deadlines that passed; returns how long to wait for events (None: until one)."""
        now = time.monotonic()
        if self._drain_until is not None:
            return self._drain_until - now
        if not self._seen.timed_out and now >= self._deadline:
            self._seen.timed_out = True
            self._stop_program(now)
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            self._kill_tree()
        deadlines = [] if self._seen.timed_out else [self._deadline]
        if self._kill_at is not None:
            deadlines.append(self._kill_at)
        return min(deadlines) - now if deadlines else None

    def _stop_program(self, now: float) -> None:
        """End the program on a limit, and kill everything if that has not worked soon."""
        self._end_program()
        if self._kill_at is None:
            self._kill_at = now + _KILL_GRACE_S

    def _serve(self, fd: int) -> None:
        if fd == self._pidfd:
            self._seen.exited_at = time.monotonic()
            self._drain_until = self._seen.exited_at + _DRAIN_GRACE_S
            self._selector.unregister(fd)
            self._kill_tree()
        elif fd == self._stdin_fd:
            self._feed()
        elif fd in self._outputs:
            self._collect(fd)
        else:
            chunk = self._read(fd)
            if chunk:
                self._listeners[fd](chunk)

    def _feed(self) -> None:
        """Write what the pipe takes now; close it when all is written or the reader has gone."""
        try:
            written = os.write(self._stdin_fd, self._pending[:_CHUNK])
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            written = len(self._pending)
        self._pending = self._pending[written:]
        if not self._pending:
            self._selector.unregister(self._stdin_fd)
            self._close_stdin()

    def _close_stdin(self) -> None:
        """Close stdin, which tells the program there is no more input."""
        self._stdin.close()
        self._stdin_fd = -1

    def _collect(self, fd: int) -> None:
        """Keep output up to the cap, and pass what is kept on; one byte over it stops the program."""
        chunk = self._read(fd)
        if not chunk:
            return
        kept = self._outputs[fd].add(chunk)
        if kept and self._on_output is not None:
            self._on_output(self._names[fd], kept)
        if self._outputs[fd].truncated:
            self._seen.output_exceeded = True
            self._selector.unregister(fd)
            self._stop_program(time.monotonic())

    def _read(self, fd: int) -> bytes | None:
        """Read what is there; at end of file, stop watching the fd and return b""."""
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return None
        if not chunk:
            self._selector.unregister(fd)
        return chunk
