"""The zygote: an interpreter started once in a sandbox, that forks each run's init ahead of the run
and has it made ready (docs/warm-start.md).

It runs under the sandbox's interpreter, not the service's virtualenv, so it uses the standard library
only, and it imports no more than it needs. It holds capabilities in its own user namespace only, and
never runs user code itself.

The fd its one argument names is a SOCK_SEQPACKET socket to the worker. The worker's first message is
`setup`, with a memfd of JSON: the seccomp filter and the runs' disk bounds, the same for every run
of this zygote; it is answered `ready`. From then on the zygote keeps one *spare* ready: the init of
the next run, forked into a fresh pid namespace (pid 1 there), which takes fresh mount, network and
ipc namespaces, mounts the run's /proc and disk, becomes uid 1000 in a user namespace of its own with
no capabilities, loads the filter, and then waits. The zygote sends the worker `spare` with a pidfd
of it and the worker's end of a socket pair of its own; when the worker takes it, it says `next`,
and the zygote forks the next spare while that run goes on. The zygote never sees a run: the worker
puts the spare in the run's cgroup and then sends it, on that socket, `run` with four fds (the
request, a memfd of JSON: code, arguments, files, rlimits, environment; the program's stdin,
stdout and stderr). The init writes the files, sets the rlimits
and forks the program (pid 2), which runs as `__main__`; when the program ends, the init reports
`status <n>` on its socket and exits. Anything else from the worker, or its socket closing, ends the
zygote.
"""

import sys

# What the interpreter had imported by itself (site and its imports), as a cold start has when its
# program begins: whatever the zygote imports beyond it is dropped before a program runs.
COLD_START_MODULES = frozenset(sys.modules)

import atexit  # noqa: E402
import builtins  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import importlib.machinery  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import types  # noqa: E402

# mnt, ipc, net. Not uts: the zygote's hostname is bubblewrap's, which no program can change (it
# holds no capability over that namespace), so each run would only set the same one again.
FRESH = 0x00020000 | 0x08000000 | 0x40000000
NEW_PID = 0x20000000
NEW_USER = 0x10000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_BIND = 0x4000, 1 << 18, 0x2, 0x4, 0x1000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 4, 38, 22, 2
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
CAP_LAST = 63
LINUX_CAPABILITY_VERSION_3 = 0x20080522
PROGRAM_UID = 1000
PROGRAM = "/work/main.py"
_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class Ready:
    """What the zygote works out once for all its runs, before it forks any (a plain class: the
    zygote imports no more than it needs)."""

    __slots__ = ("argument_area", "zygote_modules")

    def __init__(self, zygote_modules: tuple[str, ...], argument_area: tuple[int, int]) -> None:
        # The modules it imported beyond a cold start's, which each program drops.
        self.zygote_modules = zygote_modules
        # Where its argument strings lie (arg_start, arg_end), the same in every process it forks:
        # each program writes its command line over them.
        self.argument_area = argument_area


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str, target: str, kind: str, flags: int, data: str | None = None) -> None:
    options = data.encode() if data is not None else None
    _check(_libc.mount(source.encode(), target.encode(), kind.encode(), flags, options), f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def serve(worker: socket.socket) -> None:
    """Take the worker's setup, then keep a spare init ready for it until its socket closes."""
    # Its own pid namespace, entered again after each spare's fork: unshare(CLONE_NEWPID) puts only the
    # caller's next child in a new one, and cannot be repeated until the caller's children are back in
    # its own.
    own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    _warm_up()
    ready = Ready(tuple(set(sys.modules) - COLD_START_MODULES), _argument_area())
    # What the zygote allocated is never collected again: a collection in a run would write to every
    # page of it, each a copy-on-write fault.
    gc.freeze()
    message, fds, _, _ = socket.recv_fds(worker, 64, 1)
    if message != b"setup" or len(fds) != 1:
        return
    with open(fds[0], "rb") as setup_file:
        setup = json.loads(setup_file.read())
    setup["seccomp"] = bytes.fromhex(setup["seccomp"])
    worker.send(b"ready")
    # Pidfds of the inits forked and not yet reaped: the spare, and the one running a run.
    inits = {_fork_spare(worker, own_pid_namespace, ready, setup)}
    while True:
        readable, _, _ = select.select([worker, *inits], [], [])
        for ended in inits.intersection(readable):
            os.waitid(os.P_PIDFD, ended, os.WEXITED)
            os.close(ended)
            inits.discard(ended)
        if worker in readable:
            # `next`: the worker took the spare, so the next run's is made ready while it runs.
            # Anything else, or the socket closing, ends the zygote (and every init with it).
            if worker.recv(64) != b"next":
                return
            inits.add(_fork_spare(worker, own_pid_namespace, ready, setup))


def _fork_spare(worker: socket.socket, own_pid_namespace: int, ready: Ready, setup: dict) -> int:  # type: ignore[type-arg]
    """Fork the next run's init into a pid namespace of its own, send the worker a pidfd of it and
    the worker's end of the init's socket, and return a pidfd of it."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    _check(_libc.unshare(NEW_PID), "unshare pid")
    init = -1
    try:
        init = os.fork()
    finally:
        if init != 0:  # the zygote's next child in the zygote's own pid namespace again
            _check(_libc.setns(own_pid_namespace, NEW_PID), "enter the zygote's pid namespace")
    if init == 0:
        try:
            worker.close()
            ours.close()
            _init(theirs, ready, setup)
        finally:
            os._exit(1)  # set-up failed: the worker hears it from the missing report
    theirs.close()
    pidfd = os.pidfd_open(init)
    with ours:
        socket.send_fds(worker, [b"spare"], [pidfd, ours.fileno()])
    return pidfd


def _warm_up() -> None:
    """Do once here the first uses every run would otherwise pay for in its init and its program
    (the compiler's, the JSON decoder's, each C function's lookup in libc): a first use writes to
    pages of the zygote's heap, and each such page written after a fork is a copy-on-write fault.
    None of it reads a run's data."""
    compile("pass\n", PROGRAM, "exec")
    json.loads('{"files": [["main.py", "00"]], "args": [], "rlimits": [[0, 1, 1]], "env": {}}')
    bytes.fromhex("00")
    for name in ("mount", "unshare", "setns", "prctl", "capset"):
        getattr(_libc, name)


def _init(channel: socket.socket, ready: Ready, setup: dict) -> None:  # type: ignore[type-arg]
    """Pid 1 of a run, with its own namespaces, filesystem and user: the run's init, as bubblewrap's is
    on the cold path. Forked as a spare, it makes itself ready for a run, all but the run's own files
    and rlimits, and waits for it, which the worker sends once it has put the init in the run's
    cgroup. It forks the program (pid 2), reaps what ends, and when the program ends, reports and
    exits with its exit code, or 128 + the signal that killed it, as bubblewrap reports (a pid 1
    cannot die by a signal it sends itself). The program being pid 2 keeps a cold start's signals: a
    pid 1 is spared every signal it has no handler for."""
    # A session and process group of its own: kill(0) reaches a caller's whole process group,
    # whatever pid namespace its members are in, and the zygote's is the one it was forked in.
    os.setsid()
    _check(_libc.unshare(FRESH), "unshare")
    _filesystem(setup["disk"])
    _drop_to_program_user()
    # The program runs as the init's uid: non-dumpable, the init's memory (/proc/1/mem) is not its to
    # read or write, and with SIGINT ignored, Python's handler cannot be made to end it.
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The filter, for the init (it runs nothing of the client's, but who knows) and, inherited, the
    # program: loaded once.
    _load_seccomp(setup["seccomp"])
    message, fds, _, _ = socket.recv_fds(channel, 64, 4)
    if message != b"run" or len(fds) != 4:  # the worker gave the spare up (or never had it)
        os._exit(125)
    request_fd, stdin, stdout, stderr = fds
    with open(request_fd, "rb") as request_file:
        request = json.loads(request_file.read())
    _write_files(request["files"])
    for number, soft, hard in request["rlimits"]:
        resource.setrlimit(number, (soft, hard))
    program = os.fork()
    if program == 0:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
            # Dies with its init, as bubblewrap's program does (the filter allows SIGKILL only).
            _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "parent-death signal")
            for target, fd in enumerate((stdin, stdout, stderr)):
                os.dup2(fd, target)
            os.closerange(3, 1 << 16)
            _run_as_main(request, ready)
        finally:
            os._exit(1)  # set-up failed: nothing of the zygote's reaches the program's streams
    # The program's streams end with the program, not with its init, which keeps only its socket.
    os.closerange(0, channel.fileno())
    os.closerange(channel.fileno() + 1, 1 << 16)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == program:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            channel.send(f"status {code}".encode())
            os._exit(code)


def _filesystem(disk: dict) -> None:  # type: ignore[type-arg]
    """Private mounts; a fresh /proc; one tmpfs of the runs' disk size and inode count holding /work,
    /tmp and /dev/shm, whose bounds they share, as the cold path's scratch disk does."""
    _mount("none", "/", "", MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk['bytes']},nr_inodes={disk['inodes']}")
    for folder in ("work", "tmp", "shm"):
        os.mkdir(f"/tmp/{folder}", 0o1777 if folder != "work" else 0o755)
        os.chmod(f"/tmp/{folder}", 0o1777 if folder != "work" else 0o755)
    _mount("/tmp/work", "/work", "", MS_BIND)
    _mount("/tmp/shm", "/dev/shm", "", MS_BIND)
    _mount("/tmp/tmp", "/tmp", "", MS_BIND)  # over the disk's root, which nothing shows any longer


def _write_files(files: list) -> None:  # type: ignore[type-arg]
    """The run's files, in /work, written as uid 1000, the owner of its disk."""
    for path, text in files:
        target = os.path.join("/work", path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as file:
            file.write(bytes.fromhex(text))


def _drop_to_program_user() -> None:
    """uid and gid 1000 in a user namespace of its own, no capabilities, no new privileges: from here
    on the program's own rules (the seccomp filter is the program's alone)."""
    _check(_libc.unshare(NEW_USER), "unshare user")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{PROGRAM_UID} 0 1")
    _write("/proc/self/gid_map", f"{PROGRAM_UID} 0 1")
    os.setresgid(PROGRAM_UID, PROGRAM_UID, PROGRAM_UID)
    os.setresuid(PROGRAM_UID, PROGRAM_UID, PROGRAM_UID)
    _drop_capabilities()
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _load_seccomp(bpf: bytes) -> None:
    """The worker's seccomp filter (BPF), from here on for good."""
    if bpf:
        buffer = ctypes.create_string_buffer(bpf, len(bpf))
        program = _SockFprog(len(bpf) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


def _drop_capabilities() -> None:
    """None left, of any set: a new user namespace gives its first process every capability in it,
    and a uid change that does not start from 0 keeps them."""
    for capability in range(CAP_LAST + 1):
        result = _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
        if result != 0 and ctypes.get_errno() != 22:  # EINVAL: no such capability on this kernel
            _check(result, f"drop capability {capability} from the bounding set")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(ctypes.byref(header), ctypes.byref((_CapData * 2)())), "capset")


def _run_as_main(request: dict, ready: Ready) -> None:  # type: ignore[type-arg]
    """Run /work/main.py as a cold `python3 main.py` would (a fresh `__main__` module, the program's
    own folder first on sys.path, argv[0] as given), and end as it would. What the zygote imported
    is dropped from sys.modules first: a program that imports it gets a fresh module (`random` with
    a fresh seed), as a cold start would."""
    if dict(os.environ) != request["env"]:  # the zygote's is a program's already
        os.environ.clear()
        os.environ.update(request["env"])
    os.chdir("/work")
    sys.argv = ["main.py", *request["args"]]
    command = [sys.executable, *sys.orig_argv[1:-3], "main.py", *request["args"]]
    _show_command_line(command, ready.argument_area)
    sys.path[0] = "/work"
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=PROGRAM,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", PROGRAM),
        __cached__=None,
        __annotations__={},
    )
    sys.modules["__main__"] = main
    # What the zygote imported, then anything imported since (a first use may import lazily).
    for name in ready.zygote_modules:
        del sys.modules[name]
    if len(sys.modules) != len(COLD_START_MODULES):
        for name in set(sys.modules) - COLD_START_MODULES:
            del sys.modules[name]
    status = 0
    try:
        with open(PROGRAM, "rb") as source:
            code = compile(source.read(), PROGRAM, "exec")  # a SyntaxError is reported as cold
        exec(code, main.__dict__)
    except SystemExit as exit_request:
        status = _exit_code(exit_request.code)
    except BaseException as error:  # the program's own failure, reported as a cold start does
        program_frames = _program_frames(error.__traceback__)
        sys.excepthook(type(error), error.with_traceback(program_frames), program_frames)
        status = 1
    os._exit(_finish(status))


def _argument_area() -> tuple[int, int]:
    """Where the process's argument strings lie (arg_start, arg_end, from /proc/self/stat): the
    same in every process forked from it."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    # proc(5) numbers the fields from 1, the command (2) included; after it, field n is at n - 3.
    return int(fields[48 - 3]), int(fields[49 - 3])


def _show_command_line(words: list[str], area: tuple[int, int]) -> None:
    """Make /proc/<pid>/cmdline say what a cold start's says (`python3 -E -s main.py args`), as far
    as the room the zygote's arguments leave (its last one is padding for this,
    `backends.bwrap.ZYGOTE_COMMAND_LINE_ROOM`): written over the process's own argument strings
    (`area`), as setproctitle does, so `ps` and the host see the program."""
    start, end = area
    text = b"\0".join(word.encode(errors="replace") for word in words)[: end - start - 1]
    ctypes.memmove(start, text.ljust(end - start, b"\0"), end - start)


def _program_frames(traceback):  # type: ignore[no-untyped-def]
    """The traceback from the program's first frame on: a cold start's shows none of ours."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename != PROGRAM:
        traceback = traceback.tb_next
    return traceback


def _exit_code(value: object) -> int:
    """SystemExit's argument as the interpreter turns it into an exit code."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _finish(code: int) -> int:
    """What the interpreter does on its way out: wait for the program's threads (in the threading
    module it imported, if it did), run atexit, flush the streams."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # as the interpreter's exit does
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    return code


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
