"""faas_sdk: stateful, isolated Python sandboxes for AI agents, driven by a C++20 engine.

    from faas_sdk import ExecutionPlatform

    with ExecutionPlatform() as platform:
        with platform.create_sandbox() as sandbox:
            sandbox.run("x = 41")
            print(sandbox.run("x + 1").value)   # '42'

Names are imported on first use, so importing the package (as the pytest plugin does) does
not load the native engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "ExecutionTimeout": "errors", "FaasError": "errors", "InvalidCode": "errors",
    "IsolationError": "errors", "LimitWeakenedWarning": "errors", "ModeNotAvailable": "errors", "ProtocolError": "errors",
    "ResourceLimitExceeded": "errors", "SandboxDead": "errors", "SnapshotError": "errors",
    "Limits": "limits",
    "AVAILABLE_MODES": "modes", "Mode": "modes",
    "ExecutionPlatform": "platform",
    "BranchResult": "results", "ErrorInfo": "results", "ExecutionResult": "results",
    "Sandbox": "sandbox",
    "Snapshot": "snapshot",
    "TreeNode": "tree_search", "TreeSearchResult": "tree_search",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faas_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .errors import (ExecutionTimeout, FaasError, InvalidCode, IsolationError, LimitWeakenedWarning,
                         ModeNotAvailable, ProtocolError, ResourceLimitExceeded, SandboxDead, SnapshotError)
    from .limits import Limits
    from .modes import AVAILABLE_MODES, Mode
    from .platform import ExecutionPlatform
    from .results import BranchResult, ErrorInfo, ExecutionResult
    from .sandbox import Sandbox
    from .snapshot import Snapshot
    from .tree_search import TreeNode, TreeSearchResult
