"""The exception hierarchy of faas_sdk. Every error the platform raises is a FaasError.

A failure of the *user's* code is not an exception: it is data in ExecutionResult.error.
These exceptions are for the platform itself (a dead sandbox, an unavailable mode, bad input).
"""

__all__ = [
    "FaasError",
    "ModeNotAvailable",
    "IsolationError",
    "SnapshotError",
    "SandboxDead",
    "ExecutionTimeout",
    "ResourceLimitExceeded",
    "ProtocolError",
    "InvalidCode",
    "LimitWeakenedWarning",
]


class FaasError(Exception):
    """Base class of every faas_sdk error."""


class ModeNotAvailable(FaasError, NotImplementedError):
    """The requested isolation mode (or a feature of it) is not available in this build."""


class IsolationError(FaasError):
    """An isolation step (namespaces, mounts, seccomp, ...) failed while starting a sandbox."""


class SnapshotError(FaasError):
    """A snapshot could not be taken, or a branch could not be made from it."""


class SandboxDead(FaasError):
    """The sandbox's process is gone (killed, crashed, timed out or closed).

    Create a new sandbox; a dead one never comes back.
    """


class ExecutionTimeout(FaasError):
    """An execution exceeded its timeout. Reported as ``result.error.type`` by run()."""


class ResourceLimitExceeded(FaasError):
    """A sandbox exceeded one of its Limits."""


class ProtocolError(FaasError):
    """A sandbox sent something that breaks the engine's protocol; it has been killed."""


class InvalidCode(FaasError, ValueError):
    """The code cannot be sent to a sandbox: not valid UTF-8, contains NUL bytes, or not text."""


class LimitWeakenedWarning(UserWarning):
    """A limit is enforced by a weaker mechanism than its mode promises (e.g. CONTAINER's
    memory limit as a per-process RLIMIT_AS because no cgroup is writable). The message says
    which limit, which mechanism, and why."""
