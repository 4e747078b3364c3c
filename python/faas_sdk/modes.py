"""Isolation modes. One API; each mode promises a different level of isolation."""

import enum

__all__ = ["Mode", "AVAILABLE_MODES"]


class Mode(enum.Enum):
    """Where and how code runs.

    LOCAL         plain child process; trusted code only, fastest.
    SECURE        seccomp-bpf, Landlock, no capabilities, own uid, no network, own mount view.
    CONTAINER     SECURE plus user/pid/uts/ipc/cgroup namespaces, /proc of its own, hostname
                  `sandbox`, cgroup limits for memory, pids and CPU.
    CHECKPOINTED  LOCAL plus a snapshot of the end state (result.snapshot).
    BRANCHED      runs in a new branch of an existing snapshot (execute(base_snapshot=...)).
    """

    LOCAL = "local"
    SECURE = "secure"
    CONTAINER = "container"
    CHECKPOINTED = "checkpointed"
    BRANCHED = "branched"


def _available_modes() -> frozenset:
    from ._isolation import container_unavailable_reason, secure_unavailable_reason
    modes = {Mode.LOCAL, Mode.CHECKPOINTED, Mode.BRANCHED}
    if secure_unavailable_reason() is None:
        modes.add(Mode.SECURE)
    if container_unavailable_reason() is None:
        modes.add(Mode.CONTAINER)
    return frozenset(modes)


AVAILABLE_MODES = _available_modes()
"""The modes this build runs on this machine (SECURE and CONTAINER need Landlock ABI 6+, and
CONTAINER user namespaces; see faas_sdk._isolation)."""

# The engine's name of each isolated mode's profile; modes not listed run unisolated.
ISOLATION_PROFILE = {Mode.SECURE: "secure", Mode.CONTAINER: "container"}
