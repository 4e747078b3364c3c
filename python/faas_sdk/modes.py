"""Isolation modes. One API; each mode promises a different level of isolation."""

import enum

__all__ = ["Mode", "AVAILABLE_MODES"]


class Mode(enum.Enum):
    """Where and how code runs.

    LOCAL         plain child process; trusted code only, fastest.
    SECURE        seccomp-bpf, no privileges, no network (not available yet).
    CONTAINER     namespaces, read-only rootfs, cgroup limits (not available yet).
    CHECKPOINTED  LOCAL plus a snapshot of the end state (result.snapshot).
    BRANCHED      runs in a new branch of an existing snapshot (execute(base_snapshot=...)).
    """

    LOCAL = "local"
    SECURE = "secure"
    CONTAINER = "container"
    CHECKPOINTED = "checkpointed"
    BRANCHED = "branched"


AVAILABLE_MODES = frozenset({Mode.LOCAL, Mode.CHECKPOINTED, Mode.BRANCHED})
