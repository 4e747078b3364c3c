"""Per-sandbox resource limits."""

from __future__ import annotations

import dataclasses
import os
import resource
import warnings
from typing import Optional

from .errors import LimitWeakenedWarning, ModeNotAvailable

__all__ = ["Limits", "Enforcement", "DEFAULT_OUTPUT_BYTES"]

DEFAULT_OUTPUT_BYTES = 10 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits applied to one sandbox.

    timeout          default wall-clock seconds per execution (run(timeout=) overrides it)
    memory_bytes     LOCAL/SECURE: address-space limit per process (RLIMIT_AS); allocations
                     beyond it raise MemoryError. CONTAINER: the sandbox's memory cgroup (all
                     its processes, page cache and /tmp together); exceeding it kills the
                     sandbox (the result names memory_bytes)
    cpu_seconds      CPU time for the sandbox's lifetime (RLIMIT_CPU); exceeding it kills it
    output_bytes     stdout+stderr kept per execution; the rest is dropped and flagged
    file_size_bytes  largest file the sandbox may write (RLIMIT_FSIZE)
    open_files       descriptors the sandbox may hold (RLIMIT_NOFILE)
    pids             processes and threads at once. CONTAINER: its pids cgroup; SECURE (root
                     host): RLIMIT_NPROC on the sandbox's own uid; refused in LOCAL
    cpu_cores        CPU bandwidth, in cores (0.5: half of one core), throttled by the cpu
                     cgroup; CONTAINER only

    Where CONTAINER finds no writable cgroup for a limit it falls back to the SECURE mechanism
    with a LimitWeakenedWarning, or raises ModeNotAvailable if there is none (cpu_cores).
    """

    timeout: Optional[float] = None
    memory_bytes: Optional[int] = None
    cpu_seconds: Optional[int] = None
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    file_size_bytes: Optional[int] = None
    open_files: Optional[int] = None
    pids: Optional[int] = None
    cpu_cores: Optional[float] = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and value <= 0:
                raise ValueError(f"Limits.{field.name} must be positive, got {value!r}")

    def rlimits(self, mode=None) -> list[tuple[int, int]]:
        """The setrlimit() calls that enforce these limits in a sandbox of `mode`."""
        return self.enforcement(mode).rlimits

    def enforcement(self, mode=None) -> "Enforcement":
        """How each limit is enforced in a sandbox of `mode`: rlimits the kernel sets on itself,
        and values for the sandbox's cgroup (CONTAINER)."""
        from .modes import Mode
        pairs: list = []
        cgroup: dict = {}
        if mode is Mode.CONTAINER:
            self._container_cgroup_limits(cgroup, pairs)
        else:
            if self.cpu_cores is not None:
                raise ModeNotAvailable("Limits.cpu_cores needs a cpu cgroup per sandbox: CONTAINER mode only")
            if self.pids is not None:
                pairs.append(self._nproc(mode is Mode.SECURE))
            pairs.append((resource.RLIMIT_AS, self.memory_bytes))
        pairs += [
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_FSIZE, self.file_size_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
        ]
        return Enforcement([(res, int(v)) for res, v in pairs if v is not None], cgroup)

    def _nproc(self, own_uid: bool) -> tuple[int, int]:
        # RLIMIT_NPROC counts every process of a uid: it is a per-sandbox limit only where
        # each sandbox has a uid of its own (SECURE or CONTAINER on a root host).
        if not own_uid or os.geteuid() != 0:
            raise ModeNotAvailable(
                "Limits.pids needs a pids cgroup (CONTAINER) or a uid per sandbox (SECURE, host "
                "running as root); elsewhere RLIMIT_NPROC would count other processes of the same user")
        return (resource.RLIMIT_NPROC, self.pids)

    def _container_cgroup_limits(self, cgroup: dict, pairs: list) -> None:
        from . import _cgroups
        for field, controller in (("memory_bytes", "memory"), ("pids", "pids"), ("cpu_cores", "cpu")):
            value = getattr(self, field)
            if value is None:
                continue
            reason = _cgroups.unavailable_reason(controller)
            if reason is None:
                cgroup[field] = value
            elif field == "cpu_cores":
                raise ModeNotAvailable(f"Limits.cpu_cores cannot be enforced: {reason}")
            else:
                fallback = self._nproc(True) if field == "pids" else (resource.RLIMIT_AS, value)
                pairs.append(fallback)
                mechanism = "RLIMIT_NPROC on the sandbox's uid" if field == "pids" else "RLIMIT_AS per process"
                warnings.warn(f"CONTAINER: Limits.{field} is enforced as {mechanism}, not by a cgroup: "
                              f"{reason}", LimitWeakenedWarning, stacklevel=4)

    @property
    def is_default(self) -> bool:
        return self == Limits()


@dataclasses.dataclass(frozen=True)
class Enforcement:
    """What Limits.enforcement() decided for one sandbox."""
    rlimits: list  # (resource, value) pairs the kernel sets on itself
    cgroup: dict   # SandboxCgroup keyword arguments (memory_bytes, pids, cpu_cores); may be empty


# How each limit shows when it is hit: (limit field, exception type the code sees, text in the
# error message). The kernel enforces the limit; this only names it in the result.
_SYMPTOMS = (
    ("memory_bytes", "MemoryError", ""),
    ("file_size_bytes", "OSError", "File too large"),
    ("open_files", "OSError", "Too many open files"),
    ("pids", "BlockingIOError", "Resource temporarily unavailable"),
    ("cpu_seconds", "SandboxDead", "SIGXCPU"),
)


def exceeded_limit(limits: Optional[Limits], error_type: str, message: str,
                   oom_killed: bool = False) -> Optional[str]:
    """The Limits field an execution's error shows was exceeded, or None. `oom_killed`: the
    sandbox's memory cgroup killed one of its processes."""
    if limits is None:
        return None
    if oom_killed and limits.memory_bytes is not None:
        return "memory_bytes"
    for field, symptom_type, text in _SYMPTOMS:
        if getattr(limits, field) is not None and error_type == symptom_type and text in message:
            return field
    return None
