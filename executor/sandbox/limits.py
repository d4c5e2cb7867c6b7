"""The resource limits one program runs under."""

from dataclasses import dataclass, replace

MIB = 1024 * 1024
# What a compiler may print before it is stopped: its output comes back as compile_output.
COMPILE_OUTPUT_CAP = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits of one run; the per-request ones come from the client, the rest from the operator."""

    wall_time_s: float = 5.0
    memory_mb: int = 256
    max_processes: int = 64
    max_disk_mb: int = 64
    max_output_bytes: int = MIB
    max_open_files: int = 64
    # Files out (API.md 1.1): how many files come back, and their bytes together.
    max_output_files: int = 32
    max_output_files_bytes: int = 8 * MIB
    # The compile stage's own limits, for languages that compile.
    compile_time_s: float = 10.0
    compile_memory_mb: int = 512

    @property
    def max_disk_inodes(self) -> int:
        """Files and folders the disk may hold: 256 per MiB, at least 1024 (each costs kernel memory)."""
        return max(1024, 256 * self.max_disk_mb)

    @property
    def cpu_time_s(self) -> int:
        """CPU seconds allowed: the wall limit rounded up, since RLIMIT_CPU counts whole seconds."""
        return max(1, int(-(-self.wall_time_s // 1)))

    def for_compile(self) -> "Limits":
        """The limits of the compile stage: its own time and memory, the disk and processes of the run."""
        return replace(
            self,
            wall_time_s=self.compile_time_s,
            memory_mb=self.compile_memory_mb,
            max_output_bytes=COMPILE_OUTPUT_CAP,
        )
