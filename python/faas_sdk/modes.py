"""Isolation modes. One API; each mode promises a different level of isolation."""

import enum

__all__ = ["Mode", "AVAILABLE_MODES"]


class Mode(enum.Enum):
    """Where and how code runs.

    LOCAL         plain child process; trusted code only, fastest.
    SECURE        seccomp-bpf, Landlock, no capabilities, own uid, no network, own mount view.
    CONTAINER     namespaces, read-only rootfs, cgroup limits (not available yet).
    CHECKPOINTED  LOCAL plus a snapshot of the end state (result.snapshot).
    BRANCHED      runs in a new branch of an existing snapshot (execute(base_snapshot=...)).
    """

    LOCAL = "local"
    SECURE = "secure"
    CONTAINER = "container"
    CHECKPOINTED = "checkpointed"
    BRANCHED = "branched"


def _available_modes() -> frozenset:
    from ._isolation import secure_unavailable_reason
    modes = {Mode.LOCAL, Mode.CHECKPOINTED, Mode.BRANCHED}
    if secure_unavailable_reason() is None:
        modes.add(Mode.SECURE)
    return frozenset(modes)


AVAILABLE_MODES = _available_modes()
"""The modes this build runs on this machine (SECURE needs Landlock ABI 6+; see
faas_sdk._isolation.secure_unavailable_reason)."""

# The engine's name of each isolated mode's profile; modes not listed run unisolated.
ISOLATION_PROFILE = {Mode.SECURE: "secure"}
