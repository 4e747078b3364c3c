"""faas_sdk: stateful, isolated Python sandboxes for AI agents, driven by a C++20 engine.

    from faas_sdk import ExecutionPlatform

    with ExecutionPlatform() as platform:
        with platform.create_sandbox() as sandbox:
            sandbox.run("x = 41")
            print(sandbox.run("x + 1").value)   # '42'
"""

from .errors import (
    ExecutionTimeout,
    FaasError,
    InvalidCode,
    IsolationError,
    ModeNotAvailable,
    ProtocolError,
    ResourceLimitExceeded,
    SandboxDead,
    SnapshotError,
)
from .limits import Limits
from .modes import AVAILABLE_MODES, Mode
from .platform import ExecutionPlatform
from .results import BranchResult, ErrorInfo, ExecutionResult
from .sandbox import Sandbox
from .snapshot import Snapshot
from .tree_search import TreeNode, TreeSearchResult

__version__ = "0.1.0"

__all__ = [
    "AVAILABLE_MODES",
    "BranchResult",
    "ErrorInfo",
    "ExecutionPlatform",
    "ExecutionResult",
    "ExecutionTimeout",
    "FaasError",
    "InvalidCode",
    "IsolationError",
    "Limits",
    "Mode",
    "ModeNotAvailable",
    "ProtocolError",
    "ResourceLimitExceeded",
    "Sandbox",
    "SandboxDead",
    "Snapshot",
    "SnapshotError",
    "TreeNode",
    "TreeSearchResult",
]
