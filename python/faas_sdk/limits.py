"""Per-sandbox resource limits."""

from __future__ import annotations

import dataclasses
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
    pids             process count; needs cgroups (CONTAINER mode), refused in LOCAL
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

    def rlimits(self) -> list[tuple[int, int]]:
        """The setrlimit() calls that enforce these limits in a LOCAL sandbox."""
        if self.pids is not None:
            raise ModeNotAvailable(
                "Limits.pids needs a pids cgroup (CONTAINER mode); LOCAL mode cannot enforce it "
                "(RLIMIT_NPROC counts every process of the user and does not bind root)")
        pairs = [
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_FSIZE, self.file_size_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
        ]
        return [(res, int(v)) for res, v in pairs if v is not None]

    @property
    def is_default(self) -> bool:
        return self == Limits()
