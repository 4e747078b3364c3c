"""Results are data: what an execution produced, including a failure of the user's code."""

from __future__ import annotations

import dataclasses
import html
from typing import Any, Optional

from .limits import exceeded_limit

__all__ = ["BranchResult", "ErrorInfo", "ExecutionResult"]


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """Why an execution failed: the exception the user's code raised, or what the platform saw
    (``ExecutionTimeout``, ``SandboxDead``, ``ProtocolError``)."""

    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclasses.dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution.

    success           the code ran to the end without raising
    stdout, stderr    everything written (print, sys.stdout, os.write, child processes)
    value             repr() of the last expression's value, like a notebook cell; else None
    error             ErrorInfo when success is False
    duration          wall time seen by the engine: request sent -> result complete (seconds)
    sandbox_duration  wall time of exec() measured inside the sandbox (seconds)
    output_truncated  output beyond the sandbox's output limit was dropped
    outcome           "completed", "timeout", "died", "interrupted" or "protocol_error"
    sandbox_id        the sandbox that ran it
    snapshot          a Snapshot of the end state (CHECKPOINTED mode), else None
    limit_exceeded    the Limits field the execution ran into ("memory_bytes", "pids", ...);
                      then error.type is "ResourceLimitExceeded" and error.message says which
                      limit and what the code saw
    """

    success: bool
    stdout: str
    stderr: str
    value: Optional[str]
    error: Optional[ErrorInfo]
    duration: float
    sandbox_duration: float
    output_truncated: bool
    outcome: str
    sandbox_id: str
    snapshot: Any = None
    limit_exceeded: Optional[str] = None

    @classmethod
    def _from_core(cls, raw: dict, sandbox_id: str, limits: Any = None, oom_killed: bool = False,
                   **extra: Any) -> "ExecutionResult":
        err = raw["error"]
        limit = exceeded_limit(limits, err[0], err[1], oom_killed) if err is not None else None
        if limit is not None:
            err = ("ResourceLimitExceeded",
                   f"Limits.{limit}={getattr(limits, limit)} exceeded ({err[0]}: {err[1]})", err[2])
        return cls(
            **extra,
            limit_exceeded=limit,
            success=raw["success"],
            stdout=raw["stdout"],
            stderr=raw["stderr"],
            value=raw["value"],
            error=ErrorInfo(*err) if err is not None else None,
            duration=raw["engine_duration"],
            sandbox_duration=raw["kernel_duration"],
            output_truncated=raw["output_truncated"],
            outcome=raw["outcome"],
            sandbox_id=sandbox_id,
        )

    @property
    def timed_out(self) -> bool:
        return self.outcome == "timeout"

    def __repr__(self) -> str:
        parts = [f"success={self.success}"]
        if self.value is not None:
            parts.append(f"value={_short(self.value)}")
        if self.stdout:
            parts.append(f"stdout={_short(self.stdout)}")
        if self.stderr:
            parts.append(f"stderr={_short(self.stderr)}")
        if self.error is not None:
            parts.append(f"error={_short(str(self.error))}")
        if self.output_truncated:
            parts.append("output_truncated=True")
        parts.append(f"duration={self.duration * 1e3:.3f}ms")
        parts.append(f"sandbox_id={self.sandbox_id!r}")
        return f"ExecutionResult({', '.join(parts)})"

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.success else "#c62828"
        rows = [f"<b style='color:{colour}'>{'success' if self.success else 'failed'}</b> "
                f"in {self.duration * 1e3:.2f} ms on <code>{html.escape(self.sandbox_id)}</code>"]
        if self.stdout:
            rows.append(f"<pre>{html.escape(self.stdout)}</pre>")
        if self.stderr:
            rows.append(f"<pre style='color:#b26a00'>{html.escape(self.stderr)}</pre>")
        if self.value is not None:
            rows.append(f"<pre><b>Out:</b> {html.escape(self.value)}</pre>")
        if self.error is not None:
            rows.append(f"<pre style='color:{colour}'>{html.escape(self.error.traceback or str(self.error))}</pre>")
        if self.output_truncated:
            rows.append("<i>output truncated at the sandbox's output limit</i>")
        return "<div class='faas-result'>" + "".join(rows) + "</div>"


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclasses.dataclass(frozen=True, repr=False)
class BranchResult(ExecutionResult):
    """One branch of ``explore_parallel``: an ExecutionResult plus the branch it ran in.

    branch_id  the branch sandbox's id
    sandbox    the live branch (``keep=True``), else None: it was closed
    snapshot   with ``keep=True, snapshot_end=True``: a snapshot of the branch's end state
    """

    branch_id: str = ""
    sandbox: Any = None

    def __repr__(self) -> str:
        return super().__repr__().replace("ExecutionResult(", f"BranchResult(branch_id={self.branch_id!r}, ", 1)
