"""Per-sandbox resource limits."""

from __future__ import annotations

import dataclasses
import os
import resource
from typing import Optional

from .errors import ModeNotAvailable

__all__ = ["Limits", "DEFAULT_OUTPUT_BYTES"]

DEFAULT_OUTPUT_BYTES = 10 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits applied to one sandbox.

    timeout          default wall-clock seconds per execution (run(timeout=) overrides it)
    memory_bytes     address-space limit (RLIMIT_AS); allocations beyond it raise MemoryError
    cpu_seconds      CPU time for the sandbox's lifetime (RLIMIT_CPU); exceeding it kills it
    output_bytes     stdout+stderr kept per execution; the rest is dropped and flagged
    file_size_bytes  largest file the sandbox may write (RLIMIT_FSIZE)
    open_files       descriptors the sandbox may hold (RLIMIT_NOFILE)
    pids             processes and threads at once (RLIMIT_NPROC on the sandbox's own uid);
                     SECURE mode on a root host only, refused elsewhere
    """

    timeout: Optional[float] = None
    memory_bytes: Optional[int] = None
    cpu_seconds: Optional[int] = None
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    file_size_bytes: Optional[int] = None
    open_files: Optional[int] = None
    pids: Optional[int] = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and value <= 0:
                raise ValueError(f"Limits.{field.name} must be positive, got {value!r}")

    def rlimits(self, mode=None) -> list[tuple[int, int]]:
        """The setrlimit() calls that enforce these limits in a sandbox of `mode`."""
        from .modes import Mode
        pairs = []
        if self.pids is not None:
            # RLIMIT_NPROC counts every process of a uid: it is a per-sandbox limit only where
            # each sandbox has a uid of its own (SECURE on a root host).
            if mode is not Mode.SECURE or os.geteuid() != 0:
                raise ModeNotAvailable(
                    "Limits.pids needs a uid per sandbox (SECURE mode, host running as root); "
                    "elsewhere RLIMIT_NPROC would count other processes of the same user")
            pairs.append((resource.RLIMIT_NPROC, self.pids))
        pairs += [
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_FSIZE, self.file_size_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
        ]
        return [(res, int(v)) for res, v in pairs if v is not None]

    @property
    def is_default(self) -> bool:
        return self == Limits()


# How each limit shows when it is hit: (limit field, exception type the code sees, text in the
# error message). The kernel enforces the limit; this only names it in the result.
_SYMPTOMS = (
    ("memory_bytes", "MemoryError", ""),
    ("file_size_bytes", "OSError", "File too large"),
    ("open_files", "OSError", "Too many open files"),
    ("pids", "BlockingIOError", "Resource temporarily unavailable"),
    ("cpu_seconds", "SandboxDead", "SIGXCPU"),
)


def exceeded_limit(limits: Optional[Limits], error_type: str, message: str) -> Optional[str]:
    """The Limits field an execution's error shows was exceeded, or None."""
    if limits is None:
        return None
    for field, symptom_type, text in _SYMPTOMS:
        if getattr(limits, field) is not None and error_type == symptom_type and text in message:
            return field
    return None
